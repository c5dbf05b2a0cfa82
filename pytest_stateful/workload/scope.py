"""The namespace rule: the plugin only writes inside its test's namespace.

Whether a kind is namespaced is asked of the API server's discovery (not a list
kept by hand, which missed ValidatingAdmissionPolicy, VolumeAttributesClass,
PriorityLevelConfiguration ...); every `*List` is expanded first, so a
ConfigMapList aimed at `default` or a NamespaceList cannot slip through. Every
object is checked before the first one is applied, and every refusal is named
at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pytest_stateful.cluster.discovery import Discovery
from pytest_stateful.errors import ManifestError

# Why an object is refused: the plugin only writes inside the namespace it created.
NAMESPACED_ONLY_HINT = "the plugin only writes inside the test namespace"


def expand_lists(docs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Objects with every `List` and `<Kind>List` replaced by its items (nested lists too)."""
    out: list[dict[str, Any]] = []
    for doc in docs:
        kind = str(doc.get("kind", ""))
        if kind.endswith("List") and isinstance(doc.get("items"), list):
            out += expand_lists(item for item in doc["items"] if isinstance(item, dict))
        else:
            out.append(doc)
    return out


def place(
    docs: Iterable[dict[str, Any]],
    namespace: str,
    discovery: Discovery,
    cluster_scoped: bool = False,
    hint: str = NAMESPACED_ONLY_HINT,
) -> list[dict[str, Any]]:
    """The objects with their namespace set; ManifestError naming every object the rule refuses.
    With `cluster_scoped`, cluster-scoped objects pass as they are (workload/cluster_scoped.py:
    a chart that asked for them), Namespaces excepted: a test never makes or changes one."""
    objects = expand_lists(docs)
    refused: list[str] = []
    for doc in objects:
        kind, api_version = str(doc.get("kind", "")), str(doc.get("apiVersion", ""))
        meta = doc.setdefault("metadata", {})
        if not isinstance(meta, dict):
            refused.append(f"{kind}: metadata must be a mapping")
            continue
        name = f"{kind} {meta.get('name')}"
        scoped = discovery.namespaced(api_version, kind)
        if scoped is None:
            refused.append(f"{name}: the cluster does not serve {kind} in {api_version}")
        elif kind == "Namespace":
            refused.append(f"{name} is never applied: {NAMESPACED_ONLY_HINT}, which the plugin makes itself")
        elif not scoped and not cluster_scoped:
            refused.append(f"{name} is cluster-scoped and is not applied: {hint}")
        elif not scoped:
            continue
        elif meta.get("namespace") and meta["namespace"] != namespace:
            refused.append(
                f"{name} asks for namespace {meta['namespace']!r}: {NAMESPACED_ONLY_HINT} ({namespace}); "
                "remove metadata.namespace"
            )
        else:
            meta["namespace"] = namespace
    if refused:
        head = refused[0] if len(refused) == 1 else f"{len(refused)} objects are refused, nothing was applied"
        raise ManifestError(head if len(refused) == 1 else head + ":\n  " + "\n  ".join(refused))
    return objects
