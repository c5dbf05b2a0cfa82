"""Kubernetes versions of the local cluster: pins, matrix targets, names and the table's column."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pytest_stateful.checks import Verdict
from pytest_stateful.cluster.build import KUBERNETES_VERSION, components
from pytest_stateful.cluster.local import LocalCluster, LocalClusterConfig
from pytest_stateful.cluster.versions import DEFAULT_MINOR, PINS, Target, parse_gates, parse_targets
from pytest_stateful.errors import ClusterError, UsageError
from pytest_stateful.report import guarantee_table
from pytest_stateful.report.files import report_name

DOCS = Path(__file__).parents[2] / "docs" / "clusters.md"


def test_each_pin_is_a_patch_of_its_minor_and_the_default_is_pinned() -> None:
    for minor, patch in PINS.items():
        assert re.fullmatch(rf"v{re.escape(minor)}\.\d+", patch)
    assert PINS[DEFAULT_MINOR] == KUBERNETES_VERSION


def test_the_docs_table_shows_every_pin() -> None:
    text = DOCS.read_text()
    for minor, patch in PINS.items():
        assert f"| {minor} | {patch} |" in text


def test_a_control_plane_per_minor_and_one_kubelet_at_the_default() -> None:
    built = components(with_kubelet=True, kubernetes=["1.35", "1.34", "1.35"])
    planes = [c.version for c in built if c.name == "kubernetes"]
    assert planes == ["v1.35.4", "v1.34.4"]
    assert [c.version for c in built if c.name == "kubelet"] == [KUBERNETES_VERSION]
    # Each version builds into its own directory: the default's cache stays valid beside the others.
    dirs = {c.bin_dir(Path("/c")) for c in built if c.name == "kubernetes"}
    assert dirs == {Path("/c/bin/kubernetes-v1.35.4"), Path("/c/bin/kubernetes-v1.34.4")}


def test_matrix_entries_are_a_version_and_optional_gates() -> None:
    targets = parse_targets("1.34, v1.35\n1.35 MaxUnavailableStatefulSet=FALSE  Foo=true,1.34", "x")
    assert targets == (
        Target("1.34"),
        Target("1.35"),
        Target("1.35", (("Foo", True), ("MaxUnavailableStatefulSet", False))),
    )
    assert [t.id for t in targets] == ["k8s-1.34", "k8s-1.35", "k8s-1.35-Foo=true-MaxUnavailableStatefulSet=false"]
    assert targets[2].label == "1.35 Foo=true MaxUnavailableStatefulSet=false"
    assert targets[2].feature_gates == {"MaxUnavailableStatefulSet": False, "Foo": True}
    assert targets[1].feature_gates == {"MaxUnavailableStatefulSet": True}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1.32", "Kubernetes '1.32' is not pinned; choose one of 1.33 (v1.33.13)"),
        ("1.34.2", "Kubernetes 1.34.2 is not pinned: 1.34 is pinned to v1.34.4"),
        ("latest", "Kubernetes 'latest' is not pinned"),
        ("1.35 Gate=yes", "feature gate 'Gate=yes' is not Name=true or Name=false"),
    ],
)
def test_a_bad_entry_is_refused_in_one_sentence(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        parse_targets(text, "--stateful-kubernetes")


def test_gates_in_kubernetes_syntax() -> None:
    assert parse_gates("B=false,A=true", "--feature-gates") == (("A", True), ("B", False))
    assert Target("1.35", parse_gates("B=false,A=true", "g")).gates_text == "A=true,B=false"


def test_each_target_is_a_cluster_of_its_own() -> None:
    default = LocalClusterConfig.for_node("simulated", Target())
    assert (default.name, default.api_port, default.dns_port) == ("pytest-stateful", 16443, 10053)
    other = LocalClusterConfig.for_node("simulated", Target("1.35"))
    gated = LocalClusterConfig.for_node("simulated", Target("1.35", (("MaxUnavailableStatefulSet", False),)))
    gated_on = LocalClusterConfig.for_node("simulated", Target("1.35", (("MaxUnavailableStatefulSet", True),)))
    assert other.name == "pytest-stateful-1-35"
    assert len({other.name, gated.name, gated_on.name, default.name}) == 4
    assert gated.name.startswith("pytest-stateful-1-35-g")
    # Ports are chosen when it starts; the target is kept in its saved settings.
    assert (other.api_port, other.dns_port) == (0, 0)
    assert gated.target == Target("1.35", (("MaxUnavailableStatefulSet", False),))


def test_ports_are_chosen_past_those_other_clusters_saved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Clusters of this machine may hold these ports right now; the choice among free ones is tested.
    monkeypatch.setattr("pytest_stateful.cluster.local._port_free", lambda port: True)
    first = LocalCluster(LocalClusterConfig.for_node("simulated", Target("1.35")), tmp_path)
    chosen = first._choose_ports()
    assert (chosen.api_port, chosen.dns_port) == (16535, 10135)
    (tmp_path / "run" / chosen.name).mkdir(parents=True)
    (tmp_path / "run" / chosen.name / "config.json").write_text(
        json.dumps({"name": chosen.name, "api_port": 16535, "dns_port": 10135, "kubernetes": "1.35"})
    )
    second = LocalCluster(
        LocalClusterConfig.for_node("simulated", Target("1.35", (("MaxUnavailableStatefulSet", False),))), tmp_path
    )
    assert (second._choose_ports().api_port, second._choose_ports().dns_port) == (16635, 10235)
    assert [c.config.name for c in LocalCluster.started(tmp_path)] == [chosen.name]


def test_the_real_node_runs_the_default_version_only() -> None:
    assert LocalClusterConfig.for_node("real", Target()).name == "pytest-stateful-real"
    with pytest.raises(ClusterError, match=r"the real node runs Kubernetes 1\.34 only"):
        LocalClusterConfig.for_node("real", Target("1.35"))


def test_the_table_gets_a_kubernetes_column_only_for_a_matrix() -> None:
    passed = {"ordered_creation": Verdict("ordered_creation", "passed", "")}
    failed = {"ordered_creation": Verdict("ordered_creation", "failed", "")}
    rows = {"a.yaml::web[k8s-1.35]": failed, "b.yaml::db[k8s-1.34]": passed, "a.yaml::web[k8s-1.34]": passed}
    versions = {
        "a.yaml::web[k8s-1.35]": "v1.35.4",
        "b.yaml::db[k8s-1.34]": "v1.34.4",
        "a.yaml::web[k8s-1.34]": "v1.34.4",
    }
    lines = guarantee_table(rows, versions)
    assert lines[0].split() == ["test", "kubernetes", "creation"]
    # One test's versions side by side.
    assert [line.split() for line in lines[1:4]] == [
        ["a.yaml::web[k8s-1.34]", "v1.34.4", "passed"],
        ["a.yaml::web[k8s-1.35]", "v1.35.4", "FAILED"],
        ["b.yaml::db[k8s-1.34]", "v1.34.4", "passed"],
    ]
    one = guarantee_table({"b.yaml::db": passed}, {"b.yaml::db": "v1.34.4"})
    assert one[0].split() == ["test", "creation"]


def test_gates_separated_by_commas_are_explained() -> None:
    with pytest.raises(UsageError, match="separate the gates of one entry with spaces, not commas"):
        parse_targets("1.35 MaxUnavailableStatefulSet=false,StatefulSetAutoDeletePVC=true", "x")


def test_ids_that_differ_only_at_the_end_keep_report_files_of_their_own() -> None:
    # Found in review: names cut at 150 characters made the gate's two values one file.
    base = "examples/conformance/scaling-predictable-order.stateful.yaml::" + "x" * 80
    on, off = (f"{base}[k8s-1.35-MaxUnavailableStatefulSet={v}]" for v in ("true", "false"))
    assert report_name(on) != report_name(off)
    assert len(report_name(on)) <= 150
    assert report_name("a.yaml::short") == "a.yaml_short"


def test_a_cluster_whose_minor_is_no_longer_pinned_can_still_be_described_and_stopped(tmp_path: Path) -> None:
    run = tmp_path / "run" / "pytest-stateful-1-29"
    run.mkdir(parents=True)
    (run / "config.json").write_text('{"name": "pytest-stateful-1-29", "kubernetes": "1.29"}')
    (cluster,) = LocalCluster.started(tmp_path)
    assert "Kubernetes v1.29 (no longer pinned)" in cluster.status_text()
    assert cluster._bin("kwokctl").name == "kwokctl"
    with pytest.raises(ClusterError, match="no longer pinned"):
        cluster._bin("kube-apiserver")
