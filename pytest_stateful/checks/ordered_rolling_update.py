"""ordered_rolling_update: pods move to the update revision from the highest ordinal down, one at a
time, and ordinals below start + partition keep the current revision.

Upstream (stateful_set_control.go, the update loop of updateStatefulSet, and
newVersionedStatefulSetPod in stateful_set_utils.go):
- RollingUpdate: the controller deletes pod u for an update only when u is at or above
  start + partition, is not on the update revision and not terminating, and every replica above
  it is on the update revision and available (Ready for minReadySeconds); with OrderedReady also
  every replica below it available and no pod being scaled away. With maxUnavailable > 1
  (MaxUnavailableStatefulSet) up to maxUnavailable replicas may be unavailable at once, still
  taken from the highest ordinal down.
- Any pod the controller creates below start + partition gets the current revision; at or above
  it, the update revision: so a pod the test deletes during a rollout, or a scale-up after a
  canary, legitimately comes back on the update revision.
- OnDelete: the controller deletes no pod of the spec's ordinals; the test's own deletions are
  known by UID.
"""

from __future__ import annotations

from pytest_stateful.checks.history import History, World, condemned
from pytest_stateful.checks.verdict import Subject, Verdict, Violation, incomplete, judged, not_exercised
from pytest_stateful.timeline import POD, STEP, STS, Entry, Timeline, ordinal_of

GUARANTEE = "ordered_rolling_update"
KINDS = (POD, STS, STEP)


def max_unavailable(world: World) -> int:
    """maxUnavailable as a count: a percentage of replicas rounded down, at least 1 (upstream
    getStatefulSetMaxUnavailable rounds down, whatever the API doc says)."""
    sts = world.sts
    if sts is None:
        return 1
    raw = sts.max_unavailable
    if isinstance(raw, str) and raw.endswith("%"):
        try:
            return max(1, int(sts.replicas * int(raw[:-1]) / 100))
        except ValueError:
            return 1
    try:
        return max(1, int(raw))
    except ValueError:
        return 1


def may_update(world: World, u: int, uid: str, name: str, deletions: list[tuple[int, int]]) -> str | None:
    """Why the controller may not delete pod u (object `uid`) for an update in this world (None: it may).
    `deletions`: (history index, ordinal) of the controller's update deletions before u's."""
    sts = world.sts
    if sts is None:
        return "the StatefulSet was not seen yet"
    if sts.strategy == "OnDelete":
        return "the update strategy is OnDelete (only the test deletes pods)"
    floor = sts.ordinals_start + sts.partition
    if u < floor:
        return f"its ordinal is below start + partition ({sts.ordinals_start} + {sts.partition})"
    pod = world.pods.get(u)
    if pod is None or pod.uid != uid or pod.pod.deleting:
        return f"{name}-{u} was not a live pod"  # the controller deletes what its snapshot shows alive
    if sts.update_revision and pod.pod.revision == sts.update_revision:
        return f"it was already on the update revision {sts.update_revision}"
    budget = max_unavailable(world)
    above = [o for o in sts.ordinals if o > u]
    if budget <= 1:
        for h in reversed(above):
            higher = world.pods.get(h)
            if higher is not None and higher.pod.revision != sts.update_revision and not higher.pod.deleting:
                return f"{name}-{h} was on the old revision"
            health = world.health(h)
            if health:
                return f"{name}-{h} was {health}"
    else:
        # Deleted after this world by the same or a later sync: available here, gone when u went.
        deleted_since = [o for i, o in deletions if i >= world.index]
        for h in reversed(above):
            higher = world.pods.get(h)
            old = higher is not None and higher.pod.revision != sts.update_revision and not higher.pod.deleting
            if old and h not in deleted_since:
                return f"{name}-{h} was on the old revision (updates go from the highest ordinal down)"
        unavailable = sum(1 for o in sts.ordinals if world.health(o) or o in deleted_since)
        if unavailable >= budget:
            return f"{unavailable} pods were already unavailable (maxUnavailable {sts.max_unavailable})"
    if sts.policy != "Parallel":
        below = world.first_unhealthy(range(sts.ordinals_start, u))
        if below is not None:
            return (
                f"{name}-{below[0]}, below it, was {below[1]} (OrderedReady halts the rollout while a pod is unhealthy)"
            )
        condemned = world.condemned()
        if condemned:
            return f"{name}-{condemned[0]} was still being scaled away"
    return None


