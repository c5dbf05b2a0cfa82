"""One module per guarantee, each with the same shape: GUARANTEE, KINDS and check(timeline, subject)."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from pytest_stateful.checks import (
    at_most_one,
    availability,
    claim_retention,
    ordered_creation,
    ordered_rolling_update,
    ordered_termination,
    pod_dns,
    rollout_recovers,
    stable_identity,
    stable_storage,
)
from pytest_stateful.checks.verdict import Subject, Verdict, Violation
from pytest_stateful.errors import UsageError
from pytest_stateful.timeline import Timeline

MODULES: tuple[ModuleType, ...] = (
    ordered_creation,
    ordered_termination,
    ordered_rolling_update,
    stable_identity,
    pod_dns,
    stable_storage,
    rollout_recovers,
    availability,
    at_most_one,
    claim_retention,
)
CHECKS: dict[str, Callable[[Timeline, Subject], Verdict]] = {m.GUARANTEE: m.check for m in MODULES}
GUARANTEES: tuple[str, ...] = tuple(CHECKS)

__all__ = ["CHECKS", "GUARANTEES", "Subject", "Verdict", "Violation", "run_check"]


def run_check(guarantee: str, timeline: Timeline, subject: Subject) -> Verdict:
    try:
        check = CHECKS[guarantee]
    except KeyError:
        raise UsageError(f"unknown guarantee {guarantee!r}; known: {', '.join(GUARANTEES)}") from None
    # After the test deleted the StatefulSet the garbage collector deletes its pods all at once: only
    # claim_retention judges what followed.
    return check(
        timeline if guarantee == claim_retention.GUARANTEE else timeline.before_deletion(subject.statefulset), subject
    )
