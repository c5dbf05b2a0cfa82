"""A real node beside the local control plane: the kubelet with Debian's containerd, runc and CNI plugins.

Pods run for real, in network namespaces on a bridge this module creates
(`pst0`, 10.244.0.0/24, no route anywhere else); their DNS server is the
cluster's CoreDNS, which also listens on the bridge's address. The node is
called `localhost`, so the API server reaches its kubelet (exec, logs) on
127.0.0.1. Everything lives under the cluster's run directory and `stop`
removes it: containers, shims, mounts, network namespaces, the bridge.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from pytest_stateful.cluster import procs
from pytest_stateful.cluster.images import build_images, import_images
from pytest_stateful.errors import RealNodeError

BRIDGE = "pst0"
GATEWAY = "10.244.0.1"
BRIDGE_MAC = "02:70:73:74:00:01"  # locally administered
SUBNET = "10.244.0.0/24"
NODE_NAME = "localhost"
KUBE_DNS_PORT = 1053
PACKAGES = {
    "containerd": "containerd",
    "runc": "runc",
    "ctr": "containerd",
    "umoci": "umoci",
}
CNI_DIR = Path("/usr/lib/cni")

Log = Callable[[str], None]


def missing_prerequisites() -> list[str]:
    """Debian packages the real node needs that are not installed."""
    missing = {pkg for tool, pkg in PACKAGES.items() if shutil.which(tool) is None}
    if not (CNI_DIR / "bridge").is_file():
        missing.add("containernetworking-plugins")
    if not Path("/bin/busybox").is_file():
        missing.add("busybox-static")
    return sorted(missing)


class RealNode:
    def __init__(
        self, run_dir: Path, kubeconfig: Path, kubelet: Path, coredns: Path, images_dir: Path, lease_seconds: int = 40
    ) -> None:
        self.dir = run_dir / "node"
        self.kubeconfig, self.kubelet, self.coredns, self.images_dir = kubeconfig, kubelet, coredns, images_dir
        self.lease_seconds = lease_seconds

    @property
    def socket(self) -> Path:
        return self.dir / "containerd.sock"

    def _pidfile(self, name: str) -> Path:
        return self.dir / f"{name}.pid"

    # -- up ---------------------------------------------------------------------------

    def prepare_network(self) -> None:
        """The bridge must exist before CoreDNS binds its address and before the first pod."""
        missing = missing_prerequisites()
        if missing:
            raise RealNodeError(
                f"the real node needs Debian packages that are missing: {' '.join(missing)} "
                "(install them with `./run setup --real-node`)"
            )
        if os.geteuid() != 0:
            raise RealNodeError("the real node needs root (network namespaces, mounts, cgroups)")
        if subprocess.run(["ip", "link", "show", BRIDGE], capture_output=True).returncode != 0:
            # A fixed address: a bridge otherwise takes its ports' lowest MAC, which changes as pods
            # come and go, and the pods' ARP caches then point at nothing for half a minute.
            _sh(["ip", "link", "add", BRIDGE, "address", BRIDGE_MAC, "type", "bridge"])
        _sh(["ip", "addr", "replace", f"{GATEWAY}/24", "dev", BRIDGE])
        _sh(["ip", "link", "set", BRIDGE, "up"])

    def start(self, log: Log) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._write_configs()
        log("[cluster] starting containerd (real node)")
        self._spawn("containerd", ["containerd", "--config", str(self.dir / "containerd.toml")])
        self._wait(lambda: self.socket.exists(), 20, "containerd's socket")
        log("[cluster] importing the node's images (busybox-static, built with umoci)")
        import_images(build_images(self.images_dir, self.coredns), self.socket)
        log("[cluster] starting the kubelet (node localhost)")
        self.start_kubelet()

    def start_kubelet(self) -> None:
        """(Re)start the kubelet; after stop_kubelet it finds the containers it left running and
        reconciles them with the API server (a pod deleted meanwhile has its containers killed)."""
        self._stopped_marker.unlink(missing_ok=True)
        self._spawn(
            "kubelet",
            [
                str(self.kubelet),
                "--config",
                str(self.dir / "kubelet.yaml"),
                "--kubeconfig",
                str(self.kubeconfig),
                "--root-dir",
                str(self.dir / "kubelet"),
                "--cert-dir",
                str(self.dir / "kubelet-pki"),
                "--hostname-override",
                NODE_NAME,
            ],
        )

    def _write_configs(self) -> None:
        state = self.dir / "containerd"
        (self.dir / "cni").mkdir(parents=True, exist_ok=True)
        (self.dir / "containerd.toml").write_text(
            f"""version = 2
