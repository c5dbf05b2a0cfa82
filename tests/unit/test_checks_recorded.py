"""The checks on timelines recorded from the real cluster, and on copies edited to break a guarantee."""

from __future__ import annotations

import dataclasses

import pytest
from recorded import SUBJECT, first, load, renumbered

from pytest_stateful.checks import GUARANTEES, run_check
from pytest_stateful.timeline import DNS, GAP, POD, PVC, STS, Entry, Timeline


@pytest.mark.parametrize("guarantee", GUARANTEES)
def test_good_record_passes_every_guarantee(guarantee: str) -> None:
    verdict = run_check(guarantee, load("good"), SUBJECT)
    if guarantee == "rollout_recovers":
        # The good record has no bad rollout: not a pass, and the summary says what to add.
        assert verdict.status == "not exercised", verdict.explain()
        assert verdict.summary.startswith("no bad_rollout step")
        return
    if guarantee == "at_most_one":
        # No node failed in the good record.
        assert verdict.status == "not exercised", verdict.explain()
        assert verdict.summary == (
            "no pod of web was on a failed node or force-deleted: add fail_node, then out_of_service or "
            "force_delete_pod"
        )
        return
    assert verdict.status == "passed", verdict.explain()
    assert verdict.fidelity == "api"
    assert verdict.node == "not available"


def test_good_record_reports_dns_convergence() -> None:
    verdict = run_check("pod_dns", load("good"), SUBJECT)
    assert verdict.timings["dns_convergence_samples"] >= 3
    assert 0 <= verdict.timings["dns_convergence_median_s"] <= verdict.timings["dns_convergence_max_s"]


def test_pod_created_before_lower_ordinal_ready_fails() -> None:
    timeline = load("good")
    web0_ready = first(timeline, lambda e: e.kind == POD and e.name == "web-0" and e.get("ready"))
    web1_added = first(timeline, lambda e: e.kind == POD and e.name == "web-1" and e.type == "ADDED")
    entries = [e for e in timeline.entries if e.seq != web1_added.seq]
    at = entries.index(web0_ready)
    # Committed (resourceVersion) before web-0's Ready, as the watch would order it.
    entries.insert(at, dataclasses.replace(web1_added, t=web0_ready.t - 0.41, rv=str(int(web0_ready.rv) - 1)))
    verdict = run_check("ordered_creation", renumbered(entries), SUBJECT)
    assert verdict.status == "failed"
    assert verdict.summary == "web-1 was created 0.41 s before web-0 became Ready"
    assert ">>" in verdict.evidence and "web-1" in verdict.evidence


def test_parallel_record_fails_with_the_policy_named() -> None:
    timeline = load("parallel")
    creation = run_check("ordered_creation", timeline, SUBJECT)
    assert creation.status == "failed"
    assert any("podManagementPolicy is Parallel" in d for d in creation.diagnosis)
    termination = run_check("ordered_termination", timeline, SUBJECT)
    assert termination.status == "failed"
    assert termination.violations[0].message.startswith("web-1 started terminating while web-2 was")


def test_gap_in_pod_events_is_an_incomplete_record() -> None:
    timeline = load("good")
    gap = Entry(0, 1.0, GAP, "gap", POD, data={"reason": "watch expired at resourceVersion 42 (410 Gone)"})
    verdict = run_check("ordered_creation", renumbered([*timeline.entries, gap]), SUBJECT)
    assert verdict.status == "incomplete"
    assert "incomplete record" in verdict.summary and "410 Gone" in verdict.summary


def test_wrong_hostname_fails_stable_identity() -> None:
    timeline = load("good")
    added = first(timeline, lambda e: e.kind == POD and e.name == "web-1" and e.type == "ADDED")
    entries = [
        dataclasses.replace(e, data={**e.data, "hostname": "db-1"}) if e.seq == added.seq else e
        for e in timeline.entries
    ]
    verdict = run_check("stable_identity", renumbered(entries), SUBJECT)
    assert verdict.status == "failed"
    assert verdict.summary == "web-1 has spec.hostname 'db-1', not 'web-1'"


def test_pod_that_never_comes_back_fails_stable_identity() -> None:
    timeline = load("good")
    last_deleted = [e for e in timeline.entries if e.kind == POD and e.name == "web-0" and e.type == "DELETED"][-1]
    entries = [e for e in timeline.entries if not (e.kind == POD and e.name == "web-0" and e.seq > last_deleted.seq)]
    verdict = run_check("stable_identity", renumbered(entries), SUBJECT)
    assert verdict.status == "failed"
    assert "web-0 was deleted at" in verdict.summary and "never came back" in verdict.summary


def test_retention_delete_record_fails_stable_storage() -> None:
    verdict = run_check("stable_storage", load("retention_delete"), SUBJECT)
    assert verdict.status == "failed"
    assert any("whenScaled: Delete" in d for d in verdict.diagnosis)
    assert any("claim www-web-2 was deleted and created again" in v.message for v in verdict.violations)


def test_claim_rebound_to_another_volume_fails_stable_storage() -> None:
    timeline = load("good")
    last = [e for e in timeline.entries if e.kind == PVC and e.name == "www-web-0"][-1]
    moved = dataclasses.replace(last, data={**last.data, "volume": "pvc-elsewhere"})
    verdict = run_check("stable_storage", renumbered([*timeline.entries, moved]), SUBJECT)
    assert verdict.status == "failed"
    assert "claim www-web-0 moved from volume" in verdict.summary


