"""claim_retention: claims are kept or deleted as persistentVolumeClaimRetentionPolicy says.

Upstream (stateful_set_utils.go updateClaimOwnerRefForSetAndPod, stateful_set_control.go): with
whenScaled: Delete the controller makes each claim of a condemned pod (an ordinal outside the spec)
owned by that pod before it deletes the pod (fixPodClaim runs before processCondemned), so the garbage
collector deletes the claim with the pod; a pod is not created again while its claim still points at an
old pod (PodClaimIsStale); a pod back in range takes its claim back (ClaimsMatchRetentionPolicy). With
whenDeleted: Delete the claims are owned by the StatefulSet and go with it. A claim goes only through one
of those owners, or because the test deleted it (delete_claim). A claim another controller controls is
left alone upstream (hasUnexpectedController): the diagnosis names its other owners.

Judged in resourceVersion order (global across kinds), each event under the policy in force then:
- a pod of an ordinal outside the spec that starts going (not by the test, not evicted by the node
  lifecycle: a DisruptionTarget) must own its claims under whenScaled: Delete;
- a pod must not be created while its claim still names a pod of its name as owner (the old one);
- a claim must not go but through the test, a pod that owned it and went, or the StatefulSet's deletion
  under whenDeleted: Delete (then it must have been owned by the StatefulSet);
- at the end: a claim of a pod scaled away under Delete still there after a step settled fails (before
  any settled, incomplete); after the StatefulSet's deletion with whenDeleted: Delete, a claim still there
  once delete_statefulset finished waiting fails, and a run that ended before it finished is incomplete.
Not exercised: no pod was scaled away and the StatefulSet was not deleted.
"""

from __future__ import annotations

from collections.abc import Iterable

