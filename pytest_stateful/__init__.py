"""pytest-stateful: prove on a real cluster that a StatefulSet keeps its contract."""

from pytest_stateful.actions import ManifestError, StatefulSetHandle, StepTimeout, load_manifests
from pytest_stateful.assertions import (
    GuaranteeFailed,
    assert_ordered_creation,
    assert_ordered_rolling_update,
    assert_ordered_termination,
    assert_pod_dns,
    assert_stable_identity,
    assert_stable_storage,
)
from pytest_stateful.checks import GUARANTEES, Subject, Verdict, run_check
from pytest_stateful.cluster.providers import ClusterHandle
from pytest_stateful.timeline import Entry, Timeline

__all__ = [
    "GUARANTEES",
    "ClusterHandle",
    "Entry",
    "GuaranteeFailed",
    "ManifestError",
    "StatefulSetHandle",
    "StepTimeout",
    "Subject",
    "Timeline",
    "Verdict",
    "assert_ordered_creation",
    "assert_ordered_rolling_update",
    "assert_ordered_termination",
    "assert_pod_dns",
    "assert_stable_identity",
    "assert_stable_storage",
    "load_manifests",
    "run_check",
]