def created_revision(world: World, e: Entry, k: int) -> str | None:
    """Why pod k may not be created with the revision it has in this world (None: it may)."""
    sts = world.sts
    if sts is None or not sts.update_revision:
        return None  # the StatefulSet's revisions are not known yet: nothing to hold it against
    revision = e.pod.revision
    if sts.strategy == "OnDelete" or k >= sts.ordinals_start + sts.partition:
        return None if revision == sts.update_revision else f"not the update revision {sts.update_revision}"
    if revision == (sts.current_revision or sts.update_revision):
        return None
    return (
        f"{e.name} got revision {revision}, not the current revision {sts.current_revision}, although its "
        f"ordinal is below start + partition ({sts.ordinals_start} + {sts.partition})"
    )


def check(timeline: Timeline, subject: Subject) -> Verdict:
    gap = incomplete(GUARANTEE, timeline, KINDS)
    if gap:
        return gap
    name = subject.statefulset
    history = History(timeline, name)
    violations: list[Violation] = []
    updated: set[str] = set()  # pod UIDs created on another revision than their ordinal's previous pod
    last_revision: dict[int, str] = {}
    update_deletions: list[tuple[int, int]] = []  # (history index, ordinal)
    rollouts: set[str] = set()
    for _, e, _world in history.walk():
        if e.kind == STS and e.sts.rolling_out:
            rollouts.add(e.sts.update_revision)
    since = 0  # the witness of the previous write judged: the controller's cache only moves forward
    for index, e, world in history.creations():
        k = ordinal_of(e.name, name)
        assert k is not None
        # Exercised: an ordinal came back on another revision than its previous pod had.
        if k in last_revision and last_revision[k] != e.pod.revision:
            updated.add(e.uid)
        last_revision[k] = e.pod.revision

        def revision_ok(w: World, e: Entry = e, k: int = k) -> str | None:
            return created_revision(w, e, k)

        why, since = history.witness(index, world, revision_ok, since)
        if why is not None:
            message = why if why.startswith(e.name) else f"{e.name} was created with a revision that is {why}"
            violations.append(Violation(message, e))
    since = 0
    for index, e, world in history.deletions():
        u = ordinal_of(e.name, name)
        assert u is not None

        if history.legal(index, world, condemned(u, e.uid)) is None:
            continue  # scaled away (in some state it may have acted on): ordered_termination judges it
        if world.sts is not None and world.sts.strategy == "OnDelete":
            violations.append(
                Violation(f"{e.name} was deleted by the controller under OnDelete (only the test deletes pods)", e)
            )
            continue

        def allowed(w: World, u: int = u, uid: str = e.uid) -> str | None:
            return may_update(w, u, uid, name, update_deletions)

        broken, since = history.witness(index, world, allowed, since)
        if broken is not None:
            why = may_update(world, u, e.uid, name, update_deletions) or "the order was broken"
            violations.append(Violation(_explain(e.name, why), e))
        update_deletions.append((index, u))
    final = timeline.statefulset(name)
    notes = []
    if final is not None and max_unavailable(World(final)) > 1:
        notes.append(
            f"maxUnavailable is {final.sts.max_unavailable}: one pod at a time is relaxed by the configuration "
            "to at most that many unavailable at once, still from the highest ordinal down"
        )
    if not rollouts and not violations:
        return not_exercised(
            GUARANTEE,
            f"{name} never rolled out a new revision during the run, so nothing shows the update order: "
            "add a step that changes the pod template (update_image or rollout_restart)",
        )
    if not updated and not violations:
        return not_exercised(
            GUARANTEE,
            f"{name} rolled out a new revision but no pod was updated during the run (a partition above every "
            "ordinal, or OnDelete without a delete_pod step), so nothing shows the update order",
        )
    verdict = judged(
        GUARANTEE,
        timeline,
        violations,
        f"{len(rollouts)} rollout(s), {len(updated)} pods updated from the highest ordinal down",
        kinds=KINDS,
    )
    verdict.notes += notes
    return verdict


def _explain(pod: str, why: str) -> str:
    if why.startswith("its ordinal") or why.startswith("it was"):
        return f"{pod} was deleted for the update although {why}"
    return (
        f"{pod} was updated while {why} (updates go from the highest ordinal down, each after the one above "
        "is updated and Ready)"
    )
