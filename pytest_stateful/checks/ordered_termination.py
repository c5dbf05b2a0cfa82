"""ordered_termination: on scale-down, pods go in decreasing ordinal order, one at a time.

Pod k starts terminating only after pod k+1 is gone (OrderedReady). Only
terminations the controller made because of a lower replica count are judged;
pods the test deleted itself are recreated, not scaled away.
"""

from __future__ import annotations

from pytest_stateful.checks.replay import replay
from pytest_stateful.checks.verdict import Subject, Verdict, Violation, incomplete, judged
from pytest_stateful.timeline import POD, STEP, Timeline, ordinal_of

GUARANTEE = "ordered_termination"
KINDS = (POD, STEP)


def check(timeline: Timeline, subject: Subject) -> Verdict:
    gap = incomplete(GUARANTEE, timeline, POD)
    if gap:
        return gap
    name = subject.statefulset
    violations: list[Violation] = []
    judged_count = 0
    started: set[str] = set()  # pod UIDs already seen terminating
    for e, state in replay(timeline, name):
        if e.kind != POD or e.uid in started or not (e.get("deleting") or e.type == "DELETED"):
            continue
        started.add(e.uid)
        k = ordinal_of(e.name, name)
        if state.sts is None or k is None or k in state.ordinals():
            continue  # not a scale-down: the spec still wants this ordinal
        judged_count += 1
        higher = sorted(o for o in state.pods if o > k)
        if higher:
            h = higher[-1]
            what = "terminating" if state.pods[h].get("deleting") else "still running"
            violations.append(
                Violation(
                    f"{e.name} started terminating while {name}-{h} was {what} (scale-down must go "
                    f"from the highest ordinal down, one pod at a time)",
                    e,
                )
            )
    diagnosis: list[str] = []
    sts = timeline.statefulset(name)
    if sts is not None and sts.get("policy") == "Parallel":
        diagnosis.append(
            f"podManagementPolicy is Parallel: {name} terminates pods on scale-down all at once, "
            "so ordered termination is not guaranteed; use OrderedReady (the default)"
        )
    if judged_count == 0:
        diagnosis.append(
            f"{name} was never scaled down during the run, so nothing shows the termination order: "
            "add a step that scales it to fewer replicas"
        )
    return judged(
        GUARANTEE,
        timeline,
        violations,
        f"{judged_count} scale-down terminations, highest ordinal first, each after the one above was gone",
        diagnosis,
        kinds=KINDS,
    )
