"""What a stateful test needs around it: the session's cluster, a fresh namespace (kept on failure
when asked), the spec run, and afterwards its verdicts in JUnit, the session table and report files."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from types import FrameType

import pytest

from pytest_stateful.checks import Verdict
from pytest_stateful.cluster.providers import ClusterHandle, ProviderOptions, connect
from pytest_stateful.cluster.versions import Target
from pytest_stateful.errors import ClusterError, ProviderUnavailable, StatefulError
from pytest_stateful.plugin.progress import LiveProgress, say
from pytest_stateful.plugin.settings import Settings
from pytest_stateful.report import write_reports
from pytest_stateful.spec.runner import SpecRun, run_spec
from pytest_stateful.workload import shared
from pytest_stateful.workload.cleanup import sweep
from pytest_stateful.workload.handle import StatefulSetHandle
from pytest_stateful.workload.session import (
    Recording,
    cleanup_at_exit,
    create_namespace,
    delete_namespace,
    forget_namespace,
)

# Per test: the handles it worked on (fixture, YAML spec or marker), its reports by phase.
handles_key = pytest.StashKey[list[StatefulSetHandle]]()
recording_key = pytest.StashKey[Recording]()
spec_run_key = pytest.StashKey[SpecRun]()
reports_key = pytest.StashKey[dict[str, pytest.TestReport]]()
# Per session: the verdicts by test for the table, and the Kubernetes each test ran on; whether any
# report file was written.
verdicts_key = pytest.StashKey[dict[str, dict[str, Verdict]]]()
versions_key = pytest.StashKey[dict[str, str]]()
wrote_reports_key = pytest.StashKey[bool]()


class _Unusable:
    """A provider that failed once: every test that needs it skips or fails with the same sentence."""

    def __init__(self, skip: bool, reason: str) -> None:
        self.skip, self.reason = skip, reason


# The session fixture that carries a test's Kubernetes target (parametrized by --stateful-kubernetes).
KUBERNETES_FIXTURE = "stateful_kubernetes"
_clusters_key = pytest.StashKey[dict[Target | None, ClusterHandle | _Unusable]]()


def cluster_for(config: pytest.Config, target: Target | None = None) -> ClusterHandle:
    """The session's cluster handle (one per Kubernetes version and feature gates under
    --stateful-kubernetes), connected on first use; YAML items and fixtures share it.

    A provider that cannot run here skips every test that needs it; a provider that fails
    fails them, each with the same one-line reason, without retrying.
    """
    if target is None and Settings.of(config).kubernetes:
        # Never the default cluster in silence while a matrix was asked for.
        pytest.fail(
            "pytest-stateful: this test was not parametrized by --stateful-kubernetes, so it has no version to run "
            "on: request the `stateful` or `stateful_cluster` fixture as an argument, or put "
            "@pytest.mark.stateful on the test where it is defined (not added at collection)",
            pytrace=False,
        )
    clusters = config.stash.setdefault(_clusters_key, {})
    cached = clusters.get(target)
    if cached is None:
        s = Settings.of(config)
        opts = ProviderOptions(
            s.provider, s.kubeconfig, s.context, s.dns, s.node, s.probe_image, target, cluster_scoped=s.cluster_scoped
        )

        def log(line: str) -> None:
            if config.get_verbosity() >= 0:
                say(config, line)

        try:
            cached = connect(opts, log=log)
        except ProviderUnavailable as exc:
            cached = _Unusable(True, str(exc))
        except ClusterError as exc:
            cached = _Unusable(False, f"pytest-stateful: {exc}")
        clusters[target] = cached
        if isinstance(cached, ClusterHandle):
            sweep_leftovers(config, cached)
    if isinstance(cached, _Unusable):
        # Outside any except block, so the report shows one sentence and no chained traceback.
        if cached.skip:
            pytest.skip(cached.reason)
        pytest.fail(cached.reason, pytrace=False)
    return cached


def sweep_leftovers(config: pytest.Config, cluster: ClusterHandle) -> None:
    """Once per session, on first use of the cluster: delete what sessions that ended left behind
    (killed, or their cleanup cut short), never a namespace of a session that may still run."""
    result = sweep(cluster.core)
    line = result.summary()
    if line:
        # The first use is usually a fixture's setup, whose output pytest captures and shows only
        # for a failed test; deleting what other runs left must always be said.
        capture = config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture is not None else nullcontext():
            say(config, f"[stateful] {line}")


def stop_on_sigterm(config: pytest.Config) -> None:
    """SIGTERM (CI cancelling a job, `kill`, a container stopping) ends the session as Ctrl-C does:
    pytest runs the teardowns and the session's cleanup instead of dying with namespaces left.

    Only when SIGTERM has its default action: an ignored SIGTERM or someone else's handler is kept.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return
    config.stash[_sigterm_key] = signal.signal(signal.SIGTERM, _interrupt)


def restore_sigterm(config: pytest.Config) -> None:
    previous = config.stash.get(_sigterm_key, None)
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)
        del config.stash[_sigterm_key]


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"{signal.Signals(signum).name} received: stopping as on Ctrl-C")


_sigterm_key = pytest.StashKey["signal._HANDLER"]()


def close_clusters(config: pytest.Config) -> None:
    for cached in config.stash.get(_clusters_key, {}).values():
        if isinstance(cached, ClusterHandle):
            cached.close()


