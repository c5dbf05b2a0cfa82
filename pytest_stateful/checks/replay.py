"""Replay a timeline in order, keeping the state the cluster was in before each entry."""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field

from pytest_stateful.timeline import POD, STEP, STS, Entry, Timeline, ordinal_of


@dataclass
class State:
    """What was true just before the entry being looked at."""

    sts: Entry | None = None
    pods: dict[int, Entry] = field(default_factory=dict)  # live pod per ordinal, latest entry
    steps: dict[str, Entry] = field(default_factory=dict)  # steps begun and not yet ended
    _low: int = 0
    _low_start: int = -1

    def lowest_not_ready(self, start: int) -> int:
        """The lowest ordinal >= start that is missing, not Ready or terminating.

        Cached and walked forward, so a whole rollout costs linear time, not quadratic.
        """
        low = max(start, self._low if self._low_start == start else start)
        while self.ready(low):
            low += 1
        self._low, self._low_start = low, start
        return low

    def _forget_low(self, ordinal: int) -> None:
        if ordinal < self._low:
            self._low = ordinal

    def ready(self, ordinal: int) -> bool:
        pod = self.pods.get(ordinal)
        return pod is not None and bool(pod.get("ready")) and not pod.get("deleting")

    def ordinals(self) -> range:
        """The ordinals the StatefulSet's spec asks for right now."""
        if self.sts is None:
            return range(0)
        start = int(self.sts.get("ordinals_start", 0))
        return range(start, start + int(self.sts.get("replicas", 0)))


def replay(timeline: Timeline, sts_name: str) -> Iterator[tuple[Entry, State]]:
    """Yield (entry, state before it) for each entry about this StatefulSet, its pods and steps.

    Pods and the StatefulSet come through different watches, so their receive order
    can disagree with the order the API server committed them in. For an entry with
    a resourceVersion, `state.sts` is the StatefulSet as of that resourceVersion (the
    API server's etcd revision orders all kinds); otherwise the last one received.
    """
    by_rv = sorted(
        (int(e.rv), e.seq, e) for e in timeline.entries if e.kind == STS and e.name == sts_name and e.rv.isdigit()
    )
    rvs = [rv for rv, _, _ in by_rv]
    state = State()
    received: Entry | None = None
    for e in timeline.entries:
        if e.kind == STS and e.name != sts_name:
            continue
        ordinal = ordinal_of(e.name, sts_name) if e.kind == POD else None
        if e.kind == POD and ordinal is None:
            continue
        if e.rv.isdigit() and rvs:
            # An entry is not part of the state before itself: strictly lower for the StatefulSet's own.
            find = bisect.bisect_left if e.kind == STS else bisect.bisect_right
            at = find(rvs, int(e.rv)) - 1
            known = by_rv[at][2] if at >= 0 else None
            state.sts = None if known is None or known.type == "DELETED" else known
        else:
            state.sts = received
        yield e, state
        if e.kind == STS:
            received = None if e.type == "DELETED" else e
        elif e.kind == POD and ordinal is not None:
            if e.type == "DELETED":
                if state.pods.get(ordinal) is not None and state.pods[ordinal].uid == e.uid:
                    del state.pods[ordinal]
            else:
                state.pods[ordinal] = e
            if not state.ready(ordinal):
                state._forget_low(ordinal)
        elif e.kind == STEP:
            if e.type == "begin":
                state.steps[e.name] = e
            else:
                state.steps.pop(e.name, None)


def is_creation(e: Entry, state: State, sts_name: str) -> bool:
    """A pod entry that starts a new pod object (a new UID for that ordinal)."""
    if e.kind != POD or e.type == "DELETED":
        return False
    ordinal = ordinal_of(e.name, sts_name)
    current = state.pods.get(ordinal) if ordinal is not None else None
    return current is None or current.uid != e.uid
