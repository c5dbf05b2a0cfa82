"""ordered_creation: no pod of ordinal k is created while a lower ordinal is missing or not Ready.

Holds for OrderedReady only; covers the initial rollout, scale-up and the
recreation of deleted pods, and so also "halts while a pod is unhealthy".
"""

from __future__ import annotations

from pytest_stateful.checks.replay import State, is_creation, replay
from pytest_stateful.checks.verdict import Subject, Verdict, Violation, incomplete, judged
from pytest_stateful.timeline import POD, STEP, Entry, Timeline, ordinal_of

GUARANTEE = "ordered_creation"
KINDS = (POD, STEP)


def check(timeline: Timeline, subject: Subject) -> Verdict:
    gap = incomplete(GUARANTEE, timeline, POD)
    if gap:
        return gap
    name = subject.statefulset
    violations: list[Violation] = []
    diagnosis: list[str] = []
    creations = 0
    for e, state in replay(timeline, name):
        if not is_creation(e, state, name) or state.sts is None:
            continue
        creations += 1
        k = ordinal_of(e.name, name)
        assert k is not None
        start = int(state.sts.get("ordinals_start", 0))
        j = state.lowest_not_ready(start)
        if j < k:
            violations.append(Violation(_why(timeline, e, state, j, name), e))
    sts = timeline.statefulset(name)
    if sts is None:
        return judged(GUARANTEE, timeline, [], "", [f"StatefulSet {name} was never seen in {subject.namespace}"])
    if sts.get("policy") == "Parallel":
        diagnosis.append(
            f"podManagementPolicy is Parallel: {name} creates and deletes pods without waiting for "
            "lower ordinals, so ordered creation is not guaranteed; use OrderedReady (the default)"
        )
    if creations == 0:
        diagnosis.append(f"no pod of {name} was created during the recording: nothing shows the order")
    return judged(
        GUARANTEE,
        timeline,
        violations,
        f"{creations} pod creations, each after every lower ordinal was Ready",
        diagnosis,
        kinds=KINDS,
    )


def _why(timeline: Timeline, created: Entry, state: State, j: int, sts_name: str) -> str:
    lower = f"{sts_name}-{j}"
    pod = state.pods.get(j)
    if pod is not None and pod.get("deleting"):
        return f"{created.name} was created while {lower} was terminating"
    # When did the lower ordinal become Ready after all? Tells how early the creation was.
    for e in timeline.entries[created.seq + 1 :]:
        if e.kind == POD and e.name == lower and e.get("ready") and not e.get("deleting"):
            return f"{created.name} was created {e.t - created.t:.2f} s before {lower} became Ready"
    if pod is None:
        return f"{created.name} was created while {lower} did not exist"
    return f"{created.name} was created while {lower} was not Ready (and it never became Ready)"
