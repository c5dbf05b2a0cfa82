"""Issue 14: what decides a chart upgrade before it is sent (pure functions of workload/charts.py)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

from pytest_stateful.errors import ManifestError
from pytest_stateful.workload.charts import (
    _helm_message,
    changed_paths,
    forbidden_changes,
    main,
    merge,
    post_render,
    with_path,
)
from pytest_stateful.workload.cluster_objects import ANNOTATION, NAMESPACE_LABEL, Global, listed
from pytest_stateful.workload.cluster_scoped import CLUSTER_SCOPED_HINT, cluster_scoped
from pytest_stateful.workload.scope import place

LIVE = {
    "metadata": {"name": "kv", "resourceVersion": "42"},
    "spec": {
        "replicas": 3,
        "serviceName": "kv-headless",
        "podManagementPolicy": "OrderedReady",
        "selector": {"matchLabels": {"app": "kv"}},
        "template": {"spec": {"containers": [{"name": "kv", "image": "kv:1.0"}]}},
        "volumeClaimTemplates": [
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "512Mi"}},
                    "volumeMode": "Filesystem",
                },
                "status": {"phase": "Pending"},
            }
        ],
    },
}


def rendered(**spec: object) -> dict[str, object]:
    base = {
        "replicas": 3,
        "serviceName": "kv-headless",
        "podManagementPolicy": "OrderedReady",
        "selector": {"matchLabels": {"app": "kv"}},
        "template": {"spec": {"containers": [{"name": "kv", "image": "kv:1.0"}]}},
        "volumeClaimTemplates": [
            {
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "512Mi"}}},
            }
        ],
    }
    return {"metadata": {"name": "kv"}, "spec": {**base, **spec}}


def test_what_an_update_may_change_is_not_a_forbidden_change() -> None:
    new = rendered(
        replicas=5,
        template={"spec": {"containers": [{"name": "kv", "image": "kv:1.1"}]}},
        updateStrategy={"type": "OnDelete"},
        minReadySeconds=10,
        persistentVolumeClaimRetentionPolicy={"whenScaled": "Delete"},
    )
    # The live object's defaults (volumeMode, status, apiVersion of the template) are not changes.
    assert forbidden_changes(LIVE, new) == []


def test_a_claim_size_change_is_named_by_its_field_path_with_old_and_new_values() -> None:
    new = rendered()
    new["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] = "2Gi"  # type: ignore[index]
    (change,) = forbidden_changes(LIVE, new)
    assert change.path == "spec.volumeClaimTemplates[0].spec.resources.requests.storage"
    assert (change.old, change.new) == ("512Mi", "2Gi")


def test_selector_service_name_policy_and_a_new_claim_template_are_forbidden() -> None:
    new = rendered(
        serviceName="kv",
        podManagementPolicy="Parallel",
        selector={"matchLabels": {"app": "kv", "tier": "db"}},
        volumeClaimTemplates=[*rendered()["spec"]["volumeClaimTemplates"], {"metadata": {"name": "logs"}}],  # type: ignore[index]
    )
    paths = [c.path for c in forbidden_changes(LIVE, new)]
    assert paths == [
        "spec.podManagementPolicy",
        "spec.selector.matchLabels.tier",
        "spec.serviceName",
        "spec.volumeClaimTemplates",
    ]


def test_changed_paths_and_setting_one_back() -> None:
    old = {"image": {"tag": "1.0", "repository": "kv"}, "persistence": {"size": "512Mi"}, "replicas": 3}
    new = {"image": {"tag": "1.1", "repository": "kv"}, "persistence": {"size": "2Gi"}, "replicas": 3, "extra": 1}
    assert changed_paths(old, new) == [("extra",), ("image", "tag"), ("persistence", "size")]
    back = with_path(new, ("persistence", "size"), old)
    assert back["persistence"] == {"size": "512Mi"} and back["image"]["tag"] == "1.1"
    assert "extra" not in with_path(new, ("extra",), old)
    assert new["persistence"] == {"size": "2Gi"}  # not changed in place
    # A key may hold dots (labels): it is one step of the path.
    labels_old = {"podLabels": {"app.kubernetes.io/part-of": "a"}}
    labels_new = {"podLabels": {"app.kubernetes.io/part-of": "b"}}
    (path,) = changed_paths(labels_old, labels_new)
    assert with_path(labels_new, path, labels_old) == labels_old


def test_what_the_api_server_keeps_the_same_is_not_a_change() -> None:
    # 1024Mi is stored as 1Gi; absent, null, "", [] and {} are the same to the API server's comparison.
    new = rendered()
    claim = new["spec"]["volumeClaimTemplates"][0]  # type: ignore[index]
    claim["spec"]["resources"]["requests"]["storage"] = "0.5Gi"
    claim["spec"]["volumeName"] = ""
    claim["metadata"]["labels"] = {}
    claim["metadata"]["creationTimestamp"] = None
    new["spec"]["selector"]["matchExpressions"] = []  # type: ignore[index]
    assert forbidden_changes(LIVE, new) == []


def test_a_forbidden_field_the_chart_no_longer_writes_is_named_as_removed() -> None:
    new = rendered()
    del new["spec"]["podManagementPolicy"]  # type: ignore[attr-defined]
    del new["spec"]["volumeClaimTemplates"]  # type: ignore[attr-defined]
    removed = {c.path: c.new for c in forbidden_changes(LIVE, new)}
    assert removed == {"spec.podManagementPolicy": None, "spec.volumeClaimTemplates": None}


def test_values_merge_as_helm_merges_them() -> None:
    assert merge({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"c": 3}, "l": [2]}) == {"a": {"b": 1, "c": 3}, "l": [2]}


def test_the_post_renderer_maps_images_consistently_and_adds_labels() -> None:
    manifests = yaml.safe_dump_all(
        [
            {"kind": "Service", "metadata": {"name": "kv"}},
            {
                "kind": "StatefulSet",
                "metadata": {"name": "kv", "labels": {"app": "kv"}},
                "spec": {"template": {"spec": {"containers": [{"name": "kv", "image": "kv:1.1"}]}}},
            },
        ]
    )
    config = {"image_repository": "local/tools", "image_tags": {"kv:1.0": "1"}, "labels": {"owned": "true"}}
    docs = list(yaml.safe_load_all(post_render(config, manifests)))
    assert docs[1]["spec"]["template"]["spec"]["containers"][0]["image"] == "local/tools:2"
    assert docs[1]["metadata"]["labels"] == {"app": "kv", "owned": "true"}
    assert docs[0]["metadata"]["labels"] == {"owned": "true"}
    assert config["image_tags"] == {"kv:1.0": "1", "kv:1.1": "2"}  # kept for the next render


def test_the_post_renderer_rewrites_cron_jobs_and_list_items_and_passes_odd_documents_through() -> None:
    manifests = yaml.safe_dump_all(
        [
            {
                "kind": "CronJob",
                "metadata": {"name": "backup"},
                "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"image": "busybox:1"}]}}}}},
            },
            {"kind": "List", "items": [{"kind": "ConfigMap", "metadata": None}]},
            {"kind": "StatefulSet", "spec": [1]},
            {"kind": "Deployment", "spec": {"template": "x"}},
            "just a string",
        ]
    )
    config = {"image_repository": "local/tools", "labels": {"owned": "true"}}
    docs = list(yaml.safe_load_all(post_render(config, manifests)))
    assert docs[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"] == "local/tools:1"
    assert docs[1]["items"][0]["metadata"] == {"labels": {"owned": "true"}}
    assert docs[2]["spec"] == [1] and docs[4] == "just a string"


def test_the_post_renderer_says_in_one_line_what_it_cannot_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "post-render.json"
    config.write_text("{}")
    monkeypatch.setattr("sys.stdin", io.StringIO("a: =\n  b: [\n"))
    assert main([str(config)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pytest-stateful post-renderer: ") and len(err.splitlines()) == 1


def test_helm_errors_lose_the_generic_debug_hint() -> None:
    stderr = (
        "Error: INSTALLATION FAILED: chart requires kubeVersion: >=1.25.0-0\n"
        "Use --debug flag to render out invalid YAML\n"
    )
    assert _helm_message(stderr) == "INSTALLATION FAILED: chart requires kubeVersion: >=1.25.0-0"


_SCOPES = {
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): False,
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): False,
    ("v1", "Namespace"): False,
    ("v1", "Service"): True,
    ("apps/v1", "StatefulSet"): True,
}


class _Discovery:
    """Discovery as the API server answers it for these kinds (the real one asks the server)."""

    def namespaced(self, api_version: str, kind: str) -> bool | None:
        return _SCOPES.get((api_version, kind))


RENDERED = [
    {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "kv"}},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "kv-reader"}},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "kv-reader"}},
]


def test_cluster_scoped_objects_pass_the_namespace_rule_only_when_the_chart_asks() -> None:
    with pytest.raises(ManifestError) as refused:
        place([dict(d) for d in RENDERED], "ns", _Discovery(), hint=CLUSTER_SCOPED_HINT)  # type: ignore[arg-type]
    assert str(refused.value).splitlines()[1:] == [
        f"  ClusterRole kv-reader is cluster-scoped and is not applied: {CLUSTER_SCOPED_HINT}",
        f"  ClusterRoleBinding kv-reader is cluster-scoped and is not applied: {CLUSTER_SCOPED_HINT}",
    ]
    placed = place([dict(d) for d in RENDERED], "ns", _Discovery(), cluster_scoped=True)  # type: ignore[arg-type]
    assert [d["metadata"].get("namespace") for d in placed] == ["ns", None, None]
    assert [str(g) for g in cluster_scoped(placed, _Discovery())] == [  # type: ignore[arg-type]
        "ClusterRole kv-reader",
        "ClusterRoleBinding kv-reader",
    ]
    # A Namespace is never made, whatever the chart asks.
    with pytest.raises(ManifestError, match="Namespace other is never applied"):
        place(
            [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}}],
            "ns",
            _Discovery(),  # type: ignore[arg-type]
            cluster_scoped=True,
        )


def test_the_post_renderer_labels_cluster_scoped_objects_with_the_run_and_the_namespace() -> None:
    config = {
        "cluster_kinds": ["rbac.authorization.k8s.io/v1/ClusterRole"],
        "cluster_labels": {"pytest-stateful.io/owned": "true", NAMESPACE_LABEL: "ns"},
    }
    out = list(yaml.safe_load_all(post_render(config, yaml.safe_dump_all(RENDERED))))
    assert out[1]["metadata"]["labels"] == {"pytest-stateful.io/owned": "true", NAMESPACE_LABEL: "ns"}
    assert "labels" not in out[0]["metadata"]  # namespaced objects of a fresh namespace: untouched


def test_the_namespace_annotation_lists_global_names_that_read_back() -> None:
    held = [Global("rbac.authorization.k8s.io/v1", "ClusterRole", "kv-reader"), Global("v1", "PersistentVolume", "x")]
    assert listed({ANNOTATION: json.dumps([g.key for g in held])}) == held
    assert listed({ANNOTATION: "not json"}) == []
    assert listed(None) == []
