"""KWOK Stages for the local cluster: upstream's, with a readiness delay and an unready switch.

kwokctl drops all of its default stages once a config holds any Stage, so the
upstream node and pod stages are read from the kwok module that the build
fetched (the same version as the kwok binaries) and changed here only where
pytest-stateful needs it:
- pod-ready waits `ready_delay_ms`, so creation order is observable;
- pod-delete waits `terminate_delay_ms`, as a graceful shutdown would;
- a pod labelled `<UNREADY_LABEL>=true` is made NotReady (pod-unready) and
  becomes Ready again when the label goes (pod-reready).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

UPSTREAM_STAGES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
)
READY = '.status.conditions.[] | select( .type == "Ready" ) | .status'


def build_stages(
    kwok_module_dir: Path, ready_delay_ms: int, unready_label: str, terminate_delay_ms: int = 0
) -> list[dict[str, Any]]:
    stage_dir = kwok_module_dir / "kustomize" / "stage"
    stages = {}
    for rel in UPSTREAM_STAGES:
        doc = yaml.safe_load((stage_dir / rel).read_text())
        stages[doc["metadata"]["name"]] = doc
    label_key = f'.metadata.labels["{unready_label}"]'

    if terminate_delay_ms > 0:
        # Real pods take a while to shut down; without it the order of terminations is invisible.
        stages["pod-delete"]["spec"]["delay"] = {"durationMilliseconds": terminate_delay_ms}

    ready = stages["pod-ready"]
    ready["spec"]["delay"] = {"durationMilliseconds": ready_delay_ms}
    ready["spec"]["selector"]["matchExpressions"].append({"key": label_key, "operator": "NotIn", "values": ["true"]})

    unready = copy.deepcopy(ready)
    unready["metadata"]["name"] = "pod-unready"
    unready["spec"].pop("delay")
    unready["spec"]["selector"]["matchExpressions"] = [
        {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
        {"key": ".status.phase", "operator": "In", "values": ["Running"]},
        {"key": READY, "operator": "In", "values": ["True"]},
        {"key": label_key, "operator": "In", "values": ["true"]},
    ]
    unready["spec"]["next"] = {
        "event": {"type": "Warning", "reason": "Unhealthy", "message": "held unready by pytest-stateful"},
        "statusTemplate": _readiness_template(ready=False),
    }

    reready = copy.deepcopy(ready)
    reready["metadata"]["name"] = "pod-reready"
    reready["spec"]["selector"]["matchExpressions"] = [
        {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
        {"key": ".status.phase", "operator": "In", "values": ["Running"]},
        {"key": READY, "operator": "NotIn", "values": ["True"]},
        {"key": label_key, "operator": "NotIn", "values": ["true"]},
    ]
    # Only readiness changes: the pod keeps the IP it has (a new one would be refused).
    reready["spec"]["next"] = {"statusTemplate": _readiness_template(ready=True)}
    return [*stages.values(), unready, reready]


def _readiness_template(ready: bool) -> str:
    # A strategic merge patch: conditions merge by type, containerStatuses is replaced whole.
    status, flag = ("True", "true") if ready else ("False", "false")
    return """{{ $now := Now }}
conditions:
- lastTransitionTime: {{ $now | Quote }}
  status: "STATUS"
  type: Ready
- lastTransitionTime: {{ $now | Quote }}
  status: "STATUS"
  type: ContainersReady
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: FLAG
  restartCount: 0
  started: true
  state:
    running:
      startedAt: {{ $now | Quote }}
{{ end }}
""".replace("STATUS", status).replace("FLAG", flag)
