"""The recorder on the real cluster: a lost stretch of events is marked, re-listed, and judged incomplete."""

from __future__ import annotations

from workloads import web

from pytest_stateful.recorder import watched_kinds
from pytest_stateful.timeline import GAP, POD


def test_relist_after_lost_events_marks_a_gap_and_makes_checks_incomplete(stateful) -> None:
    sts = stateful(web(replicas=2))
    pods = next(k for k in watched_kinds(sts.cluster.api) if k.kind == POD)
    # What the watch loop does on 410 Gone: mark the gap, then record the listed state.
    sts.recorder._relist(pods, "watch expired at resourceVersion 1 (410 Gone)")
    gaps = sts.timeline.gaps(POD)
    assert [g.get("reason") for g in gaps] == ["watch expired at resourceVersion 1 (410 Gone)"]
    relisted = [e for e in sts.timeline.of(POD) if e.type == "RELISTED"]
    assert sorted(e.name for e in relisted) == ["web-0", "web-1"]
    verdict = sts.verdict("ordered_creation")
    assert verdict.status == "incomplete"
    assert verdict.summary.startswith("incomplete record: Pod events were lost (watch expired")
    assert not any(e.kind == GAP and e.name != POD for e in sts.timeline)


def test_recording_spans_the_whole_test_without_errors(stateful) -> None:
    sts = stateful(web(replicas=1))
    sts.scale(2)
    assert sts.recorder.errors == []
    kinds = {e.kind for e in sts.timeline}
    assert {"Pod", "StatefulSet", "EndpointSlice", "Event", "Service", "Step", "DNS"} <= kinds


def test_a_real_watch_expiry_is_a_gap_and_the_verdicts_are_incomplete(stateful) -> None:
    # The Pod watch drops and resumes from a resourceVersion the API server no longer has: the server
    # itself answers 410 Gone (inside the watch stream), as after an outage longer than its window.
    sts = stateful(web(replicas=2))
    sts.recorder.interrupt(POD, resume_from="1")
    sts.delete_pod(0)  # events keep coming while the watch is restored
    gaps = sts.timeline.gaps(POD)
    assert gaps, f"no gap was recorded; watch errors: {sts.recorder.errors}"
    assert "410 Gone" in str(gaps[0].get("reason"))
    assert any(e.type == "RELISTED" for e in sts.timeline.of(POD))
    for guarantee in ("ordered_creation", "stable_identity", "pod_dns", "ordered_termination"):
        verdict = sts.verdict(guarantee)
        assert verdict.status == "incomplete", verdict.explain()
        assert "Pod events were lost" in verdict.summary
    # The record goes on: waits still see the pods after the re-list.
    assert sorted(p.name for p in sts.view.pods()) == ["web-0", "web-1"]
