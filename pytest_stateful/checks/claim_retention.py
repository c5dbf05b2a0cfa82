"""claim_retention: claims are kept or deleted as persistentVolumeClaimRetentionPolicy says.

Upstream (stateful_set_utils.go updateClaimOwnerRefForSetAndPod, stateful_set_control.go): with
whenScaled: Delete the controller gives each claim of a condemned pod (an ordinal outside the spec) an
owner reference to that pod before it deletes the pod (fixPodClaim runs before processCondemned), so the
garbage collector deletes the claim with the pod, and a scale-up does not create the pod again while the
claim still points at the old pod (PodClaimIsStale). With whenDeleted: Delete the claims are owned by the
StatefulSet and go with it. Retain means the controller never makes them go. A claim that another
controller controls is left alone (hasUnexpectedController): the diagnosis names that owner.

Judged in resourceVersion order (global across kinds):
- whenScaled Delete: when a pod of an ordinal outside the spec starts being deleted (not by the test), its
  claims must already be owned by it; a pod of that ordinal created again must not mount the claim object
  of before the scale-down.
- whenScaled Retain: no claim is deleted, except by the test (delete_claim) or with the StatefulSet.
- After the test's delete_statefulset: with whenDeleted Delete every claim left must have been deleted
  once the step finished waiting; with Retain none may be deleted.
Not exercised: no pod was scaled away and the StatefulSet was not deleted.
"""

from __future__ import annotations

from collections.abc import Iterable

from pytest_stateful.checks.verdict import Subject, Verdict, Violation, incomplete, judged, not_exercised
from pytest_stateful.timeline import POD, PVC, STEP, STS, Entry, Timeline, ordinal_of

GUARANTEE = "claim_retention"
KINDS = (POD, PVC, STS, STEP)


