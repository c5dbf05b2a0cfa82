"""Cluster providers: how a session gets a cluster handle.

- local: the cluster of `pytest-stateful cluster up`, started if it is not running;
- existing: a kubeconfig and context the user names explicitly (never the current context);
- kind: through pytest-kind-ng where a Docker engine runs.
The plugin only ever writes inside namespaces it created; that rule lives in the
handle's callers, not here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config

from pytest_stateful.cluster.api import call
from pytest_stateful.cluster.build import HELM_VERSION, cache_dir
from pytest_stateful.cluster.failures import NodeFailer
from pytest_stateful.cluster.handle import PROVIDERS, ClusterHandle
from pytest_stateful.cluster.images import REPOSITORY as TOOLS_IMAGE
from pytest_stateful.cluster.local import LocalCluster
from pytest_stateful.cluster.procs import file_lock
from pytest_stateful.cluster.versions import Target
from pytest_stateful.dns import DirectResolver, PortForwardResolver, Resolver
from pytest_stateful.errors import ClusterError, Forbidden, ProviderUnavailable, StatefulError


@dataclass(frozen=True)
class ProviderOptions:
    provider: str = "local"
    kubeconfig: str | None = None
    context: str | None = None
    dns: str | None = None
    node: str = "simulated"  # local provider: "real" adds a kubelet (node-level evidence)
    # The ephemeral probe container's image; None: the provider's default.
    probe_image: str | None = None
    # local provider: the Kubernetes version and feature gates (one cluster each); None: the default.
    kubernetes: Target | None = None
    # --stateful-cluster-scoped: charts that ask may create cluster-scoped objects on any cluster.
    cluster_scoped: bool = False


def connect(opts: ProviderOptions, log: Callable[[str], None] = print) -> ClusterHandle:
    if opts.provider == "local":
        handle = _local(opts, log)
    elif opts.provider == "existing":
        handle = _existing(opts)
    elif opts.provider == "kind":
        handle = _kind(opts, log)
    else:
        raise ClusterError(f"unknown cluster provider {opts.provider!r}; choose one of {', '.join(PROVIDERS)}")
    handle.helm = helm_binary()
    handle.cluster_scoped = handle.cluster_scoped or opts.cluster_scoped
    handle.kubernetes = handle.kubernetes or server_version(handle.api)
    if opts.probe_image:
        handle.probe_image = opts.probe_image
    return handle


def helm_binary() -> str | None:
    """The helm that `pytest-stateful cluster build` built, else one on PATH."""
    built = cache_dir() / "bin" / f"helm-{HELM_VERSION}" / "helm"
    if built.is_file():
        return str(built)
    return shutil.which("helm")


def server_version(api: client.ApiClient) -> str:
    """The API server's gitVersion (`v1.35.4`), or "unknown" when it does not say."""
    try:
        info = call("read the API server's version", client.VersionApi(api).get_code, retry=True)
    except StatefulError:
        return "unknown"
    return str(info.git_version or "unknown")


def _api(kubeconfig: Path, context: str) -> client.ApiClient:
    """An API client for that context. urllib3 retries nothing itself: cluster/api.call retries what is
    safe to retry, bounded and recorded, instead of thousands of urllib3 warnings and a raw MaxRetryError."""
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), context=context, client_configuration=configuration)
    configuration.retries = False
    return client.ApiClient(configuration=configuration)


