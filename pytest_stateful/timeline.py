"""The event model shared by the recorder, the checks and the reports.

A Timeline is the ordered list of everything recorded in one test namespace:
watch events (reduced to the fields that matter), the steps the test took, and
gaps where the record may be incomplete. Entries are kept in the order they were
received; events of one resource type arrive in resourceVersion order, so the
receive order is the order the API server committed them in.
"""

from __future__ import annotations

import builtins
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Self

POD = "Pod"
PVC = "PersistentVolumeClaim"
SLICE = "EndpointSlice"
EVENT = "Event"
STS = "StatefulSet"
STEP = "Step"
GAP = "Gap"
SERVICE = "Service"
DNS = "DNS"
PROBE = "Probe"  # a command run inside a container (node level)
RETRY = "Retry"  # an API call the plugin retried after a transient failure
PDB = "PodDisruptionBudget"  # as the test applied it (not watched: an account may not read them)
NODE = "Node"  # cluster-wide, recorded only when its readiness, taints or cordon change
RUNTIME = "Runtime"  # what a node's container runtime said still runs of a pod (node level)
# Taints that say a node failed, and the one that says it is shut down (non-graceful node shutdown).
UNREACHABLE_TAINTS = ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready")
OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"


class Reduced:
    """Typed view of an entry's data: every field has a default, so records made by older
    versions (without a newer key) still load, and nothing downstream writes `int(x or 0)`."""

    __slots__ = ()

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Self:
        values: dict[str, Any] = {}
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name not in data:
                continue
            raw = data[f.name]
            kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
            if kind == "int":
                raw = int(raw or 0)
            elif kind == "bool":
                raw = bool(raw)
            elif kind == "str":
                raw = "" if raw is None else str(raw)
            values[f.name] = raw
        return cls(**values)


@dataclass(frozen=True, slots=True)
class PodData(Reduced):
    phase: str = ""
    ready: bool = False
    # When the Ready condition last became True, in the timeline's seconds (None: not Ready).
    ready_since: float | None = None
    ip: str = ""
    node: str = ""
    revision: str = ""
    deleting: bool = False
    hostname: str = ""
    subdomain: str = ""
    host_network: bool = False
    claims: Mapping[str, str] = field(default_factory=dict)
    owner: str = ""
    images: list[str] = field(default_factory=list)
    labels: Mapping[str, str] = field(default_factory=dict)
    # Why the scheduler has not placed the pod (its PodScheduled=False message), else "".
    scheduled_message: str = ""
    # "container: Reason: message" of containers waiting for a reason other than being created.
    waiting: list[str] = field(default_factory=list)
    # The DisruptionTarget condition's reason (TerminationByKubelet, DeletionByPodGC, ...), else "".
    disruption: str = ""


@dataclass(frozen=True, slots=True)
class StsData(Reduced):
    generation: int = 0
    observed_generation: int = 0
    replicas: int = 1
    ready_replicas: int = 0
    available_replicas: int = 0
    current_replicas: int = 0
    updated_replicas: int = 0
    status_replicas: int = 0
    current_revision: str = ""
    update_revision: str = ""
    policy: str = "OrderedReady"
    strategy: str = "RollingUpdate"
    partition: int = 0
    max_unavailable: int | str = 1
    min_ready_seconds: int = 0
    ordinals_start: int = 0
    service_name: str = ""
    selector: Mapping[str, str] = field(default_factory=dict)
    claim_templates: list[str] = field(default_factory=list)
    # template -> the storage it requests ("" when unknown)
    claim_requests: Mapping[str, str] = field(default_factory=dict)
    claim_mounts: Mapping[str, list[str]] = field(default_factory=dict)
    containers: list[str] = field(default_factory=list)
    retention_when_deleted: str = "Retain"
    retention_when_scaled: str = "Retain"
    deleting: bool = False

    @property
    def ordinals(self) -> range:
        """The ordinals the spec asks for."""
        return range(self.ordinals_start, self.ordinals_start + self.replicas)

    @property
    def rolling_out(self) -> bool:
        return bool(self.current_revision and self.update_revision and self.current_revision != self.update_revision)


@dataclass(frozen=True, slots=True)
class ClaimData(Reduced):
    phase: str = ""
    volume: str = ""
    storage_class: str = ""
    deleting: bool = False
    owners: list[str] = field(default_factory=list)
    requested: str = ""  # spec.resources.requests.storage


