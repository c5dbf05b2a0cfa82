"""Issue 14: a chart's cluster-scoped objects (a ClusterRole and its binding, as vault's injector
has): refused all at once unless the spec asks, then labelled, serialised per name, and deleted at
teardown, or by the next session's sweep after a kill."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubernetes import client

from pytest_stateful.cluster.handle import ClusterHandle
from pytest_stateful.workload.cleanup import Owner, this_process
from pytest_stateful.workload.cluster_objects import ANNOTATION, NAMESPACE_LABEL, Global

KV = Path(__file__).resolve().parents[2] / "examples" / "charts" / "kv"


def _spec(release: str, cluster_scoped: bool, name: str = "kv") -> str:
    return f"""
name: {name}
chart:
  path: {KV}
  release: {release}
  values: {{rbac: {{create: true}}}}
  cluster_scoped: {str(cluster_scoped).lower()}
steps:
  - scale: 2
expect: [stable_identity]
"""


def _roles(rbac: client.RbacAuthorizationV1Api, release: str) -> list[str]:
    return [r.metadata.name for r in rbac.list_cluster_role().items if r.metadata.name.startswith(f"{release}-kv")]


def test_without_the_opt_in_every_cluster_scoped_object_is_refused_at_once(
    pytester: pytest.Pytester, stateful_cluster: ClusterHandle
) -> None:
    release = f"r{secrets.token_hex(3)}"
    pytester.makefile(".stateful.yaml", kv=_spec(release, cluster_scoped=False))
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*2 objects are refused, nothing was applied:",
            f"*ClusterRole {release}-kv-reader is cluster-scoped and is not applied: the plugin only writes inside the "
            "test namespace; a chart that needs it says `cluster_scoped: true`*",
            f"*ClusterRoleBinding {release}-kv-reader is cluster-scoped and is not applied*",
        ]
    )
    assert _roles(client.RbacAuthorizationV1Api(stateful_cluster.api), release) == []


def _test(release: str, name: str) -> str:
    return f"""
import json
from kubernetes import client

def test_{name}(stateful, stateful_cluster, stateful_namespace):
    stateful.chart({str(KV)!r}, release={release!r}, values={{"rbac": {{"create": True}}}}, cluster_scoped=True)
    role = client.RbacAuthorizationV1Api(stateful_cluster.api).read_cluster_role("{release}-kv-reader")
    assert role.metadata.labels["{NAMESPACE_LABEL}"] == stateful_namespace
    assert role.metadata.labels["pytest-stateful.io/owned"] == "true"
    notes = stateful_cluster.core.read_namespace(stateful_namespace).metadata.annotations
    print("LISTED", notes["{ANNOTATION}"])
"""


def test_with_the_opt_in_they_are_labelled_listed_and_deleted_at_teardown(
    pytester: pytest.Pytester, stateful_cluster: ClusterHandle
) -> None:
    release = f"r{secrets.token_hex(3)}"
    pytester.makepyfile(_test(release, "one"))
    result = pytester.runpytest("-s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            f'*LISTED [[]"rbac.authorization.k8s.io/v1/ClusterRole/{release}-kv-reader", '
            f'"rbac.authorization.k8s.io/v1/ClusterRoleBinding/{release}-kv-reader"]'
        ]
    )
    rbac = client.RbacAuthorizationV1Api(stateful_cluster.api)
    assert _roles(rbac, release) == []
    assert [b for b in rbac.list_cluster_role_binding().items if b.metadata.name.startswith(release)] == []


def test_two_tests_that_install_the_same_global_names_take_turns(
    pytester: pytest.Pytester, stateful_cluster: ClusterHandle
) -> None:
    # Without the per-name lock the second helm install fails: "ClusterRole ... exists and cannot be
    # imported into the current release".
    release = f"r{secrets.token_hex(3)}"
    pytester.makepyfile(test_a=_test(release, "a"), test_b=_test(release, "b"))
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert _roles(client.RbacAuthorizationV1Api(stateful_cluster.api), release) == []


def test_a_killed_session_s_cluster_scoped_objects_are_swept_with_its_namespace(
    stateful_cluster: ClusterHandle,
) -> None:
    core, rbac = stateful_cluster.core, client.RbacAuthorizationV1Api(stateful_cluster.api)
    tok = secrets.token_hex(3)
    me = this_process()
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = Owner("deadbeef0001", int(child.stdout), me.host, me.process.rpartition("|")[0] + "|1", time.time())
    namespace = f"stateful-killed-{tok}"
    ours, theirs = f"killed-{tok}-ours", f"killed-{tok}-theirs"
    listed = [Global("rbac.authorization.k8s.io/v1", "ClusterRole", n).key for n in (ours, theirs)]
    core.create_namespace(
        {
            "metadata": {
                "name": namespace,
                "labels": dead.labels(),
                "annotations": {**dead.annotations(), ANNOTATION: json.dumps(listed)},
            }
        }
    )
    # Listed by the killed test, but the one named `theirs` was made since by another namespace's test.
    for name, owner in ((ours, namespace), (theirs, f"stateful-other-{tok}")):
        rbac.create_cluster_role({"metadata": {"name": name, "labels": {NAMESPACE_LABEL: owner}}, "rules": []})
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest_stateful.cli",
                "clean",
                "--kubeconfig",
                str(stateful_cluster.kubeconfig),
                "--context",
                stateful_cluster.context,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert namespace in done.stdout
        names = [r.metadata.name for r in rbac.list_cluster_role().items]
        assert ours not in names
        assert theirs in names
    finally:
        for name in (ours, theirs):
            try:
                rbac.delete_cluster_role(name)
            except client.ApiException as exc:
                if exc.status != 404:
                    raise
        try:
            core.delete_namespace(namespace)
        except client.ApiException as exc:
            if exc.status != 404:
                raise


def test_a_name_that_already_exists_refuses_the_install_and_is_left_alone(
    pytester: pytest.Pytester, stateful_cluster: ClusterHandle
) -> None:
    # Found in review: helm would adopt an object kept from an earlier release, and teardown delete it.
    rbac = client.RbacAuthorizationV1Api(stateful_cluster.api)
    release = f"r{secrets.token_hex(3)}"
    rbac.create_cluster_role({"metadata": {"name": f"{release}-kv-reader"}, "rules": []})
    try:
        pytester.makefile(".stateful.yaml", kv=_spec(release, cluster_scoped=True))
        result = pytester.runpytest("-p", "no:cacheprovider")
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(
            [f"*ClusterRole {release}-kv-reader already exists in the cluster, and not as this test's: helm would*"]
        )
        assert _roles(rbac, release) == [f"{release}-kv-reader"]
        assert [b for b in rbac.list_cluster_role_binding().items if b.metadata.name.startswith(release)] == []
    finally:
        rbac.delete_cluster_role(f"{release}-kv-reader")
