"""What a test gets of a cluster: where it is, API clients, a DNS resolver, and what it can do.

Capabilities are asked of the handle (`cluster.holds_unready`), never derived
from the provider's name by callers: a new provider states what it offers here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kubernetes import client

from pytest_stateful.cluster.discovery import Discovery
from pytest_stateful.dns import Resolver

if TYPE_CHECKING:
    from pytest_stateful.cluster.failures import NodeFailer

PROVIDERS = ("local", "existing", "kind")
# The local cluster's KWOK stages hold a pod with this label NotReady (cluster/stages.py).
UNREADY_LABEL = "pytest-stateful.io/unready"
# KWOK marks the nodes it simulates with annotations under this prefix (kwok.x-k8s.io/node=fake):
# no container runs on them, so no probe can run inside their pods.
KWOK_PREFIX = "kwok.x-k8s.io/"
# The probe image of ephemeral probe containers when none is chosen: it has a shell, hostname and
# nslookup. The local cluster uses its own tools image instead (no registry there).
PROBE_IMAGE = "busybox:1.36"


@dataclass
class ClusterHandle:
    provider: str
    kubeconfig: Path
    context: str
    api: client.ApiClient
    resolver: Resolver | None = None
    # The image of the ephemeral container that probes pods whose own image lacks the tools.
    probe_image: str = PROBE_IMAGE
    # A pod labelled UNREADY_LABEL=true is held NotReady (the local cluster's KWOK stages).
    holds_unready: bool = False
    # Steps may change Nodes (cordon for drain_node): only on a cluster that is ours to change.
    drains_nodes: bool = False
    # A chart's cluster-scoped objects may be created (and deleted at teardown) when it asks for them:
    # the local cluster, which is disposable, or another cluster with --stateful-cluster-scoped.
    cluster_scoped: bool = False
    # Steps may stop and restore nodes (fail_node): the local cluster only, whose nodes are ours.
    nodes: NodeFailer | None = None
    cluster_domain: str = "cluster.local"
    # The helm program charts are rendered with (the built one, else one on PATH), or None.
    helm: str | None = None
    # The API server's version (`v1.35.4`), and the feature gates the local cluster was started with
    # on top of its defaults ("" elsewhere: an existing cluster's gates are its own business).
    kubernetes: str = ""
    feature_gates: str = ""
    close: Callable[[], None] = field(default=lambda: None)
    # node name -> why no container runs there ("" for a real node, or one the account may not read).
    _nodes: dict[str, str] = field(default_factory=dict, repr=False)

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

    def no_containers(self, node: str) -> str:
        """Why no container runs on `node` ("" when it runs them, or cannot be asked). Decided per
        node, not per provider: a cluster may mix real nodes with KWOK's simulated ones."""
        from pytest_stateful.cluster.api import call
        from pytest_stateful.errors import Forbidden, NotFound, StatefulError

        if not node:
            return "not scheduled on a node"
        if node not in self._nodes:
            try:
                read = call(f"read node {node}", self.core.read_node, node, retry=True)
            except NotFound:
                return f"node {node} no longer exists"
            except Forbidden:
                # A namespaced account may not read nodes: try the probe; its failure says why.
                self._nodes[node] = ""
                return ""
            except StatefulError as exc:
                return f"could not read node {node}: {exc}"  # not remembered: asked again next time
            annotations = dict(read.metadata.annotations or {})
            simulated = any(k.startswith(KWOK_PREFIX) for k in annotations)
            self._nodes[node] = "on a simulated node (KWOK), where no container runs" if simulated else ""
        return self._nodes[node]

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

    @property
    def version_label(self) -> str:
        """`v1.35.4`, or `v1.35.4 MaxUnavailableStatefulSet=false`: what reports and the table show."""
        return " ".join(filter(None, [self.kubernetes or "unknown", self.feature_gates]))

    def describe(self) -> str:
        dns = self.resolver.address if self.resolver else "none"
        gates = f" with {self.feature_gates}" if self.feature_gates else ""
        return (
            f"{self.provider} cluster, Kubernetes {self.kubernetes or 'unknown'}{gates}, "
            f"context {self.context} ({self.kubeconfig}), DNS {dns}, node-level probes "
            f"on real nodes (own container, else ephemeral {self.probe_image}); none on simulated nodes"
        )
