"""Manifests as plain object dicts: loading, the namespace rule, image mapping, the StatefulSets they hold."""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_stateful import yaml_input
from pytest_stateful.errors import ManifestError, SpecError

Manifest = str | Path | Mapping[str, Any]


def load_manifests(manifests: Iterable[Manifest]) -> list[dict[str, Any]]:
    """Paths, YAML text or dicts -> a flat list of object dicts (empty documents dropped).

    Files and text are read within MANIFEST_LIMITS (yaml_input.py) and every object is checked
    for the shape the plugin reads (kind, apiVersion, metadata, the pod template), so a bad one is
    refused here with its file and line, not deep inside applying it.
    """
    docs: list[dict[str, Any]] = []
    for n, item in enumerate(manifests, 1):
        if isinstance(item, Mapping):
            # A copy: applying sets the namespace (and maybe images); the caller's dict stays as it was.
            doc = copy.deepcopy(dict(item))
            where = f"manifest {n} (a mapping)"
            with _as_manifest_error(where):
                docs += _objects(doc, {}, (), Path(where), 0)
            continue
        source = str(item)
        if isinstance(item, Path) or ("\n" not in source and source.endswith((".yaml", ".yml", ".json"))):
            path = Path(item)
            if not path.is_file():
                raise ManifestError(f"manifest {path}: no such file")
            with _as_manifest_error(str(path)):
                docs += manifest_objects(path)
        else:
            with _as_manifest_error("inline YAML"):
                docs += _document_objects(_documents(source, Path("inline YAML")), Path("inline YAML"))
    return docs


def manifest_objects(path: Path) -> list[dict[str, Any]]:
    """The objects of one manifest file (a List's items in its place), each checked for shape.

    Raises SpecError at the offending line of that file: the spec loader reports it as it is,
    load_manifests rewords it as a ManifestError.
    """
    return _document_objects(yaml_input.load(path, yaml_input.MANIFEST_LIMITS), path)


def _documents(text: str, source: Path) -> list[Any]:
    documents: list[Any] = yaml_input.documents(text, source, yaml_input.MANIFEST_LIMITS)
    return documents


