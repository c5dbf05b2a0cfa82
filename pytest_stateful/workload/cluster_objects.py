"""Cluster-scoped objects a test made, by name: how they are listed on the test namespace, and how
they are deleted, only when they are surely that test's (workload/cluster_scoped.py makes them;
workload/cleanup.py's sweep deletes those of sessions that ended)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from kubernetes.client.exceptions import ApiException

from pytest_stateful.cluster.api import CLEANUP_TIMEOUT, CLIENT_FAILURES
from pytest_stateful.cluster.discovery import Discovery
from pytest_stateful.errors import NotFound, StatefulError, api_error

# On the test namespace: the cluster-scoped objects its test made (JSON list of apiVersion/kind/name).
ANNOTATION = "pytest-stateful.io/cluster-scoped"
# On each cluster-scoped object: the test namespace it belongs to.
NAMESPACE_LABEL = "pytest-stateful.io/namespace"


@dataclass(frozen=True, order=True)
class Global:
    """One cluster-scoped object, by what names it in the whole cluster."""

    api_version: str
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"

    @property
    def key(self) -> str:
        return f"{self.api_version}/{self.kind}/{self.name}"

    @classmethod
    def from_key(cls, key: str) -> Global:
        api_version, kind, name = key.rsplit("/", 2)
        return cls(api_version, kind, name)


def delete(cluster: Any, objects: Iterable[Global], uids: Mapping[Global, str]) -> list[str]:
    """Delete each object (with its UID as a precondition when known); 404 and 409 are fine (gone, or
    someone else's now). `cluster` is a ClusterHandle, or anything with `.api` and `.discovery`."""
    left = []
    for obj in objects:
        try:
            path = _path(cluster.discovery, obj)
        except StatefulError as exc:
            left.append(f"{obj}: {exc}")
            continue
        if path is None:
            continue
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        if uids.get(obj):
            body["preconditions"] = {"uid": uids[obj]}
        try:
            _request(cluster, "DELETE", path, body, "application/json", CLEANUP_TIMEOUT)
        except CLIENT_FAILURES as exc:
            error = api_error(exc, f"delete {obj}")
            if error.status not in (404, 409):
                left.append(f"{obj}: {error.message}")
    return left


def listed(annotations: Mapping[str, str] | None) -> list[Global]:
    """The objects a namespace's annotation lists (none when it lists nothing readable)."""
    text = (annotations or {}).get(ANNOTATION)
    if not text:
        return []
    try:
        return [Global.from_key(str(k)) for k in json.loads(text)]
    except (ValueError, TypeError):
        return []


def sweep_listed(api: Any, namespace: str, annotations: Mapping[str, str] | None) -> list[str]:
    """For the sweep of a namespace whose session ended: the cluster-scoped objects its annotation lists."""
    objects = listed(annotations)
    if not objects:
        return []
    return delete_ours(SimpleNamespace(api=api, discovery=Discovery(api)), namespace, objects)


def delete_ours(cluster: Any, namespace: str, objects: Iterable[Global]) -> list[str]:
    """Delete each object that carries `namespace`'s label (a fresh namespace's name: no other test's
    objects carry it), with the UID read as a precondition, so one replaced since is left. What could
    not be asked or deleted, one line each. `cluster` is a ClusterHandle, or anything with `.api` and
    `.discovery`."""
    ours: dict[Global, str] = {}
    left = []
    for obj in objects:
        try:
            meta = read(cluster, obj).get("metadata") or {}
        except NotFound:
            continue
        except StatefulError as exc:
            left.append(f"{obj}: {exc}")
            continue
        if (meta.get("labels") or {}).get(NAMESPACE_LABEL) == namespace:
            ours[obj] = str(meta.get("uid", ""))
    return left + delete(cluster, sorted(ours), ours)


def exists(cluster: Any, obj: Global) -> bool:
    try:
        read(cluster, obj)
    except NotFound:
        return False
    return True


def read(cluster: Any, obj: Global) -> dict[str, Any]:
    """The object as the API server has it; NotFound when it is not there (or its kind is not served)."""
    path = _path(cluster.discovery, obj)
    if path is None:
        raise NotFound(f"{obj}: the cluster does not serve {obj.kind} in {obj.api_version}")
    return read_path(cluster, path)


def label(cluster: Any, obj: Global, labels: Mapping[str, str]) -> None:
    """Merge `labels` into the object's (helm does not post-render hooks or crds/: those are labelled here)."""
    path = _path(cluster.discovery, obj)
    if path is None:
        return
    try:
        _request(cluster, "PATCH", path, {"metadata": {"labels": dict(labels)}}, "application/merge-patch+json")
    except CLIENT_FAILURES as exc:
        raise api_error(exc, f"label {obj}") from exc


def _path(discovery: Discovery, obj: Global) -> str | None:
    return discovery.path(obj.api_version, obj.kind, "", obj.name)


def read_path(cluster: Any, path: str) -> dict[str, Any]:
    """GET one object by its URL path (`cluster`: anything with `.api`); NotFound when it is not there."""
    try:
        resp = _request(cluster, "GET", path)
    except CLIENT_FAILURES as exc:
        raise api_error(exc, f"read {path}") from exc
    read: dict[str, Any] = json.loads(resp.data)
    return read


def _request(
    cluster: Any,
    method: str,
    path: str,
    body: Any = None,
    content_type: str = "application/json",
    timeout: tuple[float, float] = (5.0, 30.0),
) -> Any:
    """One request by URL path (any kind discovery finds); an error status raises as the client's own calls do."""
    verb, url, headers, data, _ = cluster.api.param_serialize(
        method, path, body=body, header_params={"Content-Type": content_type}, auth_settings=["BearerToken"]
    )
    resp = cluster.api.call_api(verb, url, header_params=headers, body=data, _request_timeout=timeout)
    resp.read()
    if int(getattr(resp, "status", 200) or 200) >= 300:
        raise ApiException(http_resp=resp)
    return resp
