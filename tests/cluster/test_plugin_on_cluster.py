"""The plugin's fixtures and failure output against the real local cluster (pytester)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_stateful import ClusterHandle

WEB = Path(__file__).resolve().parents[2] / "examples" / "web"


def _ns_phase(cluster: ClusterHandle, name: str) -> str:
    from kubernetes.client import ApiException

    try:
        return str(cluster.core.read_namespace(name).status.phase)
    except ApiException as exc:
        if exc.status == 404:
            return "Gone"
        raise


def test_failing_guarantee_shows_verdict_and_timeline(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        f"""
        import yaml
        from pytest_stateful import assert_ordered_creation

        def test_parallel(stateful):
            docs = list(yaml.safe_load_all(open("{WEB / "statefulset.yaml"}")))
            docs[0]["spec"]["podManagementPolicy"] = "Parallel"
            docs[0]["spec"]["replicas"] = 1
            web = stateful(["{WEB / "svc.yaml"}", *docs])
            # Parallel does not wait for web-0: creation while it is NotReady is certain.
            web.make_unready(0)
            web.scale(3, settle=False)
            web.sleep(1)
            assert_ordered_creation(web)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E*ordered_creation: FAILED (api level) - web-? was created while web-0 was not Ready*",
            "E*diagnosis:",
            "E*podManagementPolicy is Parallel*",
            "E*timeline around the first violation:",
            "E*t (s)*kind*event*name*state",
            "E*>>*Pod*ADDED*web-?*Pending NotReady*",
            "E*node-level evidence: not available",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*stateful: cluster state of web*",
            "namespace stateful-test-parallel-*",
            "StatefulSet web: replicas=3*",
            "  name   phase*ready*node*ip*revision",
            "  web-0  Running  False*",
            "recent events*",
            "*Warning Pod/web-0 Unhealthy: held unready by pytest-stateful",
        ]
    )


def test_namespace_is_deleted_and_kept_on_request(pytester: pytest.Pytester, stateful_cluster: ClusterHandle) -> None:
    names = pytester.path / "names.txt"
    pytester.makepyfile(
        f"""
        def test_pass(stateful_namespace):
            open("{names}", "a").write(stateful_namespace + "\\n")

        def test_fail(stateful_namespace):
            open("{names}", "a").write(stateful_namespace + "\\n")
            assert False
        """
    )
    result = pytester.runpytest("--stateful-keep-namespace")
    result.assert_outcomes(passed=1, failed=1)
    passed_ns, failed_ns = names.read_text().split()
    result.stdout.fnmatch_lines([f"*kept namespace {failed_ns} of failed test*test_fail*"])
    assert _ns_phase(stateful_cluster, passed_ns) in ("Terminating", "Gone")
    assert _ns_phase(stateful_cluster, failed_ns) == "Active"
    stateful_cluster.core.delete_namespace(failed_ns)


