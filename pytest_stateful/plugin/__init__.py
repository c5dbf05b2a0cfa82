"""pytest glue: hooks only. Options live in settings.py, fixtures in fixtures.py, what runs around a
test in run.py, YAML collection in items.py; the work happens in the library."""

from __future__ import annotations

import fnmatch
from collections.abc import Generator
from pathlib import Path

import pytest

from pytest_stateful.plugin.fixtures import stateful, stateful_cluster, stateful_kubernetes, stateful_namespace
from pytest_stateful.plugin.items import StatefulFile, run_marker_spec
from pytest_stateful.plugin.progress import say
from pytest_stateful.plugin.run import (
    KUBERNETES_FIXTURE,
    close_clusters,
    collect_verdicts,
    handles_of,
    note_verdicts,
    reports_key,
    restore_sigterm,
    stop_on_sigterm,
    verdicts_key,
    versions_key,
    wrote_reports_key,
)
from pytest_stateful.plugin.settings import Settings, add_options
from pytest_stateful.report import guarantee_table
from pytest_stateful.workload.session import delete_leftover_namespaces

__all__ = ["stateful", "stateful_cluster", "stateful_kubernetes", "stateful_namespace"]


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "stateful_cluster: the test needs a cluster (deselect with -m 'not stateful_cluster')"
    )
    config.addinivalue_line(
        "markers",
        "stateful(manifests=[...], chart={...}, statefulset=None, timeout=None, steps=[...], expect=[...]): "
        "deploy, disrupt and judge as a *.stateful.yaml document would, before the test body runs",
    )
    stop_on_sigterm(config)
    config.pluginmanager.register(_Table(config), _TABLE)


class _Table:
    """Receives every test's report, from xdist workers too, and keeps the session table's rows."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown" and report.user_properties:
            note_verdicts(self.config, report)


_TABLE = "stateful-verdict-table"


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> StatefulFile | None:
    if any(fnmatch.fnmatch(file_path.name, p) for p in Settings.of(parent.config).patterns):
        return StatefulFile.from_parent(parent, path=file_path)
    return None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """--stateful-kubernetes: every stateful Python test once per version, the version in its id."""
    targets = Settings.of(metafunc.config).kubernetes
    stateful = (
        "stateful_cluster" in metafunc.fixturenames or metafunc.definition.get_closest_marker("stateful") is not None
    )
    if targets and stateful:
        metafunc.parametrize(KUBERNETES_FIXTURE, targets, indirect=True, ids=[t.id for t in targets], scope="session")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """`@pytest.mark.stateful(...)`: run the spec first, in its own namespace; then the test body."""
    marker = item.get_closest_marker("stateful")
    if marker is not None and isinstance(item, pytest.Function):
        run_marker_spec(item, marker)
    return (yield)


def pytest_report_header(config: pytest.Config) -> str:
    s = Settings.of(config)
    extra = f" context {s.context}" if s.provider == "existing" else ""
    if s.kubernetes:
        extra += f", Kubernetes {'; '.join(t.label for t in s.kubernetes)} (a local cluster each)"
    return f"stateful: cluster provider {s.provider}{extra}, step timeout {s.timeout:.0f} s"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    if call.when == "teardown":
        collect_verdicts(item)
    report = yield
    if report.when == "call" and report.failed:
        for handle in handles_of(item):
            report.sections.append(
                (f"stateful: cluster state of {handle.name}", handle.view.state_text(handle.namespace))
            )
    # Fixtures read this at teardown to know whether the test failed.
    item.stash.setdefault(reports_key, {})[report.when] = report
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    rows = config.stash.get(verdicts_key, {})
    if rows and config.get_verbosity() >= -1:
        terminalreporter.section("stateful guarantees")
        for line in guarantee_table(rows, config.stash.get(versions_key, {})):
            terminalreporter.write_line(line)
    directory = Settings.of(config).report_dir
    if directory and config.stash.get(wrote_reports_key, False):
        terminalreporter.write_line(f"stateful reports: {Path(directory).resolve()}")


def pytest_unconfigure(config: pytest.Config) -> None:
    # Normally nothing is left: fixtures delete their namespaces. After Ctrl-C, SIGTERM or a
    # crash inside a fixture, whatever remains is deleted here; what even this cannot delete
    # (no API server) is labelled with its owner for the next session's sweep.
    left = delete_leftover_namespaces()
    if left:
        say(config, f"[stateful] could not delete {', '.join(left)}: the next session deletes them")
    restore_sigterm(config)
    close_clusters(config)
    table = config.pluginmanager.get_plugin(_TABLE)
    if table is not None:
        config.pluginmanager.unregister(table)
