"""pod_dns: the headless governing Service gives every pod a DNS name that follows it.

The Service named by serviceName exists, is headless and selects the pods.
After every settled step `<hostname>.<service>.<ns>.svc.<zone>` answers exactly
the pod's current IP and `<service>.<ns>.svc.<zone>` exactly the Ready pods' IPs.
The time from a pod becoming Ready to DNS answering its new IP is reported.
"""

from __future__ import annotations

import statistics

from pytest_stateful.checks.verdict import Subject, Verdict, Violation, judged, node_level
from pytest_stateful.timeline import DNS, POD, SERVICE, SLICE, STEP, Timeline

GUARANTEE = "pod_dns"
KINDS = (POD, SLICE, DNS, STEP)


def diagnose_service(timeline: Timeline, subject: Subject) -> list[str]:
    """Causes in the manifests that make per-pod DNS impossible."""
    name = subject.statefulset
    sts = timeline.statefulset(name)
    if sts is None:
        return [f"StatefulSet {name} was never seen in {subject.namespace}"]
    service_name = sts.get("service_name")
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
            f"Service {service_name} is not headless (clusterIP {service.get('cluster_ip')}): per-pod DNS "
            "records exist only for headless Services; set clusterIP: None"
        )
    selector = service.get("selector") or {}
    pods = [e for e in timeline.of(POD) if e.get("owner") == name]
    if not selector:
        found.append(f"Service {service_name} has no selector, so no EndpointSlice lists the pods of {name}")
    elif pods and not any(_matches(selector, p.get("labels") or {}) for p in pods):
        labels = pods[-1].get("labels") or {}
        found.append(
            f"Service {service_name} selects {_fmt(selector)}, which matches no pod of {name} "
            f"(the pods carry {_fmt(labels)})"
        )
    return found


def check(timeline: Timeline, subject: Subject) -> Verdict:
    diagnosis = diagnose_service(timeline, subject)
    probes = timeline.of(DNS)
    violations = [
        Violation(
            f"{e.get('qname')} answered {_ips(e.get('answers'))} after waiting {e.get('waited', 0):.1f} s; "
            f"expected {_ips(e.get('expected'))} ({e.get('what')})",
            e,
        )
        for e in probes
        if not e.get("ok")
    ]
    if not probes and not diagnosis:
        return Verdict(
            GUARANTEE,
            "incomplete",
            "no DNS answer was recorded: the run had no DNS resolver (set PYTEST_STATEFUL_DNS or use a "
            "cluster provider that offers one)",
        )
    latencies = list(convergence(timeline).values())
    timings: dict[str, float | int] = {"probes": len(probes)}
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
        f"{len(probes)} DNS answers matched the pods' current IPs"
        + (f"; new IPs answered {max(latencies):.2f} s after Ready at most" if latencies else ""),
        diagnosis,
        timings,
        kinds=KINDS,
    )
    return node_level(verdict, timeline, "dns")


def convergence(timeline: Timeline) -> dict[int, float]:
    """Seconds from a pod (a name and an IP) becoming Ready to the first DNS answer of that IP,
    keyed by the answer's seq (the HTML report labels those answers)."""
    ready_at: dict[tuple[str, str], float] = {}
    result: dict[int, float] = {}
    for e in timeline.entries:
        if e.kind == POD and e.get("ready") and e.get("ip"):
            ready_at.setdefault((e.name, str(e.get("ip"))), e.t)
        elif e.kind == DNS and e.get("ok") and e.get("pod") and e.get("expected"):
            start = ready_at.pop((str(e.get("pod")), str(e.get("expected")[0])), None)
            if start is not None:
                result[e.seq] = max(0.0, e.t - start)
    return result


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _fmt(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(labels.items())) + "}"


def _ips(value: object) -> str:
    if not value:
        return "nothing"
    return ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
