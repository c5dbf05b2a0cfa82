"""rollout_recovers: after a bad rollout and its fix, every pod reaches the update revision and is
Ready, without the test deleting a pod.

The StatefulSet controller (stateful_set_control.go, updateStatefulSet / runForAll) halts a
monotonic (OrderedReady) set at the first pod that is not Running and Ready: "StatefulSet is
waiting for Pod to be Running and Ready". A pod of the broken revision never becomes Ready, so it
is never replaced by the fixed revision either, and the rollout stays stuck until someone deletes
that pod (kubernetes/kubernetes#67250, open since 2018). A Parallel set does not halt there; its
update phase deletes, highest ordinal first, the pods not on the update revision, but with the
MaxUnavailableStatefulSet rolling update only while fewer than maxUnavailable pods are unavailable
(updateStatefulSetAfterInvariantEstablished): broken pods that use the whole budget keep it stuck
too (kubernetes/kubernetes#137409). A bad canary (partition) that breaks fewer pods than
maxUnavailable recovers.

Judged on the last recorded state: every ordinal the final StatefulSet asks for at or above its
partition must have a live pod on the update revision and Ready (below the partition the spec
keeps the current revision, so those pods need only be Ready). A run without a bad_rollout has
not exercised the guarantee; neither has one in which the test deleted a pod after the bad rollout
(recovery on its own was not shown).
"""

from __future__ import annotations

from pytest_stateful.checks.verdict import Subject, Verdict, Violation, incomplete, judged, not_exercised
from pytest_stateful.timeline import POD, STEP, STS, Entry, Timeline

GUARANTEE = "rollout_recovers"
KINDS = (POD, STS, STEP)
# Steps that change the pod template after a bad rollout: the fix.
FIXES = ("update_image", "rollout_restart")


def check(timeline: Timeline, subject: Subject) -> Verdict:
    gap = incomplete(GUARANTEE, timeline, KINDS)
    if gap:
        return gap
    name = subject.statefulset
    steps = [e for e in timeline.of(STEP) if e.type == "begin"]
    bad = next((e for e in steps if e.get("action") == "bad_rollout"), None)
    if bad is None:
        return not_exercised(
            GUARANTEE, "no bad_rollout step: add one, and the fix after it (update_image or rollout_restart)"
        )
    deleted = sorted(
        {p for e in timeline.of(STEP) if e.type == "deletes" and e.seq > bad.seq for p in e.get("pods", [])}
    )
    if deleted:
        return not_exercised(
            GUARANTEE,
            f"the test deleted {', '.join(deleted)} after the bad rollout: recovery on its own was not shown",
        )
    scaled = [e for e in steps if e.seq > bad.seq and e.get("action") == "scale"]
    if scaled:
        # Scaling below a broken ordinal makes the controller delete it (processCondemned): a manual unstick.
        return not_exercised(
            GUARANTEE, f"the test scaled {name} after the bad rollout: recovery on its own was not shown"
        )
    final = timeline.statefulset(name)
    if final is None:
        return judged(GUARANTEE, timeline, [], "", [f"StatefulSet {name} was never seen in {subject.namespace}"])
    sts = final.sts
    if sts.observed_generation < sts.generation:
        return Verdict(
            GUARANTEE,
            "incomplete",
            f"the record ends before the controller observed the last change of {name} (observedGeneration "
            f"{sts.observed_generation} < generation {sts.generation}): recovery cannot be judged",
        )
    if sts.strategy == "OnDelete":
        return not_exercised(
            GUARANTEE, "updateStrategy OnDelete replaces pods only when they are deleted: nothing recovers on its own"
        )
    sets = [e for e in timeline.of(STS) if e.name == name and e.type != "DELETED"]
    made = next(
        (
            e
            for e in timeline.of(STEP)
            if e.type == "generation" and e.get("action") == "bad_rollout" and e.seq > bad.seq
        ),
        None,
    )
    if made is not None:
        # The revision the controller rolled out for the bad template: the update revision of the status
        # written for that generation. A fix sent before the controller saw it leaves none.
        generation = int(made.get("generation") or 0)
        broken = next((e.sts.update_revision for e in sets if e.sts.observed_generation == generation), "")
    else:  # records made before the generation was noted
        before = next((e.sts.update_revision for e in reversed(sets) if e.seq < bad.seq), "")
        broken = next((e.sts.update_revision for e in sets if e.seq > bad.seq and e.sts.update_revision != before), "")
    if not broken or not any(e.pod.revision == broken for e in timeline.of(POD) if e.type != "DELETED"):
        return not_exercised(GUARANTEE, f"no pod of {name} ran the bad rollout's revision: it broke nothing")
    fix = next((e for e in steps if e.seq > bad.seq and e.get("action") in FIXES), None)
    pods = _live(timeline, name)
    # Below the partition the spec keeps the current revision: those pods need only be Ready.
    split = sts.ordinals_start + sts.partition if sts.strategy == "RollingUpdate" else sts.ordinals_start
    stuck = [
        o
        for o in sts.ordinals
        if not (
            _done(pods.get(f"{name}-{o}"), sts.update_revision) if o >= split else _healthy(pods.get(f"{name}-{o}"))
        )
    ]
    if fix is None:
        return judged(
            GUARANTEE,
            timeline,
            [
                Violation(
                    f"no fix was rolled out after the bad rollout of {name} (update_image or rollout_restart)", bad
                )
            ],
            "",
            kinds=KINDS,
        )
    if fix is not None and sts.update_revision == broken:
        return judged(
            GUARANTEE,
            timeline,
            [Violation(f"the fix did not change the revision of {name}: its update revision is still {broken}", fix)],
            "",
            kinds=KINDS,
        )
    if not stuck:
        recovered = _recovered_at(timeline, name, sts.update_revision, fix)
        timings = {"recovery_s": round(recovered - fix.t, 3)} if recovered is not None else {}
        took = f" {recovered - fix.t:.1f} s after the fix" if recovered is not None else ""
        return judged(
            GUARANTEE,
            timeline,
            [],
            f"every pod of {name} reached revision {sts.update_revision} and became Ready{took}, "
            "with no pod deleted by the test",
            timings=timings,
        )
    # The pod the controller waits on: the lowest that is not Ready (else the lowest left behind).
    unhealthy = [o for o in stuck if not _healthy(pods.get(f"{name}-{o}"))]
    first = f"{name}-{(unhealthy or stuck)[0]}"
    pod = pods.get(first)
    state = _state(pod, sts.update_revision)
    message = f"the rollout of {name} did not recover: {first} {state}"
    why = _why(sts.policy, sts.strategy, first, pod, sts.update_revision, sts.max_unavailable, len(unhealthy))
    diagnosis = [why, _manual(first, subject.namespace)]
    at = pod if pod is not None else final
    return judged(GUARANTEE, timeline, [Violation(message, at)], "", diagnosis, kinds=(POD, STEP))


