"""Watch a namespace and turn what the cluster did into a Timeline.

One thread per resource type keeps a watch open from before the first apply to
the end of the test. A watch that ends or fails is resumed from the last
resourceVersion it saw, so no event is lost. Expiry means events were lost:
the API server says so either as an HTTP 410 or as an event of type ERROR with
code 410 inside the stream (the usual form); both record a Gap and re-list the
type, and checks that read that kind are then "incomplete", never passed.
A watch that keeps failing (the API server is down) is reported to every wait
within WATCH_GRACE seconds ("lost the watch on Pod: ..."), so a step fails as an
infrastructure error instead of timing out on the workload.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubernetes import client
from kubernetes.watch.watch import iter_resp_lines

from pytest_stateful.cluster.api import call
from pytest_stateful.errors import Forbidden, Gone, InfrastructureError, StatefulError, status_error
from pytest_stateful.timeline import (
    EVENT,
    GAP,
    NODE,
    POD,
    PVC,
    RETRY,
    RUNTIME,
    SERVICE,
    SLICE,
    STEP,
    STS,
    Entry,
    Timeline,
)

# Server-side timeout of one watch request: short enough that stop() is prompt
# even if the socket shutdown does not wake the reader.
WATCH_SECONDS = 20
# A watch failing for longer than this makes waits fail with the reason (the API server is gone).
WATCH_GRACE = 10.0
# Pause between attempts to restore a failing watch.
WATCH_BACKOFF = 0.5
# Kinds whose entries are facts the plugin made, not watched state.
NOT_STATE = (STEP, GAP, EVENT, RETRY, RUNTIME)


class WatchLost(InfrastructureError):
    """A watch could not be restored: the record is no longer being kept."""


def reduce_pod(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status", {})
    raw_conditions = {c.get("type"): c for c in status.get("conditions") or []}
    conditions = {t: c.get("status") for t, c in raw_conditions.items()}
    scheduled = raw_conditions.get("PodScheduled") or {}
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in spec.get("volumes") or []
        if v.get("persistentVolumeClaim")
    }
    return {
        "phase": status.get("phase", ""),
        "ready": status.get("phase") == "Running" and conditions.get("Ready") == "True",
        # Turned into `ready_since` on the timeline's clock by the recorder.
        "ready_transition": (raw_conditions.get("Ready") or {}).get("lastTransitionTime", ""),
        "scheduled_message": scheduled.get("message", "") if scheduled.get("status") == "False" else "",
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
        # Why a container does not run (ErrImagePull, CrashLoopBackOff, ...): what a stuck step names.
        "waiting": [
            f"{s.get('name')}: {w.get('reason', '')}" + (f": {w.get('message')}" if w.get("message") else "")
            for s in status.get("containerStatuses") or []
            if (w := (s.get("state") or {}).get("waiting")) and w.get("reason") not in (None, "ContainerCreating")
        ],
        "labels": dict(meta.get("labels") or {}),
        # Who ended the pod, when someone did: TerminationByKubelet, DeletionByPodGC, EvictionByEvictionAPI ...
        "disruption": (raw_conditions.get("DisruptionTarget") or {}).get("reason", "")
        if (raw_conditions.get("DisruptionTarget") or {}).get("status") == "True"
        else "",
    }


def reduce_node(obj: Mapping[str, Any]) -> dict[str, Any]:
    spec, status = obj.get("spec", {}), obj.get("status", {})
    ready = next((c.get("status", "") for c in status.get("conditions") or [] if c.get("type") == "Ready"), "")
    return {
        "ready": ready,
        "taints": sorted(f"{t.get('key')}:{t.get('effect')}" for t in spec.get("taints") or []),
        "unschedulable": bool(spec.get("unschedulable")),
    }


def reduce_service(obj: Mapping[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec", {})
    return {
        "cluster_ip": spec.get("clusterIP", ""),
        "headless": spec.get("clusterIP") == "None",
        "selector": dict(spec.get("selector") or {}),
        "publish_not_ready": bool(spec.get("publishNotReadyAddresses")),
    }


def reduce_pdb(obj: Mapping[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec") or {}
    return {
        "selector": dict((spec.get("selector") or {}).get("matchLabels") or {}),
        "expressions": list((spec.get("selector") or {}).get("matchExpressions") or []),
        "min_available": spec.get("minAvailable"),
        "max_unavailable": spec.get("maxUnavailable"),
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
        "requested": str(((spec.get("resources") or {}).get("requests") or {}).get("storage") or ""),
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
        "available_replicas": status.get("availableReplicas", 0),
        "min_ready_seconds": spec.get("minReadySeconds", 0),
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
        "claim_requests": {
            t.get("metadata", {}).get("name", ""): str(
                (((t.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage") or ""
            )
            for t in spec.get("volumeClaimTemplates") or []
        },
        "claim_mounts": _claim_mounts(spec),
        "containers": [
            c.get("name", "") for c in ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
        ],
        "retention_when_deleted": retention.get("whenDeleted", "Retain"),
        "retention_when_scaled": retention.get("whenScaled", "Retain"),
        "deleting": bool(meta.get("deletionTimestamp")),
    }


@dataclass(frozen=True)
class Watched:
    kind: str
    lister: Callable[..., Any]
    reduce: Callable[[Mapping[str, Any]], dict[str, Any]]
    # Cluster-scoped: the namespace argument is dropped, only changes of the reduced state are
    # recorded (a node's heartbeats are not news), and an account that may not read it loses only it.
    cluster_wide: bool = False


def watched_kinds(api: client.ApiClient) -> list[Watched]:
    core, apps, discovery = client.CoreV1Api(api), client.AppsV1Api(api), client.DiscoveryV1Api(api)
    return [
        Watched(STS, apps.list_namespaced_stateful_set, reduce_sts),
        Watched(SERVICE, core.list_namespaced_service, reduce_service),
        Watched(POD, core.list_namespaced_pod, reduce_pod),
        Watched(PVC, core.list_namespaced_persistent_volume_claim, reduce_pvc),
        Watched(SLICE, discovery.list_namespaced_endpoint_slice, reduce_slice),
        Watched(EVENT, core.list_namespaced_event, reduce_event),
        Watched(NODE, lambda _namespace, **kw: core.list_node(**kw), reduce_node, cluster_wide=True),
    ]


class Recorder:
    """Records a namespace into `timeline` until stop(); waiters are woken on every entry."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self.timeline = Timeline()
        self._api = api
        self._t0 = time.monotonic()
        self._wall0 = time.time()
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._responses: dict[str, Any] = {}
        # kind -> resourceVersion the next watch of that kind starts from (fault injection: interrupt()).
        self._resume: dict[str, str] = {}
        # Latest state per (kind, name): what waits look at.
        self.current: dict[tuple[str, str], Entry] = {}
        # Every failure of a watch, in order (also in the timeline as Gap entries when events were lost).
        self.errors: list[str] = []
        # kind -> (monotonic time of the first failure in a row, the last reason): watches now failing.
        self._failing: dict[str, tuple[float, str]] = {}

    @property
    def t0(self) -> float:
        return self._t0

    def now(self) -> float:
        return time.monotonic() - self._t0

    def timeline_seconds(self, timestamp: str) -> float | None:
        """An API timestamp (RFC 3339, 1 s resolution) on the timeline's clock; None if absent."""
        if not timestamp:
            return None
        try:
            wall = datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
        return round(wall - self._wall0, 3)

    def start(self) -> None:
        """List every kind once (so nothing is missed), then watch from there in the background."""
        for kind in watched_kinds(self._api):
            if kind.cluster_wide:
                # Objects that exist before the test: their state when it starts is part of the record.
                try:
                    rv = self._list(kind, "LISTED")
                except Forbidden as exc:
                    # Only what reads this kind (at_most_one) cannot be judged: a gap says so.
                    self.add(GAP, "gap", kind.kind, reason=f"not recorded: {exc.message}")
                    continue
            else:
                listed = call(f"list {kind.kind}s in {self.namespace}", kind.lister, self.namespace, retry=True)
                rv = str(listed.metadata.resource_version or "")
            thread = threading.Thread(
                target=self._run,
                args=(kind, rv),
                name=f"stateful-watch-{kind.kind}",
                daemon=True,
            )
            self._threads.append(thread)
        for thread in self._threads:
            thread.start()

    @property
    def recording(self) -> bool:
        """Started and not stopped: waits on this recorder can see the cluster change."""
        return bool(self._threads) and not self._stopping.is_set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        for resp in list(self._responses.values()):
            # Wakes a reader blocked on the socket; best effort: the thread also ends at WATCH_SECONDS.
            with contextlib.suppress(Exception):
                resp.shutdown()
            with contextlib.suppress(Exception):
                resp.close()
        with self._cond:
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def add(self, kind: str, type_: str, name: str, uid: str = "", rv: str = "", **data: Any) -> Entry:
        with self._cond:
            entry = Entry(len(self.timeline.entries), self.now(), kind, type_, name, uid, rv, data)
            self.timeline.entries.append(entry)
            if kind not in NOT_STATE:
                if type_ == "DELETED":
                    self.current.pop((kind, name), None)
                else:
                    self.current[(kind, name)] = entry
            self._cond.notify_all()
            return entry

    def step(self, type_: str, name: str, **data: Any) -> Entry:
        return self.add(STEP, type_, name, **data)

    def lost(self) -> str | None:
        """Why the record is not being kept right now (a watch failing for over WATCH_GRACE s), or None."""
        now = time.monotonic()
        for kind, (since, reason) in sorted(self._failing.items()):
            if now - since >= WATCH_GRACE:
                return f"lost the watch on {kind}s for {now - since:.0f} s: {reason}"
        return None

    def wait_until(self, predicate: Callable[[], Any], timeout: float, tick: Callable[[], None] | None = None) -> Any:
        """Block until predicate() is truthy (re-checked on every entry and twice a second).

        `tick` runs at most twice a second while waiting (live progress). Raises WatchLost
        when a watch cannot be restored: what the predicate reads would be stale.
        """
        deadline = time.monotonic() + timeout
        next_tick = time.monotonic() + 0.5
        while True:
            with self._cond:
                value = predicate()
                if value:
                    return value
                lost = self.lost()
                if lost is not None:
                    raise WatchLost(
                        f"{lost}; the record of {self.namespace} is not being kept, so nothing can be judged"
                    )
                now = time.monotonic()
                if now >= deadline:
                    return value
                if tick is None or now < next_tick:
                    self._cond.wait(min(deadline - now, 0.5))
                    continue
            # Outside the lock: a tick may ask the API server, and the watches must go on meanwhile.
            tick()
            next_tick = time.monotonic() + 0.5

    def interrupt(self, kind: str, resume_from: str | None = None) -> None:
        """Fault injection (tests): end the current watch of `kind` as a dropped connection would; it
        resumes from `resume_from` if given. An old resourceVersion makes the API server answer
        410 Gone, exactly as after an outage longer than its watch window."""
        if resume_from is not None:
            self._resume[kind] = resume_from
        resp = self._responses.get(kind)
        if resp is not None:
            with contextlib.suppress(Exception):
                resp.shutdown()

    def wait_for_change(self, seen: int, timeout: float) -> bool:
        """Block until the timeline holds more than `seen` entries (at most `timeout` seconds):
        probes pause here between rounds, so a round follows the cluster's next change."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.timeline.entries) <= seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def snapshot(self, kind: str) -> list[Entry]:
        with self._cond:
            return [e for (k, _), e in sorted(self.current.items()) if k == kind]

    # -- the watch loop ---------------------------------------------------------------------

    def _run(self, kind: Watched, rv: str) -> None:
        while not self._stopping.is_set():
            rv = self._resume.pop(kind.kind, rv)
            try:
                try:
                    rv = self._watch(kind, rv)
                except Gone as exc:
                    # Events between rv and now are lost for good: say so, then re-list.
                    rv = self._relist(kind, f"watch expired at resourceVersion {rv} (410 Gone: {exc.message})")
                self._failing.pop(kind.kind, None)
            except Exception as exc:  # any failure: note it, resume from rv
                if self._stopping.is_set():
                    break
                if kind.cluster_wide and isinstance(exc, Forbidden):
                    self.add(GAP, "gap", kind.kind, reason=f"no longer recorded: {exc.message}")
                    break
                reason = str(exc) if isinstance(exc, StatefulError) else f"{type(exc).__name__}: {exc}"
                with self._cond:
                    self.errors.append(f"{kind.kind} watch: {reason}")
                    since = self._failing.get(kind.kind, (time.monotonic(), ""))[0]
                    self._failing[kind.kind] = (since, reason)
                    self._cond.notify_all()
                self._stopping.wait(WATCH_BACKOFF)

    def _watch(self, kind: Watched, rv: str) -> str:
        """One watch request from `rv` until the server ends it; returns the last resourceVersion seen."""
        resp = call(
            f"watch {kind.kind}s in {self.namespace}",
            kind.lister,
            self.namespace,
            watch=True,
            resource_version=rv,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            _preload_content=False,
            _request_timeout=(5.0, WATCH_SECONDS + 10.0),
        )
        self._responses[kind.kind] = resp
        try:
            for line in iter_resp_lines(resp):
                if self._stopping.is_set():
                    break
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    # The API server's Status object: 410 for an expired resourceVersion.
                    raise status_error(obj, f"watch {kind.kind}s in {self.namespace}")
                meta = obj.get("metadata") or {}
                rv = str(meta.get("resourceVersion") or rv)
                self._failing.pop(kind.kind, None)
                if event.get("type") == "BOOKMARK":
                    continue
                data = self._reduce(kind, obj)
                if kind.cluster_wide and event.get("type") != "DELETED":
                    last = self.current.get((kind.kind, meta.get("name", "")))
                    if last is not None and dict(last.data) == data:
                        continue
                self.add(
                    kind.kind,
                    str(event.get("type")),
                    meta.get("name", ""),
                    meta.get("uid", ""),
                    rv,
                    **data,
                )
        finally:
            self._responses.pop(kind.kind, None)
            resp.close()
            resp.release_conn()
        return rv

    def _reduce(self, kind: Watched, obj: Mapping[str, Any]) -> dict[str, Any]:
        data = kind.reduce(obj)
        if kind.kind == POD:
            data["ready_since"] = (
                self.timeline_seconds(str(data.pop("ready_transition", "") or "")) if data["ready"] else None
            )
        return data

    def _relist(self, kind: Watched, reason: str) -> str:
        """Events were lost: mark the gap, then record the listed state so waits stay correct
        (objects gone meanwhile are recorded as deleted)."""
        self.add(GAP, "gap", kind.kind, reason=reason)
        return self._list(kind, "RELISTED")

    def _list(self, kind: Watched, type_: str) -> str:
        """Record every listed object (objects recorded before and not listed now as deleted);
        returns the list's resourceVersion."""
        resp = call(
            f"list {kind.kind}s in {self.namespace}", kind.lister, self.namespace, _preload_content=False, retry=True
        )
        body = json.loads(resp.data)
        listed: set[str] = set()
        for obj in body.get("items") or []:
            meta = obj.get("metadata", {})
            listed.add(meta.get("name", ""))
            self.add(
                kind.kind,
                type_,
                meta.get("name", ""),
                meta.get("uid", ""),
                meta.get("resourceVersion", ""),
                **self._reduce(kind, obj),
            )
        for (k, name), last in list(self.current.items()):
            if k == kind.kind and name not in listed:
                self.add(kind.kind, "DELETED", name, last.uid, "", **{**last.data, "gone_in_gap": True})
        return str(body.get("metadata", {}).get("resourceVersion", ""))