def _document_objects(documents: Sequence[Any], path: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for document in documents:
        out += _objects(document.data, document.lines, (), path, document.line)
    return out


@contextlib.contextmanager
def _as_manifest_error(where: str) -> Iterator[None]:
    """A SpecError about a manifest, as the ManifestError that load_manifests raises."""
    try:
        yield
    except SpecError as exc:
        message = exc.message
        # These two keep the wording they always had ("FILE: not valid YAML", tests hold it) and
        # take the line inside; every other message leads with FILE:LINE.
        for kept in ("not valid YAML", "every document needs apiVersion and kind"):
            if message.startswith(kept) and exc.line:
                raise ManifestError(f"{where}: {kept} (line {exc.line}){message.removeprefix(kept)}") from None
        raise ManifestError(f"{where}:{exc.line}: {message}" if exc.line else f"{where}: {message}") from None


# Where the plugin reads into an object: each of these must be a mapping when present.
_MAPPINGS: tuple[tuple[str, ...], ...] = (
    ("metadata",),
    ("metadata", "labels"),
    ("metadata", "annotations"),
    ("spec",),
    ("spec", "template"),
    ("spec", "template", "metadata"),
    ("spec", "template", "spec"),
)
_STRINGS: tuple[tuple[str, ...], ...] = (("metadata", "name"), ("metadata", "namespace"))


def _objects(
    doc: Any, lines: Mapping[Any, int], where: tuple[str | int, ...], path: Path, line: int
) -> list[dict[str, Any]]:
    """`doc` as the objects it holds, or SpecError at the first thing the plugin could not read."""
    fail, place = yaml_input.fail, yaml_input.place

    def at(*keys: str | int) -> int:
        full = (*where, *keys)
        while full and full not in lines:
            full = full[:-1]
        return lines.get(full, line) if full else line

    if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
        subject = place(where) if where else "this document"
        if not isinstance(doc, dict):
            problem = f"{subject} is {_shown(doc)}, not a mapping; write it as one"
        else:
            missing = " and ".join(k for k in ("apiVersion", "kind") if k not in doc)
            problem = f"{subject} has no {missing}; add {'them' if ' and ' in missing else 'it'}"
        fail(path, at(), f"every document needs apiVersion and kind: {problem}")
    for key in ("apiVersion", "kind"):
        if not isinstance(doc[key], str) or not doc[key]:
            fail(path, at(key), f"{place((*where, key))} must be a non-empty string, got {_shown(doc[key])}")
    if doc["kind"] == "List":
        items = doc.get("items") or []
        if not isinstance(items, list):
            fail(
                path,
                at("items"),
                f"{place((*where, 'items'))} of a List must be a list of objects, got {_shown(items)}",
            )
        out: list[dict[str, Any]] = []
        for i, item in enumerate(items):
            out += _objects(item, lines, (*where, "items", i), path, at("items", i))
        return out
    for keys in _MAPPINGS:
        value = _get(doc, keys)
        if value is not _ABSENT and not isinstance(value, dict):
            fail(
                path,
                at(*keys),
                f"{place((*where, *keys))} must be a mapping, got {_shown(value)}: fix its indentation or value",
            )
    for keys in _STRINGS:
        value = _get(doc, keys)
        if value is not _ABSENT and not isinstance(value, str):
            fail(path, at(*keys), f"{place((*where, *keys))} must be a string, got {_shown(value)}: quote it")
    if doc["kind"] == "StatefulSet" and _get(doc, ("metadata", "name")) in (_ABSENT, ""):
        fail(path, at("metadata"), f"{place(where)}: the StatefulSet has no metadata.name: name it")
    pod_spec = doc.get("spec") if doc["kind"] == "Pod" else _get(doc, ("spec", "template", "spec"))
    if isinstance(pod_spec, dict):
        base = ("spec",) if doc["kind"] == "Pod" else ("spec", "template", "spec")
        for key in ("initContainers", "containers"):
            containers = pod_spec.get(key)
            if containers is None:
                continue
            if not isinstance(containers, list) or not all(isinstance(c, dict) for c in containers):
                fail(
                    path,
                    at(*base, key),
                    f"{place((*where, *base, key))} must be a list of containers (mappings), got {_shown(containers)}",
                )
    return [doc]


_ABSENT = object()


def _get(doc: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    value: Any = doc
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return _ABSENT
        value = value[key]
    return value


def _shown(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "nothing (null)"
    return f"{type(value).__name__} {json.dumps(value, default=repr)[:60]}"


def statefulsets_in(docs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The names of the StatefulSets among these object dicts, in order."""
    return [str((d.get("metadata") or {}).get("name", "")) for d in docs if d.get("kind") == "StatefulSet"]


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
        """Every container image of the object's pod spec (a Pod, a workload's template, a CronJob's
        job template); anything not shaped like one is left alone."""
        pod_spec = _pod_spec(doc)
        for key in ("initContainers", "containers"):
            containers = pod_spec.get(key)
            for container in containers if isinstance(containers, list) else []:
                if isinstance(container, dict) and container.get("image"):
                    container["image"] = self(str(container["image"]))
                    container["imagePullPolicy"] = "IfNotPresent"


def _pod_spec(doc: Mapping[str, Any]) -> dict[str, Any]:
    def at(node: Any, *keys: str) -> Any:
        for key in keys:
            node = node.get(key) if isinstance(node, Mapping) else None
        return node

    kind = doc.get("kind")
    found = (
        at(doc, "spec")
        if kind == "Pod"
        else at(doc, "spec", "jobTemplate", "spec", "template", "spec")
        if kind == "CronJob"
        else at(doc, "spec", "template", "spec")
    )
    return found if isinstance(found, dict) else {}
