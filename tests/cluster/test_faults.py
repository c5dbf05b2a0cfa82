"""Infrastructure faults on a local cluster of their own: the API server killed or restarted, etcd killed,
a control-plane component gone. Each is named as the cluster's failure in one sentence, within bounded
time, and never turns into a passed verdict; `up` repairs a degraded cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from workloads import web

from pytest_stateful.cluster.local import LocalCluster, LocalClusterConfig
from pytest_stateful.cluster.providers import ClusterHandle, ProviderOptions, connect
from pytest_stateful.errors import ApiError, InfrastructureError, StatefulError
from pytest_stateful.timeline import POD
from pytest_stateful.workload.session import scenario

# A cluster of its own, so killing its parts never disturbs the session's cluster.
FAULTS = LocalClusterConfig(name="pytest-stateful-faults", nodes=1, api_port=16445, dns_port=10055)
QUIET = lambda _line: None  # noqa: E731


@pytest.fixture(scope="module")
def faults() -> Iterator[LocalCluster]:
    cluster = LocalCluster(FAULTS)
    cluster.up(log=QUIET)
    try:
        yield cluster
    finally:
        cluster.down(log=QUIET)


@pytest.fixture
def cluster(faults: LocalCluster) -> Iterator[ClusterHandle]:
    faults.up(log=QUIET)  # repairs what the previous test broke
    handle = connect(ProviderOptions("existing", str(faults.kubeconfig), faults.context, faults.dns_address), log=QUIET)
    try:
        yield handle
    finally:
        handle.close()


def _pidfile(cluster: LocalCluster, component: str) -> Path:
    return cluster.cluster_dir / "pids" / f"{component}.pid"


def _kill(cluster: LocalCluster, component: str) -> int:
    pid = int(_pidfile(cluster, component).read_text().strip())
    os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        time.sleep(0.05)
    return pid


def _restart(cluster: LocalCluster, component: str, down_for: float) -> None:
    """Kill a component and start it again with the same command line, as a supervisor would."""
    pid = int(_pidfile(cluster, component).read_text().strip())
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    env = dict(
        item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0") if "=" in item
    )
    cwd = os.readlink(f"/proc/{pid}/cwd")
    _kill(cluster, component)
    time.sleep(down_for)
    log = open(cluster.run_dir / f"{component}-restarted.log", "ab")  # noqa: SIM115 - the process keeps it
    proc = subprocess.Popen(
        [a.decode() for a in argv], env=env, cwd=cwd, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    _pidfile(cluster, component).write_text(f"{proc.pid}\n")


def test_api_server_killed_during_a_step_is_one_sentence_within_seconds(
    faults: LocalCluster, cluster: ClusterHandle
) -> None:
    with scenario(cluster, "apiserver-killed", timeout=90) as rec:
        sts = rec.statefulset(web(replicas=2))
        _kill(faults, "kube-apiserver")
        started = time.monotonic()
        with pytest.raises(StatefulError) as failed:
            sts.scale(3)
        took = time.monotonic() - started
        print(f"FAULT-TIMING {took:.1f} s: {failed.value}")  # the figure in docs/reliability.md
    message = str(failed.value)
    assert isinstance(failed.value, ApiError | InfrastructureError), repr(failed.value)
    assert took < 40, f"took {took:.0f} s to say: {message}"
    assert "\n" not in message and len(message) < 400, message
    assert "no answer from the API server" in message or "lost the watch" in message, message


def test_api_server_restarted_during_a_run_never_passes_over_lost_events(
    faults: LocalCluster, cluster: ClusterHandle
) -> None:
    with scenario(cluster, "apiserver-restarted", timeout=90) as rec:
        sts = rec.statefulset(web(replicas=2))
        _restart(faults, "kube-apiserver", down_for=3.0)
        sts.delete_pod(0)  # the watches reconnect while this runs
        sts.scale(3)
        verdicts = {g: sts.verdict(g) for g in ("ordered_creation", "stable_identity", "pod_dns")}
    gaps = sts.timeline.gaps()
    for guarantee, verdict in verdicts.items():
        if gaps:
            # Events were lost when the new API server could not resume a watch: never passed.
            assert verdict.status == "incomplete", verdict.explain()
        else:
            # Every watch resumed from its last resourceVersion: nothing was lost, so a pass is sound.
            assert verdict.status == "passed", (guarantee, verdict.explain())
    assert sts.recorder.errors, "the restart went unnoticed by the recorder"
    assert any(e.kind == POD and e.name == "web-2" for e in sts.timeline)


def test_etcd_killed_is_named_within_bounded_time(faults: LocalCluster, cluster: ClusterHandle) -> None:
    with scenario(cluster, "etcd-killed", timeout=90) as rec:
        sts = rec.statefulset(web(replicas=2))
        _kill(faults, "etcd")
        started = time.monotonic()
        with pytest.raises(StatefulError) as failed:
            sts.delete_pod(1)
        took = time.monotonic() - started
        print(f"FAULT-TIMING {took:.1f} s: {failed.value}")  # the figure in docs/reliability.md
    message = str(failed.value)
    assert isinstance(failed.value, ApiError | InfrastructureError), repr(failed.value)
    assert took < 75, f"took {took:.0f} s to say: {message}"
    assert "\n" not in message, message
    assert "API server" in message or "etcd" in message, message
    assert "etcd failed" in message, message  # the API server's own readiness report names etcd


def test_a_dead_component_makes_the_cluster_degraded_and_up_repairs_it(faults: LocalCluster) -> None:
    faults.up(log=QUIET)
    _kill(faults, "kube-controller-manager")
    assert not faults.is_up()
    status = faults.status_text()
    assert "degraded: not running: kube-controller-manager" in status, status
    said: list[str] = []
    faults.up(log=said.append)
    assert any("degraded (not running: kube-controller-manager)" in line for line in said), said
    assert faults.is_up()
