"""Load `*.stateful.yaml` files: YAML with line numbers (bounded: yaml_input.py), JSON Schema
validation, then the checks a schema cannot express (numbers are finite, files exist, the manifests
hold the StatefulSet). No cluster contact."""

from __future__ import annotations

import difflib
import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from pytest_stateful.checks import GUARANTEES
from pytest_stateful.errors import SpecError
from pytest_stateful.workload.manifests import manifest_objects, statefulsets_in
from pytest_stateful.workload.steps import BY_NAME, OPTION_SCHEMAS, STEPS, StepKind
from pytest_stateful.yaml_input import SPEC_LIMITS, Path_, load, place

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
    namespace: str | None = None
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


def _is_integer(checker: Any, instance: Any) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


# JSON Schema counts 3.0 as an integer; a run cannot (a pod is web-3, not web-3.0, and the API
# server refuses 3.0 replicas), so an integer here is an int.
_Validator: Any = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


@cache
def _validator() -> Any:
    # The same rules with the step's $ref written out, and built once: resolving the $ref for
    # every step made validating 33,000 steps take 2 s instead of 1.2 s.
    inlined = json.loads(json.dumps(schema()))
    inlined["properties"]["steps"]["items"] = inlined["$defs"]["step"]
    return _Validator(inlined)


def load_file(path: Path) -> list[Spec]:
    documents = load(path, SPEC_LIMITS)
    if not documents:
        raise SpecError(
            path, 1, "no spec document in this file: write one (a mapping with at least `expect:`) or remove the file"
        )
    specs = []
    for index, document in enumerate(documents):
        default_name = path.name.split(".")[0]
        if len(documents) > 1:
            default_name += f"[{index}]"
        specs.append(_build(path, index, document.line, document.data, document.lines, default_name))
    return specs


def spec_from_mapping(data: Mapping[str, Any], path: Path, line: int, name: str) -> Spec:
    """A spec given in Python (the `stateful` marker), validated exactly like a YAML document."""
    return _build(path, 0, line, dict(data), {}, name)


def validate(data: Any, path: Path, lines: Mapping[Path_, int], first_line: int) -> None:
    """Schema errors, rewritten as one precise sentence with the closest valid name."""
    validator = _validator()
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
        raise SpecError(path, line, f"a spec document must be a mapping of keys, not {_kind(data)}")
    _check_values(data, path, lines, line)
    validate(data, path, lines, line)
    _check_limits(data, path, lines, line)
    base = path.parent
    if ("manifests" in data) == ("chart" in data):  # neither, or both
        raise SpecError(path, line, "give either `manifests:` or `chart:` (exactly one of them)")
    manifests: list[Path] = []
    for i, rel in enumerate(data.get("manifests", [])):
        target = _file(base, rel)
        if target is None:
            raise SpecError(
                path, _line(lines, ("manifests", i), line), f"manifest file {_name(rel)} not found (looked in {base})"
            )
        manifests.append(target)
    chart = data.get("chart")
    if chart is not None:
        chart_dir = _dir(base, chart["path"])
        if chart_dir is None or _file(chart_dir, "Chart.yaml") is None:
            raise SpecError(
                path, _line(lines, ("chart", "path"), line), f"chart {_name(chart['path'])} has no Chart.yaml"
            )
        for i, rel in enumerate(chart.get("values_files", [])):
            if _file(base, rel) is None:
                raise SpecError(
                    path, _line(lines, ("chart", "values_files", i), line), f"values file {_name(rel)} not found"
                )
        chart = {
            **chart,
            "path": str(chart_dir),
            "values_files": [str((base / r).resolve()) for r in chart.get("values_files", [])],
        }
    statefulset = data.get("statefulset")
    if manifests:
        _check_statefulsets(path, line, lines, manifests, statefulset)
    steps = tuple(_step(path, lines, i, raw, line) for i, raw in enumerate(data.get("steps", [])))
    for before, after in itertools.pairwise(steps):
        if before.kind.last:
            raise SpecError(
                path,
                after.line,
                f"{after.kind.name} comes after {before.kind.name}, which must be the last step: the StatefulSet "
                "is gone by then (write a second spec for what follows)",
            )
    return Spec(
        path=path,
        index=index,
        line=line,
        name=data.get("name", default_name),
        expect=tuple(data["expect"]),
        manifests=tuple(manifests),
        chart=chart,
        statefulset=statefulset,
        namespace=data.get("namespace"),
        timeout=data.get("timeout"),
        marks=tuple(data.get("marks", [])),
        steps=steps,
        expect_lines={g: _line(lines, ("expect", i), line) for i, g in enumerate(data["expect"])},
        lines=lines,
    )


