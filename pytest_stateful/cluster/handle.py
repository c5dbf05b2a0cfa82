"""What a test gets of a cluster: where it is, API clients, a DNS resolver, and what it can do.

Capabilities are asked of the handle (`cluster.holds_unready`), never derived
from the provider's name by callers: a new provider states what it offers here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes import client

from pytest_stateful.dns import Resolver

PROVIDERS = ("local", "existing", "kind")
# The local cluster's KWOK stages hold a pod with this label NotReady (cluster/stages.py).
UNREADY_LABEL = "pytest-stateful.io/unready"


@dataclass
class ClusterHandle:
    provider: str
    kubeconfig: Path
    context: str
    api: client.ApiClient
    resolver: Resolver | None = None
    # Commands can run inside containers (hostname, DNS from inside a pod, volume markers).
    node_level: bool = False
    # A pod labelled UNREADY_LABEL=true is held NotReady (the local cluster's KWOK stages).
    holds_unready: bool = False
    # Steps may change Nodes (cordon for drain_node): only on a cluster that is ours to change.
    drains_nodes: bool = False
    cluster_domain: str = "cluster.local"
    # The helm program charts are rendered with (the built one, else one on PATH), or None.
    helm: str | None = None
    close: Callable[[], None] = field(default=lambda: None)

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    def describe(self) -> str:
        dns = self.resolver.address if self.resolver else "none"
        level = "node" if self.node_level else "api (simulated nodes)"
        return f"{self.provider} cluster, context {self.context} ({self.kubeconfig}), DNS {dns}, evidence {level}"
