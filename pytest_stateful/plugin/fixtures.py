"""The fixtures: the session's cluster, a fresh namespace per test, and the `stateful` factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from pytest_stateful.cluster.handle import ClusterHandle
from pytest_stateful.plugin.progress import LiveProgress
from pytest_stateful.plugin.run import cluster_for, failed, fresh_namespace, handles_key, recording_key
from pytest_stateful.plugin.settings import Settings
from pytest_stateful.workload.handle import StatefulSetHandle
from pytest_stateful.workload.session import Recording

StatefulFactory = Callable[..., StatefulSetHandle]


@pytest.fixture(scope="session")
def stateful_cluster(pytestconfig: pytest.Config) -> ClusterHandle:
    """The cluster of this session, from the provider chosen with --stateful-cluster."""
    return cluster_for(pytestconfig)


@pytest.fixture
def stateful_namespace(request: pytest.FixtureRequest, stateful_cluster: ClusterHandle) -> Iterator[str]:
    """A fresh namespace, deleted at teardown (kept for a failed test with --stateful-keep-namespace)."""
    with fresh_namespace(request.config, stateful_cluster, request.node.name, lambda: failed(request.node)) as name:
        yield name


@pytest.fixture
def stateful(
    request: pytest.FixtureRequest, stateful_cluster: ClusterHandle, stateful_namespace: str
) -> Iterator[StatefulFactory]:
    """Factory: stateful(manifests, statefulset=None, timeout=None, settle=True) -> StatefulSetHandle.

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
            yield recording.statefulset
        finally:
            request.node.stash[handles_key] = recording.handles
