"""claim_retention over runs recorded on the real control plane (tests/data), and copies edited into
what the StatefulSet controller or the garbage collector must not do."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

from recorded import SUBJECT, first, load, renumbered

from pytest_stateful.checks import Verdict, run_check
from pytest_stateful.timeline import PVC, STEP, STS, Entry, Timeline

# whenScaled and whenDeleted Delete: scale 3 -> 1 -> 2, then delete_statefulset.
RECORD = "claim_retention"


def retention(timeline: Timeline) -> Verdict:
    return run_check("claim_retention", timeline, SUBJECT)


def edited(timeline: Timeline, change: Callable[[Entry], Entry | None]) -> Timeline:
    """Each entry through `change` (None drops it)."""
    return renumbered([c for e in timeline.entries if (c := change(e)) is not None])


def deletion(timeline: Timeline) -> int:
    """Where the delete_statefulset step began."""
    return first(timeline, lambda e: e.kind == STEP and e.type == "begin" and e.name == "delete_statefulset").seq


def claim_of(name: str) -> Callable[[Entry], bool]:
    return lambda e: e.kind == PVC and e.name == name


def test_claims_deleted_as_both_delete_policies_say_pass() -> None:
    verdict = retention(load(RECORD))
    assert verdict.status == "passed", verdict.explain()
    assert verdict.summary == (
        "2 claim(s) of 2 pod(s) scaled away under whenScaled: Delete deleted with their pods; 2 claim(s) deleted "
        "with the StatefulSet as whenDeleted: Delete says"
    )


def test_claims_kept_through_a_scale_down_as_retain_says_pass() -> None:
    verdict = retention(load("good"))
    assert verdict.status == "passed", verdict.explain()
    assert verdict.summary == "the claims of 2 pod(s) scaled away under whenScaled: Retain kept"


def test_a_pod_scaled_away_before_its_claim_was_given_to_it_fails() -> None:
    # The controller must make the pod own its claim before deleting it; without that the collector
    # never deletes the claim.
    def unowned(e: Entry) -> Entry:
        if claim_of("www-web-2")(e) and "Pod/web-2" in e.get("owners", []):
            return dataclasses.replace(e, data={**e.data, "owners": ["StatefulSet/web"]})
        return e

    verdict = retention(edited(load(RECORD), unowned))
    assert verdict.status == "failed"
    assert verdict.summary == (
        "web-2 was scaled away while its claim www-web-2 was not owned by it (owners: StatefulSet/web): "
        "whenScaled: Delete will not delete it"
    )


def test_a_claim_another_controller_owns_is_named_in_the_diagnosis() -> None:
    def foreign(e: Entry) -> Entry:
        if claim_of("www-web-2")(e):
            return dataclasses.replace(e, data={**e.data, "owners": ["Backup/nightly"]})
        return e

    verdict = retention(edited(load(RECORD), foreign))
    assert verdict.status == "failed"
    assert verdict.diagnosis == [
        "claim www-web-2 is also owned by Backup/nightly: the StatefulSet controller does not apply its retention "
        "policy to a claim another controller controls (hasUnexpectedController), and the garbage collector does "
        "not delete a claim while another owner exists"
    ]


def test_a_scaled_up_pod_on_the_claim_of_before_the_scale_down_fails() -> None:
    # www-web-1 never deleted: the scaled-up web-1 comes back on the old claim object.
    timeline = load(RECORD)
    old = next(e.uid for e in timeline.entries if claim_of("www-web-1")(e))
    cut = deletion(timeline)

    def kept(e: Entry) -> Entry | None:
        if claim_of("www-web-1")(e) and e.seq < cut:
            if e.uid != old or e.type == "DELETED":
                return None
            return dataclasses.replace(e, data={**e.data, "deleting": False})
        return e

    verdict = retention(edited(timeline, kept))
    assert verdict.status == "failed"
    assert verdict.summary == (
        "web-1 was created while its claim www-web-1 still belonged to the old web-1 (owners: Pod/web-1): the "
        "controller waits until such a claim is deleted (whenScaled: Delete)"
    )


def test_a_claim_deleted_under_retain_fails() -> None:
    timeline = load("good")
    last = [e for e in timeline.entries if claim_of("www-web-2")(e)][-1]
    gone = dataclasses.replace(last, type="DELETED", t=last.t + 0.5, rv=str(int(last.rv) + 1))
    verdict = retention(renumbered([*timeline.entries, gone]))
    assert verdict.status == "failed"
    assert verdict.summary == (
        "claim www-web-2 was deleted, but not by the test, not with a pod that owned it (whenScaled: Delete) and "
        "not with the StatefulSet (whenDeleted: Delete); owners: none"
    )


def test_a_claim_kept_when_the_statefulset_was_deleted_under_delete_fails() -> None:
    timeline = load(RECORD)
    cut = deletion(timeline)

    def kept(e: Entry) -> Entry | None:
        if claim_of("www-web-0")(e) and e.seq > cut:
            return None
        return e

    verdict = retention(edited(timeline, kept))
    assert verdict.status == "failed"
    assert verdict.summary == (
        "claim www-web-0 was kept when StatefulSet web was deleted although whenDeleted is Delete "
        "(owners: StatefulSet/web)"
    )


def test_claims_deleted_with_the_statefulset_under_retain_fail() -> None:
    def retain(e: Entry) -> Entry:
        if e.kind == STS:
            return dataclasses.replace(e, data={**e.data, "retention_when_deleted": "Retain"})
        return e

    verdict = retention(edited(load(RECORD), retain))
    assert verdict.status == "failed"
    assert re.fullmatch(
        r"claim www-web-[01] was deleted with StatefulSet web although whenDeleted is Retain", verdict.summary
    )
    assert len(verdict.violations) == 2


def test_a_run_that_ended_before_the_deletion_finished_is_incomplete() -> None:
    timeline = load(RECORD)
    cut = deletion(timeline)

    def unfinished(e: Entry) -> Entry | None:
        if (e.kind == STEP and e.type == "end" and e.name == "delete_statefulset") or (e.kind == PVC and e.seq > cut):
            return None
        return e

    verdict = retention(edited(timeline, unfinished))
    assert verdict.status == "incomplete", verdict.explain()
    assert verdict.summary == (
        "the run ended before the deletion of StatefulSet web was waited for (delete_statefulset): nothing shows "
        "what became of the claims"
    )


def test_a_run_without_scale_down_or_deletion_is_not_exercised() -> None:
    verdict = retention(load("delete_claim"))
    assert verdict.status == "not exercised"
    assert verdict.summary.endswith("add a scale-down, or delete_statefulset as the last step")


def test_the_other_guarantees_judge_the_record_up_to_the_deletion() -> None:
    # After delete_statefulset the collector deletes every pod at once: not a pod that "never came back".
    timeline = load(RECORD)
    assert run_check("stable_identity", timeline, SUBJECT).status == "passed"
    assert run_check("ordered_termination", timeline, SUBJECT).status == "passed"


def test_a_claim_of_a_pod_scaled_away_that_never_goes_fails_once_the_set_settled() -> None:
    # The pod owned it and went, yet the claim stays (a collector that never acts, a finalizer that holds it).
    timeline = load(RECORD)

    def stays(e: Entry) -> Entry | None:
        if claim_of("www-web-2")(e) and (e.type == "DELETED" or e.get("deleting")):
            return None
        return e

    verdict = retention(edited(timeline, stays))
    assert verdict.status == "failed"
    assert verdict.summary == (
        "claim www-web-2 of web-2, scaled away under whenScaled: Delete, was still there after the StatefulSet "
        "settled (owners: Pod/web-2)"
    )


def test_a_claim_of_a_kept_ordinal_deleted_by_someone_else_fails_whatever_the_policy() -> None:
    timeline = load(RECORD)
    cut = deletion(timeline)
    last = [e for e in timeline.entries if claim_of("www-web-0")(e) and e.seq < cut][-1]
    gone = dataclasses.replace(last, type="DELETED", t=last.t + 0.01, rv=str(int(last.rv) + 1))
    entries = [e for e in timeline.entries if e.seq <= last.seq] + [gone]
    verdict = retention(renumbered(entries))
    assert verdict.status == "failed"
    assert verdict.summary.startswith("claim www-web-0 was deleted, but not by the test, not with a pod that owned it")


def test_each_event_is_judged_by_the_policy_in_force_then() -> None:
    # whenScaled turned to Retain after the scale-down: the deletions made under Delete stay legal.
    timeline = load(RECORD)
    first_end = first(timeline, lambda e: e.kind == STEP and e.type == "end" and e.name == "scale")

    def later_retain(e: Entry) -> Entry:
        if e.kind == STS and e.seq > first_end.seq:
            return dataclasses.replace(e, data={**e.data, "retention_when_scaled": "Retain"})
        return e

    verdict = retention(edited(timeline, later_retain))
    assert verdict.status == "passed", verdict.explain()


def test_a_statefulset_deleted_without_the_step_is_incomplete_not_failed() -> None:
    # Someone else deleted it (kubectl, helm uninstall): the deletion shows in the StatefulSet's events,
    # and nothing waited for the collector.
    def no_step(e: Entry) -> Entry | None:
        return None if e.kind == STEP and e.name == "delete_statefulset" else e

    verdict = retention(edited(load(RECORD), no_step))
    assert verdict.status == "incomplete", verdict.explain()


def test_a_record_without_resource_versions_is_incomplete() -> None:
    verdict = retention(edited(load(RECORD), lambda e: dataclasses.replace(e, rv="") if e.kind == PVC else e))
    assert verdict.status == "incomplete"
    assert verdict.summary.startswith("entries without a resourceVersion")


def test_an_in_range_claim_owned_by_its_pod_and_lost_with_it_fails() -> None:
    # The controller left web-1's new claim owned by web-1 (upstream never does for a pod in range), and
    # web-1 was deleted: the collector takes the claim and its data. Not a scaled-away claim: fails.
    timeline = load(RECORD)
    cut = deletion(timeline)
    base = []
    new = [e for e in timeline.entries if claim_of("www-web-1")(e) and e.seq < cut][-1]
    for e in timeline.entries:
        if e.seq >= cut:
            break
        if e.kind == PVC and e.uid == new.uid and e.get("owners"):
            e = dataclasses.replace(e, data={**e.data, "owners": ["Pod/web-1"]})
        base.append(e)
    pod = [e for e in base if e.kind == "Pod" and e.name == "web-1"][-1]
    claim = [e for e in base if claim_of("www-web-1")(e)][-1]
    top, t = max(int(e.rv) for e in base if e.rv), base[-1].t

    def later(e: Entry, n: int, **data: object) -> Entry:
        return dataclasses.replace(e, data={**e.data, **data}, rv=str(top + n), t=t + n / 100)

    extra = [
        Entry(0, t, STEP, "deletes", "delete_pod", data={"action": "delete_pod", "pods": ["web-1"], "uids": [pod.uid]}),
        later(pod, 1, deleting=True),
        dataclasses.replace(later(pod, 2, deleting=True), type="DELETED"),
        later(claim, 3, deleting=True),
        dataclasses.replace(later(claim, 4, deleting=True), type="DELETED"),
    ]
    verdict = retention(renumbered(base + extra))
    assert verdict.status == "failed"
    assert verdict.summary.startswith("claim www-web-1 was deleted, but not by the test, not with a pod that owned it")


def test_a_claim_of_an_ordinal_scaled_away_before_whendeleted_became_delete_is_kept_legally() -> None:
    # Upstream gives the StatefulSet only the claims of pods it has: a claim of an ordinal scaled away
    # (under Retain) before the policy turned to Delete stays when the StatefulSet is deleted.
    timeline = load(RECORD)
    scale_end = first(timeline, lambda e: e.kind == STEP and e.type == "end" and e.name == "scale")

    def retain_then_delete(e: Entry) -> Entry | None:
        if e.kind == STS:
            return dataclasses.replace(
                e,
                data={
                    **e.data,
                    "retention_when_scaled": "Retain",
                    "retention_when_deleted": "Retain" if e.seq < scale_end.seq else "Delete",
                },
            )
        if e.kind == PVC and e.name == "www-web-2":
            # Under Retain the pod never owned it, and nothing deleted it.
            if e.type == "DELETED" or e.get("deleting"):
                return None
            return dataclasses.replace(e, data={**e.data, "owners": []})
        return e

    verdict = retention(edited(timeline, retain_then_delete))
    assert verdict.status == "passed", verdict.explain()
    assert (
        "claim www-web-2 was kept: its ordinal was outside the spec when StatefulSet web was deleted, and the "
        "controller gives the StatefulSet only the claims of pods it has"
    ) in verdict.notes


def _later(e: Entry, top: int, t: float, n: int, type_: str = "MODIFIED", **data: object) -> Entry:
    return dataclasses.replace(e, data={**e.data, **data}, rv=str(top + n), t=t + n / 100, type=type_)


def test_a_claim_reused_after_a_scale_up_and_then_lost_with_its_in_range_pod_fails() -> None:
    # Retain: www-web-1 survives the scale-down and is web-1's again after the scale-up; then it is given
    # to web-1 (upstream never does for a pod in range) and goes with it. Its earlier condemnation does
    # not excuse that.
    base = list(load("good").entries)
    claim = [e for e in base if claim_of("www-web-1")(e)][-1]
    pod = [e for e in base if e.kind == "Pod" and e.name == "web-1"][-1]
    top, t = max(int(e.rv) for e in base if e.rv), base[-1].t
    extra = [
        _later(claim, top, t, 1, owners=["Pod/web-1"]),
        Entry(0, t, STEP, "deletes", "delete_pod", data={"action": "delete_pod", "pods": ["web-1"], "uids": [pod.uid]}),
        _later(pod, top, t, 2, deleting=True),
        _later(pod, top, t, 3, "DELETED", deleting=True),
        _later(claim, top, t, 4, owners=["Pod/web-1"], deleting=True),
        _later(claim, top, t, 5, "DELETED", owners=["Pod/web-1"], deleting=True),
    ]
    verdict = retention(renumbered(base + extra))
    assert verdict.status == "failed"
    assert verdict.summary.startswith("claim www-web-1 was deleted, but not by the test, not with a pod that owned it")


def test_a_claim_given_to_its_pod_under_retain_and_lost_with_it_fails() -> None:
    # Retain: the last scale-down's web-2 owns www-web-2 (upstream never sets that under Retain), and the
    # collector deletes the claim with the pod.
    entries = list(load("good").entries)
    went = [e for e in entries if e.kind == "Pod" and e.name == "web-2" and e.type == "DELETED"][-1]
    claim = [e for e in entries if claim_of("www-web-2")(e) and e.seq < went.seq][-1]
    owned = dataclasses.replace(claim, data={**claim.data, "owners": ["Pod/web-2"]}, rv=str(int(went.rv) - 1))
    gone = dataclasses.replace(
        claim, data={**claim.data, "owners": ["Pod/web-2"], "deleting": True}, rv=str(int(went.rv) + 1), type="DELETED"
    )
    at = entries.index(went)
    verdict = retention(renumbered([*entries[:at], owned, went, gone, *entries[at + 1 :]]))
    assert verdict.status == "failed"
    assert verdict.summary.startswith("claim www-web-2 was deleted, but not by the test, not with a pod that owned it")


def test_a_claim_taken_back_for_a_pod_back_in_range_just_after_the_old_pod_went_passes() -> None:
    # Parallel: web-1 is still terminating when the set is scaled back to 2; processReplica takes the
    # claim back for the set, and that update commits just after web-1's deletion: the collector keeps
    # the claim and the new web-1 mounts it.
    entries = list(load(RECORD).entries)
    went = first(load(RECORD), lambda e: e.kind == "Pod" and e.name == "web-1" and e.type == "DELETED")
    claim = [e for e in entries if claim_of("www-web-1")(e) and e.seq < went.seq][-1]
    sts = [e for e in entries if e.kind == STS and e.seq < went.seq][-1]
    new_pod = first(
        load(RECORD), lambda e: e.kind == "Pod" and e.name == "web-1" and e.type == "ADDED" and e.seq > went.seq
    )
    rv = int(went.rv)
    up = dataclasses.replace(sts, data={**sts.data, "replicas": 2}, rv=str(rv - 1), type="MODIFIED")
    at = entries.index(went)
    out = [*entries[:at], up, went]
    out += [
        dataclasses.replace(
            claim, data={**claim.data, "owners": ["StatefulSet/web"], "deleting": False}, rv=str(rv + 1)
        ),
        dataclasses.replace(new_pod, rv=str(rv + 2)),
        Entry(0, went.t + 1, STEP, "end", "scale", data={"action": "scale", "ok": True, "settled": True}),
    ]
    verdict = retention(renumbered(out))
    assert verdict.status == "passed", verdict.explain()
