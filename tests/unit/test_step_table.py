"""The step table (workload/steps.py) is the one source of the step vocabulary: the schema, the
loader, the runner's dispatch, the handle's methods and the YAML reference agree with it."""

from __future__ import annotations

import inspect
import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from pytest_stateful.errors import SpecError
from pytest_stateful.spec.loader import spec_from_mapping
from pytest_stateful.spec.reference import render_markdown, render_schema
from pytest_stateful.spec.runner import take_step
from pytest_stateful.workload.handle import StatefulSetHandle
from pytest_stateful.workload.steps import BY_NAME, STEP_OPTIONS, STEPS

ROOT = Path(__file__).resolve().parents[2]
SAMPLES: dict[str, Any] = {
    "delete_pod": 1,
    "delete_pods": "all",
    "force_delete_pod": 0,
    "scale": 3,
    "rollout_restart": True,
    "update_image": {"container": "nginx", "image": "nginx:1.10"},
    "bad_rollout": {"container": "nginx", "image": "127.0.0.1:5999/nginx:broken"},
    "partition": 2,
    "make_unready": 0,
    "make_ready": 0,
    "drain_node": 1,
    "fail_node": 1,
    "out_of_service": 1,
    "restore_node": "node-000001",
    "helm_upgrade": {"values": {"image": {"tag": "1.1"}}, "reuse_values": False},
    "helm_rollback": {"revision": 1},
    "helm_test": {},
    "start_ordinal": 5,
    "rollout_undo": {"to_revision": 1},
    "evict_pod": 1,
    "delete_claim": 1,
    "delete_statefulset": True,
    "cordon_node": 0,
    "uncordon_node": "node-000001",
    "sleep": 0.5,
}


def test_the_shipped_schema_is_rendered_from_the_table() -> None:
    shipped = resources.files("pytest_stateful.spec").joinpath("schema.json").read_text()
    assert json.loads(shipped) == json.loads(render_schema()), (
        "schema.json is out of date: python -m pytest_stateful.spec.reference schema > pytest_stateful/spec/schema.json"
    )


def test_the_yaml_reference_is_rendered_from_the_table() -> None:
    text = (ROOT / "docs" / "yaml-reference.md").read_text()
    assert text == render_markdown(), "python -m pytest_stateful.spec.reference > docs/yaml-reference.md"
    for step in STEPS:
        assert f"| `{step.name}` |" in text


def test_every_row_has_a_sample_here() -> None:
    assert set(SAMPLES) == set(BY_NAME)


@pytest.mark.parametrize("step", STEPS, ids=lambda s: s.name)
def test_the_handle_method_takes_what_the_row_says(step: Any) -> None:
    method = getattr(StatefulSetHandle, step.method)
    params = [p for p in inspect.signature(method).parameters if p != "self"]
    assert params == [*step.params, *step.options], f"{step.method}{inspect.signature(method)}"
    assert method.__doc__ or step.description


class _Recorder:
    """Stands in for the handle's methods only: which one the runner calls, with what."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        return lambda **kwargs: self.calls.append((name, kwargs))


@pytest.mark.parametrize("step", STEPS, ids=lambda s: s.name)
def test_the_loader_and_runner_dispatch_through_the_table(step: Any, tmp_path: Path) -> None:
    manifest = tmp_path / "sts.yaml"
    manifest.write_text("apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: web}\n")
    raw: dict[str, Any] = {step.name: SAMPLES[step.name]}
    if "timeout" in step.options:
        raw["timeout"] = 7
    spec = spec_from_mapping(
        {"manifests": [manifest.name], "steps": [raw], "expect": ["stable_identity"]}, tmp_path / "x.yaml", 1, "x"
    )
    (loaded,) = spec.steps
    assert loaded.kind is step and loaded.settle is step.settles
    fake = _Recorder()
    take_step(fake, loaded)  # type: ignore[arg-type]
    ((name, kwargs),) = fake.calls
    assert name == step.method
    expected = dict(step.arguments(SAMPLES[step.name]))
    expected.update({o: {"settle": step.settles, "timeout": 7 if "timeout" in raw else None}[o] for o in step.options})
    assert kwargs == expected


@pytest.mark.parametrize("step", [s for s in STEPS if set(STEP_OPTIONS) - set(s.options)], ids=lambda s: s.name)
def test_an_option_a_step_does_not_take_is_refused(step: Any, tmp_path: Path) -> None:
    (tmp_path / "sts.yaml").write_text("apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: web}\n")
    refused = next(o for o in STEP_OPTIONS if o not in step.options)
    value = {"settle": False, "timeout": 5}[refused]
    with pytest.raises(SpecError, match=f"{step.name} takes"):
        spec_from_mapping(
            {
                "manifests": ["sts.yaml"],
                "steps": [{step.name: SAMPLES[step.name], refused: value}],
                "expect": ["pod_dns"],
            },
            tmp_path / "x.yaml",
            1,
            "x",
        )
