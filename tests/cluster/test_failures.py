"""Issue 13 (part): bad rollouts and recovery through the Python API, on simulated and real nodes."""

from __future__ import annotations

from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "examples" / "web"
BROKEN = "127.0.0.1:5999/nginx:broken"  # a registry on loopback that is not there: nothing leaves the machine


def _spec(policy: str) -> str:
    return f"""
        import yaml
        from pytest_stateful import GuaranteeFailed, assert_rollout_recovers

        def test_bad_rollout(stateful):
            docs = list(yaml.safe_load_all(open("{WEB / "statefulset.yaml"}")))
            docs[0]["spec"]["replicas"] = 3
            docs[0]["spec"]["podManagementPolicy"] = "{policy}"
            web = stateful(["{WEB / "svc.yaml"}", *docs], timeout=20)
            web.bad_rollout("nginx", "{BROKEN}")
            web.sleep(2)
            web.update_image("nginx", "nginx:1.10", settle=False)
            try:
                verdict = assert_rollout_recovers(web)
                print("VERDICT passed", verdict.summary)
            except GuaranteeFailed as failed:
                print("VERDICT failed", failed.verdict.summary)
                print("WHY", failed.verdict.diagnosis[0])
    """


def test_on_a_real_node_an_unpullable_image_leaves_ordered_ready_stuck(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(_spec("OrderedReady"))
    result = pytester.runpytest("--stateful-node=real", "--stateful-image=pytest-stateful.local/tools", "-s")
    result.assert_outcomes(passed=1)
    # The broken pod is named with what the kubelet says: the image cannot be pulled.
    result.stdout.fnmatch_lines(
        [
            "VERDICT failed the rollout of web did not recover: web-2 is on revision web-*"
            "(not the update revision web-*), NotReady (Pending), *ImagePull*",
            "WHY podManagementPolicy OrderedReady: the controller waits for web-2 to be Running and Ready*",
        ]
    )


def test_parallel_with_its_budget_used_up_by_a_broken_pod_stays_stuck_and_says_why(pytester: pytest.Pytester) -> None:
    # maxUnavailable 1 (the default) and one broken pod: the budget is used up, so the MaxUnavailableStatefulSet
    # rolling update (on in the local cluster) replaces nothing (#137409); examples/failures shows the
    # Parallel run that recovers (a canary with maxUnavailable 2).
    pytester.makepyfile(_spec("Parallel"))
    result = pytester.runpytest("-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "VERDICT failed the rollout of web did not recover: web-2 *",
            "WHY podManagementPolicy Parallel with maxUnavailable 1*",
        ]
    )
