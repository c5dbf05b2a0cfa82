"""The handle on a StatefulSet under test: apply, disrupt, settle, probe, judge.

Every disruption is a Step in the timeline (begin/end), waits until the
StatefulSet settles unless told not to, and after settling asks DNS for the
StatefulSet's names. Every wait is bounded and, on timeout, says what it last saw.
"""

from __future__ import annotations

import contextlib
import copy
import json
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, utils
from kubernetes.client import ApiException

from pytest_stateful.assertions import check_guarantee
from pytest_stateful.checks import CHECKS, Subject, Verdict
from pytest_stateful.checks.pod_dns import diagnose_service
from pytest_stateful.cluster.local import UNREADY_LABEL
from pytest_stateful.cluster.providers import ClusterHandle
from pytest_stateful.recorder import Recorder
from pytest_stateful.timeline import DNS, EVENT, POD, PROBE, STS, Entry, Timeline, describe, ordinal_of

Manifest = str | Path | Mapping[str, Any]

# Kinds the plugin refuses to create: they are not namespaced, and it only writes inside its namespace.
NAMESPACED_ONLY_HINT = "the plugin only writes inside the test namespace"


# Steps after which data on a volume must still be there: markers are written before them.
DISRUPTIONS = frozenset(
    {"delete_pod", "delete_pods", "scale", "rollout_restart", "update_image", "partition", "drain_node"}
)


class StepTimeout(AssertionError):
    """A step did not reach its goal in time; the message says what was last seen."""


class ManifestError(ValueError):
    """A manifest cannot be applied as given."""


def load_manifests(manifests: Iterable[Manifest]) -> list[dict[str, Any]]:
    """Paths, YAML text or dicts -> a flat list of object dicts (empty documents dropped)."""
    docs: list[dict[str, Any]] = []
    for item in manifests:
        if isinstance(item, Mapping):
            # A copy: apply() sets the namespace (and maybe images); the caller's dict stays as it was.
            docs.append(copy.deepcopy(dict(item)))
            continue
        source = str(item)
        if isinstance(item, Path) or ("\n" not in source and source.endswith((".yaml", ".yml", ".json"))):
            path = Path(item)
            if not path.is_file():
                raise ManifestError(f"manifest {path}: no such file")
            text, where = path.read_text(), str(path)
        else:
            text, where = source, "inline YAML"
        try:
            loaded = [d for d in yaml.safe_load_all(text) if d]
        except yaml.YAMLError as exc:
            raise ManifestError(f"{where}: not valid YAML: {exc}") from None
        for doc in loaded:
            if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
                raise ManifestError(f"{where}: every document needs apiVersion and kind")
            if doc["kind"] == "List":
                docs.extend(doc.get("items") or [])
            else:
                docs.append(doc)
    return docs


CLUSTER_SCOPED = {
    "Namespace",
    "Node",
    "PersistentVolume",
    "StorageClass",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PriorityClass",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "APIService",
    "CSIDriver",
    "IngressClass",
    "RuntimeClass",
}


class ImageMap:
    """Replaces a workload's images with tags of one local repository: the first distinct image
    becomes REPOSITORY:1, the next REPOSITORY:2, ... so an image update is still a real change."""

    def __init__(self, repository: str) -> None:
        self.repository = repository
        self.tags: dict[str, str] = {}

    def __call__(self, image: str) -> str:
        if image.startswith(self.repository + ":"):
            return image
        tag = self.tags.setdefault(image, str(len(self.tags) + 1))
        return f"{self.repository}:{tag}"

    def rewrite(self, doc: dict[str, Any]) -> None:
        spec = doc.get("spec") or {}
        pod_spec = spec if doc.get("kind") == "Pod" else (spec.get("template") or {}).get("spec")
        for key in ("initContainers", "containers"):
            for container in (pod_spec or {}).get(key) or []:
                container["image"] = self(str(container.get("image", "")))
                container["imagePullPolicy"] = "IfNotPresent"


