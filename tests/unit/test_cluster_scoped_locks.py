"""The locks behind a chart's cluster-scoped names, without a cluster: who waits, who fails at once,
and that a refused or released name is free again."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_stateful.errors import ManifestError, StepError
from pytest_stateful.workload import cluster_scoped
from pytest_stateful.workload.cluster_objects import Global

ROLE = Global("rbac.authorization.k8s.io/v1", "ClusterRole", "kv-reader")
BINDING = Global("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "kv-reader")


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """What the API server would say: which names exist; deletes make them go."""
    state: dict[str, Any] = {"existing": set(), "deleted": []}
    monkeypatch.setenv("PYTEST_STATEFUL_CACHE", str(tmp_path))
    monkeypatch.setattr(cluster_scoped, "exists", lambda _cluster, obj: obj in state["existing"])
    monkeypatch.setattr(cluster_scoped.Holder, "_annotate", lambda self: None)

    def delete_ours(_cluster: Any, namespace: str, objects: Any) -> list[str]:
        state["deleted"] += [(namespace, o) for o in objects]
        return []

    monkeypatch.setattr(cluster_scoped, "delete_ours", delete_ours)
    return state


def _holder(namespace: str, context: str = "kwok-pytest-stateful") -> cluster_scoped.Holder:
    cluster = SimpleNamespace(kubeconfig=Path("/k"), context=context)
    return cluster_scoped.Holder(cluster, namespace)  # type: ignore[arg-type]


def test_a_held_name_makes_another_test_wait_and_then_fail_naming_it(world: dict[str, Any]) -> None:
    first, second = _holder("ns-a"), _holder("ns-b")
    first.take([ROLE], timeout=1)
    notes: list[str] = []
    with pytest.raises(StepError, match=r"ClusterRole kv-reader is cluster-scoped and another test on this machine"):
        second.take([ROLE], timeout=0.5, note=notes.append)
    assert notes and "waiting for ClusterRole kv-reader" in notes[0]
    with pytest.raises(StepError, match="a name added after the install does not wait"):
        second.take([ROLE], timeout=0)
    assert first.release(wait=0) == []
    second.take([ROLE], timeout=0)  # free once released
    assert world["deleted"] == [("ns-a", ROLE)]


def test_a_name_that_exists_is_refused_and_every_lock_of_that_take_is_let_go(world: dict[str, Any]) -> None:
    world["existing"].add(BINDING)
    holder = _holder("ns-a")
    with pytest.raises(ManifestError, match="ClusterRoleBinding kv-reader already exists in the cluster"):
        holder.take([ROLE, BINDING], timeout=0)
    assert holder.held == []
    _holder("ns-b").take([ROLE], timeout=0)  # the refused take kept no lock


def test_the_same_name_on_another_cluster_does_not_wait(world: dict[str, Any]) -> None:
    _holder("ns-a", context="kwok-pytest-stateful").take([ROLE], timeout=0)
    _holder("ns-b", context="kwok-pytest-stateful-1-35").take([ROLE], timeout=0)


def test_what_could_not_be_deleted_keeps_the_namespace_registered(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cluster_scoped, "delete_ours", lambda *_a: ["ClusterRole kv-reader: no answer"])
    cluster = SimpleNamespace(kubeconfig=Path("/k"), context="c")
    holder = cluster_scoped.hold(cluster, "ns-kept")  # type: ignore[arg-type]
    holder.take([ROLE], timeout=0)
    assert cluster_scoped.release("ns-kept") == ["ClusterRole kv-reader: no answer"]
    assert holder.held == [ROLE]  # still listed: the session's end tries again
    monkeypatch.setattr(cluster_scoped, "delete_ours", lambda *_a: [])
    assert cluster_scoped.release("ns-kept") == []
    assert cluster_scoped.release("ns-kept") == []  # gone from the registry
