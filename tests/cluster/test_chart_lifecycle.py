"""Issue 14: charts installed, upgraded and rolled back with the real helm, on the local cluster."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from pytest_stateful.cluster.local import LocalCluster

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CHARTS = EXAMPLES / "charts"


def test_a_claim_size_upgrade_is_refused_before_it_is_sent_naming_the_field_the_values_key_and_the_remedy() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", "examples/charts/broken"],
        capture_output=True,
        text=True,
        cwd=EXAMPLES.parent,
        env={**os.environ, "PYTEST_STATEFUL_FAILING": "1"},
        timeout=600,
    )
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    for text in [
        "helm_upgrade would change spec.volumeClaimTemplates[0].spec.resources.requests.storage of StatefulSet kv "
        "from '512Mi' to '2Gi', produced by the values persistence.size",
        "Kubernetes does not let an update change it",
        "kubectl delete statefulset kv --cascade=orphan -n stateful-",
        "The API server says: ",
        "Forbidden: updates to statefulset spec for fields other than",
    ]:
        assert text in out, f"missing {text!r} in:\n{out}"
    assert "Traceback" not in out


def test_the_release_keeps_its_history_and_upgrades_are_helms_three_way_merges(pytester: pytest.Pytester) -> None:
    shutil.copytree(CHARTS / "kv", pytester.path / "kv")
    shutil.copy(CHARTS / "ci-values.yaml", pytester.path / "ci-values.yaml")
    pytester.makepyfile(
        """
        import json, subprocess

        def helm(web, *args):
            return subprocess.run(
                [web.cluster.helm, *args, "-n", web.namespace, "--kubeconfig", str(web.cluster.kubeconfig),
                 "--kube-context", web.cluster.context],
                capture_output=True, text=True, check=True,
            ).stdout

        def test_lifecycle(stateful):
            kv = stateful.chart("kv", values_files=["ci-values.yaml"])
            # A change made outside helm (scale) survives an upgrade that does not touch replicas.
            kv.scale(4)
            kv.helm_upgrade(values={"image": {"tag": "1.1"}})
            sts = kv.cluster.apps.read_namespaced_stateful_set("kv", kv.namespace)
            assert sts.spec.template.spec.containers[0].image == "registry.example/kv:1.1"
            kv.helm_rollback()
            history = json.loads(helm(kv, "history", "kv", "--output", "json"))
            assert [h["revision"] for h in history] == [1, 2, 3]
            assert history[-1]["description"] == "Rollback to 1"
            sts = kv.cluster.apps.read_namespaced_stateful_set("kv", kv.namespace)
            assert sts.spec.template.spec.containers[0].image == "registry.example/kv:1.0"
            kv.assert_ordered_rolling_update()
            kv.assert_stable_storage()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_a_chart_with_a_cluster_scoped_object_is_refused_before_anything_is_installed(
    pytester: pytest.Pytester,
) -> None:
    shutil.copytree(CHARTS / "kv", pytester.path / "kv")
    (pytester.path / "kv" / "templates" / "clusterrole.yaml").write_text(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {{ .Release.Name }}-reader\n"
        "rules: []\n"
    )
    (pytester.path / "kv.stateful.yaml").write_text("chart: {path: kv}\nexpect: [stable_identity]\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert (
        "ClusterRole kv-reader is cluster-scoped and is not applied: the plugin only writes inside the test namespace"
        in out
    )
    assert "Traceback" not in out


