"""load_manifests: paths, YAML text and dicts, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_stateful.errors import ManifestError
from pytest_stateful.workload.manifests import ImageMap, load_manifests


def test_manifest_dicts_are_not_changed_by_loading() -> None:
    original = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    loaded = load_manifests([original])
    loaded[0]["metadata"]["namespace"] = "somewhere"
    assert original == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}


def test_paths_text_and_lists_are_flattened(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\n"
        "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: b}}\n"
    )
    text = "apiVersion: v1\nkind: Service\nmetadata: {name: c}\n"
    assert [d["metadata"]["name"] for d in load_manifests([path, text])] == ["a", "b", "c"]


def test_missing_file_and_bad_yaml_name_the_source(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"manifest .*nope.yaml: no such file"):
        load_manifests([tmp_path / "nope.yaml"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: [\n")
    with pytest.raises(ManifestError, match=r"bad.yaml: not valid YAML"):
        load_manifests([bad])
    bad.write_text("just: a mapping\n")
    with pytest.raises(ManifestError, match=r"bad.yaml: every document needs apiVersion and kind"):
        load_manifests([bad])


def test_image_map_gives_each_distinct_image_its_own_tag() -> None:
    images = ImageMap("pytest-stateful.local/tools")
    sts = {
        "kind": "StatefulSet",
        "spec": {
            "template": {
                "spec": {
                    "initContainers": [{"name": "init", "image": "busybox"}],
                    "containers": [{"name": "app", "image": "nginx:1.9.1"}, {"name": "side", "image": "busybox"}],
                }
            }
        },
    }
    images.rewrite(sts)
    pod_spec = sts["spec"]["template"]["spec"]
    assert [c["image"] for c in pod_spec["initContainers"] + pod_spec["containers"]] == [
        "pytest-stateful.local/tools:1",
        "pytest-stateful.local/tools:2",
        "pytest-stateful.local/tools:1",
    ]
    assert images("nginx:1.10") == "pytest-stateful.local/tools:3"
    assert images("pytest-stateful.local/tools:2") == "pytest-stateful.local/tools:2"
