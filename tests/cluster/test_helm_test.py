"""Issue 14: `helm_test` runs a chart's tests where a node runs containers (the local real node), and
refuses to count a test pod that ran on a simulated node, where nothing runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pytest_stateful.cluster.local import LocalCluster

CHARTS = Path(__file__).resolve().parents[2] / "examples" / "charts"
TOOLS = "pytest-stateful.local/tools"


def _kv(pytester: pytest.Pytester, peers: int, test: str = "", timeout: int = 60) -> None:
    shutil.copytree(CHARTS / "kv", pytester.path / "kv")
    # The real node runs containers from its tools image (sh -c "httpd ..."): without kv's --peers args.
    template = pytester.path / "kv" / "templates" / "statefulset.yaml"
    template.write_text(
        "\n".join(ln for ln in template.read_text().splitlines() if "args:" not in ln and "--peers" not in ln) + "\n"
    )
    (pytester.path / "kv.stateful.yaml").write_text(
        "name: kv\n"
        f"chart: {{path: kv, values: {{replicas: 2, test: {{image: '{TOOLS}:1', peers: {peers}{test}}}}}}}\n"
        f"steps: [{{helm_test: {{}}, timeout: {timeout}}}, {{delete_pod: 1}}]\n"
        "expect: [stable_identity]\n"
    )


def test_on_the_real_node_the_chart_test_runs_and_passes(pytester: pytest.Pytester, real: LocalCluster) -> None:
    _kv(pytester, peers=2)
    result = pytester.runpytest("--stateful-node=real", f"--stateful-image={TOOLS}", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_on_the_real_node_a_failing_chart_test_fails_the_step_with_its_logs(
    pytester: pytest.Pytester, real: LocalCluster
) -> None:
    _kv(pytester, peers=3)  # kv-2 does not exist: its record does not resolve
    result = pytester.runpytest("--stateful-node=real", f"--stateful-image={TOOLS}", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*step 1 (helm_test*) failed:", "*helm test kv failed: *", "*kv-2.kv-headless.*"])


def test_on_simulated_nodes_a_chart_test_proves_nothing_and_fails_the_step(pytester: pytest.Pytester) -> None:
    # Before helm waits for a test pod that KWOK would only play; a test pod on one of a mixed cluster's
    # simulated nodes is caught after the run (test_a_test_pod_on_a_simulated_node_of_a_mixed_cluster...).
    _kv(pytester, peers=2)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*helm_test: every node of this cluster is simulated (KWOK: node-*), where no container runs: a chart "
            "test there proves nothing; run it where nodes run containers*"
        ]
    )


def test_a_test_pod_on_a_simulated_node_of_a_mixed_cluster_fails_the_step(
    pytester: pytest.Pytester, real: LocalCluster, simulated_node: str
) -> None:
    # The test pod is sent to the KWOK node beside the real one: KWOK plays it Running and never runs it.
    placed = (
        f", nodeSelector: {{kubernetes.io/hostname: {simulated_node}}}, "
        "tolerations: [{key: pytest-stateful.io/simulated, operator: Exists}]"
    )
    _kv(pytester, peers=2, test=placed, timeout=10)
    result = pytester.runpytest("--stateful-node=real", f"--stateful-image={TOOLS}", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*helm_test: test pod kv-test-peers was on a simulated node (KWOK), where no container runs: a test no "
            "container ran proves nothing, passed or failed; run it where nodes run containers*"
        ]
    )
