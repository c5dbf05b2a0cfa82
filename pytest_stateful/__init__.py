"""pytest-stateful: prove on a real cluster that a StatefulSet keeps its contract."""

from pytest_stateful.assertions import (
    assert_at_most_one,
    assert_availability,
    assert_claim_retention,
    assert_ordered_creation,
    assert_ordered_rolling_update,
    assert_ordered_termination,
    assert_pod_dns,
    assert_rollout_recovers,
    assert_stable_identity,
    assert_stable_storage,
)
from pytest_stateful.checks import GUARANTEES, Subject, Verdict, run_check
from pytest_stateful.cluster.handle import ClusterHandle
from pytest_stateful.errors import (
    ApiError,
    ClusterError,
    GuaranteeFailed,
    ManifestError,
    NotSupported,
    SpecError,
    StatefulError,
    StepError,
    StepTimeout,
)
from pytest_stateful.timeline import Entry, Timeline
from pytest_stateful.workload.handle import StatefulSetHandle
from pytest_stateful.workload.manifests import load_manifests

__all__ = [
    "GUARANTEES",
    "ApiError",
    "ClusterError",
    "ClusterHandle",
    "Entry",
    "GuaranteeFailed",
    "ManifestError",
    "NotSupported",
    "SpecError",
    "StatefulError",
    "StatefulSetHandle",
    "StepError",
    "StepTimeout",
    "Subject",
    "Timeline",
    "Verdict",
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
    "load_manifests",
    "run_check",
]
