"""Manifests as plain object dicts: loading, the namespace rule, image mapping, the StatefulSets they hold."""

from __future__ import annotations

import copy
import json
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from pytest_stateful.errors import ManifestError

Manifest = str | Path | Mapping[str, Any]

# Why an object is refused: the plugin only writes inside the namespace it created.
NAMESPACED_ONLY_HINT = "the plugin only writes inside the test namespace"

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


def load_manifests(manifests: Iterable[Manifest]) -> list[dict[str, Any]]:
    """Paths, YAML text or dicts -> a flat list of object dicts (empty documents dropped)."""
    docs: list[dict[str, Any]] = []
    for item in manifests:
        if isinstance(item, Mapping):
            # A copy: applying sets the namespace (and maybe images); the caller's dict stays as it was.
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


def statefulsets_in(docs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The names of the StatefulSets among these object dicts, in order."""
    return [str((d.get("metadata") or {}).get("name", "")) for d in docs if d.get("kind") == "StatefulSet"]


def place_in_namespace(docs: Iterable[dict[str, Any]], namespace: str) -> None:
    """Set every object's namespace, refusing what would land outside it."""
    for doc in docs:
        kind, meta = doc["kind"], doc.setdefault("metadata", {})
        if kind in CLUSTER_SCOPED:
            raise ManifestError(
                f"{kind} {meta.get('name')} is cluster-scoped and is not applied: {NAMESPACED_ONLY_HINT}"
            )
        ns = meta.get("namespace")
        if ns and ns != namespace:
            raise ManifestError(
                f"{kind} {meta.get('name')} asks for namespace {ns!r}: {NAMESPACED_ONLY_HINT} "
                f"({namespace}); remove metadata.namespace"
            )
        meta["namespace"] = namespace


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


def render_chart(chart: Mapping[str, Any], namespace: str, helm: str | None) -> list[dict[str, Any]]:
    """`helm template` the chart into plain objects for the test namespace."""
    if helm is None:
        raise ManifestError("chart: helm was not found: run `pytest-stateful cluster build` or put helm on PATH")
    release = chart.get("release") or Path(chart["path"]).name
    with tempfile.TemporaryDirectory(prefix="pytest-stateful-helm-") as tmp:
        args = [helm, "template", release, chart["path"], "--namespace", namespace]
        for values_file in chart.get("values_files", []):
            args += ["--values", values_file]
        if chart.get("values"):
            inline = Path(tmp) / "values.yaml"
            inline.write_text(json.dumps(chart["values"]))
            args += ["--values", str(inline)]
        env = {
            "HOME": tmp,
            "HELM_CACHE_HOME": tmp,
            "HELM_CONFIG_HOME": tmp,
            "HELM_DATA_HOME": tmp,
            "PATH": "/usr/bin:/bin",
        }
        proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    if proc.returncode != 0:
        raise ManifestError(f"helm template {chart['path']} failed: {proc.stderr.strip()}")
    return [d for d in yaml.safe_load_all(proc.stdout) if isinstance(d, dict)]