def test_a_chart_is_rendered_for_the_clusters_version(pytester: pytest.Pytester) -> None:
    # helm template alone renders for Kubernetes v1.20: a chart that requires a newer one is refused.
    shutil.copytree(CHARTS / "kv", pytester.path / "kv")
    chart = pytester.path / "kv" / "Chart.yaml"
    chart.write_text(chart.read_text() + 'kubeVersion: ">=1.30.0-0"\n')
    (pytester.path / "kv.stateful.yaml").write_text(
        "chart: {path: kv, values_files: [ci-values.yaml]}\nexpect: [stable_identity]\nsteps: [{delete_pod: 0}]\n"
    )
    shutil.copy(CHARTS / "ci-values.yaml", pytester.path / "ci-values.yaml")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_a_chart_in_a_shared_namespace_as_a_namespaced_account_leaves_nothing_not_even_helms_release(
    pytester: pytest.Pytester, real: LocalCluster, locked_down: Any
) -> None:
    namespace, kubeconfig = locked_down()
    shutil.copytree(CHARTS / "kv", pytester.path / "kv")
    # The real node runs containers from its tools image (sh -c "httpd ..."): without kv's --peers args.
    template = pytester.path / "kv" / "templates" / "statefulset.yaml"
    template.write_text(
        "\n".join(ln for ln in template.read_text().splitlines() if "args:" not in ln and "--peers" not in ln) + "\n"
    )
    shutil.copy(CHARTS / "ci-values.yaml", pytester.path / "ci-values.yaml")
    (pytester.path / "kv.stateful.yaml").write_text(
        "chart: {path: kv, values_files: [ci-values.yaml], values: {replicas: 2}}\n"
        "steps: [{helm_upgrade: {values: {image: {tag: '1.1'}}}}, {helm_rollback: {}}]\n"
        "expect: [ordered_rolling_update, stable_storage]\n"
    )
    result = pytester.runpytest(
        "--stateful-cluster=existing",
        f"--kubeconfig={kubeconfig}",
        "--kube-context=runner",
        f"--stateful-namespace={namespace}",
        f"--stateful-dns={real.dns_address}",
        "--stateful-image=pytest-stateful.local/tools",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=1)
    admin = config.new_client_from_config(config_file=str(real.kubeconfig), context=real.context)
    try:
        core, apps = client.CoreV1Api(admin), client.AppsV1Api(admin)
        left = [f"StatefulSet {s.metadata.name}" for s in apps.list_namespaced_stateful_set(namespace).items]
        left += [f"Pod {p.metadata.name}" for p in core.list_namespaced_pod(namespace).items]
        left += [f"Claim {c.metadata.name}" for c in core.list_namespaced_persistent_volume_claim(namespace).items]
        left += [f"Service {s.metadata.name}" for s in core.list_namespaced_service(namespace).items]
        left += [f"Secret {s.metadata.name}" for s in core.list_namespaced_secret(namespace).items]
        assert left == [], left
    finally:
        admin.close()


def test_custom_resources_are_applied_and_a_kind_the_cluster_does_not_serve_is_one_sentence(
    pytester: pytest.Pytester,
) -> None:
    """Objects are created through discovery, not the typed client: a custom resource of a served CRD
    is applied; a ServiceMonitor without its CRD is refused naming the object, before anything."""
    cluster = LocalCluster.current("simulated")
    admin = config.new_client_from_config(config_file=str(cluster.kubeconfig), context=cluster.context)
    ext = client.ApiextensionsV1Api(admin)
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "backups.example.pytest-stateful.io"},
        "spec": {
            "group": "example.pytest-stateful.io",
            "names": {"kind": "Backup", "plural": "backups", "singular": "backup"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }
    ext.create_custom_resource_definition(crd)
    try:
        shutil.copy(EXAMPLES / "web" / "svc.yaml", pytester.path / "svc.yaml")
        shutil.copy(EXAMPLES / "web" / "statefulset.yaml", pytester.path / "statefulset.yaml")
        (pytester.path / "backup.yaml").write_text(
            "apiVersion: example.pytest-stateful.io/v1\nkind: Backup\nmetadata: {name: nightly}\nspec: {of: web}\n"
        )
        (pytester.path / "monitor.yaml").write_text(
            "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: web}\nspec: {}\n"
        )
        (pytester.path / "cr.stateful.yaml").write_text(
            "name: with a custom resource\nmanifests: [svc.yaml, statefulset.yaml, backup.yaml]\n"
            "expect: [stable_identity]\nsteps: [{delete_pod: 0}]\n---\n"
            "name: with a ServiceMonitor\nmanifests: [svc.yaml, statefulset.yaml, monitor.yaml]\n"
            "expect: [stable_identity]\n"
        )
        result = pytester.runpytest("-p", "no:cacheprovider")
        result.assert_outcomes(passed=1, failed=1)
        out = result.stdout.str()
        assert "ServiceMonitor web: the cluster does not serve ServiceMonitor in monitoring.coreos.com/v1" in out, out
        assert "Traceback" not in out and "has no attribute" not in out
    finally:
        ext.delete_custom_resource_definition(crd["metadata"]["name"])
        admin.close()


def test_an_upgrade_the_api_server_accepts_is_not_refused_even_when_the_chart_writes_it_differently(
    pytester: pytest.Pytester,
) -> None:
    # 1Gi written as 1024Mi, and an empty label map on the claim template: the same to the API server,
    # whose dry run decides; the upgrade (a new image) goes through.
    shutil.copytree(CHARTS / "kv", pytester.path / "kv")
    template = pytester.path / "kv" / "templates" / "statefulset.yaml"
    template.write_text(template.read_text().replace("      name: data\n", "      name: data\n      labels: {}\n"))
    (pytester.path / "kv.stateful.yaml").write_text(
        "chart: {path: kv, values: {persistence: {size: 1Gi}}}\n"
        "steps: [{helm_upgrade: {values: {persistence: {size: 1024Mi}, image: {tag: '1.1'}}}}]\n"
        "expect: [ordered_rolling_update, stable_storage]\n"
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
