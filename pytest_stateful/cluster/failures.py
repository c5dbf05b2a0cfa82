"""Node failure on the local cluster (fail_node, restore_node): how each kind of node stops.

A simulated node fails when KWOK stops acting for it. kwok-controller acts for a node only while it
holds the node's Lease (kube-node-lease/<node>; node_lease_controller.go, Held and
tryAcquireOrRenew). The Lease is handed to another holder with a day's duration and its last
renewal time kept. From then on nobody renews it: kube-controller-manager's node lifecycle
controller sees no heartbeat, marks the node Unknown and taints it unreachable after its grace
period, and KWOK plays no stage for the node or its pods, so nobody confirms that a pod there stopped.
Restoring shortens the duration to one second: the Lease expires, KWOK takes it back (a holder
transition, which makes it manage the node and its pods again) and its node-initialize stage makes
the node Ready.

The real node fails as a kubelet crash does: the kubelet stops, containerd and the containers run on.
"""

from __future__ import annotations

from kubernetes import client

from pytest_stateful.cluster.api import call
from pytest_stateful.cluster.realnode import NODE_NAME, RealNode

LEASE_NAMESPACE = "kube-node-lease"
FAILED_HOLDER = "pytest-stateful/fail_node"
FAILED_LEASE_SECONDS = 86400


class NodeFailer:
    """Stops and restores the local cluster's nodes; asks the real node's runtime what still runs."""

    def __init__(self, api: client.ApiClient, real: RealNode | None = None) -> None:
        self._leases = client.CoordinationV1Api(api)
        self._real = real

    def is_real(self, node: str) -> bool:
        return self._real is not None and node == NODE_NAME

    def fail(self, node: str) -> str:
        """Stop the node; returns how, for the step's line."""
        if self._real is not None and node == NODE_NAME:
            self._real.stop_kubelet()
            return "kubelet stopped, containers left running"
        self._lease(node, FAILED_HOLDER, FAILED_LEASE_SECONDS)
        return "KWOK stopped acting for it (its Lease taken away)"

    def restore(self, node: str) -> None:
        if self._real is not None and node == NODE_NAME:
            if not self._real.kubelet_running():
                self._real.start_kubelet()
            return
        # Only a Lease we took: one that KWOK holds again must keep its duration.
        lease = call(f"read Lease {node}", self._leases.read_namespaced_lease, node, LEASE_NAMESPACE, retry=True)
        if (lease.spec.holder_identity or "") == FAILED_HOLDER:
            self._lease(node, FAILED_HOLDER, 1)

    def running(self, node: str, pod_uid: str) -> list[str] | None:
        """The containers of that pod the node's runtime still runs; None where no runtime can be asked."""
        if self._real is None or node != NODE_NAME:
            return None
        return self._real.running_containers(pod_uid)

    def _lease(self, node: str, holder: str, seconds: int) -> None:
        call(
            f"hand over Lease {node}",
            self._leases.patch_namespaced_lease,
            node,
            LEASE_NAMESPACE,
            {"spec": {"holderIdentity": holder, "leaseDurationSeconds": seconds}},
            retry=True,
        )
