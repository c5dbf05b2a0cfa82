"""Issue 13: at_most_one over timelines recorded on the local clusters (examples/failures and the
real-node test in tests/cluster/test_node_failure.py, the JSON report's timeline), and mutations.

Node and Pod entries are ordered by resourceVersion: a mutation that moves an entry gives it a
resourceVersion at its new place (`rv_before`/`rv_after`)."""

from __future__ import annotations

import dataclasses

from recorded import SUBJECT, load, renumbered

from pytest_stateful.checks import Subject, run_check
from pytest_stateful.timeline import GAP, NODE, POD, RUNTIME, STEP, Entry, Timeline


def _deleted(timeline: Timeline, name: str = "web-1") -> Entry:
    return next(e for e in timeline.entries if e.kind == POD and e.type == "DELETED" and e.name == name)


def _rv(e: Entry, delta: int) -> str:
    return str(int(e.rv) + delta)


def _not_the_tests_failure(timeline: Timeline) -> list[Entry]:
    """The record as if the node had failed on its own and nobody force-deleted: no fails/restores
    steps, no force_delete_pod deletions (fail_node's note of the pods it dooms stays)."""
    return [
        e
        for e in timeline.entries
        if not (e.kind == STEP and (e.type in ("fails", "restores") or e.get("action") == "force_delete_pod"))
    ]


def _without(timeline: Timeline, *step_types: str, actions: tuple[str, ...] = ()) -> list[Entry]:
    return [
        e
        for e in timeline.entries
        if not (e.kind == STEP and (e.type in step_types or (actions and e.get("action") in actions)))
    ]


def test_a_node_declared_out_of_service_before_the_replacement_passes_with_recovery_times() -> None:
    verdict = run_check("at_most_one", load("node_out_of_service"), SUBJECT)
    assert verdict.status == "passed", verdict.explain()
    assert verdict.summary.startswith("no two incarnations of a pod of web were alive at once (replaced ")
    assert verdict.timings["claims_reattached"] is True
    assert verdict.timings["replaced_after_fail_s"] > verdict.timings["ready_after_out_of_service_s"] > 0
    assert "on the same claims and volumes" in verdict.summary
    # Simulated nodes: no runtime to ask.
    assert verdict.fidelity == "api" and verdict.node_source.startswith("not available")


def test_a_force_delete_on_an_unreachable_node_fails_naming_the_replacement_and_the_deletion() -> None:
    verdict = run_check("at_most_one", load("node_force_delete"), SUBJECT)
    assert verdict.status == "failed"
    assert verdict.summary.startswith("web-1 was replaced at ")
    assert "had been force-deleted by the test (force_delete_pod) on node node-" in verdict.summary
    assert "which was failed by the test (fail_node) and unreachable (Ready Unknown)" in verdict.summary
    assert "was Ready again at" in verdict.summary
    assert verdict.diagnosis[0].startswith("a pod must not be force-deleted")
    assert "out-of-service=nodeshutdown:NoExecute" in verdict.diagnosis[0]
    assert verdict.violations[0].at is not None and verdict.violations[0].at.type == "ADDED"


def test_the_same_deletion_by_someone_else_is_named_as_unconfirmed() -> None:
    verdict = run_check("at_most_one", renumbered(_without(load("node_force_delete"), "deletes")), SUBJECT)
    assert verdict.status == "failed"
    assert "deleted without its node's confirmation (grace period 0, by a person, script or operator)" in (
        verdict.summary
    )
    assert verdict.diagnosis[0].startswith("a pod on an unreachable node must not be deleted without its node")


def test_a_replacement_created_before_the_out_of_service_taint_fails() -> None:
    # Mutation: the taint comes only after the replacement exists (received and committed later).
    timeline = load("node_out_of_service")
    entries = list(timeline.entries)
    tainted = [e for e in entries if e.kind == NODE and e.node.out_of_service]
    last = max(entries, key=lambda e: int(e.rv) if e.rv.isdigit() else 0)
    moved = [dataclasses.replace(e, t=entries[-1].t + 1 + i, rv=_rv(last, 1 + i)) for i, e in enumerate(tainted)]
    verdict = run_check("at_most_one", renumbered([e for e in entries if e not in tainted] + moved), SUBJECT)
    assert verdict.status == "failed", verdict.explain()
    assert "and not out of service" in verdict.summary


def test_an_out_of_service_taint_received_late_but_committed_first_still_counts() -> None:
    # The Node watch may deliver the taint after the Pod watch delivered the replacement; the
    # resourceVersions say which came first.
    timeline = load("node_out_of_service")
    entries = list(timeline.entries)
    tainted = [e for e in entries if e.kind == NODE and e.node.out_of_service]
    added = next(e for e in entries if e.kind == POD and e.type == "ADDED" and e.seq > _deleted(timeline).seq)
    late = [dataclasses.replace(e, t=added.t + 0.01) for e in tainted]
    kept = [e for e in entries if e not in tainted]
    at = kept.index(added) + 1
    verdict = run_check("at_most_one", renumbered(kept[:at] + late + kept[at:]), SUBJECT)
    assert verdict.status == "passed", verdict.explain()