def _dir(base: Path, rel: str) -> Path | None:
    """base/rel resolved, or None when the system cannot look the name up (a NUL byte, too long)."""
    try:
        return (base / rel).resolve()
    except (OSError, ValueError):
        return None


def _file(base: Path, rel: str) -> Path | None:
    """base/rel resolved, if it is a file. A name the system cannot look up (a NUL byte, too long)
    is not there, as far as a spec is concerned."""
    try:
        target = (base / rel).resolve()
        return target if target.is_file() else None
    except (OSError, ValueError):
        return None


@lru_cache(maxsize=256)
def _statefulsets_of(manifest: Path, mtime_ns: int, size: int) -> tuple[str, ...]:
    # Every document of a spec file usually names the same manifests: read each once per version.
    return tuple(statefulsets_in(manifest_objects(manifest)))


def _check_statefulsets(
    path: Path, line: int, lines: Mapping[Path_, int], manifests: list[Path], wanted: str | None
) -> None:
    found: list[str] = []
    for manifest in manifests:
        stat = manifest.stat()
        found += _statefulsets_of(manifest, stat.st_mtime_ns, stat.st_size)
    where = _line(lines, ("manifests",), line)
    if not found:
        raise SpecError(path, where, "the manifests hold no StatefulSet: there is nothing to judge")
    if wanted is None and len(found) > 1:
        raise SpecError(
            path,
            where,
            f"the manifests hold several StatefulSets ({', '.join(map(_name, found))}): "
            "add `statefulset:` to name the one under test",
        )
    if wanted is not None and wanted not in found:
        raise SpecError(
            path,
            _line(lines, ("statefulset",), line),
            f"statefulset: {wanted!r} is not in the manifests (they hold {', '.join(map(_name, found))})",
        )


# What the schema cannot say. JSON Schema's bounds let NaN through (every comparison with it is
# false) and JSON has no infinity; Python's int has no size, and past 4300 digits even printing
# one in a message raises. A spec given in Python (the marker) can hold anything, even itself.
MAX_INT_BITS = 64
# The document's timeout has no maximum in the schema (docs/yaml-reference.md is rendered from it);
# it is held to the same day as a step's.
MAX_TIMEOUT: float = OPTION_SCHEMAS["timeout"]["maximum"]
# A mark name pytest takes (it refuses a leading _ with a traceback) and that `-m` can select: not
# one of the words it reads as operators.
_MARK = re.compile("[A-Za-z][A-Za-z0-9_]*")
_MARK_WORDS = frozenset({"and", "or", "not"})


def _check_values(data: Any, path: Path, lines: Mapping[Path_, int], first: int) -> None:
    stack: list[tuple[Path_, Any]] = [((), data)]
    while stack:
        where, value = stack.pop()
        line = _line(lines, where, first)
        if len(where) > SPEC_LIMITS.max_depth:
            raise SpecError(path, line, f"{place(where[:-1])} is nested more than {SPEC_LIMITS.max_depth} levels deep")
        if isinstance(value, float) and not math.isfinite(value):
            raise SpecError(path, line, f"{place(where)} is {value}, not a finite number: give a finite number")
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() >= MAX_INT_BITS:
            raise SpecError(
                path, line, f"{place(where)} is an integer of {value.bit_length()} bits: give one that fits in 64 bits"
            )
        if isinstance(value, Mapping):
            stack += [((*where, str(k)), v) for k, v in value.items()]
        elif isinstance(value, list | tuple):
            stack += [((*where, i), v) for i, v in enumerate(value)]


