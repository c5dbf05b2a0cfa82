"""What a check returns: a verdict with the evidence a person needs to act on it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pytest_stateful.timeline import PROBE, Entry, Timeline, format_table

# passed: held and was exercised. failed: broken (or impossible by configuration). incomplete: the
# record lost events of a kind the check reads, or lacks evidence it needs. not exercised: the run
# never did what would show it (add the step the summary names). Only "passed" passes.
Status = Literal["passed", "failed", "incomplete", "not exercised"]
STATUSES: tuple[Status, ...] = ("passed", "failed", "incomplete", "not exercised")
NodeStatus = Literal["passed", "failed", "not available"]

# Rows of context shown on each side of a violation.
CONTEXT_ROWS = 4


@dataclass(frozen=True)
class Subject:
    """What a check judges: one StatefulSet in one namespace."""

    statefulset: str
    namespace: str
    cluster_domain: str = "cluster.local"


@dataclass(frozen=True)
class Violation:
    """One broken promise: a sentence, and the entry where it shows."""

    message: str
    at: Entry | None = None


@dataclass
class Verdict:
    guarantee: str
    status: Status
    summary: str
    fidelity: str = "api"
    node: NodeStatus = "not available"
    # Where node-level evidence came from: "ephemeral probe (web-0, web-1)", "own container (...)",
    # "not available: on a simulated node (KWOK), where no container runs (web-0)"; "" for checks
    # that have no node-level probe.
    node_source: str = ""
    violations: list[Violation] = field(default_factory=list)
    diagnosis: list[str] = field(default_factory=list)
    timings: dict[str, Any] = field(default_factory=dict)
    evidence: str = ""
    # Remarks that do not fail the verdict (e.g. "maxUnavailable relaxes one at a time").
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def explain(self) -> str:
        """The multi-line failure text: guarantee, violation, timeline slice, diagnosis."""
        lines = [f"{self.guarantee}: {self.status.upper()} ({self.fidelity} level) - {self.summary}"]
        others = [v for v in self.violations if v.message != self.summary]
        for v in others[:10]:
            lines.append(f"  - {v.message}")
        if len(others) > 10:
            lines.append(f"  ... and {len(others) - 10} more")
        causes = [d for d in self.diagnosis if d != self.summary]
        if causes:
            lines.append("diagnosis:")
            lines += [f"  * {d}" for d in causes]
        lines += [f"note: {n}" for n in self.notes]
        if self.evidence:
            lines.append("timeline around the first violation:")
            lines += ["  " + row for row in self.evidence.splitlines()]
        if self.node_source.startswith("not available"):
            lines.append(f"node-level evidence: {self.node_source}")
        else:
            lines.append(f"node-level evidence: {self.node}" + (f" - {self.node_source}" if self.node_source else ""))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "guarantee": self.guarantee,
            "status": self.status,
            "summary": self.summary,
            "fidelity": self.fidelity,
            "node": self.node,
            "node_source": self.node_source,
            "violations": [{"message": v.message, "seq": v.at.seq if v.at else None} for v in self.violations],
            "diagnosis": list(self.diagnosis),
            "timings": dict(self.timings),
            "notes": list(self.notes),
        }


def judged(
    guarantee: str,
    timeline: Timeline,
    violations: Sequence[Violation],
    ok_summary: str,
    diagnosis: Sequence[str] = (),
    timings: dict[str, Any] | None = None,
    kinds: Sequence[str] = (),
) -> Verdict:
    """The common tail of every check: passed, or failed with the first violation's slice."""
    if not violations and not diagnosis:
        return Verdict(guarantee, "passed", ok_summary, timings=dict(timings or {}))
    first = next((v for v in violations if v.at is not None), None)
    evidence = evidence_around(timeline, first.at, kinds) if first and first.at else ""
    summary = violations[0].message if violations else diagnosis[0]
    return Verdict(
        guarantee,
        "failed",
        summary,
        violations=list(violations),
        diagnosis=list(diagnosis),
        timings=dict(timings or {}),
        evidence=evidence,
    )


def incomplete(guarantee: str, timeline: Timeline, kinds: str | Sequence[str]) -> Verdict | None:
    """A check cannot pass over a gap in the record of any kind it reads."""
    wanted = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    gaps = [g for g in timeline.gaps() if g.name in wanted]
    if not gaps:
        return None
    lost = ", ".join(dict.fromkeys(g.name for g in gaps))
    return Verdict(
        guarantee,
        "incomplete",
        f"incomplete record: {lost} events were lost ({gaps[0].get('reason')}); the guarantee cannot be judged",
        evidence=format_table(gaps),
    )


def not_exercised(guarantee: str, why: str) -> Verdict:
    """The run never did what would show the guarantee: not a pass, and the summary says what to add."""
    return Verdict(guarantee, "not exercised", why)


def evidence_around(timeline: Timeline, at: Entry, kinds: Sequence[str] = ()) -> str:
    wanted = [e for e in timeline.entries if not kinds or e.kind in kinds or e.seq == at.seq]
    idx = next((i for i, e in enumerate(wanted) if e.seq == at.seq), 0)
    lo, hi = max(0, idx - CONTEXT_ROWS), idx + CONTEXT_ROWS + 1
    return format_table(wanted[lo:hi], mark=at)


def node_level(verdict: Verdict, timeline: Timeline, probe: str) -> Verdict:
    """Fold in-container probe results into a verdict, and say where they came from; without
    any, node level is not available, and the pods that could not be probed say why."""
    probes = timeline.of(PROBE)
    results = [e for e in probes if e.type == "exec" and e.get("probe") == probe]
    missing = [e for e in probes if e.type == "unavailable"]
    verdict.node_source = node_source(results, missing)
    if not results:
        return verdict
    failures = [e for e in results if not e.get("ok")]
    verdict.fidelity = "node"
    verdict.node = "failed" if failures else "passed"
    if failures:
        first = failures[0]
        message = str(first.get("message"))
        if verdict.passed:
            verdict.summary = message
        verdict.status = "failed"
        verdict.violations.append(Violation(message, first))
    return verdict


def node_source(results: Sequence[Entry], missing: Sequence[Entry]) -> str:
    """ "ephemeral probe (web-0, web-1); not available for web-2: <why>", from probe entries."""
    by_way: dict[str, list[str]] = {}
    for e in results:
        by_way.setdefault(str(e.get("via") or "own container"), []).append(str(e.get("pod")))
    # A pod lifetime (UID; the name in records without one) probed at least once. A recreated pod that
    # could not be probed is named even when its predecessor of the same name was.
    probed = {e.uid or str(e.get("pod")) for e in results}
    by_reason: dict[str, list[str]] = {}
    for e in missing:
        if (e.uid or str(e.get("pod"))) not in probed:
            by_reason.setdefault(str(e.get("reason")), []).append(str(e.get("pod")))
    parts = [f"{way} ({_names(pods)})" for way, pods in sorted(by_way.items())]
    if not parts and not by_reason:
        return "not available: no node-level probe ran"
    if not parts:
        return "; ".join(f"not available: {why} ({_names(pods)})" for why, pods in by_reason.items())
    parts += [f"not available for {_names(pods)}: {why}" for why, pods in by_reason.items()]
    return "; ".join(parts)


def _names(pods: Sequence[str]) -> str:
    unique = sorted(set(pods), key=lambda p: (len(p), p))
    return ", ".join(unique[:6]) + (f" and {len(unique) - 6} more" if len(unique) > 6 else "")