@dataclass(frozen=True, slots=True)
class NodeData(Reduced):
    # The Ready condition's status: "True", "False", "Unknown" (no heartbeat), "" (none yet).
    ready: str = ""
    taints: list[str] = field(default_factory=list)  # "key:Effect"
    unschedulable: bool = False

    def tainted(self, *keys: str) -> bool:
        return any(t.split(":", 1)[0] in keys for t in self.taints)

    @property
    def out_of_service(self) -> bool:
        return self.tainted(OUT_OF_SERVICE)


@dataclass(frozen=True, slots=True)
class Entry:
    """One recorded fact. `t` is seconds since the recording started (monotonic clock)."""

    seq: int
    t: float
    kind: str
    type: str  # ADDED, MODIFIED, DELETED; "begin"/"end" for steps; "gap" for gaps
    name: str
    uid: str = ""
    rv: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    # The typed view of `data`, built on first use (not an init field: dataclasses.replace drops it).
    _view: Any = field(default=None, init=False, compare=False, repr=False)

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def _typed(self, cls: builtins.type[Reduced]) -> Any:
        view = self._view
        if view is None or type(view) is not cls:
            view = cls.of(self.data)
            object.__setattr__(self, "_view", view)
        return view

    @property
    def pod(self) -> PodData:
        return self._typed(PodData)  # type: ignore[no-any-return]

    @property
    def sts(self) -> StsData:
        return self._typed(StsData)  # type: ignore[no-any-return]

    @property
    def claim(self) -> ClaimData:
        return self._typed(ClaimData)  # type: ignore[no-any-return]

    @property
    def node(self) -> NodeData:
        return self._typed(NodeData)  # type: ignore[no-any-return]

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "t": round(self.t, 6),
            "kind": self.kind,
            "type": self.type,
            "name": self.name,
            "uid": self.uid,
            "rv": self.rv,
            "data": dict(self.data),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Entry:
        return cls(
            seq=int(raw["seq"]),
            t=float(raw["t"]),
            kind=str(raw["kind"]),
            type=str(raw["type"]),
            name=str(raw["name"]),
            uid=str(raw.get("uid", "")),
            rv=str(raw.get("rv", "")),
            data=dict(raw.get("data", {})),
        )


@dataclass
class PodLife:
    """One pod object (one UID) from creation to disappearance, as the record saw it."""

    name: str
    uid: str
    ordinal: int | None
    created: Entry
    ready_at: float | None = None  # first time it was Running and Ready
    deleting_at: float | None = None
    gone_at: float | None = None
    ips: list[str] = field(default_factory=list)
    node: str = ""
    revisions: list[str] = field(default_factory=list)
    last: Entry | None = None

    @property
    def ip(self) -> str:
        return self.ips[-1] if self.ips else ""

    @property
    def revision(self) -> str:
        return self.revisions[-1] if self.revisions else ""


def ordinal_of(pod_name: str, sts_name: str) -> int | None:
    """The ordinal in `<sts>-<ordinal>`, or None when the name is not of that shape."""
    match = re.fullmatch(re.escape(sts_name) + r"-(0|[1-9][0-9]*)", pod_name)
    return int(match.group(1)) if match else None


def claim_ordinal(claim: str, templates: Iterable[str], sts_name: str) -> int | None:
    """The ordinal of claim `<template>-<sts>-<ordinal>` (getPersistentVolumeClaimName) for one of these
    templates, or None. Every template is tried: one may be a prefix of another."""
    for t in templates:
        if claim.startswith(f"{t}-") and (k := ordinal_of(claim[len(t) + 1 :], sts_name)) is not None:
            return k
    return None


