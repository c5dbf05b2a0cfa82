"""Issue 13: at_most_one over timelines recorded on the local clusters (examples/failures and the
real-node test in tests/cluster/test_node_failure.py, the JSON report's timeline), and mutations."""

from __future__ import annotations

import dataclasses

from recorded import SUBJECT, load, renumbered

from pytest_stateful.checks import run_check
from pytest_stateful.timeline import GAP, NODE, POD, RUNTIME, STEP, Entry, Timeline


def _deleted(timeline: Timeline, name: str = "web-1") -> Entry:
    return next(e for e in timeline.entries if e.kind == POD and e.type == "DELETED" and e.name == name)


def test_a_node_declared_out_of_service_before_the_replacement_passes_with_recovery_times() -> None:
    verdict = run_check("at_most_one", load("node_out_of_service"), SUBJECT)
    assert verdict.status == "passed", verdict.explain()
    assert verdict.summary.startswith("no two incarnations of a pod of web were alive at once (replaced ")
    assert verdict.timings["claims_reattached"] is True
    assert verdict.timings["replaced_after_fail_s"] > verdict.timings["ready_after_out_of_service_s"] > 0
    # Simulated nodes: no runtime to ask.
    assert verdict.fidelity == "api" and verdict.node_source.startswith("not available")


def test_a_force_delete_on_an_unreachable_node_fails_naming_the_replacement_and_the_deletion() -> None:
    verdict = run_check("at_most_one", load("node_force_delete"), SUBJECT)
    assert verdict.status == "failed"
    assert verdict.summary.startswith("web-1 was replaced at ")
    assert "had been force-deleted by the test (force_delete_pod) at " in verdict.summary
    assert "which was unreachable (Ready Unknown) and not out of service" in verdict.summary
    assert "until node node-" in verdict.summary and "came back at" in verdict.summary
    assert "out-of-service=nodeshutdown:NoExecute" in verdict.diagnosis[0]
    assert verdict.violations[0].at is not None and verdict.violations[0].at.type == "ADDED"


def test_the_same_deletion_by_someone_else_is_named_as_unconfirmed() -> None:
    timeline = load("node_force_delete")
    kept = [e for e in timeline.entries if not (e.kind == STEP and e.type == "deletes")]
    verdict = run_check("at_most_one", renumbered(kept), SUBJECT)
    assert verdict.status == "failed"
    assert "deleted without its node's confirmation (grace period 0, by a person, script or operator)" in (
        verdict.summary
    )


def test_a_replacement_created_before_the_out_of_service_taint_fails() -> None:
    # Mutation: the taint comes only after the replacement exists.
    timeline = load("node_out_of_service")
    entries = list(timeline.entries)
    oos = [e for e in entries if e.kind == NODE and e.node.out_of_service]
    later = max(e.t for e in entries) + 1
    moved = [dataclasses.replace(e, t=later + i) for i, e in enumerate(oos)]
    entries = [e for e in entries if e not in oos] + moved
    verdict = run_check("at_most_one", renumbered(entries), SUBJECT)
    assert verdict.status == "failed", verdict.explain()
    assert "and not out of service" in verdict.summary


def test_a_deletion_the_node_confirmed_passes() -> None:
    # Mutation: the node never failed (every node entry Ready, no fail_node): the kubelet confirmed.
    timeline = load("node_force_delete")
    entries = [
        dataclasses.replace(e, data={**e.data, "ready": "True", "taints": []}) if e.kind == NODE else e
        for e in timeline.entries
        if not (e.kind == STEP and e.get("action") in ("fail_node", "restore_node"))
    ]
    verdict = run_check("at_most_one", renumbered(entries), SUBJECT)
    assert verdict.status == "not exercised", verdict.explain()


def test_a_node_failed_by_the_test_is_not_trusted_before_the_control_plane_notices() -> None:
    # Mutation: the force delete happens while the node still shows Ready (its heartbeats stopped, not
    # yet marked Unknown): the test failed it, so nobody confirmed the deletion.
    timeline = load("node_force_delete")
    deleted = _deleted(timeline)
    entries = [
        dataclasses.replace(e, data={**e.data, "ready": "True", "taints": []})
        if e.kind == NODE and e.seq < deleted.seq
        else e
        for e in timeline.entries
    ]
    verdict = run_check("at_most_one", renumbered(entries), SUBJECT)
    assert verdict.status == "failed"
    assert "failed by the test (its heartbeats had stopped; not yet marked Unknown)" in verdict.summary


def test_a_node_seen_ready_just_after_the_deletion_counts_as_confirming_it() -> None:
    # The node's Ready and the pod's deletion arrive on separate watches: within READY_SLACK they may
    # be received out of order. Mutation: no test-failed node, and Ready again 1 s after the deletion.
    timeline = load("node_force_delete")
    deleted = _deleted(timeline)
    node = deleted.pod.node
    back = next(e for e in timeline.entries if e.kind == NODE and e.name == node and e.seq > deleted.seq)
    entries = [
        e
        for e in timeline.entries
        if not (e.kind == STEP and e.type in ("fails", "restores")) and not (e.kind == NODE and e.seq > deleted.seq)
    ]
    ready = dataclasses.replace(back, t=deleted.t + 1.0, data={**back.data, "ready": "True", "taints": []})
    entries.insert(entries.index(deleted) + 1, ready)
    verdict = run_check("at_most_one", renumbered(entries), SUBJECT)
    assert verdict.status == "passed", verdict.explain()


def test_the_real_node_runtime_shows_the_old_container_beside_the_replacement() -> None:
    verdict = run_check("at_most_one", load("real_node_force_delete"), SUBJECT)
    assert verdict.status == "failed"
    assert verdict.fidelity == "node" and verdict.node == "failed"
    node = [v.message for v in verdict.violations if v.message.startswith("node level:")]
    assert node and "the container runtime of node localhost still ran nginx (pid " in node[0]
    assert "while its replacement (uid " in node[0] and "was Running on node kwok-mixed-" in node[0]
    assert verdict.node_source == "container runtime of the failed node (localhost)"


def test_the_runtime_saying_nothing_runs_passes_node_level() -> None:
    # Mutation: the runtime found nothing of the old pod (it really stopped), and no force delete
    # failed at API level (the node was declared out of service first).
    timeline = load("real_node_force_delete")
    deleted = _deleted(timeline, "web-0")
    entries: list[Entry] = []
    for e in timeline.entries:
        if e.kind == RUNTIME:
            e = dataclasses.replace(e, data={**e.data, "running": []})
        entries.append(e)
    taint = next(e for e in entries if e.kind == NODE and e.seq < deleted.seq and e.name == "localhost")
    oos = dataclasses.replace(
        taint, t=deleted.t - 0.01, data={**taint.data, "taints": ["node.kubernetes.io/out-of-service:NoExecute"]}
    )
    entries.insert(entries.index(deleted), oos)
    verdict = run_check("at_most_one", renumbered(entries), SUBJECT)
    assert verdict.status == "passed", verdict.explain()
    assert verdict.fidelity == "node" and verdict.node == "passed"


def test_lost_node_events_make_it_incomplete() -> None:
    timeline = load("node_out_of_service")
    gap = Entry(0, 0.0, GAP, "gap", NODE, data={"reason": "not recorded: nodes is forbidden"})
    verdict = run_check("at_most_one", renumbered([gap, *timeline.entries]), SUBJECT)
    assert verdict.status == "incomplete"
    assert "Node events were lost (not recorded: nodes is forbidden)" in verdict.summary
