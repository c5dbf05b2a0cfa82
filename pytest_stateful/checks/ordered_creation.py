"""ordered_creation: no pod of ordinal k is created while a lower ordinal is missing, terminating or
not available.

Upstream (stateful_set_control.go, processReplica under runForAll with monotonic = OrderedReady):
a missing replica is created only when every replica of lower ordinal exists, is not terminating,
is Running and Ready, and has been Ready for minReadySeconds; one pod per sync. Replicas above it,
and pods being scaled away, do not gate creation. Covers the initial rollout, scale-up, the
recreation of deleted pods and new ordinals after `ordinals.start` moved, and so also "halts while
a pod is unhealthy". Parallel does not promise it: the verdict fails and names the policy.
"""

from __future__ import annotations

from pytest_stateful.checks.history import History, World
from pytest_stateful.checks.verdict import Subject, Verdict, Violation, incomplete, judged, not_exercised
from pytest_stateful.timeline import POD, STEP, STS, Entry, Timeline, ordinal_of

GUARANTEE = "ordered_creation"
KINDS = (POD, STS, STEP)


def check(timeline: Timeline, subject: Subject) -> Verdict:
    gap = incomplete(GUARANTEE, timeline, KINDS)
    if gap:
        return gap
    name = subject.statefulset
    if timeline.statefulset(name) is None:
        return judged(GUARANTEE, timeline, [], "", [f"StatefulSet {name} was never seen in {subject.namespace}"])
    history = History(timeline, name)
    violations: list[Violation] = []
    ordered = 0
    since = 0  # the witness of the previous creation: the controller's cache only moves forward
    for index, e, world in history.creations():
        k = ordinal_of(e.name, name)
        assert k is not None
        if world.sts is None:
            continue

        def lower_ready(w: World, k: int = k) -> str | None:
            if w.sts is None:
                return "the StatefulSet was not seen yet"
            if k in w.pods:
                return f"{name}-{k} still existed"  # the controller creates only what its snapshot lacks
            below = w.first_unhealthy(range(w.sts.ordinals_start, k))
            return f"{name}-{below[0]} was {below[1]}" if below else None

        # Every creation moves the chain of witnesses; the lowest ordinal waits for nobody and shows no order.
        why, since = history.witness(index, world, lower_ready, since)
        if k == world.sts.ordinals_start:
            continue
        ordered += 1
        if why is not None:
            violations.append(Violation(_why(timeline, e, world, name), e))
    diagnosis: list[str] = []
    final = timeline.statefulset(name)
    if final is not None and final.sts.policy == "Parallel":
        diagnosis.append(
            f"podManagementPolicy is Parallel: {name} creates and deletes pods without waiting for "
            "lower ordinals, so ordered creation is not guaranteed; use OrderedReady (the default)"
        )
    if not ordered and not violations and not diagnosis:
        return not_exercised(
            GUARANTEE,
            f"no pod of {name} above its lowest ordinal was created during the recording, so nothing shows "
            "the order: start with 2 or more replicas or add a scale step",
        )
    return judged(
        GUARANTEE,
        timeline,
        violations,
        f"{ordered} pod creations, each after every lower ordinal was Ready"
        + (f" for minReadySeconds ({final.sts.min_ready_seconds} s)" if final and final.sts.min_ready_seconds else ""),
        diagnosis,
        kinds=KINDS,
    )


def _why(timeline: Timeline, created: Entry, world: World, sts_name: str) -> str:
    sts = world.sts
    start = sts.ordinals_start if sts is not None else 0
    k = ordinal_of(created.name, sts_name) or 0
    below = world.first_unhealthy(range(start, k))
    if below is None:
        return f"{created.name} was created before the lower ordinals were Ready"
    j, how = below
    lower = f"{sts_name}-{j}"
    if how == "terminating":
        return f"{created.name} was created while {lower} was terminating"
    if how.startswith("Ready for less"):
        return f"{created.name} was created while {lower} was {how}"
    # When did the lower ordinal become Ready after all? Tells how early the creation was.
    for e in timeline.entries[created.seq + 1 :]:
        if e.kind == POD and e.name == lower and e.pod.ready and not e.pod.deleting:
            return f"{created.name} was created {e.t - created.t:.2f} s before {lower} became Ready"
    if how == "missing":
        return f"{created.name} was created while {lower} did not exist"
    return f"{created.name} was created while {lower} was not Ready (and it never became Ready)"
