"""Run a Spec on a cluster: deploy, take the steps, judge the expected guarantees."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pytest_stateful.actions import ManifestError, StatefulSetHandle
from pytest_stateful.checks import Verdict
from pytest_stateful.cluster.build import HELM_VERSION, cache_dir
from pytest_stateful.cluster.providers import ClusterHandle
from pytest_stateful.session import Recording
from pytest_stateful.spec.loader import Spec, Step


class StepFailed(AssertionError):
    """A step of the spec could not be carried out (or did not settle in time)."""

    def __init__(self, step: Step, index: int, reason: str) -> None:
        super().__init__(f"step {index + 1} `{step.describe()}` failed: {reason}")
        self.step, self.index, self.reason = step, index, reason


class ExpectFailed(AssertionError):
    """One or more expected guarantees did not hold."""

    def __init__(self, verdicts: dict[str, Verdict]) -> None:
        failed = [v for v in verdicts.values() if not v.passed]
        super().__init__("; ".join(f"{v.guarantee}: {v.summary}" for v in failed))
        self.verdicts = verdicts
        self.failed = failed


@dataclass
class SpecRun:
    spec: Spec
    handle: StatefulSetHandle | None = None
    verdicts: dict[str, Verdict] = field(default_factory=dict)


def helm_binary() -> str | None:
    built = cache_dir() / "bin" / f"helm-{HELM_VERSION}" / "helm"
    if built.is_file():
        return str(built)
    return shutil.which("helm")


def render_chart(chart: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
    """`helm template` the chart into plain objects for the test namespace."""
    helm = helm_binary()
    if helm is None:
        raise ManifestError("chart: helm was not found: run `pytest-stateful cluster build` or put helm on PATH")
    release = chart.get("release") or Path(chart["path"]).name
    with tempfile.TemporaryDirectory(prefix="pytest-stateful-helm-") as tmp:
        args = [helm, "template", release, chart["path"], "--namespace", namespace]
        for values_file in chart.get("values_files", []):
            args += ["--values", values_file]
        if chart.get("values"):
            inline = Path(tmp) / "values.yaml"
            inline.write_text(json.dumps(chart["values"]))
            args += ["--values", str(inline)]
        env = {
            "HOME": tmp,
            "HELM_CACHE_HOME": tmp,
            "HELM_CONFIG_HOME": tmp,
            "HELM_DATA_HOME": tmp,
            "PATH": "/usr/bin:/bin",
        }
        proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    if proc.returncode != 0:
        raise ManifestError(f"helm template {chart['path']} failed: {proc.stderr.strip()}")
    return [d for d in yaml.safe_load_all(proc.stdout) if isinstance(d, dict)]


def run_spec(
    spec: Spec,
    cluster: ClusterHandle,
    namespace: str,
    timeout: float,
    run: SpecRun | None = None,
    progress: Callable[[str], None] | None = None,
    image: str | None = None,
) -> SpecRun:
    """Deploy into `namespace`, take every step, return the verdicts; raise StepFailed/ExpectFailed.

    `run` (if given) is filled as the spec goes, so a caller still has the handle after a failure.
    """
    run = run or SpecRun(spec)
    timeout = spec.timeout or timeout
    with Recording(cluster, namespace, timeout, progress, image) as recording:
        manifests: list[Any] = (
            list(spec.manifests) if spec.manifests else render_chart(dict(spec.chart or {}), namespace)
        )
        run.handle = recording.statefulset(manifests, spec.statefulset, timeout)
        for index, step in enumerate(spec.steps):
            try:
                take_step(run.handle, step)
            except (AssertionError, ManifestError) as exc:
                raise StepFailed(step, index, str(exc)) from exc
    run.verdicts = {g: run.handle.verdict(g) for g in spec.expect}
    run.handle.verdicts.update(run.verdicts)
    if any(not v.passed for v in run.verdicts.values()):
        raise ExpectFailed(run.verdicts)
    return run


def take_step(handle: StatefulSetHandle, step: Step) -> None:
    kwargs: dict[str, Any] = {"settle": step.settle, "timeout": step.timeout}
    value = step.value
    if step.action == "delete_pod":
        handle.delete_pod(int(value), **kwargs)
    elif step.action == "delete_pods":
        handle.delete_pods(**kwargs)
    elif step.action == "scale":
        handle.scale(int(value), **kwargs)
    elif step.action == "rollout_restart":
        handle.rollout_restart(**kwargs)
    elif step.action == "update_image":
        handle.update_image(value["container"], value["image"], **kwargs)
    elif step.action == "partition":
        handle.set_partition(int(value), **kwargs)
    elif step.action == "make_unready":
        handle.make_unready(int(value), **kwargs)
    elif step.action == "make_ready":
        handle.make_ready(int(value), **kwargs)
    elif step.action == "drain_node":
        handle.drain_node(int(value), **kwargs)
    elif step.action == "sleep":
        handle.sleep(float(value))
    else:  # the loader only lets known actions through
        raise ValueError(f"unknown step action {step.action!r}")
