"""Issue 13: availability over a recorded rolling update, and what makes it fail."""

from __future__ import annotations

import dataclasses

from recorded import SUBJECT, load, renumbered

from pytest_stateful.checks import run_check
from pytest_stateful.timeline import PDB, POD, STEP, STS, Entry


def test_a_rolling_update_that_replaces_one_pod_at_a_time_keeps_availability() -> None:
    verdict = run_check("availability", load("good"), SUBJECT)
    assert verdict.status == "passed", verdict.explain()
    assert verdict.timings["min_available"] == 2  # 3 replicas, maxUnavailable 1


def _rolling_window(entries: list[Entry]) -> tuple[int, Entry]:
    """The index of the first StatefulSet entry that is rolling out, and a Ready pod at that moment."""
    i = next(i for i, e in enumerate(entries) if e.kind == STS and e.sts.rolling_out)
    pod = next(e for e in reversed(entries[:i]) if e.kind == POD and e.name == "web-0" and e.pod.ready)
    return i, pod


def test_a_second_pod_down_during_the_rolling_update_fails_naming_the_minimum_and_the_pods() -> None:
    entries = list(load("good").entries)
    i, web0 = _rolling_window(entries)
    down = dataclasses.replace(web0, t=entries[i].t, data={**web0.data, "ready": False})
    back = dataclasses.replace(web0, t=entries[i].t + 1.5, data={**web0.data, "ready": True})
    # web-0 goes NotReady for 1.5 s while the controller takes web-2 down for the update.
    j = next(k for k in range(i, len(entries)) if entries[k].kind == POD and entries[k].pod.deleting)
    entries.insert(j + 1, down)
    later = next(k for k in range(j + 2, len(entries)) if entries[k].t >= back.t)
    entries.insert(later, back)
    verdict = run_check("availability", renumbered(entries), SUBJECT)
    assert verdict.status == "failed", verdict.explain()
    assert verdict.summary.startswith("during the rolling update, only 1 of 3 pods of web were available (below 2)")
    assert "down: web-0, web-2" in verdict.summary


def test_evictions_during_a_drain_are_judged_against_the_pod_disruption_budget() -> None:
    entries = list(load("good").entries)
    sts = next(e for e in entries if e.kind == STS)
    live: dict[str, Entry] = {}
    for e in entries:
        if e.kind == POD and e.type == "DELETED":
            live.pop(e.name, None)
        elif e.kind == POD:
            live[e.name] = e
    pods = sorted(live.values(), key=lambda e: e.name)  # web-0, web-1, web-2, all Ready
    t = entries[-1].t
    budget = Entry(0, t, PDB, "ADDED", "web", data={"selector": dict(sts.sts.selector), "max_unavailable": 2})
    begin = Entry(0, t + 0.1, STEP, "begin", "drain_node", data={"action": "drain_node", "detail": "node-1"})
    gone = [dataclasses.replace(p, t=t + 0.2, data={**p.data, "deleting": True}) for p in pods[:2]]
    end = Entry(0, t + 0.5, STEP, "end", "drain_node", data={"action": "drain_node", "ok": True})
    ok = run_check("availability", renumbered([*entries, budget, begin, *gone, end]), SUBJECT)
    assert ok.passed, ok.explain()  # the budget allows two down: one of three left is enough
    strict = dataclasses.replace(budget, data={**budget.data, "max_unavailable": 1})
    broken = run_check("availability", renumbered([*entries, strict, begin, *gone, end]), SUBJECT)
    assert broken.status == "failed"
    assert broken.summary.startswith("during drain_node (PodDisruptionBudget web allows 1 down), only 1 of ")
    without = run_check("availability", renumbered([*entries, begin, *gone, end]), SUBJECT)
    assert without.status == "failed"
    assert "no PodDisruptionBudget selects the pods of web" in without.diagnosis[0]
