"""Issue 4: the examples pass on the local cluster, and examples/failing fails with the right messages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", *args],
        capture_output=True,
        text=True,
        cwd=EXAMPLES.parent,
        env={**os.environ, **(env or {})},
        timeout=900,
    )


def test_failing_examples_are_left_out_of_the_default_collection() -> None:
    result = _run("--collect-only", "-q", "examples")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "failing" not in result.stdout
    assert "web.stateful.yaml::web keeps its identity" in result.stdout


def test_failing_examples_fail_with_the_right_messages() -> None:
    result = _run("examples/failing", "-n", "2", env={"PYTEST_STATEFUL_FAILING": "1"})
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "5 failed" in out
    expected = [
        "pod_dns: FAILED (api level) - serviceName 'nginx' of web names no Service in",
        "pod_dns: FAILED (api level) - Service nginx is not headless (clusterIP",
        "s before web-0 became Ready",
        "podManagementPolicy is Parallel",
        "started terminating while web-4 was terminating",
        "stable_storage: FAILED (api level) - claim www-web-",
        "persistentVolumeClaimRetentionPolicy.whenScaled: Delete",
        "pod_dns: FAILED (api level) - Service nginx selects {app: ngnix}, which matches no pod of web",
    ]
    for text in expected:
        assert text in out, f"missing {text!r} in:\n{out}"
    assert "Traceback" not in out
    # The failing step or guarantee is quoted from the YAML with its line.
    assert "parallel.stateful.yaml:10: expect: [ordered_creation, ordered_termination]" in out


def test_the_broken_failure_examples_fail_naming_the_stuck_pod_the_availability_dip_and_the_second_incarnation() -> (
    None
):
    result = _run("examples/failures/broken", env={"PYTEST_STATEFUL_FAILING": "1"})
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "3 failed" in out, out
    for text in [
        "at_most_one: FAILED (api level) - web-1 was replaced at ",
        "had been force-deleted by the test (force_delete_pod) on node node-",
        "which was failed by the test (fail_node) and unreachable (Ready Unknown) at ",
        "and not out of service: nobody confirmed that its containers stopped",
        "rollout_recovers: FAILED (api level) - the rollout of web did not recover: web-2 is on revision",
        "(not the update revision web-",
        "NotReady (Pending)",
        "podManagementPolicy OrderedReady: the controller waits for web-2 to be Running and Ready",
        "(kubernetes/kubernetes#67250)",
        "manual step that unsticks it: kubectl delete pod web-2 -n stateful-",
        "could not settle (timed out after 20 s",
        "availability: FAILED (api level) - during drain_node, only 0 of 3 pods of web were available (below 2) for",
        "down: web-0, web-1, web-2",
        "no PodDisruptionBudget selects the pods of web: nothing limits evictions",
    ]:
        assert text in out, f"missing {text!r} in:\n{out}"
    assert "Traceback" not in out


@pytest.mark.parametrize("directory", ["web", "zookeeper", "postgres", "canary", "charts", "conformance", "failures"])
def test_example_directory_passes(directory: str) -> None:
    result = _run(f"examples/{directory}", "-q")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout
