"""What a test gets of a cluster: where it is, API clients, a DNS resolver, and what it can do.

Capabilities are asked of the handle (`cluster.holds_unready`), never derived
from the provider's name by callers: a new provider states what it offers here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes import client

from pytest_stateful.cluster.discovery import Discovery
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

    @functools.cached_property
    def discovery(self) -> Discovery:
        """The API server's discovery: which kinds it serves and which are namespaced (cached)."""
        return Discovery(self.api)

    def health(self) -> str | None:
        """None while the API server says it is ready (/readyz); else what it says, or that it does not answer."""
        from pytest_stateful.cluster.api import CLIENT_FAILURES
        from pytest_stateful.errors import api_error

        try:
            method, url, headers, body, _ = self.api.param_serialize(
                "GET", "/readyz", query_params=[("verbose", "true")], auth_settings=["BearerToken"]
            )
            resp = self.api.call_api(method, url, header_params=headers, body=body, _request_timeout=(2.0, 5.0))
        except CLIENT_FAILURES as exc:
            if getattr(exc, "status", 0) in (401, 403, 404):
                return None  # not allowed to ask: no opinion
            failed = [line for line in str(getattr(exc, "body", "") or "").splitlines() if line.startswith("[-]")]
            if failed:
                return f"the API server is not ready: {'; '.join(failed)}"
            return api_error(exc, "ask the API server whether it is ready").message
        status = int(getattr(resp, "status", 200) or 200)
        if status in (401, 403, 404):
            return None
        if status == 200:
            return None
        resp.read()
        data = getattr(resp, "data", b"") or b""
        text = data.decode(errors="replace") if isinstance(data, bytes) else str(data)
        failed = [line for line in text.splitlines() if line.startswith("[-]")]
        return f"the API server is not ready: {'; '.join(failed) or status}"

    def describe(self) -> str:
        dns = self.resolver.address if self.resolver else "none"
        level = "node" if self.node_level else "api (simulated nodes: no container runs and no image is pulled)"
        return f"{self.provider} cluster, context {self.context} ({self.kubeconfig}), DNS {dns}, evidence {level}"
