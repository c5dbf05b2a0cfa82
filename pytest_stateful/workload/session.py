"""Fresh namespaces and recordings, usable without pytest (scripts, benchmarks) and by the fixtures."""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Callable, Iterable, Iterator

from kubernetes import client

from pytest_stateful.cluster.api import call
from pytest_stateful.cluster.handle import ClusterHandle
from pytest_stateful.errors import StatefulError
from pytest_stateful.recorder import Recorder
from pytest_stateful.workload.handle import StatefulSetHandle
from pytest_stateful.workload.manifests import ImageMap, Manifest

OWNED_LABEL = "pytest-stateful.io/owned"
# Namespaces created by this process and not deleted yet, so an interrupted run can still clean up.
_created: dict[str, client.CoreV1Api] = {}


def namespace_name(test_name: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")[:40].strip("-") or "test"
    return f"stateful-{slug}-{secrets.token_hex(3)}"


def create_namespace(cluster: ClusterHandle, test_name: str) -> str:
    name = namespace_name(test_name)
    body = client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={OWNED_LABEL: "true"}))
    call(f"create namespace {name}", cluster.core.create_namespace, body)
    _created[name] = cluster.core
    return name


def delete_namespace(name: str) -> None:
    core = _created.pop(name, None)
    if core is not None:
        with contextlib.suppress(StatefulError):
            call(f"delete namespace {name}", core.delete_namespace, name, propagation_policy="Background")


def forget_namespace(name: str) -> None:
    """Keep a namespace on purpose (debugging a failed test)."""
    _created.pop(name, None)


def delete_leftover_namespaces() -> None:
    for name in list(_created):
        delete_namespace(name)


class Recording:
    """One namespace's recorder and the StatefulSets applied into it."""

    def __init__(
        self,
        cluster: ClusterHandle,
        namespace: str,
        timeout: float = 120.0,
        progress: Callable[[str], None] | None = None,
        image: str | None = None,
    ) -> None:
        self.cluster, self.namespace, self.timeout, self.progress = cluster, namespace, timeout, progress
        # One map per test, so an image keeps its tag across every StatefulSet and step.
        self.images = ImageMap(image) if image else None
        self.recorder = Recorder(cluster.api, namespace)
        self.handles: list[StatefulSetHandle] = []

    def __enter__(self) -> Recording:
        self.recorder.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.recorder.stop()
        for handle in self.handles:
            handle.uncordon()

    def statefulset(
        self,
        manifests: Iterable[Manifest],
        statefulset: str | None = None,
        timeout: float | None = None,
        settle: bool = True,
    ) -> StatefulSetHandle:
        handle = StatefulSetHandle(self.cluster, self.namespace, self.recorder, timeout or self.timeout)
        handle.progress = self.progress
        handle.images = self.images
        self.handles.append(handle)
        handle.apply(manifests, statefulset, settle)
        return handle


@contextlib.contextmanager
def scenario(cluster: ClusterHandle, name: str, timeout: float = 120.0) -> Iterator[Recording]:
    """A namespace and a recording for a script; both are gone afterwards."""
    ns = create_namespace(cluster, name)
    try:
        with Recording(cluster, ns, timeout) as recording:
            yield recording
    finally:
        delete_namespace(ns)
