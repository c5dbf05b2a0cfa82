"""ordered_rolling_update: pods move to the update revision from the highest ordinal down.

RollingUpdate: each pod is replaced only after every higher ordinal is updated
and Ready; ordinals below `partition` keep the old revision. OnDelete: nothing
is replaced until the test deletes a pod.
"""

from __future__ import annotations

from pytest_stateful.checks.replay import is_creation, replay
from pytest_stateful.checks.verdict import Subject, Verdict, Violation, incomplete, judged
from pytest_stateful.timeline import POD, STEP, STS, Timeline, ordinal_of

GUARANTEE = "ordered_rolling_update"
KINDS = (POD, STS, STEP)
# Steps in which the test itself deletes pods: replacements there are expected.
DELETING_STEPS = ("delete_pod", "delete_pods", "drain_node")


def check(timeline: Timeline, subject: Subject) -> Verdict:
    gap = incomplete(GUARANTEE, timeline, POD) or incomplete(GUARANTEE, timeline, STS)
    if gap:
        return gap
    name = subject.statefulset
    violations: list[Violation] = []
    updated = 0
    rollouts: set[str] = set()
    deleting_seen: set[str] = set()
    for e, state in replay(timeline, name):
        sts = state.sts
        if sts is None or e.kind != POD:
            continue
        current, target = sts.get("current_revision"), sts.get("update_revision")
        k = ordinal_of(e.name, name)
        assert k is not None
        if not current or not target or current == target:
            continue
        rollouts.add(target)
        test_deleting = any(s.get("action") in DELETING_STEPS for s in state.steps.values())
        if sts.get("strategy") == "OnDelete":
            if (e.get("deleting") or e.type == "DELETED") and e.uid not in deleting_seen:
                deleting_seen.add(e.uid)
                if not test_deleting and k in state.ordinals():
                    violations.append(
                        Violation(
                            f"{e.name} was deleted by the controller under OnDelete (only the test deletes pods)", e
                        )
                    )
            continue
        if not is_creation(e, state, name) or e.get("revision") != target:
            continue
        updated += 1
        partition = int(sts.get("partition") or 0)
        if k < partition:
            violations.append(
                Violation(
                    f"{e.name} got the update revision {target} although its ordinal is below partition {partition}", e
                )
            )
            continue
        for h in sorted((o for o in state.ordinals() if o > k), reverse=True):
            pod = state.pods.get(h)
            if pod is None or pod.get("revision") != target or not state.ready(h):
                seen = (
                    "missing"
                    if pod is None
                    else ("on the old revision" if pod.get("revision") != target else "not Ready")
                )
                violations.append(
                    Violation(
                        f"{e.name} was updated while {name}-{h} was {seen} (updates go from the highest "
                        "ordinal down, each after the one above is updated and Ready)",
                        e,
                    )
                )
                break
    diagnosis: list[str] = []
    if not rollouts:
        diagnosis.append(
            f"{name} never rolled out a new revision during the run, so nothing shows the update order: "
            "add a step that changes the pod template (update_image or rollout_restart)"
        )
    return judged(
        GUARANTEE,
        timeline,
        violations,
        f"{len(rollouts)} rollout(s), {updated} pods updated from the highest ordinal down",
        diagnosis,
        kinds=KINDS,
    )
