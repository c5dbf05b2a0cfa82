"""Evidence beyond the API objects: DNS answers for the StatefulSet's names, and (node level)
commands run inside the pods: `hostname`, a lookup from inside a peer, markers on the volumes.

Every answer is recorded in the timeline (DNS and Probe entries); the checks judge
them. Waits between rounds go through the recorder, so a round follows the next
change the cluster makes instead of a fixed sleep.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from pytest_stateful.cluster.api import CLIENT_FAILURES
from pytest_stateful.cluster.handle import ClusterHandle
from pytest_stateful.errors import StepError
from pytest_stateful.recorder import Recorder
from pytest_stateful.timeline import DNS, POD, PROBE, SERVICE, Entry
from pytest_stateful.workload.view import WorkloadView

MARKER_FILE = ".pytest-stateful-marker"
# Longest pause between two DNS rounds when nothing new is recorded (CoreDNS follows
# EndpointSlices on its own clock, so a round also runs without a new event).
DNS_ROUND = 0.1
EXEC_ROUND = 0.5
# An exec that cannot start (no such command in the image) fails as a ValueError or an API error.
EXEC_FAILURES: tuple[type[BaseException], ...] = (ValueError, *CLIENT_FAILURES)


class Probes:
    def __init__(
        self, cluster: ClusterHandle, namespace: str, recorder: Recorder, view: WorkloadView, dns_timeout: float
    ) -> None:
        self.cluster, self.namespace, self.recorder, self.view = cluster, namespace, recorder, view
        self.dns_timeout = dns_timeout
        # Node level: (pod, claim template) -> (token, container, mount path) written before a disruption.
        self.markers: dict[tuple[str, str], tuple[str, str, str]] = {}

    # -- DNS from outside -------------------------------------------------------------------

    def dns(self, timeout: float | None = None) -> list[Entry]:
        """Ask DNS for every pod's name and the Service name until each answers what the DNS
        specification gives for the Service and pods as recorded now (or the timeout passes).

        Every name is asked, whatever the Service looks like: the check judges the answers
        (a Service with a cluster IP answers that IP for its name, at once, and that is the evidence).
        """
        resolver = self.cluster.resolver
        sts = self.view.statefulset()
        if resolver is None or sts is None:
            return []
        timeout = self.dns_timeout if timeout is None else timeout
        service = sts.sts.service_name
        zone = f"{service}.{self.namespace}.svc.{self.cluster.cluster_domain}"

        def expectations() -> dict[str, tuple[list[list[str]], str, str]]:
            # Recomputed on every round: the answer must match the pods as they are now.
            pods = self.recorder.snapshot(POD)
            svc = self.recorder.current.get((SERVICE, service))
            wanted = {
                f"{p.name}.{zone}": (_pod_answers(p, svc, service), f"{p.name}'s current IP", p.name)
                for p in self.view.pods()
                if not p.pod.deleting
            }
            wanted[zone] = (_service_answers(pods, svc), "the Ready pods' IPs", "")
            return wanted

        started = time.monotonic()
        recorded: list[Entry] = []
        pending = expectations()
        last: dict[str, list[str]] = {}

        def answer(qname: str, want: list[str], what: str, pod: str, ips: list[str], ok: bool) -> None:
            waited = round(time.monotonic() - started, 3)
            recorded.append(
                self.recorder.add(
                    DNS, "answer", qname, qname=qname, answers=ips, expected=want, what=what, pod=pod, ok=ok,
                    waited=waited,
                )
            )  # fmt: skip

        while pending:
            seen = len(self.recorder.timeline)
            current = expectations()
            pending = {q: current[q] for q in pending if q in current}
            for qname, (acceptable, what, pod) in list(pending.items()):
                _rcode, ips = resolver.a_records(qname)
                last[qname] = ips
                if ips in acceptable:
                    answer(qname, acceptable[0], what, pod, ips, True)
                    del pending[qname]
            if not pending or time.monotonic() - started > timeout:
                break
            self.recorder.wait_for_change(seen, DNS_ROUND)
        for qname, (acceptable, what, pod) in pending.items():
            answer(qname, acceptable[0], what, pod, last.get(qname, []), False)
        return recorded

    # -- inside the containers ----------------------------------------------------------------

    def exec(self, pod: str, command: list[str], container: str | None = None) -> str:
        """Run a command inside a pod's container (through the API server and the kubelet); its stdout."""
        result = self.try_exec(pod, command, container)
        if result is None:
            raise StepError(f"cannot run {command[0]!r} in {pod}: the image has no such command")
        return result[1]

    def try_exec(self, pod: str, command: list[str], container: str | None = None) -> tuple[int, str] | None:
        """(exit code, stdout), or None when the command cannot start (not in the image)."""
        from kubernetes.stream import stream

        try:
            resp = stream(
                self.cluster.core.connect_get_namespaced_pod_exec,
                pod,
                self.namespace,
                command=command,
                container=container,
                stderr=True,
                stdin=False,
                stdout=True,
                tty=False,
                _preload_content=False,
            )
            resp.run_forever(timeout=30)
            return int(resp.returncode or 0), str(resp.read_stdout())
        except EXEC_FAILURES:
            # The API server reports a command that failed to start as an error, not an exit code.
            return None

    def write_markers(self) -> None:
        """Before a disruption: a fresh marker on every claim volume of every running pod."""
        sts = self.view.statefulset()
        mounts = sts.sts.claim_mounts if sts else {}
        for pod in self.view.pods():
            if pod.pod.deleting or pod.pod.phase != "Running":
                continue
            for template, (container, path) in mounts.items():
                token = f"{pod.name}-{secrets.token_hex(4)}"
                write = ["sh", "-c", f"echo {token} > {path}/{MARKER_FILE}"]
                if self.try_exec(pod.name, write, container) is not None:  # no shell: no marker evidence
                    self.markers[(pod.name, template)] = (token, container, path)

    def node(self) -> list[Entry]:
        """Node level, after a step settled: hostname inside each pod, DNS from inside a pod,
        and the markers written before the step read back from the volumes."""
        if not self.cluster.node_level:
            return []
        sts = self.view.statefulset()
        service = sts.sts.service_name if sts else ""
        pods = [p for p in self.view.pods() if p.pod.ready and not p.pod.deleting]
        recorded = []
        for pod in pods:
            ran = self.try_exec(pod.name, ["hostname"])
            if ran is None:
                continue  # the image has no `hostname`: node-level identity stays "not available"
            seen = ran[1].strip()
            message = f"hostname inside {pod.name} printed {seen!r}, not {pod.name!r}"
            recorded.append(self._probe("hostname", pod.name, seen == pod.name, message, output=seen))
        deadline = time.monotonic() + self.dns_timeout
        for target in pods:
            asker = next((p for p in pods if p.name != target.name), target)
            name = f"{target.name}.{service}"
            want = [target.pod.ip]

            def resolve(asker: Entry = asker, name: str = name) -> tuple[int, str] | None:
                return self.try_exec(asker.name, ["resolve", name])

            def answered(ran: tuple[int, str] | None, want: list[str] = want) -> bool:
                return ran is None or sorted(ran[1].split()) == want

            ran = self._until(resolve, answered, deadline)
            if ran is None:
                continue  # no `resolve` in the image (it ships in the real node's tools image)
            answers = sorted(ran[1].split())
            message = (
                f"{name} resolved inside {asker.name} to {', '.join(answers) or 'nothing'}, "
                f"not {target.name}'s IP {want[0]}"
            )
            recorded.append(
                self._probe("dns", asker.name, answers == want, message, query=name, answers=answers, expected=want)
            )
        for (pod_name, template), (token, container, path) in sorted(self.markers.items()):
            if self.view.pod(pod_name) is None:
                continue
            ran = self.try_exec(pod_name, ["cat", f"{path}/{MARKER_FILE}"], container)
            read = ran[1].strip() if ran is not None else ""
            message = (
                f"the marker written to {template} of {pod_name} before the step read back as "
                f"{read!r}, not {token!r}: the volume did not keep its data"
            )
            recorded.append(self._probe("marker", pod_name, read == token, message, volume=template))
        return recorded

    def _until(
        self,
        attempt: Callable[[], tuple[int, str] | None],
        done: Callable[[tuple[int, str] | None], bool],
        deadline: float,
    ) -> tuple[int, str] | None:
        """Repeat `attempt` until `done` or the deadline, pausing until the next recorded change."""
        while True:
            seen = len(self.recorder.timeline)
            result = attempt()
            if done(result) or time.monotonic() >= deadline:
                return result
            self.recorder.wait_for_change(seen, EXEC_ROUND)

    def _probe(self, probe: str, pod: str, ok: bool, message: str, **data: Any) -> Entry:
        return self.recorder.add(PROBE, "exec", pod, probe=probe, pod=pod, ok=ok, message=message, **data)


