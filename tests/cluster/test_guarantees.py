"""Issue 3: each guarantee passes on a good workload and fails, with the right message, on a broken one.

All on the real local cluster: the StatefulSet, EndpointSlice and PV controllers
are the upstream ones; only the nodes are simulated.
"""

from __future__ import annotations

import pytest
from workloads import service, statefulset, wait_claims_gone, web

from pytest_stateful import GuaranteeFailed, StepTimeout, assert_ordered_creation
from pytest_stateful.timeline import POD


def test_good_workload_keeps_every_guarantee(stateful) -> None:
    sts = stateful(web(replicas=2, claims=True))
    sts.scale(3)
    sts.delete_pod(0)
    sts.delete_pods()
    sts.update_image("nginx", "nginx:1.10")
    sts.scale(1)
    sts.scale(3)
    assert_ordered_creation(sts)
    sts.assert_ordered_termination()
    sts.assert_ordered_rolling_update()
    sts.assert_stable_identity()
    verdict = sts.assert_pod_dns()
    assert verdict.timings["dns_convergence_samples"] >= 3
    sts.assert_stable_storage()
    assert sts.verdicts["stable_identity"].node == "not available"


def test_parallel_policy_fails_ordered_creation_and_termination(stateful) -> None:
    sts = stateful(web(replicas=3, podManagementPolicy="Parallel"))
    sts.scale(1)
    with pytest.raises(GuaranteeFailed, match="podManagementPolicy is Parallel"):
        sts.assert_ordered_creation()
    with pytest.raises(GuaranteeFailed) as failed:
        sts.assert_ordered_termination()
    text = str(failed.value)
    assert "podManagementPolicy is Parallel" in text
    assert "started terminating while web-2 was" in text


def test_creation_halts_while_a_pod_is_unhealthy(stateful) -> None:
    sts = stateful(web(replicas=2))
    sts.make_unready(0)
    sts.delete_pod(1, settle=False)
    sts.sleep(2)
    assert sts.recorder.current.get((POD, "web-1")) is None, "web-1 came back while web-0 was NotReady"
    sts.make_ready(0)
    sts.assert_ordered_creation()
    lives = sts.timeline.pod_lives("web")
    web0_ready_again = max(e.t for e in sts.timeline.of(POD) if e.name == "web-0" and e.get("ready"))
    assert lives[-1].name == "web-1" and lives[-1].created.t > web0_ready_again - 5


def test_service_that_is_not_headless_fails_pod_dns(stateful) -> None:
    sts = stateful([service(headless=False), statefulset()])
    with pytest.raises(GuaranteeFailed, match="Service nginx is not headless"):
        sts.assert_pod_dns()


def test_service_name_naming_no_service_fails_pod_dns(stateful) -> None:
    sts = stateful([service(name="other"), statefulset(service_name="nginx")])
    with pytest.raises(GuaranteeFailed, match="serviceName 'nginx' of web names no Service"):
        sts.assert_pod_dns()


def test_selector_matching_no_pod_fails_pod_dns(stateful) -> None:
    sts = stateful([service(selector={"app": "nginx-typo"}), statefulset()])
    with pytest.raises(GuaranteeFailed, match=r"selects \{app: nginx-typo\}, which matches no pod of web"):
        sts.assert_pod_dns()


def test_retention_policy_deleting_claims_fails_stable_storage(stateful) -> None:
    sts = stateful(web(replicas=3, claims=True, persistentVolumeClaimRetentionPolicy={"whenScaled": "Delete"}))
    sts.scale(1)
    wait_claims_gone(sts, ["www-web-1", "www-web-2"])
    sts.scale(3)
    with pytest.raises(GuaranteeFailed) as failed:
        sts.assert_stable_storage()
    text = str(failed.value)
    assert "whenScaled: Delete" in text
    assert "claim www-web-2 was deleted and created again" in text


def test_no_claim_templates_fails_stable_storage(stateful) -> None:
    sts = stateful(web())
    with pytest.raises(GuaranteeFailed, match="has no volumeClaimTemplates"):
        sts.assert_stable_storage()


