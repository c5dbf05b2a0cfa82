"""pod_dns: the governing Service gives every pod a DNS name that follows it, and the Service name
finds the Ready peers.

What is judged are the DNS answers themselves: each recorded answer is held against the pods as
recorded when it was given (within LAG seconds, for the prober's own round), and after the last
change of any pod there must be a matching answer for every live pod's name and for the Service
name, else the record is incomplete. Expected, by the Kubernetes DNS specification
(kubernetes/dns docs/specification.md, 2.4 for headless Services) and CoreDNS's kubernetes plugin:
`<hostname>.<service>.<ns>.svc.<zone>` answers the pod's IP while it is Ready and not terminating
(always, with publishNotReadyAddresses); `<service>.<ns>.svc.<zone>` answers the IPs of the Ready
pods the Service selects, of this StatefulSet or any other. A Service that cannot give that
(not headless, missing, selecting none of the pods) is named in the diagnosis; a non-headless
Service answers its cluster IP for the service name, so peers cannot find each other.
The time from a pod becoming Ready to DNS answering its new IP is reported.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping

from pytest_stateful.checks.history import LAG
from pytest_stateful.checks.verdict import Subject, Verdict, Violation, incomplete, judged, node_level
from pytest_stateful.timeline import DNS, POD, SERVICE, SLICE, STEP, STS, Entry, Timeline, ordinal_of

GUARANTEE = "pod_dns"
KINDS = (POD, SERVICE, SLICE, STS, DNS, STEP)


def diagnose_service(timeline: Timeline, subject: Subject) -> list[str]:
    """Causes in the manifests that make per-pod DNS or peer discovery impossible."""
    name = subject.statefulset
    sts = timeline.statefulset(name)
    if sts is None:
        return [f"StatefulSet {name} was never seen in {subject.namespace}"]
    service_name = sts.sts.service_name
    services = {e.name: e for e in timeline.of(SERVICE) if e.type != "DELETED"}
    service = services.get(service_name)
    if service is None:
        known = ", ".join(sorted(services)) or "none"
        return [
            f"serviceName {service_name!r} of {name} names no Service in {subject.namespace} "
            f"(Services there: {known}); create a headless Service of that name"
        ]
    found = []
    if not service.get("headless"):
        found.append(
            f"Service {service_name} is not headless (clusterIP {service.get('cluster_ip')}): the Kubernetes DNS "
            "specification gives the Ready pods' IPs under the service name, and per-pod records, only for "
            "headless Services; the service name answers the cluster IP instead, so peers cannot find each "
            "other; set clusterIP: None"
        )
    selector = service.get("selector") or {}
    pods = [e for e in timeline.of(POD) if e.pod.owner == name]
    if not selector:
        found.append(f"Service {service_name} has no selector, so no EndpointSlice lists the pods of {name}")
    elif pods and not any(_matches(selector, p.pod.labels) for p in pods):
        labels = pods[-1].pod.labels
        found.append(
            f"Service {service_name} selects {_fmt(selector)}, which matches no pod of {name} "
            f"(the pods carry {_fmt(labels)})"
        )
    return found


class Namespace:
    """Pods and Services of the namespace as recorded, replayed entry by entry."""

    def __init__(self) -> None:
        self.pods: dict[str, Entry] = {}
        self.services: dict[str, Entry] = {}

    def apply(self, e: Entry) -> None:
        table = self.pods if e.kind == POD else self.services if e.kind == SERVICE else None
        if table is None:
            return
        if e.type == "DELETED":
            table.pop(e.name, None)
        else:
            table[e.name] = e

    def expected(self, pod_name: str, service: str) -> list[str]:
        """What DNS should answer now (sorted IPs) for a pod's name, or for the service name when
        `pod_name` is empty."""
        svc = self.services.get(service)
        publish = bool(svc.get("publish_not_ready")) if svc is not None else False

        def listed(p: Entry) -> bool:
            return bool(p.pod.ip) and (publish or (p.pod.ready and not p.pod.deleting))

        if not pod_name:
            selector: Mapping[str, str] = (svc.get("selector") or {}) if svc is not None else {}
            return sorted(
                p.pod.ip for p in self.pods.values() if selector and _matches(selector, p.pod.labels) and listed(p)
            )
        pod = self.pods.get(pod_name)
        if pod is None:
            return []  # gone: no record (an answer with its old IP is stale)
        return [pod.pod.ip] if listed(pod) else []


def check(timeline: Timeline, subject: Subject) -> Verdict:
    gap = incomplete(GUARANTEE, timeline, KINDS)
    if gap:
        return gap
    diagnosis = diagnose_service(timeline, subject)
    name = subject.statefulset
    sts = timeline.statefulset(name)
    service = sts.sts.service_name if sts is not None else ""
    state = Namespace()
    violations: list[Violation] = []
    answered_after: dict[str, int] = {}  # pod name ("" for the service name) -> seq of its last matching answer
    last_change: dict[str, tuple[int, float]] = {}  # pod name -> (seq, t) of its last change
    shared = False
    probes = 0
    for e in timeline.entries:
        if e.kind in (POD, SERVICE):
            if e.kind == POD and ordinal_of(e.name, name) is not None and _changed(state.pods.get(e.name), e):
                last_change[e.name] = (e.seq, e.t)
            if e.kind == POD and e.pod.owner and e.pod.owner != name and sts is not None:
                svc = state.services.get(service)
                shared = shared or bool(svc is not None and _matches(svc.get("selector") or {}, e.pod.labels))
            state.apply(e)
            continue
        if e.kind != DNS:
            continue
        probes += 1
        qname, pod = str(e.get("qname")), str(e.get("pod") or "")
        answers = sorted(e.get("answers") or [])
        want = state.expected(pod, service)
        if answers == want:
            answered_after[pod] = e.seq
            continue
        changed = max(last_change.values(), default=(-1, 0.0))[0] if not pod else last_change.get(pod, (-1, 0.0))[0]
        settled = answered_after.get(pod, -1) > changed  # DNS had already answered the pods as they are now
        if not settled and _matched_lately(timeline, e, pod, service, answers):
            continue  # right for a moment ago (the prober's own round); not an answer about the pods now
        if not pod:
            what = "the Ready pods' IPs" + (" (of every pod the Service selects)" if shared else "")
        else:
            what = f"{pod}'s current IP"
        if not pod and state.services.get(service) is not None and not state.services[service].get("headless"):
            what += f"; it answered the Service's cluster IP {state.services[service].get('cluster_ip')}"
        violations.append(
            Violation(
                f"{qname} answered {_ips(answers)} after waiting {float(e.get('waited', 0) or 0):.1f} s; "
                f"expected {_ips(want)} ({what})",
                e,
            )
        )
    if shared:
        diagnosis_shared = (
            f"Service {service} also selects pods of other StatefulSets: the service name answers every "
            "Ready pod it selects, and that is what is expected of it"
        )
    else:
        diagnosis_shared = ""
    if not probes and not diagnosis:
        return Verdict(
            GUARANTEE,
            "incomplete",
            "no DNS answer was recorded: the run had no DNS resolver (set PYTEST_STATEFUL_DNS or use a "
            "cluster provider that offers one)",
        )
    if not violations and not diagnosis:
        stale = _unanswered_since_last_change(state, last_change, answered_after, service, name)
        if stale:
            return Verdict(GUARANTEE, "incomplete", stale)
    latencies = list(convergence(timeline).values())
    timings: dict[str, float | int] = {"probes": probes}
    if latencies:
        timings.update(
            dns_convergence_median_s=round(statistics.median(latencies), 3),
            dns_convergence_max_s=round(max(latencies), 3),
            dns_convergence_samples=len(latencies),
        )
    verdict = judged(
        GUARANTEE,
        timeline,
        violations,
        f"{probes} DNS answers matched the pods as recorded when they were given"
        + (f"; new IPs answered {max(latencies):.2f} s after Ready at most" if latencies else ""),
        diagnosis,
        timings,
        kinds=KINDS,
    )
    if diagnosis and violations:
        verdict.summary = diagnosis[0]  # the cause first; the answers that show it are listed under it
    if diagnosis_shared:
        verdict.notes.append(diagnosis_shared)
    return node_level(verdict, timeline, "dns")


def _changed(before: Entry | None, after: Entry) -> bool:
    if before is None or after.type == "DELETED":
        return True
    b, a = before.pod, after.pod
    return (b.ip, b.ready, b.deleting) != (a.ip, a.ready, a.deleting)


def _matched_lately(timeline: Timeline, answer: Entry, pod: str, service: str, answers: list[str]) -> bool:
    """Did the answer match the pods as they were at some moment of the LAG seconds before it?
    The prober computed what to expect a moment before it recorded the answer."""
    state = Namespace()
    matched = False
    for e in timeline.entries[: answer.seq]:
        state.apply(e)
        if e.t >= answer.t - LAG and e.kind in (POD, SERVICE):
            matched = matched or state.expected(pod, service) == answers
    return matched


def _unanswered_since_last_change(
    state: Namespace,
    last_change: dict[str, tuple[int, float]],
    answered: dict[str, int],
    service: str,
    name: str,
) -> str:
    """'' when every live pod's name and the service name were answered after the pods last changed
    (`answered`: pod name, or "" for the service name -> seq of its last matching answer)."""
    if not last_change:
        return ""
    latest_seq, latest_t = max(last_change.values())
    names = [p for p in sorted(state.pods) if ordinal_of(p, name) is not None] + [""]
    missing = [f"{q}.{service}" if q else service for q in names if answered.get(q, -1) < latest_seq]
    if not missing:
        return ""
    changed = max(last_change, key=lambda p: last_change[p])
    return (
        f"no DNS answer after the last change of the pods ({changed} at {latest_t:.2f} s) for "
        f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}: the run ended before DNS was asked "
        "again (end with a step that settles)"
    )


def convergence(timeline: Timeline) -> dict[int, float]:
    """Seconds from a pod (a name and an IP) becoming Ready to the first DNS answer of that IP,
    keyed by the answer's seq (the HTML report labels those answers)."""
    ready_at: dict[tuple[str, str], float] = {}
    result: dict[int, float] = {}
    for e in timeline.entries:
        if e.kind == POD and e.pod.ready and e.pod.ip:
            ready_at.setdefault((e.name, e.pod.ip), e.t)
        elif e.kind == DNS and e.get("pod") and e.get("answers"):
            start = ready_at.pop((str(e.get("pod")), str((e.get("answers") or [""])[0])), None)
            if start is not None:
                result[e.seq] = max(0.0, e.t - start)
    return result


def _matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _fmt(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(labels.items())) + "}"


def _ips(value: object) -> str:
    if not value:
        return "nothing"
    return ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