def test_a_test_force_delete_on_a_ready_node_is_not_confirmed_either() -> None:
    # Mutation: the node never failed (every node entry Ready, no fail_node), but the test force-deleted
    # the pod: a grace-0 delete does not wait for the kubelet.
    timeline = load("node_force_delete")
    entries = [
        dataclasses.replace(e, data={**e.data, "ready": "True", "taints": []}) if e.kind == NODE else e
        for e in _without(timeline, actions=("fail_node", "restore_node"))
    ]
    verdict = run_check("at_most_one", renumbered(entries), SUBJECT)
    assert verdict.status == "failed", verdict.explain()
    assert "force-deleted by the test (force_delete_pod) on node node-" in verdict.summary
    assert ", which was Ready at " in verdict.summary and "for the rest of the record" in verdict.summary


def test_a_deletion_on_a_ready_node_by_anyone_else_is_its_kubelets_and_exercises_nothing() -> None:
    timeline = load("node_force_delete")
    entries = [
        dataclasses.replace(e, data={**e.data, "ready": "True", "taints": []}) if e.kind == NODE else e
        for e in _without(timeline, "deletes", actions=("fail_node", "restore_node"))
    ]
    verdict = run_check("at_most_one", renumbered(entries), SUBJECT)
    assert verdict.status == "not exercised", verdict.explain()


def test_a_node_failed_by_the_test_is_not_trusted_before_the_control_plane_notices() -> None:
    # Mutation: the pod goes while the node still shows Ready (its heartbeats stopped, not yet marked
    # Unknown), deleted by someone else: the test failed the node, so nobody confirmed the deletion.
    timeline = load("node_force_delete")
    deleted = _deleted(timeline)
    entries = [
        dataclasses.replace(e, data={**e.data, "ready": "True", "taints": []})
        if e.kind == NODE and e.seq < deleted.seq
        else e
        for e in _without(timeline, "deletes")
    ]
    verdict = run_check("at_most_one", renumbered(entries), SUBJECT)
    assert verdict.status == "failed"
    assert "failed by the test (fail_node; its heartbeats had stopped, not yet marked Unknown)" in verdict.summary


def test_a_node_ready_again_before_the_deletion_in_resource_version_order_confirms_it() -> None:
    # Not the test's node failure, not a force delete: a node that came back (Ready, committed before
    # the pod's deletion) confirms it even when its watch delivers that after the deletion.
    timeline = load("node_force_delete")
    deleted = _deleted(timeline)
    node = deleted.pod.node
    entries = [
        e for e in _not_the_tests_failure(timeline) if not (e.kind == NODE and e.name == node and e.seq > deleted.seq)
    ]
    back = next(e for e in timeline.entries if e.kind == NODE and e.name == node and e.seq > deleted.seq)
    ready = dataclasses.replace(back, t=deleted.t + 0.5, rv=_rv(deleted, -1), data={**back.data, "ready": "True"})
    entries.insert(entries.index(deleted) + 1, ready)
    verdict = run_check("at_most_one", renumbered(entries), SUBJECT)
    assert verdict.status == "passed", verdict.explain()
    # The same Ready committed after the replacement was created does not: the node was unreachable
    # when its pod went, and still when the replacement came.
    replacement = next(e for e in entries if e.kind == POD and e.type == "ADDED" and e.seq > deleted.seq)
    later = [dataclasses.replace(ready, rv=_rv(replacement, 1)) if e is ready else e for e in entries]
    verdict = run_check("at_most_one", renumbered(later), SUBJECT)
    assert verdict.status == "failed", verdict.explain()
    assert "which was unreachable (Ready Unknown)" in verdict.summary


def test_a_pod_the_kubelet_stopped_while_its_node_reported_not_ready_is_confirmed() -> None:
    # Ready False: the kubelet still reports (a graceful node shutdown); the API server deletes the
    # Failed pod with grace 0 and the controller recreates it (RecreatingFailedPod).
    timeline = load("node_force_delete")
    deleted = _deleted(timeline)
    entries = [
        dataclasses.replace(e, data={**e.data, "ready": "False"})
        if e.kind == NODE and e.get("ready") == "Unknown"
        else e
        for e in _not_the_tests_failure(timeline)
    ]
    verdict = run_check("at_most_one", renumbered(entries), SUBJECT)
    assert verdict.status == "passed", verdict.explain()
    # Unreachable instead, the pod Failed by its kubelet (TerminationByKubelet) before it went: confirmed.
    stopped = {**deleted.data, "phase": "Failed", "disruption": "TerminationByKubelet"}
    entries = [
        dataclasses.replace(e, data=stopped) if e.seq == deleted.seq else e for e in _not_the_tests_failure(timeline)
    ]
    assert run_check("at_most_one", renumbered(entries), SUBJECT).status == "passed"
    # Failed by the pod GC after the taint manager's eviction is no confirmation.
    for reason in ("DeletionByPodGC", "DeletionByTaintManager"):
        by_gc = {**stopped, "disruption": reason}
        entries = [
            dataclasses.replace(e, data=by_gc) if e.seq == deleted.seq else e for e in _not_the_tests_failure(timeline)
        ]
        assert run_check("at_most_one", renumbered(entries), SUBJECT).status == "failed", reason


