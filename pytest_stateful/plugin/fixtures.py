"""The fixtures: the session's cluster, a fresh namespace per test, and the `stateful` factory."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from pytest_stateful.cluster.handle import ClusterHandle
from pytest_stateful.cluster.versions import Target
from pytest_stateful.plugin.progress import LiveProgress
from pytest_stateful.plugin.run import cluster_for, failed, fresh_namespace, handles_key, recording_key
from pytest_stateful.plugin.settings import Settings
from pytest_stateful.workload.handle import StatefulSetHandle
from pytest_stateful.workload.session import Recording


class StatefulFactory:
    """What the `stateful` fixture gives: call it with manifests, or `.chart(...)` for a Helm chart."""

    def __init__(self, recording: Recording) -> None:
        self._recording = recording

    def __call__(
        self, manifests: Any, statefulset: str | None = None, timeout: float | None = None, settle: bool = True
    ) -> StatefulSetHandle:
        return self._recording.statefulset(manifests, statefulset, timeout, settle)

    def chart(
        self,
        path: str | Path,
        release: str | None = None,
        values: Mapping[str, Any] | None = None,
        values_files: Sequence[str | Path] = (),
        statefulset: str | None = None,
        timeout: float | None = None,
        settle: bool = True,
        cluster_scoped: bool = False,
    ) -> StatefulSetHandle:
        """`helm install` the chart at `path` into the test namespace (then helm_upgrade, helm_rollback);
        `cluster_scoped=True` lets it create cluster-scoped objects (docs/charts.md)."""
        chart = {
            "path": str(Path(path).resolve()),
            "release": release or Path(path).name,
            "values": dict(values or {}),
            "values_files": [str(Path(f).resolve()) for f in values_files],
            "cluster_scoped": cluster_scoped,
        }
        return self._recording.chart(chart, statefulset, timeout, settle)


@pytest.fixture(scope="session", autouse=True)
def stateful_kubernetes(request: pytest.FixtureRequest) -> Target | None:
    """The Kubernetes version and feature gates this test runs against under --stateful-kubernetes
    (the plugin parametrizes every stateful test with it); None without a matrix.

    Autouse, so that a test that only carries @pytest.mark.stateful can be parametrized too; it
    does nothing for any other test."""
    target: Target | None = getattr(request, "param", None)
    return target


@pytest.fixture(scope="session")
def stateful_cluster(pytestconfig: pytest.Config, stateful_kubernetes: Target | None) -> ClusterHandle:
    """The cluster of this session, from the provider chosen with --stateful-cluster (under
    --stateful-kubernetes, the local cluster of this test's version)."""
    return cluster_for(pytestconfig, stateful_kubernetes)


@pytest.fixture
def stateful_namespace(request: pytest.FixtureRequest, stateful_cluster: ClusterHandle) -> Iterator[str]:
    """A fresh namespace, deleted at teardown (kept for a failed test with --stateful-keep-namespace)."""
    with fresh_namespace(request.config, stateful_cluster, request.node.name, lambda: failed(request.node)) as name:
        yield name


@pytest.fixture
def stateful(
    request: pytest.FixtureRequest, stateful_cluster: ClusterHandle, stateful_namespace: str
) -> Iterator[StatefulFactory]:
    """Factory: stateful(manifests, statefulset=None, timeout=None, settle=True) -> StatefulSetHandle,
    or stateful.chart(path, release=None, values=None, values_files=()) for a Helm chart.

    Recording starts before the first apply and ends at teardown.
    """
    s = Settings.of(request.config)
    with (
        LiveProgress(request.config) as progress,
        Recording(stateful_cluster, stateful_namespace, s.timeout, progress, s.image) as recording,
    ):
        # The failure report reads the live recording before the fixture's teardown.
        request.node.stash[recording_key] = recording
        try:
            yield StatefulFactory(recording)
        finally:
            request.node.stash[handles_key] = recording.handles
