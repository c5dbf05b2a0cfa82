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
    pods = _live(entries)  # web-0, web-1, web-2, all Ready
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


def _live(entries: list[Entry]) -> list[Entry]:
    live: dict[str, Entry] = {}
    for e in entries:
        if e.kind == POD and e.type == "DELETED":
            live.pop(e.name, None)
        elif e.kind == POD:
            live[e.name] = e
    return sorted(live.values(), key=lambda e: e.name)


def test_a_drain_that_does_not_settle_is_judged_until_its_evicted_pods_are_back() -> None:
    # drain_node(settle=False): the step ends before the watch shows the evictions.
    entries = list(load("good").entries)
    pods, t = _live(entries), entries[-1].t
    begin = Entry(0, t + 0.1, STEP, "begin", "drain_node", data={"action": "drain_node", "detail": "node-1"})
    note = Entry(
        0, t + 0.1, STEP, "deletes", "drain_node",
        data={"action": "drain_node", "pods": [p.name for p in pods], "uids": [p.uid for p in pods]},
    )  # fmt: skip
    end = Entry(0, t + 0.15, STEP, "end", "drain_node", data={"action": "drain_node", "ok": True})
    gone = [dataclasses.replace(p, t=t + 0.2, data={**p.data, "deleting": True}) for p in pods]
    verdict = run_check("availability", renumbered([*entries, begin, note, end, *gone]), SUBJECT)
    assert verdict.status == "failed", verdict.explain()
    assert verdict.summary.startswith("during drain_node, only 0 of 3 pods of web were available")


def test_a_budget_selecting_the_pods_by_a_template_label_is_the_one_judged() -> None:
    entries = list(load("good").entries)
    t = entries[-1].t
    pods = [dataclasses.replace(p, data={**p.data, "labels": {**p.pod.labels, "tier": "web"}}) for p in _live(entries)]
    budget = Entry(0, t, PDB, "ADDED", "web", data={"selector": {"app": "nginx", "tier": "web"}, "max_unavailable": 2})
    begin = Entry(0, t + 0.1, STEP, "begin", "drain_node", data={"action": "drain_node", "detail": "node-1"})
    gone = [dataclasses.replace(p, t=t + 0.2, data={**p.data, "deleting": True}) for p in pods[:2]]
    end = Entry(0, t + 0.5, STEP, "end", "drain_node", data={"action": "drain_node", "ok": True})
    verdict = run_check("availability", renumbered([*entries, *pods, budget, begin, *gone, end]), SUBJECT)
    assert verdict.passed, verdict.explain()


def test_new_ordinals_of_a_scale_up_after_a_partitioned_rollout_are_not_down() -> None:
    # A partitioned rollout keeps currentRevision (completeRollingUpdate waits for every replica); a
    # scale-up after it creates pods that were never up: neither is a dip.
    entries = list(load("good").entries)
    sts = next(e for e in reversed(entries) if e.kind == STS)
    web2 = next(e for e in reversed(entries) if e.kind == POD and e.name == "web-2")
    t, new = entries[-1].t, "web-7777777777"

    def at(dt: float, **kw: object) -> Entry:
        return dataclasses.replace(sts, t=t + dt, data={**sts.data, **kw})

    def pod(dt: float, name: str, type_: str, uid: str, **kw: object) -> Entry:
        return Entry(0, t + dt, POD, type_, name, uid, data={**web2.data, **kw})

    extra = [
        at(0.02, partition=2, update_revision=new),
        dataclasses.replace(web2, t=t + 0.03, data={**web2.data, "deleting": True}),
        dataclasses.replace(web2, t=t + 0.2, type="DELETED", data={**web2.data, "deleting": True}),
        pod(0.21, "web-2", "ADDED", "n2", ready=False, revision=new),
        pod(0.5, "web-2", "MODIFIED", "n2", ready=True, ready_since=t + 0.5, revision=new),
        at(1.01, partition=2, update_revision=new, replicas=5),
        pod(1.02, "web-3", "ADDED", "n3", ready=False, revision=new),
        pod(1.02, "web-4", "ADDED", "n4", ready=False, revision=new),
        pod(1.3, "web-3", "MODIFIED", "n3", ready=True, ready_since=t + 1.3, revision=new),
        pod(1.3, "web-4", "MODIFIED", "n4", ready=True, ready_since=t + 1.3, revision=new),
    ]
    verdict = run_check("availability", renumbered([*entries, *extra]), SUBJECT)
    assert verdict.passed, verdict.explain()
