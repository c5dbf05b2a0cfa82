"""Who owns a namespace the plugin created, whether that session has ended, and the sweep that
deletes what ended sessions left behind (namespaces, and PersistentVolumes released by their claims).

A namespace carries its owner: the session's id as a label, and as annotations the pid, the host
and the creation time, plus the process's identity on that host (boot id, pid namespace, start
time), so a pid reused by another process or seen from another container is not taken for the
owner. The sweep only ever looks at namespaces labelled OWNED_LABEL=true, and never deletes one
whose owner may still run: on this host that is decided by the process table; for another host
(or a process it cannot see) only age decides, after FOREIGN_MAX_AGE.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client

from pytest_stateful.cluster.api import CLEANUP_TIMEOUT, call
from pytest_stateful.errors import ApiError, Conflict, Forbidden, NotFound, ServerError
from pytest_stateful.workload.cluster_objects import listed as listed_objects
from pytest_stateful.workload.cluster_objects import sweep_listed

OWNED_LABEL = "pytest-stateful.io/owned"
SESSION_LABEL = "pytest-stateful.io/session"
PID_ANNOTATION = "pytest-stateful.io/pid"
HOST_ANNOTATION = "pytest-stateful.io/host"
CREATED_ANNOTATION = "pytest-stateful.io/created"
PROCESS_ANNOTATION = "pytest-stateful.io/process"
KEPT_ANNOTATION = "pytest-stateful.io/kept"

# A session on another host cannot be asked whether it still runs; a namespace of it this old is
# taken as left behind. One test lives in one namespace, and no test of this plugin runs for an hour.
FOREIGN_MAX_AGE = 3600.0
# The names session.namespace_name gives: how a PersistentVolume's claim is known to have been
# in one of ours after that namespace (and its label) is gone.
NAME_PATTERN = re.compile(r"^stateful-[a-z0-9-]*-[0-9a-f]{6}$")


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _start_time(pid: int) -> str | None:
    """The start time of a running pid (clock ticks since boot, from /proc), "" when this system
    cannot say, None when no such process runs (a zombie has ended: it only waits to be reaped)."""
    stat = _read(f"/proc/{pid}/stat")
    if stat:
        # The command name may hold spaces and parentheses; the fields after its last ')' do not.
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 19 and fields[0] not in ("Z", "X"):
            return fields[19]
        return None
    if Path("/proc/self/stat").exists():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return ""
    return ""


@dataclass(frozen=True)
class Here:
    """This host as the liveness decision sees it; `start_time` asks the process table."""

    host: str
    boot: str
    pid_namespace: str
    start_time: Callable[[int], str | None] = _start_time

    @classmethod
    def now(cls) -> Here:
        return cls(socket.gethostname(), _read("/proc/sys/kernel/random/boot_id"), _pid_namespace())


@dataclass(frozen=True)
class Owner:
    """The session that created a namespace, as recorded on it (empty fields: not recorded)."""

    session: str = ""
    pid: int | None = None
    host: str = ""
    # boot id|pid namespace|start time of the creating process; empty parts where the system has none.
    process: str = ""
    created: float | None = None
    kept: bool = False

    @classmethod
    def of(cls, metadata: Any) -> Owner:
        labels = dict(getattr(metadata, "labels", None) or {})
        notes = dict(getattr(metadata, "annotations", None) or {})
        pid = notes.get(PID_ANNOTATION, "")
        created = _epoch(notes.get(CREATED_ANNOTATION, ""))
        if created is None:
            stamp = getattr(metadata, "creation_timestamp", None)
            created = stamp.timestamp() if isinstance(stamp, datetime) else None
        return cls(
            session=labels.get(SESSION_LABEL, ""),
            pid=int(pid) if pid.isdigit() else None,
            host=notes.get(HOST_ANNOTATION, ""),
            process=notes.get(PROCESS_ANNOTATION, ""),
            created=created,
            kept=notes.get(KEPT_ANNOTATION, "") == "true",
        )

    def labels(self) -> dict[str, str]:
        return {OWNED_LABEL: "true", SESSION_LABEL: self.session}

    def annotations(self) -> dict[str, str]:
        created = datetime.fromtimestamp(self.created or time.time(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            PID_ANNOTATION: str(self.pid),
            HOST_ANNOTATION: self.host,
            CREATED_ANNOTATION: created,
            PROCESS_ANNOTATION: self.process,
        }


def _epoch(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


_session = secrets.token_hex(6)
_session_pid = os.getpid()


def this_process() -> Owner:
    """The owner to record on a namespace created now. A forked child is a session of its own."""
    global _session, _session_pid
    if os.getpid() != _session_pid:
        _session, _session_pid = secrets.token_hex(6), os.getpid()
    here = Here.now()
    process = f"{here.boot}|{here.pid_namespace}|{_start_time(os.getpid()) or ''}"
    return Owner(_session, os.getpid(), here.host, process, time.time())


def _age(seconds: float) -> str:
    if seconds >= 5400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 60:.0f} min"


def session_ended(owner: Owner, here: Here, now: float, max_age: float = FOREIGN_MAX_AGE) -> str | None:
    """Why the session that created a namespace has certainly ended, or None while it may still run.

    Same host means the same host name, boot and pid namespace: only there is the pid asked about.
    Another host, a container with its own pid namespace, or a namespace without an owner (an older
    plugin) cannot be asked, so only age decides there.
    """
    boot, _, rest = owner.process.partition("|")
    pid_namespace, _, start = rest.partition("|")
    same_host = (
        bool(owner.host)
        and owner.host == here.host
        and owner.pid is not None
        and (not boot or not here.boot or boot == here.boot)
        and (not pid_namespace or not here.pid_namespace or pid_namespace == here.pid_namespace)
    )
    if same_host and owner.pid is not None:
        running = here.start_time(owner.pid)
        if running is None:
            return f"pid {owner.pid} is no longer running"
        if start and running and running != start:
            return f"pid {owner.pid} now belongs to another process"
        return None
    age = now - owner.created if owner.created is not None else None
    if age is None or age < max_age:
        return None
    where = f"on {owner.host}" if owner.host else "by an earlier version of the plugin"
    return f"created {where} {_age(age)} ago"


@dataclass
class Sweep:
    """What a sweep did (or, dry, would do)."""

    deleted: dict[str, str] = field(default_factory=dict)  # namespace -> why its session has ended
    live: list[str] = field(default_factory=list)  # namespaces of sessions that may still run
    kept: list[str] = field(default_factory=list)  # kept on purpose (--stateful-keep-namespace)
    volumes: list[str] = field(default_factory=list)  # Released PersistentVolumes deleted
    errors: list[str] = field(default_factory=list)

    def summary(self, verb: str = "deleted") -> str:
        """One line (empty when nothing was deleted and nothing failed)."""
        parts = []
        if self.deleted:
            by_reason: dict[str, list[str]] = {}
            for name, why in sorted(self.deleted.items()):
                by_reason.setdefault(why, []).append(name)
            groups = "; ".join(f"{', '.join(names)} ({why})" for why, names in by_reason.items())
            n = len(self.deleted)
            parts.append(f"{verb} {n} namespace{'s' if n != 1 else ''} left by sessions that ended: {groups}")
        if self.volumes:
            n = len(self.volumes)
            parts.append(
                f"{verb} {n} Released PersistentVolume{'s' if n != 1 else ''} of such namespaces: "
                + ", ".join(sorted(self.volumes))
            )
        if self.errors:
            parts.append("could not finish: " + "; ".join(self.errors))
        return "; ".join(parts)


def sweep(
    core: client.CoreV1Api,
    *,
    everything: bool = False,
    kept: bool = False,
    dry_run: bool = False,
    here: Here | None = None,
    now: float | None = None,
    max_age: float = FOREIGN_MAX_AGE,
) -> Sweep:
    """Delete the namespaces labelled OWNED_LABEL=true whose session has ended (`everything`: all of
    them; `kept`: also those kept on purpose), then the Released PersistentVolumes whose claim was in
    one of the plugin's namespaces that no longer exists.

    Never raises an ApiError: what failed is in `errors`, and the next sweep tries again.
    """
    here = here or Here.now()
    now = time.time() if now is None else now
    result = Sweep()
    try:
        listed = call(
            "list the namespaces pytest-stateful created",
            core.list_namespace,
            label_selector=f"{OWNED_LABEL}=true",
            retry=True,
            _request_timeout=CLEANUP_TIMEOUT,
        )
    except Forbidden:
        return result  # a namespaced account (--stateful-namespace): it cannot have created namespaces
    except ApiError as exc:
        result.errors.append(str(exc))
        return result
    for ns in listed.items:
        meta = ns.metadata
        name = str(meta.name)
        if meta.deletion_timestamp is not None:
            continue  # already being deleted
        owner = Owner.of(meta)
        if owner.kept:
            # Its session let go of it on purpose, so whether that session runs does not matter.
            if not (kept or everything):
                result.kept.append(name)
                continue
            why: str | None = "kept for debugging"
        else:
            why = session_ended(owner, here, now, max_age)
        if why is None:
            if not everything:
                result.live.append(name)
                continue
            why = "its session may still run"
        if not dry_run:
            # A chart's cluster-scoped objects first: the namespace's annotation is what lists them, so
            # it stays until they are gone.
            left = sweep_listed(core.api_client, name, meta.annotations) if listed_objects(meta.annotations) else []
            if left:
                result.errors += left
                continue
            try:
                _delete_namespace(core, name, str(meta.uid or ""))
            except ApiError as exc:
                result.errors.append(str(exc))
                if isinstance(exc, ServerError):
                    return result  # no answer or a failing server: the rest would fail the same way
                continue
        result.deleted[name] = why
    _sweep_volumes(core, result, dry_run)
    return result


def _delete_namespace(core: client.CoreV1Api, name: str, uid: str) -> None:
    """Delete a namespace; gone already or already terminating counts as done."""
    # The uid precondition: a namespace recreated under the same name since the list is not ours to judge.
    body: dict[str, object] = {"propagationPolicy": "Background"}
    if uid:
        body["preconditions"] = {"uid": uid}
    with contextlib.suppress(NotFound, Conflict):
        call(f"delete namespace {name}", core.delete_namespace, name, body=body, _request_timeout=CLEANUP_TIMEOUT)


def _sweep_volumes(core: client.CoreV1Api, result: Sweep, dry_run: bool) -> None:
    """Released PersistentVolumes whose claim was in a namespace named as the plugin names them
    and which no longer exists. A namespace still terminating keeps its volumes until a later sweep."""
    try:
        volumes = call(
            "list PersistentVolumes", core.list_persistent_volume, retry=True, _request_timeout=CLEANUP_TIMEOUT
        )
    except Forbidden:
        return  # a namespaced account on a shared cluster: volumes are not ours to see
    except ApiError as exc:
        result.errors.append(str(exc))
        return
    exists: dict[str, bool] = {}
    for pv in volumes.items:
        claim = pv.spec.claim_ref if pv.spec is not None else None
        phase = pv.status.phase if pv.status is not None else None
        namespace = str(getattr(claim, "namespace", "") or "")
        if phase != "Released" or not NAME_PATTERN.match(namespace) or pv.metadata.deletion_timestamp is not None:
            continue
        if namespace not in exists:
            try:
                call(f"read namespace {namespace}", core.read_namespace, namespace, _request_timeout=CLEANUP_TIMEOUT)
                exists[namespace] = True
            except NotFound:
                exists[namespace] = False
            except ApiError as exc:
                result.errors.append(str(exc))
                exists[namespace] = True
        if exists[namespace]:
            continue
        name = str(pv.metadata.name)
        if not dry_run:
            try:
                with contextlib.suppress(NotFound):
                    call(
                        f"delete PersistentVolume {name}",
                        core.delete_persistent_volume,
                        name,
                        _request_timeout=CLEANUP_TIMEOUT,
                    )
            except ApiError as exc:
                result.errors.append(str(exc))
                continue
        result.volumes.append(name)


__all__ = [
    "CREATED_ANNOTATION",
    "FOREIGN_MAX_AGE",
    "HOST_ANNOTATION",
    "KEPT_ANNOTATION",
    "OWNED_LABEL",
    "PID_ANNOTATION",
    "PROCESS_ANNOTATION",
    "SESSION_LABEL",
    "Here",
    "Owner",
    "Sweep",
    "session_ended",
    "sweep",
    "this_process",
]
