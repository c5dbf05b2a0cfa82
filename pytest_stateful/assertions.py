"""`assert_<guarantee>(handle)`: judge the record so far and fail with the evidence.

Each is `handle.require(guarantee)`: the handle judges and keeps the verdict; this
module only gives the guarantees their names as functions.
"""

from __future__ import annotations

from collections.abc import Callable

from pytest_stateful.checks import Verdict
from pytest_stateful.errors import GuaranteeFailed
from pytest_stateful.workload.handle import StatefulSetHandle


def _assertion(guarantee: str) -> Callable[[StatefulSetHandle], Verdict]:
    def check(handle: StatefulSetHandle) -> Verdict:
        __tracebackhide__ = True
        return handle.require(guarantee)

    check.__name__ = check.__qualname__ = f"assert_{guarantee}"
    check.__doc__ = f"Judge {guarantee} on the record so far; raise GuaranteeFailed unless it held."
    return check


assert_ordered_creation = _assertion("ordered_creation")
assert_ordered_termination = _assertion("ordered_termination")
assert_ordered_rolling_update = _assertion("ordered_rolling_update")
assert_stable_identity = _assertion("stable_identity")
assert_pod_dns = _assertion("pod_dns")
assert_stable_storage = _assertion("stable_storage")
assert_rollout_recovers = _assertion("rollout_recovers")
assert_availability = _assertion("availability")
assert_at_most_one = _assertion("at_most_one")
assert_claim_retention = _assertion("claim_retention")

__all__ = [
    "GuaranteeFailed",
    "assert_at_most_one",
    "assert_availability",
    "assert_claim_retention",
    "assert_ordered_creation",
    "assert_ordered_rolling_update",
    "assert_ordered_termination",
    "assert_pod_dns",
    "assert_rollout_recovers",
    "assert_stable_identity",
    "assert_stable_storage",
]
