"""Fresh namespaces and recordings, usable without pytest (scripts, benchmarks) and by the fixtures."""

from __future__ import annotations

import atexit
import contextlib
import re
import secrets
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from kubernetes import client

from pytest_stateful.cluster.api import CLEANUP_TIMEOUT, call
from pytest_stateful.cluster.handle import ClusterHandle
from pytest_stateful.errors import ApiError, Conflict, Forbidden, NotFound, StatefulError
from pytest_stateful.recorder import Recorder
from pytest_stateful.workload import cluster_scoped, shared
from pytest_stateful.workload.cleanup import KEPT_ANNOTATION, this_process
from pytest_stateful.workload.handle import StatefulSetHandle
from pytest_stateful.workload.manifests import ImageMap, Manifest

# Namespaces this process may have created and whose deletion the API server has not accepted yet.
# A name is entered before the create call and leaves only once its delete is accepted, so an
# interruption at any point leaves it here for delete_leftover_namespaces (and, if that never runs,
# labelled for the next session's sweep).
_created: dict[str, client.CoreV1Api] = {}


def namespace_name(test_name: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")[:40].strip("-") or "test"
    return f"stateful-{slug}-{secrets.token_hex(3)}"


def create_namespace(cluster: ClusterHandle, test_name: str) -> str:
    name = namespace_name(test_name)
    owner = this_process()
    # Plain dicts, not the client's model classes: pytester's in-process runs can load a second copy
    # of those classes, and the client's validation refuses an instance of the other copy.
    body = {"metadata": {"name": name, "labels": owner.labels(), "annotations": owner.annotations()}}
    cleanup_at_exit()
    _created[name] = cluster.core
    try:
        call(f"create namespace {name}", cluster.core.create_namespace, body)
    except Forbidden:
        _created.pop(name, None)
        raise Forbidden(
            "forbidden: create namespaces (the account may not create namespaces): run in an existing "
            "namespace with --stateful-namespace NAME"
        ) from None
    except ApiError as exc:
        # Refused (4xx): it does not exist, or it is someone else's (409). Otherwise (no answer, 5xx)
        # it may exist, and stays registered to be deleted.
        if 400 <= exc.status < 500:
            _created.pop(name, None)
        raise
    return name


def delete_namespace(name: str, retry: bool = True) -> bool:
    """Ask for the namespace's deletion; True once the API server accepted it (or it is gone).
    On failure the name stays registered, for delete_leftover_namespaces to try again."""
    core = _created.get(name)
    if core is None:
        return True
    if cluster_scoped.release(name):
        # Its annotation is what lists the cluster-scoped objects not yet deleted: it stays until they go.
        return False
    try:
        with contextlib.suppress(NotFound, Conflict):  # gone, or already terminating
            call(
                f"delete namespace {name}",
                core.delete_namespace,
                name,
                propagation_policy="Background",
                retry=retry,
                _request_timeout=CLEANUP_TIMEOUT,
            )
    except StatefulError:
        return False
    _created.pop(name, None)
    return True


def forget_namespace(name: str) -> None:
    """Keep a namespace on purpose (debugging a failed test); marked so no later sweep deletes it."""
    core = _created.pop(name, None)
    if core is not None:
        with contextlib.suppress(StatefulError):
            call(
                f"mark namespace {name} as kept",
                core.patch_namespace,
                name,
                {"metadata": {"annotations": {KEPT_ANNOTATION: "true"}}},
                _request_timeout=CLEANUP_TIMEOUT,
            )


def delete_leftover_namespaces() -> list[str]:
    """Delete every namespace still registered, and what the run created in shared namespaces; the
    namespaces where something could not be deleted (created namespaces keep their owner's labels,
    so the next session's sweep deletes them).

    Runs at the end of a session, often because of Ctrl-C or SIGTERM: a second signal would cut it
    short and leak, so both are held off meanwhile (each request is bounded by CLEANUP_TIMEOUT).
    """
    if not _created and not shared.is_used():
        return []
    with _signals_held():
        left = shared.delete_leftovers()
        for name in list(_created):
            if not delete_namespace(name, retry=False) and not _answers(_created[name]):
                break  # no API server: the rest would wait for nothing
    return list(_created) + left


def _answers(core: client.CoreV1Api) -> bool:
    try:
        call(
            "ask the API server for its version",
            client.VersionApi(core.api_client).get_code,
            _request_timeout=CLEANUP_TIMEOUT,
        )
    except StatefulError:
        return False
    return True


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            # None: a handler not installed from Python, which cannot be put back; the default is closest.
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def cleanup_at_exit() -> None:
    """Once per process: also clean up at interpreter exit, for when the session's own cleanup
    never ran (an interrupt during pytest's session finish skips its unconfigure hooks)."""
    global _exit_hook
    if not _exit_hook:
        atexit.register(delete_leftover_namespaces)
        _exit_hook = True


_exit_hook = False


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
            handle.restore_nodes()
            # What could not be deleted stays listed on the namespace: the session's end, or a later
            # session's sweep, deletes it.
            handle.release_globals()

    def chart(
        self,
        chart: Mapping[str, Any],
        statefulset: str | None = None,
        timeout: float | None = None,
        settle: bool = True,
    ) -> StatefulSetHandle:
        """`helm install` a chart (`{path, release?, values?, values_files?}`) into the namespace."""
        handle = self._handle(timeout)
        handle.install_chart(chart, statefulset, settle)
        return handle

    def _handle(self, timeout: float | None) -> StatefulSetHandle:
        handle = StatefulSetHandle(self.cluster, self.namespace, self.recorder, timeout or self.timeout)
        handle.progress = self.progress
        handle.images = self.images
        self.handles.append(handle)
        return handle

    def statefulset(
        self,
        manifests: Iterable[Manifest],
        statefulset: str | None = None,
        timeout: float | None = None,
        settle: bool = True,
    ) -> StatefulSetHandle:
        handle = self._handle(timeout)
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
