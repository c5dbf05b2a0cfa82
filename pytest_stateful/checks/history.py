"""A StatefulSet's history in resourceVersion order, and how a controller write is judged against it.

Order. Pods and the StatefulSet come through separate watches, so their receive
order can disagree with the order the API server committed them in. Every entry
carries its resourceVersion (one etcd revision for all kinds), so the history
orders the StatefulSet's and its pods' entries by it; records without one keep
the receive order.

Staleness. The StatefulSet controller acts on informer caches that may lag
behind what the API server has committed, and in Kubernetes 1.34 it does not
read its own writes (upstream: stateful_set_control.go, all reads through
listers; read-your-own-writes only arrives in 1.36). So a write is legal when
its precondition held in *some* recorded state during the LAG seconds before
it, not only in the very last state: judging the last state alone fails legal
runs. The StatefulSet's status for the revisions a sync used is written after
that sync's pod writes (updateStatefulSetStatus), so the first StatefulSet
entry after a write also counts as a state it may have seen. What a check
cannot tell apart from a stale cache (a precondition broken less than LAG
seconds before the write) it does not fail: that is documented in
docs/guarantees.md.

Availability: Ready for minReadySeconds (podutil.IsPodAvailable), judged with
SLACK for the 1-second resolution of the Ready condition's lastTransitionTime.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from pytest_stateful.timeline import POD, STEP, STS, Entry, StsData, Timeline, ordinal_of

# Seconds the controller's cache may lag behind the record (see the module doc).
LAG = 0.5
# Seconds of tolerance on minReadySeconds for the clocks of the controller and the recorder. (The
# Ready condition's lastTransitionTime has 1 s resolution, but the controller compares that same
# truncated time, so truncation needs no allowance.)
SLACK = 0.25
# Steps in which the test deletes pods itself; only for records made before deletions were recorded by UID.
DELETING_STEPS = ("delete_pod", "delete_pods", "force_delete_pod", "drain_node")


@dataclass
class World:
    """The StatefulSet and its live pods in one state of the history."""

    sts_entry: Entry | None = None
    pods: dict[int, Entry] = field(default_factory=dict)
    # The history index of the entry that ended this state.
    index: int = 0
    # Until when this state held (the time of the entry that ended it): availability grows with time.
    until: float = 0.0
    ready_since: Callable[[Entry], float | None] = lambda e: None

    @property
    def sts(self) -> StsData | None:
        return self.sts_entry.sts if self.sts_entry is not None else None

    @property
    def ordinals(self) -> range:
        """The ordinals the spec asks for (its replicas), empty before the StatefulSet is seen."""
        return self.sts.ordinals if self.sts is not None else range(0)

    def condemned(self) -> list[int]:
        """Live pods outside the spec's ordinals (scaled down, or below a moved start), highest first."""
        wanted = self.ordinals
        return sorted((o for o in self.pods if o not in wanted), reverse=True)

    def available(self, ordinal: int) -> bool:
        pod = self.pods.get(ordinal)
        if pod is None or not pod.pod.ready or pod.pod.deleting:
            return False
        wait = self.sts.min_ready_seconds if self.sts is not None else 0
        if wait <= 0:
            return True
        since = self.ready_since(pod)
        return since is not None and since + wait <= self.until + SLACK

    def health(self, ordinal: int) -> str:
        """'' when the pod is available, else what it is: missing, terminating, not Ready, ..."""
        pod = self.pods.get(ordinal)
        if pod is None:
            return "missing"
        if pod.pod.deleting:
            return "terminating"
        if not pod.pod.ready:
            return "not Ready"
        if not self.available(ordinal):
            return f"Ready for less than minReadySeconds ({self.sts.min_ready_seconds if self.sts else 0} s)"
        return ""

    def first_unhealthy(self, ordinals: range | list[int]) -> tuple[int, str] | None:
        for o in ordinals:
            why = self.health(o)
            if why:
                return o, why
        return None


# A precondition: None when it holds in that world, else why not (a phrase for the violation).
Precondition = Callable[[World], str | None]


def condemned(ordinal: int, uid: str) -> Precondition:
    """Pod object `uid` of `ordinal` is alive and outside the spec's ordinals: being scaled away."""

    def pre(w: World) -> str | None:
        alive = w.pods.get(ordinal)
        if w.sts is not None and ordinal not in w.sts.ordinals and alive is not None and alive.uid == uid:
            return None
        return "kept by the spec"

    return pre


