"""Issue 13: node failure (fail_node, out_of_service, force_delete_pod, restore_node) and at_most_one,
on simulated nodes and, with node-level evidence from containerd, on the real node."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from pytest_stateful.cluster.failures import FAILED_HOLDER, FAILED_LEASE_SECONDS, LEASE_NAMESPACE, NodeFailer
from pytest_stateful.cluster.local import LocalCluster
from pytest_stateful.timeline import OUT_OF_SERVICE
from pytest_stateful.workload.cleanup import this_process

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WEB = EXAMPLES / "web"
REAL = ["--stateful-node=real", "--stateful-image=pytest-stateful.local/tools", "-p", "no:cacheprovider"]


def _report(reports: Path) -> dict[str, Any]:
    (path,) = reports.glob("*.json")
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def _nodes(cluster: LocalCluster) -> list[Any]:
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig), context=cluster.context)
    try:
        return list(client.CoreV1Api(api).list_node().items)
    finally:
        api.close()


def _whole(node: Any) -> bool:
    ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
    return ready and not any(t.key == OUT_OF_SERVICE for t in node.spec.taints or [])


def test_a_failed_node_left_out_of_service_is_restored_at_teardown_with_recovery_times(
    pytester: pytest.Pytester,
) -> None:
    for name in ("svc.yaml", "ordered.yaml"):
        shutil.copy(EXAMPLES / "failures" / name, pytester.path / name)
    (pytester.path / "oos.stateful.yaml").write_text(
        "name: out of service, never restored by the spec\n"
        "manifests: [svc.yaml, ordered.yaml]\n"
        "steps:\n  - fail_node: 2\n  - out_of_service: 2\n"
        "expect: [at_most_one, stable_storage]\n"
    )
    reports = pytester.path / "reports"
    result = pytester.runpytest("-p", "no:cacheprovider", f"--stateful-report-dir={reports}")
    result.assert_outcomes(passed=1)
    verdict = _report(reports)["verdicts"]["at_most_one"]
    assert verdict["status"] == "passed", verdict
    timings = verdict["timings"]
    assert timings["claims_reattached"] is True
    # The grace period of the node lifecycle controller (20 s here), then the pod GC (every 20 s).
    assert 15 < timings["replaced_after_fail_s"] < 90, timings
    assert 0 < timings["ready_after_out_of_service_s"] < 60, timings
    assert "Ready" in verdict["summary"] and "after out_of_service" in verdict["summary"]
    # Teardown gave the node back: Ready, heartbeats from KWOK again, no out-of-service taint.
    assert all(_whole(n) for n in _nodes(LocalCluster.current("simulated")))


def test_the_real_node_shows_the_force_deleted_pods_container_running_beside_its_replacement(
    pytester: pytest.Pytester, simulated_node: str, real: LocalCluster
) -> None:
    docs = list(yaml.safe_load_all((WEB / "statefulset.yaml").read_text()))
    spec = docs[0]["spec"]
    spec["replicas"] = 1
    pod = spec["template"]["spec"]
    # Starts on the real node; its replacement can go only to the simulated one (the failed real node
    # is tainted unreachable by then).
    pod["tolerations"] = [{"key": "pytest-stateful.io/simulated", "operator": "Exists", "effect": "NoSchedule"}]
    pod["affinity"] = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "preference": {
                        "matchExpressions": [
                            {"key": "kubernetes.io/hostname", "operator": "In", "values": ["localhost"]}
                        ]
                    },
                }
            ]
        }
    }
    (pytester.path / "statefulset.yaml").write_text(yaml.safe_dump_all(docs))
    shutil.copy(WEB / "svc.yaml", pytester.path / "svc.yaml")
    (pytester.path / "force.stateful.yaml").write_text(
        "name: force delete on the failed real node\n"
        "manifests: [svc.yaml, statefulset.yaml]\n"
        "steps:\n  - fail_node: 0\n  - force_delete_pod: 0\n  - restore_node: 0\n"
        "expect: [at_most_one]\n"
    )
    reports = pytester.path / "reports"
    result = pytester.runpytest(*REAL, f"--stateful-report-dir={reports}")
    out = result.stdout.str()
    result.assert_outcomes(failed=1)
    assert "at_most_one: FAILED (node level)" in out, out
    assert "had been force-deleted by the test (force_delete_pod)" in out
    assert "node level: the container runtime of node localhost still ran nginx (pid " in out, out
    assert "while its replacement (uid " in out and f"was Running on node {simulated_node}" in out, out
    verdict = _report(reports)["verdicts"]["at_most_one"]
    assert verdict["fidelity"] == "node" and verdict["node"] == "failed"
    assert verdict["node_source"] == "container runtime of the failed node (localhost)"
    # The spec restored the node: the kubelet runs again and the node is Ready.
    assert real.node.kubelet_running()
    deadline = time.monotonic() + 60
    while not all(_whole(n) for n in _nodes(real) if n.metadata.name == "localhost"):
        assert time.monotonic() < deadline, "the real node did not come back"
        time.sleep(1)


def test_a_node_a_killed_session_left_failed_is_restored_by_the_next_one_and_a_live_ones_is_not() -> None:
    cluster = LocalCluster.current("simulated")
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig), context=cluster.context)
    leases = client.CoordinationV1Api(api)
    nodes = NodeFailer(api)
    node = "node-000002"
    gone = subprocess.Popen(["true"])
    gone.wait()
    killed = dataclasses.replace(this_process(), pid=gone.pid)
    try:
        # A session that is alive (this one) keeps its failure.
        nodes._lease(
            node, FAILED_HOLDER, FAILED_LEASE_SECONDS, {**this_process().labels(), **this_process().annotations()}
        )
        assert nodes.recover_abandoned() == []
        # One whose process is gone has it undone: the Lease expires and KWOK takes the node back.
        nodes._lease(node, FAILED_HOLDER, FAILED_LEASE_SECONDS, {**killed.labels(), **killed.annotations()})
        assert nodes.recover_abandoned() == [node]
        deadline = time.monotonic() + 30
        while leases.read_namespaced_lease(node, LEASE_NAMESPACE).spec.holder_identity == FAILED_HOLDER:
            assert time.monotonic() < deadline, "KWOK did not take the Lease back"
            time.sleep(0.5)
    finally:
        nodes.restore(node)
        api.close()
