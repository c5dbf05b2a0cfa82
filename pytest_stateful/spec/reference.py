"""Render the YAML reference (docs/yaml-reference.md) from the shipped JSON Schema.

    python -m pytest_stateful.spec.reference > docs/yaml-reference.md

A test fails when the file differs from what the schema renders, so the
reference cannot drift from what the loader accepts.
"""

from __future__ import annotations

import json
from typing import Any

from pytest_stateful.spec.loader import schema


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
        "`make_unready` and `sleep` do not settle by default.",
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
    print(render_markdown(), end="")
