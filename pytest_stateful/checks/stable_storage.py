"""stable_storage: each ordinal keeps its own claim, the same PVC (UID) bound to the same PV.

For every volumeClaimTemplate and ordinal the pod mounts PVC `<template>-<sts>-<ordinal>`
(upstream getPersistentVolumeClaimName); across recreations it is the same object bound to the
same volume. Only this StatefulSet's claims are judged. A claim deleted and created again fails
the guarantee, and when persistentVolumeClaimRetentionPolicy.whenScaled is Delete the diagnosis
names the policy (the garbage collector deletes the claims of scaled-down ordinals). At node
level, a marker written before a disruption is read back. A run in which no pod was recreated
has not exercised the guarantee.

The test's own claim deletions (delete_claim) are recorded by UID once the API server accepted them: exactly
that claim object may be followed by a new one of the same name, once, and the new one is judged
from then on. The controller creates a claim that is missing for a Pending pod
(stateful_set_control.go processReplica: isPending, then createMissingPersistentVolumeClaims); a
run that ends before a deleted claim came back cannot show that, and is incomplete.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from pytest_stateful.checks.history import History
from pytest_stateful.checks.verdict import Subject, Verdict, Violation, incomplete, judged, node_level, not_exercised
from pytest_stateful.timeline import POD, PVC, STEP, STS, Entry, Timeline, claim_ordinal, ordinal_of

GUARANTEE = "stable_storage"
KINDS = (POD, PVC, STS, STEP)


def check(timeline: Timeline, subject: Subject) -> Verdict:
    gap = incomplete(GUARANTEE, timeline, KINDS)
    if gap:
        return gap
    name = subject.statefulset
    violations: list[Violation] = []
    diagnosis: list[str] = []
    sts = timeline.statefulset(name)
    templates: list[str] = list(sts.sts.claim_templates) if sts is not None else []
    if sts is None:
        diagnosis.append(f"StatefulSet {name} was never seen in {subject.namespace}")
    elif not templates:
        diagnosis.append(f"{name} has no volumeClaimTemplates: its pods have no per-ordinal storage to keep")

    def ours(claim: str) -> bool:
        return claim_ordinal(claim, templates, name) is not None

    # Claim objects the test deleted itself (delete_claim), by UID.
    deleted_by_test = {
        u
        for e in timeline.of(STEP)
        if e.type == "deletes" and e.get("action") == "delete_claim"
        for u in e.get("claim_uids", [])
    }
    # The PVC objects each of this StatefulSet's claim names has had, and the volumes each was bound to.
    uids: dict[str, str] = {}
    volumes: dict[str, str] = {}
    recreated_claims = 0
    replaced: set[str] = set()  # claim names the test deleted and the cluster created again
    for e in timeline.of(PVC):
        if not ours(e.name):
            continue
        first_uid = uids.setdefault(e.name, e.uid)
        if e.uid != first_uid and e.type in ("ADDED", "RELISTED") and first_uid in deleted_by_test:
            # The test deleted that very object: a new claim (on a new volume) is what should follow.
            replaced.add(e.name)
            uids[e.name] = e.uid
            volumes.pop(e.name, None)
        elif e.uid != first_uid and e.type in ("ADDED", "RELISTED"):
            recreated_claims += 1
            violations.append(
                Violation(
                    f"claim {e.name} was deleted and created again (UID {first_uid[:8]} -> {e.uid[:8]}): "
                    "the ordinal lost its data",
                    e,
                )
            )
            uids[e.name] = e.uid
        volume = e.claim.volume
        if volume:
            before = volumes.setdefault(e.name, volume)
            if before != volume:
                violations.append(Violation(f"claim {e.name} moved from volume {before} to {volume}", e))
                volumes[e.name] = volume
    if recreated_claims and sts is not None and sts.sts.retention_when_scaled == "Delete":
        diagnosis.append(
            f"{name} has persistentVolumeClaimRetentionPolicy.whenScaled: Delete: the claims of "
            "scaled-down ordinals are deleted, so a scale-up gets new, empty storage; use Retain"
        )
    recreated = 0
    gone: set[str] = set()
    for _, e, _world in History(timeline, name).creations():
        k = ordinal_of(e.name, name)
        if e.name in gone:
            recreated += 1
        gone.add(e.name)
        for template in templates:
            want = f"{template}-{name}-{k}"
            got = e.pod.claims.get(template)
            if got != want:
                violations.append(
                    Violation(f"{e.name} mounts {got!r} for volume {template!r}, not its own claim {want!r}", e)
                )
    kept = len(uids) - len(replaced)
    summary = f"{kept} claim(s) kept their UID and volume across {recreated} pod recreation(s)"
    if replaced:
        summary = (f"{summary}; " if kept else f"{recreated} pod recreation(s) mounted their own claims; ") + (
            f"{_names(replaced)}, deleted by the test, {'was' if len(replaced) == 1 else 'were'} created again"
        )
    verdict = node_level(judged(GUARANTEE, timeline, violations, summary, diagnosis, kinds=KINDS), timeline, "marker")

    def wanted(claim: str) -> bool:
        # Only an ordinal the StatefulSet still asks for gets its claim back.
        return sts is not None and claim_ordinal(claim, templates, name) in sts.sts.ordinals

    missing, held = _not_back(timeline, deleted_by_test, wanted)
    verdict.notes += held
    verdict.notes += _drifted(timeline, templates, sts.sts.claim_requests if sts is not None else {}, ours)
    if verdict.passed and missing:
        gap = Verdict(
            GUARANTEE,
            "incomplete",
            f"the run ended before {_names(missing)}, deleted by the test (delete_claim), was created again: "
            "nothing shows the controller gives the ordinal a claim back; let a later step settle (uncordon_node "
            "first, if the pod's node is cordoned)",
        )
        gap.notes = verdict.notes
        return gap
    if verdict.passed and not recreated:
        unexercised = not_exercised(
            GUARANTEE,
            f"no pod of {name} was recreated during the run, so nothing shows that an ordinal keeps its "
            "storage: add a delete_pod, delete_pods or scale-down-and-up step",
        )
        unexercised.notes = verdict.notes
        return unexercised
    return verdict


def _drifted(
    timeline: Timeline, templates: list[str], wanted: Mapping[str, str], ours: Callable[[str], bool]
) -> list[str]:
    """Live claims whose requested size differs from what their template asks now: a template change
    (after an orphan delete and a new StatefulSet, the usual way round the forbidden update) does not
    resize existing claims, and nothing else says so."""
    last: dict[str, Entry] = {}
    for e in timeline.of(PVC):
        if ours(e.name):
            if e.type == "DELETED":
                last.pop(e.name, None)
            else:
                last[e.name] = e
    notes = []
    for claim, e in sorted(last.items()):
        template = next((t for t in templates if claim.startswith(f"{t}-")), "")
        want, have = wanted.get(template, ""), e.claim.requested
        if want and have and want != have:
            notes.append(
                f"claim {claim} requests {have} while its template {template!r} asks {want}: a template change "
                "does not resize existing claims (expand them, if the StorageClass allows volume expansion, "
                "or recreate them)"
            )
    return notes


def _not_back(
    timeline: Timeline, deleted_by_test: set[str], wanted: Callable[[str], bool]
) -> tuple[list[str], list[str]]:
    """Claims of wanted ordinals that the test deleted and that had no successor when the record ended
    (gone, or Terminating with nothing left to hold them), and notes for those still held Terminating by
    a scheduled pod that uses them (pvcprotection podUsesPVC)."""
    last: dict[str, Entry] = {}
    for e in timeline.of(PVC):
        if wanted(e.name):
            last[e.name] = e
    pods: dict[str, Entry] = {}
    for e in timeline.of(POD):
        if e.type == "DELETED":
            pods.pop(e.name, None)
        else:
            pods[e.name] = e
    holders = {c: p.name for p in pods.values() if p.pod.node for c in p.pod.claims.values()}
    missing, held = [], []
    for n, e in sorted(last.items()):
        if e.uid not in deleted_by_test:
            continue
        if e.type != "DELETED" and e.claim.deleting and n in holders:
            held.append(
                f"claim {n}, deleted by the test, was still Terminating when the run ended: {holders[n]} uses it "
                "(kubernetes.io/pvc-protection keeps it until that pod goes)"
            )
        else:
            missing.append(n)
    return missing, held


def _names(claims: Iterable[str]) -> str:
    ordered = sorted(claims)
    return ("claim " if len(ordered) == 1 else "claims ") + ", ".join(ordered)