root = "{state}/root"
state = "{state}/state"
[grpc]
  address = "{self.socket}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "pytest-stateful.local/pause:1"
  # This machine grants no CAP_SYS_RESOURCE: pods may not lower their oom_score_adj below ours.
  restrict_oom_score_adj = true
  # Network namespaces under our state dir, so `down` finds and removes every one.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_DIR}"
    conf_dir = "{self.dir / "cni"}"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
"""
        )
        (self.dir / "cni" / "10-pytest-stateful.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "0.4.0",
                    "name": "pytest-stateful",
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": BRIDGE,
                            "isGateway": True,
                            "ipMasq": False,  # pods talk to the node and each other, nowhere else
                            "ipam": {
                                "type": "host-local",
                                "ranges": [[{"subnet": SUBNET, "gateway": GATEWAY}]],
                                "dataDir": str(self.dir / "ipam"),
                            },
                        },
                        {"type": "loopback"},
                    ],
                }
            )
        )
        (self.dir / "kubelet.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kubelet.config.k8s.io/v1beta1",
                    "kind": "KubeletConfiguration",
                    "address": "127.0.0.1",
                    "readOnlyPort": 0,
                    "healthzBindAddress": "127.0.0.1",
                    "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
                    "authorization": {"mode": "AlwaysAllow"},
                    "cgroupDriver": "cgroupfs",
                    "failCgroupV1": False,  # this machine mounts cgroup v1
                    "failSwapOn": False,
                    "clusterDomain": "cluster.local",
                    "clusterDNS": [GATEWAY],
                    "containerRuntimeEndpoint": f"unix://{self.socket}",
                    "imageServiceEndpoint": f"unix://{self.socket}",
                    "resolvConf": "/dev/null",
                    "cgroupsPerQOS": False,
                    "enforceNodeAllocatable": [],
                    "evictionHard": {},
                    "imageGCHighThresholdPercent": 100,
                    "imageGCLowThresholdPercent": 99,
                    "localStorageCapacityIsolation": False,
                    # Renewed every quarter of this: the control plane notices a stopped kubelet in seconds.
                    "nodeLeaseDurationSeconds": self.lease_seconds,
                }
            )
        )

    def kube_dns_manifests(self, context: str) -> list[dict[str, object]]:
        """CoreDNS as a pod labelled k8s-app=kube-dns, as clusters such as kind run it.

        It shares the node's network (the API server listens on 127.0.0.1 only) and
        answers on 127.0.0.1:1053; probes reach it through the API server's port-forward.
        """
        corefile = (
            f".:{KUBE_DNS_PORT} {{\n    bind 127.0.0.1\n    kubernetes cluster.local {{\n"
            f"        kubeconfig {self.kubeconfig} {context}\n    }}\n    errors\n}}\n"
        )
        (self.dir / "kube-dns").mkdir(parents=True, exist_ok=True)
        (self.dir / "kube-dns" / "Corefile").write_text(corefile)
        state = str(self.kubeconfig.parent)
        return [
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
                "spec": {
                    "hostNetwork": True,
                    "containers": [
                        {
                            "name": "coredns",
                            "image": "pytest-stateful.local/coredns:1",
                            "imagePullPolicy": "Never",
                            "args": ["-conf", str(self.dir / "kube-dns" / "Corefile")],
                            "ports": [{"containerPort": KUBE_DNS_PORT, "protocol": "TCP", "name": "dns-tcp"}],
                            "volumeMounts": [
                                {"name": "conf", "mountPath": str(self.dir / "kube-dns"), "readOnly": True},
                                {"name": "cluster", "mountPath": state, "readOnly": True},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "conf", "hostPath": {"path": str(self.dir / "kube-dns")}},
                        {"name": "cluster", "hostPath": {"path": state}},
                    ],
                },
            }
        ]

    # -- failure (fail_node) ------------------------------------------------------------

    def stop_kubelet(self, owner: str = "{}") -> None:
        """The node fails as a kubelet crash does: no more heartbeats, while containerd and every
        container keep running (nobody confirms to the API server that they stopped). The marker keeps
        `is_up` true meanwhile: a failed node is part of the test, not a broken cluster to restart."""
        self._stopped_marker.write_text(owner)
        self._stop("kubelet")
        self._pidfile("kubelet").unlink(missing_ok=True)

    def stopped_by(self) -> dict[str, dict[str, str]] | None:
        """Who stopped the kubelet ({"labels", "annotations"} of the failing session), or None."""
        try:
            found = json.loads(self._stopped_marker.read_text())
        except (OSError, ValueError):
            return None
        return found if isinstance(found, dict) else None

    @property
    def _stopped_marker(self) -> Path:
        return self.dir / "kubelet.stopped"

    def kubelet_running(self) -> bool:
        pid = procs.pid_from(self._pidfile("kubelet"))
        return pid is not None and procs.alive(pid)

    def running_containers(self, pod_uid: str) -> list[str]:
        """The containers (not sandboxes) of that pod whose task containerd runs: "name (pid N)"."""
        if not self.socket.exists():
            return []
        ctr = ["ctr", "--address", str(self.socket), "-n", "k8s.io"]
        wanted = f'labels."io.kubernetes.pod.uid"=={pod_uid},labels."io.cri-containerd.kind"==container'
        listed = subprocess.run([*ctr, "containers", "ls", wanted], capture_output=True, text=True, timeout=30)
        ids = [line.split()[0] for line in listed.stdout.splitlines()[1:] if line.strip()]
        if not ids:
            return []
        tasks = subprocess.run([*ctr, "tasks", "ls"], capture_output=True, text=True, timeout=30)
        running = {}
        for line in tasks.stdout.splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 3 and parts[2] == "RUNNING":
                running[parts[0]] = parts[1]
        found = []
        for cid in ids:
            if cid not in running:
                continue
            info = subprocess.run([*ctr, "containers", "info", cid], capture_output=True, text=True, timeout=30)
            try:
                name = json.loads(info.stdout)["Labels"].get("io.kubernetes.container.name", cid[:12])
            except (ValueError, KeyError, AttributeError):
                name = cid[:12]
            found.append(f"{name} (pid {running[cid]})")
        return sorted(found)

    # -- down -------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop("kubelet")
        if self.socket.exists():
            ctr = ["ctr", "--address", str(self.socket), "-n", "k8s.io"]
            tasks = subprocess.run([*ctr, "tasks", "ls", "-q"], capture_output=True, text=True, timeout=30)
            for task in tasks.stdout.split():
                subprocess.run([*ctr, "tasks", "kill", "-s", "SIGKILL", task], capture_output=True, timeout=30)
                subprocess.run([*ctr, "tasks", "delete", "-f", task], capture_output=True, timeout=30)
        self._stop("containerd")
        # Shims and containers that outlived containerd: anything naming our directory.
        for pid in procs.pids_mentioning(str(self.dir)):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for mount in sorted(procs.mounts_under(self.dir), key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True)
        with contextlib.suppress(OSError):
            subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def is_up(self) -> bool:
        def alive(name: str) -> bool:
            pid = procs.pid_from(self._pidfile(name))
            return pid is not None and procs.alive(pid)

        return alive("containerd") and (alive("kubelet") or self._stopped_marker.exists())

    # -- helpers ----------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str]) -> None:
        with open(self.dir / f"{name}.log", "ab") as out:
            proc = subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.dir,
            )
        self._pidfile(name).write_text(f"{proc.pid}\n")

    def _stop(self, name: str) -> None:
        pid = procs.pid_from(self._pidfile(name))
        if pid is not None:
            procs.stop(pid, str(self.dir), grace=10)

    def _wait(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            time.sleep(0.1)
        raise RealNodeError(f"{what} did not appear within {timeout:.0f} s (see {self.dir})")


def _sh(args: list[str]) -> None:
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RealNodeError(f"{' '.join(args)} failed: {proc.stderr.strip()}")
