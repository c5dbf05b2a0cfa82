"""`pytest-stateful cluster build|up|down|status|env` and `pytest-stateful clean`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from kubernetes import client, config

from pytest_stateful.cluster.build import Builder, cache_dir, components
from pytest_stateful.cluster.local import LocalCluster, LocalClusterConfig, add_target_arguments, target_of
from pytest_stateful.cluster.versions import DEFAULT_MINOR, PINS, parse_minor
from pytest_stateful.errors import ClusterError, UsageError
from pytest_stateful.workload.cleanup import sweep


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pytest-stateful", description=__doc__)
    sub = parser.add_subparsers(dest="group", required=True)
    cluster = sub.add_parser("cluster", help="the local cluster (no Docker needed)")
    verbs = cluster.add_subparsers(dest="verb", required=True)

    build = verbs.add_parser("build", help=f"build the pinned upstream programs into {cache_dir()}/bin")
    build.add_argument("--kubelet", action="store_true", help="also build the kubelet (real-node mode)")
    build.add_argument(
        "--kubernetes",
        default=DEFAULT_MINOR,
        metavar="MINOR,...",
        help=f"the Kubernetes minors to build control planes for: {', '.join(PINS)} (default {DEFAULT_MINOR}); "
        "each extra one takes about 6 minutes on 2 cores with a cold cache",
    )

    up = verbs.add_parser("up", help="start the local cluster (idempotent)")
    LocalClusterConfig.add_arguments(up)
    for name, text in (
        (
            "down",
            "stop the local cluster and remove its state (the build cache stays); "
            "every local cluster without --node, --kubernetes or --feature-gates",
        ),
        ("status", "say what runs (every local cluster without --node, --kubernetes or --feature-gates)"),
        ("env", "print shell exports: KUBECONFIG, PYTEST_STATEFUL_DNS"),
    ):
        verb = verbs.add_parser(name, help=text)
        verb.add_argument(
            "--node",
            choices=("simulated", "real"),
            default=None,
            help="which local cluster: the simulated-node one (default) or the real-node one",
        )
        add_target_arguments(verb)
    clean = sub.add_parser(
        "clean",
        help="delete the namespaces (and Released PersistentVolumes) that ended pytest sessions left behind",
        description="Delete the namespaces labelled pytest-stateful.io/owned=true whose session has ended "
        "(its pid no longer runs on this host, or it was created on another host over an hour ago), then the "
        "Released PersistentVolumes whose claim was in a namespace named as the plugin names them "
        "(stateful-<test>-<6 hex>) that no longer exists. Namespaces of sessions that may still run and "
        "namespaces kept with --stateful-keep-namespace are left alone unless asked. The local cluster by default.",
    )
    clean.add_argument(
        "--all",
        action="store_true",
        help="every namespace pytest-stateful created, also those of sessions that look alive and kept ones: "
        "only when no pytest run uses this cluster",
    )
    clean.add_argument("--kept", action="store_true", help="also the namespaces kept with --stateful-keep-namespace")
    clean.add_argument("--dry-run", action="store_true", help="say what would be deleted; delete nothing")
    clean.add_argument("--kubeconfig", help="an existing cluster's kubeconfig (needs --context; default: local)")
    clean.add_argument("--context", help="the context in --kubeconfig (never a current context by default)")
    clean.add_argument(
        "--node", choices=("simulated", "real"), default="simulated", help="which local cluster (default simulated)"
    )
    add_target_arguments(clean)
    return parser


def _clean(args: argparse.Namespace) -> int:
    if bool(args.kubeconfig) != bool(args.context):
        raise UsageError("--kubeconfig and --context go together: the current context is never used on its own")
    if args.kubeconfig:
        path, context = Path(args.kubeconfig).expanduser(), str(args.context)
        if not path.is_file():
            raise ClusterError(f"--kubeconfig {path}: no such file")
    else:
        local = LocalCluster.current(args.node, target_of(args))
        if not local.is_up():
            flag = " --node real" if args.node == "real" else ""
            flag += f" --kubernetes {args.kubernetes}" if args.kubernetes else ""
            flag += f" --feature-gates {args.feature_gates}" if args.feature_gates else ""
            raise ClusterError(
                f"the local cluster is not running (`pytest-stateful cluster up{flag}`): nothing to clean"
            )
        path, context = local.kubeconfig, local.context
    try:
        api = config.new_client_from_config(config_file=str(path), context=context)
    except (config.ConfigException, ValueError, OSError) as exc:
        raise ClusterError(f"cannot use context {context!r} of {path}: {exc}") from exc
    try:
        result = sweep(client.CoreV1Api(api), everything=args.all, kept=args.kept, dry_run=args.dry_run)
    finally:
        api.close()
    verb = "would delete" if args.dry_run else "deleted"
    print(result.summary(verb) or "nothing to clean: no namespace of an ended session, no Released volume of one")
    if result.live:
        print(
            f"left {len(result.live)} namespaces of sessions that may still run (--all deletes them): "
            + ", ".join(sorted(result.live))
        )
    if result.kept:
        print(
            f"left {len(result.kept)} namespaces kept for debugging (--kept deletes them): "
            + ", ".join(sorted(result.kept))
        )
    return 1 if result.errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.group == "clean":
            return _clean(args)
        if args.verb == "build":
            minors = [parse_minor(m, "--kubernetes") for m in args.kubernetes.split(",") if m.strip()]
            Builder(cache_dir()).build_all(components(with_kubelet=args.kubelet, kubernetes=minors))
            return 0
        if args.verb == "up":
            cluster = LocalCluster(LocalClusterConfig.from_arguments(args))
            cluster.up(log=_log)
            print(cluster.env_text(), end="")
            return 0
        chosen = bool(args.node or args.kubernetes or args.feature_gates)
        if chosen:
            clusters = [LocalCluster.current(args.node or "simulated", target_of(args))]
        else:
            # Every cluster with state here: both node kinds, every version and set of gates.
            clusters = LocalCluster.started() or [LocalCluster.current()]
        if args.verb == "down":
            failed = []
            for cluster in clusters:
                # One cluster that cannot be stopped must not leave the others running.
                try:
                    cluster.down(log=_log)
                except ClusterError as exc:
                    failed.append(f"{cluster.config.name}: {exc}")
            if failed:
                raise ClusterError("could not stop " + "; ".join(failed))
            return 0
        if args.verb == "status":
            print("".join(c.status_text() for c in clusters), end="")
            return 0 if all(c.is_up() for c in clusters) else 3
        cluster = clusters[0] if chosen else LocalCluster.current()
        if args.verb == "env":
            if not cluster.is_up():
                flags = " --node real" if args.node == "real" else ""
                flags += f" --kubernetes {args.kubernetes}" if args.kubernetes else ""
                flags += f" --feature-gates {args.feature_gates}" if args.feature_gates else ""
                raise ClusterError(
                    f"the local cluster is not running: start it with `pytest-stateful cluster up{flags}`"
                )
            print(cluster.env_text(), end="")
        return 0
    except UsageError as exc:
        print(f"pytest-stateful: {exc}", file=sys.stderr)
        return 2
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
