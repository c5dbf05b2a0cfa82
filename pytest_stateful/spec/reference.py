"""Render the YAML reference (docs/yaml-reference.md) and the step part of the shipped JSON Schema
from the step table (workload/steps.py) and the guarantees (checks/).

    python -m pytest_stateful.spec.reference > docs/yaml-reference.md
    python -m pytest_stateful.spec.reference schema > pytest_stateful/spec/schema.json

Tests fail when either file differs from what this renders, so neither can drift
from what the loader accepts and the runner dispatches.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from pytest_stateful.checks import GUARANTEES
from pytest_stateful.spec.loader import schema
from pytest_stateful.workload.steps import STEPS, step_schema


def render_schema() -> str:
    """schema.json as it must be: the shipped document with its steps and guarantees from the tables."""
    s = json.loads(json.dumps(schema()))
    s["$defs"]["step"] = step_schema()
    s["properties"]["expect"]["items"] = {"enum": list(GUARANTEES)}
    return json.dumps(s, indent=2) + "\n"


def _type(prop: dict[str, Any]) -> str:
    if "const" in prop:
        return f"`{json.dumps(prop['const'])}`"
    if "enum" in prop:
        return "one of " + ", ".join(f"`{v}`" for v in prop["enum"])
    kind = prop.get("type", "")
    if kind == "array":
        items = prop.get("items", {})
        inner = "step" if items.get("$ref") else _type(items)
        return f"list of {inner}"
    bounds = []
    if "minimum" in prop:
        bounds.append(f">= {prop['minimum']}")
    if "exclusiveMinimum" in prop:
        bounds.append(f"> {prop['exclusiveMinimum']}")
    if "maximum" in prop:
        bounds.append(f"<= {prop['maximum']}")
    return str(kind) + (f" ({', '.join(bounds)})" if bounds else "")


def _table(properties: dict[str, Any], required: list[str]) -> list[str]:
    lines = ["| key | type | required | meaning |", "|---|---|---|---|"]
    for name, prop in properties.items():
        lines.append(
            f"| `{name}` | {_type(prop)} | {'yes' if name in required else 'no'} | {prop.get('description', '')} |"
        )
    return lines


def render_markdown() -> str:
    s = schema()
    out = [
        "# YAML reference",
        "",
        "<!-- Generated from pytest_stateful/spec/schema.json by "
        "`python -m pytest_stateful.spec.reference`; do not edit by hand. -->",
        "",
        s["description"],
        "",
        "Each YAML document of a file matching `stateful_patterns` (default `*.stateful.yaml`) is one test.",
        "Give either `manifests` or `chart`, not both. Editors can validate specs with the schema:",
        "it ships in the package as `pytest_stateful/spec/schema.json`.",
        "",
        "## Document",
        "",
        *_table(s["properties"], s.get("required", [])),
        "",
        "## chart",
        "",
        *_table(s["properties"]["chart"]["properties"], s["properties"]["chart"].get("required", [])),
        "",
        "## steps",
        "",
        s["$defs"]["step"]["description"],
        "Steps run in order after the initial rollout settles; each waits for the StatefulSet to",
        "settle (observedGeneration current, every replica Ready, the rollout done) unless `settle: false`.",
        ", ".join(f"`{s.name}`" for s in STEPS if not s.settles)
        + " do not settle by default; "
        + ", ".join(f"`{s.name}`" for s in STEPS if s.options != ("settle", "timeout"))
        + " take fewer options (see each one).",
        "",
        *_table(s["$defs"]["step"]["properties"], []),
        "",
        "## expect",
        "",
        "The guarantees judged over the whole run; see [guarantees.md](guarantees.md) for exactly what each means.",
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    print(render_schema() if sys.argv[1:] == ["schema"] else render_markdown(), end="")
