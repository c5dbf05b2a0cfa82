"""delete_claim, cordon_node and uncordon_node on the local clusters: stable_storage tells the test's
own claim deletion from a claim the cluster lost, and the node-level marker of a deleted claim is not
expected back (while the other claims' markers still are)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from workloads import web, write_shell_less

from pytest_stateful import StepError
from pytest_stateful.timeline import PVC

NODE = "node-000002"


def pinned(replicas: int = 1) -> list[dict[str, Any]]:
    """web with claims, its pods allowed on one simulated node only (as upstream pins them)."""
    manifests = web(replicas=replicas, claims=True)
    manifests[1]["spec"]["template"]["spec"]["nodeSelector"] = {"kubernetes.io/hostname": NODE}
    return manifests


def pending_replacement(sts: Any) -> None:
    """Cordon web-0's node and delete web-0: its replacement exists, Pending and unscheduled."""
    sts.cordon_node(0)
    old = sts.view.pod("web-0")
    sts.delete_pod(0, settle=False)
    assert sts.recorder.wait_until(
        lambda: (p := sts.view.pod("web-0")) is not None and p.uid != old.uid and not p.pod.node, 30
    ), "web-0 was not created again, Pending"


def test_a_claim_the_test_deletes_from_a_pending_pod_comes_back_and_passes(stateful) -> None:
    sts = stateful(pinned())
    before = sts.view.claim("www-web-0")
    pending_replacement(sts)
    sts.delete_claim(0, settle=False)
    sts.uncordon_node(0)
    after = sts.view.claim("www-web-0")
    assert after is not None and after.uid != before.uid and after.claim.volume != before.claim.volume
    verdict = sts.assert_stable_storage()
    assert verdict.summary.endswith("claim www-web-0, deleted by the test, was created again"), verdict.summary
    steps = [e.get("detail") for e in sts.timeline.of("Step") if e.type == "begin" and e.name == "delete_claim"]
    assert steps == ["www-web-0 (web-0 is Pending, not scheduled: nothing holds the claim)"]


def test_the_same_claim_lost_without_the_step_fails_stable_storage(stateful) -> None:
    sts = stateful(pinned())
    pending_replacement(sts)
    # Deleted behind the test's back (as a careless script or a buggy operator would): not excused.
    sts.cluster.core.delete_namespaced_persistent_volume_claim("www-web-0", sts.namespace)
    assert sts.recorder.wait_until(lambda: (PVC, "www-web-0") not in sts.recorder.current, 30)
    sts.uncordon_node(0)
    verdict = sts.verdict("stable_storage")
    assert verdict.status == "failed", verdict.explain()
    assert verdict.summary.startswith("claim www-web-0 was deleted and created again (UID ")


def test_a_claim_a_running_pod_uses_stays_until_the_pod_goes(stateful) -> None:
    sts = stateful(web(replicas=2, claims=True))
    sts.delete_claim(0)
    held = sts.view.claim("www-web-0")
    assert held is not None and held.claim.deleting
    assert "stable_storage" not in sts.verdicts
    verdict = sts.verdict("stable_storage")
    assert verdict.notes == [
        "claim www-web-0, deleted by the test, was still Terminating when the run ended: web-0 uses it "
        "(kubernetes.io/pvc-protection keeps it until that pod goes)"
    ]
    sts.delete_pod(0)
    verdict = sts.assert_stable_storage()
    assert verdict.notes == []
    assert verdict.summary == (
        "1 claim(s) kept their UID and volume across 1 pod recreation(s); claim www-web-0, deleted by the test, "
        "was created again"
    )


def test_a_deletion_the_api_server_refuses_excuses_nothing(stateful, monkeypatch: pytest.MonkeyPatch) -> None:
    # As if the record lagged behind a replacement: the UID precondition makes the API server refuse
    # (409), the step fails, and no deletion is recorded as the test's.
    sts = stateful(web(replicas=1, claims=True))
    seen = sts.view.claim("www-web-0")
    stale = dataclasses.replace(seen, uid="00000000-0000-0000-0000-000000000000")
    monkeypatch.setattr(sts.view, "claim", lambda name: stale if name == "www-web-0" else None)
    with pytest.raises(
        StepError, match=r"^delete_claim 0: claim www-web-0 \(UID 00000000\) was already gone or replaced"
    ):
        sts.delete_claim(0)
    assert not [e for e in sts.timeline.of("Step") if e.type == "deletes" and e.get("action") == "delete_claim"]
    assert (PVC, "www-web-0") in sts.recorder.current and sts.recorder.current[(PVC, "www-web-0")].uid == seen.uid


def test_steps_refuse_what_they_cannot_do_in_one_sentence(stateful) -> None:
    sts = stateful(web(replicas=1))
    with pytest.raises(StepError, match=r"^delete_claim 0: StatefulSet web has no volumeClaimTemplates, so no claims$"):
        sts.delete_claim(0)
    with pytest.raises(StepError, match=r"^uncordon_node 0: no node was cordoned for web-0 \(take cordon_node or"):
        sts.uncordon_node(0)
    with pytest.raises(StepError, match=r"^uncordon_node node-000000: this test did not cordon node node-000000 "):
        sts.uncordon_node("node-000000")


def test_on_the_real_node_the_deleted_claim_s_marker_is_not_expected_back(pytester: pytest.Pytester) -> None:
    # web-0's claim is deleted while web-0 runs (held Terminating), then web-0 is deleted: its new claim is
    # empty, which is what deleting a claim means; web-1's marker must still read back.
    write_shell_less(pytester.path)
    pytester.makepyfile(
        """
        def test_claim(stateful):
            web = stateful(["svc.yaml", "statefulset.yaml"])
            web.delete_claim(0)
            web.delete_pod(0)
            v = web.verdict("stable_storage")
            assert (v.status, v.fidelity, v.node) == ("passed", "node", "passed"), v.explain()
            markers = [e for e in web.timeline.of("Probe") if e.get("probe") == "marker"]
            assert markers and {e.get("pod") for e in markers} == {"web-1"}, [e.data for e in markers]
        """
    )
    result = pytester.runpytest("--stateful-node=real", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_a_node_cordoned_before_the_test_is_left_cordoned(stateful) -> None:
    # Someone else's cordon (another session's drain, an operator): the test neither takes it over
    # nor undoes it at teardown.
    sts = stateful(web(replicas=1))
    node = sts.view.pod("web-0").pod.node
    core = sts.cluster.core
    core.patch_node(node, {"spec": {"unschedulable": True}})
    try:
        sts.cordon_node(0)
        with pytest.raises(StepError, match=r"^uncordon_node 0: no node was cordoned for web-0"):
            sts.uncordon_node(0)
        sts.uncordon()  # what teardown does
        assert core.read_node(node).spec.unschedulable
    finally:
        core.patch_node(node, {"spec": {"unschedulable": False}})