class Timeline:
    """An append-only, ordered record; cheap to replay, serialisable to JSON."""

    def __init__(self, entries: Iterable[Entry] = ()) -> None:
        self.entries: list[Entry] = list(entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def of(self, *kinds: str) -> list[Entry]:
        return [e for e in self.entries if e.kind in kinds]

    def gaps(self, kind: str | None = None) -> list[Entry]:
        return [e for e in self.entries if e.kind == GAP and (kind is None or e.name == kind)]

    def deleted_at(self, name: str) -> int | None:
        """Where the test's delete_statefulset of StatefulSet `name` (its last step) was recorded, or None."""
        return next(
            (
                e.seq
                for e in self.entries
                if e.kind == STEP
                and e.type == "deletes"
                and e.name == "delete_statefulset"
                and e.get("statefulset") == name
            ),
            None,
        )

    def before_deletion(self, name: str) -> Timeline:
        """The record up to the test's delete_statefulset of StatefulSet `name`: after it the garbage
        collector deletes the pods all at once, which no guarantee but claim_retention is about."""
        cut = self.deleted_at(name)
        return self if cut is None else Timeline(e for e in self.entries if e.seq < cut)

    def statefulset(self, name: str) -> Entry | None:
        """The last recorded state of the StatefulSet `name`."""
        found = None
        for e in self.entries:
            if e.kind == STS and e.name == name and e.type != "DELETED":
                found = e
        return found

    def pod_lives(self, sts_name: str) -> list[PodLife]:
        """Every pod UID in creation order, with when it became Ready, started terminating, went."""
        lives: dict[str, PodLife] = {}
        for e in self.entries:
            if e.kind != POD:
                continue
            life = lives.get(e.uid)
            if life is None:
                life = PodLife(e.name, e.uid, ordinal_of(e.name, sts_name), created=e)
                lives[e.uid] = life
            life.last = e
            ip = e.get("ip") or ""
            if ip and (not life.ips or life.ips[-1] != ip):
                life.ips.append(ip)
            if e.get("node"):
                life.node = e.get("node")
            rev = e.get("revision") or ""
            if rev and (not life.revisions or life.revisions[-1] != rev):
                life.revisions.append(rev)
            if life.ready_at is None and e.get("ready") and e.type != "DELETED":
                life.ready_at = e.t
            if life.deleting_at is None and (e.get("deleting") or e.type == "DELETED"):
                life.deleting_at = e.t
            if e.type == "DELETED":
                life.gone_at = e.t
        return list(lives.values())

    def to_json(self) -> str:
        return json.dumps([e.to_dict() for e in self.entries], indent=None, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Timeline:
        return cls(Entry.from_dict(raw) for raw in json.loads(text))

    @classmethod
    def load(cls, path: str | Path) -> Timeline:
        return cls.from_json(Path(path).read_text())


def format_table(entries: Iterable[Entry], mark: Entry | None = None) -> str:
    """An aligned table of entries; `mark` gets an arrow so the violation stands out."""
    rows = [("", "t (s)", "kind", "event", "name", "state")]
    for e in entries:
        rows.append(
            (
                ">>" if mark is not None and e.seq == mark.seq else "",
                f"{e.t:8.3f}",
                e.kind,
                e.type,
                e.name,
                describe(e),
            )
        )
    return "\n".join(aligned(rows))


def aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows of cells as left-aligned columns (the last column is not padded)."""
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return [("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]).rstrip() for r in rows]


def describe(e: Entry) -> str:
    """A short human summary of an entry's state."""
    d = e.data
    if e.kind == POD:
        parts = [str(d.get("phase", "?"))]
        parts.append("Ready" if d.get("ready") else "NotReady")
        if d.get("deleting"):
            parts.append("terminating")
        if d.get("ip"):
            parts.append(f"ip={d['ip']}")
        if d.get("node"):
            parts.append(f"node={d['node']}")
        if d.get("revision"):
            parts.append(f"rev={d['revision']}")
        return " ".join(parts)
    if e.kind == STS:
        return (
            f"replicas={d.get('replicas')} ready={d.get('ready_replicas')} "
            f"current={d.get('current_revision')} update={d.get('update_revision')}"
        )
    if e.kind == PVC:
        return f"{d.get('phase', '?')} volume={d.get('volume') or '-'}" + (" deleting" if d.get("deleting") else "")
    if e.kind == SLICE:
        eps = d.get("endpoints", [])
        return ", ".join(
            f"{x.get('hostname') or '?'}={x.get('ip')}{'' if x.get('ready') else '(unready)'}" for x in eps
        )
    if e.kind == EVENT:
        return f"{d.get('reason')}: {d.get('message', '')}"[:120]
    if e.kind == STEP:
        return str(d.get("detail", ""))
    if e.kind == GAP:
        return str(d.get("reason", ""))
    if e.kind == NODE:
        taints = ",".join(d.get("taints") or [])
        return (
            f"Ready={d.get('ready') or '?'}"
            + (" cordoned" if d.get("unschedulable") else "")
            + (f" taints={taints}" if taints else "")
        )
    if e.kind == RUNTIME:
        running = d.get("running") or []
        return f"{d.get('pod')} on {d.get('node')}: " + (f"running {', '.join(running)}" if running else "nothing runs")
    return ""