class StatefulSetHandle:
    """A StatefulSet in a test namespace, with its recorder running."""

    def __init__(
        self,
        cluster: ClusterHandle,
        namespace: str,
        recorder: Recorder,
        timeout: float = 120.0,
        dns_timeout: float | None = None,
    ) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.recorder = recorder
        self.timeout = timeout
        self.dns_timeout = dns_timeout if dns_timeout is not None else timeout
        self.name = ""
        self.objects: list[dict[str, Any]] = []
        self._cordoned: set[str] = set()
        # Node level: (pod, claim template) -> (token, container, mount path) written before a disruption.
        self._markers: dict[tuple[str, str], tuple[str, str, str]] = {}
        self.verdicts: dict[str, Verdict] = {}
        # --stateful-image: the manifests' images replaced by a local repository's tags.
        self.images: ImageMap | None = None
        # Live progress: receives "scale to 3: waiting for web-2 Ready, 4.1 s" while a step waits.
        self.progress: Callable[[str], None] | None = None
        self._step_label = "apply"
        # Seconds from receiving the event that completed a wait to the wait returning.
        self.detection_latencies: list[float] = []
        # The generation our last change produced: a settle must not be judged on older state.
        self._min_generation = 0

    # -- set-up ---------------------------------------------------------------------------

    def apply(
        self,
        manifests: Iterable[Manifest],
        statefulset: str | None = None,
        settle: bool = True,
        timeout: float | None = None,
    ) -> StatefulSetHandle:
        """Create the objects in the test namespace and, unless told not to, wait for the rollout."""
        docs = load_manifests(manifests)
        for doc in docs:
            kind, meta = doc["kind"], doc.setdefault("metadata", {})
            if kind in CLUSTER_SCOPED:
                raise ManifestError(
                    f"{kind} {meta.get('name')} is cluster-scoped and is not applied: {NAMESPACED_ONLY_HINT}"
                )
            ns = meta.get("namespace")
            if ns and ns != self.namespace:
                raise ManifestError(
                    f"{kind} {meta.get('name')} asks for namespace {ns!r}: {NAMESPACED_ONLY_HINT} "
                    f"({self.namespace}); remove metadata.namespace"
                )
            meta["namespace"] = self.namespace
            if self.images is not None:
                self.images.rewrite(doc)
        names = [d["metadata"].get("name", "") for d in docs if d["kind"] == "StatefulSet"]
        if statefulset is None:
            if len(names) != 1:
                raise ManifestError(
                    "the manifests hold no StatefulSet"
                    if not names
                    else f"the manifests hold several StatefulSets ({', '.join(names)}): say which one is under test"
                )
            statefulset = names[0]
        elif statefulset not in names and not self.name:
            raise ManifestError(f"no StatefulSet named {statefulset!r} in the manifests (found: {', '.join(names)})")
        self.name = statefulset
        detail = ", ".join(f"{d['kind']}/{d['metadata'].get('name')}" for d in docs)
        with self.step("apply", detail, settle, timeout):
            for doc in docs:
                try:
                    utils.create_from_dict(self.cluster.api, doc, namespace=self.namespace)
                except utils.FailToCreateError as exc:
                    reasons = "; ".join(_api_reason(e) for e in exc.api_exceptions)
                    raise ManifestError(f"{doc['kind']} {doc['metadata'].get('name')}: {reasons}") from None
                self.objects.append(doc)
        return self

    # -- steps ----------------------------------------------------------------------------

    def step(self, action: str, detail: str = "", settle: bool = False, timeout: float | None = None) -> _Step:
        return _Step(self, action, detail, settle, timeout if timeout is not None else self.timeout)

    def wait_settled(self, timeout: float | None = None) -> None:
        """Until observedGeneration is current, every replica is Ready and the rollout is done."""
        timeout = self.timeout if timeout is None else timeout
        if not self._wait_for(self._settled, timeout, self._settle_goal):
            raise StepTimeout(self._timeout_text(f"{self.name} to settle", timeout))

    def delete_pod(self, ordinal: int, settle: bool = True, timeout: float | None = None) -> None:
        pod = f"{self.name}-{ordinal}"
        with self.step("delete_pod", pod, settle, timeout):
            old = self._live_pod(pod)
            self.cluster.core.delete_namespaced_pod(pod, self.namespace)
            if settle and old is not None:
                self._wait_gone({old.uid}, f"{pod} to be replaced", timeout)

    def delete_pods(self, settle: bool = True, timeout: float | None = None) -> None:
        with self.step("delete_pods", "all pods at once", settle, timeout):
            olds = {e.uid for e in self._pods()}
            self.cluster.core.delete_collection_namespaced_pod(self.namespace, label_selector=self._selector())
            if settle:
                self._wait_gone(olds, "every old pod to be replaced", timeout)

    def scale(self, replicas: int, settle: bool = True, timeout: float | None = None) -> None:
        with self.step("scale", f"to {replicas}", settle, timeout):
            self.cluster.apps.patch_namespaced_stateful_set_scale(
                self.name, self.namespace, {"spec": {"replicas": replicas}}
            )
            self._note_generation()

    def rollout_restart(self, settle: bool = True, timeout: float | None = None) -> None:
        stamp = datetime.now(UTC).isoformat()
        with self.step("rollout_restart", stamp, settle, timeout):
            self._patch_template({"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}})

    def update_image(self, container: str, image: str, settle: bool = True, timeout: float | None = None) -> None:
        if self.images is not None:
            image = self.images(image)
        with self.step("update_image", f"{container}={image}", settle, timeout):
            self._patch_template({"spec": {"containers": [{"name": container, "image": image}]}})

    def set_partition(self, partition: int, settle: bool = True, timeout: float | None = None) -> None:
        """Move the RollingUpdate partition: pods at or above it take the update revision."""
        with self.step("partition", f"to {partition}", settle, timeout):
            patch = {"spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}}}}
            sts = self.cluster.apps.patch_namespaced_stateful_set(self.name, self.namespace, patch)
            self._min_generation = int(sts.metadata.generation or 0)

    def make_unready(self, ordinal: int, settle: bool = False, timeout: float | None = None) -> None:
        """Hold a pod NotReady (local cluster: a KWOK stage keyed on a label) until make_ready."""
        pod = f"{self.name}-{ordinal}"
        self._need_local("make_unready")
        with self.step("make_unready", pod, False, timeout):
            self.cluster.core.patch_namespaced_pod(
                pod, self.namespace, {"metadata": {"labels": {UNREADY_LABEL: "true"}}}
            )
            self._wait(
                lambda: (p := self._live_pod(pod)) is not None and not p.get("ready"), f"{pod} NotReady", timeout
            )

    def make_ready(self, ordinal: int, settle: bool = True, timeout: float | None = None) -> None:
        pod = f"{self.name}-{ordinal}"
        self._need_local("make_ready")
        with self.step("make_ready", pod, settle, timeout):
            self.cluster.core.patch_namespaced_pod(pod, self.namespace, {"metadata": {"labels": {UNREADY_LABEL: None}}})

    def drain_node(self, ordinal: int, settle: bool = True, timeout: float | None = None) -> None:
        """Cordon the node that pod runs on and evict its pods of this namespace; uncordoned at teardown."""
        pod = f"{self.name}-{ordinal}"
        current = self._live_pod(pod)
        if current is None or not current.get("node"):
            raise StepTimeout(f"drain_node {ordinal}: {pod} is not running on a node")
        node = str(current.get("node"))
        if self.cluster.provider != "local":
            raise ManifestError(
                f"drain_node changes Node {node}, which is outside the test namespace; it is offered on the "
                "local cluster only"
            )
        with self.step("drain_node", node, settle, timeout):
            self.cluster.core.patch_node(node, {"spec": {"unschedulable": True}})
            self._cordoned.add(node)
            evicted = {e.uid for e in self._pods() if e.get("node") == node}
            for e in self._pods():
                if e.uid in evicted:
                    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=e.name, namespace=self.namespace))
                    self.cluster.core.create_namespaced_pod_eviction(e.name, self.namespace, body)
            if settle:
                self._wait_gone(evicted, f"the pods on {node} to go", timeout)

    def sleep(self, seconds: float) -> None:
        with self.step("sleep", f"{seconds} s"):
            time.sleep(seconds)

    def uncordon(self) -> None:
        for node in sorted(self._cordoned):
            with contextlib.suppress(ApiException):
                self.cluster.core.patch_node(node, {"spec": {"unschedulable": False}})
        self._cordoned.clear()

    # -- DNS ------------------------------------------------------------------------------

    def probe_dns(self, timeout: float | None = None) -> list[Entry]:
        """Ask DNS for every pod's name and the Service name until they answer the current IPs."""
        resolver = self.cluster.resolver
        if resolver is None or diagnose_service(self.timeline, self.subject):
            return []
        timeout = self.dns_timeout if timeout is None else timeout
        sts = self.recorder.current.get((STS, self.name))
        service = sts.get("service_name") if sts else ""
        zone = f"{service}.{self.namespace}.svc.{self.cluster.cluster_domain}"

        def expectations() -> dict[str, tuple[list[str], str, str]]:
            # Recomputed on every round: the answer must match the pods as they are now.
            pods = [p for p in self._pods() if p.get("ip") and not p.get("deleting")]
            wanted = {f"{p.name}.{zone}": ([str(p.get("ip"))], f"{p.name}'s current IP", p.name) for p in pods}
            wanted[zone] = (sorted(str(p.get("ip")) for p in pods if p.get("ready")), "the Ready pods' IPs", "")
            return wanted

        started = time.monotonic()
        recorded: list[Entry] = []
        pending = expectations()
        last: dict[str, list[str]] = {}
        while pending:
            current = expectations()
            pending = {q: current[q] for q in pending if q in current}
            for qname, (want, what, pod) in list(pending.items()):
                _rcode, ips = resolver.a_records(qname)
                last[qname] = ips
                if ips == sorted(want):
                    recorded.append(
                        self.recorder.add(
                            DNS,
                            "answer",
                            qname,
                            qname=qname,
                            answers=ips,
                            expected=want,
                            what=what,
                            pod=pod,
                            ok=True,
                            waited=round(time.monotonic() - started, 3),
                        )
                    )
                    del pending[qname]
            if not pending or time.monotonic() - started > timeout:
                break
            time.sleep(0.05)
        for qname, (want, what, pod) in pending.items():
            recorded.append(
                self.recorder.add(
                    DNS,
                    "answer",
                    qname,
                    qname=qname,
                    answers=last.get(qname, []),
                    expected=want,
                    what=what,
                    pod=pod,
                    ok=False,
                    waited=round(time.monotonic() - started, 3),
                )
            )
        return recorded

    # -- node level -------------------------------------------------------------------------

    def exec(self, pod: str, command: list[str], container: str | None = None) -> str:
        """Run a command inside a pod's container (through the API server and the kubelet); its stdout."""
        result = self.try_exec(pod, command, container)
        if result is None:
            raise ManifestError(f"cannot run {command[0]!r} in {pod}: the image has no such command")
        return result[1]

    def try_exec(self, pod: str, command: list[str], container: str | None = None) -> tuple[int, str] | None:
        """(exit code, stdout), or None when the command cannot start (not in the image)."""
        from kubernetes.stream import stream

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
            resp.run_forever(timeout=30)
            return int(resp.returncode or 0), str(resp.read_stdout())
        except (ValueError, ApiException):
            # The API server reports a command that failed to start as an error, not an exit code.
            return None

    def write_markers(self) -> None:
        """Before a disruption: a fresh marker on every claim volume of every running pod."""
        sts = self.recorder.current.get((STS, self.name))
        mounts: dict[str, list[str]] = dict(sts.get("claim_mounts") or {}) if sts else {}
        for pod in self._pods():
            if pod.get("deleting") or pod.get("phase") != "Running":
                continue
            for template, (container, path) in mounts.items():
                token = f"{pod.name}-{secrets.token_hex(4)}"
                write = ["sh", "-c", f"echo {token} > {path}/.pytest-stateful-marker"]
                if self.try_exec(pod.name, write, container) is not None:  # no shell: no marker evidence
                    self._markers[(pod.name, template)] = (token, container, path)

    def probe_node(self) -> list[Entry]:
        """Node level, after a step settled: hostname inside each pod, DNS from inside a pod,
        and the markers written before the step read back from the volumes."""
        if not self.cluster.node_level:
            return []
        sts = self.recorder.current.get((STS, self.name))
        service = str(sts.get("service_name")) if sts else ""
        pods = [p for p in self._pods() if p.get("ready") and not p.get("deleting")]
        recorded = []
        for pod in pods:
            ran = self.try_exec(pod.name, ["hostname"])
            if ran is None:
                continue  # the image has no `hostname`: node-level identity stays "not available"
            seen = ran[1].strip()
            recorded.append(
                self.recorder.add(
                    PROBE,
                    "exec",
                    pod.name,
                    probe="hostname",
                    pod=pod.name,
                    output=seen,
                    ok=seen == pod.name,
                    message=f"hostname inside {pod.name} printed {seen!r}, not {pod.name!r}",
                )
            )
        deadline = time.monotonic() + self.dns_timeout
        for target in pods:
            asker = next((p for p in pods if p.name != target.name), target)
            name = f"{target.name}.{service}"
            want = [str(target.get("ip"))]
            # As from outside: DNS may take a moment to follow a new pod; wait for it, bounded.
            while True:
                ran = self.try_exec(asker.name, ["resolve", name])
                answers = sorted(ran[1].split()) if ran is not None else []
                if ran is None or answers == want or time.monotonic() >= deadline:
                    break
                time.sleep(0.5)
            if ran is None:
                continue  # no `resolve` in the image (it ships in the real node's tools image)
            recorded.append(
                self.recorder.add(
                    PROBE,
                    "exec",
                    asker.name,
                    probe="dns",
                    pod=asker.name,
                    query=name,
                    answers=answers,
                    expected=want,
                    ok=answers == want,
                    message=f"{name} resolved inside {asker.name} to {', '.join(answers) or 'nothing'}, "
                    f"not {target.name}'s IP {want[0]}",
                )
            )
        for (pod_name, template), (token, container, path) in sorted(self._markers.items()):
            if self.recorder.current.get((POD, pod_name)) is None:
                continue
            ran = self.try_exec(pod_name, ["cat", f"{path}/.pytest-stateful-marker"], container)
            read = ran[1].strip() if ran is not None else ""
            recorded.append(
                self.recorder.add(
                    PROBE,
                    "exec",
                    pod_name,
                    probe="marker",
                    pod=pod_name,
                    volume=template,
                    ok=read == token,
                    message=f"the marker written to {template} of {pod_name} before the step read back as "
                    f"{read!r}, not {token!r}: the volume did not keep its data",
                )
            )
        return recorded

    # -- judging --------------------------------------------------------------------------

    @property
    def subject(self) -> Subject:
        return Subject(self.name, self.namespace, self.cluster.cluster_domain)

    @property
    def timeline(self) -> Timeline:
        return Timeline(list(self.recorder.timeline.entries))

    def verdict(self, guarantee: str) -> Verdict:
        if guarantee not in CHECKS:
            raise ValueError(f"unknown guarantee {guarantee!r}; known: {', '.join(CHECKS)}")
        return CHECKS[guarantee](self.timeline, self.subject)

    def assert_ordered_creation(self) -> Verdict:
        __tracebackhide__ = True
        return check_guarantee(self, "ordered_creation")

    def assert_ordered_termination(self) -> Verdict:
        __tracebackhide__ = True
        return check_guarantee(self, "ordered_termination")

    def assert_ordered_rolling_update(self) -> Verdict:
        __tracebackhide__ = True
        return check_guarantee(self, "ordered_rolling_update")

    def assert_stable_identity(self) -> Verdict:
        __tracebackhide__ = True
        return check_guarantee(self, "stable_identity")

    def assert_pod_dns(self) -> Verdict:
        __tracebackhide__ = True
        return check_guarantee(self, "pod_dns")

    def assert_stable_storage(self) -> Verdict:
        __tracebackhide__ = True
        return check_guarantee(self, "stable_storage")

    # -- helpers --------------------------------------------------------------------------

    def _need_local(self, action: str) -> None:
        if self.cluster.provider != "local":
            raise ManifestError(f"{action} holds a pod unready through a KWOK stage: local cluster only")

    def _patch_template(self, patch: dict[str, Any]) -> None:
        sts = self.cluster.apps.patch_namespaced_stateful_set(self.name, self.namespace, {"spec": {"template": patch}})
        self._min_generation = int(sts.metadata.generation or 0)

    def _note_generation(self) -> None:
        sts = self.cluster.apps.read_namespaced_stateful_set(self.name, self.namespace)
        self._min_generation = int(sts.metadata.generation or 0)

    def _selector(self) -> str:
        sts = self.recorder.current.get((STS, self.name))
        labels = (sts.get("selector") if sts else None) or {}
        return ",".join(f"{k}={v}" for k, v in labels.items())

    def _pods(self) -> list[Entry]:
        return sorted(
            (e for e in self.recorder.snapshot(POD) if ordinal_of(e.name, self.name) is not None),
            key=lambda e: ordinal_of(e.name, self.name) or 0,
        )

    def _live_pod(self, name: str) -> Entry | None:
        return self.recorder.current.get((POD, name))

    def _settled(self) -> bool:
        sts = self.recorder.current.get((STS, self.name))
        if sts is None or sts.get("deleting"):
            return False
        replicas = int(sts.get("replicas", 0))
        observed = int(sts.get("observed_generation") or 0)
        if observed < int(sts.get("generation") or 0) or observed < self._min_generation:
            return False
        if int(sts.get("ready_replicas") or 0) != replicas or int(sts.get("status_replicas") or 0) != replicas:
            return False
        pods = self._pods()
        if len(pods) != replicas or any(p.get("deleting") or not p.get("ready") for p in pods):
            return False
        if sts.get("strategy") == "OnDelete":
            return True
        partition = int(sts.get("partition") or 0)
        if partition > 0:
            start = int(sts.get("ordinals_start") or 0)
            return int(sts.get("updated_replicas") or 0) >= max(0, replicas - max(0, partition - start))
        return bool(sts.get("current_revision")) and sts.get("current_revision") == sts.get("update_revision")

    def _wait(self, predicate: Any, what: str, timeout: float | None) -> None:
        timeout = self.timeout if timeout is None else timeout
        if not self._wait_for(predicate, timeout, lambda: what):
            raise StepTimeout(self._timeout_text(what, timeout))

    def _wait_gone(self, uids: set[str], what: str, timeout: float | None) -> None:
        """Until none of these pod objects is left: a settle right after a delete or an eviction
        must judge the replacements, not the old pods the recorder has not yet seen go."""
        self._wait(lambda: not uids & {e.uid for e in self._pods()}, what, timeout)

    def _wait_for(self, predicate: Callable[[], Any], timeout: float, goal: Callable[[], str]) -> Any:
        started = time.monotonic()

        def tick() -> None:
            if self.progress is not None:
                self.progress(f"{self._step_label}: waiting for {goal()}, {time.monotonic() - started:.1f} s")

        result = self.recorder.wait_until(predicate, timeout, tick)
        entries = self.recorder.timeline.entries
        if result and entries:
            self.detection_latencies.append(max(0.0, self.recorder.now() - entries[-1].t))
        return result

    def _settle_goal(self) -> str:
        """What a settle is still waiting for, in a person's words."""
        sts = self.recorder.current.get((STS, self.name))
        if sts is None:
            return f"StatefulSet {self.name} to appear"
        pods = {ordinal_of(p.name, self.name): p for p in self._pods()}
        start = int(sts.get("ordinals_start") or 0)
        for k in range(start, start + int(sts.get("replicas", 0))):
            pod = pods.get(k)
            if pod is None:
                return f"{self.name}-{k} to be created"
            if pod.get("deleting"):
                return f"{self.name}-{k} to be replaced"
            if not pod.get("ready"):
                return f"{self.name}-{k} Ready"
        extra = sorted(p.name for k, p in pods.items() if k is not None and k >= start + int(sts.get("replicas", 0)))
        if extra:
            return f"{extra[-1]} to go"
        return f"{self.name} to finish its rollout ({sts.get('updated_replicas')}/{sts.get('replicas')} updated)"

    def _timeout_text(self, what: str, timeout: float) -> str:
        lines = [f"timed out after {timeout:.0f} s waiting for {what}; last seen:"]
        sts = self.recorder.current.get((STS, self.name))
        lines.append(f"  StatefulSet {self.name}: {describe(sts) if sts else 'not seen'}")
        for p in self._pods():
            lines.append(f"  pod {p.name}: {describe(p)}")
        events = [e for e in self.recorder.timeline.entries if e.kind == EVENT][-8:]
        if events:
            lines.append("  recent events:")
            lines += [f"    {e.get('type')} {e.get('object')} {describe(e)}" for e in events]
        return "\n".join(lines)


class _Step:
    """Context manager: records begin/end, settles on success, then probes DNS."""

    def __init__(self, handle: StatefulSetHandle, action: str, detail: str, settle: bool, timeout: float) -> None:
        self.handle, self.action, self.detail, self.settle, self.timeout = handle, action, detail, settle, timeout

    def __enter__(self) -> _Step:
        self.handle._step_label = f"{self.action} {self.detail}".strip()
        if self.handle.cluster.node_level and self.action in DISRUPTIONS:
            self.handle.write_markers()
        self.handle.recorder.step("begin", self.action, action=self.action, detail=self.detail)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        ok = exc_type is None
        try:
            if ok and self.settle:
                ok = False
                self.handle.wait_settled(self.timeout)
                self.handle.probe_dns()
                self.handle.probe_node()
                ok = True
        finally:
            self.handle.recorder.step("end", self.action, action=self.action, detail=self.detail, ok=ok)


def _api_reason(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "").get("message"))
    except (TypeError, ValueError):
        return f"{exc.status} {exc.reason}"


__all__: Sequence[str] = ["ManifestError", "StatefulSetHandle", "StepTimeout", "load_manifests"]
