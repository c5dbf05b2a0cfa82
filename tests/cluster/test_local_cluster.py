"""Issue 2: the seed example on the real local cluster, checked with the raw API and dnspython."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from pytest_stateful import ClusterHandle
from pytest_stateful.cluster.local import LocalCluster
from pytest_stateful.timeline import POD


def test_web_rolls_out_in_order_with_identity_and_dns(stateful, stateful_cluster: ClusterHandle, web_manifests) -> None:
    web = stateful(web_manifests)
    lives = {life.name: life for life in web.timeline.pod_lives("web")}
    assert lives["web-0"].ready_at is not None
    assert lives["web-0"].ready_at < lives["web-1"].created.t, "web-1 was created before web-0 was Ready"

    pod = stateful_cluster.core.read_namespaced_pod("web-1", web.namespace)
    assert pod.spec.hostname == "web-1"
    assert pod.spec.subdomain == "nginx"

    resolver = stateful_cluster.resolver
    assert resolver is not None
    ips = {
        name: stateful_cluster.core.read_namespaced_pod(name, web.namespace).status.pod_ip
        for name in ("web-0", "web-1")
    }
    zone = f"nginx.{web.namespace}.svc.cluster.local"
    assert resolver.a_records(f"web-0.{zone}") == ("NOERROR", [ips["web-0"]])
    assert resolver.a_records(zone) == ("NOERROR", sorted(ips.values()))

    old_uid = stateful_cluster.core.read_namespaced_pod("web-0", web.namespace).metadata.uid
    web.delete_pod(0)
    new = stateful_cluster.core.read_namespaced_pod("web-0", web.namespace)
    assert new.metadata.uid != old_uid
    # probe_dns ran after the step settled; the name must answer the new pod's IP.
    rcode, answered = resolver.a_records(f"web-0.{zone}")
    assert (rcode, answered) == ("NOERROR", [new.status.pod_ip])
    assert [e for e in web.timeline.of(POD) if e.name == "web-0" and e.type == "DELETED"]


def test_claim_from_volume_claim_template_binds(stateful, stateful_cluster: ClusterHandle, tmp_path: Path) -> None:
    sts = tmp_path / "db.yaml"
    sts.write_text(
        """
apiVersion: v1
kind: Service
metadata: {name: db}
spec: {clusterIP: None, selector: {app: db}, ports: [{port: 5432, name: pg}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: postgres:16}]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
"""
    )
    db = stateful([sts])
    claim = stateful_cluster.core.read_namespaced_persistent_volume_claim("data-db-0", db.namespace)
    assert claim.status.phase == "Bound"
    assert claim.spec.volume_name


def test_simulated_nodes_advertise_what_a_real_node_has_so_resource_presets_schedule(pytester: pytest.Pytester) -> None:
    """bitnami's resource presets request ephemeral-storage: a node that advertises none leaves every
    such pod Pending. The simulated nodes advertise CPU, memory, 110 pods, ephemeral-storage, hugepages 0."""
    examples = Path(__file__).resolve().parents[2] / "examples" / "web"
    docs = list(yaml.safe_load_all((examples / "statefulset.yaml").read_text()))
    docs[0]["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "375m", "memory": "384Mi", "ephemeral-storage": "50Mi"},
        "limits": {"cpu": "750m", "memory": "768Mi", "ephemeral-storage": "2Gi"},
    }
    (pytester.path / "statefulset.yaml").write_text(yaml.safe_dump_all(docs))
    shutil.copy(examples / "svc.yaml", pytester.path / "svc.yaml")
    (pytester.path / "presets.stateful.yaml").write_text(
        "manifests: [svc.yaml, statefulset.yaml]\nsteps: [{delete_pod: 0}]\nexpect: [stable_identity]\n"
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    cluster = LocalCluster.current("simulated")
    assert cluster.allocatable()["ephemeral-storage"] == "100Gi" and cluster.allocatable()["pods"] == "110"
