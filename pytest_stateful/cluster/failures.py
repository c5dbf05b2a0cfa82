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

import contextlib
import json
import time
from types import SimpleNamespace

from kubernetes import client

from pytest_stateful.cluster.api import call
from pytest_stateful.cluster.realnode import NODE_NAME, RealNode
from pytest_stateful.errors import StatefulError
from pytest_stateful.workload.cleanup import Here, Owner, session_ended, this_process

LEASE_NAMESPACE = "kube-node-lease"
FAILED_HOLDER = "pytest-stateful/fail_node"
FAILED_LEASE_SECONDS = 86400
# The failing session's notes on a held Lease (cleanup.Owner: its labels and annotations).
OWNER_KEYS = tuple({**this_process().labels(), **this_process().annotations()})


class NodeFailer:
    """Stops and restores the local cluster's nodes; asks the real node's runtime what still runs."""

    def __init__(self, api: client.ApiClient, real: RealNode | None = None) -> None:
        self._leases = client.CoordinationV1Api(api)
        self._real = real

    def is_real(self, node: str) -> bool:
        return self._real is not None and node == NODE_NAME

    def fail(self, node: str) -> str:
        """Stop the node; returns how, for the step's line. The failing session is written beside the
        failure, so a later session restores a node whose failer was killed (recover_abandoned)."""
        owner = this_process()
        if self._real is not None and node == NODE_NAME:
            self._real.stop_kubelet(json.dumps({"labels": owner.labels(), "annotations": owner.annotations()}))
            return "kubelet stopped, containers left running"
        self._lease(node, FAILED_HOLDER, FAILED_LEASE_SECONDS, {**owner.labels(), **owner.annotations()})
        return "KWOK stopped acting for it (its Lease taken away)"

    def recover_abandoned(self) -> list[str]:
        """Restore the nodes a session that has ended left failed (killed before its teardown); the
        nodes restored. Never raises: a cluster it cannot ask is left as it is."""
        here, now, restored = Here.now(), time.time(), []
        with contextlib.suppress(StatefulError):
            leases = call("list node Leases", self._leases.list_namespaced_lease, LEASE_NAMESPACE, retry=True)
            for lease in leases.items:
                if (lease.spec.holder_identity or "") != FAILED_HOLDER:
                    continue
                meta = lease.metadata
                notes = {**(meta.labels or {}), **(meta.annotations or {})}
                owner = Owner.of(SimpleNamespace(labels=notes, annotations=notes, creation_timestamp=None))
                if session_ended(owner, here, now):
                    self._lease(meta.name, FAILED_HOLDER, 1)
                    restored.append(str(meta.name))
        if self._real is not None:
            failer = self._real.stopped_by()
            if failer is not None:
                owner = Owner.of(SimpleNamespace(**failer, creation_timestamp=None))
                if session_ended(owner, here, now) and not self._real.kubelet_running():
                    self._real.start_kubelet()
                    restored.append(NODE_NAME)
        return restored

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

    def _lease(self, node: str, holder: str, seconds: int, owner: dict[str, str] | None = None) -> None:
        # The owner's notes go on the Lease as annotations while it is held (null removes them).
        notes: dict[str, str | None] = dict(owner) if owner else dict.fromkeys(OWNER_KEYS)
        call(
            f"hand over Lease {node}",
            self._leases.patch_namespaced_lease,
            node,
            LEASE_NAMESPACE,
            {
                "metadata": {"annotations": notes},
                "spec": {"holderIdentity": holder, "leaseDurationSeconds": seconds},
            },
            retry=True,
        )
