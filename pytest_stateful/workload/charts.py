"""Charts the way a chart's users get them: `helm install`, `helm upgrade`, `helm rollback`.

The release lives in the test namespace with its history, so an upgrade is helm's real three-way
merge. Every render is made for the cluster's own version and API versions (helm template would
otherwise render for Kubernetes v1.20 and drop what newer versions have). Before an upgrade or a
rollback is sent, the StatefulSet it would write is compared with the live one: a change to a field
the API server refuses to update fails the step naming the field, the values behind it and the
remedy, with the API server's own answer from a server-side dry run.

A post-renderer (this module run as a program) applies what the plugin changes in every object it
creates: `--stateful-image` and, in a shared namespace, the run's labels.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.utils import parse_quantity

from pytest_stateful.cluster.api import CLIENT_FAILURES, call
from pytest_stateful.cluster.handle import ClusterHandle
from pytest_stateful.errors import ManifestError, StepError, api_error

# What ValidateStatefulSetUpdate (pkg/apis/apps/validation) lets an update change; every other
# field of a StatefulSet's spec is refused ("updates to statefulset spec for fields other than ...
# are forbidden").
MUTABLE_SPEC = (
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
)
HELM_TIMEOUT = 300.0
# Where the post-renderer's arguments go in a helm command line (made per run, in its own directory).
POST_RENDER = "<post-renderer>"


@dataclass(frozen=True)
class ChartSource:
    """A chart and the values it is installed (or upgraded) with."""

    path: str
    release: str
    values: Mapping[str, Any] = field(default_factory=dict)
    values_files: Sequence[str] = ()
    # The chart may create cluster-scoped objects (workload/cluster_scoped.py).
    cluster_scoped: bool = False

    @classmethod
    def of(cls, chart: Mapping[str, Any]) -> ChartSource:
        return cls(
            str(chart["path"]),
            str(chart.get("release") or Path(str(chart["path"])).name),
            dict(chart.get("values") or {}),
            tuple(str(f) for f in chart.get("values_files") or ()),
            bool(chart.get("cluster_scoped", False)),
        )


@dataclass(frozen=True)
class ForbiddenChange:
    path: str
    old: Any
    new: Any


class Helm:
    """The helm program against the test's cluster and namespace."""

    def __init__(self, cluster: ClusterHandle, namespace: str, post_render: Mapping[str, Any] | None = None) -> None:
        if cluster.helm is None:
            raise ManifestError("chart: helm was not found: run `pytest-stateful cluster build` or put helm on PATH")
        self.binary = cluster.helm
        self.cluster = cluster
        self.namespace = namespace
        # What the post-renderer applies: {"image_repository", "image_tags", "labels"}.
        self.post_render = dict(post_render or {})

    # -- rendering --------------------------------------------------------------------------

    def template(self, source: ChartSource, values: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """The objects the chart renders for this cluster's version and API versions, its CRDs
        included (helm install creates them; they are cluster-scoped)."""
        args = [
            "template",
            source.release,
            source.path,
            "--namespace",
            self.namespace,
            "--include-crds",
            *self._capabilities(),
        ]
        with self._values(source, values) as value_args:
            out = self._run([*args, *value_args], f"helm template {source.path}", ManifestError)
        return [d for d in yaml.safe_load_all(out) if isinstance(d, dict)]

    def preview(self, source: ChartSource, reuse_values: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """What `helm upgrade` would send, by helm itself (a server-side dry run: the cluster's real
        capabilities, an upgrade's render, helm's own value rules): the objects, and the release's
        user-supplied values."""
        args = ["upgrade", source.release, source.path, *self._cluster_args(), "--dry-run=server", "--output", "json"]
        if reuse_values:
            args.append("--reuse-values")
        with self._values(source) as value_args:
            out = self._run([*args, *value_args], f"helm upgrade {source.release} (dry run)", StepError)
        try:
            release = json.loads(out)
            # Hooks too: an upgrade can add a cluster-scoped object (or one aimed elsewhere) as a hook.
            texts = [
                str(release.get("manifest") or ""),
                *(str(h.get("manifest") or "") for h in release.get("hooks") or []),
            ]
            docs = [d for text in texts for d in yaml.safe_load_all(text) if isinstance(d, dict)]
        except (ValueError, yaml.YAMLError, AttributeError) as exc:
            raise StepError(f"helm upgrade {source.release} (dry run) printed what is not a release: {exc}") from None
        return docs, dict(release.get("config") or {})

    def _capabilities(self) -> list[str]:
        """--kube-version and --api-versions as helm install finds them: every group/version the
        cluster serves, and every group/version/Kind (charts test `.Capabilities.APIVersions.Has` both ways)."""
        if not hasattr(self, "_caps"):
            # The version the cluster handle read when it connected; asked again only if it could not.
            version = (
                self.cluster.kubernetes
                if self.cluster.kubernetes.startswith("v")
                else str(
                    call(
                        "read the cluster's version", client.VersionApi(self.cluster.api).get_code, retry=True
                    ).git_version
                )
            )
            groups = call("list API groups", client.ApisApi(self.cluster.api).get_api_versions, retry=True)
            versions = ["v1", *(v.group_version for g in groups.groups or [] for v in g.versions or [])]
            kinds = [f"{gv}/{kind}" for gv in versions for kind in self.cluster.discovery.kinds(gv)]
            self._caps = ["--kube-version", version, "--api-versions", ",".join([*versions, *kinds])]
        return self._caps

    # -- release actions --------------------------------------------------------------------

    def install(self, source: ChartSource) -> None:
        args = ["install", source.release, source.path, *self._cluster_args(), POST_RENDER]
        with self._values(source) as value_args:
            self._run([*args, *value_args], f"helm install {source.release}", ManifestError)

    def upgrade(self, source: ChartSource, reuse_values: bool) -> None:
        args = ["upgrade", source.release, source.path, *self._cluster_args(), POST_RENDER]
        if reuse_values:
            args.append("--reuse-values")
        with self._values(source) as value_args:
            self._run([*args, *value_args], f"helm upgrade {source.release}", StepError)

    def rollback(self, release: str, revision: int | None) -> None:
        args = ["rollback", release, *([str(revision)] if revision else []), *self._cluster_args()]
        self._run(args, f"helm rollback {release}", StepError)

    def test(self, release: str, timeout: float) -> str:
        """`helm test` with the tests' logs; helm's output, or StepError with helm's reason and the logs."""
        args = ["test", release, "--logs", "--timeout", f"{max(1, int(timeout))}s", *self._cluster_args()]
        return self._run(args, f"helm test {release}", StepError, with_output=True)

    def hooks(self, release: str, revision: int | None = None) -> list[dict[str, Any]]:
        args = ["get", "hooks", release, *self._cluster_args()]
        if revision:
            args += ["--revision", str(revision)]
        return [d for d in yaml.safe_load_all(self._run(args, f"helm get hooks {release}", StepError)) if d]

    def values(self, release: str, revision: int | None = None) -> dict[str, Any]:
        """The user-supplied values of a release revision (what --values and --set gave, not defaults)."""
        args = ["get", "values", release, "--output", "json", *self._cluster_args()]
        if revision:
            args += ["--revision", str(revision)]
        loaded = json.loads(self._run(args, f"helm get values {release}", StepError) or "{}")
        return dict(loaded or {})

    def manifest(self, release: str, revision: int | None = None) -> list[dict[str, Any]]:
        args = ["get", "manifest", release, *self._cluster_args()]
        if revision:
            args += ["--revision", str(revision)]
        return [d for d in yaml.safe_load_all(self._run(args, f"helm get manifest {release}", StepError)) if d]

    def revision(self, release: str) -> int:
        args = ["history", release, "--max", "1", "--output", "json", *self._cluster_args()]
        history = json.loads(self._run(args, f"helm history {release}", StepError))
        return int(history[-1]["revision"]) if history else 0

    # -- plumbing ---------------------------------------------------------------------------

    def _cluster_args(self) -> list[str]:
        return [
            "--namespace",
            self.namespace,
            "--kubeconfig",
            str(self.cluster.kubeconfig),
            "--kube-context",
            self.cluster.context,
        ]

    def _post_renderer(self, directory: Path) -> list[str]:
        if not self.post_render:
            return []
        config = directory / "post-render.json"
        config.write_text(json.dumps(self.post_render))
        args = ["--post-renderer", sys.executable]
        for arg in ("-m", "pytest_stateful.workload.charts", str(config)):
            args += ["--post-renderer-args", arg]
        return args

    @contextmanager
    def _values(self, source: ChartSource, values: Mapping[str, Any] | None = None) -> Iterator[list[str]]:
        with tempfile.TemporaryDirectory(prefix="pytest-stateful-values-") as tmp:
            args: list[str] = []
            for values_file in source.values_files:
                args += ["--values", values_file]
            inline = source.values if values is None else values
            if inline:
                path = Path(tmp) / "values.json"
                path.write_text(json.dumps(inline))
                args += ["--values", str(path)]
            yield args

    def _run(self, args: list[str], doing: str, error: type[Exception], with_output: bool = False) -> str:
        """Run helm with its own empty config, cache and data directories (removed afterwards), in this
        process's environment otherwise: kubeconfig exec plugins and proxies keep working."""
        with tempfile.TemporaryDirectory(prefix="pytest-stateful-helm-") as home:
            here = Path(home)
            env = {**os.environ, "HELM_CACHE_HOME": home, "HELM_CONFIG_HOME": home, "HELM_DATA_HOME": home}
            if POST_RENDER in args:
                at = args.index(POST_RENDER)
                args = [*args[:at], *self._post_renderer(here), *args[at + 1 :]]
            try:
                proc = subprocess.run(
                    [self.binary, *args], capture_output=True, text=True, env=env, timeout=HELM_TIMEOUT
                )
            except subprocess.TimeoutExpired:
                raise error(f"{doing} did not finish within {HELM_TIMEOUT:.0f} s") from None
            config = here / "post-render.json"
            if config.is_file():
                # The post-renderer keeps the image tags it handed out, for the next render.
                self.post_render = json.loads(config.read_text())
        if proc.returncode != 0:
            # `helm test --logs` prints the failing test's logs on stdout: they are the reason.
            said = f"\n{proc.stdout.strip()}" if with_output and proc.stdout.strip() else ""
            raise error(f"{doing} failed: {_helm_message(proc.stderr)}{said}")
        return proc.stdout


def _helm_message(stderr: str) -> str:
    """Helm's error without its generic hints ("Use --debug flag ...")."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and "--debug" not in ln]
    return "; ".join(ln.removeprefix("Error: ") for ln in lines) or "no output"


# -- forbidden updates ------------------------------------------------------------------------


def forbidden_changes(live: Mapping[str, Any], rendered: Mapping[str, Any]) -> list[ForbiddenChange]:
    """Fields of the StatefulSet's spec outside what an update may change that differ between `live`
    and `rendered`: what names the field once the API server has refused (its dry run decides).

    Changed values first, then what the chart no longer writes (the live object also holds the API
    server's defaults, so a field only the live object has is a removal only when nothing renders it).
    Quantities compare by value (1024Mi is 1Gi); absent, null, "", [] and {} are the same."""
    live_spec, new_spec = live.get("spec") or {}, rendered.get("spec") or {}
    changed: list[ForbiddenChange] = []
    removed: list[ForbiddenChange] = []
    for key in sorted(set(live_spec) | set(new_spec), key=str):
        if key in MUTABLE_SPEC or key == "status":
            continue
        _diff(f"spec.{key}", live_spec.get(key), new_spec.get(key), changed, removed)
    return changed + removed


def _diff(path: str, old: Any, new: Any, changed: list[ForbiddenChange], removed: list[ForbiddenChange]) -> None:
    if _empty(new):
        if not _empty(old) and not path.endswith((".status", ".metadata.creationTimestamp")):
            removed.append(ForbiddenChange(path, old, None))
        return
    if isinstance(new, Mapping) and isinstance(old, Mapping):
        for key, value in new.items():
            if key == "status" or (path.endswith(".metadata") and key == "creationTimestamp"):
                continue
            _diff(f"{path}.{key}", old.get(key), value, changed, [])
        return
    if isinstance(new, list) and isinstance(old, list):
        if len(new) != len(old):
            changed.append(ForbiddenChange(path, old, new))
            return
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            _diff(f"{path}[{i}]", a, b, changed, removed)
        return
    if not _same(old, new):
        changed.append(ForbiddenChange(path, old, new))


def _empty(value: Any) -> bool:
    return value is None or value in ("", [], {})


def _same(old: Any, new: Any) -> bool:
    if old == new or str(old) == str(new):
        return True
    # Quantities: the API server keeps a canonical form ("1Gi"), a chart may write "1024Mi".
    try:
        return bool(parse_quantity(old) == parse_quantity(new))
    except (ValueError, TypeError, ArithmeticError):
        return False


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Values as helm merges them: mappings key by key, anything else (lists too) replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def changed_paths(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """Paths (key tuples: a key may hold dots) of the values that differ between two value sets."""
    paths: list[tuple[str, ...]] = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            paths += [(str(key), *rest) for rest in changed_paths(a, b)]
        elif a != b:
            paths.append((str(key),))
    return paths


def with_path(values: Mapping[str, Any], path: Sequence[str], source: Mapping[str, Any]) -> dict[str, Any]:
    """`values` with the value at `path` taken from `source` (removed when `source` lacks it)."""
    out = copy.deepcopy(dict(values))
    node: dict[str, Any] = out
    origin: Any = source
    for part in path[:-1]:
        node = node.setdefault(part, {})
        origin = origin.get(part, {}) if isinstance(origin, Mapping) else {}
    if isinstance(origin, Mapping) and path[-1] in origin:
        node[path[-1]] = copy.deepcopy(origin[path[-1]])
    else:
        node.pop(path[-1], None)
    return out


def dry_run_replace(cluster: ClusterHandle, namespace: str, rendered: Mapping[str, Any]) -> tuple[str, bool]:
    """The API server's own answer to replacing the StatefulSet with `rendered`, from a server-side
    dry run (nothing is changed), and whether it refuses a field an update may not change."""
    body = copy.deepcopy(dict(rendered))
    meta = body.setdefault("metadata", {})
    meta["namespace"] = namespace
    meta.pop("resourceVersion", None)  # unconditional: status writes during a rollout must not conflict
    name = str(meta.get("name"))
    try:
        cluster.apps.replace_namespaced_stateful_set(name, namespace, body, dry_run="All")
    except CLIENT_FAILURES as exc:
        message = api_error(exc, f"update StatefulSet {name}").message
        return message, int(getattr(exc, "status", 0) or 0) == 422 and "Forbidden" in message
    return "the API server accepts the update (dry run)", False


def statefulset_of(docs: Sequence[Mapping[str, Any]], name: str) -> Mapping[str, Any] | None:
    return next(
        (d for d in docs if d.get("kind") == "StatefulSet" and (d.get("metadata") or {}).get("name") == name), None
    )


# -- the post-renderer --------------------------------------------------------------------------


def post_render(config: dict[str, Any], manifests: str) -> str:
    """What helm gets back from the post-renderer: every object (a List's items too) with the
    plugin's changes; documents that are not objects pass through untouched."""
    from pytest_stateful.workload.manifests import ImageMap

    docs = list(yaml.safe_load_all(manifests))
    images = None
    if config.get("image_repository"):
        images = ImageMap(str(config["image_repository"]))
        images.tags.update(config.get("image_tags") or {})
    labels = dict(config.get("labels") or {})
    # Cluster-scoped objects (by apiVersion/kind, from discovery) carry the owner and the test namespace.
    cluster_kinds = set(config.get("cluster_kinds") or ())
    cluster_labels = dict(config.get("cluster_labels") or {})
    for doc in _objects(docs):
        if images is not None:
            images.rewrite(doc)
        extra = cluster_labels if f"{doc.get('apiVersion')}/{doc.get('kind')}" in cluster_kinds else labels
        if extra:
            meta = doc.get("metadata")
            if not isinstance(meta, dict):
                meta = doc["metadata"] = {}
            existing = meta.get("labels")
            meta["labels"] = {**(existing if isinstance(existing, dict) else {}), **extra}
    if images is not None:
        config["image_tags"] = dict(images.tags)
    return yaml.safe_dump_all([d for d in docs if d is not None], sort_keys=False)


def _objects(docs: Sequence[Any]) -> Iterator[dict[str, Any]]:
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        items = doc.get("items")
        if str(doc.get("kind", "")).endswith("List") and isinstance(items, list):
            yield from _objects(items)
        else:
            yield doc


def main(argv: Sequence[str]) -> int:
    """helm's post-renderer: manifests on stdin, the changed manifests on stdout; one line on stderr
    (which helm shows) when they cannot be read."""
    try:
        path = Path(argv[0])
        config = json.loads(path.read_text())
        sys.stdout.write(post_render(config, sys.stdin.read()))
        path.write_text(json.dumps(config))
    except (OSError, ValueError, yaml.YAMLError, IndexError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        sys.stderr.write(f"pytest-stateful post-renderer: {type(exc).__name__}: {first}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
