"""The end-of-session table: one row per test, one column per guarantee."""

from __future__ import annotations

from collections.abc import Mapping

from pytest_stateful.checks import GUARANTEES, Verdict
from pytest_stateful.timeline import aligned

HEADERS = {
    "ordered_creation": "creation",
    "ordered_termination": "termination",
    "ordered_rolling_update": "rolling update",
    "stable_identity": "identity",
    "pod_dns": "pod dns",
    "stable_storage": "storage",
    "rollout_recovers": "recovers",
    "availability": "availability",
    "at_most_one": "at-most-one",
    "claim_retention": "retention",
}


def _matrix_order(test: str) -> tuple[str, str]:
    """Rows of one test on each version next to each other: by the id without its `[k8s-...]` part."""
    base, _, param = test.partition("[k8s-")
    return base, param


def cell(verdict: Verdict | None) -> str:
    if verdict is None:
        return "-"
    if verdict.status == "passed":
        return "passed" if verdict.node != "passed" else "passed+node"
    # Each status reads differently: only "passed" is a pass.
    return {"failed": "FAILED", "incomplete": "incomplete", "not exercised": "not-exercised"}[verdict.status]


def guarantee_table(rows: Mapping[str, Mapping[str, Verdict]], versions: Mapping[str, str] | None = None) -> list[str]:
    """Aligned lines; `rows` maps a test id to its verdicts by guarantee, `versions` to the Kubernetes
    it ran on (a column only when tests ran on more than one: a version matrix)."""
    if not rows:
        return []
    versions = versions or {}
    by_version = len({versions.get(test, "") for test in rows}) > 1
    columns = [g for g in GUARANTEES if any(g in v for v in rows.values())]
    table = [["test", *(["kubernetes"] if by_version else []), *[HEADERS[g] for g in columns]]]
    for test, verdicts in sorted(rows.items(), key=lambda row: _matrix_order(row[0])) if by_version else rows.items():
        version = [versions.get(test) or "unknown"] if by_version else []
        table.append([test, *version, *[cell(verdicts.get(g)) for g in columns]])
    lines = aligned(table)
    node = {v.node for verdicts in rows.values() for v in verdicts.values()}
    if node == {"not available"}:
        lines.append(
            "all verdicts at api level: no node-level probe ran (on simulated nodes no container runs and no "
            "image is pulled; elsewhere each test's report says why)"
        )
    return lines
