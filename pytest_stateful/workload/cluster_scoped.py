"""Cluster-scoped objects of a chart (a ClusterRole for an injector, a ClusterRoleBinding for auth
delegation, a webhook configuration, a CRD): outside every namespace, so outside the namespace rule.
They are applied only when the chart asks (`cluster_scoped: true`) on a cluster whose global scope
the run may change: the local cluster (disposable), or another with --stateful-cluster-scoped.

- a name that already exists refuses the install (it is someone else's: helm would take it over);
- helm creates them, carrying the run's owner labels and pytest-stateful.io/namespace=<test
  namespace> (the post-renderer adds both; hooks and a chart's crds/, which helm does not
  post-render, are labelled right after), so a person can tell whose they are. The test namespace
  is fresh, its name unique: the label is what tells this test's objects from any other's;
- a global name is one test's at a time on this machine: a file lock per cluster, kind and name,
  held until teardown has seen the object gone, so two tests that install the same chart run one
  after the other instead of colliding in helm ("exists and cannot be imported"); a name an upgrade
  adds does not wait (two tests waiting on each other's names would wait forever);
- teardown deletes each that carries the test namespace's label, with the UID it read as a
  precondition; the test namespace is deleted only once they are gone (the session's end retries,
  after Ctrl-C too);
- the test namespace's annotation lists them, so that after a kill the sweep of a later session
  (or `pytest-stateful clean`) deletes them with the namespace.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any

from pytest_stateful.cluster.api import call
from pytest_stateful.cluster.build import cache_dir
from pytest_stateful.cluster.discovery import Discovery
from pytest_stateful.cluster.handle import ClusterHandle
from pytest_stateful.errors import ManifestError, NotFound, StatefulError, StepError
from pytest_stateful.workload.cleanup import this_process
from pytest_stateful.workload.cluster_objects import (
    ANNOTATION,
    NAMESPACE_LABEL,
    Global,
    delete_ours,
    exists,
    label,
    read,
)

# How often a test waiting for a global name another test holds says so.
WAITING_NOTE_SECONDS = 10.0
# Why a chart's cluster-scoped object is refused, and how to let it in.
CLUSTER_SCOPED_HINT = (
    "the plugin only writes inside the test namespace; a chart that needs it says `cluster_scoped: true` "
    "(applied with the run's labels, one test at a time per name, deleted at teardown; on a cluster other "
    "than the local one also --stateful-cluster-scoped)"
)


def cluster_scoped(docs: Iterable[Mapping[str, Any]], discovery: Discovery) -> list[Global]:
    """The objects among `docs` that discovery says are cluster-scoped, in a stable order."""
    found = set()
    for doc in docs:
        api_version, kind = str(doc.get("apiVersion", "")), str(doc.get("kind", ""))
        name = str((doc.get("metadata") or {}).get("name", ""))
        if name and discovery.namespaced(api_version, kind) is False:
            found.add(Global(api_version, kind, name))
    return sorted(found)


class Holder:
    """The cluster-scoped objects of one test namespace: their names, locks and deletion."""

    def __init__(self, cluster: ClusterHandle, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.names: set[Global] = set()
        self._locks: dict[Global, IO[str]] = {}

    @property
    def held(self) -> list[Global]:
        return sorted(self.names)

    def take(self, wanted: Iterable[Global], timeout: float, note: Callable[[str], None] = lambda _l: None) -> None:
        """Lock each new global name, waiting up to `timeout` for a test that holds it (0: not at all),
        then refuse any that already exists (someone else's: helm would take it over), then list the
        names on the namespace."""
        new = sorted(set(wanted) - self.names)
        taken: list[Global] = []
        try:
            for obj in new:
                self._locks[obj] = _lock(obj, self._key(obj), timeout, note)
                taken.append(obj)
            there = [obj for obj in new if exists(self.cluster, obj)]
        except BaseException:
            self._unlock(taken)
            raise
        if there:
            self._unlock(taken)
            names = ", ".join(str(o) for o in there)
            raise ManifestError(
                f"{names} already exist{'s' if len(there) == 1 else ''} in the cluster, and not as this test's: helm "
                "would take it over and teardown would delete it; delete it first, or give the release another name"
            )
        self.names.update(new)
        self._annotate()

    def claim(self) -> None:
        """After helm made them: label each with the run and the namespace (helm post-renders neither
        hooks nor a chart's crds/, and teardown deletes only what carries the label)."""
        labels = {**this_process().labels(), NAMESPACE_LABEL: self.namespace}
        for obj in self.held:
            try:
                meta = read(self.cluster, obj).get("metadata") or {}
            except NotFound:
                continue
            if (meta.get("labels") or {}).get(NAMESPACE_LABEL) != self.namespace:
                label(self.cluster, obj, labels)

    def release(self, wait: float = 30.0) -> list[str]:
        """Delete every object of this test, wait (bounded) until they are gone so the next test that
        installs them finds the names free, and give the names back; what could not be deleted, one
        line each (those stay listed on the namespace for a retry, and for the sweep)."""
        try:
            left = delete_ours(self.cluster, self.namespace, self.held)
            deadline = time.monotonic() + wait
            while not left and time.monotonic() < deadline:
                try:
                    if not any(exists(self.cluster, obj) for obj in self.held):
                        break
                except StatefulError:
                    break
                time.sleep(0.5)
        finally:
            self._unlock(list(self._locks))
        if not left:
            self.names.clear()
        return left

    def _key(self, obj: Global) -> str:
        # One lock per object of one cluster: the clusters of a version matrix do not wait on each other.
        return f"{self.cluster.kubeconfig}|{self.cluster.context}|{obj.key}"

    def _unlock(self, objects: Iterable[Global]) -> None:
        for obj in objects:
            fh = self._locks.pop(obj, None)
            if fh is not None:
                fcntl.flock(fh, fcntl.LOCK_UN)
                fh.close()

    def _annotate(self) -> None:
        body = {"metadata": {"annotations": {ANNOTATION: json.dumps([o.key for o in self.held])}}}
        call(
            f"note the cluster-scoped objects on namespace {self.namespace}",
            self.cluster.core.patch_namespace,
            self.namespace,
            body,
            retry=True,
        )


# Test namespace -> its holder, until everything of it is deleted: session.delete_namespace deletes the
# namespace only then (its annotation is what lists them), and retries at the session's end.
_holders: dict[str, Holder] = {}


def hold(cluster: ClusterHandle, namespace: str) -> Holder:
    return _holders.setdefault(namespace, Holder(cluster, namespace))


def release(namespace: str) -> list[str]:
    """Delete the cluster-scoped objects of a test namespace; what is left keeps it registered."""
    holder = _holders.get(namespace)
    if holder is None:
        return []
    left = holder.release()
    if not left:
        del _holders[namespace]
    return left


def _lock(obj: Global, key: str, timeout: float, note: Callable[[str], None]) -> IO[str]:
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    path = cache_dir() / "run" / "cluster-scoped" / f"{digest}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "w")  # noqa: SIM115 - held until release()
    deadline = time.monotonic() + timeout
    said = 0.0
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fh
        except BlockingIOError:
            now = time.monotonic()
            if now >= deadline:
                fh.close()
                waited = f"waited {timeout:.0f} s for it" if timeout else "a name added after the install does not wait"
                raise StepError(
                    f"{obj} is cluster-scoped and another test on this machine holds that name (it installs the same "
                    f"chart or object); {waited}: give the release another name, or run the two tests apart"
                ) from None
            if now - said >= WAITING_NOTE_SECONDS:
                note(f"waiting for {obj}: another test on this machine holds that cluster-scoped name")
                said = now
            time.sleep(0.2)