def test_ctrl_c_still_deletes_the_namespace(pytester: pytest.Pytester, stateful_cluster: ClusterHandle) -> None:
    names = pytester.path / "names.txt"
    pytester.makepyfile(
        f"""
        import time

        def test_slow(stateful):
            web = stateful(["{WEB / "svc.yaml"}", "{WEB / "statefulset.yaml"}"])
            open("{names}", "w").write(web.namespace)
            time.sleep(60)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(pytester.path)],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ),
        # A shell that starts CI in the background without job control leaves SIGINT ignored, and a child
        # inherits that: Python then installs no KeyboardInterrupt handler and Ctrl-C does nothing.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while not names.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert names.exists(), proc.communicate()[0] if proc.poll() is not None else "test never started"
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert "KeyboardInterrupt" in output
    assert _ns_phase(stateful_cluster, names.read_text()) in ("Terminating", "Gone")


def test_existing_provider_on_the_local_clusters_kubeconfig(
    pytester: pytest.Pytester, stateful_cluster: ClusterHandle
) -> None:
    pytester.makepyfile(
        f"""
        def test_web(stateful, stateful_cluster):
            assert stateful_cluster.provider == "existing"
            web = stateful(["{WEB / "svc.yaml"}", "{WEB / "statefulset.yaml"}"])
            web.delete_pod(0)  # identity is exercised only by a recreation
            web.assert_ordered_creation()
            web.assert_stable_identity()
            web.assert_pod_dns()
        """
    )
    result = pytester.runpytest(
        "--stateful-cluster=existing",
        f"--kubeconfig={stateful_cluster.kubeconfig}",
        f"--kube-context={stateful_cluster.context}",
        f"--stateful-dns={stateful_cluster.resolver.address if stateful_cluster.resolver else ''}",
    )
    result.stdout.fnmatch_lines([f"stateful: cluster provider existing context {stateful_cluster.context}*"])
    result.assert_outcomes(passed=1)


def test_manifest_outside_the_namespace_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_stateful import ManifestError

        def test_cluster_scoped(stateful):
            with pytest.raises(ManifestError, match="StorageClass fast is cluster-scoped and is not applied"):
                stateful([{"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                           "metadata": {"name": "fast"}, "provisioner": "x"}])

        def test_other_namespace(stateful):
            with pytest.raises(ManifestError, match="asks for namespace 'kube-system'"):
                stateful([{"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "c", "namespace": "kube-system"}}])
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_bounded_wait_reports_progress_and_what_it_last_saw(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        f"""
        import pytest
        from pytest_stateful import StepTimeout

        def test_stuck(stateful):
            web = stateful(["{WEB / "svc.yaml"}", "{WEB / "statefulset.yaml"}"])
            web.make_unready(0)
            # OrderedReady halts while web-0 is NotReady: this settle cannot finish.
            web.scale(3, timeout=11)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "[[]stateful[]] scale to 3: waiting for web-0 Ready, *.? s",
            "*StepTimeout: timed out after 11 s waiting for web to settle; last seen:",
            "*StatefulSet web: replicas=3 ready=1*",
            "*pod web-0: Running NotReady*",
            "*pod web-1: Running Ready*",
            "*recent events:*",
            "*Warning Pod/web-0 Unhealthy: held unready by pytest-stateful*",
        ]
    )
    assert "web-2" not in result.stdout.str().split("StepTimeout")[1].split("recent events")[0]


def test_quiet_run_prints_no_progress(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        f"""
        def test_stuck(stateful):
            web = stateful(["{WEB / "svc.yaml"}", "{WEB / "statefulset.yaml"}"])
            web.make_unready(0)
            web.scale(3, timeout=11)
        """
    )
    result = pytester.runpytest("-q")
    result.assert_outcomes(failed=1)
    assert "[stateful] scale to 3" not in result.stdout.str()


def test_an_api_error_inside_a_step_shows_the_spec_line(pytester: pytest.Pytester) -> None:
    # The API server refuses the step (404): the spec's own report, with the YAML line, not a traceback.
    pytester.makefile(
        ".stateful.yaml",
        web=f"manifests: [{WEB / 'svc.yaml'}, {WEB / 'statefulset.yaml'}]\n"
        "steps:\n  - scale: 2\n  - delete_pod: 7\nexpect: [stable_identity]\n",
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "web.stateful.yaml:4: - delete_pod: 7",
            "step 2 (delete_pod: 7) failed:",
            '  delete pod web-7: pods "web-7" not found',
        ]
    )
    assert "Traceback" not in result.stdout.str() and "ApiException" not in result.stdout.str()


