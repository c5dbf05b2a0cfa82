"""Evidence beyond the API objects: DNS answers for the StatefulSet's names, and (node level)
commands run inside the pods: `hostname`, a lookup from inside a peer, markers on the volumes
(inside.py decides per pod how: its own container, an ephemeral probe, or not available).

Every answer is recorded in the timeline (DNS and Probe entries); the checks judge
them. Waits between rounds go through the recorder, so a round follows the next
change the cluster makes instead of a fixed sleep.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from pytest_stateful.cluster.handle import ClusterHandle
from pytest_stateful.dns import RESOLVE
from pytest_stateful.errors import Forbidden, StepError
from pytest_stateful.recorder import Recorder
from pytest_stateful.timeline import DNS, POD, PROBE, SERVICE, Entry
from pytest_stateful.workload.inside import Inside, Way
from pytest_stateful.workload.view import WorkloadView

MARKER_FILE = ".pytest-stateful-marker"
# Longest pause between two DNS rounds when nothing new is recorded (CoreDNS follows
# EndpointSlices on its own clock, so a round also runs without a new event).
DNS_ROUND = 0.1
EXEC_ROUND = 0.5


class Probes:
    def __init__(
        self, cluster: ClusterHandle, namespace: str, recorder: Recorder, view: WorkloadView, dns_timeout: float
    ) -> None:
        self.cluster, self.namespace, self.recorder, self.view = cluster, namespace, recorder, view
        self.dns_timeout = dns_timeout
        self.inside = Inside(cluster, namespace)
        # Node level: (pod, claim template) -> the token written before a disruption.
        self.markers: dict[tuple[str, str], str] = {}
        # (pod uid, reason) already recorded as "unavailable".
        self._unavailable: set[tuple[str, str]] = set()

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
        try:
            result = self.inside.run(pod, command, container)
        except Forbidden as exc:
            raise StepError(f"cannot run {command[0]!r} in {pod}: {exc.message}") from None
        if result is None:
            raise StepError(f"cannot run {command[0]!r} in {pod}: the image has no such command")
        return result[1]

    def try_exec(self, pod: str, command: list[str], container: str | None = None) -> tuple[int, str] | None:
        """(exit code, stdout), or None when the command cannot start (not in the image, or exec forbidden)."""
        try:
            return self.inside.run(pod, command, container)
        except Forbidden:
            return None

    def _way(self, pod: Entry, container: str = "") -> Way:
        """How probes reach `pod`: its own container, the ephemeral probe, or not at all. A pod that
        cannot be probed is recorded once, with the reason, for the verdicts to say so."""
        sts = self.view.statefulset()
        mounts = sts.sts.claim_mounts if sts else {}
        default = sts.sts.containers[0] if sts and sts.sts.containers else ""
        way = self.inside.way(pod, container or default, mounts)
        if not way.available:
            self._missing(pod, way.reason)
        return way

    def _missing(self, pod: Entry, reason: str) -> None:
        """Record once per pod lifetime (UID) and reason that node-level evidence is not available."""
        if (pod.uid, reason) not in self._unavailable:
            self._unavailable.add((pod.uid, reason))
            self.recorder.add(PROBE, "unavailable", pod.name, uid=pod.uid, pod=pod.name, reason=reason)

    def _run(self, pod: Entry, way: Way, command: list[str]) -> tuple[int, str] | None:
        """The probe's (exit code, stdout); None, recorded as unavailable, when it could not run."""
        ran = self.try_exec(pod.name, command, way.container or None)
        if ran is None:
            self._missing(pod, f"the probe could not run {command[0]!r} in the {way.via} (exec failed or timed out)")
        return ran

    def write_markers(self) -> None:
        """Before a disruption: a fresh marker on every claim volume of every running pod."""
        sts = self.view.statefulset()
        mounts = sts.sts.claim_mounts if sts else {}
        for pod in self.view.pods():
            if pod.pod.deleting or pod.pod.phase != "Running":
                continue
            for template, mount in mounts.items():
                claim = self.view.claim(pod.pod.claims.get(template, ""))
                if claim is not None and claim.claim.deleting:
                    continue  # a claim being deleted (delete_claim) is not expected to keep data
                way = self._way(pod, str(mount[0]))
                path = way.volumes.get(template)
                if path is None:
                    continue
                token = f"{pod.name}-{secrets.token_hex(4)}"
                write = ["sh", "-c", f"echo {token} > {path}/{MARKER_FILE}"]
                ran = self._run(pod, way, write)
                if ran is not None and ran[0] == 0:
                    self.markers[(pod.name, template)] = token

    def node(self) -> list[Entry]:
        """Node level, after a step settled: hostname inside each pod, DNS from inside a pod,
        and the markers written before the step read back from the volumes. Each probe runs in
        the pod's own container when it has the tools, else in an ephemeral probe container."""
        sts = self.view.statefulset()
        service = sts.sts.service_name if sts else ""
        mounts = sts.sts.claim_mounts if sts else {}
        pods = [p for p in self.view.pods() if p.pod.ready and not p.pod.deleting]
        recorded = []
        reachable = []
        for pod in pods:
            way = self._way(pod)
            if not way.available:
                continue
            reachable.append(pod)
            ran = self._run(pod, way, ["hostname"])
            if ran is None:
                continue
            seen = ran[1].strip()
            # setHostnameAsFQDN: the kernel hostname is the pod's FQDN, which starts with its name.
            fqdn = f"{pod.name}.{pod.pod.subdomain}.{self.namespace}.svc.{self.cluster.cluster_domain}"
            ok = seen == pod.name or (bool(pod.pod.subdomain) and seen == fqdn)
            message = f"hostname inside {pod.name} printed {seen!r}, not {pod.name!r}"
            recorded.append(self._probe("hostname", pod, ok, message, way.via, output=seen))
        deadline = time.monotonic() + self.dns_timeout
        for target in pods:
            peers = [p for p in reachable if p.name != target.name] or [p for p in reachable if p is target]
            if not peers:
                continue
            asker = peers[0]
            way = self._way(asker)
            name = f"{target.name}.{service}"
            # What the DNS specification allows for this pod, as from outside (no record when the
            # Service does not select it; a Service with a cluster IP may or may not answer).
            acceptable = _pod_answers(target, self.recorder.current.get((SERVICE, service)), service)
            want = acceptable[0]

            def resolve(asker: Entry = asker, way: Way = way, name: str = name) -> tuple[int, str] | None:
                return self._run(asker, way, ["sh", "-c", RESOLVE, "resolve", name])

            def answered(ran: tuple[int, str] | None, acceptable: list[list[str]] = acceptable) -> bool:
                return ran is None or ran[0] == 127 or sorted(ran[1].split()) in acceptable

            ran = self._until(resolve, answered, deadline)
            if ran is None or ran[0] == 127:
                continue
            answers = sorted(ran[1].split())
            expected = f"{target.name}'s IP {want[0]}" if want else "no address (the Service does not list it)"
            message = f"{name} resolved inside {asker.name} to {', '.join(answers) or 'nothing'}, not {expected}"
            ok = answers in acceptable
            recorded.append(self._probe("dns", asker, ok, message, way.via, query=name, answers=answers, expected=want))
        for (pod_name, template), token in sorted(self.markers.items()):
            holder = self.view.pod(pod_name)
            if holder is None or template not in mounts:
                continue
            way = self._way(holder, str(mounts[template][0]))
            path = way.volumes.get(template)
            if path is None:
                continue
            ran = self._run(holder, way, ["cat", f"{path}/{MARKER_FILE}"])
            if ran is None:
                continue  # could not look (recorded as unavailable): not evidence of lost data
            read = ran[1].strip()
            message = (
                f"the marker written to {template} of {pod_name} before the step read back as "
                f"{read!r}, not {token!r}: the volume did not keep its data"
            )
            recorded.append(self._probe("marker", holder, read == token, message, way.via, volume=template))
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

    def _probe(self, probe: str, pod: Entry, ok: bool, message: str, via: str, **data: Any) -> Entry:
        return self.recorder.add(
            PROBE, "exec", pod.name, uid=pod.uid, probe=probe, pod=pod.name, ok=ok, message=message, via=via, **data
        )


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
