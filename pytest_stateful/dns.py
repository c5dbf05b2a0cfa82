"""DNS probing: ask a resolver for the StatefulSet's names and compare with the pods' IPs.

Strategies (DESIGN.md): `direct` asks a server this process can reach (the
local cluster's CoreDNS on loopback); port-forward and exec need a real node and
are not offered on simulated nodes.
"""

from __future__ import annotations

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype


class DirectResolver:
    """Plain DNS over UDP (TCP on truncation) to host:port; no cache in between."""

    def __init__(self, address: str, timeout: float = 1.0) -> None:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"DNS server address must be host:port, got {address!r}")
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
