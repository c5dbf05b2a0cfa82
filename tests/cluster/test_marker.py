"""Issue 4: `@pytest.mark.stateful(...)` gives Python tests the same vocabulary and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "examples" / "web"


def test_marker_runs_the_spec_and_the_body(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.stateful(
            manifests=["{WEB / "svc.yaml"}", "{WEB / "statefulset.yaml"}"],
            steps=[{{"delete_pod": 0}}, {{"scale": 3}}],
            expect=["ordered_creation", "stable_identity", "pod_dns", "stable_storage"],
        )
        def test_web():
            pass
        """
    )
    result = pytester.runpytest("--junitxml=junit.xml")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_web*passed*passed*passed*passed*"])
    junit = (pytester.path / "junit.xml").read_text()
    assert '<property name="stateful.ordered_creation" value="passed"' in junit
    assert '<property name="stateful.stable_identity.node" value="not available"' in junit
    assert 'name="stateful.pod_dns.dns_convergence_max_s"' in junit


def test_marker_failure_reads_like_a_spec_failure(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.stateful(manifests=["{WEB / "statefulset.yaml"}"], expect=["pod_dns"])
        def test_no_service():
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*pod_dns: FAILED (api level) - serviceName 'nginx' of web names no Service*"])
    assert "Traceback" not in result.stdout.str()


def test_marker_is_validated_like_yaml(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.stateful(manifests=["{WEB / "statefulset.yaml"}"], expect=["pod_dsn"])
        def test_typo():
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*invalid @pytest.mark.stateful: unknown guarantee 'pod_dsn' (did you mean 'pod_dns'?)*"
            "(test_marker_is_validated_like_yaml.py:3)*"
        ]
    )