BYPASSES = """
import pytest
from pytest_stateful import ManifestError

WEB = ["{svc}", "{sts}"]
LEAKS = {{
    "configmap list into default": {{"apiVersion": "v1", "kind": "ConfigMapList", "items": [
        {{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {{"name": "leak", "namespace": "default"}}}}]}},
    "namespace list": {{"apiVersion": "v1", "kind": "NamespaceList", "items": [
        {{"apiVersion": "v1", "kind": "Namespace", "metadata": {{"name": "stateful-leak"}}}}]}},
    "cluster role binding list": {{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBindingList",
        "items": [{{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                    "metadata": {{"name": "stateful-leak"}},
                    "roleRef": {{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}},
                    "subjects": [{{"kind": "Group", "name": "x", "apiGroup": "rbac.authorization.k8s.io"}}]}}]}},
    "validating admission policy": {{"apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy", "metadata": {{"name": "stateful-leak"}},
        "spec": {{"matchConstraints": {{"resourceRules": []}}, "validations": [{{"expression": "true"}}]}}}},
    "volume attributes class": {{"apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttributesClass",
        "metadata": {{"name": "stateful-leak"}}, "driverName": "x"}},
    "priority level configuration": {{"apiVersion": "flowcontrol.apiserver.k8s.io/v1",
        "kind": "PriorityLevelConfiguration", "metadata": {{"name": "stateful-leak"}},
        "spec": {{"type": "Exempt"}}}},
}}

@pytest.mark.parametrize("leak", list(LEAKS))
def test_refused(stateful, leak):
    refused = "is cluster-scoped and is not applied|is never applied|asks for namespace 'default'"
    with pytest.raises(ManifestError, match=refused):
        stateful([LEAKS[leak], *WEB])
"""


def _leaked(cluster: ClusterHandle) -> list[str]:
    from kubernetes import client

    from pytest_stateful.cluster.api import call
    from pytest_stateful.errors import NotFound

    found = []
    reads = {
        "configmap default/leak": lambda: cluster.core.read_namespaced_config_map("leak", "default"),
        "namespace stateful-leak": lambda: cluster.core.read_namespace("stateful-leak"),
        "clusterrolebinding": lambda: client.RbacAuthorizationV1Api(cluster.api).read_cluster_role_binding(
            "stateful-leak"
        ),
        "validatingadmissionpolicy": lambda: client.AdmissionregistrationV1Api(
            cluster.api
        ).read_validating_admission_policy("stateful-leak"),
        "prioritylevelconfiguration": lambda: client.FlowcontrolApiserverV1Api(
            cluster.api
        ).read_priority_level_configuration("stateful-leak"),
    }
    for what, read in reads.items():
        try:
            call(f"read {what}", read)
            found.append(what)
        except NotFound:
            pass
    return found


@pytest.mark.parametrize("provider", ["local", "existing"])
def test_every_namespace_rule_bypass_is_refused_before_anything_is_applied(
    pytester: pytest.Pytester, stateful_cluster: ClusterHandle, provider: str
) -> None:
    pytester.makepyfile(BYPASSES.format(svc=WEB / "svc.yaml", sts=WEB / "statefulset.yaml"))
    args = ["-p", "no:cacheprovider"]
    if provider == "existing":
        args += [
            "--stateful-cluster=existing",
            f"--kubeconfig={stateful_cluster.kubeconfig}",
            f"--kube-context={stateful_cluster.context}",
        ]
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=6)
    assert _leaked(stateful_cluster) == []


def test_under_xdist_the_table_and_the_report_line_are_shown(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makefile(
        ".stateful.yaml",
        web=f"name: one\nmanifests: [{WEB / 'svc.yaml'}, {WEB / 'statefulset.yaml'}]\n"
        "steps: [{delete_pod: 0}]\nexpect: [stable_identity]\n"
        f"---\nname: two\nmanifests: [{WEB / 'svc.yaml'}, {WEB / 'statefulset.yaml'}]\n"
        "steps: [{delete_pod: 1}]\nexpect: [stable_identity, pod_dns]\n",
    )
    reports = tmp_path / "reports"
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider", f"--stateful-report-dir={reports}")
    result.assert_outcomes(passed=2)
    # Rows come in the order the workers finish: each line is matched on its own.
    for line in (
        "*stateful guarantees*",
        "test*identity*",
        "web.stateful.yaml::one*passed*",
        "web.stateful.yaml::two*passed*passed*",
        f"stateful reports: {reports}",
    ):
        result.stdout.fnmatch_lines([line])
    assert len(list(reports.glob("*.json"))) == 2
