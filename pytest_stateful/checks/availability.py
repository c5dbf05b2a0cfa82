"""availability: during every rolling update and drain, enough pods stay available.

A pod is available when it exists, is not terminating, and has been Ready for minReadySeconds
(the controller's `isRunningAndAvailable`, stateful_set_utils.go). During a rolling update the
StatefulSet promises at most maxUnavailable unavailable replicas (1 unless the
MaxUnavailableStatefulSet field says more; a percentage of replicas rounded down, at least 1:
`getStatefulSetMaxUnavailable`), so at least `replicas - maxUnavailable` stay available. During
`drain_node` the evictions must respect the PodDisruptionBudget that selects the pods (the
eviction subresource refuses what would break it, with 429); without one, the StatefulSet's own
floor is held against the drain, and the diagnosis says that nothing limited the evictions.

Excluded: ordinals whose pod the test itself deleted (delete_pod, delete_pods, force_delete_pod) until their
replacement is available, and pods the test held NotReady (make_unready). The verdict gives the
minimum reached, when, for how long, and which pods were down. Not exercised: no rolling update
and no drain happened.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pytest_stateful.checks.verdict import Subject, Verdict, Violation, incomplete, judged, not_exercised
from pytest_stateful.timeline import PDB, POD, STEP, STS, Entry, StsData, Timeline, ordinal_of

GUARANTEE = "availability"
KINDS = (POD, STS, STEP)
# Test deletions that are the test's own choice; drain_node's evictions are judged, not excluded.
OWN_DELETIONS = ("delete_pod", "delete_pods", "force_delete_pod")


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
    held: set[str] = field(default_factory=set)  # pods held NotReady by make_unready
    sts: StsData | None = None
    budgets: dict[str, Entry] = field(default_factory=dict)
    draining: bool = False


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
        window = _window(s)
        if window is None:
            if open_dip is not None:
                open_dip.end = e.t
                open_dip = None
            continue
        during, floor = window
        judged_any = True
        available, down = _count(s, e.t, name)
        of = s.sts.replicas
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
        return not_exercised(GUARANTEE, "no rolling update and no drain_node: add update_image or drain_node")
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
    if any(d.during.startswith("drain_node") and "PodDisruptionBudget" not in d.during for d in dips):
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
        window = _window(s)
        available, _ = _count(s, e.t, name)
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
    elif e.kind == STEP and e.type in ("begin", "end"):
        action = e.get("action")
        if action == "drain_node":
            s.draining = e.type == "begin"
        elif action == "make_unready" and e.type == "begin":
            s.held.add(str(e.get("detail")))
        elif action == "make_ready" and e.type == "begin":
            s.held.discard(str(e.get("detail")))
    elif e.kind == POD:
        k = ordinal_of(e.name, name)
        if k is None:
            return
        if e.type == "DELETED":
            if k in s.pods and s.pods[k].uid == e.uid:
                del s.pods[k]
            if e.uid in own:
                s.excluded[k] = e.uid
            return
        s.pods[k] = e
        if e.uid in own and e.pod.deleting:
            s.excluded[k] = e.uid


def _window(s: _State) -> tuple[str, int] | None:
    """What is being judged now and its floor, or None between updates and drains."""
    assert s.sts is not None
    replicas = s.sts.replicas
    rolling = replicas - _max_unavailable(s.sts)
    if s.draining:
        budget = _budget(s)
        if budget is not None:
            pdb, floor = budget
            return f"drain_node (PodDisruptionBudget {pdb} allows {replicas - floor} down)", floor
        return "drain_node", rolling
    if s.sts.rolling_out and s.sts.strategy == "RollingUpdate":
        return "the rolling update", rolling
    return None


def _max_unavailable(sts: StsData) -> int:
    value = sts.max_unavailable
    if isinstance(value, str) and value.endswith("%"):
        return max(1, math.floor(sts.replicas * int(value[:-1]) / 100))
    return max(1, int(value))


def _budget(s: _State) -> tuple[str, int] | None:
    """The PodDisruptionBudget that selects the StatefulSet's pods, and how many must stay available."""
    assert s.sts is not None
    for name, pdb in s.budgets.items():
        selector = pdb.get("selector") or {}
        if selector and all(s.sts.selector.get(k) == v for k, v in selector.items()):
            replicas = s.sts.replicas
            low = pdb.get("min_available")
            if low is not None:
                return name, _scaled(low, replicas, up=True)
            high = pdb.get("max_unavailable")
            if high is not None:
                return name, replicas - _scaled(high, replicas, up=True)
    return None


def _scaled(value: int | str, total: int, up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        share = total * int(value[:-1]) / 100
        return math.ceil(share) if up else math.floor(share)
    return int(value)


def _count(s: _State, t: float, name: str) -> tuple[int, list[str]]:
    """Available pods among the ordinals the spec asks for (excluded ones count), and the pods down."""
    assert s.sts is not None
    available, down = 0, []
    for k in s.sts.ordinals:
        pod = s.pods.get(k)
        if pod is not None and k in s.excluded and pod.uid != s.excluded[k] and _available(pod, s.sts, t):
            del s.excluded[k]  # the replacement of a pod the test deleted is up: judged again from here
        if (
            k in s.excluded
            or (pod is not None and pod.name in s.held)
            or (pod is not None and _available(pod, s.sts, t))
        ):
            available += 1
        else:
            down.append(pod.name if pod is not None else f"{name}-{k} (missing)")
    return available, down


def _available(pod: Entry, sts: StsData, t: float) -> bool:
    d = pod.pod
    if not d.ready or d.deleting:
        return False
    if sts.min_ready_seconds and d.ready_since is not None:
        return t - d.ready_since >= sts.min_ready_seconds
    return True
