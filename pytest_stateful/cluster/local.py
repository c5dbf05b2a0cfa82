"""The local cluster: upstream control plane under kwokctl's binary runtime, CoreDNS beside it.

Nothing here is a stand-in: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kwok-controller and CoreDNS are the upstream programs built by
`pytest-stateful cluster build`. Everything binds to 127.0.0.1; simulated nodes
advertise 127.0.0.1 too, so nothing ever connects to a made-up address.
State lives under `<cache>/run/<name>` and is removed by `down`.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from pytest_stateful.cluster import procs
from pytest_stateful.cluster.build import Builder, Component, cache_dir, components, control_plane
from pytest_stateful.cluster.handle import UNREADY_LABEL
from pytest_stateful.cluster.realnode import GATEWAY, RealNode
from pytest_stateful.cluster.stages import build_stages
from pytest_stateful.cluster.versions import DEFAULT_MINOR, PINS, Target, gate_words, parse_gates, parse_minor
from pytest_stateful.errors import ClusterError, RealNodeError

Log = Callable[[str], None]
DEFAULT_NAME = "pytest-stateful"
# The real-node cluster is a second cluster, so both kinds can run side by side.
REAL_NAME = "pytest-stateful-real"
STORAGE_CLASS = "standard"
# Node failure in seconds, not minutes (fail_node). A node's lease (KWOK's and the real kubelet's) is
# renewed every quarter of its duration; kube-controller-manager marks a node Unknown and taints it
# unreachable once no renewal came for the grace period, and pods tolerate that taint (and not-ready)
# for the default toleration before they are evicted. On a default cluster: lease 40 s, monitor
# period 5 s, grace period 40 s (50 s from 1.32), tolerations 300 s.
NODE_LEASE_SECONDS = 12
NODE_MONITOR_PERIOD_MS = 2000
NODE_MONITOR_GRACE_MS = 20000
DEFAULT_TOLERATION_SECONDS = 30
# Clusters of other versions (and feature gates) take the first free pair from these bases up, so that
# several run side by side: 1.35 on 16535 and 10135, a second set of gates for it on 16635 and 10235.
VERSION_API_PORT_BASE = 16500
VERSION_DNS_PORT_BASE = 10100


@dataclass(frozen=True)
class LocalClusterConfig:
    name: str = DEFAULT_NAME
    nodes: int = 3
    api_port: int = 16443
    dns_port: int = 10053
    ready_delay_ms: int = 300
    terminate_delay_ms: int = 200
    # "simulated": KWOK nodes only. "real": also a kubelet with containerd (node-level evidence).
    node: str = "simulated"
    timeout: float = 120.0
    # What each simulated node advertises, as a real node would: charts with resource requests
    # (bitnami's presets ask for ephemeral-storage) must be schedulable, and the pod count realistic.
    node_cpu: str = "32"
    node_memory: str = "256Gi"
    node_pods: int = 110
    node_ephemeral_storage: str = "100Gi"
    # The pinned minor it runs (cluster/versions.py) and the feature gates set on top of the defaults.
    kubernetes: str = DEFAULT_MINOR
    feature_gates: str = ""

    @property
    def target(self) -> Target:
        return Target(self.kubernetes, parse_gates(self.feature_gates, "feature_gates"))

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        d = LocalClusterConfig()
        parser.add_argument(
            "--nodes", type=int, default=None, help=f"simulated nodes (default {d.nodes}; 0 with --node real)"
        )
        parser.add_argument(
            "--api-port", type=int, default=None, help=f"API server port (default {d.api_port}; 16444 with --node real)"
        )
        parser.add_argument(
            "--dns-port", type=int, default=None, help=f"CoreDNS port (default {d.dns_port}; 10054 with --node real)"
        )
        parser.add_argument(
            "--ready-delay-ms",
            type=int,
            default=d.ready_delay_ms,
            help=f"how long a simulated pod takes to become Ready (default {d.ready_delay_ms})",
        )
        parser.add_argument(
            "--terminate-delay-ms",
            type=int,
            default=d.terminate_delay_ms,
            help=f"how long a deleted simulated pod takes to go (default {d.terminate_delay_ms})",
        )
        parser.add_argument(
            "--node",
            choices=("simulated", "real"),
            default=d.node,
            help="real: add a real node (kubelet, containerd) and no simulated ones unless --nodes is given",
        )
        parser.add_argument("--timeout", type=float, default=d.timeout, help="seconds to wait for readiness")
        parser.add_argument("--node-cpu", default=d.node_cpu, help=f"CPUs a simulated node advertises ({d.node_cpu})")
        parser.add_argument(
            "--node-memory", default=d.node_memory, help=f"memory a simulated node advertises ({d.node_memory})"
        )
        parser.add_argument(
            "--node-pods", type=int, default=d.node_pods, help=f"pods a simulated node takes ({d.node_pods})"
        )
        parser.add_argument(
            "--node-ephemeral-storage",
            default=d.node_ephemeral_storage,
            help=f"ephemeral-storage a simulated node advertises ({d.node_ephemeral_storage})",
        )
        add_target_arguments(parser)

    @classmethod
    def for_node(cls, node: str, target: Target | None = None) -> LocalClusterConfig:
        """The default settings of the simulated-node cluster or of the real-node one, at a version.

        Another version is another cluster, named after it, whose ports are chosen when it starts.
        The real node's kubelet is built at the default version only.
        """
        target = target or Target()
        if node == "real":
            if target.minor != DEFAULT_MINOR:
                raise ClusterError(
                    f"the real node runs Kubernetes {DEFAULT_MINOR} only (its kubelet is built at "
                    f"{PINS[DEFAULT_MINOR]}): other versions run with simulated nodes (leave out --node real)"
                )
            if target.gates:
                raise ClusterError("the real node takes no feature gates: leave out --feature-gates or --node real")
            return cls(name=REAL_NAME, node="real", nodes=0, api_port=16444, dns_port=10054)
        if target.is_default:
            return cls()
        return cls(
            name=target.cluster_name(DEFAULT_NAME),
            api_port=0,
            dns_port=0,
            kubernetes=target.minor,
            feature_gates=target.gates_text,
        )

    @classmethod
    def from_arguments(cls, args: argparse.Namespace) -> LocalClusterConfig:
        base = cls.for_node(args.node, target_of(args))
        return replace(
            base,
            nodes=args.nodes if args.nodes is not None else base.nodes,
            api_port=args.api_port or base.api_port,
            dns_port=args.dns_port or base.dns_port,
            ready_delay_ms=args.ready_delay_ms,
            terminate_delay_ms=args.terminate_delay_ms,
            timeout=args.timeout,
            node_cpu=args.node_cpu,
            node_memory=args.node_memory,
            node_pods=args.node_pods,
            node_ephemeral_storage=args.node_ephemeral_storage,
        )


class LocalCluster:
    def __init__(self, config: LocalClusterConfig | None = None, root: Path | None = None) -> None:
        self.config = config or LocalClusterConfig()
        self.root = root or cache_dir()

    # -- where things are ---------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        return self.root / "run" / self.config.name

    @property
    def kwok_workdir(self) -> Path:
        return self.run_dir / "kwok"

    @property
    def cluster_dir(self) -> Path:
        return self.kwok_workdir / "clusters" / self.config.name

    @property
    def kubeconfig(self) -> Path:
        return self.cluster_dir / "kubeconfig.yaml"

    @property
    def context(self) -> str:
        return f"kwok-{self.config.name}"

    @property
    def dns_address(self) -> str:
        return f"127.0.0.1:{self.config.dns_port}"

    @property
    def _coredns_pidfile(self) -> Path:
        return self.run_dir / "coredns.pid"

    @classmethod
    def current(cls, node: str = "simulated", target: Target | None = None, root: Path | None = None) -> LocalCluster:
        """The cluster as `up` left it (its settings are saved beside its state)."""
        root = root or cache_dir()
        default = LocalClusterConfig.for_node(node, target)
        saved = cls._saved(root / "run" / default.name)
        return cls(saved or default, root)

    @classmethod
    def started(cls, root: Path | None = None) -> list[LocalCluster]:
        """Every local cluster that has state on this machine (up, or left degraded), by name."""
        root = root or cache_dir()
        found = [cls._saved(d) for d in sorted((root / "run").glob("*")) if d.is_dir()]
        return [cls(config, root) for config in found if config is not None]

    @staticmethod
    def _saved(run_dir: Path) -> LocalClusterConfig | None:
        saved = run_dir / "config.json"
        if not saved.is_file():
            return None
        raw = json.loads(saved.read_text())
        known = {f.name for f in fields(LocalClusterConfig)}
        return LocalClusterConfig(**{k: v for k, v in raw.items() if k in known})

    @property
    def real(self) -> bool:
        return self.config.node == "real"

    def _components(self) -> list[Component]:
        return components(with_kubelet=self.real, kubernetes=(self.config.kubernetes,))

    def _bin(self, binary: str) -> Path:
        # The kubelet is asked of any cluster (RealNode's paths); it exists only at the default version.
        # kwokctl and the others do not depend on the version: a cluster whose minor is no longer pinned
        # can still be stopped.
        shared = components(with_kubelet=True, kubernetes=())
        comp = next((c for c in shared if binary in c.binaries), None)
        if comp is None:
            if self.config.kubernetes not in PINS:
                raise ClusterError(
                    f"{self.config.name} runs Kubernetes {self.config.kubernetes}, which is no longer pinned "
                    f"({', '.join(PINS)} are): stop it with `pytest-stateful cluster down`"
                )
            comp = control_plane(self.config.kubernetes)
        return comp.bin_dir(self.root) / binary

    def binaries(self) -> dict[str, Path]:
        """Every program the cluster runs; fails in one line when one is not built."""
        builder = Builder(self.root)
        wanted = self._components()
        paths = {b: self._bin(b) for c in wanted for b in c.binaries}
        missing = [str(p) for p in paths.values() if not p.is_file()]
        if missing or not all(builder.is_built(c) for c in wanted):
            build = "pytest-stateful cluster build" + (" --kubelet" if self.real else "")
            if self.config.kubernetes != DEFAULT_MINOR:
                build += f" --kubernetes {self.config.kubernetes}"
            raise ClusterError(f"{missing[0] if missing else 'a component'} is not built: run `{build}` first")
        return paths

    @property
    def version_text(self) -> str:
        """`Kubernetes v1.35.4`, with the feature gates the user set (the defaults go unsaid)."""
        gates = self.config.target.gates_text
        return f"Kubernetes {self.config.target.version}" + (f" with {gates}" if gates else "")

    @property
    def node(self) -> RealNode:
        return RealNode(
            self.run_dir,
            self.kubeconfig,
            self._bin("kubelet"),
            self._bin("coredns"),
            self.root / "images",
            lease_seconds=NODE_LEASE_SECONDS,
        )

    # -- lifecycle --------------------------------------------------------------------

    def _pidfiles(self) -> list[Path]:
        return [
            *sorted((self.cluster_dir / "pids").glob("*.pid")),
            self._coredns_pidfile,
            *sorted((self.run_dir / "node").glob("*.pid")),
        ]

    def not_running(self) -> list[str]:
        """The components of a started cluster whose process is gone (e.g. kube-controller-manager
        after it lost its leader lease while the API server stalled)."""
        return [p.stem for p in self._pidfiles() if p.exists() and not self._pid_alive(p)]

    def is_up(self) -> bool:
        up = self._api_ready() and self._pid_alive(self._coredns_pidfile) and not self.not_running()
        return up and (not self.real or self.node.is_up())

    def up(self, log: Log = print) -> None:
        if self.is_up():
            log(f"[cluster] {self.config.name} is already up ({self.kubeconfig})")
            return
        started = time.monotonic()
        binaries = self.binaries()
        if self.run_dir.exists():
            dead = self.not_running()
            what = f"degraded (not running: {', '.join(dead)})" if dead else "not answering"
            log(f"[cluster] {self.config.name} is {what}: removing it and starting it again")
            self.down(log=lambda _line: None)
        self._check_gates(binaries)
        with procs.file_lock(self.root / "run" / ".ports.lock"):
            # Chosen and claimed (config.json) under one machine-wide lock: two versions starting at once
            # (xdist workers, two sessions) must not pick the same pair.
            if not self.config.api_port or not self.config.dns_port:
                self.config = self._choose_ports()
            for port, flag in ((self.config.api_port, "--api-port"), (self.config.dns_port, "--dns-port")):
                if not _port_free(port):
                    raise ClusterError(
                        f"port {port} on 127.0.0.1 is already in use: stop what holds it or choose another with {flag}"
                    )
            self._claim()
        try:
            self._create(binaries, log)
            if self.real:
                self.node.prepare_network()
            self._start_coredns(binaries["coredns"], log)
            if self.real:
                self.node.start(log)
            self._wait_ready(log)
            if self.real:
                self._start_kube_dns(log)
        except RealNodeError as exc:
            self.down(log=lambda _line: None)
            raise ClusterError(str(exc)) from None
        except BaseException:
            self.down(log=lambda _line: None)
            raise
        log(f"[cluster] {self.config.name} ({self.version_text}) is up in {time.monotonic() - started:.1f}s")

    def _check_gates(self, binaries: dict[str, Path]) -> None:
        """A gate the version does not know (or a typo) stops its API server from starting, and kwokctl
        then waits minutes in silence: refuse it first, with the gates each component lists in --help."""
        wanted = [name for name, _ in self.config.target.gates]
        if not wanted:
            return
        for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            proc = subprocess.run([str(binaries[component]), "--help"], capture_output=True, text=True, timeout=60)
            known = set(re.findall(r"^\s+(?:kube:)?([A-Z][A-Za-z0-9]+)=true\|false", proc.stdout + proc.stderr, re.M))
            unknown = [name for name in wanted if name not in known]
            if unknown:
                near = difflib.get_close_matches(unknown[0], known, n=1)
                hint = f" (did you mean {near[0]}?)" if near else ""
                raise ClusterError(
                    f"--feature-gates: {', '.join(unknown)} is not a feature gate {component} "
                    f"{self.config.target.version} can set{hint}; `{binaries[component]} --help` lists them"
                )

    def _claim(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.json").write_text(json.dumps(asdict(self.config), indent=2) + "\n")

    def _choose_ports(self) -> LocalClusterConfig:
        """The first free API and DNS port pair from this minor's base up, skipping the ports other
        local clusters saved (a stopped one's ports may be free now, but are still its own)."""
        claimed = {
            p for other in LocalCluster.started(self.root) for p in (other.config.api_port, other.config.dns_port)
        }
        offset = int(self.config.kubernetes.split(".")[1])
        for step in range(0, 1000, 100):
            api, dns = VERSION_API_PORT_BASE + offset + step, VERSION_DNS_PORT_BASE + offset + step
            if api not in claimed and dns not in claimed and _port_free(api) and _port_free(dns):
                return replace(
                    self.config,
                    api_port=self.config.api_port or api,
                    dns_port=self.config.dns_port or dns,
                )
        raise ClusterError(
            f"no free port pair for {self.config.name} from {VERSION_API_PORT_BASE + offset} and "
            f"{VERSION_DNS_PORT_BASE + offset} up: choose them with --api-port and --dns-port"
        )

    def down(self, log: Log = print) -> None:
        """Stop every process of this cluster (waiting until each is gone), then remove its state."""
        stopped = []
        if (self.run_dir / "node").exists():
            self.node.stop()  # pods, kubelet and containerd go before the API server they report to
            stopped.append("real node")
        # Our own stop first, with a wait: kwokctl's stop does not wait, and an `up` right
        # after `down` must find the ports free.
        for pidfile in [*sorted((self.cluster_dir / "pids").glob("*.pid")), self._coredns_pidfile]:
            if self._stop_pidfile(pidfile):
                stopped.append(pidfile.stem)
        if self.cluster_dir.exists():
            # `--kubeconfig ""` is refused by delete; a path that does not exist leaves every file alone.
            proc = self._kwokctl(
                ["delete", "cluster", "--kubeconfig", str(self.run_dir / "no-kubeconfig")], check=False
            )
            if proc.returncode != 0:
                log(f"[cluster] kwokctl delete cluster failed: {_last_line(proc.stdout + proc.stderr)}")
        shutil.rmtree(self.run_dir, ignore_errors=True)
        log(f"[cluster] {self.config.name} is down" + (f" (stopped {', '.join(stopped)})" if stopped else ""))

    def status_text(self) -> str:
        dead = self.not_running() if self.run_dir.exists() else []
        if self.is_up():
            state = "up"
        elif dead:
            state = f"degraded: not running: {', '.join(dead)} (`pytest-stateful cluster up` starts it again)"
        elif self.run_dir.exists():
            state = "degraded: the API server does not answer (`pytest-stateful cluster up` starts it again)"
        else:
            state = "down"
        lines = [f"cluster {self.config.name} ({self.version_text}): {state}"]
        for pidfile in self._pidfiles():
            if pidfile.exists():
                pid = pidfile.read_text().strip()
                state = "running" if self._pid_alive(pidfile) else "not running"
                lines.append(f"  {pidfile.stem:<24} pid {pid:<8} {state}")
        if self.kubeconfig.exists():
            lines.append(f"  kubeconfig {self.kubeconfig}")
            lines.append(f"  dns        {self.dns_address}")
        return "\n".join(lines) + "\n"

    def env_text(self) -> str:
        return f"export KUBECONFIG={self.kubeconfig}\nexport PYTEST_STATEFUL_DNS={self.dns_address}\n"

    # -- steps of up ------------------------------------------------------------------

    def _kwokctl(self, args: list[str], check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        kwokctl = self._bin("kwokctl")
        kube_bin = self._bin("kubectl").parent
        env = dict(
            os.environ,
            KWOK_WORKDIR=str(self.kwok_workdir),
            KWOK_KUBE_VERSION=self.config.target.version,
            # kwokctl looks kubectl up on PATH before it would download one: find ours first.
            PATH=f"{kube_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        try:
            proc = subprocess.run(
                [str(kwokctl), "--name", self.config.name, *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            dead = self.not_running()
            logs = {name: self.cluster_dir / "logs" / f"{name}.log" for name in dead}
            said = "; ".join(
                f"{n}: {_last_line(p.read_text(errors='replace'))}" for n, p in logs.items() if p.is_file()
            )
            raise ClusterError(
                f"kwokctl {' '.join(args[:2])} did not finish in {timeout:.0f}s"
                + (f"; exited: {said or ', '.join(dead)}" if dead else "")
            ) from None
        if check and proc.returncode != 0:
            raise ClusterError(f"kwokctl {' '.join(args[:2])} failed: {_last_line(proc.stderr + proc.stdout)}")
        return proc

    def _create(self, binaries: dict[str, Path], log: Log) -> None:
        config = self.run_dir / "kwokctl.yaml"
        config.write_text(yaml.safe_dump_all(self._kwok_documents(binaries), sort_keys=False))
        log("[cluster] starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok-controller")
        self._kwokctl(
            [
                "create",
                "cluster",
                "--config",
                str(config),
                "--runtime",
                "binary",
                "--kubeconfig",
                "",
                "--wait",
                f"{int(self.config.timeout)}s",
            ],
            timeout=self.config.timeout + 60,
        )
        log(f"[cluster] adding {self.config.nodes} simulated nodes")
        self._kwokctl(
            [
                "scale",
                "node",
                "--replicas",
                str(self.config.nodes),
                "--param",
                '.nodeIPs=["127.0.0.1"]',
                "--param",
                '.podCIDRs=["10.0.0.0/24"]',
                "--param",
                f".allocatable={json.dumps(self.allocatable())}",
            ]
        )
        self._kubectl(["apply", "-f", "-"], stdin=yaml.safe_dump(_storage_class()))

    def allocatable(self) -> dict[str, str]:
        """What each simulated node advertises (capacity is the same)."""
        c = self.config
        return {
            "cpu": c.node_cpu,
            "memory": c.node_memory,
            "pods": str(c.node_pods),
            "ephemeral-storage": c.node_ephemeral_storage,
            "hugepages-1Gi": "0",
            "hugepages-2Mi": "0",
        }

    def _kwok_documents(self, binaries: dict[str, Path]) -> list[dict[str, Any]]:
        kwok = next(c for c in components() if c.name == "kwok")
        module_dir = self.root / "go" / "mod" / f"{kwok.module}@{kwok.version}"
        ctl = {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "kind": "KwokctlConfiguration",
            "options": {
                "runtime": "binary",
                "bindAddress": "127.0.0.1",
                "kubeVersion": self.config.target.version,
                "kubeApiserverBinary": str(binaries["kube-apiserver"]),
                "kubeControllerManagerBinary": str(binaries["kube-controller-manager"]),
                "kubeSchedulerBinary": str(binaries["kube-scheduler"]),
                "kubectlBinary": str(binaries["kubectl"]),
                "kwokControllerBinary": str(binaries["kwok"]),
                "etcdBinary": str(binaries["etcd"]),
                "kubeApiserverPort": self.config.api_port,
                # cluster/versions.py: DEFAULT_GATES, then the gates of --feature-gates.
                "kubeFeatureGates": ",".join(gate_words(self.config.target.feature_gates.items())),
                # kwokctl multiplies every heartbeat setting by 5 unless told otherwise.
                "heartbeatFactor": 1,
                "nodeLeaseDurationSeconds": NODE_LEASE_SECONDS,
                "kubeControllerManagerNodeMonitorPeriodMilliseconds": NODE_MONITOR_PERIOD_MS,
                "kubeControllerManagerNodeMonitorGracePeriodMilliseconds": NODE_MONITOR_GRACE_MS,
            },
            "componentsPatches": [
                {
                    # Kubelets (real or simulated) are reached by their Hostname address,
                    # localhost: the API server never dials a node's made-up IP.
                    "name": "kube-apiserver",
                    "extraArgs": [
                        {"key": "kubelet-preferred-address-types", "value": "Hostname,InternalIP"},
                        {"key": "default-not-ready-toleration-seconds", "value": str(DEFAULT_TOLERATION_SECONDS)},
                        {"key": "default-unreachable-toleration-seconds", "value": str(DEFAULT_TOLERATION_SECONDS)},
                    ],
                },
                {
                    "name": "kube-controller-manager",
                    "extraArgs": [{"key": "enable-hostpath-provisioner", "value": "true"}],
                },
                {
                    "name": "kwok-controller",
                    "extraArgs": [
                        # Simulated nodes advertise loopback: whatever talks to a "kubelet" stays here.
                        {"key": "node-ip", "value": "127.0.0.1", "override": True},
                        # Only the nodes `kwokctl scale node` made (annotated kwok.x-k8s.io/node=fake):
                        # a real kubelet's node must never be faked.
                        {"key": "manage-all-nodes", "value": "false", "override": True},
                        {"key": "manage-nodes-with-annotation-selector", "value": "kwok.x-k8s.io/node=fake"},
                    ],
                },
            ],
        }
        return [
            ctl,
            *build_stages(module_dir, self.config.ready_delay_ms, UNREADY_LABEL, self.config.terminate_delay_ms),
        ]

    def _kubectl(self, args: list[str], stdin: str | None = None) -> str:
        kubectl = self._bin("kubectl")
        proc = subprocess.run(
            [str(kubectl), "--kubeconfig", str(self.kubeconfig), "--context", self.context, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if proc.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args[:2])} failed: {_last_line(proc.stderr)}")
        return proc.stdout

    def _start_coredns(self, coredns: Path, log: Log) -> None:
        corefile = self.run_dir / "Corefile"
        listeners = [f"cluster.local:{self.config.dns_port}"]
        binds = ["127.0.0.1"]
        if self.real:
            # The real node's pods ask the bridge's address (their clusterDNS) on port 53.
            listeners.append("cluster.local:53")
            binds.append(GATEWAY)
        corefile.write_text(
            "".join(
                f"{listener} {{\n"
                f"    bind {bind}\n"
                f"    kubernetes cluster.local {{\n"
                f"        kubeconfig {self.kubeconfig} {self.context}\n"
                f"    }}\n"
                f"    errors\n"
                f"}}\n"
                for listener, bind in zip(listeners, binds, strict=True)
            )
        )
        log(f"[cluster] starting CoreDNS on {self.dns_address}")
        with open(self.run_dir / "coredns.log", "ab") as out:
            proc = subprocess.Popen(
                [str(coredns), "-conf", str(corefile)],
                cwd=self.run_dir,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # survives this process; `down` stops it
            )
        self._coredns_pidfile.write_text(f"{proc.pid}\n")

    def _wait_ready(self, log: Log) -> None:
        import dns.exception
        import dns.message
        import dns.query

        deadline = time.monotonic() + self.config.timeout
        last = "nothing yet"
        while time.monotonic() < deadline:
            if not self._pid_alive(self._coredns_pidfile):
                raise ClusterError(f"CoreDNS exited: {_last_line((self.run_dir / 'coredns.log').read_text())}")
            try:
                nodes = json.loads(self._kubectl(["get", "nodes", "-o", "json"]))["items"]
                ready = [n for n in nodes if _node_ready(n)]
                wanted = self.config.nodes + (1 if self.real else 0)
                query = dns.message.make_query("kubernetes.default.svc.cluster.local", "A")
                answer = dns.query.udp(query, "127.0.0.1", port=self.config.dns_port, timeout=1.0)
                answered = bool(answer.answer)
                last = f"{len(ready)}/{wanted} nodes Ready, DNS {'answers' if answered else 'empty'}"
                if len(ready) >= wanted and answered:
                    log(f"[cluster] {last}")
                    return
            except (ClusterError, dns.exception.DNSException, OSError) as exc:
                last = str(exc)
            time.sleep(0.5)
        raise ClusterError(f"the cluster was not ready after {self.config.timeout:.0f}s; last seen: {last}")

    def _start_kube_dns(self, log: Log) -> None:
        log("[cluster] starting the kube-dns pod (CoreDNS, for port-forward probing)")
        self._kubectl(
            ["apply", "-f", "-"],
            stdin=json.dumps({"kind": "List", "apiVersion": "v1", "items": self.node.kube_dns_manifests(self.context)}),
        )
        self._kubectl(["-n", "kube-system", "wait", "--for=condition=Ready", "pod/kube-dns", "--timeout=60s"])

    def _api_ready(self) -> bool:
        if not self.kubeconfig.exists():
            return False
        try:
            self._kubectl(["get", "--raw", "/readyz"])
        except (ClusterError, subprocess.TimeoutExpired):
            return False
        return True

    # -- processes ----------------------------------------------------------------------

    @staticmethod
    def _pid_alive(pidfile: Path) -> bool:
        pid = procs.pid_from(pidfile)
        return pid is not None and procs.alive(pid)

    def _stop_pidfile(self, pidfile: Path) -> bool:
        pid = procs.pid_from(pidfile)
        return pid is not None and procs.stop(pid, str(self.run_dir))


def _storage_class() -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        # kube-controller-manager's host-path provisioner (enabled at start) creates the PVs;
        # the real PV controller binds them.
        "provisioner": "kubernetes.io/host-path",
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }


def _node_ready(node: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in node.get("status", {}).get("conditions", [])
    )


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As Go's listeners do: a port in TIME_WAIT after `down` is free to them.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """--kubernetes and --feature-gates: which local cluster a verb starts, stops or describes."""
    parser.add_argument(
        "--kubernetes",
        default=None,
        metavar="MINOR",
        help=f"Kubernetes minor of the cluster: {', '.join(PINS)} (default {DEFAULT_MINOR}); each version and set "
        "of feature gates is a cluster of its own, side by side with the others",
    )
    parser.add_argument(
        "--feature-gates",
        default="",
        metavar="NAME=BOOL,...",
        help="feature gates set on top of the defaults (MaxUnavailableStatefulSet=true), for every component",
    )


def target_of(args: argparse.Namespace) -> Target:
    minor = parse_minor(args.kubernetes, "--kubernetes") if args.kubernetes else DEFAULT_MINOR
    return Target(minor, parse_gates(args.feature_gates or "", "--feature-gates"))
