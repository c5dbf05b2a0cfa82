"""What a failed or stuck step shows: the reason a pod is down does not scroll away."""

from __future__ import annotations

from types import SimpleNamespace

from pytest_stateful.timeline import EVENT, POD, Entry, Timeline
from pytest_stateful.workload.view import WorkloadView


def _recorder(entries: list[Entry]) -> SimpleNamespace:
    timeline = Timeline(entries)
    current = {(e.kind, e.name): e for e in entries if e.kind == POD}
    return SimpleNamespace(
        timeline=timeline,
        current=current,
        snapshot=lambda kind: [e for (k, _), e in sorted(current.items()) if k == kind],
    )


def test_the_last_warning_of_a_pod_that_is_not_ready_stays_among_the_recent_events() -> None:
    entries = [
        Entry(0, 0.1, POD, "ADDED", "web-0", "u0", data={"phase": "Running", "ready": False, "owner": "web"}),
        Entry(1, 0.2, EVENT, "ADDED", "e0", data={"type": "Warning", "object": "Pod/web-0", "reason": "Unhealthy"}),
    ]
    entries += [
        Entry(2 + i, 0.3 + i, EVENT, "ADDED", f"e{i + 1}", data={"type": "Warning", "object": "Pod/web-1"})
        for i in range(20)
    ]
    view = WorkloadView(_recorder(entries), "web")  # type: ignore[arg-type]
    shown = view.recent_events(15)
    assert [e.name for e in shown][:2] == ["e0", "e6"] and len(shown) == 16
    # A Ready pod's old warnings stay out.
    entries[0] = Entry(0, 0.1, POD, "ADDED", "web-0", "u0", data={"phase": "Running", "ready": True, "owner": "web"})
    assert len(WorkloadView(_recorder(entries), "web").recent_events(15)) == 15  # type: ignore[arg-type]
