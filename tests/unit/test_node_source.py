"""Issue 12: where node-level evidence came from, decided per pod and per node, said per guarantee."""

from __future__ import annotations

from typing import Any

from kubernetes.client import ApiException
from recorded import SUBJECT, load, renumbered

from pytest_stateful.checks import run_check
from pytest_stateful.checks.verdict import node_source
from pytest_stateful.cluster.handle import ClusterHandle
from pytest_stateful.timeline import Entry

SIMULATED = "on a simulated node (KWOK), where no container runs"


def probe(pod: str, ok: bool = True, via: str = "ephemeral probe", kind: str = "hostname") -> Entry:
    return Entry(0, 50.0, "Probe", "exec", pod, data={"probe": kind, "pod": pod, "ok": ok, "via": via, "message": "m"})


def missing(pod: str, reason: str = SIMULATED) -> Entry:
    return Entry(0, 50.0, "Probe", "unavailable", pod, data={"pod": pod, "reason": reason})


def test_a_mixed_cluster_says_which_pods_had_node_level_evidence_and_why_the_others_did_not() -> None:
    timeline = load("good")
    entries = [probe("web-0"), probe("web-1", via="own container"), missing("web-2")]
    verdict = run_check("stable_identity", renumbered([*timeline.entries, *entries]), SUBJECT)
    assert verdict.node == "passed" and verdict.fidelity == "node"
    assert verdict.node_source == (
        f"ephemeral probe (web-0); own container (web-1); not available for web-2: {SIMULATED}"
    )
    assert f"node-level evidence: passed - {verdict.node_source}" in verdict.explain()
    assert verdict.to_dict()["node_source"] == verdict.node_source


def test_without_any_probe_result_the_verdict_stays_at_api_level_and_says_why() -> None:
    timeline = load("good")
    forbidden = "forbidden: pods/exec (the account may not create pods/exec in namespace ns)"
    entries = [missing("web-0", forbidden), missing("web-1", forbidden)]
    verdict = run_check("stable_identity", renumbered([*timeline.entries, *entries]), SUBJECT)
    assert verdict.passed and verdict.fidelity == "api" and verdict.node == "not available"
    assert verdict.node_source == f"not available: {forbidden} (web-0, web-1)"


def test_a_failed_probe_through_the_ephemeral_container_fails_the_verdict() -> None:
    timeline = load("good")
    verdict = run_check("stable_identity", renumbered([*timeline.entries, probe("web-0", ok=False)]), SUBJECT)
    assert verdict.status == "failed" and verdict.node == "failed"
    assert verdict.node_source == "ephemeral probe (web-0)"


def test_no_probe_at_all_is_said_too() -> None:
    assert node_source([], []) == "not available: no node-level probe ran"


def test_a_pod_probed_after_it_was_unavailable_counts_as_probed() -> None:
    # A pod whose probe container was still starting at one step and ran at the next.
    assert node_source([probe("web-0")], [missing("web-0", "the probe container did not run")]) == (
        "ephemeral probe (web-0)"
    )


class Nodes:
    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers, self.asked = answers, 0

    def read_node(self, name: str, **_: Any) -> Any:
        self.asked += 1
        answer = self.answers[name]
        if isinstance(answer, Exception):
            raise answer
        return answer


class Meta:
    def __init__(self, annotations: dict[str, str]) -> None:
        self.metadata = type("M", (), {"annotations": annotations})()


class NodesOnly(ClusterHandle):
    """A handle whose API answers only node reads."""

    nodes: Any = None

    @property
    def core(self) -> Any:
        return self.nodes


def test_the_node_kind_is_decided_per_node_from_its_kwok_annotations() -> None:
    nodes = Nodes(
        {
            "kwok-0": Meta({"kwok.x-k8s.io/node": "fake"}),
            "real-0": Meta({"node.alpha.kubernetes.io/ttl": "0"}),
            "hidden": ApiException(status=403, reason="Forbidden"),
        }
    )
    cluster = NodesOnly("existing", None, "ctx", None)  # type: ignore[arg-type]
    cluster.nodes = nodes
    assert cluster.no_containers("kwok-0") == SIMULATED
    assert cluster.no_containers("real-0") == ""
    # A namespaced account may not read nodes: the probe is tried, and its failure says why.
    assert cluster.no_containers("hidden") == ""
    assert cluster.no_containers("") == "not scheduled on a node"
    asked = nodes.asked
    cluster.no_containers("kwok-0")
    assert nodes.asked == asked  # asked once per node


def test_a_recreated_pod_that_could_not_be_probed_is_named_though_its_predecessor_was() -> None:
    # web-1 passed its probe, then was recreated where no probe runs: the verdict must not hide that.
    old = Entry(0, 10.0, "Probe", "exec", "web-1", uid="old", data={"probe": "hostname", "pod": "web-1", "ok": True})
    new = Entry(0, 20.0, "Probe", "unavailable", "web-1", uid="new", data={"pod": "web-1", "reason": SIMULATED})
    assert node_source([old], [new]) == f"own container (web-1); not available for web-1: {SIMULATED}"
