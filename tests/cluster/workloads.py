"""Manifests for cluster tests: the seed example and the ways to break it."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import yaml

# The seed example (examples/web): shell_less() runs it on the local pause image.
WEB = Path(__file__).resolve().parents[2] / "examples" / "web"


def service(name: str = "nginx", headless: bool = True, selector: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"ports": [{"port": 80, "name": "web"}], "selector": selector or {"app": "nginx"}}
    if headless:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def statefulset(
    replicas: int = 2,
    service_name: str = "nginx",
    claims: bool = False,
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "serviceName": service_name,
        "replicas": replicas,
        "selector": {"matchLabels": {"app": "nginx"}},
        "template": {
            "metadata": {"labels": {"app": "nginx"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.9.1", "ports": [{"containerPort": 80}]}]},
        },
    }
    if claims:
        body["volumeClaimTemplates"] = [
            {
                "metadata": {"name": "www"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            }
        ]
    body.update(copy.deepcopy(spec))
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"}, "spec": body}


def web(**kwargs: Any) -> list[dict[str, Any]]:
    return [service(), statefulset(**kwargs)]


def wait_claims_gone(sts: Any, claims: list[str], timeout: float = 30.0) -> None:
    """Scaling up again while deleted claims still terminate leaves a pod Pending on a claim that
    then vanishes (upstream behaviour); wait until they are gone."""
    from pytest_stateful.timeline import PVC

    gone = sts.recorder.wait_until(lambda: not any((PVC, c) in sts.recorder.current for c in claims), timeout)
    assert gone, f"claims {claims} still exist after {timeout} s"


def shell_less(replicas: int = 2, host_network: bool = False) -> list[dict[str, Any]]:
    """The seed StatefulSet running the local pause image: no shell, no hostname, no nslookup, no cat."""
    docs = list(yaml.safe_load_all((WEB / "statefulset.yaml").read_text()))
    spec = docs[0]["spec"]
    spec["replicas"] = replicas
    pod = spec["template"]["spec"]
    pod["terminationGracePeriodSeconds"] = 2  # the pause process ignores SIGTERM, as the real one does
    container = pod["containers"][0]
    container.update(image="pytest-stateful.local/pause:1", imagePullPolicy="Never")
    container.pop("ports", None)
    if host_network:
        pod.update(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet")
    return docs


def write_shell_less(directory: Path, replicas: int = 2, host_network: bool = False) -> Path:
    path = directory / "statefulset.yaml"
    path.write_text(yaml.safe_dump_all(shell_less(replicas, host_network)))
    shutil.copy(WEB / "svc.yaml", directory / "svc.yaml")
    return path
