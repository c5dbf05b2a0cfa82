"""Watch a namespace and turn what the cluster did into a Timeline.

One thread per resource type keeps a watch open from before the first apply to
the end of the test. A watch that ends is resumed from the last resourceVersion
it saw; a 410 Gone means events were lost, so the type is re-listed and a Gap is
recorded: checks that need those events then fail as "incomplete record".
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client, watch
from kubernetes.client import ApiException

from pytest_stateful.timeline import EVENT, GAP, POD, PVC, SERVICE, SLICE, STEP, STS, Entry, Timeline

# Server-side timeout of one watch request: short enough that stop() is prompt
# even if the socket shutdown does not wake the reader.
WATCH_SECONDS = 20


def reduce_pod(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status", {})
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in spec.get("volumes") or []
        if v.get("persistentVolumeClaim")
    }
    return {
        "phase": status.get("phase", ""),
        "ready": status.get("phase") == "Running" and conditions.get("Ready") == "True",
        "ip": status.get("podIP", ""),
        "node": spec.get("nodeName", ""),
        "revision": (meta.get("labels") or {}).get("controller-revision-hash", ""),
        "deleting": bool(meta.get("deletionTimestamp")),
        "hostname": spec.get("hostname", ""),
        "subdomain": spec.get("subdomain", ""),
        "host_network": bool(spec.get("hostNetwork")),
        "claims": claims,
        "owner": next((o.get("name") for o in meta.get("ownerReferences") or [] if o.get("kind") == "StatefulSet"), ""),
        "images": [c.get("image", "") for c in spec.get("containers") or []],
        "labels": dict(meta.get("labels") or {}),
    }


def reduce_service(obj: Mapping[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec", {})
    return {
        "cluster_ip": spec.get("clusterIP", ""),
        "headless": spec.get("clusterIP") == "None",
        "selector": dict(spec.get("selector") or {}),
        "publish_not_ready": bool(spec.get("publishNotReadyAddresses")),
    }


def _claim_mounts(spec: Mapping[str, Any]) -> dict[str, list[str]]:
    """Where each claim template is mounted: {template: [container, mountPath]} (first container)."""
    templates = {t.get("metadata", {}).get("name", "") for t in spec.get("volumeClaimTemplates") or []}
    found: dict[str, list[str]] = {}
    for container in ((spec.get("template") or {}).get("spec") or {}).get("containers") or []:
        for mount in container.get("volumeMounts") or []:
            if mount.get("name") in templates and mount.get("name") not in found:
                found[mount["name"]] = [container.get("name", ""), mount.get("mountPath", "")]
    return found


def reduce_pvc(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status", {})
    return {
        "phase": status.get("phase", ""),
        "volume": spec.get("volumeName", ""),
        "storage_class": spec.get("storageClassName", ""),
        "deleting": bool(meta.get("deletionTimestamp")),
        "owners": [f"{o.get('kind')}/{o.get('name')}" for o in meta.get("ownerReferences") or []],
    }


def reduce_slice(obj: Mapping[str, Any]) -> dict[str, Any]:
    labels = obj.get("metadata", {}).get("labels") or {}
    endpoints = []
    for ep in obj.get("endpoints") or []:
        for ip in ep.get("addresses") or []:
            endpoints.append(
                {
                    "ip": ip,
                    "hostname": ep.get("hostname", ""),
                    "ready": (ep.get("conditions") or {}).get("ready") is not False,
                    "pod": (ep.get("targetRef") or {}).get("name", ""),
                }
            )
    return {"service": labels.get("kubernetes.io/service-name", ""), "endpoints": endpoints}


def reduce_event(obj: Mapping[str, Any]) -> dict[str, Any]:
    involved = obj.get("involvedObject") or {}
    return {
        "reason": obj.get("reason", ""),
        "message": obj.get("message", ""),
        "type": obj.get("type", ""),
        "object": f"{involved.get('kind', '')}/{involved.get('name', '')}",
        "count": obj.get("count") or 1,
    }


def reduce_sts(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status", {})
    strategy = spec.get("updateStrategy") or {}
    rolling = strategy.get("rollingUpdate") or {}
    retention = spec.get("persistentVolumeClaimRetentionPolicy") or {}
    return {
        "generation": meta.get("generation", 0),
        "observed_generation": status.get("observedGeneration", 0),
        "replicas": spec.get("replicas", 1),
        "ready_replicas": status.get("readyReplicas", 0),
        "current_replicas": status.get("currentReplicas", 0),
        "updated_replicas": status.get("updatedReplicas", 0),
        "status_replicas": status.get("replicas", 0),
        "current_revision": status.get("currentRevision", ""),
        "update_revision": status.get("updateRevision", ""),
        "policy": spec.get("podManagementPolicy", "OrderedReady"),
        "strategy": strategy.get("type", "RollingUpdate"),
        "partition": rolling.get("partition", 0),
        "max_unavailable": rolling.get("maxUnavailable", 1),
        "ordinals_start": (spec.get("ordinals") or {}).get("start", 0),
        "service_name": spec.get("serviceName", ""),
        "selector": (spec.get("selector") or {}).get("matchLabels", {}),
        "claim_templates": [t.get("metadata", {}).get("name", "") for t in spec.get("volumeClaimTemplates") or []],
        "claim_mounts": _claim_mounts(spec),
        "retention_when_deleted": retention.get("whenDeleted", "Retain"),
        "retention_when_scaled": retention.get("whenScaled", "Retain"),
        "deleting": bool(meta.get("deletionTimestamp")),
    }


@dataclass(frozen=True)
class Watched:
    kind: str
    lister: Callable[..., Any]
    reduce: Callable[[Mapping[str, Any]], dict[str, Any]]


def watched_kinds(api: client.ApiClient) -> list[Watched]:
    core, apps, discovery = client.CoreV1Api(api), client.AppsV1Api(api), client.DiscoveryV1Api(api)
    return [
        Watched(STS, apps.list_namespaced_stateful_set, reduce_sts),
        Watched(SERVICE, core.list_namespaced_service, reduce_service),
        Watched(POD, core.list_namespaced_pod, reduce_pod),
        Watched(PVC, core.list_namespaced_persistent_volume_claim, reduce_pvc),
        Watched(SLICE, discovery.list_namespaced_endpoint_slice, reduce_slice),
        Watched(EVENT, core.list_namespaced_event, reduce_event),
    ]


class Recorder:
    """Records a namespace into `timeline` until stop(); waiters are woken on every entry."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self.timeline = Timeline()
        self._api = api
        self._t0 = time.monotonic()
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._watches: list[watch.Watch] = []
        # Latest state per (kind, name): what waits look at.
        self.current: dict[tuple[str, str], Entry] = {}
        self.errors: list[str] = []

    @property
    def t0(self) -> float:
        return self._t0

    def now(self) -> float:
        return time.monotonic() - self._t0

    def start(self) -> None:
        """List every kind once (so nothing is missed), then watch from there in the background."""
        for kind in watched_kinds(self._api):
            listed = kind.lister(self.namespace, _preload_content=False)
            rv = _list_rv(listed)
            thread = threading.Thread(
                target=self._run, args=(kind, rv), name=f"stateful-watch-{kind.kind}", daemon=True
            )
            self._threads.append(thread)
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        for w in list(self._watches):
            w.stop()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def add(self, kind: str, type_: str, name: str, uid: str = "", rv: str = "", **data: Any) -> Entry:
        with self._cond:
            entry = Entry(len(self.timeline.entries), self.now(), kind, type_, name, uid, rv, data)
            self.timeline.entries.append(entry)
            if kind not in (STEP, GAP, EVENT):
                if type_ == "DELETED":
                    self.current.pop((kind, name), None)
                else:
                    self.current[(kind, name)] = entry
            self._cond.notify_all()
            return entry

    def step(self, type_: str, name: str, **data: Any) -> Entry:
        return self.add(STEP, type_, name, **data)

    def wait_until(self, predicate: Callable[[], Any], timeout: float, tick: Callable[[], None] | None = None) -> Any:
        """Block until predicate() is truthy (re-checked on every entry and twice a second).

        `tick` runs at most twice a second while waiting (live progress).
        """
        deadline = time.monotonic() + timeout
        next_tick = time.monotonic() + 0.5
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                now = time.monotonic()
                if now >= deadline:
                    return value
                if tick is not None and now >= next_tick:
                    tick()
                    next_tick = now + 0.5
                self._cond.wait(min(deadline - now, 0.5))

    def snapshot(self, kind: str) -> list[Entry]:
        with self._cond:
            return [e for (k, _), e in sorted(self.current.items()) if k == kind]

    def _run(self, kind: Watched, rv: str) -> None:
        while not self._stopping.is_set():
            w = watch.Watch()
            self._watches.append(w)
            try:
                for event in w.stream(
                    kind.lister,
                    self.namespace,
                    resource_version=rv,
                    allow_watch_bookmarks=True,
                    timeout_seconds=WATCH_SECONDS,
                    deserialize=False,
                ):
                    obj = event["object"]
                    meta = obj.get("metadata", {})
                    rv = meta.get("resourceVersion", rv)
                    if event["type"] == "BOOKMARK":
                        continue
                    self.add(
                        kind.kind,
                        event["type"],
                        meta.get("name", ""),
                        meta.get("uid", ""),
                        rv,
                        **kind.reduce(obj),
                    )
            except ApiException as exc:
                if self._stopping.is_set():
                    break
                if exc.status == 410:
                    rv = self._relist(kind, f"watch expired at resourceVersion {rv} (410 Gone)")
                else:
                    self.errors.append(f"{kind.kind} watch: {exc.status} {exc.reason}")
                    self._stopping.wait(1.0)
            except Exception as exc:
                if self._stopping.is_set():
                    break
                self.errors.append(f"{kind.kind} watch: {type(exc).__name__}: {exc}")
                self._stopping.wait(0.5)
            finally:
                self._watches.remove(w)

    def _relist(self, kind: Watched, reason: str) -> str:
        """Events were lost: mark the gap, then record the listed state so waits stay correct."""
        self.add(GAP, "gap", kind.kind, reason=reason)
        resp = kind.lister(self.namespace, _preload_content=False)
        body = json.loads(resp.data)
        for obj in body.get("items") or []:
            meta = obj.get("metadata", {})
            self.add(
                kind.kind,
                "RELISTED",
                meta.get("name", ""),
                meta.get("uid", ""),
                meta.get("resourceVersion", ""),
                **kind.reduce(obj),
            )
        return str(body.get("metadata", {}).get("resourceVersion", ""))


def _list_rv(resp: Any) -> str:
    return str(json.loads(resp.data).get("metadata", {}).get("resourceVersion", ""))