def _live(timeline: Timeline, name: str) -> dict[str, Entry]:
    """The last recorded state of each pod of the StatefulSet that still exists."""
    pods: dict[str, Entry] = {}
    for e in timeline.of(POD):
        if e.pod.owner and e.pod.owner != name:
            continue
        if e.type == "DELETED":
            if e.name in pods and pods[e.name].uid == e.uid:
                del pods[e.name]
        else:
            pods[e.name] = e
    return pods


def _healthy(pod: Entry | None) -> bool:
    return pod is not None and pod.pod.ready and not pod.pod.deleting


def _done(pod: Entry | None, revision: str) -> bool:
    return pod is not None and pod.pod.revision == revision and pod.pod.ready and not pod.pod.deleting


def _state(pod: Entry | None, revision: str) -> str:
    if pod is None:
        return "does not exist"
    d = pod.pod
    parts = [
        f"is on revision {d.revision or '?'}"
        + (" (not the update revision " + revision + ")" if d.revision != revision else "")
    ]
    parts.append("Ready" if d.ready else f"NotReady ({d.phase or 'no phase'})")
    if d.waiting:
        parts.append("; ".join(d.waiting))
    return ", ".join(parts)


def _why(
    policy: str, strategy: str, pod: str, entry: Entry | None, revision: str, budget: int | str, broken: int
) -> str:
    if strategy == "OnDelete":
        return f"updateStrategy OnDelete: the controller replaces pods only when they are deleted, so {pod} stays"
    if entry is not None and entry.pod.revision == revision:
        return f"{pod} runs the update revision and still is not Ready: the fix itself does not become Ready"
    if policy == "OrderedReady":
        return (
            f"podManagementPolicy OrderedReady: the controller waits for {pod} to be Running and Ready before it "
            "creates, deletes or updates any pod, and a pod of the broken revision never becomes Ready, so it is "
            "never replaced by the fix either (kubernetes/kubernetes#67250)"
        )
    return (
        f"podManagementPolicy Parallel with maxUnavailable {budget}: with the feature gate MaxUnavailableStatefulSet "
        "on (the local clusters' default; upstream's in 1.35.0-1.35.3) the controller replaces pods only while fewer "
        f"than maxUnavailable are unavailable, and {broken} pod(s) of the broken revision use that budget up "
        "(kubernetes/kubernetes#137409); with the gate off it replaces the highest pod not on the update revision, "
        "broken or not"
    )


def _manual(pod: str, namespace: str) -> str:
    return (
        f"manual step that unsticks it: kubectl delete pod {pod} -n {namespace} (the controller recreates it from "
        "the update revision); or use podManagementPolicy: Parallel with maxUnavailable above the number of pods a bad "
        "rollout can break"
    )


def _recovered_at(timeline: Timeline, name: str, revision: str, fix: Entry) -> float | None:
    """When, after the fix, every pod the StatefulSet asked for was last made Ready on the update revision."""
    at = None
    for e in timeline.of(POD):
        if e.seq > fix.seq and e.type != "DELETED" and e.pod.owner in ("", name) and _done(e, revision):
            at = e.t
    return at
