"""stable_storage: each ordinal keeps its own claim, the same PVC (UID) bound to the same PV.

For every volumeClaimTemplate and ordinal the pod mounts PVC
`<template>-<sts>-<ordinal>`; across recreations it is the same object bound to
the same volume. A retention policy that deletes claims on scale-down breaks the
guarantee. At node level, a marker written before a disruption is read back.
"""

from __future__ import annotations

from pytest_stateful.checks.replay import is_creation, replay
from pytest_stateful.checks.verdict import Subject, Verdict, Violation, incomplete, judged, node_level
from pytest_stateful.timeline import POD, PVC, STEP, Timeline, ordinal_of

GUARANTEE = "stable_storage"
KINDS = (POD, PVC, STEP)


def check(timeline: Timeline, subject: Subject) -> Verdict:
    gap = incomplete(GUARANTEE, timeline, POD) or incomplete(GUARANTEE, timeline, PVC)
    if gap:
        return gap
    name = subject.statefulset
    violations: list[Violation] = []
    diagnosis: list[str] = []
    sts = timeline.statefulset(name)
    templates: list[str] = list(sts.get("claim_templates") or []) if sts is not None else []
    if sts is None:
        diagnosis.append(f"StatefulSet {name} was never seen in {subject.namespace}")
    elif not templates:
        diagnosis.append(f"{name} has no volumeClaimTemplates: its pods have no per-ordinal storage to keep")
    elif sts.get("retention_when_scaled") == "Delete":
        diagnosis.append(
            f"{name} has persistentVolumeClaimRetentionPolicy.whenScaled: Delete: the claims of "
            "scaled-down ordinals are deleted, so a scale-up gets new, empty storage; use Retain"
        )
    # The PVC objects each claim name has had, and the volumes each was bound to.
    uids: dict[str, str] = {}
    volumes: dict[str, str] = {}
    for e in timeline.of(PVC):
        first_uid = uids.setdefault(e.name, e.uid)
        if e.uid != first_uid and e.type in ("ADDED", "RELISTED"):
            violations.append(
                Violation(
                    f"claim {e.name} was deleted and created again (UID {first_uid[:8]} -> {e.uid[:8]}): "
                    "the ordinal lost its data",
                    e,
                )
            )
            uids[e.name] = e.uid
        volume = e.get("volume")
        if volume:
            before = volumes.setdefault(e.name, volume)
            if before != volume:
                violations.append(Violation(f"claim {e.name} moved from volume {before} to {volume}", e))
                volumes[e.name] = volume
    recreated = 0
    for e, state in replay(timeline, name):
        if e.kind != POD or not is_creation(e, state, name):
            continue
        k = ordinal_of(e.name, name)
        claims = e.get("claims") or {}
        for template in templates:
            want = f"{template}-{name}-{k}"
            if claims.get(template) != want:
                got = claims.get(template)
                violations.append(
                    Violation(f"{e.name} mounts {got!r} for volume {template!r}, not its own claim {want!r}", e)
                )
        recreated += 1
    verdict = judged(
        GUARANTEE,
        timeline,
        violations,
        f"{len(uids)} claim(s) kept their UID and volume across {recreated} pod creation(s)",
        diagnosis,
        kinds=KINDS,
    )
    return node_level(verdict, timeline, "marker")
