"""Running in a namespace that already exists (--stateful-namespace, or a spec's `namespace:`):
for accounts that may not create namespaces. The run deletes only what it created there (and the
claims its StatefulSets made), leaves the namespace, and refuses to start where it would take over
objects it did not create: a StatefulSet of the same name, or claims such a StatefulSet would adopt.

What the run created is registered before the session ends, so Ctrl-C and SIGTERM still delete it
(session.delete_leftover_namespaces); it also carries the owner's labels, so a person can find it.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pytest_stateful.cluster.api import CLEANUP_TIMEOUT, CLIENT_FAILURES, call
from pytest_stateful.cluster.handle import ClusterHandle
from pytest_stateful.errors import Conflict, Forbidden, NotFound, StatefulError, UsageError, api_error

# Seconds to wait, after deleting, for the run's pods and claims to be gone: the next test in the
# same namespace may deploy a StatefulSet of the same name.
GONE_TIMEOUT = 90.0


@dataclass(frozen=True)
class Created:
    """One object this run created in a shared namespace."""

    api_version: str
    kind: str
    name: str
    uid: str
    # StatefulSets only: the claim templates, whose claims (<template>-<name>-<ordinal>) are the run's too.
    templates: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


# namespace -> (its cluster, what this process created there and has not deleted yet)
_shared: dict[str, tuple[ClusterHandle, list[Created]]] = {}


def enter(cluster: ClusterHandle, namespace: str) -> None:
    """Start using an existing namespace; it must exist (when the account may read it)."""
    try:
        call(f"read namespace {namespace}", cluster.core.read_namespace, namespace, retry=True)
    except NotFound:
        raise UsageError(
            f"namespace {namespace} does not exist: --stateful-namespace runs in an existing namespace "
            "(create it first, or leave the option out to get a fresh namespace per test)"
        ) from None
    except Forbidden:
        pass  # a namespaced account may not read Namespace objects; creating in it will say if it is missing
    _shared.setdefault(namespace, (cluster, []))


def is_shared(namespace: str) -> bool:
    return namespace in _shared


def is_used() -> bool:
    """Does this process use any shared namespace (something may be left to delete)?"""
    return bool(_shared)


def refuse_takeover(cluster: ClusterHandle, namespace: str, docs: Iterable[Mapping[str, Any]]) -> None:
    """Before creating anything: a StatefulSet of the same name, or a claim one of ours would adopt,
    that this run did not create means the namespace is someone else's to judge."""
    ours = {c.name for c in _shared.get(namespace, (cluster, []))[1] if c.kind == "StatefulSet"}
    sets = [d for d in docs if d.get("kind") == "StatefulSet" and d["metadata"].get("name") not in ours]
    if not sets:
        return
    for doc in sets:
        name = doc["metadata"]["name"]
        with contextlib.suppress(NotFound):
            call(f"read StatefulSet {name}", cluster.apps.read_namespaced_stateful_set, name, namespace, retry=True)
            raise UsageError(
                f"namespace {namespace} already holds StatefulSet {name}, which this run did not create: "
                "delete it, or run in another namespace"
            )
    pods = call(f"list pods in {namespace}", cluster.core.list_namespaced_pod, namespace, retry=True)
    for doc in sets:
        name = doc["metadata"]["name"]
        # Pods of a StatefulSet deleted with --cascade=orphan: ours would adopt them, and delete them at the end.
        orphans = sorted(
            str(p.metadata.name) for p in pods.items if re.fullmatch(rf"{re.escape(name)}-\d+", p.metadata.name)
        )
        if orphans:
            raise UsageError(
                f"namespace {namespace} already holds pod {', '.join(orphans)}, which StatefulSet {name} would adopt: "
                "delete it, or run in another namespace"
            )
    claims = call(
        f"list PersistentVolumeClaims in {namespace}",
        cluster.core.list_namespaced_persistent_volume_claim,
        namespace,
        retry=True,
    )
    for doc in sets:
        pattern = _claim_pattern(doc["metadata"]["name"], _templates(doc))
        taken = sorted(str(c.metadata.name) for c in claims.items if pattern and pattern.match(c.metadata.name))
        if taken:
            raise UsageError(
                f"namespace {namespace} already holds PersistentVolumeClaim {', '.join(taken)}, which StatefulSet "
                f"{doc['metadata']['name']} would adopt (its data would not be this run's): delete "
                f"{'them' if len(taken) > 1 else 'it'}, or run in another namespace"
            )


def created(namespace: str, doc: Mapping[str, Any], made: Any) -> None:
    """Register an object the run just created in a shared namespace (no-op elsewhere)."""
    entry = _shared.get(namespace)
    if entry is None:
        return
    meta = made.get("metadata", {}) if isinstance(made, dict) else getattr(made, "metadata", None)
    uid = (meta.get("uid") if isinstance(meta, dict) else getattr(meta, "uid", "")) or ""
    templates = tuple(_templates(doc)) if doc.get("kind") == "StatefulSet" else ()
    entry[1].append(Created(str(doc["apiVersion"]), str(doc["kind"]), str(doc["metadata"]["name"]), uid, templates))


def registered(namespace: str) -> set[str]:
    """UIDs of what the run created in a shared namespace and has not deleted yet."""
    entry = _shared.get(namespace)
    return {c.uid for c in entry[1]} if entry is not None else set()