@contextmanager
def fresh_namespace(
    config: pytest.Config,
    cluster: ClusterHandle,
    test: str,
    failed: Callable[[], bool] = lambda: False,
    existing: str | None = None,
) -> Iterator[str]:
    """A namespace of its own for one test; deleted afterwards, or kept when the test failed
    and --stateful-keep-namespace asks for it. With --stateful-namespace (or `existing`), the test
    runs in that existing namespace instead, and only what it created there is deleted."""
    existing = existing or Settings.of(config).namespace
    if existing:
        with shared_namespace(config, cluster, existing, test):
            yield existing
        return
    name = create_namespace(cluster, test)
    ok = False
    try:
        yield name
        ok = True
    finally:
        if (not ok or failed()) and Settings.of(config).keep_namespace:
            forget_namespace(name)
            say(config, f"\n[stateful] kept namespace {name} of failed test {test}")
        else:
            delete_namespace(name)


@contextmanager
def shared_namespace(config: pytest.Config, cluster: ClusterHandle, name: str, test: str) -> Iterator[None]:
    """An existing namespace for one test: what the test created there is deleted afterwards, and
    the wait for its pods and claims to go is bounded; what stayed is said, never silently left."""
    cleanup_at_exit()
    try:
        shared.enter(cluster, name)
    except StatefulError as exc:
        pytest.fail(f"pytest-stateful: {exc}", pytrace=False)
    try:
        yield
    finally:
        left = shared.clean(name)
        if left:
            say(config, f"\n[stateful] {test}: could not delete from namespace {name}: {', '.join(left)}")


def run_spec_in_fresh_namespace(config: pytest.Config, test: str, run: SpecRun, target: Target | None) -> None:
    """What a YAML document and the marker share: a namespace of its own, the spec run in it, on the
    cluster of `target` (a Kubernetes version of --stateful-kubernetes; None: the only one)."""
    s = Settings.of(config)
    cluster = cluster_for(config, target)
    with (
        fresh_namespace(config, cluster, test, existing=run.spec.namespace) as namespace,
        LiveProgress(config) as progress,
    ):
        run_spec(run.spec, cluster, namespace, s.timeout, run=run, progress=progress, image=s.image)


def failed(item: pytest.Item) -> bool:
    return any(r.failed for r in item.stash.get(reports_key, {}).values())


def handles_of(item: pytest.Item) -> list[StatefulSetHandle]:
    """Every StatefulSet a test worked on: from the `stateful` fixture, a YAML spec or the marker."""
    stored: list[StatefulSetHandle] | None = item.stash.get(handles_key, None)
    handles = list(stored or [])
    recording = item.stash.get(recording_key, None)
    if recording is not None:
        handles += [h for h in recording.handles if h not in handles]
    run = item.stash.get(spec_run_key, None)
    if run is not None and run.handle is not None:
        handles.append(run.handle)
    return handles


def collect_verdicts(item: pytest.Item) -> None:
    """After a stateful test: its verdicts as JUnit properties (the session table is built from them
    too, so it works under xdist, where tests run in workers), and the report files."""
    handles = handles_of(item)
    if not handles:
        return
    verdicts: dict[str, Verdict] = {}
    for handle in handles:
        verdicts.update(handle.verdicts)
    item.user_properties.append(("stateful.kubernetes", handles[-1].cluster.version_label))
    for guarantee, verdict in verdicts.items():
        item.user_properties.append((f"stateful.{guarantee}", verdict.status))
        item.user_properties.append((f"stateful.{guarantee}.fidelity", verdict.fidelity))
        item.user_properties.append((f"stateful.{guarantee}.node", verdict.node))
        if verdict.node_source:
            item.user_properties.append((f"stateful.{guarantee}.node_source", verdict.node_source))
        for key, value in verdict.timings.items():
            item.user_properties.append((f"stateful.{guarantee}.{key}", value))
    directory = Settings.of(item.config).report_dir
    if directory:
        handle = handles[-1]
        outcome = "failed" if failed(item) else "passed"
        subject = {
            "statefulset": handle.name,
            "namespace": handle.namespace,
            "cluster": handle.cluster.describe(),
            "kubernetes": handle.cluster.kubernetes,
            "feature_gates": handle.cluster.feature_gates,
        }
        written = write_reports(
            Path(directory), item.nodeid, outcome, subject, verdicts, handle.timeline, handle.recorder.errors
        )
        item.user_properties.append(("stateful.report", str(written[0])))


def note_verdicts(config: pytest.Config, report: pytest.TestReport) -> None:
    """Where the reports arrive (the xdist controller too): the table's row of this test from its
    properties, and whether a report file was written."""
    statuses: dict[str, str] = {}
    nodes: dict[str, str] = {}
    version = ""
    for name, value in report.user_properties:
        key = name.removeprefix("stateful.")
        if name == "stateful.report":
            config.stash[wrote_reports_key] = True
        elif name == "stateful.kubernetes":
            version = str(value)
        elif name.startswith("stateful.") and "." not in key:
            statuses[key] = str(value)
        elif name.startswith("stateful.") and key.endswith(".node"):
            nodes[key.removesuffix(".node")] = str(value)
    if not statuses:
        return
    # The table names tests by file and test name; full node ids are in the JUnit and JSON reports.
    file_part, _, test_part = report.nodeid.partition("::")
    label = f"{Path(file_part).name}::{test_part}" if test_part else report.nodeid
    config.stash.setdefault(versions_key, {})[label] = version
    config.stash.setdefault(verdicts_key, {})[label] = {
        g: Verdict(g, status, "", node=nodes.get(g, "not available"))  # type: ignore[arg-type]
        for g, status in statuses.items()
    }