def test_partition_keeps_lower_ordinals_on_the_old_revision(stateful) -> None:
    sts = stateful(web(replicas=3, updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}))
    sts.update_image("nginx", "nginx:1.10")
    sts.delete_pod(0)
    sts.assert_ordered_rolling_update()
    images = {p.name: p.get("images") for p in sts.recorder.snapshot(POD)}
    assert images == {"web-0": ["nginx:1.9.1"], "web-1": ["nginx:1.10"], "web-2": ["nginx:1.10"]}


def test_on_delete_replaces_nothing_until_a_pod_is_deleted(stateful) -> None:
    sts = stateful(web(replicas=2, updateStrategy={"type": "OnDelete"}))
    sts.update_image("nginx", "nginx:1.10")
    sts.sleep(1.5)
    assert all(p.get("images") == ["nginx:1.9.1"] for p in sts.recorder.snapshot(POD))
    sts.delete_pod(1)
    sts.assert_ordered_rolling_update()
    assert sts.recorder.current[(POD, "web-1")].get("images") == ["nginx:1.10"]


def test_rollout_with_max_unavailable_is_judged_by_its_budget(stateful) -> None:
    # maxUnavailable > 1 (feature gate MaxUnavailableStatefulSet, enabled on the local cluster): replacing
    # up to 3 pods at once is what the user configured; the verdict says one-at-a-time is relaxed.
    sts = stateful(
        web(
            replicas=3,
            podManagementPolicy="Parallel",
            updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 3}},
        )
    )
    sts.update_image("nginx", "nginx:1.10")
    verdict = sts.assert_ordered_rolling_update()
    assert any("maxUnavailable is 3: one pod at a time is relaxed" in n for n in verdict.notes)
    deleting = [e for e in sts.timeline.of(POD) if e.get("deleting")]
    first_three = {e.name for e in deleting[:3]}
    assert len(first_three) >= 2, "the rollout was expected to replace several pods at once"


def test_start_ordinal_is_honoured(stateful) -> None:
    sts = stateful(web(replicas=2, ordinals={"start": 5}))
    sts.delete_pod(5)
    sts.assert_ordered_creation()
    sts.assert_stable_identity()
    sts.assert_pod_dns()
    assert sorted(p.name for p in sts.recorder.snapshot(POD)) == ["web-5", "web-6"]


def test_guarantee_not_exercised_is_not_a_pass(stateful) -> None:
    sts = stateful(web(replicas=2))
    with pytest.raises(GuaranteeFailed, match="never scaled down during the run"):
        sts.assert_ordered_termination()
    with pytest.raises(GuaranteeFailed, match="never rolled out a new revision"):
        sts.assert_ordered_rolling_update()


def test_scale_up_right_after_a_deleting_scale_down_does_not_stall(stateful) -> None:
    # whenScaled: Delete: the scale-down settles only when the claims of the removed ordinals are gone,
    # so the scale-up that follows at once is not stalled by a claim still being deleted.
    sts = stateful(web(replicas=3, claims=True, persistentVolumeClaimRetentionPolicy={"whenScaled": "Delete"}))
    sts.scale(1, timeout=60)
    assert not any(c.name in ("www-web-1", "www-web-2") for c in sts.recorder.snapshot("PersistentVolumeClaim"))
    sts.scale(3, timeout=60)
    assert sorted(p.name for p in sts.view.pods()) == ["web-0", "web-1", "web-2"]


def test_a_step_that_cannot_settle_names_the_schedulers_reason(stateful) -> None:
    # Four replicas that must not share a node, on three nodes: web-3 stays Pending.
    spread = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "nginx"}}, "topologyKey": "kubernetes.io/hostname"}
            ]
        }
    }
    body = statefulset(replicas=3)
    body["spec"]["template"]["spec"]["affinity"] = spread
    sts = stateful([service(), body])
    with pytest.raises(StepTimeout) as failed:
        sts.scale(4, timeout=12)
    text = str(failed.value)
    assert "web-3 is not scheduled:" in text and "anti-affinity" in text, text
