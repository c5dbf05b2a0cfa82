"""DNS probing: ask a resolver for the StatefulSet's names and compare with the pods' IPs.

Strategies (DESIGN.md): `direct` asks a server this process can reach (the
local cluster's CoreDNS on loopback); `port-forward` asks a kube-dns pod over TCP
through the API server (kind, the real node); `exec` (resolving from inside a
pod) is a node-level probe of the StatefulSet handle.
"""

from __future__ import annotations

from typing import Any, Protocol

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from pytest_stateful.errors import ClusterError, UsageError

# The `exec` strategy, run as `sh -c RESOLVE resolve NAME` inside a pod (its own container or an
# ephemeral probe): the A records of NAME, trying resolv.conf's search domains first (ndots:5), as
# libc would; busybox nslookup ignores the search list. Exit 127: the container has no nslookup.
RESOLVE = r"""
command -v nslookup >/dev/null || exit 127
name=$1
for domain in $(sed -n 's/^search //p' /etc/resolv.conf) ""; do
    query=$name${domain:+.$domain}
    if out=$(nslookup -type=a "$query" 2>/dev/null); then
        echo "$out" | sed -n '/^Name:/,$ s/^Address: *//p'
        exit 0
    fi
done
exit 1
"""


class Resolver(Protocol):
    """What probes need from a DNS strategy."""

    address: str

    def a_records(self, name: str) -> tuple[str, list[str]]: ...


class DirectResolver:
    """Plain DNS over UDP (TCP on truncation) to host:port; no cache in between."""

    def __init__(self, address: str, timeout: float = 1.0) -> None:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise UsageError(f"DNS server address must be host:port, got {address!r}")
        self.address = address
        self.host, self.port, self.timeout = host, int(port), timeout

    def a_records(self, name: str) -> tuple[str, list[str]]:
        """(rcode name, sorted IPv4 addresses) for `name`; ('TIMEOUT', []) when nobody answers."""
        query = dns.message.make_query(name, dns.rdatatype.A)
        try:
            answer = dns.query.udp(query, self.host, port=self.port, timeout=self.timeout)
            if answer.flags & dns.flags.TC:
                answer = dns.query.tcp(query, self.host, port=self.port, timeout=self.timeout)
        except (dns.exception.Timeout, OSError):
            return "TIMEOUT", []
        ips = sorted(str(r) for rrset in answer.answer if rrset.rdtype == dns.rdatatype.A for r in rrset)
        return dns.rcode.to_text(answer.rcode()), ips

    def __repr__(self) -> str:
        return f"DirectResolver({self.address!r})"


class PortForwardResolver:
    """DNS over TCP to a kube-dns pod, through the API server's port-forward (which carries TCP only).

    Works on any cluster with a kube-dns pod (kind, the local real node) from a machine that can
    reach only the API server.
    """

    def __init__(
        self,
        core: Any,
        namespace: str = "kube-system",
        selector: str = "k8s-app=kube-dns",
        port: int = 53,
        timeout: float = 2.0,
    ) -> None:
        self.core, self.namespace, self.selector, self.port, self.timeout = core, namespace, selector, port, timeout
        self.address = f"port-forward {namespace}/{selector}:{port}"

    def _pod(self) -> tuple[str, int]:
        """A running kube-dns pod and its DNS TCP port (the port named dns-tcp, as CoreDNS's manifests name it)."""
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=self.selector).items
        running = [p for p in pods if p.status.phase == "Running"]
        if not running:
            raise ClusterError(f"no running pod matches {self.selector} in {self.namespace}")
        pod = running[0]
        ports = [port for c in pod.spec.containers for port in c.ports or [] if port.name == "dns-tcp"]
        return str(pod.metadata.name), int(ports[0].container_port) if ports else self.port

    def a_records(self, name: str) -> tuple[str, list[str]]:
        from kubernetes.stream import portforward

        query = dns.message.make_query(name, dns.rdatatype.A)
        try:
            pod, port = self._pod()
            forward = portforward(
                self.core.connect_get_namespaced_pod_portforward, pod, self.namespace, ports=str(port)
            )
            sock = forward.socket(port)
            sock.settimeout(self.timeout)
            try:
                answer = dns.query.tcp(query, "127.0.0.1", timeout=self.timeout, sock=sock)
            finally:
                sock.close()
                forward.close()
        except (dns.exception.Timeout, OSError, EOFError, ClusterError):
            return "TIMEOUT", []
        ips = sorted(str(r) for rrset in answer.answer if rrset.rdtype == dns.rdatatype.A for r in rrset)
        return dns.rcode.to_text(answer.rcode()), ips

    def __repr__(self) -> str:
        return f"PortForwardResolver({self.address!r})"