def test_update_out_of_order_fails_ordered_rolling_update() -> None:
    timeline = load("good")
    # Pretend the controller deleted web-0 for the update while web-2 was still on the old revision:
    # the rollout's first StatefulSet entry, then web-0's deletion, committed right after it.
    sts_rollout = first(timeline, lambda e: e.kind == STS and e.get("current_revision") != e.get("update_revision"))
    web0_deleted = first(
        timeline, lambda e: e.kind == POD and e.name == "web-0" and e.seq > sts_rollout.seq and e.get("deleting")
    )
    entries = [e for e in timeline.entries if e.seq != web0_deleted.seq]
    moved = dataclasses.replace(web0_deleted, t=sts_rollout.t, rv=str(int(sts_rollout.rv) + 1))
    entries.insert(entries.index(sts_rollout) + 1, moved)
    verdict = run_check("ordered_rolling_update", renumbered(entries), SUBJECT)
    assert verdict.status == "failed"
    assert verdict.summary.startswith("web-0 was updated while web-2 was")


def test_not_headless_record_fails_pod_dns() -> None:
    verdict = run_check("pod_dns", load("not_headless"), SUBJECT)
    assert verdict.status == "failed"
    assert verdict.summary.startswith("Service nginx is not headless (clusterIP ")
    assert verdict.summary.endswith("set clusterIP: None")


def test_dns_answer_that_never_converged_fails_pod_dns() -> None:
    timeline = load("good")
    wrong = Entry(
        0,
        99.0,
        DNS,
        "answer",
        "web-0.nginx.recorded.svc.cluster.local",
        data={
            "qname": "web-0.nginx.recorded.svc.cluster.local",
            "answers": ["10.0.0.9"],
            "expected": ["10.0.1.3"],
            "what": "web-0's current IP",
            "pod": "web-0",
            "ok": False,
            "waited": 30.0,
        },
    )
    verdict = run_check("pod_dns", renumbered([*timeline.entries, wrong]), SUBJECT)
    assert verdict.status == "failed"
    assert verdict.summary == (
        "web-0.nginx.recorded.svc.cluster.local answered 10.0.0.9 after waiting 30.0 s; "
        "expected 10.0.1.1 (web-0's current IP)"
    )


def test_no_dns_probe_is_incomplete_not_passed() -> None:
    timeline = Timeline(e for e in load("good").entries if e.kind != DNS)
    verdict = run_check("pod_dns", renumbered(list(timeline.entries)), SUBJECT)
    assert verdict.status == "incomplete"


def test_node_level_probe_failure_fails_identity() -> None:
    timeline = load("good")
    probe = Entry(
        0,
        50.0,
        "Probe",
        "exec",
        "web-0",
        data={"probe": "hostname", "ok": False, "message": "hostname inside web-0 printed 'node-000001', not 'web-0'"},
    )
    verdict = run_check("stable_identity", renumbered([*timeline.entries, probe]), SUBJECT)
    assert verdict.status == "failed"
    assert verdict.fidelity == "node" and verdict.node == "failed"
    assert verdict.summary == "hostname inside web-0 printed 'node-000001', not 'web-0'"


def test_timeline_json_round_trip() -> None:
    timeline = load("good")
    again = Timeline.from_json(timeline.to_json())
    assert [e.to_dict() for e in again] == [e.to_dict() for e in timeline]


def test_scale_down_seen_before_its_statefulset_event_is_still_judged() -> None:
    # The Pod and StatefulSet watches are separate: under load the pods' deletions can
    # arrive before the StatefulSet's new replica count. resourceVersion orders them.
    timeline = load("parallel")
    scale_down = first(timeline, lambda e: e.kind == STS and e.get("replicas") == 1)
    entries = [e for e in timeline.entries if e.seq != scale_down.seq]
    last_deleted = [e for e in entries if e.kind == POD and e.type == "DELETED"][-1]
    entries.insert(entries.index(last_deleted) + 1, scale_down)
    verdict = run_check("ordered_termination", renumbered(entries), SUBJECT)
    assert verdict.status == "failed"
    assert verdict.violations, verdict.explain()
    assert "started terminating while web-2 was" in verdict.violations[0].message


def test_stable_storage_notes_claims_that_drifted_from_their_template() -> None:
    # After an orphan delete and a new StatefulSet with a bigger claim template (the usual way round the
    # forbidden update), the existing claims keep their size: the verdict says so, without failing.
    timeline = load("good")
    entries = []
    for e in timeline.entries:
        if e.kind == STS:
            e = dataclasses.replace(e, data={**e.data, "claim_requests": {"www": "2Gi"}})
        elif e.kind == PVC:
            e = dataclasses.replace(e, data={**e.data, "requested": "1Gi"})
        entries.append(e)
    verdict = run_check("stable_storage", Timeline(entries), SUBJECT)
    assert verdict.status == "passed", verdict.explain()
    assert any(
        n.startswith(
            "claim www-web-0 requests 1Gi while its template 'www' asks 2Gi: a template change does not resize"
        )
        for n in verdict.notes
    ), verdict.notes
    same = [dataclasses.replace(e, data={**e.data, "requested": "2Gi"}) if e.kind == PVC else e for e in entries]
    assert run_check("stable_storage", Timeline(same), SUBJECT).notes == []
