"""How a probe gets inside a pod, decided per pod: the workload's own container when it has the
tools, else an ephemeral probe container added to the pod, else not at all, with the reason.

An ephemeral container (the pods/ephemeralcontainers subresource, GA since Kubernetes 1.25) shares
the pod's UTS namespace (so `hostname` there is the pod's hostname), its network namespace and DNS
configuration (so a lookup there is the pod's view), and mounts the pod's own claim volumes (so
markers written there are on the pod's storage). That makes the evidence independent of the
user's image: distroless and scratch images have no shell, no `hostname`, no resolver tools.

A pod on a simulated node (a KWOK node says so through its annotations) runs no container: it
gets "not available", never a pass. So does a pod where the account may not exec or add an
ephemeral container, or where the probe image cannot be pulled; the reason says which.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import websocket
from kubernetes.stream import stream

from pytest_stateful.cluster.api import CLIENT_FAILURES, call
from pytest_stateful.cluster.handle import ClusterHandle
from pytest_stateful.errors import Forbidden, Invalid, NotFound, StatefulError
from pytest_stateful.timeline import Entry

OWN = "own container"
EPHEMERAL = "ephemeral probe"
PROBE_CONTAINER = "stateful-probe"
# Where the ephemeral probe mounts each claim volume of the pod.
VOLUMES = "/stateful-volumes"
# What a container needs for every probe: hostname, a resolver, and a shell to read and write markers.
TOOLS = ("hostname", "nslookup", "cat", "sed")
# Seconds an ephemeral probe container may take to run (image pull included).
EPHEMERAL_START = 60.0
EXEC_TIMEOUT = 30
# The ephemeral container's command: PID 1 of its container, so without the trap it would ignore
# SIGTERM and hold every pod deletion for the whole grace period.
IDLE = ["sh", "-c", "trap 'exit 0' TERM; sleep 2147483647 & wait"]
# An exec that cannot start (no such command in the image) fails as a ValueError or an API error; a
# connection dropped mid-exec as a websocket error; an empty error channel as a TypeError or KeyError.
EXEC_FAILURES: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    KeyError,
    websocket.WebSocketException,
    *CLIENT_FAILURES,
)


@dataclass(frozen=True)
class Way:
    """How probes reach one pod: through `container` (OWN or EPHEMERAL), or not available and why."""

    via: str = ""
    container: str = ""
    reason: str = ""
    # claim template -> its mount path inside `container`
    volumes: dict[str, str] = field(default_factory=dict)
    # Not available for now only (the API server did not answer): asked again at the next probe.
    transient: bool = False

    @property
    def available(self) -> bool:
        return bool(self.via)


def unavailable(reason: str) -> Way:
    return Way(reason=reason)


class Inside:
    """Runs commands inside a namespace's pods, choosing and remembering the way per pod."""

    def __init__(self, cluster: ClusterHandle, namespace: str) -> None:
        self.cluster, self.namespace = cluster, namespace
        # (pod uid, container) -> the way found for it; a recreated pod has a new uid and is asked again.
        self._ways: dict[tuple[str, str], Way] = {}

    def way(self, pod: Entry, container: str, mounts: Mapping[str, Sequence[str]]) -> Way:
        """The way into `pod` for probes that would run in `container`; `mounts` are the pod's claim
        volumes (template -> [container, path]), all mounted by an ephemeral probe."""
        key = (pod.uid, container)
        if key in self._ways:
            return self._ways[key]
        way = self._find(pod, container, mounts)
        if way.available or not way.transient:
            self._ways[key] = way  # a transient failure (no answer from the API server) is asked again
        return way

    def _find(self, pod: Entry, container: str, mounts: Mapping[str, Sequence[str]]) -> Way:
        why = self.cluster.no_containers(pod.pod.node)
        if why:
            return Way(reason=why, transient=why.startswith("could not read node"))
        check = ["sh", "-c", f"for t in {' '.join(TOOLS)}; do command -v $t >/dev/null || exit 127; done"]
        try:
            ran = self.run(pod.name, check, container or None)
        except Forbidden as exc:
            return unavailable(exc.message)
        if ran is not None and ran[0] == 0:
            own = {t: str(m[1]) for t, m in mounts.items() if len(m) == 2 and m[0] == container}
            return Way(OWN, container, volumes=own)
        # One probe container per pod, whichever container's probes asked first.
        key = (pod.uid, PROBE_CONTAINER)
        if key not in self._ways:
            self._ways[key] = self._ephemeral(pod, sorted(mounts))
        return self._ways[key]

    def _ephemeral(self, pod: Entry, templates: list[str]) -> Way:
        """Add the probe container to the pod (once per pod) and wait, bounded, until it runs."""
        image = self.cluster.probe_image
        mounts = {t: f"{VOLUMES}/{t}" for t in templates}
        body = {
            "spec": {
                "ephemeralContainers": [
                    {
                        "name": PROBE_CONTAINER,
                        "image": image,
                        "imagePullPolicy": "IfNotPresent",
                        "command": IDLE,
                        "volumeMounts": [{"name": t, "mountPath": path} for t, path in mounts.items()],
                    }
                ]
            }
        }
        current = self._read(pod.name)
        if current is None:
            return unavailable(f"{pod.name} is gone")
        if not any(c.name == PROBE_CONTAINER for c in current.spec.ephemeral_containers or []):
            try:
                call(
                    f"add the probe container to pod {pod.name}",
                    self.cluster.core.patch_namespaced_pod_ephemeralcontainers,
                    pod.name,
                    self.namespace,
                    body,
                )
            except Forbidden as exc:
                if "PodSecurity" in exc.message:
                    # Pod Security admission, not RBAC: the namespace's policy refuses the probe container.
                    return unavailable(
                        f"the namespace's Pod Security admission refused the probe container: {exc.message}"
                    )
                return unavailable(
                    "forbidden: pods/ephemeralcontainers (the account may not patch "
                    f"pods/ephemeralcontainers in namespace {self.namespace})"
                )
            except NotFound as exc:
                if self._read(pod.name) is None:
                    return unavailable(f"{pod.name} is gone")
                return unavailable(f"the API server does not serve pods/ephemeralcontainers: {exc.message}")
            except Invalid as exc:
                return unavailable(f"the API server refused the probe container: {exc.message}")
            except StatefulError as exc:
                return Way(reason=f"could not add the probe container: {exc}", transient=True)
        return self._started(pod.name, image, mounts)

    def _started(self, pod: str, image: str, mounts: dict[str, str]) -> Way:
        deadline = time.monotonic() + EPHEMERAL_START
        last = "no status yet"
        while True:
            current = self._read(pod)
            if current is None:
                return unavailable(f"{pod} is gone")
            statuses = [s for s in current.status.ephemeral_container_statuses or [] if s.name == PROBE_CONTAINER]
            state = statuses[0].state if statuses else None
            if state is not None and state.running is not None:
                return Way(EPHEMERAL, PROBE_CONTAINER, volumes=mounts)
            if state is not None and state.terminated is not None:
                t = state.terminated
                return unavailable(f"the probe container ({image}) exited: {t.reason or ''} {t.message or ''}".strip())
            if state is not None and state.waiting is not None:
                w = state.waiting
                last = f"waiting: {w.reason or ''} {w.message or ''}".strip()
                if w.reason in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"):
                    return unavailable(f"the probe image {image} cannot be pulled ({last}); set --stateful-probe-image")
                if w.reason == "CreateContainerConfigError":
                    return unavailable(f"the probe container ({image}) cannot be created: {last}")
            if time.monotonic() >= deadline:
                return unavailable(
                    f"the probe container ({image}) did not run within {EPHEMERAL_START:.0f} s (last seen: {last})"
                )
            time.sleep(0.5)

    def _read(self, pod: str) -> Any:
        """The pod as the API server has it now, or None when it is gone."""
        try:
            return call(f"read pod {pod}", self.cluster.core.read_namespaced_pod, pod, self.namespace, retry=True)
        except NotFound:
            return None

    def run(self, pod: str, command: list[str], container: str | None = None) -> tuple[int, str] | None:
        """(exit code, stdout), or None when the command cannot start (not in the image).
        Raises Forbidden when the account may not exec at all."""
        try:
            resp = stream(
                self.cluster.core.connect_get_namespaced_pod_exec,
                pod,
                self.namespace,
                command=command,
                container=container,
                stderr=True,
                stdin=False,
                stdout=True,
                tty=False,
                _preload_content=False,
            )
            try:
                resp.run_forever(timeout=EXEC_TIMEOUT)
                if resp.is_open():
                    return None  # still running after EXEC_TIMEOUT (a hung volume): no answer, not exit 0
                code = resp.returncode
                return (int(code) if code is not None else 1), str(resp.read_stdout(timeout=0) or "")
            finally:
                resp.close()
        except EXEC_FAILURES as exc:
            # The websocket client reports a refused upgrade as status 0 with the HTTP status in the reason.
            text = f"{getattr(exc, 'status', '')} {getattr(exc, 'reason', '')} {exc}"
            if getattr(exc, "status", 0) == 403 or "Handshake status 403" in text:
                raise Forbidden(
                    f"forbidden: pods/exec (the account may not create pods/exec in namespace {self.namespace})",
                    403,
                    "Forbidden",
                ) from None
            # The API server reports a command that failed to start as an error, not an exit code.
            return None
