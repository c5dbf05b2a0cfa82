"""The plugin as users meet it: options, header, providers' errors and skips (pytester)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def test_options_are_in_one_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "StatefulSet guarantees (pytest-stateful):",
            "*--stateful-cluster={local,existing,kind}*",
            "*--kubeconfig=KUBECONFIG*",
            "*--kube-context=KUBE_CONTEXT*",
            "*--stateful-timeout=SECONDS*",
            "*--stateful-keep-namespace*",
        ]
    )


def test_header_names_the_provider(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("--stateful-timeout=30")
    result.stdout.fnmatch_lines(["stateful: cluster provider local, step timeout 30 s"])
    result.assert_outcomes(passed=1)


def test_ini_provider_is_validated(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nstateful_cluster = minikube\n")
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest()
    result.stderr.fnmatch_lines(["*ini option stateful_cluster='minikube': choose one of local, existing, kind*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_bad_timeout_is_refused(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--stateful-timeout=-3")
    result.stderr.fnmatch_lines(["*--stateful-timeout: invalid _positive_float value*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_existing_provider_needs_explicit_kubeconfig_and_context(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_uses_cluster(stateful_cluster): pass")
    result = pytester.runpytest("--stateful-cluster=existing")
    result.stdout.fnmatch_lines(
        ["*pytest-stateful: --stateful-cluster=existing needs both --kubeconfig and --kube-context*"]
    )
    result.assert_outcomes(errors=1)


def test_existing_provider_rejects_unknown_context(pytester: pytest.Pytester) -> None:
    kubeconfig = pytester.makefile(
        ".yaml",
        kubeconfig="""
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {}}]
contexts: [{name: prod, context: {cluster: c, user: u}}]
current-context: prod
""",
    )
    pytester.makepyfile("def test_uses_cluster(stateful_cluster): pass")
    result = pytester.runpytest("--stateful-cluster=existing", f"--kubeconfig={kubeconfig}", "--kube-context=ci")
    result.stdout.fnmatch_lines([f"*--kube-context 'ci' is not in {kubeconfig} (it has: prod)*"])
    result.assert_outcomes(errors=1)


def test_kind_provider_skips_without_docker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_uses_cluster(stateful_cluster): pass")
    result = pytester.runpytest("--stateful-cluster=kind", "-rs")
    result.stdout.fnmatch_lines(["SKIPPED*kind needs *Docker*"])
    result.assert_outcomes(skipped=1)
