"""Per-test report files: JSON (verdicts, timings, the whole timeline) and a self-contained HTML page."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_stateful.checks import Verdict
from pytest_stateful.timeline import Timeline


def report_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")[:150] or "test"


def write_reports(
    directory: Path,
    nodeid: str,
    outcome: str,
    subject: Mapping[str, Any],
    verdicts: Mapping[str, Verdict],
    timeline: Timeline,
) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    base = directory / report_name(nodeid)
    data = {
        "test": nodeid,
        "outcome": outcome,
        "subject": dict(subject),
        "verdicts": {g: v.to_dict() for g, v in verdicts.items()},
        "timeline": [e.to_dict() for e in timeline],
    }
    json_path = base.parent / (base.name + ".json")
    json_path.write_text(json.dumps(data, indent=1) + "\n")
    return [json_path]
