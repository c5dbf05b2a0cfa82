"""Options, ini keys and environment, resolved once into one frozen Settings (command line, then ini, then default)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from pytest_stateful.cluster.handle import PROVIDERS
from pytest_stateful.cluster.versions import DEFAULT_MINOR, PINS, Target, parse_targets
from pytest_stateful.errors import UsageError

NODES = ("simulated", "real")


def _positive_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"must be a positive, finite number of seconds, got {text}")
    return value


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("stateful", "StatefulSet guarantees (pytest-stateful)")
    group.addoption(
        "--stateful-cluster",
        choices=PROVIDERS,
        default=None,
        help="cluster provider: local (default; started if not running), existing (needs --kubeconfig and "
        "--kube-context), kind (needs Docker)",
    )
    group.addoption(
        "--stateful-node",
        choices=NODES,
        default=None,
        help="local cluster: simulated nodes (default) or a real node with a kubelet, for node-level evidence "
        "(ini: stateful_node)",
    )
    group.addoption(
        "--stateful-image",
        default=None,
        metavar="REPOSITORY",
        help="run every container from REPOSITORY:1, :2, ... (one tag per distinct image, in order of "
        "appearance) instead of the manifests' images; the real node's images are "
        "pytest-stateful.local/tools (ini: stateful_image)",
    )
    group.addoption(
        "--stateful-probe-image",
        default=None,
        metavar="IMAGE",
        help="image of the ephemeral container that probes pods whose own image has no shell, hostname or "
        "nslookup (ini: stateful_probe_image; default busybox:1.36, the local cluster's tools image there)",
    )
    group.addoption(
        "--stateful-namespace",
        default=None,
        metavar="NAME",
        help="run every test in this existing namespace instead of creating one: only the objects the run "
        "created there are deleted (ini: stateful_namespace)",
    )
    group.addoption(
        "--stateful-kubernetes",
        default=None,
        metavar="VERSIONS",
        help=f"run every stateful test once per Kubernetes version, each on a local cluster of its own (started "
        f"if not running), the version in the test id: pinned minors {', '.join(PINS)}, separated by commas, each "
        "optionally followed by feature gates: '1.34,1.35,1.35 MaxUnavailableStatefulSet=false' (ini: "
        "stateful_kubernetes, one per line)",
    )
    group.addoption(
        "--stateful-cluster-scoped",
        action="store_true",
        default=False,
        help="let charts that say `cluster_scoped: true` create cluster-scoped objects (ClusterRole, webhooks, "
        "CRDs) on a cluster that is not the local one; they are labelled with the run and deleted at teardown",
    )
    group.addoption("--kubeconfig", default=None, help="kubeconfig file for --stateful-cluster=existing")
    group.addoption("--kube-context", default=None, help="context in --kubeconfig for --stateful-cluster=existing")
    group.addoption(
        "--stateful-dns", default=None, metavar="HOST:PORT", help="DNS server to probe (default: $PYTEST_STATEFUL_DNS)"
    )
    group.addoption(
        "--stateful-timeout",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="default timeout of each step (ini: stateful_timeout; default 120)",
    )
    group.addoption(
        "--stateful-keep-namespace",
        action="store_true",
        default=False,
        help="keep the namespace of a failed test for debugging",
    )
    group.addoption(
        "--stateful-traceback",
        action="store_true",
        default=False,
        help="show Python tracebacks for failing YAML specs instead of the spec's own report",
    )
    group.addoption(
        "--stateful-report-dir",
        default=None,
        metavar="DIR",
        help="write a JSON report per stateful test (verdicts, timings, timeline) into DIR (ini: stateful_report_dir)",
    )
    parser.addini("stateful_cluster", "default cluster provider", default="local")
    parser.addini("stateful_report_dir", "directory for per-test reports", default="")
    parser.addini("stateful_node", "local cluster nodes: simulated or real", default="simulated")
    parser.addini("stateful_image", "image repository that replaces the manifests' images", default="")
    parser.addini("stateful_probe_image", "image of the ephemeral probe container", default="")
    parser.addini("stateful_namespace", "existing namespace to run in instead of fresh ones", default="")
    parser.addini(
        "stateful_patterns",
        "file name patterns collected as stateful specs",
        type="args",
        default=["*.stateful.yaml"],
    )
    parser.addini("stateful_timeout", "default timeout of each step in seconds", default="120")
    parser.addini(
        "stateful_kubernetes", "Kubernetes versions (and feature gates) to run every stateful test on", default=""
    )


@dataclass(frozen=True)
class Settings:
    provider: str
    node: str
    image: str | None
    probe_image: str | None
    namespace: str | None
    kubeconfig: str | None
    context: str | None
    dns: str | None
    timeout: float
    keep_namespace: bool
    traceback: bool
    cluster_scoped: bool
    report_dir: str | None
    patterns: tuple[str, ...]
    # --stateful-kubernetes: one local cluster per target; empty: the provider's one cluster.
    kubernetes: tuple[Target, ...] = ()

    @classmethod
    def of(cls, config: pytest.Config) -> Settings:
        """The session's settings, resolved on first use and kept in the config's stash."""
        cached = config.stash.get(_settings_key, None)
        if cached is None:
            cached = config.stash[_settings_key] = cls._resolve(config)
        return cached

    @classmethod
    def _resolve(cls, config: pytest.Config) -> Settings:
        def option(name: str) -> object:
            return config.getoption(name, default=None)

        def ini(name: str) -> str:
            return str(config.getini(name) or "")

        timeout = option("stateful_timeout")
        if timeout is None:
            try:
                timeout = _positive_float(ini("stateful_timeout"))
            except ValueError as exc:
                raise pytest.UsageError(f"ini option stateful_timeout: {exc}") from None
        provider = str(option("stateful_cluster") or ini("stateful_cluster"))
        if provider not in PROVIDERS:
            raise pytest.UsageError(f"ini option stateful_cluster={provider!r}: choose one of {', '.join(PROVIDERS)}")
        node = str(option("stateful_node") or ini("stateful_node"))
        if node not in NODES:
            raise pytest.UsageError(f"ini option stateful_node={node!r}: choose simulated or real")
        kubernetes = _targets(str(option("stateful_kubernetes") or ""), ini("stateful_kubernetes"), provider, node)
        dns = _text(option("stateful_dns"))
        namespace = str(option("stateful_namespace") or ini("stateful_namespace")) or None
        if kubernetes and dns:
            raise pytest.UsageError(
                "--stateful-dns names one DNS server, and --stateful-kubernetes runs a cluster per version, each "
                "with its own: leave out --stateful-dns"
            )
        if kubernetes and namespace:
            raise pytest.UsageError(
                "--stateful-namespace names an existing namespace, and --stateful-kubernetes runs fresh local "
                "clusters: leave out --stateful-namespace (each test gets a fresh namespace)"
            )
        return cls(
            provider=provider,
            node=node,
            image=str(option("stateful_image") or ini("stateful_image")) or None,
            probe_image=str(option("stateful_probe_image") or ini("stateful_probe_image")) or None,
            namespace=namespace,
            kubeconfig=_text(option("kubeconfig")),
            context=_text(option("kube_context")),
            dns=dns,
            timeout=float(timeout),  # type: ignore[arg-type]
            keep_namespace=bool(option("stateful_keep_namespace")),
            traceback=bool(option("stateful_traceback")),
            cluster_scoped=bool(option("stateful_cluster_scoped")),
            report_dir=str(option("stateful_report_dir") or ini("stateful_report_dir")) or None,
            patterns=tuple(config.getini("stateful_patterns")),
            kubernetes=kubernetes,
        )


def _targets(given: str, ini: str, provider: str, node: str) -> tuple[Target, ...]:
    """The version matrix, checked against what can run it: local clusters of simulated nodes."""
    where = "--stateful-kubernetes" if given else "ini option stateful_kubernetes"
    text = given or ini
    if not text.strip():
        return ()
    try:
        targets = parse_targets(text, where)
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None
    if provider != "local":
        raise pytest.UsageError(
            f"{where} starts a local cluster per version, and the cluster provider is {provider}: run once per "
            "cluster of each version instead (the report and JUnit properties name the API server's version)"
        )
    if node == "real" and any(t.minor != DEFAULT_MINOR for t in targets):
        raise pytest.UsageError(
            f"{where}: the real node runs the default Kubernetes only; other versions run with simulated nodes "
            "(leave out --stateful-node real)"
        )
    if node == "real" and any(t.gates for t in targets):
        raise pytest.UsageError(f"{where}: the real node takes no feature gates (leave out --stateful-node real)")
    return targets


def _text(value: object) -> str | None:
    return str(value) if value else None


_settings_key = pytest.StashKey[Settings]()
