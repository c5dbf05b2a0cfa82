"""THE step table: every disruption a test can take, once.

The spec schema's step definitions, the loader, the runner's dispatch, the
handle's method signatures and docs/yaml-reference.md are generated from this
table or held against it by tests/unit/test_step_table.py. A new step is one
row here and one method on StatefulSetHandle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ORDINAL = {"type": "integer", "minimum": 0, "maximum": 2147483647}
STEP_OPTIONS = ("settle", "timeout")
CONTAINER_IMAGE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["container", "image"],
    "properties": {
        "container": {"type": "string", "minLength": 1},
        "image": {"type": "string", "minLength": 1},
    },
}


@dataclass(frozen=True)
class StepKind:
    """One step: its YAML key, the handle method it calls and how the YAML value maps to arguments."""

    name: str
    method: str
    description: str
    value: Mapping[str, Any]  # JSON Schema of the YAML value
    # The method's parameters before settle/timeout: () takes no value (the YAML value is a constant),
    # the keys of a mapping value (an object schema), else one name takes the whole value.
    params: tuple[str, ...] = ()
    # Waits for the StatefulSet to settle unless told otherwise.
    settles: bool = True
    # Which of settle/timeout the step accepts.
    options: tuple[str, ...] = STEP_OPTIONS
    # Data on the claims must survive it: node-level markers are written before it.
    disruption: bool = False
    # Nothing may follow it (the StatefulSet is gone).
    last: bool = False

    def arguments(self, value: Any) -> dict[str, Any]:
        """The YAML value as keyword arguments of the handle method."""
        if not self.params:
            return {}
        if self.value.get("type") == "object":
            return {p: value[p] for p in self.params if p in value}  # a key left out takes the default
        return {self.params[0]: value}

    def schema(self) -> dict[str, Any]:
        return {**self.value, "description": self.description}


STEPS: tuple[StepKind, ...] = (
    StepKind("delete_pod", "delete_pod", "Delete the pod of this ordinal.", ORDINAL, ("ordinal",), disruption=True),
    StepKind("delete_pods", "delete_pods", "Delete every pod at once.", {"const": "all"}, disruption=True),
    StepKind(
        "force_delete_pod",
        "force_delete_pod",
        "Delete the pod of this ordinal with grace period 0, as many scripts and operators do: the API object "
        "goes at once, whether or not its node confirmed that the containers stopped.",
        ORDINAL,
        ("ordinal",),
        disruption=True,
    ),
    StepKind(
        "scale",
        "scale",
        "Set spec.replicas.",
        {"type": "integer", "minimum": 0, "maximum": 2147483647},
        ("replicas",),
        disruption=True,
    ),
    StepKind(
        "rollout_restart",
        "rollout_restart",
        "Restart every pod through a rolling update.",
        {"const": True},
        disruption=True,
    ),
    StepKind(
        "update_image",
        "update_image",
        "Change one container's image.",
        CONTAINER_IMAGE,
        ("container", "image"),
        disruption=True,
    ),
    StepKind(
        "bad_rollout",
        "bad_rollout",
        "Roll out a revision whose pods never become Ready: this image (one that cannot be pulled, used as "
        "given), and on the local cluster's simulated nodes a readiness hold; does not settle. The next "
        "update_image or rollout_restart is the fix and drops the hold.",
        CONTAINER_IMAGE,
        ("container", "image"),
        settles=False,
        options=(),
        disruption=True,
    ),
    StepKind(
        "partition",
        "set_partition",
        "Set updateStrategy.rollingUpdate.partition (canary and phased rollouts).",
        {"type": "integer", "minimum": 0, "maximum": 2147483647},
        ("partition",),
        disruption=True,
    ),
    StepKind(
        "start_ordinal",
        "start_ordinal",
        "Set spec.ordinals.start on the live StatefulSet: ordinals below the new start are removed (highest "
        "first), new ones above are created.",
        {"type": "integer", "minimum": 0, "maximum": 2147483647},
        ("start",),
        disruption=True,
    ),
    StepKind(
        "rollout_undo",
        "rollout_undo",
        "Roll the pod template back to a ControllerRevision, as `kubectl rollout undo` does: `to_revision` "
        "(its revision number), default the one before the current.",
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {"to_revision": {"type": "integer", "minimum": 1, "maximum": 2147483647}},
        },
        ("to_revision",),
        disruption=True,
    ),
    StepKind(
        "evict_pod",
        "evict_pod",
        "Evict the pod of this ordinal through the eviction API (a PodDisruptionBudget may refuse it: asked "
        "again until the step times out); settling waits for its replacement.",
        ORDINAL,
        ("ordinal",),
        disruption=True,
    ),
    StepKind(
        "delete_claim",
        "delete_claim",
        "Delete the PersistentVolumeClaims of this ordinal (one per volumeClaimTemplate), the test's own deletion: "
        "the ordinal's data goes with them. A claim that a scheduled pod still uses stays Terminating until the "
        "pod goes (kubernetes.io/pvc-protection); the controller creates a missing claim again for a Pending pod. "
        "Settling waits for the StatefulSet, so a pod held Pending (its node cordoned) needs `settle: false`.",
        ORDINAL,
        ("ordinal",),
        disruption=True,
    ),
    StepKind(
        "delete_statefulset",
        "delete_statefulset",
        "Delete the StatefulSet as `kubectl delete` does (background cascade): the garbage collector deletes its "
        "pods, and its claims if persistentVolumeClaimRetentionPolicy.whenDeleted is Delete. Waits until the "
        "StatefulSet and its pods are gone and every claim it owns is being deleted. It must be the last step: the "
        "other guarantees judge the record up to it, claim_retention judges what followed.",
        {"const": True},
        settles=False,
        options=("timeout",),
        disruption=True,
        last=True,
    ),
    StepKind(
        "make_unready",
        "make_unready",
        "Hold the pod of this ordinal NotReady (local cluster); waits until it is NotReady, does not settle.",
        ORDINAL,
        ("ordinal",),
        settles=False,
        options=("timeout",),
    ),
    StepKind("make_ready", "make_ready", "Release a pod held NotReady.", ORDINAL, ("ordinal",)),
    StepKind(
        "drain_node",
        "drain_node",
        "Cordon the node that this ordinal's pod runs on and evict its pods.",
        ORDINAL,
        ("ordinal",),
        disruption=True,
    ),
    StepKind(
        "cordon_node",
        "cordon_node",
        "Cordon the node that this ordinal's pod runs on (no pod is evicted): new pods are not scheduled there "
        "until uncordon_node or teardown.",
        ORDINAL,
        ("ordinal",),
    ),
    StepKind(
        "uncordon_node",
        "uncordon_node",
        "Make a node this test cordoned schedulable again (the one cordoned for this ordinal by cordon_node or "
        "drain_node, or a node name).",
        {"anyOf": [ORDINAL, {"type": "string", "minLength": 1}]},
        ("node",),
    ),
    StepKind(
        "fail_node",
        "fail_node",
        "Stop the node that this ordinal's pod runs on (local cluster): no more heartbeats, so it goes "
        "unreachable, and nobody confirms that its pods stopped. On a simulated node KWOK stops acting for it; "
        "on the real node the kubelet stops while its containers keep running. Waits until the control plane "
        "marks it (Ready Unknown, tainted unreachable); does not settle. Restored at teardown.",
        ORDINAL,
        ("ordinal",),
        settles=False,
        options=("timeout",),
        disruption=True,
    ),
    StepKind(
        "out_of_service",
        "out_of_service",
        "Taint the failed node of this ordinal node.kubernetes.io/out-of-service=nodeshutdown:NoExecute, the "
        "documented recovery for a node that is really shut down: its pods are deleted and replaced elsewhere.",
        ORDINAL,
        ("ordinal",),
    ),
    StepKind(
        "restore_node",
        "restore_node",
        "Start a failed node again (the node fail_node stopped for this ordinal, or a node name) and remove "
        "its out-of-service taint; waits until it is Ready.",
        {"anyOf": [ORDINAL, {"type": "string", "minLength": 1}]},
        ("node",),
    ),
    StepKind(
        "helm_upgrade",
        "helm_upgrade",
        "helm upgrade the release installed from `chart:`: to `chart` (a chart directory, relative to the spec; "
        "default the installed one), with the install's values overlaid by `values` (`values_files` replace the "
        "install's files), or with `reuse_values`. Refused before sending when the StatefulSet would change a field "
        "Kubernetes does not let an update change (the field, the values behind it and the remedy).",
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "chart": {"type": "string", "minLength": 1},
                "values": {"type": "object"},
                "values_files": {"type": "array", "items": {"type": "string", "minLength": 1}},
                "reuse_values": {"type": "boolean"},
            },
        },
        ("chart", "values", "values_files", "reuse_values"),
        disruption=True,
    ),
    StepKind(
        "helm_rollback",
        "helm_rollback",
        "helm rollback the release to `revision` (default: the revision before the current one).",
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {"revision": {"type": "integer", "minimum": 1, "maximum": 2147483647}},
        },
        ("revision",),
        disruption=True,
    ),
    StepKind(
        "helm_test",
        "helm_test",
        "helm test the release installed from `chart:`: its `helm.sh/hook: test` pods, with their logs on failure. "
        "They must run where a node runs containers (the local real node): a test pod on a simulated node fails "
        "the step, as one that proves nothing.",
        {"type": "object", "additionalProperties": False, "properties": {}},
    ),
    StepKind(
        "sleep",
        "sleep",
        "Wait this many seconds (takes no settle or timeout).",
        {"type": "number", "minimum": 0, "maximum": 3600},
        ("seconds",),
        settles=False,
        options=(),
    ),
)
BY_NAME: dict[str, StepKind] = {s.name: s for s in STEPS}
DISRUPTIONS = frozenset(s.name for s in STEPS if s.disruption)
OPTION_SCHEMAS: dict[str, dict[str, Any]] = {
    "settle": {"type": "boolean", "description": "Wait for the StatefulSet to settle after the step (default true)."},
    "timeout": {
        "type": "number",
        "exclusiveMinimum": 0,
        "maximum": 86400,
        "description": "Seconds this step may take.",
    },
}


def step_schema() -> dict[str, Any]:
    """The `$defs.step` of the spec schema (schema.json holds exactly this; a test checks it)."""
    properties: dict[str, Any] = {s.name: s.schema() for s in STEPS}
    properties.update(OPTION_SCHEMAS)
    without = {
        s.name: {"not": {"anyOf": [{"required": [o]} for o in STEP_OPTIONS if o not in s.options]}}
        for s in STEPS
        if set(STEP_OPTIONS) - set(s.options)
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "description": "Exactly one action, optionally with settle and timeout.",
        "properties": properties,
        "dependentSchemas": without,
    }
