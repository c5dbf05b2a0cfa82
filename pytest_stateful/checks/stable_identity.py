"""stable_identity: each pod is `<sts>-<ordinal>` with that hostname, and keeps it across recreation.

spec.hostname must be the pod's name and spec.subdomain the StatefulSet's
serviceName; a deleted ordinal comes back with the same name (and a new UID);
two live pods never share an ordinal or a hostname. At node level, `hostname`
run inside each container must print the pod's name.
"""

from __future__ import annotations

from pytest_stateful.checks.replay import is_creation, replay
from pytest_stateful.checks.verdict import Subject, Verdict, Violation, incomplete, judged, node_level
from pytest_stateful.timeline import POD, PROBE, STEP, Timeline, ordinal_of

GUARANTEE = "stable_identity"
KINDS = (POD, STEP, PROBE)


def check(timeline: Timeline, subject: Subject) -> Verdict:
    gap = incomplete(GUARANTEE, timeline, POD)
    if gap:
        return gap
    name = subject.statefulset
    violations: list[Violation] = []
    checked_pods: set[str] = set()
    recreated = 0
    pending: dict[str, float] = {}  # pod name -> when its previous UID went
    hostnames: dict[str, str] = {}  # hostname -> the pod that last claimed it
    for e in timeline.of(POD):
        if e.get("owner") == name and ordinal_of(e.name, name) is None and e.uid not in checked_pods:
            checked_pods.add(e.uid)
            violations.append(Violation(f"pod {e.name} belongs to {name} but is not named {name}-<ordinal>", e))
    for e, state in replay(timeline, name):
        if e.kind != POD:
            continue
        if e.type == "DELETED":
            pending[e.name] = e.t
            continue
        if not is_creation(e, state, name):
            continue
        if e.name in pending:
            recreated += 1
            del pending[e.name]
        service = state.sts.get("service_name") if state.sts is not None else None
        if e.get("hostname") != e.name:
            violations.append(Violation(f"{e.name} has spec.hostname {e.get('hostname')!r}, not {e.name!r}", e))
        if service is not None and e.get("subdomain") != service:
            violations.append(
                Violation(f"{e.name} has spec.subdomain {e.get('subdomain')!r}, not the serviceName {service!r}", e)
            )
        other = hostnames.get(str(e.get("hostname")))
        other_ordinal = ordinal_of(other, name) if other is not None else None
        if other is not None and other != e.name and other_ordinal is not None and other_ordinal in state.pods:
            violations.append(Violation(f"{e.name} and {other} share hostname {e.get('hostname')!r}", e))
        hostnames[str(e.get("hostname"))] = e.name
    final = timeline.statefulset(name)
    wanted = set()
    if final is not None:
        start = int(final.get("ordinals_start", 0))
        wanted = {f"{name}-{k}" for k in range(start, start + int(final.get("replicas", 0)))}
    for pod_name, gone in sorted(pending.items()):
        if pod_name in wanted:
            violations.append(Violation(f"{pod_name} was deleted at {gone:.2f} s and never came back"))
    verdict = judged(
        GUARANTEE,
        timeline,
        violations,
        f"every pod named {name}-<ordinal> with matching hostname; {recreated} recreation(s) kept their names",
        kinds=KINDS,
    )
    return node_level(verdict, timeline, "hostname")
