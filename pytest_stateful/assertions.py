"""`assert_<guarantee>(handle)`: judge the record so far and fail with the evidence."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_stateful.checks import Verdict

if TYPE_CHECKING:
    from pytest_stateful.actions import StatefulSetHandle


class GuaranteeFailed(AssertionError):
    """A guarantee did not hold (or could not be judged); carries the verdict."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.explain())
        self.verdict = verdict


def check_guarantee(handle: StatefulSetHandle, guarantee: str) -> Verdict:
    __tracebackhide__ = True
    verdict = handle.verdict(guarantee)
    handle.verdicts[guarantee] = verdict
    if not verdict.passed:
        raise GuaranteeFailed(verdict)
    return verdict


def assert_ordered_creation(handle: StatefulSetHandle) -> Verdict:
    __tracebackhide__ = True
    return check_guarantee(handle, "ordered_creation")


def assert_ordered_termination(handle: StatefulSetHandle) -> Verdict:
    __tracebackhide__ = True
    return check_guarantee(handle, "ordered_termination")


def assert_ordered_rolling_update(handle: StatefulSetHandle) -> Verdict:
    __tracebackhide__ = True
    return check_guarantee(handle, "ordered_rolling_update")


def assert_stable_identity(handle: StatefulSetHandle) -> Verdict:
    __tracebackhide__ = True
    return check_guarantee(handle, "stable_identity")


def assert_pod_dns(handle: StatefulSetHandle) -> Verdict:
    __tracebackhide__ = True
    return check_guarantee(handle, "pod_dns")


def assert_stable_storage(handle: StatefulSetHandle) -> Verdict:
    __tracebackhide__ = True
    return check_guarantee(handle, "stable_storage")
