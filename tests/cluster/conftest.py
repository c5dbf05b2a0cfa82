from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
from accounts import delete_namespace, namespaced_kubeconfig
from kubernetes import client, config

from pytest_stateful.cluster.build import cache_dir
from pytest_stateful.cluster.local import LocalCluster

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# pytester moves HOME; the inner runs must still find the one cache and cluster.
CACHE = cache_dir()


@pytest.fixture(autouse=True)
def _same_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_STATEFUL_CACHE", str(CACHE))


@pytest.fixture
def web_manifests() -> list[Path]:
    return [EXAMPLES / "web" / "svc.yaml", EXAMPLES / "web" / "statefulset.yaml"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/cluster" in str(item.path):
            item.add_marker(pytest.mark.stateful_cluster)


@pytest.fixture
def real() -> LocalCluster:
    cluster = LocalCluster.current("real")
    assert cluster.is_up(), "the real-node cluster is started by ./run tests"
    return cluster


@pytest.fixture
def simulated_node(real: LocalCluster) -> Any:
    """A KWOK node beside the real one (the real-node cluster's kwok-controller manages nodes annotated
    kwok.x-k8s.io/node=fake), tainted so that only a test that tolerates it is scheduled there."""
    api = config.new_client_from_config(config_file=str(real.kubeconfig), context=real.context)
    core = client.CoreV1Api(api)
    name = f"kwok-mixed-{secrets.token_hex(2)}"
    core.create_node(
        {
            "metadata": {
                "name": name,
                "annotations": {"kwok.x-k8s.io/node": "fake"},
                "labels": {"kubernetes.io/hostname": name, "type": "kwok"},
            },
            "spec": {"taints": [{"key": "pytest-stateful.io/simulated", "value": "true", "effect": "NoSchedule"}]},
        }
    )
    try:
        yield name
    finally:
        core.delete_node(name)
        api.close()


@pytest.fixture
def locked_down(real: LocalCluster, tmp_path: Path) -> Any:
    """make(ephemeral, exec_) -> (namespace, kubeconfig of an account that may write only in it)."""
    made: list[str] = []

    def make(ephemeral: bool = True, exec_: bool = True) -> tuple[str, Path]:
        namespace = f"locked-{secrets.token_hex(3)}"
        made.append(namespace)
        out = tmp_path / f"{namespace}.yaml"
        kubeconfig = namespaced_kubeconfig(real.kubeconfig, real.context, namespace, out, ephemeral, exec_)
        return namespace, kubeconfig

    yield make
    for namespace in made:
        delete_namespace(real.kubeconfig, real.context, namespace)
