"""Benchmarks on the local cluster; their figures go in the README (not timed tests).

    .venv/bin/python benchmarks/bench.py overhead     # overhead and detection latency
    .venv/bin/python benchmarks/bench.py scale 30 300 # record and check N-replica rollouts

overhead: wall time of a scenario minus the time the cluster itself needed, read
from the timeline (for each step, from its start to the last cluster event or DNS
answer it waited for). detection latency: from receiving the event that completed a
step's goal to the step's wait returning. scale: peak memory of this process and the
cost of running every check over the record, for each replica count.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "cluster"))

from workloads import web

from pytest_stateful.checks import GUARANTEES, run_check
from pytest_stateful.cluster.providers import ProviderOptions, connect
from pytest_stateful.timeline import EVENT, GAP, STEP, Timeline
from pytest_stateful.workload.session import scenario


def cluster_time(timeline: Timeline) -> float:
    """Seconds the cluster spent on the steps: from each step's start to the last thing it waited for
    (a pod, claim, EndpointSlice or StatefulSet change, or the DNS answer that converged)."""
    total = 0.0
    begin: float | None = None
    last = 0.0
    for e in timeline:
        if e.kind == STEP and e.type == "begin":
            begin = last = e.t
        elif e.kind == STEP and e.type == "end" and begin is not None:
            total += last - begin
            begin = None
        elif begin is not None and e.kind not in (EVENT, GAP, STEP):
            last = e.t
    return total


def overhead(rounds: int = 3) -> None:
    cluster = connect(ProviderOptions("local"))
    rows = []
    detections: list[float] = []
    for i in range(rounds):
        started = time.monotonic()
        with scenario(cluster, f"bench-overhead-{i}") as rec:
            sts = rec.statefulset(web(replicas=3, claims=True))
            sts.scale(5)
            sts.delete_pod(0)
            sts.delete_pods()
            sts.update_image("nginx", "nginx:1.10")
            sts.scale(2)
            verdicts = {g: sts.verdict(g) for g in GUARANTEES}
            detections += sts.detection_latencies
        wall = time.monotonic() - started
        timeline = rec.recorder.timeline
        spent = cluster_time(timeline)
        rows.append((wall, spent))
        assert all(v.passed for v in verdicts.values()), {g: v.summary for g, v in verdicts.items() if not v.passed}
    for wall, spent in rows:
        print(
            f"scenario wall {wall:6.2f} s, cluster {spent:6.2f} s, overhead {wall - spent:5.2f} s "
            f"({(wall - spent) / spent * 100:4.1f}% of the cluster's time)"
        )
    print(
        f"detection latency over {len(detections)} waits: median {statistics.median(detections) * 1000:.1f} ms, "
        f"max {max(detections) * 1000:.1f} ms"
    )
    cluster.close()


def scale(counts: list[int]) -> None:
    cluster = connect(ProviderOptions("local"))
    for replicas in counts:
        started = time.monotonic()
        with scenario(cluster, f"bench-scale-{replicas}", timeout=max(120.0, replicas * 2.0)) as rec:
            sts = rec.statefulset(web(replicas=replicas))
        rollout = time.monotonic() - started
        timeline = rec.recorder.timeline
        t0 = time.perf_counter()
        verdicts = {g: run_check(g, timeline, sts.subject) for g in GUARANTEES}
        checking = time.perf_counter() - t0
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        held = [g for g, v in verdicts.items() if v.passed]
        print(
            f"{replicas:4d} replicas: rollout {rollout:6.1f} s, {len(timeline):6d} events, all checks "
            f"{checking * 1000:7.1f} ms ({checking / len(timeline) * 1e6:5.1f} us/event), peak RSS {peak_mb:6.1f} MB, "
            f"held: {', '.join(held)}"
        )
    cluster.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["overhead"]:
        overhead()
    elif sys.argv[1:2] == ["scale"]:
        scale([int(n) for n in sys.argv[2:]] or [30, 300])
    else:
        sys.exit(__doc__)
