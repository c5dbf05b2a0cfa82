"""availability: during every rolling update and drain, enough pods stay available.

A pod is available when it exists, is not terminating, and has been Ready for minReadySeconds
(the controller's `isRunningAndAvailable`, stateful_set_utils.go). During a rolling update the
StatefulSet promises at most maxUnavailable unavailable replicas (1 unless the
MaxUnavailableStatefulSet field says more; a percentage of replicas rounded down, at least 1:
`getStatefulSetMaxUnavailable`), so at least `replicas - maxUnavailable` stay available. During
`drain_node` (and `evict_pod`) the evictions must respect the PodDisruptionBudget that selects the pods (the
eviction subresource refuses what would break it, with 429); without one, the StatefulSet's own
floor is held against the drain, and the diagnosis says that nothing limited the evictions.

Excluded: ordinals whose pod the test itself deleted (delete_pod, delete_pods, force_delete_pod) or whose
node it failed (fail_node, out_of_service) until their
replacement is available, and pods the test held NotReady (make_unready). The verdict gives the
minimum reached, when, for how long, and which pods were down. Not exercised: no rolling update
and no drain happened.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from pytest_stateful.checks.verdict import Subject, Verdict, Violation, incomplete, judged, not_exercised
from pytest_stateful.timeline import PDB, POD, STEP, STS, Entry, StsData, Timeline, ordinal_of

GUARANTEE = "availability"
KINDS = (POD, STS, STEP)
# Test deletions that are the test's own choice, and pods on a node the test failed (they go down
# because of it); drain_node's evictions are judged, not excluded.
# Steps that evict through the eviction API: judged against the PodDisruptionBudget, as a drain.
EVICTIONS = ("drain_node", "evict_pod")
OWN_DELETIONS = ("delete_pod", "delete_pods", "force_delete_pod", "fail_node", "out_of_service")


@dataclass
class Dip:
    """One stretch below the floor."""

    start: Entry
    floor: int
    replicas: int
    during: str
    lowest: int
    down: list[str]
    end: float | None = None
    at: Entry | None = None


@dataclass
class _State:
    pods: dict[int, Entry] = field(default_factory=dict)
    excluded: dict[int, str] = field(default_factory=dict)  # ordinal -> uid the test deleted
    held: set[str] = field(default_factory=set)  # UIDs of pods held NotReady by make_unready
    seen: set[int] = field(default_factory=set)  # ordinals that have had a Ready pod
    sts: StsData | None = None
    budgets: dict[str, Entry] = field(default_factory=dict)
    draining: bool = False
    eviction: str = "drain_node"  # the step that evicts (drain_node, evict_pod), for the verdict's words
    # A drain is judged until its evicted pods are gone and their ordinals available again, also
    # when the step itself ended earlier (settle: false).
    evicted: set[str] = field(default_factory=set)
    drained: set[int] = field(default_factory=set)


def check(timeline: Timeline, subject: Subject) -> Verdict:
    gap = incomplete(GUARANTEE, timeline, KINDS)
    if gap:
        return gap
    name = subject.statefulset
    s = _State()
    dips: list[Dip] = []
    open_dip: Dip | None = None
    judged_any = False
    lowest: tuple[int, int, float] | None = None  # (available, of, t)
    own = _own_deletions(timeline)
    for e in timeline.entries:
        _apply(s, e, name, own)
        if s.sts is None:
            continue
        window = _window(s, e.t)
        if window is None:
            if open_dip is not None:
                open_dip.end = e.t
                open_dip = None
            continue
        during, floor, min_ready = window
        judged_any = True
        available, down = _count(s, e.t, name, min_ready)
        of = _judged_replicas(s)
        if lowest is None or available < lowest[0]:
            lowest = (available, of, e.t)
        if available < floor:
            if open_dip is None:
                open_dip = Dip(e, floor, of, during, available, down, at=e)
                dips.append(open_dip)
            elif available < open_dip.lowest:
                open_dip.lowest, open_dip.down, open_dip.at = available, down, e
        elif open_dip is not None:
            open_dip.end = e.t
            open_dip = None
    if not judged_any:
        return not_exercised(
            GUARANTEE, "no rolling update and no drain_node or evict_pod: add update_image or drain_node"
        )
    timings = {"min_available": lowest[0], "min_available_at_s": round(lowest[2], 3)} if lowest else {}
    if not dips:
        low = f"; the fewest available was {lowest[0]} of {lowest[1]} at {lowest[2]:.2f} s" if lowest else ""
        summary = f"enough pods of {name} stayed available in every update and drain{low}"
        return judged(GUARANTEE, timeline, [], summary, timings=timings)
    end = timeline.entries[-1].t if timeline.entries else 0.0
    violations = []
    for d in dips:
        lasted = (d.end if d.end is not None else end) - d.start.t
        violations.append(
            Violation(
                f"during {d.during}, only {d.lowest} of {d.replicas} pods of {name} were available (below "
                f"{d.floor}) for {lasted:.2f} s from {d.start.t:.2f} s; down: {', '.join(d.down) or 'none'}",
                d.at or d.start,
            )
        )
    diagnosis = []
    if any(d.during.startswith(EVICTIONS) and "PodDisruptionBudget" not in d.during for d in dips):
        diagnosis.append(
            f"no PodDisruptionBudget selects the pods of {name}: nothing limits evictions, so a drain may take "
            "several at once; add one (for example maxUnavailable: 1)"
        )
    return judged(GUARANTEE, timeline, violations, "", diagnosis, timings=timings, kinds=(POD, STEP))


def series(timeline: Timeline, name: str) -> list[tuple[float, int, int, int | None]]:
    """(t, available, replicas, floor or None outside updates and drains) at every recorded entry
    once the StatefulSet is seen: the availability curve of the HTML report."""
    s = _State()
    own = _own_deletions(timeline)
    points: list[tuple[float, int, int, int | None]] = []
    for e in timeline.entries:
        _apply(s, e, name, own)
        if s.sts is None:
            continue
        window = _window(s, e.t)
        available, _ = _count(s, e.t, name, window[2] if window else True)
        points.append((e.t, available, s.sts.replicas, window[1] if window else None))
    return points


def _own_deletions(timeline: Timeline) -> set[str]:
    """UIDs of the pods the test deleted itself (recorded before each deletion)."""
    return {
        u
        for e in timeline.of(STEP)
        if e.type == "deletes" and e.get("action") in OWN_DELETIONS
        for u in e.get("uids", [])
    }


def _apply(s: _State, e: Entry, name: str, own: set[str]) -> None:
    if e.kind == STS and e.name == name and e.type != "DELETED":
        s.sts = e.sts
    elif e.kind == PDB:
        if e.type == "DELETED":
            s.budgets.pop(e.name, None)
        else:
            s.budgets[e.name] = e
    elif e.kind == STEP and e.type == "deletes" and e.get("action") in EVICTIONS:
        s.evicted |= set(e.get("uids", []))
        s.drained |= {k for k in (ordinal_of(str(p), name) for p in e.get("pods", [])) if k is not None}
    elif e.kind == STEP and e.type in ("begin", "end"):
        action = e.get("action")
        k = ordinal_of(str(e.get("detail")), name)
        if action in EVICTIONS:
            s.draining = e.type == "begin"
            s.eviction = str(action)
        elif action == "make_unready" and e.type == "begin" and k in s.pods:
            s.held.add(s.pods[k].uid)
        elif action == "make_ready" and e.type == "begin" and k in s.pods:
            s.held.discard(s.pods[k].uid)
    elif e.kind == POD:
        k = ordinal_of(e.name, name)
        if k is None:
            return
        if e.type != "DELETED" and e.pod.ready and not e.pod.deleting:
            s.seen.add(k)  # an ordinal counts once it has been up: a scale-up's new pods are not "down"
        if e.type == "DELETED":
            s.evicted.discard(e.uid)
            if k in s.pods and s.pods[k].uid == e.uid:
                del s.pods[k]
            if e.uid in own:
                s.excluded[k] = e.uid
            return
        s.pods[k] = e
        if e.uid in own and e.pod.deleting:
            s.excluded[k] = e.uid
        elif k in s.excluded and e.uid != s.excluded[k] and s.sts is not None and _available(e, s.sts, e.t):
            del s.excluded[k]  # the replacement of a pod the test deleted is up: judged again from here


def _window(s: _State, t: float) -> tuple[str, int, bool] | None:
    """What is being judged now, its floor, and whether minReadySeconds counts; None between
    updates and drains."""
    assert s.sts is not None
    replicas = _judged_replicas(s)
    rolling = replicas - _max_unavailable(s.sts)
    if s.draining or s.evicted or any(not _up(s, k, t, True) for k in s.drained):
        budget = _budget(s)
        if budget is not None:
            pdb, floor = budget
            # The disruption controller counts a pod healthy once Ready (countHealthyPods), not after minReadySeconds.
            return f"{s.eviction} (PodDisruptionBudget {pdb} allows {s.sts.replicas - floor} down)", floor, False
        return s.eviction, rolling, True
    s.drained.clear()  # the drain is over: its ordinals are back
    if s.sts.strategy == "RollingUpdate" and s.sts.rolling_out and not _partition_done(s, t):
        return "the rolling update", rolling, True
    return None


def _judged_replicas(s: _State) -> int:
    """The replicas the floor is taken from: ordinals the spec asks for that have had a Ready pod (a
    scale-up's ordinals not up yet are not down)."""
    assert s.sts is not None
    return sum(1 for k in s.sts.ordinals if k in s.seen)


def _partition_done(s: _State, t: float) -> bool:
    """A partitioned rollout is done (the controller keeps currentRevision until all are updated) once
    every ordinal at or above the partition runs the update revision and is available."""
    assert s.sts is not None
    split = s.sts.ordinals_start + s.sts.partition
    if s.sts.partition <= 0:
        return False
    return all(
        (p := s.pods.get(k)) is not None and p.pod.revision == s.sts.update_revision and _available(p, s.sts, t)
        for k in s.sts.ordinals
        if k >= split
    )


def _up(s: _State, k: int, t: float, min_ready: bool) -> bool:
    pod = s.pods.get(k)
    assert s.sts is not None
    return pod is not None and _available(pod, s.sts, t, min_ready)


def _max_unavailable(sts: StsData) -> int:
    value = sts.max_unavailable
    if isinstance(value, str) and value.endswith("%"):
        return max(1, math.floor(sts.replicas * int(value[:-1]) / 100))
    return max(1, int(value))


def _budget(s: _State) -> tuple[str, int] | None:
    """The PodDisruptionBudget that selects the StatefulSet's pods (by their labels), and how many
    must stay available."""
    assert s.sts is not None
    labels = [p.pod.labels for p in s.pods.values()]
    for name, pdb in s.budgets.items():
        if labels and all(_selects(pdb, pod_labels) for pod_labels in labels):
            replicas = s.sts.replicas
            low = pdb.get("min_available")
            if low is not None:
                return name, _scaled(low, replicas, up=True)
            high = pdb.get("max_unavailable")
            if high is not None:
                return name, replicas - _scaled(high, replicas, up=True)
    return None


def _selects(pdb: Entry, labels: Mapping[str, str]) -> bool:
    """A label selector (matchLabels and matchExpressions) against one pod's labels; an empty
    selector selects every pod (policy/v1)."""
    if any(labels.get(k) != v for k, v in (pdb.get("selector") or {}).items()):
        return False
    for expr in pdb.get("expressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        present = key in labels
        if (
            (op == "In" and labels.get(key) not in values)
            or (op == "NotIn" and present and labels.get(key) in values)
            or (op == "Exists" and not present)
            or (op == "DoesNotExist" and present)
        ):
            return False
    return True


def _scaled(value: int | str, total: int, up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        share = total * int(value[:-1]) / 100
        return math.ceil(share) if up else math.floor(share)
    return int(value)


def _count(s: _State, t: float, name: str, min_ready: bool = True) -> tuple[int, list[str]]:
    """Available pods among the ordinals judged (excluded ones count), and the pods down."""
    assert s.sts is not None
    available, down = 0, []
    for k in s.sts.ordinals:
        if k not in s.seen:
            continue
        pod = s.pods.get(k)
        counted = pod is not None and (pod.uid in s.held or _available(pod, s.sts, t, min_ready))
        if k in s.excluded or counted:
            available += 1
        else:
            down.append(pod.name if pod is not None else f"{name}-{k} (missing)")
    return available, down


def _available(pod: Entry, sts: StsData, t: float, min_ready: bool = True) -> bool:
    d = pod.pod
    if not d.ready or d.deleting:
        return False
    if min_ready and sts.min_ready_seconds and d.ready_since is not None:
        return t - d.ready_since >= sts.min_ready_seconds
    return True
