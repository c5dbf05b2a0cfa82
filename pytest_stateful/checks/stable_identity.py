"""stable_identity: each pod is `<sts>-<ordinal>` with that hostname, and keeps it across recreation.

spec.hostname must be the pod's name and spec.subdomain the StatefulSet's serviceName
(upstream initIdentity, stateful_set_utils.go); a deleted ordinal the spec still wants comes
back with the same name (and a new UID); two live pods never share an ordinal or a hostname. At
node level, `hostname` run inside each container must print the pod's name. A run in which no
pod was deleted and recreated has not exercised the guarantee.
"""

from __future__ import annotations

from pytest_stateful.checks.history import History
from pytest_stateful.checks.verdict import Subject, Verdict, Violation, incomplete, judged, node_level, not_exercised
from pytest_stateful.timeline import POD, PROBE, STEP, STS, Timeline, ordinal_of

GUARANTEE = "stable_identity"
KINDS = (POD, STS, STEP, PROBE)


def check(timeline: Timeline, subject: Subject) -> Verdict:
    gap = incomplete(GUARANTEE, timeline, KINDS)
    if gap:
        return gap
    name = subject.statefulset
    final = timeline.statefulset(name)
    if final is None:
        return judged(GUARANTEE, timeline, [], "", [f"StatefulSet {name} was never seen in {subject.namespace}"])
    violations: list[Violation] = []
    checked_pods: set[str] = set()
    recreated = 0
    pending: dict[str, float] = {}  # pod name -> when its previous UID went
    hostnames: dict[str, str] = {}  # hostname -> the pod that last claimed it
    for e in timeline.of(POD):
        if e.pod.owner == name and ordinal_of(e.name, name) is None and e.uid not in checked_pods:
            checked_pods.add(e.uid)
            violations.append(Violation(f"pod {e.name} belongs to {name} but is not named {name}-<ordinal>", e))
    history = History(timeline, name)
    seen: set[str] = set()
    for _, e, world in history.walk():
        if e.kind != POD:
            continue
        if e.type == "DELETED":
            pending[e.name] = e.t
            continue
        if e.uid in seen:
            continue
        seen.add(e.uid)
        k = ordinal_of(e.name, name)
        twin = world.pods.get(k) if k is not None else None
        if twin is not None and twin.uid != e.uid:
            violations.append(
                Violation(f"{e.name} was created while the previous {e.name} (UID {twin.uid[:8]}) still existed", e)
            )
        if e.name in pending:
            recreated += 1
            del pending[e.name]
        service = world.sts.service_name if world.sts is not None else None
        if e.pod.hostname != e.name:
            violations.append(Violation(f"{e.name} has spec.hostname {e.pod.hostname!r}, not {e.name!r}", e))
        if service is not None and e.pod.subdomain != service:
            violations.append(
                Violation(f"{e.name} has spec.subdomain {e.pod.subdomain!r}, not the serviceName {service!r}", e)
            )
        other = hostnames.get(e.pod.hostname)
        other_ordinal = ordinal_of(other, name) if other is not None else None
        if other is not None and other != e.name and other_ordinal is not None and other_ordinal in world.pods:
            violations.append(Violation(f"{e.name} and {other} share hostname {e.pod.hostname!r}", e))
        hostnames[e.pod.hostname] = e.name
    wanted = {f"{name}-{k}" for k in final.sts.ordinals}
    for pod_name, gone in sorted(pending.items()):
        if pod_name in wanted:
            violations.append(Violation(f"{pod_name} was deleted at {gone:.2f} s and never came back"))
    verdict = node_level(
        judged(
            GUARANTEE,
            timeline,
            violations,
            f"every pod named {name}-<ordinal> with matching hostname; {recreated} recreation(s) kept their names",
            kinds=KINDS,
        ),
        timeline,
        "hostname",
    )
    if verdict.passed and not recreated:
        return not_exercised(
            GUARANTEE,
            f"no pod of {name} was deleted and recreated during the run, so nothing shows that a pod keeps "
            "its identity: add a delete_pod or delete_pods step",
        )
    return verdict