def test_a_node_failed_twice_is_trusted_again_once_restored() -> None:
    timeline = load("node_out_of_service")
    fails = next(e for e in timeline.entries if e.kind == STEP and e.type == "fails")
    twice = [
        *timeline.entries[: fails.seq + 1],
        dataclasses.replace(fails, t=fails.t + 0.01),
        *timeline.entries[fails.seq + 1 :],
    ]
    verdict = run_check("at_most_one", renumbered(twice), SUBJECT)
    assert verdict.status == "passed", verdict.explain()


def test_another_statefulset_is_not_exercised_by_this_ones_node_failure() -> None:
    verdict = run_check("at_most_one", load("node_force_delete"), Subject("db", "recorded"))
    assert verdict.status == "not exercised"


def test_the_real_node_runtime_shows_the_old_container_beside_the_replacement() -> None:
    verdict = run_check("at_most_one", load("real_node_force_delete"), SUBJECT)
    assert verdict.status == "failed"
    assert verdict.fidelity == "node" and verdict.node == "failed"
    node = [v.message for v in verdict.violations if v.message.startswith("node level:")]
    assert node and "the container runtime of node localhost still ran nginx (pid " in node[0]
    assert "while its replacement (uid " in node[0] and "was Running on node kwok-mixed-" in node[0]
    assert verdict.node_source == "container runtime of the failed node (localhost)"


def _declared_before_the_delete(timeline: Timeline) -> list[Entry]:
    """The real-node record with the node declared out of service just before web-0 went."""
    deleted = _deleted(timeline, "web-0")
    entries = list(timeline.entries)
    node = next(e for e in entries if e.kind == NODE and e.name == "localhost" and e.seq < deleted.seq)
    oos = dataclasses.replace(
        node,
        t=deleted.t - 0.01,
        rv=_rv(deleted, -1),
        data={**node.data, "taints": ["node.kubernetes.io/out-of-service:NoExecute"]},
    )
    entries.insert(entries.index(deleted), oos)
    return entries


def test_the_runtime_seeing_the_old_container_stopped_first_passes_node_level() -> None:
    # Mutation: the runtime looked right after the deletion, before the replacement ran, and saw
    # nothing of the old pod (it really had stopped).
    timeline = load("real_node_force_delete")
    deleted = _deleted(timeline, "web-0")
    look = next(e for e in timeline.entries if e.kind == RUNTIME)
    entries = [e for e in _declared_before_the_delete(timeline) if not (e.kind == RUNTIME and e.seq > deleted.seq)]
    entries.insert(
        entries.index(deleted) + 1, dataclasses.replace(look, t=deleted.t + 0.001, data={**look.data, "running": []})
    )
    verdict = run_check("at_most_one", renumbered(entries), SUBJECT)
    assert verdict.status == "passed", verdict.explain()
    assert verdict.fidelity == "node" and verdict.node == "passed"


def test_node_level_is_not_passed_when_the_runtime_never_saw_the_old_container_stop() -> None:
    # Mutation: every look of the runtime happened while the replacement was still Pending; the old
    # container was still running at the last look, and the replacement ran only afterwards.
    timeline = load("real_node_force_delete")
    entries = _declared_before_the_delete(timeline)
    looks = [e for e in entries if e.kind == RUNTIME]
    replacement = next(
        e for e in entries if e.kind == POD and e.type == "ADDED" and e.seq > _deleted(timeline, "web-0").seq
    )
    running = [e for e in entries if e.kind == POD and e.uid == replacement.uid and e.pod.phase == "Running"]
    kept = [e for e in entries if e not in running]
    late = [dataclasses.replace(e, t=max(x.t for x in looks) + 1) for e in running]
    verdict = run_check("at_most_one", renumbered(kept + late), SUBJECT)
    assert verdict.status == "passed", verdict.explain()
    assert verdict.node == "not available"
    assert verdict.node_source.startswith("not available: the runtime did not see the old containers of web-0 stop")


def test_lost_node_events_make_it_incomplete() -> None:
    timeline = load("node_out_of_service")
    gap = Entry(0, 0.0, GAP, "gap", NODE, data={"reason": "not recorded: nodes is forbidden"})
    verdict = run_check("at_most_one", renumbered([gap, *timeline.entries]), SUBJECT)
    assert verdict.status == "incomplete"
    assert "Node events were lost (not recorded: nodes is forbidden)" in verdict.summary
