"""pytest glue: options, markers and fixtures. The work happens in the library modules."""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_stateful.actions import ManifestError, StatefulSetHandle, StepTimeout
from pytest_stateful.checks import Verdict
from pytest_stateful.cluster.local import ClusterError
from pytest_stateful.cluster.providers import PROVIDERS, ClusterHandle, ProviderOptions, ProviderUnavailable, connect
from pytest_stateful.report import guarantee_table, write_reports
from pytest_stateful.report.state import cluster_state_text
from pytest_stateful.session import (
    Recording,
    create_namespace,
    delete_leftover_namespaces,
    delete_namespace,
    forget_namespace,
)
from pytest_stateful.spec.items import StatefulFile, StatefulItem, explain_failure
from pytest_stateful.spec.loader import SpecError, spec_from_mapping
from pytest_stateful.spec.runner import ExpectFailed, SpecRun, StepFailed, run_spec


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise ValueError(f"must be a positive number of seconds, got {text}")
    return value


def pytest_addoption(parser: pytest.Parser) -> None:
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
        choices=("simulated", "real"),
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
    parser.addini(
        "stateful_patterns",
        "file name patterns collected as stateful specs",
        type="args",
        default=["*.stateful.yaml"],
    )
    parser.addini("stateful_timeout", "default timeout of each step in seconds", default="120")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "stateful_cluster: the test needs a cluster (deselect with -m 'not stateful_cluster')"
    )
    config.addinivalue_line(
        "markers",
        "stateful(manifests=[...], chart={...}, statefulset=None, timeout=None, steps=[...], expect=[...]): "
        "deploy, disrupt and judge as a *.stateful.yaml document would, before the test body runs",
    )


_spec_run_key = pytest.StashKey[SpecRun]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """`@pytest.mark.stateful(...)`: run the spec first, in its own namespace; then the test body."""
    marker = item.get_closest_marker("stateful")
    if marker is not None and isinstance(item, pytest.Function):
        _run_marker_spec(item, marker)
    return (yield)


def _run_marker_spec(item: pytest.Function, marker: pytest.Mark) -> None:
    __tracebackhide__ = True
    if marker.args:
        raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.stateful takes keyword arguments only")
    line = item.function.__code__.co_firstlineno
    failure = None
    try:
        spec = spec_from_mapping(marker.kwargs, item.path, line, item.name)
    except SpecError as exc:
        failure = f"invalid @pytest.mark.stateful: {exc.message} ({item.path.name}:{line})"
    if failure is not None:
        pytest.fail(failure, pytrace=False)
    run = item.stash[_spec_run_key] = SpecRun(spec)
    try:
        run_spec_in_fresh_namespace(item.config, item.name, run)
    except (StepFailed, ExpectFailed, ManifestError, StepTimeout) as exc:
        if item.config.getoption("stateful_traceback"):
            raise
        failure = explain_failure(spec, exc)
    if failure is not None:
        pytest.fail(failure, pytrace=False)


def run_spec_in_fresh_namespace(config: pytest.Config, test_name: str, run: SpecRun) -> None:
    """What a YAML document and the marker share: a namespace of its own, kept on failure if asked."""
    cluster = cluster_for(config)
    namespace = create_namespace(cluster, test_name)
    failed = True
    try:
        with live_progress(config) as progress:
            run_spec(
                run.spec,
                cluster,
                namespace,
                setting(config, "timeout"),
                run=run,
                progress=progress,
                image=setting(config, "image"),
            )
        failed = False
    finally:
        if failed and keep_namespace_on_failure(config):
            forget_namespace(namespace)
            reporter = config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(f"\n[stateful] kept namespace {namespace} of failed test {test_name}")
        else:
            delete_namespace(namespace)


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> StatefulFile | None:
    patterns = list(parent.config.getini("stateful_patterns"))
    if any(fnmatch.fnmatch(file_path.name, p) for p in patterns):
        return StatefulFile.from_parent(parent, path=file_path)
    return None


def setting(config: pytest.Config, name: str) -> Any:
    """One place that resolves a setting: command line, then ini file, then default."""
    value = config.getoption(f"stateful_{name}", default=None)
    if value is not None:
        return value
    if name == "timeout":
        raw = config.getini("stateful_timeout")
        try:
            return _positive_float(str(raw))
        except ValueError as exc:
            raise pytest.UsageError(f"ini option stateful_timeout: {exc}") from None
    if name in ("report_dir", "image"):
        raw = str(config.getini(f"stateful_{name}") or "")
        return raw or None
    if name == "node":
        node = str(config.getini("stateful_node"))
        if node not in ("simulated", "real"):
            raise pytest.UsageError(f"ini option stateful_node={node!r}: choose simulated or real")
        return node
    if name == "cluster":
        provider = str(config.getini("stateful_cluster"))
        if provider not in PROVIDERS:
            raise pytest.UsageError(f"ini option stateful_cluster={provider!r}: choose one of {', '.join(PROVIDERS)}")
        return provider
    return None


