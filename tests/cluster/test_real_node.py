"""Issue 6: node-level evidence on a real node (kubelet + containerd), and a clean `down`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pytest_stateful.cluster import procs
from pytest_stateful.cluster.local import LocalCluster

WEB = Path(__file__).resolve().parents[2] / "examples" / "web"
REAL = ["--stateful-node=real", "--stateful-image=pytest-stateful.local/tools", "-p", "no:cacheprovider"]


def test_node_level_checks_pass_on_the_web_example(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        f"""
        def test_web(stateful, stateful_cluster):
            web = stateful(["{WEB / "svc.yaml"}", "{WEB / "statefulset.yaml"}"])
            old_ip = web.recorder.current[("Pod", "web-0")].get("ip")
            web.delete_pod(0)
            assert web.exec("web-0", ["hostname"]).strip() == "web-0"
            new_ip = web.recorder.current[("Pod", "web-0")].get("ip")
            zone = f"nginx.{{web.namespace}}.svc.cluster.local"
            assert web.exec("web-1", ["resolve", "web-0.nginx"]).split() == [new_ip]
            for guarantee in ("stable_identity", "pod_dns", "stable_storage"):
                verdict = web.verdict(guarantee)
                got = (verdict.status, verdict.fidelity, verdict.node)
                assert got == ("passed", "node", "passed"), verdict.explain()
            probes = {{(e.get("probe"), e.name) for e in web.timeline.of("Probe")}}
            assert ("hostname", "web-0") in probes and ("marker", "web-0") in probes and ("dns", "web-1") in probes
            print("IPS", old_ip, new_ip)
        """
    )
    result = pytester.runpytest(*REAL, "-s")
    result.assert_outcomes(passed=1)


def test_host_network_fails_node_level_identity(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        f"""
        import pytest, yaml
        from pytest_stateful import GuaranteeFailed

        def test_host_network(stateful):
            docs = list(yaml.safe_load_all(open("{WEB / "statefulset.yaml"}")))
            spec = docs[0]["spec"]
            spec["replicas"] = 1
            spec["template"]["spec"]["hostNetwork"] = True
            spec["template"]["spec"]["dnsPolicy"] = "ClusterFirstWithHostNet"
            # In the node's network namespace: no web server, so nothing listens on the machine's ports.
            spec["template"]["spec"]["containers"][0]["command"] = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
            web = stateful(["{WEB / "svc.yaml"}", *docs])
            web.delete_pod(0)
            with pytest.raises(GuaranteeFailed) as failed:
                web.assert_stable_identity()
            assert failed.value.verdict.node == "failed"
            print("MESSAGE", failed.value.verdict.summary)
        """
    )
    result = pytester.runpytest(*REAL, "-s")
    result.assert_outcomes(passed=1)
    host = subprocess.run(["hostname"], capture_output=True, text=True).stdout.strip()
    result.stdout.fnmatch_lines([f"*MESSAGE hostname inside web-0 printed '{host}', not 'web-0'"])


def test_down_of_the_real_node_leaves_nothing(tmp_path: Path) -> None:
    cluster = LocalCluster.current("real")
    assert cluster.is_up(), "the real-node cluster is started by ./run tests"
    node_dir = cluster.run_dir / "node"
    subprocess.run([sys.executable, "-m", "pytest_stateful.cli", "cluster", "down", "--node", "real"], check=True)
    try:
        assert procs.pids_mentioning(str(cluster.run_dir)) == []
        assert procs.mounts_under(node_dir) == []
        assert subprocess.run(["ip", "link", "show", "pst0"], capture_output=True).returncode != 0
        assert not cluster.run_dir.exists()
    finally:
        up = [sys.executable, "-m", "pytest_stateful.cli", "cluster", "up", "--node", "real"]
        subprocess.run(up, check=True, capture_output=True)


def test_port_forward_dns_probing_answers_like_the_direct_server(pytester: pytest.Pytester) -> None:
    # Port-forward probing is what works on kind and other real clusters: DNS over TCP to the
    # kube-dns pod through the API server. The local real node runs such a pod.
    pytester.makepyfile(
        f"""
        from pytest_stateful.dns import DirectResolver, PortForwardResolver

        def test_web(stateful, stateful_cluster):
            web = stateful(["{WEB / "svc.yaml"}", "{WEB / "statefulset.yaml"}"])
            web.delete_pod(0)
            forwarded = PortForwardResolver(stateful_cluster.core)
            direct = stateful_cluster.resolver
            zone = f"nginx.{{web.namespace}}.svc.cluster.local"
            new_ip = web.recorder.current[("Pod", "web-0")].get("ip")
            assert forwarded.a_records(f"web-0.{{zone}}") == ("NOERROR", [new_ip])
            assert forwarded.a_records(zone) == direct.a_records(zone)
            assert forwarded.a_records(f"web-9.{{zone}}") == ("NXDOMAIN", [])
        """
    )
    pytester.runpytest(*REAL).assert_outcomes(passed=1)


def test_existing_provider_probes_dns_through_port_forward(pytester: pytest.Pytester) -> None:
    cluster = LocalCluster.current("real")
    pytester.makepyfile(
        f"""
        def test_web(stateful, stateful_cluster):
            assert stateful_cluster.resolver.address == "port-forward kube-system/k8s-app=kube-dns:53"
            web = stateful(["{WEB / "svc.yaml"}", "{WEB / "statefulset.yaml"}"])
            web.delete_pod(1)
            assert web.assert_pod_dns().timings["probes"] >= 6
        """
    )
    result = pytester.runpytest(
        "--stateful-cluster=existing",
        f"--kubeconfig={cluster.kubeconfig}",
        f"--kube-context={cluster.context}",
        "--stateful-image=pytest-stateful.local/tools",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=1)


def test_an_image_that_cannot_be_pulled_fails_on_the_real_node_naming_the_cause(pytester: pytest.Pytester) -> None:
    # Simulated nodes run no container and pull no image (the report says so); a real node must fail.
    # The registry is on loopback and absent, so the pull is refused without leaving this machine.
    pytester.makepyfile(
        f"""
        import pytest, yaml
        from pytest_stateful import StepTimeout

        def test_missing_image(stateful):
            docs = list(yaml.safe_load_all(open("{WEB / "statefulset.yaml"}")))
            container = docs[0]["spec"]["template"]["spec"]["containers"][0]
            container["image"] = "127.0.0.1:5999/not-there:1"
            container["imagePullPolicy"] = "IfNotPresent"
            docs[0]["spec"]["replicas"] = 1
            docs[0]["spec"].pop("volumeClaimTemplates", None)
            container.pop("volumeMounts", None)
            with pytest.raises(StepTimeout) as failed:
                stateful(["{WEB / "svc.yaml"}", *docs], timeout=40)
            text = str(failed.value)
            assert "web-0 cannot start its container" in text, text
            assert "ErrImagePull" in text or "ImagePullBackOff" in text, text
        """
    )
    result = pytester.runpytest("--stateful-node=real", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
