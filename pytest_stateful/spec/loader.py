"""Load `*.stateful.yaml` files: YAML with line numbers, JSON Schema validation, then the checks a
schema cannot express (files exist, the manifests hold the StatefulSet). No cluster contact."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from pytest_stateful.checks import GUARANTEES
from pytest_stateful.errors import SpecError
from pytest_stateful.workload.manifests import statefulsets_in
from pytest_stateful.workload.steps import BY_NAME, STEPS, StepKind

Path_ = tuple[str | int, ...]
# A step's YAML value: an ordinal or count, a number of seconds, a constant, or a mapping of strings.
StepValue = int | float | str | bool | Mapping[str, str]


@dataclass(frozen=True)
class Step:
    """One step of a spec: which kind (a row of the step table), its value and options, its line."""

    kind: StepKind
    value: StepValue
    settle: bool = True
    timeout: float | None = None
    line: int = 0

    @property
    def action(self) -> str:
        return self.kind.name

    def describe(self) -> str:
        return f"{self.action}: {json.dumps(self.value)}"


@dataclass(frozen=True)
class Spec:
    """One YAML document: what to deploy, what to do to it, what must hold."""

    path: Path
    index: int
    line: int
    name: str
    expect: tuple[str, ...]
    manifests: tuple[Path, ...] = ()
    chart: Mapping[str, Any] | None = None
    statefulset: str | None = None
    timeout: float | None = None
    marks: tuple[str, ...] = ()
    steps: tuple[Step, ...] = ()
    expect_lines: Mapping[str, int] = field(default_factory=dict)
    lines: Mapping[Path_, int] = field(default_factory=dict)


@cache
def schema() -> dict[str, Any]:
    text = resources.files("pytest_stateful.spec").joinpath("schema.json").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def load_file(path: Path) -> list[Spec]:
    text = path.read_text()
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise SpecError(path, line, f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
    specs = []
    documents = [n for n in nodes if n is not None]
    for index, node in enumerate(documents):
        lines: dict[Path_, int] = {}
        data = _to_python(node, (), lines)
        default_name = path.name.split(".")[0]
        if len(documents) > 1:
            default_name += f"[{index}]"
        specs.append(_build(path, index, node.start_mark.line + 1, data, lines, default_name))
    return specs


def spec_from_mapping(data: Mapping[str, Any], path: Path, line: int, name: str) -> Spec:
    """A spec given in Python (the `stateful` marker), validated exactly like a YAML document."""
    return _build(path, 0, line, dict(data), {}, name)


def validate(data: Any, path: Path, lines: Mapping[Path_, int], first_line: int) -> None:
    """Schema errors, rewritten as one precise sentence with the closest valid name."""
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(e.absolute_path), list(map(str, e.path))))
    if not errors:
        return
    error = _most_specific(errors)
    where: Path_ = tuple(error.absolute_path)
    line = _line(lines, where, first_line)
    if error.validator == "additionalProperties":
        # Point at the unknown key itself, not at the mapping that holds it.
        known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        instance: Any = error.instance
        extra = [k for k in instance if k not in known]
        line = _line(lines, (*where, extra[0]), line) if extra else line
    raise SpecError(path, line, _explain(error, where, data))


def _build(path: Path, index: int, line: int, data: Any, lines: dict[Path_, int], default_name: str) -> Spec:
    if not isinstance(data, dict):
        raise SpecError(path, line, f"a spec document must be a mapping of keys, not {type(data).__name__}")
    validate(data, path, lines, line)
    base = path.parent
    if ("manifests" in data) == ("chart" in data):  # neither, or both
        raise SpecError(path, line, "give either `manifests:` or `chart:` (exactly one of them)")
    manifests: list[Path] = []
    for i, rel in enumerate(data.get("manifests", [])):
        target = (base / rel).resolve()
        if not target.is_file():
            raise SpecError(
                path, _line(lines, ("manifests", i), line), f"manifest file {rel} not found (looked in {base})"
            )
        manifests.append(target)
    chart = data.get("chart")
    if chart is not None:
        chart_dir = (base / chart["path"]).resolve()
        if not (chart_dir / "Chart.yaml").is_file():
            raise SpecError(path, _line(lines, ("chart", "path"), line), f"chart {chart['path']} has no Chart.yaml")
        for i, rel in enumerate(chart.get("values_files", [])):
            if not (base / rel).is_file():
                raise SpecError(path, _line(lines, ("chart", "values_files", i), line), f"values file {rel} not found")
        chart = {
            **chart,
            "path": str(chart_dir),
            "values_files": [str((base / r).resolve()) for r in chart.get("values_files", [])],
        }
    statefulset = data.get("statefulset")
    if manifests:
        _check_statefulsets(path, line, lines, manifests, statefulset)
    steps = tuple(_step(path, lines, i, raw, line) for i, raw in enumerate(data.get("steps", [])))
    return Spec(
        path=path,
        index=index,
        line=line,
        name=data.get("name", default_name),
        expect=tuple(data["expect"]),
        manifests=tuple(manifests),
        chart=chart,
        statefulset=statefulset,
        timeout=data.get("timeout"),
        marks=tuple(data.get("marks", [])),
        steps=steps,
        expect_lines={g: _line(lines, ("expect", i), line) for i, g in enumerate(data["expect"])},
        lines=lines,
    )


def _check_statefulsets(
    path: Path, line: int, lines: Mapping[Path_, int], manifests: list[Path], wanted: str | None
) -> None:
    found: list[str] = []
    for manifest in manifests:
        try:
            docs = [d for d in yaml.safe_load_all(manifest.read_text()) if isinstance(d, dict)]
        except yaml.YAMLError as exc:
            raise SpecError(
                manifest, getattr(getattr(exc, "problem_mark", None), "line", 0) + 1, f"not valid YAML: {exc}"
            ) from None
        found += statefulsets_in(docs)
    where = _line(lines, ("manifests",), line)
    if not found:
        raise SpecError(path, where, "the manifests hold no StatefulSet: there is nothing to judge")
    if wanted is None and len(found) > 1:
        raise SpecError(
            path,
            where,
            f"the manifests hold several StatefulSets ({', '.join(found)}): "
            "add `statefulset:` to name the one under test",
        )
    if wanted is not None and wanted not in found:
        raise SpecError(
            path,
            _line(lines, ("statefulset",), line),
            f"statefulset: {wanted!r} is not in the manifests (they hold {', '.join(found)})",
        )


def _step(path: Path, lines: Mapping[Path_, int], i: int, raw: Mapping[str, Any], first: int) -> Step:
    line = _line(lines, ("steps", i), first)
    actions = [k for k in raw if k in BY_NAME]
    if len(actions) != 1:
        got = ", ".join(actions) if actions else "none"
        names = ", ".join(s.name for s in STEPS)
        raise SpecError(path, line, f"step {i + 1} needs exactly one action of {names} (it has {got})")
    kind = BY_NAME[actions[0]]
    return Step(
        kind, raw[kind.name], settle=bool(raw.get("settle", kind.settles)), timeout=raw.get("timeout"), line=line
    )


def _to_python(node: yaml.Node, where: Path_, lines: dict[Path_, int]) -> Any:
    """Build plain data from a YAML node, remembering the line of every key and item."""
    lines[where] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result = {}
        for key_node, value_node in node.value:
            key = key_node.value  # spec keys are plain scalars
            result[key] = _to_python(value_node, (*where, key), lines)
            lines[(*where, key)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, (*where, i), lines) for i, item in enumerate(node.value)]
    return yaml.SafeLoader("").construct_object(node)


def _line(lines: Mapping[Path_, int], where: Path_, default: int) -> int:
    while where:
        if where in lines:
            return lines[where]
        where = where[:-1]
    return default


def _most_specific(errors: list[jsonschema.ValidationError]) -> jsonschema.ValidationError:
    best = max(errors, key=lambda e: len(e.absolute_path))
    # Unknown keys are the most common mistake: report them before anything else at that place.
    for e in errors:
        if e.validator == "additionalProperties" and len(e.absolute_path) >= len(best.absolute_path) - 1:
            return e
    return best


def _explain(error: jsonschema.ValidationError, where: Path_, data: Any) -> str:
    place = _place(where)
    if error.validator == "additionalProperties":
        node_schema: Any = error.schema
        instance: Any = error.instance
        known = list(node_schema.get("properties", {}))
        extra = [k for k in instance if k not in known]
        key = extra[0]
        what = "step key" if where[:1] == ("steps",) else ("chart key" if where[:1] == ("chart",) else "key")
        return f"unknown {what} {key!r}{_suggest(key, known)}; valid: {', '.join(known)}"
    if error.validator == "enum" and where[:1] == ("expect",):
        suggestion = _suggest(str(error.instance), GUARANTEES)
        return f"unknown guarantee {error.instance!r}{suggestion}; valid: {', '.join(GUARANTEES)}"
    if error.validator == "not" and where[:1] == ("steps",):
        step: Any = error.instance
        action = next((k for k in step if k in BY_NAME), "this step")
        takes = " or ".join(BY_NAME[action].options) if action in BY_NAME else ""
        return f"{place}: {action} takes {'only ' + takes if takes else 'no settle or timeout'}"
    if error.validator == "required":
        return f"{place}: {error.message.replace('is a required property', 'is required')}"
    if error.validator == "type":
        got = f"{type(error.instance).__name__} {json.dumps(error.instance)}"
        return f"{place} must be {_article(error.validator_value)}, got {got}"
    if error.validator == "const":
        return f"{place} must be {json.dumps(error.validator_value)}, got {json.dumps(error.instance)}"
    if error.validator in ("minimum", "exclusiveMinimum"):
        bound = ">=" if error.validator == "minimum" else ">"
        return f"{place} must be {bound} {error.validator_value}, got {error.instance}"
    return f"{place}: {error.message}"


def _place(where: Path_) -> str:
    if not where:
        return "the document"
    out = str(where[0])
    for part in where[1:]:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _article(kind: Any) -> str:
    names = {
        "string": "a string",
        "integer": "an integer",
        "number": "a number",
        "boolean": "true or false",
        "array": "a list",
        "object": "a mapping",
    }
    if isinstance(kind, list):
        return " or ".join(names.get(str(k), str(k)) for k in kind)
    return names.get(kind, str(kind))


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