def pytest_report_header(config: pytest.Config) -> str:
    provider = setting(config, "cluster")
    extra = f" context {config.getoption('kube_context')}" if provider == "existing" else ""
    return f"stateful: cluster provider {provider}{extra}, step timeout {setting(config, 'timeout'):.0f} s"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    if call.when == "teardown":
        _collect_verdicts(item)
    report = yield
    if report.when == "call" and report.failed:
        for handle in _handles(item):
            report.sections.append((f"stateful: cluster state of {handle.name}", cluster_state_text(handle)))
    # Fixtures read this at teardown to know whether the test failed.
    item.stash.setdefault(_reports_key, {})[report.when] = report
    return report


def _handles(item: pytest.Item) -> list[StatefulSetHandle]:
    """Every StatefulSet a test worked on: from the `stateful` fixture, a YAML spec or the marker."""
    stored: list[StatefulSetHandle] | None = item.stash.get(handles_key, None)
    handles = list(stored or [])
    recording: Recording | None = item.stash.get(_recording_key, None)
    if recording is not None:
        handles += [h for h in recording.handles if h not in handles]
    run = item.run if isinstance(item, StatefulItem) else item.stash.get(_spec_run_key, None)
    if run is not None and run.handle is not None:
        handles.append(run.handle)
    return handles


def _collect_verdicts(item: pytest.Item) -> None:
    """After a stateful test: JUnit properties, the session table, the report files."""
    handles = _handles(item)
    verdicts: dict[str, Verdict] = {}
    for handle in handles:
        verdicts.update(handle.verdicts)
    if not handles:
        return
    for guarantee, verdict in verdicts.items():
        item.user_properties.append((f"stateful.{guarantee}", verdict.status))
        item.user_properties.append((f"stateful.{guarantee}.fidelity", verdict.fidelity))
        item.user_properties.append((f"stateful.{guarantee}.node", verdict.node))
        for key, value in verdict.timings.items():
            item.user_properties.append((f"stateful.{guarantee}.{key}", value))
    if verdicts:
        # The table names tests by file and test name; full node ids are in the JUnit and JSON reports.
        file_part, _, test_part = item.nodeid.partition("::")
        label = f"{Path(file_part).name}::{test_part}" if test_part else item.nodeid
        item.config.stash.setdefault(_verdicts_key, {})[label] = verdicts
    directory = setting(item.config, "report_dir")
    if directory:
        handle = handles[-1]
        outcome = "failed" if _failed(item) else "passed"
        subject = {"statefulset": handle.name, "namespace": handle.namespace, "cluster": handle.cluster.describe()}
        write_reports(Path(directory), item.nodeid, outcome, subject, verdicts, handle.timeline)
        item.config.stash[_wrote_reports_key] = True


_verdicts_key = pytest.StashKey[dict[str, dict[str, Verdict]]]()
_wrote_reports_key = pytest.StashKey[bool]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    rows = config.stash.get(_verdicts_key, {})
    if rows and config.get_verbosity() >= -1:
        terminalreporter.section("stateful guarantees")
        for line in guarantee_table(rows):
            terminalreporter.write_line(line)
    directory = setting(config, "report_dir")
    if directory and config.stash.get(_wrote_reports_key, False):
        terminalreporter.write_line(f"stateful reports: {Path(directory).resolve()}")


_reports_key = pytest.StashKey[dict[str, pytest.TestReport]]()


def _failed(item: pytest.Item) -> bool:
    return any(r.failed for r in item.stash.get(_reports_key, {}).values())


_cluster_key = pytest.StashKey[ClusterHandle | tuple[str, str]]()


