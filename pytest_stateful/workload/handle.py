"""The handle on a StatefulSet under test: apply, take steps, judge.

Every step is recorded (begin/end), waits until the StatefulSet settles unless
told not to, and after settling probes DNS (and, on nodes that run containers,
the pods from inside). Every wait is bounded and, on timeout, says what it last saw.
Verdicts are written here only (`judge`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from pytest_stateful.checks import Subject, Verdict, run_check
from pytest_stateful.cluster.api import CLIENT_FAILURES, call
from pytest_stateful.cluster.failures import NodeFailer
from pytest_stateful.cluster.handle import UNREADY_LABEL, ClusterHandle
from pytest_stateful.errors import (
    Conflict,
    Forbidden,
    GuaranteeFailed,
    InfrastructureError,
    ManifestError,
    NotFound,
    NotSupported,
    ServerError,
    StatefulError,
    StepError,
    StepTimeout,
    TooManyRequests,
    UsageError,
    api_error,
)
from pytest_stateful.recorder import Recorder, reduce_pdb
from pytest_stateful.timeline import (
    NODE,
    OUT_OF_SERVICE,
    PDB,
    POD,
    PVC,
    RETRY,
    RUNTIME,
    UNREACHABLE_TAINTS,
    Entry,
    NodeData,
    Timeline,
    ordinal_of,
)
from pytest_stateful.workload.charts import (
    ChartSource,
    ForbiddenChange,
    Helm,
    changed_paths,
    dry_run_replace,
    forbidden_changes,
    merge,
    statefulset_of,
    with_path,
)
from pytest_stateful.workload.cleanup import this_process
from pytest_stateful.workload.cluster_objects import NAMESPACE_LABEL, read_path
from pytest_stateful.workload.cluster_scoped import CLUSTER_SCOPED_HINT, Holder, cluster_scoped, hold, release
from pytest_stateful.workload.manifests import ImageMap, Manifest, load_manifests, statefulsets_in
from pytest_stateful.workload.probes import Probes
from pytest_stateful.workload.scope import place
from pytest_stateful.workload.shared import created, is_shared, refuse_takeover, registered
from pytest_stateful.workload.steps import DISRUPTIONS
from pytest_stateful.workload.view import WorkloadView

# The most values keys an upgrade refused for a forbidden change is rendered again for, one by one.
MAX_CAUSES = 20
# Seconds between two questions to the API server's /readyz while a wait makes no progress.
HEALTH_EVERY = 5.0


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
        self.name = ""
        self.view = WorkloadView(recorder, "")
        self.probes = Probes(cluster, namespace, recorder, self.view, dns_timeout or timeout)
        self.objects: list[dict[str, Any]] = []
        # delete_statefulset was taken: no step may follow.
        self._deleted = False
        # Nodes this test cordoned (cordon_node, drain_node) -> the ordinals whose pods ran there.
        self._cordoned: dict[str, set[int]] = {}
        # fail_node: node -> the ordinal whose pod it ran; nodes tainted out of service; and the pods
        # (uid -> (name, node)) that were on a failed node, whose containers the runtime is asked about.
        self._failed: dict[str, set[int]] = {}
        self._out_of_service: set[str] = set()
        self._stranded: dict[str, tuple[str, str]] = {}
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
        # A bad_rollout's readiness hold is in the template (simulated nodes), until the next update.
        self._held = False
        self.bad_rollouts = 0
        # The chart and values the release was installed (or last upgraded) with; None for manifests.
        self.chart: ChartSource | None = None
        # The chart's cluster-scoped objects, when it asked for them (workload/cluster_scoped.py).
        self.globals: Holder | None = None

    # -- set-up ---------------------------------------------------------------------------

    def apply(
        self,
        manifests: Iterable[Manifest],
        statefulset: str | None = None,
        settle: bool = True,
        timeout: float | None = None,
    ) -> StatefulSetHandle:
        """Create the objects in the test namespace and, unless told not to, wait for the rollout."""
        docs = place(load_manifests(manifests), self.namespace, self.cluster.discovery)
        if self.images is not None:
            for doc in docs:
                self.images.rewrite(doc)
        self._under_test(docs, statefulset)
        detail = ", ".join(f"{d['kind']}/{d['metadata'].get('name')}" for d in docs)
        shared = is_shared(self.namespace)
        if shared:
            refuse_takeover(self.cluster, self.namespace, docs)
            for doc in docs:
                labels = doc["metadata"].setdefault("labels", {}) or {}
                doc["metadata"]["labels"] = {**labels, **this_process().labels()}
        with self.step("apply", detail, settle, timeout):
            for doc in docs:
                try:
                    made = self._create(doc)
                except ApiException as exc:
                    if shared and exc.status == 409:
                        raise UsageError(
                            f"namespace {self.namespace} already holds {doc['kind']} {doc['metadata'].get('name')}, "
                            "which this run did not create: delete it, or run in another namespace"
                        ) from None
                    if 400 <= int(exc.status or 0) < 500 and exc.status not in (401, 403, 429):
                        reason = api_error(exc, "create").message.removeprefix("create: ")
                        raise ManifestError(f"{doc['kind']} {doc['metadata'].get('name')}: {reason}") from None
                    raise api_error(exc, f"create {doc['kind']} {doc['metadata'].get('name')}") from exc
                except CLIENT_FAILURES as exc:
                    raise api_error(exc, f"create {doc['kind']} {doc['metadata'].get('name')}") from exc
                if shared:
                    created(self.namespace, doc, made)
                if doc["kind"] == "PodDisruptionBudget":
                    # Not watched (an account may not read them): what availability judges drains against.
                    self.recorder.add(PDB, "ADDED", doc["metadata"]["name"], **reduce_pdb(doc))
                self.objects.append(doc)
        return self

    def _create(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """POST the object to its collection, found through discovery: any kind the cluster serves
        (custom resources too), not only those the typed client has a class for."""
        meta = doc.get("metadata") or {}
        path = self.cluster.discovery.path(str(doc["apiVersion"]), str(doc["kind"]), self.namespace, str(meta["name"]))
        if path is None:  # place() refused these already; a cluster that changed meanwhile
            raise ManifestError(
                f"{doc['kind']} {meta.get('name')}: the cluster does not serve {doc['kind']} in {doc['apiVersion']}"
            )
        api = self.cluster.api
        method, url, headers, body, _ = api.param_serialize(
            "POST",
            path.rsplit("/", 1)[0],
            body=dict(doc),
            header_params={"Content-Type": "application/json", "Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        resp = api.call_api(method, url, header_params=headers, body=body, _request_timeout=(5.0, 60.0))
        resp.read()
        if int(resp.status) >= 300:
            raise ApiException(http_resp=resp)
        made: dict[str, Any] = json.loads(resp.data)
        return made

    def _under_test(self, docs: list[dict[str, Any]], statefulset: str | None) -> None:
        names = statefulsets_in(docs)
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
        if self.recorder.timeline.deleted_at(statefulset) is not None:
            # Every guarantee but claim_retention stops judging it at the deletion: a second life unjudged.
            raise UsageError(
                f"StatefulSet {statefulset} was deleted by delete_statefulset earlier in this test: its record ends "
                "there, so it cannot be created again here; do that in another test"
            )
        self.name = self.view.name = statefulset

    def install_chart(
        self,
        chart: Mapping[str, Any],
        statefulset: str | None = None,
        settle: bool = True,
        timeout: float | None = None,
    ) -> StatefulSetHandle:
        """`helm install` the chart into the test namespace (release history kept, no --wait: the
        settle judges). What it would create is rendered first for this cluster and held to the
        namespace rule, so a cluster-scoped object refuses the install before anything is made."""
        source = ChartSource.of(chart)
        if source.cluster_scoped and not self.cluster.cluster_scoped:
            raise ManifestError(
                f"chart {Path(source.path).name} asks for cluster_scoped, and this {self.cluster.provider} cluster is "
                "not disposable: pass --stateful-cluster-scoped to let the run create cluster-scoped objects there "
                "(labelled with the run, deleted at teardown)"
            )
        if source.cluster_scoped and is_shared(self.namespace):
            raise ManifestError(
                f"chart {Path(source.path).name} asks for cluster_scoped, which needs a fresh namespace per test (its "
                "unique name is what marks the test's cluster-scoped objects): leave out --stateful-namespace and "
                "the spec's namespace:"
            )
        rendered = self._helm().template(source)
        docs = place(rendered, self.namespace, self.cluster.discovery, source.cluster_scoped, CLUSTER_SCOPED_HINT)
        self._under_test(docs, statefulset)
        if is_shared(self.namespace):
            refuse_takeover(self.cluster, self.namespace, docs)
        self._take_globals(docs, self.timeout)
        helm = self._helm()
        with self.step("apply", f"helm install {source.release} {Path(source.path).name}", settle, timeout):
            # Also after a failed install: what helm made (its release Secret too) is the run's.
            self._helm_action(helm, source.release, lambda: helm.install(source))
        self.chart = source
        return self

    def helm_upgrade(
        self,
        chart: str | None = None,
        values: Mapping[str, Any] | None = None,
        values_files: list[str] | None = None,
        reuse_values: bool = False,
        settle: bool = True,
        timeout: float | None = None,
    ) -> None:
        """`helm upgrade` the release: to `chart` (a path; default the installed chart). Values: the
        install's values files (or `values_files`) and the install's values with `values` merged over
        them; with `reuse_values`, helm's --reuse-values (the release's last values, `values_files`
        and `values` over them). Refused before sending when the API server would refuse the
        StatefulSet it writes (a server-side dry run), naming the field and the values behind it."""
        installed = self._installed("helm_upgrade")
        if reuse_values:
            source = ChartSource(
                chart or installed.path, installed.release, dict(values or {}), tuple(values_files or ())
            )
        else:
            source = ChartSource(
                chart or installed.path,
                installed.release,
                merge(installed.values, values or {}),
                tuple(values_files) if values_files is not None else installed.values_files,
            )
        helm = self._helm()
        old_config = helm.values(installed.release)
        rendered, new_config = helm.preview(source, reuse_values)
        self._refuse_forbidden(helm, rendered, "helm_upgrade", (source, old_config, new_config))
        self._take_globals(self._held_to_the_rule(rendered, "helm_upgrade"), 0)
        self._label_globals(helm.post_render)
        with self.step(
            "helm_upgrade", f"{installed.release} {Path(source.path).name}{self._on_delete()}", settle, timeout
        ):
            self._helm_action(helm, installed.release, lambda: helm.upgrade(source, reuse_values))
            self._min_generation = self._generation()
        self.chart = dataclasses.replace(installed, path=source.path)

    def helm_rollback(self, revision: int | None = None, settle: bool = True, timeout: float | None = None) -> None:
        """`helm rollback` the release to `revision` (default: the one before the current)."""
        installed = self._installed("helm_rollback")
        helm = self._helm()
        current = helm.revision(installed.release)
        target = revision if revision is not None else current - 1
        if target < 1:
            raise StepError(
                f"helm_rollback: release {installed.release} has only revision {current}: nothing to roll back to"
            )
        rendered = helm.manifest(installed.release, target)
        self._refuse_forbidden(helm, rendered, "helm_rollback", None)
        hooks = helm.hooks(installed.release, target)
        self._take_globals(self._held_to_the_rule([*rendered, *hooks], "helm_rollback"), 0)
        self._label_globals(helm.post_render)
        with self.step("helm_rollback", f"{installed.release} to revision {target}", settle, timeout):
            self._helm_action(helm, installed.release, lambda: helm.rollback(installed.release, target))
            self._min_generation = self._generation()

    def helm_test(self, settle: bool = True, timeout: float | None = None) -> None:
        """`helm test` the release (its `helm.sh/hook: test` pods, with their logs), where a node runs
        their containers: a test pod that ran on a simulated node, where nothing runs, fails the step
        instead of passing it."""
        installed = self._installed("helm_test")
        helm = self._helm()
        tests: list[tuple[str, str]] = []  # (kind, name): a test Pod, or a Job whose pods are `<name>-...`
        for doc in helm.hooks(installed.release):
            meta = doc.get("metadata") or {}
            # As helm reads the annotation: comma-separated, trimmed, any case; test-success is test's old name.
            events = {
                e.strip().lower() for e in str((meta.get("annotations") or {}).get("helm.sh/hook", "")).split(",")
            }
            if events & {"test", "test-success"} and doc.get("kind") in ("Pod", "Job"):
                tests.append((str(doc["kind"]), str(meta.get("name", ""))))
        if not tests:
            raise StepError(
                f"helm_test: release {installed.release} has no test (no Pod or Job with `helm.sh/hook: test`)"
            )
        self._some_node_runs_containers()
        limit = self.timeout if timeout is None else timeout
        since = len(self.recorder.timeline.entries)  # an earlier helm_test's pod of the same name does not count
        with self.step("helm_test", f"{installed.release}: {', '.join(n for _, n in tests)}", settle, timeout):
            try:
                helm.test(installed.release, limit)
            finally:
                try:
                    # Also when helm says a test failed: one that no container ran says nothing either way.
                    self._ran_where_containers_run(tests, since)
                finally:
                    if is_shared(self.namespace):
                        self._delete_tests(tests)

    def _some_node_runs_containers(self) -> None:
        """Before helm waits for tests that cannot run: a cluster whose every node is simulated fails at once
        (an account that may not list nodes is asked afterwards, pod by pod)."""
        try:
            nodes = self._call("list the nodes", self.cluster.core.list_node, retry=True).items
        except Forbidden:
            return
        names = [str(n.metadata.name) for n in nodes]
        if names and all(self.cluster.no_containers(name) for name in names):
            raise StepError(
                f"helm_test: every node of this cluster is simulated (KWOK: {', '.join(names)}), where no container "
                "runs: a chart test there proves nothing; run it where nodes run containers (the local real node: "
                "--stateful-node real, with the test's image present there)"
            )

    def _delete_tests(self, tests: list[tuple[str, str]]) -> None:
        """In a namespace that is not the test's own, the test pods (helm keeps them) go with the run."""
        batch = client.BatchV1Api(self.cluster.api)
        for kind, name in tests:
            delete = self.cluster.core.delete_namespaced_pod if kind == "Pod" else batch.delete_namespaced_job
            with contextlib.suppress(StatefulError):
                call(f"delete {kind} {name}", delete, name, self.namespace, propagation_policy="Background", retry=True)

    def _ran_where_containers_run(self, tests: list[tuple[str, str]], since: int) -> None:
        def nodes(kind: str, name: str) -> list[tuple[str, str]]:
            return [
                (e.name, e.pod.node)
                for e in self.recorder.timeline.entries[since:]
                if e.kind == POD and e.pod.node and (e.name == name if kind == "Pod" else e.name.startswith(f"{name}-"))
            ]

        # The recorder's watch may trail helm's own wait by a moment.
        self._wait_for(
            lambda: all(nodes(k, n) for k, n in tests),
            10.0,
            lambda: f"the node of each test pod ({', '.join(n for _, n in tests)})",
        )
        for kind, name in tests:
            seen = nodes(kind, name)
            for pod, node in dict(seen).items() or [(name, "")]:
                why = self.cluster.no_containers(node) if node else "never seen on a node"
                if why:
                    raise StepError(
                        f"helm_test: test pod {pod} was {why}: a test no container ran proves nothing, passed or "
                        "failed; run it where nodes run containers (the local real node: --stateful-node real, with "
                        "the test's image present there)"
                    )

    def _helm(self) -> Helm:
        """helm for this namespace; its post-renderer maps images, labels what the run makes in a shared
        namespace, and labels the cluster-scoped objects this test holds with the run and the namespace."""
        post: dict[str, Any] = {}
        if self.images is not None:
            post.update(image_repository=self.images.repository, image_tags=dict(self.images.tags))
        if is_shared(self.namespace):
            post["labels"] = this_process().labels()
        self._label_globals(post)
        return Helm(self.cluster, self.namespace, post)

    def _label_globals(self, post: dict[str, Any]) -> None:
        """The post-renderer's share of the cluster-scoped names held (taken since `post` was made too)."""
        if self.globals is not None and self.globals.held:
            post["cluster_kinds"] = sorted({f"{g.api_version}/{g.kind}" for g in self.globals.held})
            post["cluster_labels"] = {**this_process().labels(), NAMESPACE_LABEL: self.namespace}

    def _held_to_the_rule(self, rendered: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
        """What an upgrade or rollback would make, held to the namespace rule before it is sent (a
        cluster-scoped object only when the installed chart asked for them)."""
        installed = self._installed(action)
        try:
            return place(
                [dict(d) for d in rendered],
                self.namespace,
                self.cluster.discovery,
                installed.cluster_scoped,
                CLUSTER_SCOPED_HINT,
            )
        except ManifestError as exc:
            raise StepError(f"{action} refused before sending: {exc}") from None

    def _take_globals(self, docs: Sequence[Mapping[str, Any]], wait: float) -> None:
        """Hold the cluster-scoped names among `docs` (waiting up to `wait` s for another test's)."""
        wanted = cluster_scoped(docs, self.cluster.discovery)
        if not wanted:
            return
        if self.globals is None:
            self.globals = hold(self.cluster, self.namespace)
        self.globals.take(wanted, wait, note=self.progress or (lambda _line: None))

    def release_globals(self) -> list[str]:
        """Teardown: delete the chart's cluster-scoped objects and give their names back."""
        if self.globals is None:
            return []
        return release(self.namespace)

    def _installed(self, action: str) -> ChartSource:
        if self.chart is None:
            raise StepError(f"{action}: the StatefulSet was not installed from a chart (use `chart:` in the spec)")
        return self.chart

    def _generation(self) -> int:
        return int(self._read_statefulset().metadata.generation or 0)

    def _read_statefulset(self) -> Any:
        return self._call(
            f"read StatefulSet {self.name}",
            self.cluster.apps.read_namespaced_stateful_set,
            self.name,
            self.namespace,
            retry=True,
        )

    def _helm_action(self, helm: Helm, release: str, action: Callable[[], None]) -> None:
        """Run a helm action, then take account of what the release holds, also when the action failed
        half-way (without hiding its error)."""
        try:
            action()
        except BaseException:
            with contextlib.suppress(StatefulError):
                self._released(helm, release)
            raise
        self._released(helm, release)

    def _released(self, helm: Helm, release: str) -> None:
        """After a helm action: keep the image tags its post-renderer handed out, record the budgets it
        applied, and in a shared namespace register what it created (and helm's release Secrets)."""
        if self.images is not None:
            self.images.tags.update(helm.post_render.get("image_tags") or {})
        try:
            objects = helm.manifest(release)
        except StatefulError:
            objects = []  # no release recorded (it failed early): its Secrets, if any, are still listed
        self.objects = objects
        if self.globals is not None:
            self.globals.claim()
        for doc in objects:
            if doc.get("kind") == "PodDisruptionBudget":
                self.recorder.add(PDB, "ADDED", doc["metadata"]["name"], **reduce_pdb(doc))
        if not is_shared(self.namespace):
            return
        known = registered(self.namespace)
        secrets = self._call(
            f"list the release Secrets of {release}",
            self.cluster.core.list_namespaced_secret,
            self.namespace,
            label_selector=f"owner=helm,name={release}",
            retry=True,
        )
        made = [
            ({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": s.metadata.name}}, s.metadata.uid)
            for s in secrets.items
        ]
        for doc in objects:
            meta = doc.get("metadata") or {}
            path = self.cluster.discovery.path(
                str(doc.get("apiVersion")), str(doc.get("kind")), self.namespace, str(meta.get("name"))
            )
            if path is None:
                continue
            with contextlib.suppress(StatefulError):
                made.append((doc, _uid_at(self.cluster, path)))
        for doc, uid in made:
            if uid and uid not in known:
                created(self.namespace, doc, {"metadata": {"uid": uid}})

    def _refuse_forbidden(
        self,
        helm: Helm,
        rendered: list[dict[str, Any]],
        action: str,
        configs: tuple[ChartSource, Mapping[str, Any], Mapping[str, Any]] | None,
    ) -> None:
        """Fail the step before anything is sent when the API server refuses the StatefulSet it would
        write (a server-side dry run of the update: the server's own rules, for its own version).
        The field is named from a comparison with the live object, and for an upgrade the values keys
        behind it (`configs`: the new source, the release's values and the upgrade's)."""
        new = statefulset_of(rendered, self.name)
        if new is None:
            return
        read = self._read_statefulset()
        live = self.cluster.api.sanitize_for_serialization(read)
        answer, forbidden = dry_run_replace(self.cluster, self.namespace, new)
        if not forbidden:
            return
        changes = forbidden_changes(live, new)
        what = f"a field of StatefulSet {self.name}'s spec that an update may not change"
        if changes:
            first = changes[0]
            what = f"{first.path} of StatefulSet {self.name} from {first.old!r} to {first.new!r}"
            causes = _causes(helm, self.name, live, first, *configs) if configs is not None else []
            if causes:
                what += f", produced by the values {', '.join(causes)}"
            if len(changes) > 1:
                what += f" (and {', '.join(c.path for c in changes[1:4])})"
        verb = "upgrade" if action == "helm_upgrade" else "roll back"
        raise StepError(
            f"{action} would change {what}: Kubernetes does not let an update change "
            f"it, so the {verb} would fail. Usual remedy: delete the StatefulSet but not its pods and claims "
            f"(kubectl delete statefulset {self.name} --cascade=orphan -n {self.namespace}), then {verb}: the new "
            f"StatefulSet adopts them. The API server says: {answer}"
        )

    # -- steps ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def step(
        self, action: str, detail: str = "", settle: bool = False, timeout: float | None = None, waits: bool = False
    ) -> Iterator[None]:
        """Record a step around the block; on success settle (bounded), then probe. `waits`: the block
        itself waits for the cluster to finish what the step asked (delete_statefulset)."""
        timeout = self.timeout if timeout is None else timeout
        if self._deleted:
            raise StepError(f"{action}: StatefulSet {self.name} was deleted by delete_statefulset, the last step")
        self._step_label = f"{action} {detail}".strip()
        if action in DISRUPTIONS:
            self.probes.write_markers()
        self.recorder.step("begin", action, action=action, detail=detail)
        ok = False
        try:
            yield
            if settle:
                self.wait_settled(timeout)
                self.probe_dns()
                self.probe_node()
            ok = True
        finally:
            self.observe_runtime()
            # settled: the step waited for the cluster to finish, and it did (claim_retention reads it).
            self.recorder.step("end", action, action=action, detail=detail, ok=ok, settled=(settle or waits) and ok)

    def wait_settled(self, timeout: float | None = None) -> None:
        """Until observedGeneration is current, every replica is Ready and the rollout is done."""
        timeout = self.timeout if timeout is None else timeout
        if not self._wait_for(lambda: self.view.settled(self._min_generation), timeout, self.view.settle_goal):
            raise StepTimeout(self.view.last_seen(f"{self.name} to settle", timeout))

    def delete_pod(self, ordinal: int, settle: bool = True, timeout: float | None = None) -> None:
        pod = f"{self.name}-{ordinal}"
        with self.step("delete_pod", pod, settle, timeout):
            old = self.view.pod(pod)
            if old is None:
                # Not seen (yet): delete by name; the API server says whether it exists.
                deleted = self._call(f"delete pod {pod}", self.cluster.core.delete_namespaced_pod, pod, self.namespace)
                self._note_deleted("delete_pod", {pod: str(getattr(deleted.metadata, "uid", "") or "")})
            else:
                self._delete("delete_pod", [old])
            if settle and old is not None:
                self._wait_gone({old.uid}, f"{pod} to be replaced", timeout)

    def force_delete_pod(self, ordinal: int, settle: bool = True, timeout: float | None = None) -> None:
        """Delete with grace period 0: the object goes at once; a node that still runs the containers
        is not asked (what at_most_one is about)."""
        pod = f"{self.name}-{ordinal}"
        with self.step("force_delete_pod", pod, settle, timeout):
            old = self.view.pod(pod)
            if old is None:
                raise StepError(f"force_delete_pod {ordinal}: {pod} has not been seen in {self.namespace}")
            self._delete("force_delete_pod", [old], grace=0)
            if settle:
                self._wait_gone({old.uid}, f"{pod} to be replaced", timeout)

    def delete_pods(self, settle: bool = True, timeout: float | None = None) -> None:
        with self.step("delete_pods", "all pods at once", settle, timeout):
            olds = self.view.pods()
            self._delete("delete_pods", olds)
            if settle:
                self._wait_gone({p.uid for p in olds}, "every old pod to be replaced", timeout)

    def scale(self, replicas: int, settle: bool = True, timeout: float | None = None) -> None:
        with self.step("scale", f"to {replicas}", settle, timeout):
            self._call(
                f"scale {self.name} to {replicas}",
                self.cluster.apps.patch_namespaced_stateful_set_scale,
                self.name,
                self.namespace,
                {"spec": {"replicas": replicas}},
                retry=True,
            )
            self._min_generation = self._generation()

    def rollout_restart(self, settle: bool = True, timeout: float | None = None) -> None:
        stamp = datetime.now(UTC).isoformat()
        with self.step("rollout_restart", f"{stamp}{self._on_delete()}", settle, timeout):
            self._patch(
                {
                    "spec": {
                        "template": {
                            "metadata": {
                                "annotations": {"kubectl.kubernetes.io/restartedAt": stamp},
                                **self._drop_hold(),
                            }
                        }
                    }
                }
            )

    def bad_rollout(self, container: str, image: str) -> None:
        """Roll out a revision whose pods never become Ready; does not settle (it cannot).

        The image is used as given (never mapped by --stateful-image): on a real node it must fail to
        pull or start. On the local cluster's simulated nodes, where no image is pulled, the new
        revision's pods also carry the readiness hold (a KWOK stage keeps them from becoming Ready).
        """
        self._known_container("bad_rollout", container)
        hold = {"labels": {UNREADY_LABEL: "true"}} if self.cluster.holds_unready else {}
        self._held = bool(hold)
        with self.step("bad_rollout", f"{container}={image}"):
            template: dict[str, Any] = {"spec": {"containers": [{"name": container, "image": image}]}}
            if hold:
                template["metadata"] = hold
            self._patch({"spec": {"template": template}})
            self.bad_rollouts += 1
            # Which generation is the bad one: rollout_recovers finds its revision in the status for it.
            self.recorder.step("generation", "bad_rollout", action="bad_rollout", generation=self._min_generation)

    def _drop_hold(self) -> dict[str, Any]:
        """The template metadata that lifts a bad_rollout's readiness hold (the fix is the next update)."""
        if not self._held:
            return {}
        self._held = False
        return {"labels": {UNREADY_LABEL: None}}

    def update_image(self, container: str, image: str, settle: bool = True, timeout: float | None = None) -> None:
        self._known_container("update_image", container)
        if self.images is not None:
            image = self.images(image)
        with self.step("update_image", f"{container}={image}{self._on_delete()}", settle, timeout):
            template: dict[str, Any] = {"spec": {"containers": [{"name": container, "image": image}]}}
            hold = self._drop_hold()
            if hold:
                template["metadata"] = hold
            self._patch({"spec": {"template": template}})

    def _on_delete(self) -> str:
        """What a template change does under OnDelete, for the step's line: nothing, until pods are deleted."""
        sts = self.view.statefulset()
        if sts is None or sts.sts.strategy != "OnDelete":
            return ""
        return " (OnDelete: the template changed, no pod is replaced until deleted)"

    def _known_container(self, action: str, container: str) -> None:
        sts = self.view.statefulset()
        known = sts.sts.containers if sts is not None else []
        if known and container not in known:
            # A strategic merge patch would add a second container silently, not change an image.
            raise StepError(
                f"{action}: StatefulSet {self.name} has no container {container!r} (its containers: {', '.join(known)})"
            )

    def set_partition(self, partition: int, settle: bool = True, timeout: float | None = None) -> None:
        """Move the RollingUpdate partition: pods at or above it take the update revision."""
        with self.step("partition", f"to {partition}", settle, timeout):
            self._patch(
                {"spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}}}}
            )

    def start_ordinal(self, start: int, settle: bool = True, timeout: float | None = None) -> None:
        """Move spec.ordinals.start (StatefulSetStartOrdinal)."""
        with self.step("start_ordinal", f"to {start}", settle, timeout):
            self._patch({"spec": {"ordinals": {"start": start}}})

    def rollout_undo(self, to_revision: int | None = None, settle: bool = True, timeout: float | None = None) -> None:
        """`kubectl rollout undo`: the template of a ControllerRevision of this StatefulSet (its revision
        number; default the one before the current) applied back as a strategic merge patch."""
        sts = self._read_statefulset()
        listed = self._call(
            f"list ControllerRevisions in {self.namespace}",
            self.cluster.apps.list_namespaced_controller_revision,
            self.namespace,
            retry=True,
        )
        owned = sorted(
            (r for r in listed.items if any(o.uid == sts.metadata.uid for o in r.metadata.owner_references or [])),
            key=lambda r: int(r.revision),
        )
        if to_revision is None:
            # As kubectl's rollback does (findHistory, then the second-highest revision number).
            target = owned[-2] if len(owned) >= 2 else None
        else:
            target = next((r for r in owned if int(r.revision) == to_revision), None)
        if target is None:
            have = ", ".join(str(r.revision) for r in owned) or "none"
            wanted = f"revision {to_revision}" if to_revision else "a revision before the current one"
            raise StepError(f"rollout_undo: StatefulSet {self.name} has no {wanted} (its revisions: {have})")
        with self.step("rollout_undo", f"to revision {target.revision} ({target.metadata.name})", settle, timeout):
            self._patch(self.cluster.api.sanitize_for_serialization(target.data))

    def evict_pod(self, ordinal: int, settle: bool = True, timeout: float | None = None) -> None:
        """Evict one pod as the eviction API does for a drain (PodDisruptionBudgets apply)."""
        pod = f"{self.name}-{ordinal}"
        current = self.view.pod(pod)
        if current is None:
            raise StepError(f"evict_pod {ordinal}: {pod} has not been seen in {self.namespace}")
        with self.step("evict_pod", pod, settle, timeout):
            self._note_deleted("evict_pod", {current.name: current.uid})
            self._evict(current, time.monotonic() + (self.timeout if timeout is None else timeout))
            if settle:
                self._wait_gone({current.uid}, f"{pod} to be replaced", timeout)

    def delete_claim(self, ordinal: int, settle: bool = True, timeout: float | None = None) -> None:
        """Delete this ordinal's claims (a UID precondition each), each recorded as the test's own
        deletion once the API server accepted it, so that stable_storage tells it from a claim lost to
        the cluster. Waits until each is gone, or held Terminating by a scheduled pod that uses it."""
        pod = f"{self.name}-{ordinal}"
        sts = self.view.statefulset()
        templates = list(sts.sts.claim_templates) if sts is not None else []
        if not templates:
            raise StepError(
                f"delete_claim {ordinal}: StatefulSet {self.name} has no volumeClaimTemplates, so no claims"
            )
        claims = {f"{t}-{pod}": self.view.claim(f"{t}-{pod}") for t in templates}
        unseen = sorted(c for c, e in claims.items() if e is None)
        if unseen:
            raise StepError(f"delete_claim {ordinal}: claim {', '.join(unseen)} has not been seen in {self.namespace}")
        olds = {c: e for c, e in claims.items() if e is not None}
        detail = ", ".join(olds)
        user = next((u for c in olds if (u := self.view.claim_user(c)) is not None), None)
        holder = self.view.pod(pod)
        if user is not None:
            detail += (
                f" ({user.name} on node {user.pod.node} uses it: it stays Terminating until that pod goes, "
                "kubernetes.io/pvc-protection)"
            )
        elif holder is not None and not holder.pod.node:
            detail += f" ({pod} is Pending, not scheduled: nothing holds the claim)"
        with self.step("delete_claim", detail, settle, timeout):
            for template, (claim, e) in zip(templates, olds.items(), strict=True):
                try:
                    self._call(
                        f"delete claim {claim}",
                        self.cluster.core.delete_namespaced_persistent_volume_claim,
                        claim,
                        self.namespace,
                        body={"preconditions": {"uid": e.uid}},
                        retry=True,
                    )
                except (NotFound, Conflict) as exc:
                    # Whose deletion it was cannot be told (something else's, or an earlier attempt of
                    # ours whose answer was lost): not counted as the test's, and the step fails.
                    raise StepError(
                        f"delete_claim {ordinal}: claim {claim} (UID {e.uid[:8]}) was already gone or replaced when "
                        f"the test deleted it, so this deletion cannot be counted as the test's: {exc}"
                    ) from exc
                # Recorded only once accepted: a deletion that failed must excuse nothing.
                self.recorder.step(
                    "deletes",
                    "delete_claim",
                    action="delete_claim",
                    pods=[],
                    uids=[],
                    claims=[claim],
                    claim_uids=[e.uid],
                )
                # The data goes with the claim: the marker written before this step is not expected back.
                self.probes.markers.pop((pod, template), None)

            def released() -> bool:
                for claim, e in olds.items():
                    now = self.view.claim(claim)
                    if (
                        now is not None
                        and now.uid == e.uid
                        and not (now.claim.deleting and self.view.claim_user(claim))
                    ):
                        return False
                return True

            self._wait(released, f"{detail} to be deleted", timeout)

    def delete_statefulset(self, timeout: float | None = None) -> None:
        """Delete the StatefulSet as `kubectl delete` does (background cascade): the garbage collector
        deletes its pods, and the claims it owns (persistentVolumeClaimRetentionPolicy.whenDeleted:
        Delete). Waits until the StatefulSet and its pods are gone and every claim it owns is being
        deleted (a claim goes once no pod uses it). The last step: no step may follow."""
        sts = self.view.statefulset()
        if sts is None:
            raise StepError(f"delete_statefulset: StatefulSet {self.name} has not been seen in {self.namespace}")
        owner = f"StatefulSet/{self.name}"
        detail = f"{self.name} (whenDeleted: {sts.sts.retention_when_deleted})"
        with self.step("delete_statefulset", detail, False, timeout, waits=True):
            # Where the record of this StatefulSet ends for every guarantee but claim_retention.
            self.recorder.step(
                "deletes", "delete_statefulset", action="delete_statefulset", pods=[], uids=[], statefulset=self.name
            )
            self._deleted = True
            self._call(
                f"delete StatefulSet {self.name}",
                self.cluster.apps.delete_namespaced_stateful_set,
                self.name,
                self.namespace,
                body={"propagationPolicy": "Background", "preconditions": {"uid": sts.uid}},
                retry=True,
            )

            def gone() -> bool:
                # Claims the StatefulSet owns, and those its condemned pods own (whenScaled: Delete), go
                # with their owners: the record must show it before it ends.
                owned = [
                    c
                    for c in self.recorder.snapshot(PVC)
                    if not c.claim.deleting
                    and any(
                        o == owner or (o.startswith("Pod/") and ordinal_of(o[4:], self.name) is not None)
                        for o in c.claim.owners
                    )
                ]
                return self.view.statefulset() is None and not self.view.pods() and not owned

            self._wait(gone, f"{self.name}, its pods and the claims it owns to be deleted", timeout)

    def make_unready(self, ordinal: int, timeout: float | None = None) -> None:
        """Hold a pod NotReady (local cluster: a KWOK stage keyed on a label) until make_ready."""
        pod = f"{self.name}-{ordinal}"
        self._need("make_unready", self.cluster.holds_unready, "holds a pod unready through a KWOK stage")
        with self.step("make_unready", pod, False, timeout):
            self._label_pod(pod, "true")
            self._wait(lambda: (p := self.view.pod(pod)) is not None and not p.pod.ready, f"{pod} NotReady", timeout)

    def make_ready(self, ordinal: int, settle: bool = True, timeout: float | None = None) -> None:
        pod = f"{self.name}-{ordinal}"
        self._need("make_ready", self.cluster.holds_unready, "holds a pod unready through a KWOK stage")
        with self.step("make_ready", pod, settle, timeout):
            self._label_pod(pod, None)

    def drain_node(self, ordinal: int, settle: bool = True, timeout: float | None = None) -> None:
        """Cordon the node that pod runs on and evict its pods of this namespace; uncordoned at teardown."""
        node = self._node_to_cordon("drain_node", ordinal)
        with self.step("drain_node", node, settle, timeout):
            self._cordon(node, ordinal)
            on_node = [e for e in self.view.pods() if e.pod.node == node]
            evicted = {e.uid for e in on_node}
            self._note_deleted("drain_node", {e.name: e.uid for e in on_node})
            deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
            for e in on_node:
                self._evict(e, deadline)
            if settle:
                self._wait_gone(evicted, f"the pods on {node} to go", timeout)

    def cordon_node(self, ordinal: int, settle: bool = True, timeout: float | None = None) -> None:
        """Cordon the node that pod runs on, evicting nothing; uncordoned by uncordon_node or at teardown."""
        node = self._node_to_cordon("cordon_node", ordinal)
        with self.step("cordon_node", f"{node} ({self.name}-{ordinal})", settle, timeout):
            self._cordon(node, ordinal)

    def _node_to_cordon(self, action: str, ordinal: int) -> str:
        pod = f"{self.name}-{ordinal}"
        current = self.view.pod(pod)
        if current is None or not current.pod.node:
            raise StepError(f"{action} {ordinal}: {pod} is not running on a node")
        node = current.pod.node
        self._need(action, self.cluster.drains_nodes, f"changes Node {node}, which is outside the test namespace")
        return node

    def uncordon_node(self, node: int | str, settle: bool = True, timeout: float | None = None) -> None:
        """Make schedulable again a node this test cordoned: by ordinal (the node cordoned for that
        ordinal's pod, which may since have been replaced) or by name."""
        if isinstance(node, int):
            name = _node_for(self._cordoned, node)
            if name is None:
                raise StepError(
                    f"uncordon_node {node}: no node was cordoned for {self.name}-{node} "
                    "(take cordon_node or drain_node first)"
                )
        elif node in self._cordoned:
            name = node
        else:
            cordoned = ", ".join(sorted(self._cordoned)) or "none"
            raise StepError(
                f"uncordon_node {node}: this test did not cordon node {node} (it cordoned: {cordoned}); "
                "it only uncordons what it cordoned"
            )
        with self.step("uncordon_node", name, settle, timeout):
            self._set_unschedulable(name, False)
            del self._cordoned[name]

    def _cordon(self, node: str, ordinal: int) -> None:
        if node not in self._cordoned and self._read_node(node).spec.unschedulable:
            return  # cordoned before this test: someone else's to uncordon
        # Noted before the call: a cordon whose answer is lost is still undone at teardown.
        self._cordoned.setdefault(node, set()).add(ordinal)
        try:
            self._set_unschedulable(node, True)
        except StatefulError:
            if self._cordoned.get(node) == {ordinal}:
                del self._cordoned[node]
            raise

    def _set_unschedulable(self, node: str, value: bool) -> None:
        verb = "cordon" if value else "uncordon"
        self._call(
            f"{verb} node {node}", self.cluster.core.patch_node, node, {"spec": {"unschedulable": value}}, retry=True
        )

    def _evict(self, pod: Entry, deadline: float) -> None:
        """Evict as `kubectl drain` does: a PodDisruptionBudget refuses with 429 while the eviction would
        break it, and the eviction is asked again (each refusal recorded) until it passes or the step
        times out."""
        body = {"metadata": {"name": pod.name, "namespace": self.namespace}}
        while True:
            try:
                self._call(
                    f"evict pod {pod.name}",
                    self.cluster.core.create_namespaced_pod_eviction,
                    pod.name,
                    self.namespace,
                    body,
                )
                return
            except NotFound:
                return  # gone already
            except TooManyRequests as exc:
                self.recorder.add(RETRY, "refused", f"evict {pod.name}", reason=exc.message)
                if time.monotonic() >= deadline:
                    raise StepTimeout(
                        f"the eviction of {pod.name} was still refused when the step timed out: {exc.message}"
                    ) from None
                self.recorder.wait_for_change(len(self.recorder.timeline), 1.0)

    def fail_node(self, ordinal: int, timeout: float | None = None) -> None:
        """Stop the node that pod runs on (local cluster) and wait until the control plane marks it
        failed; restored at teardown (restore_node does it earlier)."""
        pod = f"{self.name}-{ordinal}"
        current = self.view.pod(pod)
        if current is None or not current.pod.node:
            raise StepError(f"fail_node {ordinal}: {pod} is not running on a node")
        node = current.pod.node
        nodes = self._nodes("fail_node", node)
        if node in self._failed:
            # Another ordinal's pod on a node already failed: that ordinal now names it too.
            self._failed[node].add(ordinal)
            return
        how = "kubelet stopped, containers left running" if nodes.is_real(node) else "simulated: KWOK stops acting"
        with self.step("fail_node", f"{node} ({pod}; {how})", False, timeout):
            on_node = {e.name: e.uid for e in self.view.pods() if e.pod.node == node}
            # The pods there go down (and are later evicted or deleted) because of the test: the checks
            # must not take that for the controller's doing.
            self._note_deleted("fail_node", on_node)
            self._stranded.update({uid: (name, node) for name, uid in on_node.items()})
            self._failed[node] = {ordinal}
            # Which node the test failed, when: at_most_one does not trust its Ready until it is restored.
            self.recorder.step("fails", "fail_node", action="fail_node", node=node)
            nodes.fail(node)
            self._wait(
                lambda: self._node_failed(node),
                f"node {node} to be marked failed (Ready Unknown, tainted unreachable; grace period of the "
                "node lifecycle controller)",
                timeout,
            )

    def out_of_service(self, ordinal: int, settle: bool = True, timeout: float | None = None) -> None:
        """Declare the failed node of that ordinal shut down: its pods are deleted by the pod GC and the
        StatefulSet replaces them elsewhere (non-graceful node shutdown)."""
        node = self._failed_node("out_of_service", ordinal)
        with self.step("out_of_service", node, settle, timeout):
            on_node = {e.name: e.uid for e in self.view.pods() if e.pod.node == node}
            self._note_deleted("out_of_service", on_node)
            self._taint(node, add=True)
            self._out_of_service.add(node)
            if settle:
                self._wait_gone(
                    set(on_node.values()), f"the pods on {node} to be deleted (pod GC, out-of-service taint)", timeout
                )

    def restore_node(self, node: int | str, settle: bool = True, timeout: float | None = None) -> None:
        """Start a failed node again, without its out-of-service taint; waits until it is Ready."""
        name = self._failed_node("restore_node", node) if isinstance(node, int) else node
        nodes = self._nodes("restore_node", name)
        with self.step("restore_node", name, settle, timeout):
            self._restore(nodes, name)
            self._wait(lambda: self._node_ready(name), f"node {name} to be Ready again", timeout)
            self._untaint(name)

    def restore_nodes(self, timeout: float = 60.0) -> None:
        """Teardown: every node this test failed or tainted comes back (bounded, never raising), so the
        next test finds the cluster whole."""
        nodes = self.cluster.nodes
        names = sorted(set(self._failed) | self._out_of_service)
        if nodes is None or not names:
            return
        for name in names:
            with contextlib.suppress(StatefulError):
                self._restore(nodes, name)
        deadline = time.monotonic() + timeout
        waiting = list(names)
        while waiting and time.monotonic() < deadline:
            with contextlib.suppress(StatefulError):
                waiting = [n for n in waiting if not _ready(self._read_node(n))]
            time.sleep(0.5)
        for name in names:
            with contextlib.suppress(StatefulError):
                self._untaint(name)

    def observe_runtime(self) -> None:
        """Node level: ask the runtime of each failed real node which containers of the pods it ran
        still run, and record it (at_most_one holds it against the replacements' lifetimes)."""
        nodes = self.cluster.nodes
        if nodes is None:
            return
        for uid, (pod, node) in sorted(self._stranded.items()):
            running = nodes.running(node, uid)
            if running is not None:
                self.recorder.add(RUNTIME, "observed", pod, uid, node=node, pod=pod, running=running)
            if not running:
                del self._stranded[uid]  # stopped (or no runtime to ask): nothing more to watch

    def _restore(self, nodes: NodeFailer, name: str) -> None:
        self.observe_runtime()  # the last look before the node reconciles its containers
        if self._failed.pop(name, None) is not None:
            # Before the call: a confirmation from the node must not be taken for the failed node's.
            self.recorder.step("restores", "restore_node", action="restore_node", node=name)
        nodes.restore(name)

    def _untaint(self, name: str) -> None:
        """The out-of-service taint goes only once the node is back, as the documented procedure says:
        until then the pod GC may still be deleting pods because of it."""
        if name in self._out_of_service:
            self._taint(name, add=False)
            self._out_of_service.discard(name)

    def _nodes(self, action: str, node: str) -> NodeFailer:
        nodes = self.cluster.nodes
        if nodes is None:
            raise NotSupported(
                f"{action} stops and restores Node {node}, which is outside the test namespace: "
                "it is offered on the local cluster only"
            )
        return nodes

    def _failed_node(self, action: str, ordinal: int) -> str:
        found = _node_for(self._failed, ordinal)
        if found is None:
            raise StepError(f"{action} {ordinal}: no node was failed for {self.name}-{ordinal} (take fail_node first)")
        return found

    def _node(self, node: str) -> NodeData | None:
        entry = self.recorder.current.get((NODE, node))
        return entry.node if entry is not None else None

    def _node_failed(self, node: str) -> bool:
        data = self._node(node)
        return data is not None and data.ready != "True" and data.tainted(*UNREACHABLE_TAINTS)

    def _node_ready(self, node: str) -> bool:
        data = self._node(node)
        if data is None:  # not recorded (an account that may not read nodes): ask
            return _ready(self._read_node(node))
        return data.ready == "True" and not data.tainted(*UNREACHABLE_TAINTS)

    def _read_node(self, node: str) -> Any:
        return self._call(f"read node {node}", self.cluster.core.read_node, node, retry=True)

    def _taint(self, node: str, add: bool) -> None:
        """Add or remove the out-of-service taint. Taints are one list, also written by the node
        lifecycle controller: read, change, write with the read resourceVersion, again on a conflict."""
        for _ in range(10):
            read = self._read_node(node)
            taints = [
                {"key": t.key, "value": t.value, "effect": t.effect}
                for t in read.spec.taints or []
                if t.key != OUT_OF_SERVICE
            ]
            if add:
                taints.append({"key": OUT_OF_SERVICE, "value": "nodeshutdown", "effect": "NoExecute"})
            body = {"metadata": {"resourceVersion": read.metadata.resource_version}, "spec": {"taints": taints}}
            try:
                self._call(f"taint node {node}", self.cluster.core.patch_node, node, body)
                return
            except Conflict:
                continue
        raise StepError(f"could not change the taints of node {node}: it kept changing (10 conflicts)")

    def sleep(self, seconds: float) -> None:
        with self.step("sleep", f"{seconds} s"):
            time.sleep(seconds)

    def uncordon(self) -> None:
        """Teardown: every node this test cordoned is schedulable again; one that cannot be is said in a
        warning with the command that does it (teardown does not raise)."""
        for node in sorted(self._cordoned):
            try:
                self._set_unschedulable(node, False)
            except StatefulError as exc:
                warnings.warn(
                    f"node {node}, cordoned by this test, could not be uncordoned: {exc}; run: kubectl uncordon {node}",
                    stacklevel=2,
                )
        self._cordoned.clear()

    # -- probes (also run by every settled step) -----------------------------------------------

    def probe_dns(self, timeout: float | None = None) -> list[Entry]:
        """Ask DNS for every pod's name and the Service name until they answer what they should."""
        return self.probes.dns(timeout)

    def probe_node(self) -> list[Entry]:
        """Node level: hostname inside each pod, DNS from inside a pod, markers read back."""
        return self.probes.node()

    def exec(self, pod: str, command: list[str], container: str | None = None) -> str:
        """Run a command inside a pod's container (through the API server and the kubelet); its stdout."""
        return self.probes.exec(pod, command, container)

    def try_exec(self, pod: str, command: list[str], container: str | None = None) -> tuple[int, str] | None:
        return self.probes.try_exec(pod, command, container)

    # -- judging --------------------------------------------------------------------------

    @property
    def subject(self) -> Subject:
        return Subject(self.name, self.namespace, self.cluster.cluster_domain)

    @property
    def timeline(self) -> Timeline:
        return Timeline(list(self.recorder.timeline.entries))

    def verdict(self, guarantee: str) -> Verdict:
        """Judge the record so far, without keeping or raising."""
        return run_check(guarantee, self.timeline, self.subject)

    def judge(self, guarantee: str) -> Verdict:
        """Judge the record so far and keep the verdict for the reports.

        rollout_recovers after a bad_rollout first gives the cluster the step timeout to recover on
        its own (await_recovery): the verdict is what it did in that time."""
        if guarantee == "rollout_recovers":
            self.await_recovery()
        verdict = self.verdict(guarantee)
        self.verdicts[guarantee] = verdict
        return verdict

    def await_recovery(self, timeout: float | None = None) -> None:
        """After a bad_rollout: wait (bounded, recorded, never raising) for the StatefulSet to settle on
        its own. Only while recording: a stopped recorder would show no change."""
        if not self.bad_rollouts or not self.recorder.recording or self.view.settled(self._min_generation):
            return
        timeout = self.timeout if timeout is None else timeout
        with self.step("await_recovery", f"up to {timeout:g} s"):
            self._wait_for(lambda: self.view.settled(self._min_generation), timeout, self.view.settle_goal)

    def require(self, guarantee: str) -> Verdict:
        """Judge, keep, and raise GuaranteeFailed unless the guarantee held."""
        __tracebackhide__ = True
        verdict = self.judge(guarantee)
        if not verdict.passed:
            raise GuaranteeFailed(verdict)
        return verdict

    def assert_ordered_creation(self) -> Verdict:
        __tracebackhide__ = True
        return self.require("ordered_creation")

    def assert_ordered_termination(self) -> Verdict:
        __tracebackhide__ = True
        return self.require("ordered_termination")

    def assert_ordered_rolling_update(self) -> Verdict:
        __tracebackhide__ = True
        return self.require("ordered_rolling_update")

    def assert_stable_identity(self) -> Verdict:
        __tracebackhide__ = True
        return self.require("stable_identity")

    def assert_pod_dns(self) -> Verdict:
        __tracebackhide__ = True
        return self.require("pod_dns")

    def assert_stable_storage(self) -> Verdict:
        __tracebackhide__ = True
        return self.require("stable_storage")

    def assert_rollout_recovers(self) -> Verdict:
        __tracebackhide__ = True
        return self.require("rollout_recovers")

    def assert_availability(self) -> Verdict:
        __tracebackhide__ = True
        return self.require("availability")

    def assert_at_most_one(self) -> Verdict:
        __tracebackhide__ = True
        return self.require("at_most_one")

    def assert_claim_retention(self) -> Verdict:
        __tracebackhide__ = True
        return self.require("claim_retention")

    # -- helpers --------------------------------------------------------------------------

    def _call(self, doing: str, fn: Callable[..., Any], *args: Any, retry: bool = False, **kwargs: Any) -> Any:
        try:
            return call(doing, fn, *args, retry=retry, on_retry=self._note_retry(doing), **kwargs)
        except ServerError as exc:
            # No answer or a 5xx: say what the API server says of itself (etcd down, ...), if it can.
            problem = self.cluster.health()
            if problem and problem.startswith("the API server is not ready"):
                raise InfrastructureError(f"{exc}; {problem}") from exc
            raise

    def _note_retry(self, doing: str) -> Callable[[str], None]:
        def note(why: str) -> None:
            self.recorder.add(RETRY, "retry", doing, doing=doing, reason=why)

        return note

    def _delete(self, action: str, pods: list[Entry], grace: int | None = None) -> None:
        """Delete exactly these pod objects (a UID precondition each), recorded first as the test's own
        deletions: the checks tell them from the controller's by UID, never by time windows."""
        self._note_deleted(action, {p.name: p.uid for p in pods})
        for p in pods:
            options: dict[str, Any] = {"preconditions": {"uid": p.uid}}
            if grace is not None:
                options["gracePeriodSeconds"] = grace
            try:
                # Retried: with the UID precondition a repeated delete cannot hit a replacement.
                self._call(
                    f"delete pod {p.name}",
                    self.cluster.core.delete_namespaced_pod,
                    p.name,
                    self.namespace,
                    body=options,
                    retry=True,
                )
            except (NotFound, Conflict):
                if action != "delete_pods":
                    raise
                # delete_pods: that pod object is already gone or replaced; the others still go.

    def _note_deleted(self, action: str, pods: dict[str, str]) -> None:
        self.recorder.step(
            "deletes", action, action=action, pods=sorted(pods), uids=sorted(u for u in pods.values() if u)
        )

    def _need(self, action: str, capable: bool, why: str) -> None:
        if not capable:
            raise NotSupported(f"{action} {why}: it is offered on the local cluster only")

    def _patch(self, patch: dict[str, Any]) -> None:
        sts = self._call(
            f"patch StatefulSet {self.name}",
            self.cluster.apps.patch_namespaced_stateful_set,
            self.name,
            self.namespace,
            patch,
            retry=True,
        )
        self._min_generation = int(sts.metadata.generation or 0)

    def _label_pod(self, pod: str, value: str | None) -> None:
        self._call(
            f"label pod {pod}",
            self.cluster.core.patch_namespaced_pod,
            pod,
            self.namespace,
            {"metadata": {"labels": {UNREADY_LABEL: value}}},
            retry=True,
        )

    def _wait(self, predicate: Callable[[], Any], what: str, timeout: float | None) -> None:
        timeout = self.timeout if timeout is None else timeout
        if not self._wait_for(predicate, timeout, lambda: what):
            raise StepTimeout(self.view.last_seen(what, timeout))

    def _wait_gone(self, uids: set[str], what: str, timeout: float | None) -> None:
        """Until none of these pod objects is left: a settle right after a delete or an eviction
        must judge the replacements, not the old pods the recorder has not yet seen go."""
        self._wait(lambda: not uids & self.view.pod_uids(), what, timeout)

    def _wait_for(self, predicate: Callable[[], Any], timeout: float, goal: Callable[[], str]) -> Any:
        started = time.monotonic()
        checked = started
        unhealthy: list[str] = []

        def tick() -> None:
            nonlocal checked
            if self.progress is not None:
                self.progress(f"{self._step_label}: waiting for {goal()}, {time.monotonic() - started:.1f} s")
            if time.monotonic() - checked < HEALTH_EVERY:
                return
            checked = time.monotonic()
            # A wait that makes no progress may be the control plane's fault (etcd gone): ask it, and
            # say so within seconds instead of blaming the workload at the timeout.
            problem = self.cluster.health()
            unhealthy[:] = [*unhealthy, problem] if problem else []
            if len(unhealthy) >= 2:
                raise InfrastructureError(f"{problem} (while waiting for {goal()})")

        result = self.recorder.wait_until(predicate, timeout, tick)
        entries = self.recorder.timeline.entries
        if result and entries:
            self.detection_latencies.append(max(0.0, self.recorder.now() - entries[-1].t))
        return result


def _ready(node: Any) -> bool:
    if node is None or node.status is None:
        return False
    conditions = node.status.conditions or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _causes(
    helm: Helm,
    name: str,
    live: Mapping[str, Any],
    change: ForbiddenChange,
    source: ChartSource,
    old_config: Mapping[str, Any],
    new_config: Mapping[str, Any],
) -> list[str]:
    """The values keys whose change produces `change`: each changed key of the user-supplied values
    set back alone, and the upgrade rendered again by helm (a dry run)."""
    found = []
    paths = changed_paths(old_config, new_config)
    for path in paths[:MAX_CAUSES]:
        reverted = with_path(new_config, path, old_config)
        docs, _ = helm.preview(dataclasses.replace(source, values=reverted, values_files=()), False)
        sts = statefulset_of(docs, name)
        if sts is not None and change.path not in {c.path for c in forbidden_changes(live, sts)}:
            found.append(".".join(path))
    if len(paths) > MAX_CAUSES and not found:
        found.append(f"(one of {len(paths)} changed keys; the first {MAX_CAUSES} were tried)")
    return found


def _uid_at(cluster: ClusterHandle, path: str) -> str:
    return str((read_path(cluster, path).get("metadata") or {}).get("uid", ""))


def _node_for(nodes: Mapping[str, set[int]], ordinal: int) -> str | None:
    """The node (of those the test cordoned or failed) last noted for this ordinal's pod."""
    found = [n for n, ordinals in nodes.items() if ordinal in ordinals]
    return found[-1] if found else None


__all__ = ["StatefulSetHandle"]