def _check_limits(data: Mapping[str, Any], path: Path, lines: Mapping[Path_, int], first: int) -> None:
    timeout = data.get("timeout")
    if isinstance(timeout, int | float) and timeout > MAX_TIMEOUT:
        raise SpecError(
            path,
            _line(lines, ("timeout",), first),
            f"timeout must be <= {MAX_TIMEOUT:g} (one day), got {timeout:g}: give the seconds each step may take",
        )
    for i, mark in enumerate(data.get("marks", [])):
        if not _MARK.fullmatch(mark):  # the schema's pattern, where `$` lets a trailing newline through
            raise SpecError(
                path,
                _line(lines, ("marks", i), first),
                f"marks[{i}] must be a pytest mark name (a letter, then letters, digits or _), got {_json(mark)}",
            )
        if mark in _MARK_WORDS:
            raise SpecError(
                path,
                _line(lines, ("marks", i), first),
                f"marks[{i}]: {mark!r} cannot be a mark, `-m` reads it as an operator: rename it",
            )


def _step(path: Path, lines: Mapping[Path_, int], i: int, raw: Mapping[str, Any], first: int) -> Step:
    line = _line(lines, ("steps", i), first)
    actions = [k for k in raw if k in BY_NAME]
    if len(actions) != 1:
        got = ", ".join(actions) if actions else "none"
        names = ", ".join(s.name for s in STEPS)
        raise SpecError(path, line, f"step {i + 1} needs exactly one action of {names} (it has {got})")
    kind = BY_NAME[actions[0]]
    value = raw[kind.name]
    if kind.name == "helm_upgrade":
        value = _upgrade_paths(path, lines, i, value, line)
    return Step(kind, value, settle=bool(raw.get("settle", kind.settles)), timeout=raw.get("timeout"), line=line)


def _upgrade_paths(path: Path, lines: Mapping[Path_, int], i: int, value: Mapping[str, Any], line: int) -> Any:
    """helm_upgrade's chart and values files, relative to the spec, checked and made absolute."""
    base = path.parent
    value = dict(value)
    if "chart" in value:
        chart_dir = _dir(base, value["chart"])
        if chart_dir is None or _file(chart_dir, "Chart.yaml") is None:
            where = _line(lines, ("steps", i, "helm_upgrade", "chart"), line)
            raise SpecError(path, where, f"chart {_name(value['chart'])} has no Chart.yaml (looked in {base})")
        value["chart"] = str(chart_dir)
    for j, rel in enumerate(value.get("values_files", [])):
        if _file(base, rel) is None:
            where = _line(lines, ("steps", i, "helm_upgrade", "values_files", j), line)
            raise SpecError(path, where, f"values file {_name(rel)} not found (looked in {base})")
    if "values_files" in value:
        value["values_files"] = [str((base / r).resolve()) for r in value["values_files"]]
    return value


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
    at = place(where)
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
        return f"{at}: {action} takes {'only ' + takes if takes else 'no settle or timeout'}"
    if error.validator == "required":
        return f"{at}: {error.message.replace('is a required property', 'is required')}"
    if error.validator == "type":
        got = f"{type(error.instance).__name__} {_json(error.instance)}"
        return f"{at} must be {_article(error.validator_value)}, got {got}"
    if error.validator == "const":
        return f"{at} must be {json.dumps(error.validator_value)}, got {_json(error.instance)}"
    if error.validator in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        bound = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
        return f"{at} must be {bound[str(error.validator)]} {error.validator_value}, got {error.instance}"
    if error.validator == "pattern" and where == ("name",):
        return f"name must be one line of text without control characters, got {_json(error.instance)}"
    if error.validator == "pattern" and where[:1] == ("marks",):
        return f"{at} must be a pytest mark name (a letter, then letters, digits or _), got {_json(error.instance)}"
    return f"{at}: {error.message}"


def _name(text: str) -> str:
    # As written, unless quoting is needed to keep the message one printable line.
    return text if text.isprintable() else json.dumps(text)


def _json(value: Any) -> str:
    # A spec given in Python may hold what JSON cannot (a date, a set): show it, do not fail on it.
    return json.dumps(value, default=repr)


def _kind(value: Any) -> str:
    names = {type(None): "null", bool: "true or false", str: "a string", list: "a list", int: "a number"}
    return names.get(type(value), "a number" if isinstance(value, float) else type(value).__name__)


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