def cluster_for(config: pytest.Config) -> ClusterHandle:
    """The session's one cluster handle, connected on first use; YAML items and fixtures share it.

    A provider that cannot run here skips every test that needs it; a provider that fails
    fails them, each with the same one-line reason, without retrying.
    """
    cached = config.stash.get(_cluster_key, None)
    if cached is None:
        opts = ProviderOptions(
            provider=setting(config, "cluster"),
            kubeconfig=config.getoption("kubeconfig"),
            context=config.getoption("kube_context"),
            dns=config.getoption("stateful_dns"),
            node=setting(config, "node"),
        )
        reporter = config.pluginmanager.get_plugin("terminalreporter")

        def log(line: str) -> None:
            if reporter is not None and config.get_verbosity() >= 0:
                reporter.write_line(line)

        try:
            cached = connect(opts, log=log)
        except ProviderUnavailable as exc:
            cached = ("skip", str(exc))
        except ClusterError as exc:
            cached = ("fail", f"pytest-stateful: {exc}")
        config.stash[_cluster_key] = cached
    if isinstance(cached, tuple):
        # Outside any except block, so the report shows one sentence and no chained traceback.
        if cached[0] == "skip":
            pytest.skip(cached[1])
        pytest.fail(cached[1], pytrace=False)
    return cached


class LiveProgress:
    """What a waiting step is waiting for: one line rewritten in place on a terminal, a plain line
    every PLAIN_EVERY seconds elsewhere (CI logs), nothing with -q."""

    PLAIN_EVERY = 10.0

    def __init__(self, config: pytest.Config) -> None:
        self.reporter: pytest.TerminalReporter | None = config.pluginmanager.get_plugin("terminalreporter")
        self.enabled = self.reporter is not None and config.get_verbosity() >= 0
        self.tty = bool(self.reporter is not None and self.reporter.isatty)
        self.shown = False
        self.last_plain = time.monotonic()

    def __call__(self, text: str) -> None:
        if not self.enabled or self.reporter is None:
            return
        if self.tty:
            if not self.shown:
                self.reporter.write("\n")
                self.shown = True
            self.reporter.rewrite(f"[stateful] {text}", erase=True)
        elif time.monotonic() - self.last_plain >= self.PLAIN_EVERY:
            self.reporter.write_line(f"[stateful] {text}")
            self.last_plain = time.monotonic()

    def __enter__(self) -> LiveProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.shown and self.reporter is not None:
            self.reporter.rewrite("", erase=True)


def live_progress(config: pytest.Config) -> LiveProgress:
    return LiveProgress(config)


def keep_namespace_on_failure(config: pytest.Config) -> bool:
    return bool(config.getoption("stateful_keep_namespace"))


@pytest.fixture(scope="session")
def stateful_cluster(pytestconfig: pytest.Config) -> ClusterHandle:
    """The cluster of this session, from the provider chosen with --stateful-cluster."""
    return cluster_for(pytestconfig)


@pytest.fixture
def stateful_namespace(request: pytest.FixtureRequest, stateful_cluster: ClusterHandle) -> Iterator[str]:
    """A fresh namespace, deleted at teardown (kept for a failed test with --stateful-keep-namespace)."""
    name = create_namespace(stateful_cluster, request.node.name)
    try:
        yield name
    finally:
        if keep_namespace_on_failure(request.config) and _failed(request.node):
            forget_namespace(name)
            reporter = request.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(f"\n[stateful] kept namespace {name} of failed test {request.node.nodeid}")
        else:
            delete_namespace(name)


StatefulFactory = Callable[..., StatefulSetHandle]
handles_key = pytest.StashKey[list[StatefulSetHandle]]()
_recording_key = pytest.StashKey[Recording]()


@pytest.fixture
def stateful(
    request: pytest.FixtureRequest, stateful_cluster: ClusterHandle, stateful_namespace: str
) -> Iterator[StatefulFactory]:
    """Factory: stateful(manifests, statefulset=None, timeout=None, settle=True) -> StatefulSetHandle.

    Recording starts before the first apply and ends at teardown.
    """
    with (
        live_progress(request.config) as progress,
        Recording(
            stateful_cluster,
            stateful_namespace,
            setting(request.config, "timeout"),
            progress,
            setting(request.config, "image"),
        ) as recording,
    ):
        # The failure report reads the live recording before the fixture's teardown.
        request.node.stash[_recording_key] = recording
        try:
            yield recording.statefulset
        finally:
            request.node.stash[handles_key] = recording.handles


def pytest_unconfigure(config: pytest.Config) -> None:
    # Normally nothing is left: fixtures delete their namespaces. After Ctrl-C or a
    # crash inside a fixture, whatever remains is deleted here.
    delete_leftover_namespaces()
    cluster = config.stash.get(_cluster_key, None)
    if isinstance(cluster, ClusterHandle):
        cluster.close()