def _local(opts: ProviderOptions, log: Callable[[str], None]) -> ClusterHandle:
    cluster = LocalCluster.current(opts.node, opts.kubernetes)
    # One `up` at a time across processes (pytest-xdist workers share the cluster).
    with file_lock(cache_dir() / "run" / f".{cluster.config.name}.lock"):
        cluster = LocalCluster.current(opts.node, opts.kubernetes)
        if not cluster.is_up():
            cluster.up(log=log)
    api = _api(cluster.kubeconfig, cluster.context)
    nodes = NodeFailer(api, cluster.node if cluster.real else None)
    restored = nodes.recover_abandoned()
    if restored:
        log(f"[cluster] restored node(s) a killed session left failed: {', '.join(restored)}")
    return ClusterHandle(
        "local",
        cluster.kubeconfig,
        cluster.context,
        api,
        resolver=DirectResolver(opts.dns or cluster.dns_address),
        # No registry here: the probe runs from the real node's own tools image.
        probe_image=f"{TOOLS_IMAGE}:1",
        holds_unready=True,
        drains_nodes=True,
        cluster_scoped=True,
        nodes=nodes,
        close=api.close,
        kubernetes=cluster.config.target.version,
        feature_gates=cluster.config.target.gates_text,
    )


def _existing(opts: ProviderOptions) -> ClusterHandle:
    if not opts.kubeconfig or not opts.context:
        raise ClusterError(
            "--stateful-cluster=existing needs both --kubeconfig and --kube-context: "
            "the plugin never falls back to a current context on its own"
        )
    path = Path(opts.kubeconfig).expanduser()
    if not path.is_file():
        raise ClusterError(f"--kubeconfig {path}: no such file")
    contexts, _ = config.list_kube_config_contexts(config_file=str(path))
    names = [c["name"] for c in contexts]
    if opts.context not in names:
        raise ClusterError(f"--kube-context {opts.context!r} is not in {path} (it has: {', '.join(names) or 'none'})")
    api = _api(path, opts.context)
    return ClusterHandle("existing", path, opts.context, api, resolver=_resolver(opts, api), close=api.close)


def _resolver(opts: ProviderOptions, api: client.ApiClient) -> Resolver | None:
    """A DNS server named explicitly, else the cluster's kube-dns pods through port-forward,
    else none (pod_dns is then "incomplete", never passed)."""
    dns = opts.dns or os.environ.get("PYTEST_STATEFUL_DNS")
    if dns:
        return DirectResolver(dns)
    core = client.CoreV1Api(api)
    try:
        kube_dns = call(
            "list kube-dns pods in kube-system",
            core.list_namespaced_pod,
            "kube-system",
            label_selector="k8s-app=kube-dns",
            retry=True,
        )
    except Forbidden:
        return None  # a namespaced account: name a DNS server with --stateful-dns
    if kube_dns.items:
        return PortForwardResolver(core)
    return None


def docker_unavailable() -> str | None:
    """Why kind cannot run here, or None when a Docker engine answers."""
    if shutil.which("docker") is None:
        return "kind needs Docker, and no docker command is on PATH"
    proc = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return f"kind needs a running Docker engine, and `docker info` failed: {detail}"
    return None


def _kind(opts: ProviderOptions, log: Callable[[str], None]) -> ClusterHandle:
    reason = docker_unavailable()
    if reason:
        raise ProviderUnavailable(reason)
    try:
        from pytest_kind import KindCluster  # type: ignore[import-not-found]
    except ImportError as exc:
        raise ProviderUnavailable(
            "the kind provider needs pytest-kind-ng: pip install 'pytest-stateful[kind]'"
        ) from exc
    # Binaries already on PATH are used as they are; otherwise pytest-kind-ng downloads its own.
    kind_bin, kubectl_bin = shutil.which("kind"), shutil.which("kubectl")
    kind: Any = KindCluster(
        "pytest-stateful",
        kind_path=Path(kind_bin) if kind_bin else None,
        kubectl_path=Path(kubectl_bin) if kubectl_bin else None,
    )
    log("[cluster] creating kind cluster pytest-stateful")
    kind.create()
    path = Path(kind.kubeconfig_path)
    context = "kind-pytest-stateful"
    api = _api(path, context)

    def close() -> None:
        api.close()
        kind.delete()

    return ClusterHandle("kind", path, context, api, resolver=_resolver(opts, api), close=close)


__all__ = ["PROVIDERS", "ClusterHandle", "ProviderOptions", "ProviderUnavailable", "connect"]