def check(timeline: Timeline, subject: Subject) -> Verdict:
    gap = incomplete(GUARANTEE, timeline, KINDS)
    if gap:
        return gap
    name = subject.statefulset
    final = timeline.statefulset(name)
    if final is None:
        return judged(GUARANTEE, timeline, [], "", [f"StatefulSet {name} was never seen in {subject.namespace}"])
    templates = list(final.sts.claim_templates)
    if not templates:
        return judged(GUARANTEE, timeline, [], "", [f"{name} has no volumeClaimTemplates: it has no claims to keep"])
    when_scaled, when_deleted = final.sts.retention_when_scaled, final.sts.retention_when_deleted

    def claim_ordinal(claim: str) -> int | None:
        return next((ordinal_of(claim[len(t) + 1 :], name) for t in templates if claim.startswith(f"{t}-")), None)

    steps = timeline.of(STEP)
    by_test = {u for e in steps if e.type == "deletes" for u in [*e.get("uids", []), *e.get("claim_uids", [])]}
    deletion = next((e for e in steps if e.type == "begin" and e.name == "delete_statefulset"), None)
    finished = next((e for e in steps if e.type == "end" and e.name == "delete_statefulset" and e.get("settled")), None)
    cut = deletion.seq if deletion is not None else len(timeline.entries) + 1

    # Before the deletion step: StatefulSet, pods and claims in resourceVersion order.
    events = [
        e
        for e in timeline.entries
        if e.seq < cut
        and (
            (e.kind == STS and e.name == name)
            or (e.kind == POD and ordinal_of(e.name, name) is not None)
            or (e.kind == PVC and claim_ordinal(e.name) is not None)
        )
    ]
    if events and all(e.rv.isdigit() for e in events):
        events.sort(key=lambda e: (int(e.rv), e.seq))

    violations: list[Violation] = []
    diagnosis: list[str] = []
    spec: range = range(0)
    claims: dict[str, Entry] = {}  # claim name -> its latest state (removed when deleted)
    pods: dict[str, Entry] = {}
    started: set[str] = set()  # pod and claim UIDs whose deletion has begun
    # Claim objects that whenScaled: Delete must remove: the claims of a pod scaled away, by claim name.
    condemned: dict[str, str] = {}
    scaled_away = deleted_as_scaled = 0
    for e in events:
        if e.kind == STS:
            spec = e.sts.ordinals
            continue
        deleting = e.type == "DELETED" or (e.pod.deleting if e.kind == POD else e.claim.deleting)
        first_deleting = deleting and e.uid not in started
        if first_deleting:
            started.add(e.uid)
        if e.kind == POD:
            k = ordinal_of(e.name, name)
            if e.type == "ADDED":
                for template in templates:
                    claim = f"{template}-{e.name}"
                    old = condemned.pop(claim, None)
                    now = claims.get(claim)
                    if old is not None and now is not None and now.uid == old and old not in started:
                        violations.append(
                            Violation(
                                f"{e.name} was created again on claim {claim} of before the scale-down (UID "
                                f"{old[:8]}): whenScaled: Delete should have deleted it with the old {e.name}",
                                e,
                            )
                        )
            if first_deleting and k is not None and k not in spec and e.uid not in by_test:
                scaled_away += 1
                for template in templates:
                    claim = f"{template}-{e.name}"
                    state = claims.get(claim)
                    if state is None or when_scaled != "Delete":
                        continue
                    condemned[claim] = state.uid
                    if f"Pod/{e.name}" not in state.claim.owners:
                        violations.append(
                            Violation(
                                f"{e.name} was scaled away while its claim {claim} was not owned by it "
                                f"(owners: {', '.join(state.claim.owners) or 'none'}): whenScaled: Delete "
                                "will not delete the claim",
                                e,
                            )
                        )
                        diagnosis += _foreign(state, name)
            if e.type == "DELETED":
                pods.pop(e.name, None)
            else:
                pods[e.name] = e
            continue
        # A claim.
        if first_deleting and e.uid not in by_test:
            if condemned.get(e.name) == e.uid:
                deleted_as_scaled += 1
            elif when_scaled == "Retain":
                violations.append(
                    Violation(
                        f"claim {e.name} was deleted although whenScaled is Retain (and neither the test nor "
                        "the StatefulSet's deletion deleted it)",
                        e,
                    )
                )
        if e.type == "DELETED":
            claims.pop(e.name, None)
        else:
            claims[e.name] = e

    deleted_with_set = kept_with_set = 0
    if deletion is not None:
        after = [e for e in timeline.of(PVC) if e.seq > deletion.seq and claim_ordinal(e.name) is not None]
        gone = {e.uid for e in after if e.type == "DELETED" or e.claim.deleting}
        for claim, state in sorted(claims.items()):
            if state.uid in started or state.uid in by_test:
                continue
            if condemned.get(claim) == state.uid:
                # Scaled away before the deletion: whenScaled decides, even if the collector was slower.
                deleted_as_scaled += state.uid in gone
                continue
            if state.uid in gone:
                deleted_with_set += 1
                if when_deleted == "Retain":
                    at = next(e for e in after if e.uid == state.uid and (e.type == "DELETED" or e.claim.deleting))
                    violations.append(
                        Violation(
                            f"claim {claim} was deleted with StatefulSet {name} although whenDeleted is Retain", at
                        )
                    )
            else:
                kept_with_set += 1
                if when_deleted == "Delete" and finished is not None:
                    latest = [e for e in after if e.uid == state.uid] or [state]
                    violations.append(
                        Violation(
                            f"claim {claim} was kept when StatefulSet {name} was deleted although whenDeleted is "
                            f"Delete (owners: {', '.join(latest[-1].claim.owners) or 'none'})",
                            latest[-1],
                        )
                    )
                    diagnosis += _foreign(latest[-1], name)
        if when_deleted == "Delete" and finished is None and kept_with_set and not violations:
            return Verdict(
                GUARANTEE,
                "incomplete",
                f"the run ended before delete_statefulset finished waiting: {kept_with_set} claim(s) of {name} "
                "had not been deleted yet, so nothing shows whether whenDeleted: Delete was honoured",
            )

    parts = []
    if scaled_away:
        verb = "deleted" if when_scaled == "Delete" else "kept"
        count = deleted_as_scaled if when_scaled == "Delete" else scaled_away
        parts.append(f"{count} claim(s) of {scaled_away} pod(s) scaled away {verb} as whenScaled: {when_scaled} says")
    if deletion is not None:
        count = deleted_with_set if when_deleted == "Delete" else kept_with_set
        verb = "deleted" if when_deleted == "Delete" else "kept"
        parts.append(f"{count} claim(s) {verb} with the StatefulSet as whenDeleted: {when_deleted} says")
    verdict = judged(GUARANTEE, timeline, violations, "; ".join(parts), list(dict.fromkeys(diagnosis)), kinds=KINDS)
    if verdict.passed and not parts:
        return not_exercised(
            GUARANTEE,
            f"no pod of {name} was scaled away and the StatefulSet was not deleted, so nothing shows what "
            "happens to its claims: add a scale-down, or delete_statefulset as the last step",
        )
    return verdict


def _foreign(claim: Entry, name: str) -> Iterable[str]:
    """Owners that are neither this StatefulSet nor one of its pods: the controller leaves such claims."""
    others = [o for o in claim.claim.owners if o != f"StatefulSet/{name}" and not o.startswith(f"Pod/{name}-")]
    if others:
        yield (
            f"claim {claim.name} is owned by {', '.join(others)}: the StatefulSet controller does not apply "
            "its retention policy to a claim another controller controls (hasUnexpectedController)"
        )
