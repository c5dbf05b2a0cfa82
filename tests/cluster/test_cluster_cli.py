"""Issue 2: `pytest-stateful cluster ...` on this machine: a second cluster's whole life, and bad input."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_stateful.cluster.build import cache_dir
from pytest_stateful.cluster.local import LocalCluster, LocalClusterConfig
from pytest_stateful.errors import ClusterError


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            raw = cmdline.read_bytes().decode(errors="replace")
        except OSError:
            continue
        if text in raw:
            found.append(raw.replace("\0", " ")[:120])
    return found


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_stateful.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_second_cluster_up_status_down_leaves_nothing() -> None:
    cluster = LocalCluster(LocalClusterConfig(name="lifecycle", nodes=1, api_port=16543, dns_port=10153))
    try:
        cluster.up(log=lambda _line: None)
        assert cluster.is_up()
        status = cluster.status_text()
        for component in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "coredns"):
            assert f"{component} " in status
        assert "export PYTEST_STATEFUL_DNS=127.0.0.1:10153" in cluster.env_text()
        cluster.up(log=lambda _line: None)  # idempotent
    finally:
        cluster.down(log=lambda _line: None)
    assert not cluster.run_dir.exists()
    assert _processes_mentioning(str(cluster.run_dir)) == []
    assert not cluster.is_up()


def test_up_with_api_port_taken_fails_in_one_line_and_starts_nothing() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        cluster = LocalCluster(LocalClusterConfig(name="port-taken", api_port=port, dns_port=10253))
        with pytest.raises(ClusterError) as failed:
            cluster.up(log=lambda _line: None)
    assert str(failed.value) == (
        f"port {port} on 127.0.0.1 is already in use: stop what holds it or choose another with --api-port"
    )
    assert not cluster.run_dir.exists()
    assert _processes_mentioning(str(cluster.run_dir)) == []


def test_up_with_dns_port_taken_fails(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        cluster = LocalCluster(LocalClusterConfig(name="dns-taken", api_port=16643, dns_port=port))
        with pytest.raises(ClusterError, match=f"port {port} on 127.0.0.1 is already in use.*--dns-port"):
            cluster.up(log=lambda _line: None)
    assert not cluster.run_dir.exists()


def test_up_with_a_binary_missing_fails_in_one_line(tmp_path: Path) -> None:
    env = {"PYTEST_STATEFUL_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = _cli("cluster", "up", env=env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("pytest-stateful: ")
    assert lines[0].endswith("is not built: run `pytest-stateful cluster build` first")
    assert not (tmp_path / "run" / "pytest-stateful").exists()


def test_status_and_env_of_a_cluster_that_is_down(tmp_path: Path) -> None:
    env = {"PYTEST_STATEFUL_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"}
    status = _cli("cluster", "status", env=env)
    assert (status.returncode, status.stdout) == (3, "cluster pytest-stateful (Kubernetes v1.34.4): down\n")
    result = _cli("cluster", "env", env=env)
    assert result.returncode == 1
    assert "not running: start it with `pytest-stateful cluster up`" in result.stderr


def test_env_of_the_running_cluster_points_at_loopback() -> None:
    result = _cli("cluster", "env", env={"PYTEST_STATEFUL_CACHE": str(cache_dir()), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("export KUBECONFIG=") and lines[0].endswith("kubeconfig.yaml")
    assert lines[1].startswith("export PYTEST_STATEFUL_DNS=127.0.0.1:")


def test_build_without_go_fails_in_one_sentence(tmp_path: Path) -> None:
    result = _cli("cluster", "build", env={"PYTEST_STATEFUL_CACHE": str(tmp_path), "PATH": "/nonexistent"})
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "pytest-stateful: The Go toolchain was not found on PATH: install Go 1.24 or newer "
        "(and a GOPROXY it can reach) and run `pytest-stateful cluster build` again."
    )


def test_build_with_warm_cache_takes_seconds() -> None:
    result = _cli(
        "cluster", "build", env={"PYTEST_STATEFUL_CACHE": str(cache_dir()), "PATH": "/usr/local/go/bin:/usr/bin:/bin"}
    )
    assert result.returncode == 0, result.stderr
    assert "kubernetes v1.34.4: cached" in result.stdout


def test_build_without_module_proxy_fails_in_one_sentence(tmp_path: Path) -> None:
    env = {
        "PYTEST_STATEFUL_CACHE": str(tmp_path),
        "PATH": "/usr/local/go/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "GOPROXY": "off",
    }
    result = _cli("cluster", "build", env=env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        "pytest-stateful: Could not fetch sigs.k8s.io/kwok@v0.8.0 through the Go module proxy (GOPROXY=off): "
    )
