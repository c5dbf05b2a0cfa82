"""claim_retention on the local cluster: the upstream controller and garbage collector keep and delete
claims as persistentVolumeClaimRetentionPolicy says; a claim another controller owns (left alone
upstream) and a claim a script deletes under Retain fail, with the reason."""

from __future__ import annotations

from typing import Any

import pytest
from workloads import web

from pytest_stateful import StepError
from pytest_stateful.errors import UsageError
from pytest_stateful.timeline import PVC


def retained(when_scaled: str, when_deleted: str = "Retain", replicas: int = 3) -> list[dict[str, Any]]:
    policy = {"whenScaled": when_scaled, "whenDeleted": when_deleted}
    return web(replicas=replicas, claims=True, persistentVolumeClaimRetentionPolicy=policy)


def test_claims_scaled_away_and_deleted_with_the_statefulset_pass(stateful) -> None:
    sts = stateful(retained("Delete", "Delete"))
    sts.scale(1)
    assert (PVC, "www-web-2") not in sts.recorder.current and (PVC, "www-web-1") not in sts.recorder.current
    sts.scale(2)
    sts.delete_statefulset()
    verdict = sts.assert_claim_retention()
    assert verdict.summary == (
        "2 claim(s) of 2 pod(s) scaled away under whenScaled: Delete deleted with their pods; 2 claim(s) deleted "
        "with the StatefulSet as whenDeleted: Delete says"
    )
    # The garbage collector's deletions after delete_statefulset are no pod that "never came back".
    sts.assert_stable_identity()


def test_claims_kept_under_retain_pass(stateful) -> None:
    sts = stateful(retained("Retain", "Retain"))
    sts.scale(1)
    sts.delete_statefulset()
    assert {c.name for c in sts.recorder.snapshot(PVC)} == {"www-web-0", "www-web-1", "www-web-2"}
    verdict = sts.assert_claim_retention()
    assert verdict.summary == (
        "the claims of 2 pod(s) scaled away under whenScaled: Retain kept; 3 claim(s) kept when the StatefulSet "
        "was deleted, as whenDeleted: Retain says"
    )


def test_a_claim_another_controller_owns_is_not_deleted_and_fails_with_the_owner_named(stateful) -> None:
    # Upstream "should not delete PVC with OnScaledown policy if another controller owns the PVC": the
    # controller leaves it, so the policy the workload declares does not take effect.
    sts = stateful(retained("Delete", replicas=2))
    keeper = sts.cluster.core.create_namespaced_config_map(sts.namespace, {"metadata": {"name": "keeper"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "keeper", "uid": keeper.metadata.uid, "controller": True}
    sts.cluster.core.patch_namespaced_persistent_volume_claim(
        "www-web-1", sts.namespace, {"metadata": {"ownerReferences": [ref]}}
    )
    sts.scale(1)
    verdict = sts.verdict("claim_retention")
    assert verdict.status == "failed", verdict.explain()
    assert verdict.summary.startswith("web-1 was scaled away while its claim www-web-1 was not owned by it (owners: ")
    assert "ConfigMap/keeper" in verdict.summary
    assert verdict.diagnosis == [
        "claim www-web-1 is also owned by ConfigMap/keeper: the StatefulSet controller does not apply its "
        "retention policy to a claim another controller controls (hasUnexpectedController), and the garbage "
        "collector does not delete a claim while another owner exists"
    ]
    assert (PVC, "www-web-1") in sts.recorder.current


def test_a_claim_a_script_deletes_under_retain_fails(stateful) -> None:
    sts = stateful(retained("Retain", replicas=2))
    sts.scale(1)
    sts.cluster.core.delete_namespaced_persistent_volume_claim("www-web-1", sts.namespace)
    assert sts.recorder.wait_until(lambda: (PVC, "www-web-1") not in sts.recorder.current, 30)
    verdict = sts.verdict("claim_retention")
    assert verdict.status == "failed", verdict.explain()
    assert verdict.summary == (
        "claim www-web-1 was deleted, but not by the test, not with a pod that owned it (whenScaled: Delete) and "
        "not with the StatefulSet (whenDeleted: Delete); owners: none"
    )


def test_nothing_follows_delete_statefulset(stateful) -> None:
    sts = stateful(retained("Retain", replicas=1))
    sts.delete_statefulset()
    with pytest.raises(StepError, match=r"^scale: StatefulSet web was deleted by delete_statefulset, the last step$"):
        sts.scale(2)
    with pytest.raises(UsageError, match=r"^StatefulSet web was deleted by delete_statefulset earlier in this test"):
        stateful(retained("Retain", replicas=1))