def _listed(pod: Entry, svc: Entry | None) -> bool:
    """Is the pod an endpoint DNS answers for (EndpointSlice ready, or publishNotReadyAddresses)?"""
    publish = bool(svc.get("publish_not_ready")) if svc is not None else False
    return bool(pod.pod.ip) and (publish or (pod.pod.ready and not pod.pod.deleting))


def _selects(svc: Entry | None, pod: Entry) -> bool:
    selector = (svc.get("selector") or {}) if svc is not None else {}
    return bool(selector) and all(pod.pod.labels.get(k) == v for k, v in selector.items())


def _pod_answers(pod: Entry, svc: Entry | None, service: str) -> list[list[str]]:
    """What a DNS server following the specification may answer for `<pod>.<service>...`, preferred first."""
    if svc is None or not _selects(svc, pod) or pod.pod.subdomain != service or not _listed(pod, svc):
        return [[]]
    if svc.get("headless"):
        return [[pod.pod.ip]]
    # The specification has no per-pod records for a Service with a cluster IP; CoreDNS answers them anyway.
    return [[pod.pod.ip], []]


def _service_answers(pods: list[Entry], svc: Entry | None) -> list[list[str]]:
    if svc is None:
        return [[]]
    if not svc.get("headless"):
        return [[str(svc.get("cluster_ip"))]]
    return [sorted(p.pod.ip for p in pods if _selects(svc, p) and _listed(p, svc))]
