"""Issue 13: rollout_recovers over timelines recorded on the local cluster from examples/failures
(`pytest examples/failures --stateful-report-dir`, the JSON's timeline)."""

from __future__ import annotations

import dataclasses

from recorded import SUBJECT, load, renumbered

from pytest_stateful.checks import run_check
from pytest_stateful.timeline import POD, STEP, STS, Entry


def test_a_bad_canary_on_parallel_with_room_in_the_budget_recovers() -> None:
    verdict = run_check("rollout_recovers", load("canary_recovers"), SUBJECT)
    assert verdict.status == "passed", verdict.explain()
    assert verdict.summary.startswith("every pod of web reached revision web-")
    assert verdict.timings["recovery_s"] > 0


def test_a_bad_rollout_on_ordered_ready_fails_naming_the_stuck_pod_and_the_manual_step() -> None:
    verdict = run_check("rollout_recovers", load("stuck_rollout"), SUBJECT)
    assert verdict.status == "failed"
    assert verdict.summary.startswith("the rollout of web did not recover: web-2 is on revision web-")
    assert "NotReady (Pending)" in verdict.summary
    assert verdict.diagnosis[0].startswith("podManagementPolicy OrderedReady: the controller waits for web-2")
    assert verdict.diagnosis[1].startswith("manual step that unsticks it: kubectl delete pod web-2 -n recorded")


def test_a_pod_still_on_the_broken_revision_never_passes() -> None:
    # Mutation of the recovered run: the last state of web-2 goes back to the broken revision.
    timeline = load("canary_recovers")
    bad = next(e for e in timeline.entries if e.kind == POD and e.name == "web-2" and not e.pod.ready)
    last = next(e for e in reversed(timeline.entries) if e.kind == POD and e.name == "web-2")
    stale = dataclasses.replace(last, t=last.t + 0.1, data={**last.data, "revision": bad.pod.revision})
    verdict = run_check("rollout_recovers", renumbered([*timeline.entries, stale]), SUBJECT)
    assert verdict.status == "failed", verdict.explain()


def test_pods_below_the_partition_may_stay_on_the_current_revision() -> None:
    # The same recovered run, ending with partition 2: web-0 and web-1 legitimately keep the old revision.
    timeline = load("canary_recovers")
    entries = list(timeline.entries)
    sts = next(e for e in reversed(entries) if e.kind == STS)
    old = next(e for e in entries if e.kind == POD and e.name == "web-0" and e.pod.ready).pod.revision
    held = [
        dataclasses.replace(e, t=sts.t + 0.1, data={**e.data, "revision": old})
        for e in entries
        if e.kind == POD
        and e.name in ("web-0", "web-1")
        and e is max((x for x in entries if x.kind == POD and x.name == e.name), key=lambda x: x.seq)
    ]
    partitioned = dataclasses.replace(sts, t=sts.t + 0.2, data={**sts.data, "partition": 2})
    verdict = run_check("rollout_recovers", renumbered([*entries, *held, partitioned]), SUBJECT)
    assert verdict.status == "passed", verdict.explain()


def test_a_test_that_deletes_the_stuck_pod_itself_has_not_shown_recovery() -> None:
    timeline = load("stuck_rollout")
    bad = next(e for e in timeline.entries if e.kind == STEP and e.get("action") == "bad_rollout")
    deletes = Entry(0, bad.t + 5, STEP, "deletes", "delete_pod", data={"action": "delete_pod", "pods": ["web-2"]})
    verdict = run_check("rollout_recovers", renumbered([*timeline.entries, deletes]), SUBJECT)
    assert verdict.status == "not exercised"
    assert "the test deleted web-2 after the bad rollout" in verdict.summary


def test_a_record_that_ends_before_the_controller_observed_the_fix_cannot_pass() -> None:
    entries = [e for e in load("stuck_rollout").entries if e.seq <= 69]  # the controller silent from here
    sts = next(e for e in reversed(entries) if e.kind == STS)
    t = entries[-1].t
    extra = [
        dataclasses.replace(sts, t=t + 0.01, data={**sts.data, "generation": 2}),
        Entry(0, t + 2, STEP, "begin", "update_image", data={"action": "update_image", "detail": "nginx=nginx:1.10"}),
        dataclasses.replace(sts, t=t + 2.01, data={**sts.data, "generation": 3}),
    ]
    verdict = run_check("rollout_recovers", renumbered([*entries, *extra]), SUBJECT)
    assert verdict.status == "incomplete", verdict.explain()


def test_scaling_after_the_bad_rollout_is_a_manual_unstick_not_recovery() -> None:
    # Scaling below the broken ordinal makes the controller delete it (processCondemned).
    timeline = load("stuck_rollout")
    t = timeline.entries[-1].t
    scale = Entry(0, t + 0.1, STEP, "begin", "scale", data={"action": "scale", "detail": "to 2"})
    verdict = run_check("rollout_recovers", renumbered([*timeline.entries, scale]), SUBJECT)
    assert verdict.status == "not exercised"
    assert verdict.summary == "the test scaled web after the bad rollout: recovery on its own was not shown"
