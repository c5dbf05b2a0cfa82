"""Per-test report files: JSON (verdicts, timings, the whole timeline) and a self-contained HTML page.

python -m pytest_stateful.report REPORT.json   # re-render the HTML from a JSON report
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_stateful.checks import Verdict
from pytest_stateful.report.html import render_html
from pytest_stateful.timeline import Timeline


def report_name(nodeid: str) -> str:
    """A file name from the test id; a long one is cut, with a digest of the whole id so that ids
    differing only at the end (the version of a matrix, a parameter) keep files of their own."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_") or "test"
    if len(name) <= 150:
        return name
    return name[:140] + "-" + hashlib.sha256(nodeid.encode()).hexdigest()[:9]


def write_reports(
    directory: Path,
    nodeid: str,
    outcome: str,
    subject: Mapping[str, Any],
    verdicts: Mapping[str, Verdict],
    timeline: Timeline,
    watch_errors: Sequence[str] = (),
) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    base = directory / report_name(nodeid)
    data = {
        "test": nodeid,
        "outcome": outcome,
        "subject": dict(subject),
        "verdicts": {g: v.to_dict() for g, v in verdicts.items()},
        "timeline": [e.to_dict() for e in timeline],
        # Failures of the recorder's watches (each resumed from its last resourceVersion; lost events are Gaps).
        "watch_errors": list(watch_errors),
    }
    json_path = base.parent / (base.name + ".json")
    json_path.write_text(json.dumps(data, indent=1) + "\n")
    html_path = base.parent / (base.name + ".html")
    html_path.write_text(render_html(data))
    return [json_path, html_path]
