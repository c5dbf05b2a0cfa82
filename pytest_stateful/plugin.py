"""pytest glue: options, markers and fixtures. The work happens in the library modules."""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from pytest_stateful.actions import Manifest, StatefulSetHandle
from pytest_stateful.cluster.local import ClusterError
from pytest_stateful.cluster.providers import PROVIDERS, ClusterHandle, ProviderOptions, ProviderUnavailable, connect
from pytest_stateful.recorder import Recorder

OWNED_LABEL = "pytest-stateful.io/owned"
# Namespaces this process created and has not deleted yet: deleted at exit even after Ctrl-C.
_created_namespaces: dict[str, client.CoreV1Api] = {}


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
    parser.addini("stateful_cluster", "default cluster provider", default="local")
    parser.addini("stateful_timeout", "default timeout of each step in seconds", default="120")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "stateful_cluster: the test needs a cluster (deselect with -m 'not stateful_cluster')"
    )


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
    report = yield
    # Fixtures read this at teardown to know whether the test failed.
    item.stash.setdefault(_reports_key, {})[report.when] = report
    return report


_reports_key = pytest.StashKey[dict[str, pytest.TestReport]]()


def _failed(item: pytest.Item) -> bool:
    return any(r.failed for r in item.stash.get(_reports_key, {}).values())


@pytest.fixture(scope="session")
def stateful_cluster(pytestconfig: pytest.Config) -> Iterator[ClusterHandle]:
    """The cluster of this session, from the provider chosen with --stateful-cluster."""
    opts = ProviderOptions(
        provider=setting(pytestconfig, "cluster"),
        kubeconfig=pytestconfig.getoption("kubeconfig"),
        context=pytestconfig.getoption("kube_context"),
        dns=pytestconfig.getoption("stateful_dns"),
    )
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")

    def log(line: str) -> None:
        if reporter is not None and pytestconfig.get_verbosity() >= 0:
            reporter.write_line(line)

    try:
        handle = connect(opts, log=log)
    except ProviderUnavailable as exc:
        pytest.skip(str(exc))
    except ClusterError as exc:
        pytest.fail(f"pytest-stateful: {exc}", pytrace=False)
    try:
        yield handle
    finally:
        handle.close()


@pytest.fixture
def stateful_namespace(request: pytest.FixtureRequest, stateful_cluster: ClusterHandle) -> Iterator[str]:
    """A fresh namespace, deleted at teardown (kept for a failed test with --stateful-keep-namespace)."""
    core = stateful_cluster.core
    name = _namespace_name(request.node.name)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={OWNED_LABEL: "true"})))
    _created_namespaces[name] = core
    try:
        yield name
    finally:
        if request.config.getoption("stateful_keep_namespace") and _failed(request.node):
            _created_namespaces.pop(name, None)
            reporter = request.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(f"\n[stateful] kept namespace {name} of failed test {request.node.nodeid}")
        else:
            _delete_namespace(name)


StatefulFactory = Callable[..., StatefulSetHandle]


@pytest.fixture
def stateful(
    request: pytest.FixtureRequest, stateful_cluster: ClusterHandle, stateful_namespace: str
) -> Iterator[StatefulFactory]:
    """Factory: stateful(manifests, statefulset=None, timeout=None, settle=True) -> StatefulSetHandle.

    Recording starts before the first apply and ends at teardown.
    """
    recorder = Recorder(stateful_cluster.api, stateful_namespace)
    recorder.start()
    handles: list[StatefulSetHandle] = []
    default_timeout = setting(request.config, "timeout")

    def factory(
        manifests: Iterable[Manifest],
        statefulset: str | None = None,
        timeout: float | None = None,
        settle: bool = True,
    ) -> StatefulSetHandle:
        handle = StatefulSetHandle(stateful_cluster, stateful_namespace, recorder, timeout or default_timeout)
        handles.append(handle)
        handle.apply(manifests, statefulset)
        if settle:
            handle.wait_settled()
            handle.probe_dns()
        return handle

    try:
        yield factory
    finally:
        recorder.stop()
        for handle in handles:
            handle.uncordon()
        request.node.stash[handles_key] = handles


handles_key = pytest.StashKey[list[StatefulSetHandle]]()


def _namespace_name(test_name: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")[:40].strip("-") or "test"
    return f"stateful-{slug}-{secrets.token_hex(3)}"


def _delete_namespace(name: str) -> None:
    core = _created_namespaces.pop(name, None)
    if core is None:
        return
    with contextlib.suppress(ApiException):
        core.delete_namespace(name, propagation_policy="Background")


def pytest_unconfigure(config: pytest.Config) -> None:
    # Normally empty: fixtures delete their namespaces. After Ctrl-C or a crash in a
    # fixture, whatever is left goes here.
    for name in list(_created_namespaces):
        _delete_namespace(name)
