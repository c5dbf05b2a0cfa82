"""An executable model of the StatefulSet controller that records a Timeline as the recorder would.

The model is a small discrete-event simulation of one StatefulSet `web` with its headless
Service `nginx`, run through a list of test steps. Every write to the API server gets the
next etcd revision (one counter for every kind) and becomes an Entry of the kind the
recorder's watches report, with the data keys of `recorder.reduce_*` plus the keys the
project is adding (Pod: `ready_since`, `scheduled_message`; StatefulSet:
`min_ready_seconds`, `available_replicas`; a Step `deletes` entry after the test's own
delete calls).

What the controller does follows upstream kubernetes/kubernetes
pkg/controller/statefulset (stateful_set_control.go, stateful_set_utils.go), with the
MaxUnavailableStatefulSet gate on; each rule names the function it follows. What the
kubelet, scheduler, PV controller, garbage collector and EndpointSlice controller do is
reduced to delays: a pod goes Pending -> scheduled -> Running -> Ready, a deleted pod
keeps running with a deletionTimestamp for a while, then goes.

Node failure (fail_node, out_of_service, force_delete_pod, restore_node): a failed node's
kubelet does nothing (no pod starts, becomes Ready or finishes terminating there) until it is
restored; GRACE later the node lifecycle controller marks it Unknown, tainted unreachable, and
its pods NotReady. The out-of-service taint makes the taint manager evict its pods and the pod
GC delete them (pkg/controller/podgc gcTerminating); a force delete removes the object at once.
The scheduler places pods only on Ready, untainted nodes that are not failed.

Receive order (Model._commit): the recorder has one watch per kind, so an entry is
received some time after its commit: within a kind in commit (rv) order, across kinds in
any interleaving within `window` seconds. Local times `t` are receive times, so they never
decrease in receive order. Steps and DNS answers are written by the test thread at its own
time; a step's settle waits until the recorder has received everything committed so far.

Steps run as pytest_stateful.actions runs them (begin, API call, settle, DNS probe, end).
A step that does not settle within STEP_TIMEOUT ends with ok=False and the run goes on (a
test that tolerates the timeout); at the end, pods still held NotReady are released, so
every run ends settled.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pytest_stateful.timeline import (
    DNS,
    NODE,
    OUT_OF_SERVICE,
    POD,
    PVC,
    SERVICE,
    SLICE,
    STEP,
    STS,
    Entry,
    Timeline,
)

NAME = "web"
SERVICE_NAME = "nginx"
NAMESPACE = "model"
ZONE = f"{SERVICE_NAME}.{NAMESPACE}.svc.cluster.local"
CLAIM_TEMPLATE = "www"
SLICE_NAME = "nginx-m0d31"
UNREADY_LABEL = "pytest-stateful.io/unready"  # pytest_stateful.cluster.local.UNREADY_LABEL
SELECTOR = {"app": "nginx"}
STEP_TIMEOUT = 30.0  # seconds of model time a settling step waits before it gives up (ok=False)
RV_STEP = 10  # other objects of the cluster share etcd: this namespace's revisions have gaps
NODES = tuple(f"node-{i:06d}" for i in range(3))
GRACE = 0.5  # model seconds from a node's last heartbeat to the node lifecycle controller marking it
UNREACHABLE = ["node.kubernetes.io/unreachable:NoExecute", "node.kubernetes.io/unreachable:NoSchedule"]


@dataclass(frozen=True)
class Workload:
    """The StatefulSet as applied."""

    replicas: int = 3
    start: int = 0  # spec.ordinals.start
    policy: str = "OrderedReady"  # or "Parallel"
    strategy: str = "RollingUpdate"  # or "OnDelete"
    partition: int = 0  # relative to ordinals.start, as upstream
    max_unavailable: int = 1
    min_ready_seconds: int = 0
    when_scaled: str = "Retain"  # persistentVolumeClaimRetentionPolicy.whenScaled: Retain or Delete
    claims: bool = True  # one volumeClaimTemplate "www"

    def __repr__(self) -> str:
        changed = [f"{k}={v!r}" for k, v in self.__dict__.items() if v != Workload.__dataclass_fields__[k].default]
        return f"Workload({', '.join(changed)})"


@dataclass(frozen=True)
class Action:
    """One test step. `arg`: replicas, ordinal, template number, partition or ordinals.start."""

    name: str  # scale, delete_pod, delete_pods, update, partition, ordinals_start, make_unready, make_ready
    arg: int = 0

    def __repr__(self) -> str:
        return f"{self.name}({self.arg})" if self.name != "delete_pods" else "delete_pods()"


@dataclass(frozen=True)
class Deed:
    """Something the controller or the test did to a pod: what the checks must explain."""

    t: float  # commit time
    rv: int
    actor: str  # "controller" or "test"
    verb: str  # "create" or "delete"
    ordinal: int
    uid: str
    reason: str  # create: "missing"; delete: "scale-down", "start-moved", "update", "test"
    revision: str
    start: int  # spec.ordinals.start at the time
    update_revision: str  # the set's update revision at the time


@dataclass
class Run:
    """A model run: the timeline as received, and what happened, for properties and mutations."""

    workload: Workload
    actions: tuple[Action, ...]
    timeline: Timeline
    deeds: list[Deed]
    step_ok: list[bool]
    revisions: dict[int, str]  # template number -> revision name
    claims_recreated: bool = False  # a claim was deleted by the retention policy and created again
    claims_deleted: bool = False
    # A replacement was created while its force-deleted predecessor's node was still failed.
    unsafe_replacement: bool = False
    # The StatefulSet settled on its own by the end (after a bad rollout: it recovered).
    settled: bool = True


def revision_name(template: int) -> str:
    """`<sts>-<hash>`: the ControllerRevision name the pods carry as controller-revision-hash."""
    return f"{NAME}-{hashlib.sha1(f'template-{template}'.encode()).hexdigest()[:10]}"


def image_of(template: int) -> str:
    return f"nginx:1.{9 + template}"


@dataclass
class _Pod:
    ordinal: int
    uid: str
    revision: str
    template: int
    created: float
    phase: str = "Pending"
    node: str = ""
    ip: str = ""
    ready: bool = False
    ready_since: float | None = None
    deleting: bool = False
    held: bool = False  # the make_unready label: the readiness probe fails while it is set

    @property
    def name(self) -> str:
        return f"{NAME}-{self.ordinal}"


@dataclass
class _Claim:
    name: str
    uid: str
    phase: str = "Pending"
    volume: str = ""
    deleting: bool = False
    owners: list[str] = field(default_factory=list)


@dataclass
class _Record:
    recv: float
    order: int
    kind: str
    type: str
    name: str
    uid: str
    rv: str
    data: dict[str, Any]


class Model:
    """One StatefulSet, its controller and the recorder's view of it."""

    def __init__(self, workload: Workload, seed: int = 0, window: float = 0.0) -> None:
        self.w = workload
        self.rng = random.Random(seed)
        self.window = window
        self.now = 0.0
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._n = 0
        self._rv = 1000
        self._records: list[_Record] = []
        self._last_recv: dict[str, float] = {}
        self._uids = 0
        self._ips = 0
        # spec
        self.replicas = workload.replicas
        self.start = workload.start
        self.partition = workload.partition
        self.template = 0
        self.generation = 0
        self.revisions: dict[int, str] = {0: revision_name(0)}
        self.history: list[str] = []
        # status
        self.status: dict[str, Any] = {
            "observed_generation": 0,
            "status_replicas": 0,
            "ready_replicas": 0,
            "available_replicas": 0,
            "current_replicas": 0,
            "updated_replicas": 0,
            "current_revision": "",
            "update_revision": "",
        }
        self.pods: dict[int, _Pod] = {}  # live pod objects (not yet DELETED), by ordinal
        self.claims: dict[str, _Claim] = {}
        self.deeds: list[Deed] = []
        self.claims_recreated = False
        self.claims_deleted = False
        self._claim_names_seen: set[str] = set()
        self._sync_pending = False
        self._slice_pending = False
        self._slice: list[dict[str, Any]] = []
        self._sts_uid = self._uid()
        # nodes: Ready status and taints as the API server has them; failed: kubelets that are down
        self.nodes: dict[str, dict[str, Any]] = {n: {"ready": "True", "taints": []} for n in NODES}
        self.failed: set[str] = set()
        self.broken: set[int] = set()  # templates of a bad_rollout: their pods never become Ready
        self.failed_for: dict[int, str] = {}
        self._stuck: list[tuple[int, str]] = []  # terminations a failed node's kubelet never finished
        self.unsafe_replacement = False
        self._unconfirmed: dict[int, str] = {}  # ordinal -> the failed node its force-deleted pod was on

    # -- recording: what the recorder's watches and the test thread write ------------------

    @property
    def _update(self) -> str:
        return self.revisions[self.template]

    def _uid(self) -> str:
        self._uids += 1
        return hashlib.sha1(f"uid-{self._uids}".encode()).hexdigest()[:8] + f"-{self._uids:04d}"

    def _commit(self, kind: str, type_: str, name: str, uid: str, data: dict[str, Any]) -> int:
        """A write to etcd: the next global revision; received later by that kind's watch."""
        self._rv += RV_STEP
        lag = 0.0005 + self.rng.uniform(0.0, self.window)
        recv = max(self._last_recv.get(kind, 0.0), self.now + lag)
        self._last_recv[kind] = recv
        self._records.append(_Record(recv, len(self._records), kind, type_, name, uid, str(self._rv), data))
        return self._rv

    def _note(self, kind: str, type_: str, name: str, **data: Any) -> None:
        """An entry the test thread adds itself (steps, DNS answers): its local time, no rv."""
        self._records.append(_Record(self.now, len(self._records), kind, type_, name, "", "", data))

    def timeline(self) -> Timeline:
        """Entries in receive order, numbered; t is the receive time."""
        ordered = sorted(self._records, key=lambda r: (r.recv, r.order))
        return Timeline(
            Entry(i, round(r.recv, 6), r.kind, r.type, r.name, r.uid, r.rv, r.data) for i, r in enumerate(ordered)
        )

    def _received_all(self) -> float:
        return max(self._last_recv.values(), default=self.now)

    # -- the clock ------------------------------------------------------------------------

    def _at(self, delay: float, fn: Callable[[], None]) -> None:
        self._n += 1
        heapq.heappush(self._queue, (self.now + delay, self._n, fn))

    def _next(self, limit: float) -> bool:
        """Run the next event due before `limit`; False (and the clock at `limit`) when none is."""
        if not self._queue or self._queue[0][0] > limit:
            self.now = max(self.now, limit)
            return False
        when, _, fn = heapq.heappop(self._queue)
        self.now = max(self.now, when)
        fn()
        return True

    def _advance(self, until: float) -> None:
        while self._next(until):
            pass

    # -- object data, as recorder.reduce_* reduces the objects --------------------------------

    def _pod_data(self, p: _Pod) -> dict[str, Any]:
        labels = {
            "app": "nginx",
            "apps.kubernetes.io/pod-index": str(p.ordinal),
            "controller-revision-hash": p.revision,
            "statefulset.kubernetes.io/pod-name": p.name,
        }
        if p.held:
            labels[UNREADY_LABEL] = "true"
        ready = p.phase == "Running" and p.ready
        return {
            "phase": p.phase,
            "ready": ready,
            "ip": p.ip,
            "node": p.node,
            "revision": p.revision,
            "deleting": p.deleting,
            "hostname": p.name,
            "subdomain": SERVICE_NAME,
            "host_network": False,
            "claims": {CLAIM_TEMPLATE: f"{CLAIM_TEMPLATE}-{p.name}"} if self.w.claims else {},
            "owner": NAME,
            "images": [image_of(p.template)],
            "labels": labels,
            "ready_since": p.ready_since if ready else None,
            "scheduled_message": "",
        }

    def _sts_data(self) -> dict[str, Any]:
        w = self.w
        return {
            "generation": self.generation,
            "observed_generation": self.status["observed_generation"],
            "replicas": self.replicas,
            "ready_replicas": self.status["ready_replicas"],
            "current_replicas": self.status["current_replicas"],
            "updated_replicas": self.status["updated_replicas"],
            "status_replicas": self.status["status_replicas"],
            "current_revision": self.status["current_revision"],
            "update_revision": self.status["update_revision"],
            "policy": w.policy,
            "strategy": w.strategy,
            "partition": self.partition if w.strategy == "RollingUpdate" else 0,
            "max_unavailable": w.max_unavailable if w.strategy == "RollingUpdate" else 1,
            "ordinals_start": self.start,
            "service_name": SERVICE_NAME,
            "selector": dict(SELECTOR),
            "claim_templates": [CLAIM_TEMPLATE] if w.claims else [],
            "claim_mounts": {CLAIM_TEMPLATE: ["nginx", "/usr/share/nginx/html"]} if w.claims else {},
            "retention_when_deleted": "Retain",
            "retention_when_scaled": w.when_scaled,
            "deleting": False,
            "min_ready_seconds": w.min_ready_seconds,
            "available_replicas": self.status["available_replicas"],
        }

    def _pvc_data(self, c: _Claim) -> dict[str, Any]:
        return {
            "phase": c.phase,
            "volume": c.volume,
            "storage_class": "standard",
            "deleting": c.deleting,
            "owners": list(c.owners),
        }

    def _write_pod(self, p: _Pod, type_: str = "MODIFIED") -> None:
        self._commit(POD, type_, p.name, p.uid, self._pod_data(p))
        self._kick()
        self._kick_slice()

    def _write_claim(self, c: _Claim, type_: str = "MODIFIED") -> None:
        self._commit(PVC, type_, c.name, c.uid, self._pvc_data(c))
        self._kick()

    def _write_sts(self) -> None:
        self._commit(STS, "MODIFIED", NAME, self._sts_uid, self._sts_data())
        self._kick()

    # -- kubelet, scheduler, PV controller, garbage collector, EndpointSlice controller ---------

    def _available(self, p: _Pod) -> bool:
        """isRunningAndAvailable -> podutil.IsPodAvailable: Ready for at least minReadySeconds."""
        if p.phase != "Running" or not p.ready or p.ready_since is None:
            return False
        return self.w.min_ready_seconds == 0 or p.ready_since + self.w.min_ready_seconds <= self.now + 1e-9

    def _unavailable(self, p: _Pod | None) -> bool:
        """isUnavailable: not Running and available, or terminating (a missing pod counts)."""
        return p is None or not self._available(p) or p.deleting

    def _alive(self, ordinal: int, uid: str) -> _Pod | None:
        p = self.pods.get(ordinal)
        return p if p is not None and p.uid == uid else None

    def _write_node(self, node: str, type_: str = "MODIFIED") -> None:
        n = self.nodes[node]
        self._commit(
            NODE,
            type_,
            node,
            f"uid-{node}",
            {"ready": n["ready"], "taints": sorted(n["taints"]), "unschedulable": False},
        )

    def _usable(self, node: str) -> bool:
        return node not in self.failed and self.nodes[node]["ready"] == "True" and not self.nodes[node]["taints"]

    def _mark_unreachable(self, node: str) -> None:
        """The node lifecycle controller: no heartbeat for the grace period."""
        if node not in self.failed:
            return
        self.nodes[node] = {"ready": "Unknown", "taints": list(UNREACHABLE)}
        self._write_node(node)
        for p in list(self.pods.values()):
            if p.node == node and p.ready:
                p.ready, p.ready_since = False, None  # MarkPodsNotReady
                self._write_pod(p)

    def _gc_out_of_service(self, node: str) -> None:
        """Taint manager and pod GC: pods on a not-Ready node tainted out-of-service are evicted, then
        force-deleted."""
        if OUT_OF_SERVICE not in {t.split(":")[0] for t in self.nodes[node]["taints"]}:
            return
        for p in [q for q in self.pods.values() if q.node == node]:
            if not p.deleting:
                self._delete(p, "taint-manager", "out-of-service", finish=False)
            del self.pods[p.ordinal]
            self._write_pod(p, "DELETED")

    def _schedule(self, ordinal: int, uid: str) -> None:
        p = self._alive(ordinal, uid)
        if p is None or p.deleting:
            return
        usable = [n for n in NODES if self._usable(n)]
        if not usable:
            return
        p.node = self.rng.choice(usable)
        self._write_pod(p)
        claim = self.claims.get(f"{CLAIM_TEMPLATE}-{p.name}") if self.w.claims else None
        if claim is not None and claim.phase != "Bound":
            # WaitForFirstConsumer: the volume is provisioned once the pod has a node.
            self._at(self.rng.uniform(0.005, 0.02), lambda: self._provision(claim.uid, ordinal, uid))
        else:
            self._at(self.rng.uniform(0.15, 0.35), lambda: self._start(ordinal, uid))

    def _provision(self, claim_uid: str, ordinal: int, uid: str) -> None:
        claim = next((c for c in self.claims.values() if c.uid == claim_uid), None)
        if claim is not None and claim.phase != "Bound":
            claim.volume = f"pvc-{claim.uid}"
            self._write_claim(claim)
            claim.phase = "Bound"
            self._write_claim(claim)
        self._at(self.rng.uniform(0.15, 0.35), lambda: self._start(ordinal, uid))

    def _start(self, ordinal: int, uid: str) -> None:
        p = self._alive(ordinal, uid)
        if p is None or p.deleting or p.node in self.failed:
            return
        if p.template in self.broken:
            # The bad rollout's image cannot be pulled: the pod stays Pending (ErrImagePull), never Ready.
            return
        self._ips += 1
        p.phase = "Running"
        p.ip = f"10.0.{int(p.node[-1])}.{self._ips}"
        if not p.held and self.rng.random() < 0.5:
            self._become_ready(p)
        else:
            self._write_pod(p)
            self._at(self.rng.uniform(0.02, 0.2), lambda: self._probe_ready(ordinal, uid))

    def _probe_ready(self, ordinal: int, uid: str) -> None:
        p = self._alive(ordinal, uid)
        if p is None or p.deleting or p.held or p.ready or p.phase != "Running" or p.node in self.failed:
            return
        self._become_ready(p)

    def _become_ready(self, p: _Pod) -> None:
        p.ready, p.ready_since = True, self.now
        self._write_pod(p)
        if self.w.min_ready_seconds:
            # The controller re-queues the set to see the pod become available (AddAfter).
            self._at(self.w.min_ready_seconds + 0.001, self._kick)

    def _terminate(self, ordinal: int, uid: str) -> None:
        p = self._alive(ordinal, uid)
        if p is None:
            return
        if p.node in self.failed:
            self._stuck.append((ordinal, uid))  # nobody confirms the containers stopped
            return
        if p.phase == "Running" and self.rng.random() < 0.5:
            self._write_pod(p)  # containers stopped; the object still has its finalizers
        del self.pods[ordinal]
        self._write_pod(p, "DELETED")
        for c in list(self.claims.values()):
            if f"Pod/{p.name}" in c.owners and not c.deleting:
                # The garbage collector deletes a claim whose owner (the pod) is gone.
                self._at(self.rng.uniform(0.005, 0.02), lambda c=c: self._collect(c))

    def _collect(self, c: _Claim) -> None:
        if self.claims.get(c.name) is not c or c.deleting:
            return
        c.deleting = True
        self._write_claim(c)

        def gone() -> None:
            if self.claims.get(c.name) is c:
                del self.claims[c.name]
                self.claims_deleted = True
                self._write_claim(c, "DELETED")

        self._at(self.rng.uniform(0.002, 0.01), gone)

    def _kick_slice(self) -> None:
        if not self._slice_pending:
            self._slice_pending = True
            self._at(self.rng.uniform(0.002, 0.01), self._sync_slice)

    def _sync_slice(self) -> None:
        """The EndpointSlice controller: one address per pod with an IP; terminating pods are not ready."""
        self._slice_pending = False
        endpoints = [
            {"ip": p.ip, "hostname": p.name, "ready": p.ready and not p.deleting, "pod": p.name}
            for _, p in sorted(self.pods.items())
            if p.ip
        ]
        if endpoints != self._slice:
            self._slice = endpoints
            self._commit(SLICE, "MODIFIED", SLICE_NAME, "slice-uid", {"service": SERVICE_NAME, "endpoints": endpoints})

    def _delete(self, p: _Pod, actor: str, reason: str, finish: bool = True) -> None:
        """DeleteStatefulPod (or the test's delete call): a deletionTimestamp now, the object later."""
        p.deleting = True
        self._write_pod(p)
        self.deeds.append(
            Deed(self.now, self._rv, actor, "delete", p.ordinal, p.uid, reason, p.revision, self.start, self._update)
        )
        if finish:
            self._at(self.rng.uniform(0.1, 0.3), lambda: self._terminate(p.ordinal, p.uid))

    # -- the StatefulSet controller --------------------------------------------------------

    def _kick(self) -> None:
        """Every watched change of the set, its pods or claims enqueues one sync."""
        if not self._sync_pending:
            self._sync_pending = True
            self._at(self.rng.uniform(0.001, 0.005), self._sync)

    def _claim_is_stale(self, ordinal: int) -> bool:
        """PodClaimIsStale: a claim still owned by a former pod or being deleted blocks creation."""
        c = self.claims.get(f"{CLAIM_TEMPLATE}-{NAME}-{ordinal}")
        return c is not None and (c.deleting or any(o.startswith("Pod/") for o in c.owners))

    def _create(self, ordinal: int, current: str, update: str) -> None:
        """CreateStatefulPod with newVersionedStatefulSetPod's revision.

        The pod gets the current revision when the strategy is RollingUpdate and its ordinal
        is below getStartOrdinal + partition; otherwise the update revision (OnDelete: always).
        Missing claims are created first (createPersistentVolumeClaims).
        """
        below_partition = self.w.strategy == "RollingUpdate" and ordinal < self.start + self.partition
        revision = current if below_partition else update
        template = next(t for t, r in self.revisions.items() if r == revision)
        name = f"{NAME}-{ordinal}"
        if self.w.claims:
            cname = f"{CLAIM_TEMPLATE}-{name}"
            if cname not in self.claims:
                if cname in self._claim_names_seen:
                    self.claims_recreated = True
                self._claim_names_seen.add(cname)
                c = _Claim(cname, self._uid())
                self.claims[cname] = c
                self._write_claim(c, "ADDED")
        p = _Pod(ordinal, self._uid(), revision, template, self.now)
        if ordinal in self._unconfirmed:
            self.unsafe_replacement = True
        self.pods[ordinal] = p
        self._write_pod(p, "ADDED")
        self.deeds.append(
            Deed(self.now, self._rv, "controller", "create", ordinal, p.uid, "missing", revision, self.start, update)
        )
        self._at(self.rng.uniform(0.003, 0.015), lambda: self._schedule(ordinal, p.uid))

    def _count(self, current: str, update: str) -> dict[str, int]:
        """computeReplicaStatus over every pod of the set (condemned and terminating included)."""
        pods = list(self.pods.values())
        return {
            "status_replicas": len(pods),
            "ready_replicas": sum(1 for p in pods if p.phase == "Running" and p.ready),
            "available_replicas": sum(1 for p in pods if self._available(p)),
            "current_replicas": sum(1 for p in pods if not p.deleting and p.revision == current),
            "updated_replicas": sum(1 for p in pods if not p.deleting and p.revision == update),
        }

    def _sync(self) -> None:
        """defaultStatefulSetControl.updateStatefulSet, then updateStatefulSetStatus.

        OrderedReady is `monotonic`: one creation or deletion per sync, and nothing past a
        pod that is missing, terminating, not Ready or not available (processReplica,
        processCondemned). Parallel creates every missing pod and deletes every condemned
        one in the same sync (runForAll with slowStartBatch).
        """
        self._sync_pending = False
        update = self.revisions[self.template]
        if update not in self.history:
            self.history.append(update)  # getStatefulSetRevisions: a new ControllerRevision
        current = self.status["current_revision"] if self.status["current_revision"] in self.history else update
        status = self._count(current, update)  # from the pods as listed at the start of the sync
        monotonic = self.w.policy != "Parallel"
        wanted = range(self.start, self.start + self.replicas)
        blocked = False
        # processReplica, in ordinal order.
        for ordinal in wanted:
            p = self.pods.get(ordinal)
            if p is None:
                if self._claim_is_stale(ordinal):
                    blocked = True  # no more work this round (the first return value only counts when monotonic)
                    if monotonic:
                        break
                    continue
                self._create(ordinal, current, update)
                if monotonic:
                    blocked = True
                    break
                continue
            if monotonic and (p.deleting or not (p.phase == "Running" and p.ready) or not self._available(p)):
                blocked = True
                break
            self._release_claims(p)
        if not (blocked and monotonic):
            blocked = self._condemn(wanted, monotonic) or blocked
        deleted_for_update = 0
        if not (blocked and monotonic) and self.w.strategy == "RollingUpdate":
            deleted_for_update = self._roll(wanted, update)
        status["current_replicas"] -= deleted_for_update
        self._write_status(status, current, update)

    def _release_claims(self, p: _Pod) -> None:
        """ClaimsMatchRetentionPolicy / UpdateStatefulPod: a pod in range does not own its claims."""
        c = self.claims.get(f"{CLAIM_TEMPLATE}-{p.name}") if self.w.claims else None
        if c is not None and not c.deleting and f"Pod/{p.name}" in c.owners:
            c.owners = [o for o in c.owners if o != f"Pod/{p.name}"]
            self._write_claim(c)

    def _condemn(self, wanted: range, monotonic: bool) -> bool:
        """Scale-down: fixPodClaim, then processCondemned from the highest ordinal down.

        Monotonic: wait for a terminating condemned pod to go; a condemned pod that is not
        Ready and available is deleted only if it is the first unhealthy pod (replicas in
        ordinal order, then condemned in ascending order). Returns whether it stopped.
        """
        condemned = sorted((p for o, p in self.pods.items() if o not in wanted), key=lambda p: -p.ordinal)
        if not condemned:
            return False
        if self.w.claims and self.w.when_scaled == "Delete":
            for p in condemned:
                c = self.claims.get(f"{CLAIM_TEMPLATE}-{p.name}")
                if c is not None and not c.deleting and f"Pod/{p.name}" not in c.owners:
                    c.owners = [*c.owners, f"Pod/{p.name}"]
                    self._write_claim(c)
        first_unhealthy = next((self.pods.get(o) for o in wanted if self._unavailable(self.pods.get(o))), None)
        if first_unhealthy is None:
            first_unhealthy = next((p for p in reversed(condemned) if self._unavailable(p)), None)
        for p in condemned:
            if p.deleting:
                if monotonic:
                    return True
                continue
            if monotonic and p is not first_unhealthy and self._unavailable(p):
                return True
            self._delete(p, "controller", "start-moved" if p.ordinal < wanted.start else "scale-down")
            if monotonic:
                return True
        return False

    def _roll(self, wanted: range, update: str) -> int:
        """updateStatefulSetAfterInvariantEstablished (MaxUnavailableStatefulSet on).

        Count the unavailable pods in range; if no more than maxUnavailable, delete up to
        maxUnavailable - unavailable pods not on the update revision, from the highest
        ordinal down to index `partition` (relative to the start ordinal).
        """
        replicas = [self.pods.get(o) for o in wanted]
        max_unavailable = max(1, self.w.max_unavailable)
        unavailable = sum(1 for p in replicas if self._unavailable(p))
        if unavailable > max_unavailable:
            return 0
        budget = max_unavailable - unavailable
        deleted = 0
        for index in range(len(replicas) - 1, self.partition - 1, -1):
            if deleted >= budget:
                break
            p = replicas[index]
            if p is not None and p.revision != update and not p.deleting:
                self._delete(p, "controller", "update")
                deleted += 1
        return deleted

    def _write_status(self, status: dict[str, int], current: str, update: str) -> None:
        """updateStatefulSetStatus: completeRollingUpdate, then write only if anything changed."""
        new = {"observed_generation": self.generation, **status, "current_revision": current, "update_revision": update}
        if (
            self.w.strategy == "RollingUpdate"
            and new["updated_replicas"] == new["status_replicas"]
            and new["ready_replicas"] == new["status_replicas"]
        ):
            new["current_replicas"] = new["updated_replicas"]
            new["current_revision"] = update
        if new != self.status:
            self.status = new
            self._write_sts()

    # -- the test: steps as pytest_stateful.actions runs them ---------------------------------

    def _settled(self) -> bool:
        """StatefulSetHandle._settled on the API server's state, made exact where it is not.

        Two differences (both would end a real step early or never): the pods must be
        exactly the ordinals in range (not just as many), and the partition counts from
        the start ordinal.
        """
        s = self.status
        if s["observed_generation"] < self.generation:
            return False
        if s["ready_replicas"] != self.replicas or s["status_replicas"] != self.replicas:
            return False
        pods = list(self.pods.values())
        if set(self.pods) != set(range(self.start, self.start + self.replicas)):
            return False
        if any(p.deleting or not p.ready for p in pods):
            return False
        if self.w.strategy == "OnDelete":
            return True
        if self.partition > 0:
            return s["updated_replicas"] >= self.replicas - min(self.partition, self.replicas)
        return bool(s["current_revision"]) and s["current_revision"] == s["update_revision"]

    def _wait(self, predicate: Callable[[], bool], timeout: float = STEP_TIMEOUT) -> bool:
        """Until predicate holds on the server and the recorder has received all of it."""
        deadline = self.now + timeout
        while True:
            if predicate():
                seen = self._received_all()
                if seen <= self.now:
                    return True
                self._advance(seen)
                continue
            if not self._next(deadline):
                return False

    def _api(self) -> None:
        """The round trip of one API call."""
        self._advance(self.now + self.rng.uniform(0.001, 0.004))

    def _probe_dns(self) -> None:
        """StatefulSetHandle.probe_dns once everything has settled: every answer is the expected one."""
        pods = [p for _, p in sorted(self.pods.items()) if p.ip and not p.deleting]
        started = self.now
        wanted = [(f"{p.name}.{ZONE}", [p.ip], f"{p.name}'s current IP", p.name) for p in pods]
        wanted.append((ZONE, sorted(p.ip for p in pods if p.ready), "the Ready pods' IPs", ""))
        for qname, ips, what, pod in wanted:
            self.now += self.rng.uniform(0.0003, 0.001)
            self._note(
                DNS,
                "answer",
                qname,
                qname=qname,
                answers=sorted(ips),
                expected=ips,
                what=what,
                pod=pod,
                ok=True,
                waited=round(self.now - started, 3),
            )

    def _spec_changed(self) -> None:
        self.generation += 1
        self._write_sts()

    def apply(self) -> bool:
        detail = f"Service/{SERVICE_NAME}, StatefulSet/{NAME}"
        for node in NODES:  # the recorder lists the nodes when it starts
            self._write_node(node, "LISTED")
        self._note(STEP, "begin", "apply", action="apply", detail=detail)
        self._api()
        self._commit(
            SERVICE,
            "ADDED",
            SERVICE_NAME,
            self._uid(),
            {"cluster_ip": "None", "headless": True, "selector": dict(SELECTOR), "publish_not_ready": False},
        )
        self._commit(SLICE, "ADDED", SLICE_NAME, "slice-uid", {"service": SERVICE_NAME, "endpoints": []})
        self._api()
        self.generation = 1
        self._commit(STS, "ADDED", NAME, self._sts_uid, self._sts_data())
        self._kick()
        ok = self._wait(self._settled)
        if ok:
            self._probe_dns()
        self._note(STEP, "end", "apply", action="apply", detail=detail, ok=ok)
        return ok

    def step(self, action: Action) -> bool:
        """One step: begin, the API call, (deletes), the settle and DNS probe, end."""
        self._advance(self.now + self.rng.uniform(0.0, 0.01))
        name, arg = action.name, action.arg
        detail = {
            "scale": f"to {arg}",
            "delete_pod": f"{NAME}-{arg}",
            "delete_pods": "all pods at once",
            "update_image": f"nginx={image_of(arg)}",
            "partition": f"to {arg}",
            "ordinals_start": f"to {arg}",
            "make_unready": f"{NAME}-{arg}",
            "make_ready": f"{NAME}-{arg}",
            "fail_node": f"{NAME}-{arg}",
            "out_of_service": self.failed_for.get(arg, f"{NAME}-{arg}"),  # the handle names the node
            "force_delete_pod": f"{NAME}-{arg}",
            "restore_node": f"{NAME}-{arg}",
            "bad_rollout": f"nginx={image_of(arg)}-broken",
            "sleep": f"{arg} s",
        }[name]
        self._note(STEP, "begin", name, action=name, detail=detail)
        self._api()
        settle, ok = True, True
        if name == "scale":
            self.replicas = arg
            self._spec_changed()
        elif name in ("update_image", "bad_rollout"):
            self.template = arg
            self.revisions.setdefault(arg, revision_name(arg))
            if name == "bad_rollout":
                self.broken.add(arg)
                settle = False  # it cannot settle: the point of it
            self._spec_changed()
            if name == "bad_rollout":
                self._note(STEP, "generation", name, action=name, generation=self.generation)
        elif name == "partition":
            self.partition = arg
            self._spec_changed()
        elif name == "ordinals_start":
            self.start = arg
            self._spec_changed()
        elif name in ("delete_pod", "delete_pods"):
            targets = [p for o, p in sorted(self.pods.items()) if name == "delete_pods" or o == arg]
            if not targets and name == "delete_pod":
                ok = settle = False  # 404: the step raises
            fresh = [p for p in targets if not p.deleting]
            for p in fresh:
                self._delete(p, "test", "test")
            self._api()
            if targets:
                self._note(
                    STEP, "deletes", name, action=name, uids=[p.uid for p in fresh], pods=[p.name for p in fresh]
                )
        elif name in ("make_unready", "make_ready"):
            p = self.pods.get(arg)
            if p is None:
                ok = settle = False
            else:
                p.held = name == "make_unready"
                self._write_pod(p)
                uid = p.uid
                if p.held:
                    settle = False
                    self._at(self.rng.uniform(0.01, 0.05), lambda: self._probe_unready(arg, uid))
                    ok = self._wait(lambda: (q := self._alive(arg, uid)) is None or not q.ready)
                else:
                    self._at(self.rng.uniform(0.01, 0.05), lambda: self._probe_ready(arg, uid))
        elif name == "sleep":
            settle = False
            self._advance(self.now + arg)
        elif name == "fail_node":
            settle = False
            p = self.pods.get(arg)
            if p is None or not p.node or p.node in self.failed:
                ok = False
            else:
                node = p.node
                on = [q for _, q in sorted(self.pods.items()) if q.node == node]
                self._note(STEP, "deletes", name, action=name, uids=[q.uid for q in on], pods=[q.name for q in on])
                self._note(STEP, "fails", name, action=name, node=node)
                self.failed.add(node)
                self.failed_for[arg] = node
                self._at(GRACE, lambda: self._mark_unreachable(node))
                ok = self._wait(lambda: self.nodes[node]["ready"] == "Unknown")
        elif name == "out_of_service":
            node = self.failed_for.get(arg, "")
            if not node:
                ok = settle = False
            else:
                on = [q for _, q in sorted(self.pods.items()) if q.node == node]
                self._note(STEP, "deletes", name, action=name, uids=[q.uid for q in on], pods=[q.name for q in on])
                self.nodes[node]["taints"] = [*self.nodes[node]["taints"], f"{OUT_OF_SERVICE}:NoExecute"]
                self._unconfirmed = {o: n for o, n in self._unconfirmed.items() if n != node}
                self._write_node(node)
                self._at(self.rng.uniform(0.05, 0.5), lambda: self._gc_out_of_service(node))
        elif name == "force_delete_pod":
            p = self.pods.get(arg)
            if p is None:
                ok = settle = False
            else:
                self._note(STEP, "deletes", name, action=name, uids=[p.uid], pods=[p.name])
                if p.node in self.failed:
                    self._unconfirmed[arg] = p.node
                if not p.deleting:
                    self._delete(p, "test", "test", finish=False)
                del self.pods[arg]
                self._write_pod(p, "DELETED")
        elif name == "restore_node":
            node = self.failed_for.pop(arg, "")
            if not node:
                ok = settle = False
            else:
                self._note(STEP, "restores", name, action=name, node=node)
                self.failed.discard(node)
                self._unconfirmed = {o: n for o, n in self._unconfirmed.items() if n != node}
                self.nodes[node] = {"ready": "True", "taints": []}
                self._write_node(node)
                # The kubelet is back: it finishes what it could not confirm, and its pods get Ready again.
                for ordinal, uid in self._stuck:
                    self._at(self.rng.uniform(0.01, 0.1), lambda o=ordinal, u=uid: self._terminate(o, u))
                self._stuck = []
                for p in list(self.pods.values()):
                    if p.node == node:
                        self._at(
                            self.rng.uniform(0.01, 0.1),
                            lambda p=p: (
                                self._start(p.ordinal, p.uid)
                                if p.phase != "Running"
                                else self._probe_ready(p.ordinal, p.uid)
                            ),
                        )
        else:
            raise ValueError(f"unknown action {name}")
        if settle:
            ok = self._wait(self._settled)
            if ok:
                self._probe_dns()
        self._note(STEP, "end", name, action=name, detail=detail, ok=ok)
        return ok

    def _probe_unready(self, ordinal: int, uid: str) -> None:
        p = self._alive(ordinal, uid)
        if p is not None and p.held and p.ready:
            p.ready, p.ready_since = False, None
            self._write_pod(p)


def run(workload: Workload, actions: tuple[Action, ...] | list[Action], seed: int = 0, window: float = 0.0) -> Run:
    """Apply the workload, run the steps, release any pod still held NotReady, return the record."""
    model = Model(workload, seed, window)
    oks = [model.apply()]
    for action in actions:
        oks.append(model.step(action))
    for ordinal, p in sorted(model.pods.items()):
        if p.held:
            oks.append(model.step(Action("make_ready", ordinal)))
    for ordinal in sorted(model.failed_for):  # teardown restores every failed node
        oks.append(model.step(Action("restore_node", ordinal)))
    if model.broken:
        # The spec runner's await_recovery: the step timeout for the set to settle on its own.
        model._note(STEP, "begin", "await_recovery", action="await_recovery", detail="")
        model._wait(model._settled)
        model._note(STEP, "end", "await_recovery", action="await_recovery", detail="", ok=True)
    settled = model._settled()
    return Run(
        workload,
        tuple(actions),
        model.timeline(),
        model.deeds,
        oks,
        dict(model.revisions),
        model.claims_recreated,
        model.claims_deleted,
        model.unsafe_replacement,
        settled,
    )