from pytest_stateful.checks.verdict import Subject, Verdict, Violation, incomplete, judged, not_exercised
from pytest_stateful.timeline import POD, PVC, STEP, STS, Entry, Timeline, claim_ordinal, ordinal_of

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

    def ordinal(claim: str) -> int | None:
        return claim_ordinal(claim, templates, name)

    steps = timeline.of(STEP)
    by_test = {u for e in steps if e.type == "deletes" for u in [*e.get("uids", []), *e.get("claim_uids", [])]}
    events = [
        e
        for e in timeline.entries
        if (e.kind == STS and e.name == name)
        or (e.kind == POD and ordinal_of(e.name, name) is not None)
        or (e.kind == PVC and ordinal(e.name) is not None)
    ]
    if not all(e.rv.isdigit() for e in events):
        return Verdict(
            GUARANTEE,
            "incomplete",
            "entries without a resourceVersion: pods, claims and the StatefulSet cannot be put in the order the "
            "API server committed them, which this guarantee needs",
        )
    events.sort(key=lambda e: (int(e.rv), e.seq))

    violations: list[Violation] = []
    diagnosis: list[str] = []
    spec: range = range(0)
    when_scaled = when_deleted = "Retain"
    claims: dict[str, Entry] = {}  # claim name -> its latest state (dropped when deleted)
    started: set[str] = set()  # UIDs whose deletion has begun
    # Claim objects whose pod began to go while its ordinal was outside the spec: only such a claim may go
    # with a pod that owns it (upstream never gives an in-range pod its claim: isClaimOwnerUpToDate).
    condemned_claims: set[str] = set()
    set_deleted: Entry | None = None  # where the StatefulSet began to go
    set_deletion_policy = "Retain"
    set_deletion_spec: range = range(0)
    scaled: dict[str, Entry] = {}  # claims whenScaled: Delete must remove: claim UID -> the pod's deletion
    # Claims still owned by their condemned pod when that pod was gone: the collector must delete them,
    # whatever their owners say later.
    doomed: dict[str, Entry] = {}
    # Of those, the ones whose ordinal was back in the spec when the pod went: the controller may still
    # take such a claim back (its cache saw the pod terminating in range) before the collector acts.
    reclaimable: set[str] = set()
    scaled_under: dict[str, int] = {"Delete": 0, "Retain": 0}  # pods scaled away, by the policy then
    deleted_as_scaled = deleted_with_set = 0
    for e in events:
        if e.kind == STS:
            if e.type == "DELETED" or e.sts.deleting:
                if set_deleted is None:
                    set_deleted, set_deletion_policy, set_deletion_spec = e, when_deleted, spec
            else:
                spec = e.sts.ordinals
                when_scaled, when_deleted = e.sts.retention_when_scaled, e.sts.retention_when_deleted
            continue
        deleting = e.type == "DELETED" or (e.pod.deleting if e.kind == POD else e.claim.deleting)
        first_deleting = deleting and e.uid not in started
        if first_deleting:
            started.add(e.uid)
        if e.kind == POD:
            if e.type == "ADDED" and when_scaled == "Delete":  # PodClaimIsStale holds only under Delete
                for claim in (f"{t}-{e.name}" for t in templates):
                    state = claims.get(claim)
                    if (
                        state is not None
                        and state.uid not in started
                        and (f"Pod/{e.name}" in state.claim.owners or state.uid in doomed)
                    ):
                        violations.append(
                            Violation(
                                f"{e.name} was created while its claim {claim} still belonged to the old {e.name} "
                                f"(owners: {', '.join(state.claim.owners) or 'none'}): the controller waits until "
                                "such a claim is deleted (whenScaled: Delete)",
                                e,
                            )
                        )
            if e.type == "ADDED":
                # A new life of the ordinal: its claims are judged afresh (taken back, or new).
                for t in templates:
                    if (s := claims.get(f"{t}-{e.name}")) is not None:
                        condemned_claims.discard(s.uid)
                        scaled.pop(s.uid, None)
            k = ordinal_of(e.name, name)
            if e.type == "DELETED":
                for t in templates:
                    s = claims.get(f"{t}-{e.name}")
                    if s is not None and s.uid in condemned_claims and f"Pod/{e.name}" in s.claim.owners:
                        doomed[s.uid] = e
                        if ordinal_of(e.name, name) in spec:
                            reclaimable.add(s.uid)
            if first_deleting and k is not None and k not in spec:
                # May go with this pod: under whenScaled: Delete, or owned by it already (given under Delete).
                condemned_claims.update(
                    s.uid
                    for t in templates
                    if (s := claims.get(f"{t}-{e.name}")) is not None
                    and (when_scaled == "Delete" or f"Pod/{e.name}" in s.claim.owners)
                )
            if first_deleting and set_deleted is None and k is not None and k not in spec and e.uid not in by_test:
                scaled_under[when_scaled] = scaled_under.get(when_scaled, 0) + 1
                for claim in (f"{t}-{e.name}" for t in templates):
                    state = claims.get(claim)
                    if state is None or state.uid in started or when_scaled != "Delete":
                        continue
                    owned = f"Pod/{e.name}" in state.claim.owners
                    if not owned and e.pod.disruption:
                        # Deleted by the node lifecycle (DisruptionTarget) before the controller could give
                        # it the claim: upstream then never does, and the claim stays. Not judged.
                        continue
                    scaled[state.uid] = e
                    if owned:
                        continue
                    violations.append(
                        Violation(
                            f"{e.name} was scaled away while its claim {claim} was not owned by it (owners: "
                            f"{', '.join(state.claim.owners) or 'none'}): whenScaled: Delete will not delete it",
                            e,
                        )
                    )
                    diagnosis += _foreign(state, name)
            continue
        # A claim. Its owners as they were before this event: the reason it may go.
        before = claims.get(e.name)
        owners = before.claim.owners if before is not None and before.uid == e.uid else e.claim.owners
        if first_deleting and e.uid not in by_test:
            with_pod = e.uid in condemned_claims and any(o.startswith(f"Pod/{name}-") for o in owners)
            by_set = set_deleted is not None and f"StatefulSet/{name}" in owners
            if with_pod:
                deleted_as_scaled += e.uid in scaled
            elif by_set and set_deletion_policy == "Delete":
                deleted_with_set += 1
            elif by_set:
                violations.append(
                    Violation(f"claim {e.name} was deleted with StatefulSet {name} although whenDeleted is Retain", e)
                )
            else:
                violations.append(
                    Violation(
                        f"claim {e.name} was deleted, but not by the test, not with a pod that owned it (whenScaled: "
                        f"Delete) and not with the StatefulSet (whenDeleted: Delete); owners: "
                        f"{', '.join(owners) or 'none'}",
                        e,
                    )
                )
        k = ordinal(e.name)
        if (
            e.uid in reclaimable
            and not deleting
            and not any(o.startswith("Pod/") for o in e.claim.owners)
            and k in spec
        ):
            # Taken back for a pod in range before the collector acted (Parallel: processReplica runs
            # ClaimsMatchRetentionPolicy on a terminating pod): the collector then keeps it.
            del doomed[e.uid]
        if e.type == "DELETED":
            claims.pop(e.name, None)
        else:
            claims[e.name] = e

    # The end of the record.
    live = {c: s for c, s in claims.items() if s.uid not in started}
    # delete_statefulset's end is no settle of the StatefulSet: its pods' claims may still be going.
    settled_ends = [e for e in steps if e.type == "end" and e.get("settled") and e.name != "delete_statefulset"]
    final_spec = set_deletion_spec if set_deleted is not None else spec
    # A claim of an ordinal back in the spec is its pod's again (ClaimsMatchRetentionPolicy): not lingering.
    lingering = sorted(
        c for c, s in live.items() if s.uid in doomed or (s.uid in scaled and ordinal(c) not in final_spec)
    )
    for claim in lingering:
        went = doomed.get(live[claim].uid) or scaled[live[claim].uid]
        if any(s.seq > went.seq for s in settled_ends):
            violations.append(
                Violation(
                    f"claim {claim} of {went.name}, scaled away under whenScaled: Delete, was still there after the "
                    f"StatefulSet settled (owners: {', '.join(live[claim].claim.owners) or 'none'})",
                    live[claim],
                )
            )
            diagnosis += _foreign(live[claim], name)
    deletion = next((e for e in steps if e.type == "end" and e.name == "delete_statefulset"), None)
    kept_with_set = sorted(c for c in live if c not in lingering)
    notes: list[str] = []
    if set_deleted is not None and set_deletion_policy == "Delete" and kept_with_set:
        if deletion is not None and deletion.get("ok"):
            for claim in kept_with_set:
                if ordinal(claim) not in set_deletion_spec:
                    # Upstream reconciles the claims of existing pods only: a claim of an ordinal scaled away
                    # before never got the StatefulSet as owner, and is kept.
                    notes.append(
                        f"claim {claim} was kept: its ordinal was outside the spec when StatefulSet {name} was "
                        "deleted, and the controller gives the StatefulSet only the claims of pods it has"
                    )
                    continue
                violations.append(
                    Violation(
                        f"claim {claim} was kept when StatefulSet {name} was deleted although whenDeleted is Delete "
                        f"(owners: {', '.join(live[claim].claim.owners) or 'none'})",
                        live[claim],
                    )
                )
                diagnosis += _foreign(live[claim], name)
        elif deletion is not None:
            held_by_set = [c for c in kept_with_set if f"StatefulSet/{name}" in live[c].claim.owners]
            violations += [
                Violation(
                    f"claim {c}, owned by StatefulSet {name}, was still not deleted when delete_statefulset timed out",
                    live[c],
                )
                for c in held_by_set
            ]
    if not violations:
        unfinished = set_deleted is not None and (deletion is None or not deletion.get("ok"))
        waiting = [
            c
            for c in lingering
            if not any(s.seq > (doomed.get(live[c].uid) or scaled[live[c].uid]).seq for s in settled_ends)
        ]
        if unfinished or waiting:
            why = (
                f"the run ended before the deletion of StatefulSet {name} was waited for (delete_statefulset)"
                if unfinished
                else f"the run ended before {', '.join(waiting)} went and before a step settled after the scale-down"
            )
            return Verdict(GUARANTEE, "incomplete", f"{why}: nothing shows what became of the claims")

    parts = []
    if scaled_under["Delete"]:
        parts.append(
            f"{deleted_as_scaled} claim(s) of {scaled_under['Delete']} pod(s) scaled away under whenScaled: Delete "
            "deleted with their pods"
        )
    if scaled_under["Retain"]:
        parts.append(f"the claims of {scaled_under['Retain']} pod(s) scaled away under whenScaled: Retain kept")
    if set_deleted is not None:
        if set_deletion_policy == "Delete":
            parts.append(f"{deleted_with_set} claim(s) deleted with the StatefulSet as whenDeleted: Delete says")
        else:
            parts.append(f"{len(live)} claim(s) kept when the StatefulSet was deleted, as whenDeleted: Retain says")
    verdict = judged(GUARANTEE, timeline, violations, "; ".join(parts), list(dict.fromkeys(diagnosis)), kinds=KINDS)
    verdict.notes += notes
    if verdict.passed and not parts:
        return not_exercised(
            GUARANTEE,
            f"no pod of {name} was scaled away and the StatefulSet was not deleted, so nothing shows what "
            "happens to its claims: add a scale-down, or delete_statefulset as the last step",
        )
    return verdict


def _foreign(claim: Entry, name: str) -> Iterable[str]:
    """Owners that are neither this StatefulSet nor one of its pods: upstream leaves a claim another
    controller controls, and the garbage collector keeps one any other owner still holds."""
    others = [o for o in claim.claim.owners if o != f"StatefulSet/{name}" and not o.startswith(f"Pod/{name}-")]
    if others:
        yield (
            f"claim {claim.name} is also owned by {', '.join(others)}: the StatefulSet controller does not apply "
            "its retention policy to a claim another controller controls (hasUnexpectedController), and the "
            "garbage collector does not delete a claim while another owner exists"
        )
