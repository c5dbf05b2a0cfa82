"""Issue 12: node-level evidence on any cluster whose nodes run containers, whatever the image,
and runs in a namespace that already exists, as an account that may write only there."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from workloads import shell_less, write_shell_less

from pytest_stateful.cluster.local import LocalCluster

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WEB = EXAMPLES / "web"
TOOLS = "pytest-stateful.local/tools"
NODE_GUARANTEES = ("stable_identity", "pod_dns", "stable_storage")


def copy_seed(directory: Path) -> None:
    """The seed web example (manifests and spec) into `directory`."""
    for name in ("svc.yaml", "statefulset.yaml", "web.stateful.yaml"):
        shutil.copy(WEB / name, directory / name)


def as_runner(kubeconfig: Path, namespace: str, real: LocalCluster, reports: Path, *more: str) -> list[str]:
    """Options of a run as the locked-down account, in its namespace, asking the cluster DNS directly."""
    return existing(
        kubeconfig,
        "runner",
        f"--stateful-namespace={namespace}",
        f"--stateful-dns={real.dns_address}",
        f"--stateful-report-dir={reports}",
        *more,
    )


def verdicts(reports: Path) -> dict[str, dict[str, Any]]:
    (report,) = reports.glob("*.json")
    loaded: dict[str, dict[str, Any]] = json.loads(report.read_text())["verdicts"]
    return loaded


def existing(kubeconfig: Path, context: str, *more: str) -> list[str]:
    return [
        "--stateful-cluster=existing",
        f"--kubeconfig={kubeconfig}",
        f"--kube-context={context}",
        f"--stateful-probe-image={TOOLS}:1",  # there is no registry here: the real node's own image
        "-p",
        "no:cacheprovider",
        *more,
    ]


def test_existing_provider_gives_node_level_evidence_on_the_seed_web_example(
    pytester: pytest.Pytester, real: LocalCluster
) -> None:
    copy_seed(pytester.path)
    reports = pytester.path / "reports"
    result = pytester.runpytest(
        *existing(real.kubeconfig, real.context, f"--stateful-image={TOOLS}", f"--stateful-report-dir={reports}")
    )
    result.assert_outcomes(passed=1)
    got = verdicts(reports)
    for guarantee in NODE_GUARANTEES:
        v = got[guarantee]
        assert (v["status"], v["fidelity"], v["node"]) == ("passed", "node", "passed"), v
        assert v["node_source"].startswith("own container (web-0"), v


def test_a_shell_less_image_gets_node_level_evidence_through_an_ephemeral_probe(pytester: pytest.Pytester) -> None:
    write_shell_less(pytester.path)
    pytester.makepyfile(
        f"""
        def test_pause(stateful):
            web = stateful(["svc.yaml", "statefulset.yaml"])
            # The workload's own container really cannot run a probe.
            assert web.try_exec("web-0", ["hostname"]) is None
            assert web.try_exec("web-0", ["sh", "-c", "true"]) is None
            web.delete_pod(0)
            for guarantee in {NODE_GUARANTEES!r}:
                v = web.verdict(guarantee)
                assert (v.status, v.fidelity, v.node) == ("passed", "node", "passed"), v.explain()
                assert v.node_source == "ephemeral probe (web-0, web-1)", v.node_source
            probes = {{(e.get("probe"), e.get("via")) for e in web.timeline.of("Probe")}}
            assert ("marker", "ephemeral probe") in probes, probes
        """
    )
    result = pytester.runpytest("--stateful-node=real", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_a_host_network_pod_fails_identity_at_node_level_through_the_ephemeral_probe(
    pytester: pytest.Pytester,
) -> None:
    write_shell_less(pytester.path, replicas=1, host_network=True)
    pytester.makepyfile(
        """
        import pytest
        from pytest_stateful import GuaranteeFailed

        def test_host_network(stateful):
            web = stateful(["svc.yaml", "statefulset.yaml"])
            web.delete_pod(0)
            with pytest.raises(GuaranteeFailed) as failed:
                web.assert_stable_identity()
            v = failed.value.verdict
            assert v.node == "failed" and v.node_source == "ephemeral probe (web-0)", v.explain()
            print("MESSAGE", v.summary)
        """
    )
    result = pytester.runpytest("--stateful-node=real", "-p", "no:cacheprovider", "-s")
    result.assert_outcomes(passed=1)
    host = subprocess.run(["hostname"], capture_output=True, text=True).stdout.strip()
    result.stdout.fnmatch_lines([f"*MESSAGE hostname inside web-0 printed '{host}', not 'web-0'"])


@pytest.mark.parametrize(
    ("allowed", "reason"),
    [
        ({"ephemeral": False}, "forbidden: pods/ephemeralcontainers"),
        ({"exec_": False}, "forbidden: pods/exec"),
    ],
)
def test_a_forbidden_probe_makes_node_level_evidence_not_available_naming_what_was_forbidden(
    pytester: pytest.Pytester, real: LocalCluster, locked_down: Any, allowed: dict[str, bool], reason: str
) -> None:
    namespace, kubeconfig = locked_down(**allowed)
    write_shell_less(pytester.path)
    (pytester.path / "pause.stateful.yaml").write_text(
        "name: shell-less\n"
        "manifests: [svc.yaml, statefulset.yaml]\n"
        "steps:\n  - delete_pod: 0\n"
        "expect: [stable_identity, pod_dns, stable_storage]\n"
    )
    reports = pytester.path / "reports"
    result = pytester.runpytest(*as_runner(kubeconfig, namespace, real, reports))
    result.assert_outcomes(passed=1)
    got = verdicts(reports)
    for guarantee in NODE_GUARANTEES:
        v = got[guarantee]
        # Judged at api level: not failed, and never "passed" at node level.
        assert (v["status"], v["fidelity"], v["node"]) == ("passed", "api", "not available"), v
        assert v["node_source"].startswith(f"not available: {reason} (the account may not"), v["node_source"]
        assert v["node_source"].endswith("(web-0, web-1)"), v["node_source"]


def test_a_probe_image_that_cannot_be_pulled_makes_node_level_evidence_not_available(
    pytester: pytest.Pytester,
) -> None:
    write_shell_less(pytester.path, replicas=1)
    pytester.makepyfile(
        """
        def test_pause(stateful):
            web = stateful(["svc.yaml", "statefulset.yaml"])
            web.delete_pod(0)
            v = web.verdict("stable_identity")
            assert v.node == "not available", v.explain()
            print("SOURCE", v.node_source)
        """
    )
    # A registry on loopback that is not there: the pull is refused without leaving this machine.
    image = "127.0.0.1:5999/no-probe:1"
    result = pytester.runpytest(
        "--stateful-node=real", f"--stateful-probe-image={image}", "-p", "no:cacheprovider", "-s"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"*SOURCE not available: the probe image {image} cannot be pulled (waiting: *"])


def test_an_account_that_may_write_only_in_its_namespace_runs_the_seed_spec_and_leaves_nothing(
    pytester: pytest.Pytester, real: LocalCluster, locked_down: Any
) -> None:
    namespace, kubeconfig = locked_down()
    copy_seed(pytester.path)
    admin = config.new_client_from_config(config_file=str(real.kubeconfig), context=real.context)
    core = client.CoreV1Api(admin)
    before = {n.metadata.name for n in core.list_namespace().items}
    reports = pytester.path / "reports"
    result = pytester.runpytest(*as_runner(kubeconfig, namespace, real, reports, f"--stateful-image={TOOLS}"))
    result.assert_outcomes(passed=1)
    assert all(v["status"] == "passed" for v in verdicts(reports).values())
    try:
        apps = client.AppsV1Api(admin)
        left = [f"StatefulSet {s.metadata.name}" for s in apps.list_namespaced_stateful_set(namespace).items]
        left += [f"Pod {p.metadata.name}" for p in core.list_namespaced_pod(namespace).items]
        left += [f"Claim {c.metadata.name}" for c in core.list_namespaced_persistent_volume_claim(namespace).items]
        left += [f"Service {s.metadata.name}" for s in core.list_namespaced_service(namespace).items]
        left += [
            f"ConfigMap {c.metadata.name}"
            for c in core.list_namespaced_config_map(namespace).items
            if c.metadata.name != "kube-root-ca.crt"
        ]
        assert left == [], left
        # The namespace stays, and no namespace was created (other tests' namespaces may have gone meanwhile).
        after = {n.metadata.name for n in core.list_namespace().items}
        assert namespace in after and after - before == set()
    finally:
        admin.close()


def test_a_statefulset_of_the_same_name_it_did_not_create_is_refused_and_kept(pytester: pytest.Pytester) -> None:
    cluster = LocalCluster.current("simulated")
    admin = config.new_client_from_config(config_file=str(cluster.kubeconfig), context=cluster.context)
    core, apps = client.CoreV1Api(admin), client.AppsV1Api(admin)
    namespace = f"theirs-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": namespace}})
    try:
        theirs = shell_less(replicas=0)[0]
        apps.create_namespaced_stateful_set(namespace, theirs)
        copy_seed(pytester.path)
        result = pytester.runpytest(f"--stateful-namespace={namespace}", "-p", "no:cacheprovider")
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(
            [f"*namespace {namespace} already holds StatefulSet web, which this run did not create*"]
        )
        assert [s.metadata.name for s in apps.list_namespaced_stateful_set(namespace).items] == ["web"]
        assert core.list_namespaced_service(namespace).items == []  # nothing of the run stayed
    finally:
        core.delete_namespace(namespace)
        admin.close()


def test_on_simulated_nodes_the_verdict_says_why_node_level_evidence_is_not_available(
    pytester: pytest.Pytester, web_manifests: list[Path]
) -> None:
    pytester.makepyfile(
        f"""
        def test_web(stateful):
            web = stateful({[str(p) for p in web_manifests]!r})
            web.delete_pod(0)
            v = web.verdict("stable_identity")
            assert v.node == "not available"
            assert v.node_source == (
                "not available: on a simulated node (KWOK), where no container runs (web-0, web-1)"
            ), v.node_source
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_a_mixed_cluster_gets_node_level_evidence_for_pods_on_real_nodes_only(
    pytester: pytest.Pytester, simulated_node: str
) -> None:
    docs = list(yaml.safe_load_all((WEB / "statefulset.yaml").read_text()))
    pod = docs[0]["spec"]["template"]["spec"]
    pod["tolerations"] = [{"key": "pytest-stateful.io/simulated", "operator": "Exists", "effect": "NoSchedule"}]
    # One pod per node: one on the real node, one on the simulated one.
    pod["affinity"] = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "nginx"}}, "topologyKey": "kubernetes.io/hostname"}
            ]
        }
    }
    (pytester.path / "statefulset.yaml").write_text(yaml.safe_dump_all(docs))
    shutil.copy(WEB / "svc.yaml", pytester.path / "svc.yaml")
    pytester.makepyfile(
        f"""
        def test_mixed(stateful):
            web = stateful(["svc.yaml", "statefulset.yaml"])
            on = {{p: web.recorder.current[("Pod", p)].get("node") for p in ("web-0", "web-1")}}
            simulated = next(p for p, node in on.items() if node == "{simulated_node}")
            real = next(p for p in on if p != simulated)
            web.delete_pod(0)
            for guarantee in ("stable_identity", "pod_dns", "stable_storage"):
                v = web.verdict(guarantee)
                assert (v.status, v.node) == ("passed", "passed"), v.explain()
                assert v.node_source == (
                    f"own container ({{real}}); not available for {{simulated}}: "
                    "on a simulated node (KWOK), where no container runs"
                ), v.node_source
        """
    )
    result = pytester.runpytest("--stateful-node=real", f"--stateful-image={TOOLS}", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_an_account_that_may_not_create_namespaces_is_told_so_in_one_sentence(
    pytester: pytest.Pytester, locked_down: Any
) -> None:
    _namespace, kubeconfig = locked_down()
    copy_seed(pytester.path)
    result = pytester.runpytest(*existing(kubeconfig, "runner", "--stateful-dns=127.0.0.1:10054"))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*forbidden: create namespaces (the account may not create namespaces): "
            "run in an existing namespace with --stateful-namespace NAME*"
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")
