"""stable_storage over a recorded run in which the test deleted claims itself (delete_claim): web-1's
while its replacement was Pending on a cordoned node (upstream's scenario), web-0's while web-0 still
ran. Copies of the record are edited into what must not pass."""

from __future__ import annotations

import dataclasses

from recorded import SUBJECT, first, load, renumbered

from pytest_stateful.checks import Verdict, run_check
from pytest_stateful.timeline import PVC, STEP, STS, Entry, Timeline

RECORD = "delete_claim"


def storage(timeline: Timeline) -> Verdict:
    return run_check("stable_storage", timeline, SUBJECT)


def claim_steps(timeline: Timeline) -> list[Entry]:
    return [e for e in timeline.entries if e.kind == STEP and e.type == "deletes" and e.get("action") == "delete_claim"]


def until(timeline: Timeline, last: Entry) -> Timeline:
    """The record as if the run had ended at `last`."""
    return renumbered([e for e in timeline.entries if e.seq <= last.seq])


def test_claims_the_test_deleted_and_the_controller_created_again_pass() -> None:
    verdict = run_check("stable_storage", load(RECORD), SUBJECT)
    assert verdict.status == "passed", verdict.explain()
    assert verdict.summary == (
        "2 pod recreation(s) mounted their own claims; claims www-web-0, www-web-1, deleted by the test, "
        "were created again"
    )
    assert verdict.notes == []


def test_the_record_shows_upstream_s_scenario_a_pending_pod_s_claim_deleted_and_created_again() -> None:
    # Guards the record itself: web-1's claim went while its replacement was Pending and unscheduled.
    timeline = load(RECORD)
    step = first(timeline, lambda e: e in claim_steps(timeline) and e.get("claims") == ["www-web-1"])
    pod = [e for e in timeline.entries if e.kind == "Pod" and e.name == "web-1" and e.seq < step.seq][-1]
    assert (pod.pod.phase, pod.pod.node, pod.pod.deleting) == ("Pending", "", False)
    back = first(timeline, lambda e: e.kind == PVC and e.name == "www-web-1" and e.type == "ADDED" and e.seq > step.seq)
    assert back.uid not in step.get("claim_uids")


def test_the_same_claims_lost_without_the_test_deleting_them_fail() -> None:
    timeline = load(RECORD)
    steps = {e.seq for e in claim_steps(timeline)}
    verdict = storage(renumbered([e for e in timeline.entries if e.seq not in steps]))
    assert verdict.status == "failed"
    messages = [v.message for v in verdict.violations]
    assert any(m.startswith("claim www-web-1 was deleted and created again (UID ") for m in messages), messages
    assert any(m.startswith("claim www-web-0 was deleted and created again (UID ") for m in messages), messages


def test_a_deletion_of_another_claim_object_excuses_nothing() -> None:
    # The step names the UID it deleted: a claim object of the same name it did not delete is not excused.
    timeline = load(RECORD)
    entries = [
        dataclasses.replace(e, data={**e.data, "claim_uids": ["00000000-not-the-one"]})
        if e in claim_steps(timeline)
        else e
        for e in timeline.entries
    ]
    verdict = storage(renumbered(entries))
    assert verdict.status == "failed"
    assert "was deleted and created again" in verdict.summary


def test_one_deletion_excuses_one_replacement_not_a_second() -> None:
    timeline = load(RECORD)
    back = [e for e in timeline.entries if e.kind == PVC and e.name == "www-web-1"][-1]
    again = dataclasses.replace(back, type="ADDED", uid="ffffffff-second-replacement", t=back.t + 1)
    verdict = storage(renumbered([*timeline.entries, again]))
    assert verdict.status == "failed"
    assert verdict.summary.startswith("claim www-web-1 was deleted and created again (UID ")
    assert verdict.summary.endswith("-> ffffffff): the ordinal lost its data")


def test_a_run_that_ends_before_the_deleted_claim_came_back_is_incomplete() -> None:
    timeline = load(RECORD)
    gone = first(timeline, lambda e: e.kind == PVC and e.name == "www-web-1" and e.type == "DELETED")
    verdict = storage(until(timeline, gone))
    assert verdict.status == "incomplete", verdict.explain()
    assert verdict.summary.startswith(
        "the run ended before claim www-web-1, deleted by the test (delete_claim), was created again"
    )


def test_a_deleted_claim_of_an_ordinal_scaled_away_is_not_awaited() -> None:
    timeline = load(RECORD)
    gone = first(timeline, lambda e: e.kind == PVC and e.name == "www-web-1" and e.type == "DELETED")
    cut = until(timeline, gone).entries
    last_sts = [e for e in cut if e.kind == STS][-1]
    scaled = dataclasses.replace(last_sts, data={**last_sts.data, "replicas": 1}, t=gone.t + 0.1)
    verdict = storage(renumbered([*cut, scaled]))
    assert verdict.status == "passed", verdict.explain()


def test_a_claim_still_held_by_its_running_pod_when_the_run_ended_is_noted() -> None:
    timeline = load(RECORD)
    held = first(timeline, lambda e: e.kind == PVC and e.name == "www-web-0" and e.claim.deleting)
    verdict = storage(until(timeline, held))
    assert verdict.status == "passed", verdict.explain()
    assert verdict.notes == [
        "claim www-web-0, deleted by the test, was still Terminating when the run ended: web-0 uses it "
        "(kubernetes.io/pvc-protection keeps it until that pod goes)"
    ]


def test_a_deleted_claim_still_terminating_with_its_pod_gone_is_not_taken_for_held() -> None:
    # The run ends after web-0 went but before its claim did: nothing holds it, and nothing shows a new one.
    timeline = load(RECORD)
    step = first(timeline, lambda e: e in claim_steps(timeline) and e.get("claims") == ["www-web-0"])
    pod_gone = first(
        timeline, lambda e: e.kind == "Pod" and e.name == "web-0" and e.type == "DELETED" and e.seq > step.seq
    )
    verdict = storage(until(timeline, pod_gone))
    assert verdict.status == "incomplete", verdict.explain()
    assert verdict.notes == []
