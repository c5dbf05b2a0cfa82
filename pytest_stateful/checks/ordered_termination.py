"""ordered_termination: pods leave from the highest ordinal down, one at a time, and only while every
pod that stays is healthy.

Upstream (stateful_set_control.go, processCondemned after processReplica under runForAll with
monotonic = OrderedReady): pods outside [start, start+replicas) are condemned, highest first;
one is deleted only when every remaining replica exists, is Running, Ready and available, and
every condemned pod above it is gone from the cache (its deletion finished, not only begun). An
unavailable condemned pod is deleted only when it is the lowest unavailable one. Pods removed
because `ordinals.start` moved are condemned the same way and judged by the same rule. Deletions
the test asked for (known by UID) are not the controller's and are not judged.
"""

from __future__ import annotations

from pytest_stateful.checks.history import History, World, condemned
from pytest_stateful.checks.verdict import Subject, Verdict, Violation, incomplete, judged, not_exercised
from pytest_stateful.timeline import POD, STEP, STS, Timeline, ordinal_of

GUARANTEE = "ordered_termination"
KINDS = (POD, STS, STEP)


def may_remove(world: World, k: int, uid: str, name: str) -> str | None:
    """Why the controller may not start removing condemned pod k (object `uid`) in this world (None: it may)."""
    sts = world.sts
    if sts is None or k in sts.ordinals:
        return f"{name}-{k} was not being scaled away"
    own = world.pods.get(k)
    if own is None or own.uid != uid or own.pod.deleting:
        return f"{name}-{k} was not a live pod"  # the controller deletes what its snapshot shows alive
    higher = [o for o in world.condemned() if o > k]
    if higher:
        h = higher[0]
        what = "terminating" if world.pods[h].pod.deleting else "still running"
        return f"{name}-{h} was {what}"
    if sts.policy != "Parallel":
        kept = world.first_unhealthy(sts.ordinals)
        if kept is not None:
            return (
                f"{name}-{kept[0]}, which stays, was {kept[1]} (OrderedReady removes nothing while a pod is unhealthy)"
            )
        if not world.available(k):
            unavailable = [o for o in reversed(world.condemned()) if not world.available(o)]
            if unavailable and unavailable[0] != k:
                return f"{name}-{k} was not available and {name}-{unavailable[0]} is the lowest unavailable one"
    return None


def check(timeline: Timeline, subject: Subject) -> Verdict:
    gap = incomplete(GUARANTEE, timeline, KINDS)
    if gap:
        return gap
    name = subject.statefulset
    history = History(timeline, name)
    violations: list[Violation] = []
    judged_count = 0
    since = 0  # the witness of the previous removal: the controller's cache only moves forward
    for index, e, world in history.deletions():
        k = ordinal_of(e.name, name)
        assert k is not None

        if history.legal(index, world, condemned(k, e.uid)) is not None:
            continue  # the spec still wanted this ordinal: not a scale-down (the rolling update judges it)
        judged_count += 1

        def removable(w: World, k: int = k, uid: str = e.uid) -> str | None:
            return may_remove(w, k, uid, name)

        broken, since = history.witness(index, world, removable, since)
        if broken is not None:
            why = may_remove(world, k, e.uid, name) or "the order was broken"
            violations.append(
                Violation(
                    f"{e.name} started terminating while {why} (scale-down must go from the highest ordinal "
                    "down, one pod at a time)",
                    e,
                )
            )
    diagnosis: list[str] = []
    sts = timeline.statefulset(name)
    if sts is not None and sts.sts.policy == "Parallel":
        diagnosis.append(
            f"podManagementPolicy is Parallel: {name} terminates pods on scale-down all at once, "
            "so ordered termination is not guaranteed; use OrderedReady (the default)"
        )
    if judged_count == 0 and not diagnosis:
        return not_exercised(
            GUARANTEE,
            f"{name} was never scaled down during the run, so nothing shows the termination order: "
            "add a step that scales it to fewer replicas",
        )
    return judged(
        GUARANTEE,
        timeline,
        violations,
        f"{judged_count} scale-down terminations, highest ordinal first, each after the one above was gone "
        "and while every remaining pod was available",
        diagnosis,
        kinds=KINDS,
    )
