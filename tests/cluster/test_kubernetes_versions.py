"""Issue 14: a spec run against two Kubernetes versions, and a feature gate compared on and off.

The clusters of other versions are started by the plugin itself (as a user's first matrix run
starts them) and stopped at the end of this module, so the rest of the suite has the CPU back.
"""

from __future__ import annotations

import fnmatch
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_stateful.cluster.local import LocalCluster
from pytest_stateful.cluster.versions import Target

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SPEC = f"""
name: web
manifests: [{EXAMPLES / "web" / "svc.yaml"}, {EXAMPLES / "web" / "statefulset.yaml"}]
steps:
  - scale: 3
  - delete_pod: 1
expect: [ordered_creation, stable_identity]
"""


@pytest.fixture(scope="module", autouse=True)
def _stop_the_clusters_this_module_started() -> Iterator[None]:
    targets = [Target("1.35"), Target("1.35", (("MaxUnavailableStatefulSet", False),))]
    before = {t: LocalCluster.current("simulated", t).is_up() for t in targets}
    yield
    for target, was_up in before.items():
        if not was_up:
            LocalCluster.current("simulated", target).down(log=lambda _line: None)


def test_a_spec_on_two_versions_says_the_version_in_every_id_row_and_report(pytester: pytest.Pytester) -> None:
    pytester.makefile(".stateful.yaml", web=SPEC)
    result = pytester.runpytest(
        "-v", "--stateful-kubernetes", "1.34,1.35", "--stateful-report-dir", "reports", "--junitxml", "junit.xml"
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "stateful: cluster provider local, Kubernetes 1.34; 1.35 (a local cluster each)*",
            "web.stateful.yaml::web[[]k8s-1.34] PASSED*",
            "web.stateful.yaml::web[[]k8s-1.35] PASSED*",
            "test *kubernetes *creation *identity",
            "web.stateful.yaml::web[[]k8s-1.34] *v1.34.4 *passed *passed",
            "web.stateful.yaml::web[[]k8s-1.35] *v1.35.4 *passed *passed",
        ]
    )
    reports = {path.name: json.loads(path.read_text()) for path in (pytester.path / "reports").glob("*.json")}
    assert {(r["subject"]["kubernetes"], r["subject"]["feature_gates"]) for r in reports.values()} == {
        ("v1.34.4", ""),
        ("v1.35.4", ""),
    }
    for name, report in reports.items():
        assert report["subject"]["kubernetes"].removeprefix("v")[:4] in name  # the version is in the file name too
        assert f"Kubernetes {report['subject']['kubernetes']}" in report["subject"]["cluster"]
    html = [p.read_text() for p in (pytester.path / "reports").glob("*.html")]
    assert len(html) == 2 and all("Kubernetes v1.3" in page for page in html)
    junit = ET.parse(pytester.path / "junit.xml").getroot()
    versions = {
        case.get("name"): {p.get("value") for p in case.iter("property") if p.get("name") == "stateful.kubernetes"}
        for case in junit.iter("testcase")
    }
    assert versions == {"web[k8s-1.34]": {"v1.34.4"}, "web[k8s-1.35]": {"v1.35.4"}}


def test_a_feature_gate_decides_whether_the_fix_replaces_a_broken_parallel_pod(pytester: pytest.Pytester) -> None:
    # kubernetes#137409: with MaxUnavailableStatefulSet on, one broken pod uses up maxUnavailable 1.
    result = pytester.runpytest(
        "-v", EXAMPLES / "versions", "--stateful-kubernetes", "1.35, 1.35 MaxUnavailableStatefulSet=false"
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines_random(
        [
            "*parallel-fix.stateful.yaml::the fix replaces a broken pod on Parallel[[]k8s-1.35] FAILED*",
            "*parallel-fix.stateful.yaml::the fix replaces a broken pod on Parallel"
            "[[]k8s-1.35-MaxUnavailableStatefulSet=false] PASSED*",
            "  rollout_recovers: FAILED (api level) - the rollout of web did not recover: web-2 is on revision *",
            # Found here: the note ended in "last seen:)" with nothing after it.
            "  note: step 3 (update_image: *) could not settle (timed out after 30 s waiting for web to settle); "
            "0 later step(s) skipped",
        ]
    )


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_stateful.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["up", "--kubernetes", "1.35", "--feature-gates", "MaxUnavailableStatefulSt=false"],
            "pytest-stateful: --feature-gates: MaxUnavailableStatefulSt is not a feature gate kube-apiserver v1.35.4 "
            "can set (did you mean MaxUnavailableStatefulSet?); `*/kube-apiserver --help` lists them",
        ),
        (
            ["up", "--kubernetes", "1.35", "--node", "real"],
            "pytest-stateful: the real node runs Kubernetes 1.34 only (its kubelet is built at v1.34.4): other "
            "versions run with simulated nodes (leave out --node real)",
        ),
        (["up", "--kubernetes", "1.29"], "pytest-stateful: --kubernetes: Kubernetes '1.29' is not pinned; choose *"),
        (
            ["env", "--kubernetes", "1.35", "--feature-gates", "StatefulSetAutoDeletePVC=false"],
            "pytest-stateful: the local cluster is not running: start it with `pytest-stateful cluster up "
            "--kubernetes 1.35 --feature-gates StatefulSetAutoDeletePVC=false`",
        ),
    ],
)
def test_version_cluster_input_is_refused_in_one_line_and_starts_nothing(args: list[str], message: str) -> None:
    before = sorted(p.name for p in (LocalCluster.current().root / "run").iterdir())
    result = _cli("cluster", *args)
    assert result.returncode in (1, 2)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fnmatch.fnmatch(lines[0], message), lines[0]
    assert sorted(p.name for p in (LocalCluster.current().root / "run").iterdir()) == before


def test_a_version_that_is_not_built_names_the_build_command(tmp_path: Path) -> None:
    env = {"PYTEST_STATEFUL_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = _cli("cluster", "up", "--kubernetes", "1.36", env=env)
    assert result.returncode == 1
    assert result.stderr.strip().endswith("is not built: run `pytest-stateful cluster build --kubernetes 1.36` first")
