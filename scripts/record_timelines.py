"""Record scenarios on the local cluster and store their timelines in tests/data/ for unit tests.

    .venv/bin/python scripts/record_timelines.py [scenario ...]

Every stored timeline is what the real control plane did; unit tests judge these
records offline and, for the failing cases, edit a copy to the broken order.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "cluster"))

from workloads import service, statefulset, wait_claims_gone, web

from pytest_stateful.cluster.providers import ProviderOptions, connect
from pytest_stateful.workload.handle import StatefulSetHandle
from pytest_stateful.workload.session import Recording, scenario

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def good(rec: Recording) -> StatefulSetHandle:
    sts = rec.statefulset(web(replicas=2, claims=True))
    sts.scale(3)
    sts.delete_pod(0)
    sts.delete_pods()
    sts.update_image("nginx", "nginx:1.10")
    sts.scale(1)
    sts.scale(3)
    return sts


def parallel(rec: Recording) -> StatefulSetHandle:
    sts = rec.statefulset(web(replicas=3, podManagementPolicy="Parallel"))
    sts.scale(1)
    return sts


def retention_delete(rec: Recording) -> StatefulSetHandle:
    sts = rec.statefulset(web(replicas=3, claims=True, persistentVolumeClaimRetentionPolicy={"whenScaled": "Delete"}))
    sts.scale(1)
    wait_claims_gone(sts, ["www-web-1", "www-web-2"])
    sts.scale(3)
    return sts


def delete_claim(rec: Recording) -> StatefulSetHandle:
    """Both ways a claim the test deletes comes back: web-1's while its replacement is Pending on a
    cordoned node (upstream's scenario), web-0's while web-0 still runs (held until the pod goes)."""
    manifests = web(replicas=2, claims=True)
    manifests[1]["spec"]["template"]["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "node-000001"}
    sts = rec.statefulset(manifests)
    sts.cordon_node(1)
    old = sts.view.pod("web-1")
    sts.delete_pod(1, settle=False)
    pending = sts.recorder.wait_until(lambda: (p := sts.view.pod("web-1")) is not None and p.uid != old.uid, 30)
    assert pending, "web-1 was not created again"
    sts.delete_claim(1, settle=False)
    sts.uncordon_node(1)
    sts.delete_claim(0)
    sts.delete_pod(0)
    return sts


def claim_retention(rec: Recording) -> StatefulSetHandle:
    """whenScaled and whenDeleted both Delete: a scale-down deletes the claims of the pods it removes, a
    scale-up gets new ones, and deleting the StatefulSet deletes the rest."""
    policy = {"whenScaled": "Delete", "whenDeleted": "Delete"}
    sts = rec.statefulset(web(replicas=3, claims=True, persistentVolumeClaimRetentionPolicy=policy))
    sts.scale(1)
    sts.scale(2)
    sts.delete_statefulset()
    return sts


def not_headless(rec: Recording) -> StatefulSetHandle:
    return rec.statefulset([service(headless=False), statefulset()])


SCENARIOS: dict[str, Callable[[Recording], StatefulSetHandle]] = {
    "good": good,
    "parallel": parallel,
    "retention_delete": retention_delete,
    "not_headless": not_headless,
    "delete_claim": delete_claim,
    "claim_retention": claim_retention,
}


def main(names: list[str]) -> None:
    cluster = connect(ProviderOptions("local"))
    DATA.mkdir(parents=True, exist_ok=True)
    for name in names or list(SCENARIOS):
        with scenario(cluster, f"record-{name}") as rec:
            SCENARIOS[name](rec)
        target = DATA / f"{name}.timeline.json"
        target.write_text(rec.recorder.timeline.to_json() + "\n")
        print(f"{name}: {len(rec.recorder.timeline)} entries -> {target.relative_to(Path.cwd())}")
    cluster.close()


if __name__ == "__main__":
    main(sys.argv[1:])
