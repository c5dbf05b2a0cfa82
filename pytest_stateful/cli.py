"""`pytest-stateful cluster build|up|down|status|env`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pytest_stateful.cluster.build import Builder, cache_dir, components
from pytest_stateful.cluster.local import LocalCluster, LocalClusterConfig
from pytest_stateful.errors import ClusterError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pytest-stateful", description=__doc__)
    sub = parser.add_subparsers(dest="group", required=True)
    cluster = sub.add_parser("cluster", help="the local cluster (no Docker needed)")
    verbs = cluster.add_subparsers(dest="verb", required=True)

    build = verbs.add_parser("build", help=f"build the pinned upstream programs into {cache_dir()}/bin")
    build.add_argument("--kubelet", action="store_true", help="also build the kubelet (real-node mode)")

    up = verbs.add_parser("up", help="start the local cluster (idempotent)")
    LocalClusterConfig.add_arguments(up)
    for name, text in (
        ("down", "stop the local cluster and remove its state (the build cache stays); both kinds without --node"),
        ("status", "say what runs"),
        ("env", "print shell exports: KUBECONFIG, PYTEST_STATEFUL_DNS"),
    ):
        verb = verbs.add_parser(name, help=text)
        verb.add_argument(
            "--node",
            choices=("simulated", "real"),
            default=None if name in ("down", "status") else "simulated",
            help="which local cluster: the simulated-node one (default) or the real-node one",
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.verb == "build":
            Builder(cache_dir()).build_all(components(with_kubelet=args.kubelet))
            return 0
        if args.verb == "up":
            cluster = LocalCluster(LocalClusterConfig.from_arguments(args))
            cluster.up(log=_log)
            print(cluster.env_text(), end="")
            return 0
        kinds = [args.node] if args.node else ["simulated", "real"]
        clusters = [LocalCluster.current(node) for node in kinds]
        if args.verb == "down":
            for cluster in [c for c in clusters if args.node or c.run_dir.exists()] or clusters[:1]:
                cluster.down(log=_log)
            return 0
        if args.verb == "status":
            shown = [c for c in clusters if args.node or c.run_dir.exists()] or clusters[:1]
            print("".join(c.status_text() for c in shown), end="")
            return 0 if all(c.is_up() for c in shown) else 3
        cluster = clusters[0]
        if args.verb == "env":
            if not cluster.is_up():
                flag = " --node real" if args.node == "real" else ""
                raise ClusterError(
                    f"the local cluster is not running: start it with `pytest-stateful cluster up{flag}`"
                )
            print(cluster.env_text(), end="")
        return 0
    except ClusterError as exc:
        print(f"pytest-stateful: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pytest-stateful: interrupted", file=sys.stderr)
        return 130


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