class History:
    """The StatefulSet `name` and its pods, in resourceVersion order, with the test's own deletions."""

    def __init__(self, timeline: Timeline, name: str) -> None:
        self.name = name
        relevant = [
            e
            for e in timeline.entries
            if (e.kind == STS and e.name == name) or (e.kind == POD and ordinal_of(e.name, name) is not None)
        ]
        if relevant and all(e.rv.isdigit() for e in relevant):
            relevant.sort(key=lambda e: (int(e.rv), e.seq))
        self.events = relevant
        # Receive times made monotone along the history, so "LAG seconds before" is well defined.
        self.times: list[float] = []
        latest = 0.0
        for e in relevant:
            latest = max(latest, e.t)
            self.times.append(latest)
        self.test_deleted = {
            u for e in timeline.entries if e.kind == STEP and e.type == "deletes" for u in e.get("uids", [])
        }
        self._by_uid_record = any(e.kind == STEP and e.type == "deletes" for e in timeline.entries)
        self._windows = _step_windows(timeline) if not self._by_uid_record else []
        self._first_ready: dict[str, float] = {}
        for e in relevant:
            if e.kind == POD and e.pod.ready and e.uid not in self._first_ready:
                self._first_ready[e.uid] = e.t
        # For undoing: the entry each event replaced (None: nothing before it).
        self._before: list[Entry | None] = []
        latest_of: dict[tuple[str, int | None], Entry] = {}
        for e in relevant:
            key = (e.kind, ordinal_of(e.name, name) if e.kind == POD else -1)
            self._before.append(latest_of.get(key))
            latest_of[key] = e

    def ready_since(self, pod: Entry) -> float | None:
        """When the pod object became Ready: its Ready condition's lastTransitionTime; for records
        without it, a second before the record first saw it Ready (that time is truncated to seconds)."""
        if pod.pod.ready_since is not None:
            return pod.pod.ready_since
        seen = self._first_ready.get(pod.uid)
        return None if seen is None else seen - 1.0

    def deleted_by_test(self, e: Entry) -> bool:
        if self._by_uid_record:
            return e.uid in self.test_deleted
        return any(lo <= e.t <= hi for lo, hi in self._windows)

    def walk(self) -> Iterator[tuple[int, Entry, World]]:
        """(index, entry, the world just before the entry) for every entry of the history, in order.

        The world is one object updated in place: copy what must outlive the step.
        """
        world = World(ready_since=self.ready_since)
        for index, e in enumerate(self.events):
            world.until, world.index = self.times[index], index
            yield index, e, world
            _apply(world, e, self.name)

    def legal(self, index: int, world: World, pre: Precondition, since: int = 0) -> str | None:
        """None when `pre` held in some state the controller may have acted on for the write at `index`;
        else why not, as of the last state. See `witness`."""
        return self.witness(index, world, pre, since)[0]

    def witness(self, index: int, world: World, pre: Precondition, since: int = 0) -> tuple[str | None, int]:
        """(None, the earliest state in which `pre` held) for a legal write, else (why not, `since`).

        The states looked at: those of the LAG seconds before the write that are not older than
        `since` (the witness of the previous write judged the same way: the controller's cache only
        moves forward, so no write is justified by a state older than one an earlier write was), and
        the StatefulSet's next entry with the pods as they were (the sync's own status write).
        A state is numbered by the history index of the entry that ended it.
        """
        why = pre(world)
        earliest = index if why is None else -1
        past = World(world.sts_entry, dict(world.pods), index, world.until, self.ready_since)
        horizon = self.times[index] - LAG
        i = index - 1
        while i >= max(since, 0) and self.times[i] >= horizon:
            _undo(past, self.events[i], self._before[i], self.name)
            past.until, past.index = self.times[i], i
            if pre(past) is None:
                earliest = i
            i -= 1
        if earliest >= 0:
            return None, earliest
        # The sync's own status write (revisions it used) comes after its pod writes.
        after = next((e for e in self.events[index + 1 :] if e.kind == STS), None)
        if after is not None and pre(World(after, world.pods, index, world.until, self.ready_since)) is None:
            return None, index
        return why, since

    def creations(self) -> Iterator[tuple[int, Entry, World]]:
        """Pod objects as they appear (a new UID), with the world before."""
        seen: set[str] = set()
        for index, e, world in self.walk():
            if e.kind == POD and e.uid not in seen:
                seen.add(e.uid)
                if e.type != "DELETED":
                    yield index, e, world

    def deletions(self) -> Iterator[tuple[int, Entry, World]]:
        """The first sign of each pod object's deletion (deletionTimestamp set, or gone), with the world before.

        Deletions the test asked for, of pods that had failed or succeeded (any controller deletes
        those), and objects only found gone after a gap in the record are left out: what remains
        is what the StatefulSet controller decided.
        """
        started: set[str] = set()
        for index, e, world in self.walk():
            if e.kind != POD or e.uid in started or not (e.pod.deleting or e.type == "DELETED"):
                continue
            started.add(e.uid)
            if self.deleted_by_test(e) or e.get("gone_in_gap") or e.pod.phase in ("Failed", "Succeeded"):
                continue
            yield index, e, world


def _apply(world: World, e: Entry, name: str) -> None:
    if e.kind == STS:
        world.sts_entry = None if e.type == "DELETED" else e
        return
    ordinal = ordinal_of(e.name, name)
    assert ordinal is not None
    if e.type == "DELETED":
        current = world.pods.get(ordinal)
        if current is not None and current.uid == e.uid:
            del world.pods[ordinal]
    else:
        world.pods[ordinal] = e


def _undo(world: World, e: Entry, before: Entry | None, name: str) -> None:
    if e.kind == STS:
        world.sts_entry = None if before is None or before.type == "DELETED" else before
        return
    ordinal = ordinal_of(e.name, name)
    assert ordinal is not None
    if before is None or before.type == "DELETED":
        world.pods.pop(ordinal, None)
    else:
        world.pods[ordinal] = before


def _step_windows(timeline: Timeline) -> list[tuple[float, float]]:
    windows = []
    begun: dict[str, float] = {}
    for e in timeline.of(STEP):
        if e.name not in DELETING_STEPS:
            continue
        if e.type == "begin":
            begun[e.name] = e.t
        elif e.type == "end" and e.name in begun:
            windows.append((begun.pop(e.name), e.t))
    windows += [(t, float("inf")) for t in begun.values()]
    return windows
