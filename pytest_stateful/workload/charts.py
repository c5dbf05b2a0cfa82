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


@dataclass(frozen=True)
class ChartSource:
    """A chart and the values it is installed (or upgraded) with."""

    path: str
    release: str
    values: Mapping[str, Any] = field(default_factory=dict)
    values_files: Sequence[str] = ()

    @classmethod
    def of(cls, chart: Mapping[str, Any]) -> ChartSource:
        return cls(
            str(chart["path"]),
            str(chart.get("release") or Path(str(chart["path"])).name),
            dict(chart.get("values") or {}),
            tuple(str(f) for f in chart.get("values_files") or ()),
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
        """The objects the chart renders for this cluster's version and API versions."""
        args = ["template", source.release, source.path, "--namespace", self.namespace, *self._capabilities()]
        with self._values(source, values) as value_args:
            out = self._run([*args, *value_args], f"helm template {source.path}", ManifestError)
        return [d for d in yaml.safe_load_all(out) if isinstance(d, dict)]

    def computed(self, source: ChartSource) -> dict[str, Any]:
        """The values a render of `source` uses: the chart's defaults, its values files, its values."""
        values = yaml.safe_load(
            self._run(["show", "values", source.path], f"helm show values {source.path}", StepError)
        )
        merged = dict(values or {})
        for values_file in source.values_files:
            merged = merge(merged, yaml.safe_load(Path(values_file).read_text()) or {})
        return merge(merged, source.values)

    def _capabilities(self) -> list[str]:
        if not hasattr(self, "_caps"):
            version = call("read the cluster's version", client.VersionApi(self.cluster.api).get_code, retry=True)
            groups = call("list API groups", client.ApisApi(self.cluster.api).get_api_versions, retry=True)
            versions = ["v1", *(v.group_version for g in groups.groups or [] for v in g.versions or [])]
            self._caps = ["--kube-version", str(version.git_version), "--api-versions", ",".join(versions)]
        return self._caps

    # -- release actions --------------------------------------------------------------------

    def install(self, source: ChartSource) -> None:
        args = ["install", source.release, source.path, *self._cluster_args(), *self._post_renderer()]
        with self._values(source) as value_args:
            self._run([*args, *value_args], f"helm install {source.release}", ManifestError)

    def upgrade(self, source: ChartSource, reuse_values: bool) -> None:
        args = ["upgrade", source.release, source.path, *self._cluster_args(), *self._post_renderer()]
        if reuse_values:
            args.append("--reuse-values")
        with self._values(source) as value_args:
            self._run([*args, *value_args], f"helm upgrade {source.release}", StepError)

    def rollback(self, release: str, revision: int | None) -> None:
        args = ["rollback", release, *([str(revision)] if revision else []), *self._cluster_args()]
        self._run(args, f"helm rollback {release}", StepError)

    def values(self, release: str, revision: int | None = None) -> dict[str, Any]:
        """The computed values (chart defaults and overrides) of a release revision."""
        args = ["get", "values", release, "--all", "--output", "json", *self._cluster_args()]
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

    def _post_renderer(self) -> list[str]:
        if not self.post_render:
            return []
        self._post_file = Path(tempfile.mkstemp(prefix="pytest-stateful-postrender-", suffix=".json")[1])
        self._post_file.write_text(json.dumps(self.post_render))
        args = ["--post-renderer", sys.executable]
        for arg in ("-m", "pytest_stateful.workload.charts", str(self._post_file)):
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

    def _run(self, args: list[str], doing: str, error: type[Exception]) -> str:
        with tempfile.TemporaryDirectory(prefix="pytest-stateful-helm-") as home:
            env = {
                "HOME": home,
                "HELM_CACHE_HOME": home,
                "HELM_CONFIG_HOME": home,
                "HELM_DATA_HOME": home,
                "PATH": "/usr/bin:/bin",
            }
            try:
                proc = subprocess.run(
                    [self.binary, *args], capture_output=True, text=True, env=env, timeout=HELM_TIMEOUT
                )
            except subprocess.TimeoutExpired:
                raise error(f"{doing} did not finish within {HELM_TIMEOUT:.0f} s") from None
        if proc.returncode != 0:
            raise error(f"{doing} failed: {_helm_message(proc.stderr)}")
        if self.post_render and hasattr(self, "_post_file"):
            # The post-renderer keeps the image tags it handed out for the next render.
            self.post_render = json.loads(self._post_file.read_text())
        return proc.stdout


def _helm_message(stderr: str) -> str:
    """Helm's error without its generic hints ("Use --debug flag ...")."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and "--debug" not in ln]
    return "; ".join(ln.removeprefix("Error: ") for ln in lines) or "no output"


# -- forbidden updates ------------------------------------------------------------------------


def forbidden_changes(live: Mapping[str, Any], rendered: Mapping[str, Any]) -> list[ForbiddenChange]:
    """Fields of the StatefulSet's spec the API server would refuse to change from `live` to `rendered`.

    Only what the chart writes is compared (the live object also holds the API server's defaults);
    a list that grows or shrinks is a change of the list."""
    changes: list[ForbiddenChange] = []
    live_spec, new_spec = live.get("spec") or {}, rendered.get("spec") or {}
    for key in new_spec:
        if key in MUTABLE_SPEC:
            continue
        changes += _diff(f"spec.{key}", live_spec.get(key), new_spec[key])
    return changes


def _diff(path: str, old: Any, new: Any) -> list[ForbiddenChange]:
    if isinstance(new, Mapping) and isinstance(old, Mapping):
        found: list[ForbiddenChange] = []
        for key, value in new.items():
            if path.endswith(".metadata") and key in ("creationTimestamp",):
                continue
            found += _diff(f"{path}.{key}", old.get(key), value)
        return found
    if isinstance(new, list) and isinstance(old, list):
        if len(new) != len(old):
            return [ForbiddenChange(path, old, new)]
        found = []
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            found += _diff(f"{path}[{i}]", a, b)
        return found
    if new is None or _same(old, new):
        return []
    return [ForbiddenChange(path, old, new)]


def _same(old: Any, new: Any) -> bool:
    if old == new:
        return True
    # Quantities: the API server keeps what was sent ("1Gi"), but a chart may write 1024Mi for it.
    return str(old) == str(new)


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Values as helm merges them: mappings key by key, anything else (lists too) replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of the values that differ between two computed value sets."""
    keys: list[str] = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        path = f"{prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            keys += changed_keys(a, b, path + ".")
        elif a != b:
            keys.append(path)
    return keys


def with_key(values: Mapping[str, Any], dotted: str, source: Mapping[str, Any]) -> dict[str, Any]:
    """`values` with the key at `dotted` taken from `source` (removed when `source` lacks it)."""
    out = copy.deepcopy(dict(values))
    parts = dotted.split(".")
    node: dict[str, Any] = out
    origin: Any = source
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        origin = origin.get(part, {}) if isinstance(origin, Mapping) else {}
    if isinstance(origin, Mapping) and parts[-1] in origin:
        node[parts[-1]] = copy.deepcopy(origin[parts[-1]])
    else:
        node.pop(parts[-1], None)
    return out


def dry_run_replace(
    cluster: ClusterHandle, namespace: str, live: Mapping[str, Any], rendered: Mapping[str, Any]
) -> str:
    """The API server's own answer to the update, from a server-side dry run (nothing is changed)."""
    body = copy.deepcopy(dict(rendered))
    meta = body.setdefault("metadata", {})
    meta["namespace"] = namespace
    meta["resourceVersion"] = (live.get("metadata") or {}).get("resourceVersion")
    name = str(meta.get("name"))
    try:
        cluster.apps.replace_namespaced_stateful_set(name, namespace, body, dry_run="All")
    except CLIENT_FAILURES as exc:
        return api_error(exc, f"update StatefulSet {name}").message
    return "the API server accepted the update in a dry run"


def statefulset_of(docs: Sequence[Mapping[str, Any]], name: str) -> Mapping[str, Any] | None:
    return next(
        (d for d in docs if d.get("kind") == "StatefulSet" and (d.get("metadata") or {}).get("name") == name), None
    )


# -- the post-renderer --------------------------------------------------------------------------


def post_render(config: dict[str, Any], manifests: str) -> str:
    """What helm gets back from the post-renderer: every object with the plugin's changes."""
    from pytest_stateful.workload.manifests import ImageMap

    docs = [d for d in yaml.safe_load_all(manifests) if isinstance(d, dict)]
    images = None
    if config.get("image_repository"):
        images = ImageMap(str(config["image_repository"]))
        images.tags.update(config.get("image_tags") or {})
    for doc in docs:
        if images is not None:
            images.rewrite(doc)
        labels = config.get("labels") or {}
        if labels:
            meta = doc.setdefault("metadata", {})
            meta["labels"] = {**(meta.get("labels") or {}), **labels}
    if images is not None:
        config["image_tags"] = dict(images.tags)
    return yaml.safe_dump_all(docs, sort_keys=False)


def main(argv: Sequence[str]) -> int:
    path = Path(argv[0])
    config = json.loads(path.read_text())
    sys.stdout.write(post_render(config, sys.stdin.read()))
    path.write_text(json.dumps(config))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