def clean(namespace: str, wait: float = GONE_TIMEOUT) -> list[str]:
    """Delete what the run created in a shared namespace and the claims of its StatefulSets, then
    wait (bounded) until they and their pods are gone. What is left ("Pod web-0", or "Service
    nginx (why it could not be deleted)"); the namespace stays registered while a delete failed."""
    entry = _shared.get(namespace)
    if entry is None:
        return []
    cluster, objects = entry
    failures: list[str] = []
    ours = [o for o in objects if o.kind == "StatefulSet"]
    if ours:
        try:
            # Before the StatefulSets go: every claim matching their names now is theirs (a claim that
            # existed before them refused the run), while one made later by a StatefulSet of the same
            # name that someone else creates is not. Deleted and waited on by UID.
            _claims.setdefault(namespace, {}).update(_claims_of(cluster, namespace, ours))
        except StatefulError as exc:
            failures.append(f"the claims of {', '.join(o.name for o in ours)} (could not list: {exc})")
    for obj in reversed(list(objects)):
        try:
            _delete(cluster, namespace, obj)
            objects.remove(obj)
        except StatefulError as exc:
            failures.append(f"{obj} ({exc})")
    sets = [o for o in _done.setdefault(namespace, []) if o.kind == "StatefulSet"]
    deadline = time.monotonic() + wait
    left: list[str] = []
    while True:
        try:
            left = _remaining(cluster, namespace, sets)
        except StatefulError as exc:
            left = [f"(could not list: {exc})"]
            break
        if not left or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    if not objects:
        _shared.pop(namespace, None)
        _done.pop(namespace, None)
        _claims.pop(namespace, None)
    return failures + left


# namespace -> objects deleted by `clean`, whose pods it waits for
_done: dict[str, list[Created]] = {}
# namespace -> {claim name: UID} of the run's StatefulSets, listed before they were deleted
_claims: dict[str, dict[str, str]] = {}


def _claims_of(cluster: ClusterHandle, namespace: str, sets: list[Created]) -> dict[str, str]:
    listed = call(
        f"list PersistentVolumeClaims in {namespace}",
        cluster.core.list_namespaced_persistent_volume_claim,
        namespace,
        retry=True,
    )
    return {
        str(c.metadata.name): str(c.metadata.uid)
        for c in listed.items
        if any((p := _claim_pattern(s.name, s.templates)) and p.match(c.metadata.name) for s in sets)
    }


def _delete(cluster: ClusterHandle, namespace: str, obj: Created) -> None:
    path = cluster.discovery.path(obj.api_version, obj.kind, namespace, obj.name)
    if path is None:
        return
    body = {"propagationPolicy": "Background", "preconditions": {"uid": obj.uid} if obj.uid else None}
    try:
        method, url, headers, data, _ = cluster.api.param_serialize(
            "DELETE", path, body=body, header_params={"Content-Type": "application/json"}, auth_settings=["BearerToken"]
        )
        resp = cluster.api.call_api(method, url, header_params=headers, body=data, _request_timeout=CLEANUP_TIMEOUT)
        resp.read()
    except CLIENT_FAILURES as exc:
        error = api_error(exc, f"delete {obj}")
        if error.status == 409:
            return  # replaced by an object of the same name that is not ours: neither it nor its claims are ours
        if error.status != 404:
            raise error from exc
    _done.setdefault(namespace, []).append(obj)


def _remaining(cluster: ClusterHandle, namespace: str, sets: list[Created]) -> list[str]:
    """Pods of the run's StatefulSets (by owner UID) and their claims (by UID, listed before the
    StatefulSets went) that still exist; the claims are deleted here (the StatefulSet controller keeps
    them unless its retention policy says otherwise)."""
    left: list[str] = []
    uids = {s.uid for s in sets}
    pods = call(f"list pods in {namespace}", cluster.core.list_namespaced_pod, namespace, retry=True)
    for pod in pods.items:
        owners = {o.uid for o in pod.metadata.owner_references or []}
        if owners & uids:
            left.append(f"Pod {pod.metadata.name}")
    ours = _claims.get(namespace, {})
    claims = call(
        f"list PersistentVolumeClaims in {namespace}",
        cluster.core.list_namespaced_persistent_volume_claim,
        namespace,
        retry=True,
    )
    for claim in claims.items:
        name, uid = str(claim.metadata.name), str(claim.metadata.uid)
        if ours.get(name) != uid:
            continue
        left.append(f"PersistentVolumeClaim {name}")
        if claim.metadata.deletion_timestamp is None:
            with contextlib.suppress(NotFound, Conflict):  # gone, or (409) no longer that claim
                call(
                    f"delete PersistentVolumeClaim {name}",
                    cluster.core.delete_namespaced_persistent_volume_claim,
                    name,
                    namespace,
                    body={"preconditions": {"uid": uid}},
                    _request_timeout=CLEANUP_TIMEOUT,
                )
    return left


def delete_leftovers() -> list[str]:
    """At the end of the session (also after Ctrl-C): delete what is still registered, without
    waiting for pods to go; the namespaces where something could not be deleted."""
    for namespace in list(_shared):
        clean(namespace, wait=0)
    return list(_shared)


def _templates(doc: Mapping[str, Any]) -> list[str]:
    spec = doc.get("spec") or {}
    return [str((t.get("metadata") or {}).get("name", "")) for t in spec.get("volumeClaimTemplates") or []]


def _claim_pattern(statefulset: str, templates: Iterable[str]) -> re.Pattern[str] | None:
    names = [re.escape(t) for t in templates if t]
    if not names:
        return None
    return re.compile(rf"^(?:{'|'.join(names)})-{re.escape(statefulset)}-\d+$")


__all__ = ["Created", "clean", "created", "delete_leftovers", "enter", "is_shared", "refuse_takeover"]
