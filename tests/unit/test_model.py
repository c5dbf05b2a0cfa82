"""Model-based property tests of the checks: legal runs never fail, broken runs never pass.

`model.py` simulates the StatefulSet controller (upstream rules) and records timelines as
the recorder would, in any legal receive order. The properties:

- legal runs: no check returns "failed" on a run the model produced (Parallel is
  documented to fail ordered_creation and ordered_termination, so those two are judged for
  OrderedReady only). A verdict whose only findings say the run never exercised the
  guarantee counts as "not exercised", apart from a failure;
- not exercised: a run that never exercised a guarantee does not pass it;
- mutations: a legal run edited to break one rule (swap two events across an ordering
  rule, drop a Ready, an update below the partition, a recreated claim, a stale DNS
  answer, a Gap) never passes the check of that rule (failed or incomplete is fine).

Known defects of the checks are marked with `known(...)` (an xfail, strict=False); the
table KNOWN lists them with a minimal counterexample each (also pinned as @example).
When a check is fixed, delete its entry from KNOWN: the property then must hold.
The census at the end counts cases, mutations and the kill rate and prints a summary.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pytest

pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, Phase, assume, example, given, settings, target
from hypothesis import strategies as st
from model import NAME, NAMESPACE, ZONE, Action, Run, Workload, run

from pytest_stateful.checks import GUARANTEES, Subject, Verdict, run_check
from pytest_stateful.timeline import DNS, GAP, NODE, POD, PVC, SERVICE, STEP, STS, Entry, Timeline, ordinal_of

SUBJECT = Subject(NAME, NAMESPACE)
# Investigating: shrink known defects too, and skip the pinned examples so the search finds its own.
SHRINK = bool(os.environ.get("PYTEST_STATEFUL_SHRINK"))


def _settings(examples: int, shrink: bool = True) -> settings:
    phases = (Phase.explicit, Phase.generate, Phase.shrink) if shrink else (Phase.explicit, Phase.generate)
    if SHRINK:
        phases = (Phase.generate, Phase.shrink)
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=phases,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )


# -- known defects: one entry each; delete the entry when the check is fixed ------------------

KNOWN: dict[str, str] = {}


def known(defect: str) -> pytest.MarkDecorator:
    """The xfail of a known defect; a no-op once its KNOWN entry is deleted."""
    if defect not in KNOWN:
        return pytest.mark.xfail(False, reason=f"{defect}: fixed")  # condition False: no effect
    return pytest.mark.xfail(strict=False, reason=KNOWN[defect])


def shrink(defect: str | None = None) -> bool:
    return defect is None or defect not in KNOWN or SHRINK


# -- verdicts ------------------------------------------------------------------------------

NOT_EXERCISED = re.compile(r"never (rolled out|scaled down)|nothing shows")
COUNTS: Counter[str] = Counter()


def outcome(verdict: Verdict) -> str:
    """passed, incomplete, not exercised (failed with only 'never exercised' diagnoses), or failed."""
    if verdict.status != "failed":
        return verdict.status
    if not verdict.violations and verdict.diagnosis and all(NOT_EXERCISED.search(d) for d in verdict.diagnosis):
        return "not exercised"
    return "failed"


def judge(guarantee: str, timeline: Timeline) -> tuple[str, Verdict]:
    verdict = run_check(guarantee, timeline, SUBJECT)
    return outcome(verdict), verdict


# -- scenarios -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Scenario:
    workload: Workload
    actions: tuple[Action, ...]
    seed: int = 0
    window: float = 0.0  # how far apart (s) entries of different kinds can be received out of rv order

    def run(self) -> Run:
        return _run(self)


@functools.lru_cache(maxsize=256)
def _run(scenario: Scenario) -> Run:
    COUNTS["model runs"] += 1
    return run(scenario.workload, scenario.actions, scenario.seed, scenario.window)


ACTIONS = ("scale", "delete_pod", "delete_pods", "update_image", "partition", "ordinals_start", "make_unready")


@st.composite
def scenarios(
    draw: Any,
    *,
    policy: str | None = None,
    strategy: str | None = None,
    replicas: tuple[int, int] = (1, 4),
    start: tuple[int, int] | None = None,
    partition: tuple[int, int] | None = None,
    max_unavailable: tuple[int, int] | None = None,
    min_ready_seconds: tuple[int, int] | None = None,
    when_scaled: str | None = None,
    allowed: Sequence[str] = ACTIONS,
    required: Sequence[str] = (),
    steps: int = 5,
    window: float | None = None,
) -> Scenario:
    """A workload, up to `steps` steps (plus the `required` ones, anywhere), timing and receive lag.

    Pseudo-steps in `required`: scale_down (by at least 2), scale_up, start_up (ordinals.start moves
    up), update (a new template), delete_pod, delete_pods, make_unready.
    """
    strategy = strategy or draw(st.sampled_from(["RollingUpdate", "RollingUpdate", "OnDelete"]))
    rolling = strategy == "RollingUpdate"
    w = Workload(
        replicas=draw(st.integers(*replicas)),
        start=draw(st.integers(*start)) if start else draw(st.sampled_from([0, 0, 1, 2])),
        policy=policy or draw(st.sampled_from(["OrderedReady", "OrderedReady", "Parallel"])),
        strategy=strategy,
        partition=(draw(st.integers(*partition)) if partition else draw(st.sampled_from([0, 0, 1, 2])))
        if rolling
        else 0,
        max_unavailable=(draw(st.integers(*max_unavailable)) if max_unavailable else 1) if rolling else 1,
        min_ready_seconds=draw(st.integers(*min_ready_seconds)) if min_ready_seconds else 0,
        when_scaled=when_scaled or draw(st.sampled_from(["Retain", "Retain", "Retain", "Delete"])),
    )
    names = draw(st.lists(st.sampled_from(list(allowed)), max_size=steps)) if allowed else []
    for name in required:
        names.insert(draw(st.integers(0, len(names))), name)
    actions: list[Action] = []
    begin, reps, newest = w.start, w.replicas, 0
    held: list[int] = []
    for name in names:
        if name == "scale":
            reps = draw(st.integers(1, 5))
            actions.append(Action("scale", reps))
        elif name == "scale_down":
            reps = draw(st.integers(1, max(1, reps - 2)))
            actions.append(Action("scale", reps))
        elif name == "scale_up":
            reps = draw(st.integers(reps + 1, reps + 2))
            actions.append(Action("scale", reps))
        elif name in ("delete_pod", "make_unready"):
            actions.append(Action(name, begin + draw(st.integers(0, reps - 1))))
            if name == "make_unready":
                held.append(actions[-1].arg)
        elif name == "make_ready":
            actions.append(Action(name, held.pop(0) if held else begin + draw(st.integers(0, reps - 1))))
        elif name == "delete_pods":
            actions.append(Action("delete_pods"))
        elif name in ("update_image", "update"):
            if name == "update" or draw(st.integers(0, 9)) < 8:
                newest += 1
                actions.append(Action("update_image", newest))
            else:
                actions.append(Action("update_image", draw(st.integers(0, newest))))
        elif name == "partition":
            if rolling:
                actions.append(Action("partition", draw(st.integers(0, 4))))
        elif name == "ordinals_start":
            begin = draw(st.integers(0, 3))
            actions.append(Action("ordinals_start", begin))
        elif name == "start_up":
            begin += draw(st.integers(1, 2))
            actions.append(Action("ordinals_start", begin))
        else:
            raise ValueError(name)
    lag = window if window is not None else draw(st.sampled_from([0.0, 0.005, 0.05, 0.2]))
    return Scenario(w, tuple(actions), draw(st.integers(0, 2**16)), lag)


def sc(actions: Sequence[Action] = (), seed: int = 0, window: float = 0.0, **workload: Any) -> Scenario:
    """A scenario written out (for @example)."""
    return Scenario(Workload(**workload), tuple(actions), seed, window)


def A(name: str, arg: int = 0) -> Action:
    return Action(name, arg)


# -- what a run exercised (from what the model did) -----------------------------------------


def exercised(r: Run, guarantee: str) -> bool:
    creates = [d for d in r.deeds if d.verb == "create"]
    if guarantee == "ordered_creation":
        return r.workload.policy == "OrderedReady" and any(d.ordinal > d.start for d in creates)
    if guarantee == "ordered_termination":
        return any(d.reason == "scale-down" for d in r.deeds)
    if guarantee == "ordered_rolling_update":
        # A pod came back at another revision than the incarnation before it.
        last: dict[int, str] = {}
        moved = False
        for d in creates:
            if d.ordinal in last and last[d.ordinal] != d.revision:
                moved = True
            last[d.ordinal] = d.revision
        return moved
    return True


# -- legal runs ------------------------------------------------------------------------------


def assert_legal(s: Scenario, guarantee: str) -> None:
    r = s.run()
    if guarantee in ("ordered_creation", "ordered_termination") and r.workload.policy == "Parallel":
        return  # the policy breaks the guarantee: the check must say so (documented)
    if guarantee == "stable_storage" and r.claims_deleted:
        return  # the retention policy deleted a claim: failing and naming the policy is documented
    result, verdict = judge(guarantee, r.timeline)
    COUNTS[f"legal {result}"] += 1
    assert result != "failed", f"legal run failed {guarantee}:\n{verdict.explain()}\nscenario: {s}"


@pytest.mark.parametrize("guarantee", ["ordered_creation", "stable_identity", "pod_dns"])
@_settings(250)
@given(s=scenarios(allowed=(*ACTIONS, "make_ready")))
def test_legal_run_never_fails(guarantee: str, s: Scenario) -> None:
    assert_legal(s, guarantee)


@_settings(250)
@given(s=scenarios(allowed=tuple(a for a in ACTIONS if a != "ordinals_start")))
def test_legal_run_never_fails_ordered_termination(s: Scenario) -> None:
    assert_legal(s, "ordered_termination")


@known("start_moved")
@_settings(100, shrink("start_moved"))
@example(sc([A("ordinals_start", 1)], replicas=2))
@given(s=scenarios(policy="OrderedReady", replicas=(2, 4), required=("start_up",)))
def test_legal_run_never_fails_ordered_termination_when_start_moves(s: Scenario) -> None:
    assert_legal(s, "ordered_termination")


@_settings(250)
@given(s=scenarios(when_scaled="Retain"))
def test_legal_run_never_fails_stable_storage(s: Scenario) -> None:
    assert_legal(s, "stable_storage")


@known("retention_policy_alone")
@_settings(50, shrink("retention_policy_alone"))
@example(sc(when_scaled="Delete", replicas=1))
@given(s=scenarios(when_scaled="Delete", allowed=("delete_pod", "update_image", "scale_up")))
def test_legal_run_never_fails_stable_storage_retention_delete(s: Scenario) -> None:
    assert_legal(s, "stable_storage")


@_settings(250)
@given(s=scenarios())
def test_legal_run_never_fails_claim_retention(s: Scenario) -> None:
    assert_legal(s, "claim_retention")


@_settings(100)
@given(s=scenarios(when_scaled="Delete", required=("scale_down", "scale_up")))
def test_legal_run_never_fails_claim_retention_delete_down_and_up(s: Scenario) -> None:
    assert_legal(s, "claim_retention")


# ordered_rolling_update: the clean part of the space, then one property per known false fail.
ROLLING_CLEAN = ("update_image", "partition", "make_unready", "make_ready")


@_settings(250)
@given(s=scenarios(strategy="RollingUpdate", allowed=ROLLING_CLEAN, required=("update",)))
def test_legal_run_never_fails_ordered_rolling_update(s: Scenario) -> None:
    assert_legal(s, "ordered_rolling_update")


@_settings(150)
@given(s=scenarios(strategy="OnDelete", allowed=("update_image", "delete_pod", "delete_pods"), window=0.0))
def test_legal_run_never_fails_ordered_rolling_update_on_delete_in_order(s: Scenario) -> None:
    assert_legal(s, "ordered_rolling_update")


@known("ondelete_deletes_step")
@_settings(100, shrink("ondelete_deletes_step"))
@example(sc([A("update_image", 1), A("delete_pod", 0)], replicas=1, strategy="OnDelete", window=0.05))
@given(s=scenarios(strategy="OnDelete", allowed=("update_image", "delete_pod"), required=("update", "delete_pod")))
def test_legal_run_never_fails_ordered_rolling_update_on_delete(s: Scenario) -> None:
    assert_legal(s, "ordered_rolling_update")


@known("test_delete_in_rollout")
@_settings(100, shrink("test_delete_in_rollout"))
@example(sc([A("update_image", 1), A("delete_pods")], replicas=3, partition=1, seed=3))
@example(sc([A("make_unready", 0), A("update_image", 1), A("delete_pod", 0)], replicas=2))
@given(
    s=scenarios(
        strategy="RollingUpdate",
        max_unavailable=(1, 1),
        partition=(1, 2),
        allowed=("delete_pod", "delete_pods", "make_unready"),
        required=("update", "delete_pods"),
    )
)
def test_legal_run_never_fails_ordered_rolling_update_test_deletes(s: Scenario) -> None:
    assert_legal(s, "ordered_rolling_update")


@known("scale_up_in_rollout")
@_settings(100, shrink("scale_up_in_rollout"))
@example(sc([A("update_image", 1), A("scale", 3)], replicas=1, partition=1))
@given(s=scenarios(strategy="RollingUpdate", partition=(1, 2), allowed=(), required=("update", "scale_up")))
def test_legal_run_never_fails_ordered_rolling_update_scale_up(s: Scenario) -> None:
    assert_legal(s, "ordered_rolling_update")


@known("max_unavailable")
@_settings(100, shrink("max_unavailable"))
@example(sc([A("update_image", 1)], replicas=2, max_unavailable=2))
@given(s=scenarios(strategy="RollingUpdate", max_unavailable=(2, 3), replicas=(2, 4), allowed=(), required=("update",)))
def test_legal_run_never_fails_ordered_rolling_update_max_unavailable(s: Scenario) -> None:
    assert_legal(s, "ordered_rolling_update")


@_settings(250)
@given(s=scenarios(allowed=(*ACTIONS, "make_ready")))
def test_legal_run_never_fails_availability(s: Scenario) -> None:
    """Issue 13: a controller that follows the upstream rules never breaks the availability floor."""
    assert_legal(s, "availability")


@_settings(100)
@given(s=scenarios(strategy="RollingUpdate", max_unavailable=(2, 3), replicas=(2, 4), allowed=(), required=("update",)))
def test_legal_run_never_fails_availability_max_unavailable(s: Scenario) -> None:
    assert_legal(s, "availability")


# -- the model itself: a legal receive order --------------------------------------------------


# -- node failure (issue 13): at_most_one, and the other checks under a failed node --------------


@st.composite
def node_failures(draw: Any, force: bool) -> Scenario:
    """A workload, maybe a step or two, fail_node on one ordinal's node, then (legal) out_of_service or
    nothing, or (force) force_delete_pod of that ordinal while the node is failed; maybe restore_node
    (teardown restores it anyway)."""
    w = Workload(
        replicas=draw(st.integers(1, 4)),
        start=draw(st.sampled_from([0, 0, 2])),
        policy=draw(st.sampled_from(["OrderedReady", "Parallel"])),
        strategy=draw(st.sampled_from(["RollingUpdate", "OnDelete"])),
    )
    k = w.start + draw(st.integers(0, w.replicas - 1))
    actions = [Action("update_image", 1)] if draw(st.booleans()) else []
    actions.append(Action("fail_node", k))
    if force:
        actions.append(Action("force_delete_pod", k))
    elif draw(st.booleans()):
        actions.append(Action("out_of_service", k))
    if draw(st.booleans()):
        actions.append(Action("restore_node", k))
    if draw(st.booleans()):
        actions.append(Action("delete_pod", w.start))
    lag = draw(st.sampled_from([0.0, 0.005, 0.05, 0.2]))
    return Scenario(w, tuple(actions), draw(st.integers(0, 2**16)), lag)


@pytest.mark.parametrize(
    "guarantee", ["at_most_one", "stable_identity", "stable_storage", "availability", "ordered_rolling_update"]
)
@_settings(150)
@given(s=node_failures(force=False))
def test_legal_node_failure_never_fails(guarantee: str, s: Scenario) -> None:
    """A node that fails and is declared out of service (or comes back) breaks no guarantee."""
    r = s.run()
    assert not r.unsafe_replacement
    result, verdict = judge(guarantee, r.timeline)
    COUNTS[f"legal {result}"] += 1
    assert result != "failed", f"legal run failed {guarantee}:\n{verdict.explain()}\nscenario: {s}"


@_settings(150)
@given(s=node_failures(force=True))
def test_a_replacement_after_a_force_delete_on_a_failed_node_never_passes(s: Scenario) -> None:
    """Two incarnations possibly alive at once: at_most_one must fail whenever the model created the
    replacement while the old pod's node was still failed, and pass otherwise."""
    r = s.run()
    result, verdict = judge("at_most_one", r.timeline)
    COUNTS["force-delete runs"] += 1
    if r.unsafe_replacement:
        COUNTS["force-delete caught"] += int(result == "failed")
        assert result == "failed", f"{verdict.explain()}\nscenario: {s}"
        assert "had been force-deleted by the test (force_delete_pod)" in verdict.summary
    else:
        # OrderedReady held the replacement back (a lower ordinal on the failed node) until the restore.
        assert result != "failed", f"{verdict.explain()}\nscenario: {s}"


@st.composite
def bad_rollouts(draw: Any) -> Scenario:
    """A bad rollout and its fix on either policy, with a partition and maxUnavailable."""
    w = Workload(
        replicas=draw(st.integers(1, 4)),
        start=draw(st.sampled_from([0, 0, 1])),
        policy=draw(st.sampled_from(["OrderedReady", "Parallel"])),
        strategy="RollingUpdate",
        partition=draw(st.sampled_from([0, 0, 1, 2])),
        max_unavailable=draw(st.integers(1, 3)),
    )
    # The pause lets the controller roll the bad revision out (a fix sent at once replaces it unseen).
    actions = [Action("bad_rollout", 1), Action("sleep", draw(st.integers(0, 3))), Action("update_image", 2)]
    lag = draw(st.sampled_from([0.0, 0.005, 0.05, 0.2]))
    return Scenario(w, tuple(actions), draw(st.integers(0, 2**16)), lag)


@_settings(200)
@given(s=bad_rollouts())
def test_rollout_recovers_says_what_the_controller_did(s: Scenario) -> None:
    """Issue 13, the model as oracle: when the modelled controller recovered from the bad rollout on its
    own (every pod on the fix and Ready), rollout_recovers never fails; when it stayed stuck, it never passes."""
    r = s.run()
    result, verdict = judge("rollout_recovers", r.timeline)
    COUNTS[f"bad rollout {'recovered' if r.settled else 'stuck'}: {result}"] += 1
    if r.settled:
        assert result in ("passed", "not exercised"), f"{verdict.explain()}\nscenario: {s}"
    else:
        assert result in ("failed", "incomplete"), f"{verdict.explain()}\nscenario: {s}"


@_settings(150)
@given(s=node_failures(force=False))
def test_an_out_of_service_taint_moved_after_the_replacement_never_passes(s: Scenario) -> None:
    """Mutation of a legal run: the node is declared out of service only after its pod was deleted and
    replaced, so the deletion was unconfirmed when the replacement came."""
    r = s.run()
    entries = list(r.timeline.entries)
    tainted = [e for e in entries if e.kind == NODE and e.node.out_of_service]
    assume(tainted)
    node = tainted[0].name
    gone = [e for e in entries if e.kind == POD and e.type == "DELETED" and e.pod.node == node]
    replaced = [
        e
        for e in entries
        if e.kind == POD and e.type == "ADDED" and any(g.name == e.name and g.seq < e.seq for g in gone)
    ]
    assume(replaced)
    later = entries[-1].t + 1.0
    # Committed later too: the check orders Node and Pod facts by resourceVersion.
    top = max(int(e.rv) for e in entries if e.rv.isdigit())
    moved = [dataclasses.replace(e, t=later + i, rv=str(top + 1 + i)) for i, e in enumerate(tainted)]
    result, verdict = judge("at_most_one", renumbered([e for e in entries if e not in tainted] + moved))
    COUNTS["out-of-service mutations"] += 1
    assert result != "passed", f"{verdict.explain()}\nscenario: {s}"


@_settings(150)
@given(s=scenarios(allowed=(*ACTIONS, "make_ready")))
def test_model_records_a_legal_receive_order(s: Scenario) -> None:
    """t never decreases; each watched kind arrives in rv order; one etcd revision for all kinds;
    every step begins and ends; the run ends settled (every wanted pod Ready, nothing else left)."""
    r = s.run()
    entries = r.timeline.entries
    assert [e.seq for e in entries] == list(range(len(entries)))
    assert all(a.t <= b.t for a, b in itertools.pairwise(entries))
    rvs = [int(e.rv) for e in entries if e.rv]
    assert len(rvs) == len(set(rvs))
    for kind in (STS, POD, PVC, SERVICE):
        of_kind = [int(e.rv) for e in entries if e.kind == kind]
        assert of_kind == sorted(of_kind), kind
    steps = [e for e in entries if e.kind == STEP and e.type in ("begin", "end")]
    assert [e.type for e in steps] == ["begin", "end"] * (len(steps) // 2)
    assert all(e.kind not in (STEP, DNS) or not e.rv for e in entries)
    if r.step_ok[-1]:
        final = r.timeline.statefulset(NAME)
        live: dict[str, Entry] = {}
        for e in entries:
            if e.kind == POD:
                live[e.name] = e
        alive = {n: e for n, e in live.items() if e.type != "DELETED"}
        assert set(alive) == {f"{NAME}-{k}" for k in ordinals(final)}
        assert all(e.get("ready") and not e.get("deleting") for e in alive.values())
    COUNTS["model self-checks"] += 1


# -- not exercised -> not passed -------------------------------------------------------------


def assert_not_vacuous(s: Scenario, guarantee: str) -> None:
    r = s.run()
    if exercised(r, guarantee):
        return
    result, verdict = judge(guarantee, r.timeline)
    COUNTS[f"not exercised, {result}"] += 1
    assert result != "passed", f"{guarantee} passed a run that never exercised it:\n{verdict.explain()}\n{s}"


@_settings(150)
@given(s=scenarios(policy="OrderedReady", allowed=("delete_pod", "update_image", "make_unready", "make_ready")))
def test_unexercised_ordered_termination_never_passes(s: Scenario) -> None:
    assert_not_vacuous(s, "ordered_termination")


@known("rollout_without_update")
@_settings(100, shrink("rollout_without_update"))
@example(sc([A("update_image", 1), A("delete_pod", 0)], replicas=1, partition=1))
@given(s=scenarios(allowed=("update_image", "partition", "delete_pod"), required=("update",)))
def test_unexercised_ordered_rolling_update_never_passes(s: Scenario) -> None:
    assert_not_vacuous(s, "ordered_rolling_update")


@known("single_creation")
@_settings(50, shrink("single_creation"))
@example(sc(replicas=1))
@given(s=scenarios(policy="OrderedReady", replicas=(1, 1), allowed=("delete_pod", "update_image")))
def test_unexercised_ordered_creation_never_passes(s: Scenario) -> None:
    assert_not_vacuous(s, "ordered_creation")


# -- mutations -------------------------------------------------------------------------------


def renumbered(entries: Sequence[Entry]) -> Timeline:
    return Timeline(dataclasses.replace(e, seq=i) for i, e in enumerate(entries))


def with_data(e: Entry, **changes: Any) -> Entry:
    return dataclasses.replace(e, data={**e.data, **changes})


def sts_at(entries: Sequence[Entry], rv: str) -> Entry | None:
    """The StatefulSet as of etcd revision `rv` (what replay does)."""
    found = None
    for e in entries:
        if e.kind == STS and e.rv.isdigit() and int(e.rv) <= int(rv) and (found is None or int(e.rv) > int(found.rv)):
            found = e
    return found


def ordinals(sts: Entry | None) -> range:
    if sts is None:
        return range(0)
    start = int(sts.get("ordinals_start", 0))
    return range(start, start + int(sts.get("replicas", 0)))


def pod_index(entries: Sequence[Entry]) -> dict[str, list[int]]:
    """Positions of each pod UID's entries."""
    found: dict[str, list[int]] = {}
    for i, e in enumerate(entries):
        if e.kind == POD:
            found.setdefault(e.uid, []).append(i)
    return found


def ready_transition_before(entries: Sequence[Entry], uid: str, before: int) -> int | None:
    """The position where pod `uid` last became Ready before position `before`."""
    found, was = None, False
    for i, e in enumerate(entries[:before]):
        if e.kind == POD and e.uid == uid:
            now = bool(e.get("ready")) and e.type != "DELETED"
            if now and not was:
                found = i
            was = now
    return found if was else None


def live_uid_at(entries: Sequence[Entry], name: str, before: int) -> str | None:
    uid = None
    for e in entries[:before]:
        if e.kind == POD and e.name == name:
            uid = None if e.type == "DELETED" else e.uid
    return uid


def swap(entries: list[Entry], i: int, j: int) -> None:
    """Exchange two entries of one kind, each keeping the slot's time and revision."""
    a, b = entries[i], entries[j]
    entries[i] = dataclasses.replace(b, t=a.t, rv=a.rv)
    entries[j] = dataclasses.replace(a, t=b.t, rv=b.rv)


def unready_between(entries: list[Entry], uid: str, lo: int, hi: int) -> None:
    for i in range(lo, hi):
        e = entries[i]
        if e.kind == POD and e.uid == uid and e.get("ready"):
            entries[i] = with_data(e, ready=False, ready_since=None)


def fix_ready_since(entries: list[Entry], i: int) -> None:
    e = entries[i]
    if e.kind == POD and e.get("ready"):
        entries[i] = with_data(e, ready_since=e.t)


def pod_rv_between(entries: Sequence[Entry], at: int, count: int) -> list[str] | None:
    """`count` fresh Pod revisions for entries inserted at position `at`, or None if there is no room."""
    lo = max((int(e.rv) for e in entries[:at] if e.kind == POD and e.rv.isdigit()), default=0)
    hi = min((int(e.rv) for e in entries[at:] if e.kind == POD and e.rv.isdigit()), default=lo + 10 * (count + 1))
    if hi - lo <= count:
        return None
    return [str(lo + k + 1) for k in range(count)]


def replacement(
    entries: Sequence[Entry], last: Entry, revision: str, rvs: Sequence[str], t: float, uid: str
) -> list[Entry]:
    """Entries of a pod deleted and recreated at `revision`: deleting, DELETED, ADDED, Running+Ready."""
    ip = f"10.9.9.{len(entries) % 250}"
    gone = with_data(last, deleting=True)
    new = with_data(last, revision=revision, deleting=False, phase="Pending", ready=False, ip="", ready_since=None)
    up = with_data(new, phase="Running", ready=True, ip=ip, ready_since=t)
    return [
        dataclasses.replace(gone, type="MODIFIED", rv=rvs[0], t=t),
        dataclasses.replace(gone, type="DELETED", rv=rvs[1], t=t),
        dataclasses.replace(new, type="ADDED", uid=uid, rv=rvs[2], t=t),
        dataclasses.replace(up, type="MODIFIED", uid=uid, rv=rvs[3], t=t),
    ]


Mutation = Callable[[Run, int], list[Entry] | None]


def _creations(r: Run, entries: Sequence[Entry]) -> list[tuple[int, int, str]]:
    """(position of pod k's ADDED, position where k-1 became Ready before it, k-1's uid)."""
    found = []
    for i, e in enumerate(entries):
        if e.kind != POD or e.type != "ADDED":
            continue
        k = ordinal_of(e.name, NAME)
        wanted = ordinals(sts_at(entries, e.rv))
        if k is None or k - 1 not in wanted or k not in wanted:
            continue
        lower = live_uid_at(entries, f"{NAME}-{k - 1}", i)
        j = ready_transition_before(entries, lower, i) if lower else None
        if j is not None and lower is not None:
            found.append((i, j, lower))
    return found


def create_before_lower_ready(r: Run, pick: int) -> list[Entry] | None:
    """ordered_creation: pod k's creation and pod k-1's becoming Ready trade places."""
    entries = list(r.timeline.entries)
    found = _creations(r, entries)
    if not found:
        return None
    i, j, lower = found[pick % len(found)]
    swap(entries, j, i)
    unready_between(entries, lower, j, i)
    fix_ready_since(entries, i)
    return entries


def drop_ready(r: Run, pick: int) -> list[Entry] | None:
    """ordered_creation: pod k-1 never reports Ready before pod k is created."""
    entries = list(r.timeline.entries)
    found = _creations(r, entries)
    if not found:
        return None
    i, j, lower = found[pick % len(found)]
    unready_between(entries, lower, j, i)
    return entries


def create_before_lower_available(r: Run, pick: int) -> list[Entry] | None:
    """ordered_creation with minReadySeconds: pod k-1 becomes Ready just before pod k's creation."""
    entries = list(r.timeline.entries)
    found = [(i, j, u) for i, j, u in _creations(r, entries) if not any(e.kind == POD for e in entries[j + 1 : i])]
    if not found or not r.workload.min_ready_seconds:
        return None
    i, j, _ = found[pick % len(found)]
    ready = entries.pop(j)
    # Ready at the moment of the creation, so the pod was available for no time at all.
    t = entries[i - 1].t
    entries.insert(i - 1, with_data(dataclasses.replace(ready, t=t), ready_since=t))
    return entries


def _scale_downs(r: Run, entries: Sequence[Entry]) -> list[tuple[Any, Any]]:
    deletes = [d for d in r.deeds if d.reason == "scale-down"]
    return [(h, low) for h, low in itertools.pairwise(deletes) if low.ordinal == h.ordinal - 1]


def terminate_before_higher_gone(r: Run, pick: int) -> list[Entry] | None:
    """ordered_termination: pod k starts terminating before pod k+1 is gone."""
    entries = list(r.timeline.entries)
    index = pod_index(entries)
    found = []
    for h, low in _scale_downs(r, entries):
        gone = next((i for i in index.get(h.uid, []) if entries[i].type == "DELETED"), None)
        starts = next((i for i in index.get(low.uid, []) if entries[i].get("deleting")), None)
        if gone is None or starts is None or starts < gone:
            continue
        if low.ordinal in ordinals(sts_at(entries, entries[gone].rv)):
            continue  # removed by a later scale-down: moving it earlier would remove a wanted pod
        if any(gone < i < starts for i in index.get(low.uid, [])):
            continue
        found.append((gone, starts))
    if not found:
        return None
    gone, starts = found[pick % len(found)]
    swap(entries, gone, starts)
    return entries


def scale_down_while_kept_unready(r: Run, pick: int) -> list[Entry] | None:
    """ordered_termination: a condemned pod is removed while the highest kept pod is NotReady, from
    the StatefulSet's scale-down onwards (so no state the controller may have acted on shows it Ready)."""
    entries = list(r.timeline.entries)
    index = pod_index(entries)
    found = []
    for d in (d for d in r.deeds if d.reason == "scale-down"):
        starts = next((i for i in index.get(d.uid, []) if entries[i].get("deleting")), None)
        gone = next((i for i in index.get(d.uid, []) if entries[i].type == "DELETED"), None)
        if starts is None or gone is None:
            continue
        wanted = ordinals(sts_at(entries, entries[starts].rv))
        if not wanted:
            continue
        # The StatefulSet entry that asked for fewer replicas: the kept pod goes NotReady right there.
        lowered = None
        for i in range(starts - 1, -1, -1):
            if entries[i].kind != STS:
                continue
            if d.ordinal in ordinals(entries[i]):
                break
            lowered = i
        if lowered is None:
            continue
        kept = f"{NAME}-{wanted[-1]}"
        uid = live_uid_at(entries, kept, lowered)
        last = next((e for e in reversed(entries[:lowered]) if e.kind == POD and e.uid == uid), None)
        if last is None or not last.get("ready"):
            continue
        if any(e.kind == POD and e.uid == uid for e in entries[lowered:starts]):
            continue  # the kept pod changes meanwhile: not a clean case
        found.append((lowered, starts, gone, last))
    if not found:
        return None
    lowered, starts, gone, last = found[pick % len(found)]
    before = pod_rv_between(entries, lowered + 1, 1)
    after = pod_rv_between(entries, gone + 1, 1)
    if before is None or after is None:
        return None
    t0, t1 = entries[lowered].t, entries[gone].t
    entries.insert(gone + 1, dataclasses.replace(with_data(last, ready_since=t1), type="MODIFIED", rv=after[0], t=t1))
    entries.insert(lowered + 1, dataclasses.replace(with_data(last, ready=False, ready_since=None), rv=before[0], t=t0))
    return entries


def _update_pairs(r: Run, entries: Sequence[Entry]) -> list[tuple[int, int, int, str, str]]:
    """For consecutive update deletions h then k < h: (h-new Ready, k-old deleting, k-new ADDED, h-new uid, ..)."""
    index = pod_index(entries)
    updates = [d for d in r.deeds if d.reason == "update"]
    creates = [d for d in r.deeds if d.verb == "create"]
    found = []
    for h, k in itertools.pairwise(updates):
        if k.ordinal >= h.ordinal or k.update_revision != h.update_revision:
            continue
        h_new = next((c for c in creates if c.ordinal == h.ordinal and c.rv > h.rv), None)
        k_new = next((c for c in creates if c.ordinal == k.ordinal and c.rv > k.rv), None)
        if h_new is None or k_new is None or h_new.revision != h.update_revision:
            continue
        added = next((i for i in index.get(k_new.uid, []) if entries[i].type == "ADDED"), None)
        deleting = next((i for i in index.get(k.uid, []) if entries[i].get("deleting")), None)
        if added is None or deleting is None:
            continue
        ready = ready_transition_before(entries, h_new.uid, deleting)
        if ready is None or any(ready < i < deleting for i in index.get(k.uid, [])):
            continue
        found.append((ready, deleting, added, h_new.uid, k.uid))
    return found


def update_before_higher_ready(r: Run, pick: int) -> list[Entry] | None:
    """ordered_rolling_update: pod k is deleted and comes back at the update revision before pod k+1 is Ready.

    The four Pod entries (k+1 Ready, k deleting, k gone, k created) rotate through their slots,
    each slot keeping its time and revision: k's replacement happens first, then k+1 becomes Ready.
    """
    entries = list(r.timeline.entries)
    found = _update_pairs(r, entries)
    if not found:
        return None
    ready, deleting, added, higher, lower = found[pick % len(found)]
    gone = next((i for i in range(deleting, added) if entries[i].uid == lower and entries[i].type == "DELETED"), None)
    if gone is None:
        return None
    slots = [ready, deleting, gone, added]
    moved = [entries[deleting], entries[gone], entries[added], entries[ready]]
    times = [(entries[i].t, entries[i].rv) for i in slots]
    for i, e, (t, rv) in zip(slots, moved, times, strict=True):
        entries[i] = dataclasses.replace(e, t=t, rv=rv)
    unready_between(entries, higher, ready, added)
    fix_ready_since(entries, added)
    return entries


def update_delete_before_higher_ready(r: Run, pick: int) -> list[Entry] | None:
    """ordered_rolling_update: the controller deletes pod k for the update before pod k+1 is Ready."""
    entries = list(r.timeline.entries)
    found = _update_pairs(r, entries)
    if not found:
        return None
    ready, deleting, _, higher, _ = found[pick % len(found)]
    swap(entries, ready, deleting)
    unready_between(entries, higher, ready, deleting)
    fix_ready_since(entries, deleting)
    return entries


def _append_replacement(r: Run, pick: int, choose: Callable[[Entry, int, range], bool]) -> list[Entry] | None:
    entries = list(r.timeline.entries)
    final = r.timeline.statefulset(NAME)
    if final is None or final.get("current_revision") == final.get("update_revision"):
        return None
    last_of: dict[str, Entry] = {}
    for e in entries:
        if e.kind == POD:
            last_of[e.name] = e
    live = [e for e in last_of.values() if e.type != "DELETED" and not e.get("deleting")]
    wanted = ordinals(final)
    found = [e for e in live if (k := ordinal_of(e.name, NAME)) is not None and choose(e, k, wanted)]
    if not found:
        return None
    last = found[pick % len(found)]
    top = max(int(e.rv) for e in entries if e.rv.isdigit())
    rvs = [str(top + 10 * (n + 1)) for n in range(4)]
    t = entries[-1].t + 0.1
    return [*entries, *replacement(entries, last, str(final.get("update_revision")), rvs, t, f"mutant-{pick}")]


def update_below_partition(r: Run, pick: int, start_above_zero: bool = True) -> list[Entry] | None:
    """ordered_rolling_update: after a partitioned rollout, a pod below start + partition is updated."""
    final = r.timeline.statefulset(NAME)
    if final is None or final.get("strategy") != "RollingUpdate" or int(final.get("partition") or 0) <= 0:
        return None
    if (int(final.get("ordinals_start") or 0) > 0) != start_above_zero:
        return None
    limit = int(final.get("ordinals_start") or 0) + int(final.get("partition") or 0)

    def below(e: Entry, k: int, wanted: range) -> bool:
        return k in wanted and k < limit and e.get("revision") == final.get("current_revision")

    return _append_replacement(r, pick, below)


def ondelete_controller_delete(r: Run, pick: int) -> list[Entry] | None:
    """ordered_rolling_update, OnDelete: the controller replaces a pod no step deleted."""
    if r.workload.strategy != "OnDelete":
        return None
    final = r.timeline.statefulset(NAME)

    def old(e: Entry, k: int, wanted: range) -> bool:
        return k in wanted and final is not None and e.get("revision") != final.get("update_revision")

    return _append_replacement(r, pick, old)


def ondelete_other_pod_during_test_delete(r: Run, pick: int) -> list[Entry] | None:
    """ordered_rolling_update, OnDelete: during the test's delete_pod, the controller replaces another pod."""
    if r.workload.strategy != "OnDelete":
        return None
    entries = list(r.timeline.entries)
    found = []
    for i, e in enumerate(entries):
        # Just before the step's 'deletes' entry: the step is under way whatever replay makes of 'deletes'.
        if e.kind != STEP or e.type != "deletes" or e.name != "delete_pod":
            continue
        sts = next((x for x in reversed(entries[:i]) if x.kind == STS), None)
        if sts is None or sts.get("current_revision") == sts.get("update_revision"):
            continue
        target = str((e.get("pods") or [""])[0])
        last_of: dict[str, Entry] = {}
        for x in entries[:i]:
            if x.kind == POD:
                last_of[x.name] = x
        for name, x in last_of.items():
            alive = x.type != "DELETED" and not x.get("deleting") and x.get("ready")
            if name != target and alive and x.get("revision") != sts.get("update_revision"):
                found.append((i, x, str(sts.get("update_revision"))))
    if not found:
        return None
    i, last, revision = found[pick % len(found)]
    rvs = pod_rv_between(entries, i, 4)
    if rvs is None:
        return None
    return [*entries[:i], *replacement(entries, last, revision, rvs, entries[i].t, f"mutant-{pick}"), *entries[i:]]


def _recreations(entries: Sequence[Entry]) -> list[tuple[int, int]]:
    """(old incarnation's DELETED, new incarnation's ADDED) for every recreated pod name."""
    found = []
    gone: dict[str, int] = {}
    for i, e in enumerate(entries):
        if e.kind != POD:
            continue
        if e.type == "DELETED":
            gone[e.name] = i
        elif e.type == "ADDED" and e.name in gone:
            found.append((gone.pop(e.name), i))
    return found


def two_incarnations(r: Run, pick: int) -> list[Entry] | None:
    """stable_identity: the new pod of an ordinal is created before the old one is gone."""
    entries = list(r.timeline.entries)
    found = _recreations(entries)
    if not found:
        return None
    gone, added = found[pick % len(found)]
    swap(entries, gone, added)
    return entries


def wrong_hostname(r: Run, pick: int) -> list[Entry] | None:
    """stable_identity: a pod is created with another pod's hostname."""
    entries = list(r.timeline.entries)
    found = [i for i, e in enumerate(entries) if e.kind == POD and e.type == "ADDED"]
    i = found[pick % len(found)]
    entries[i] = with_data(entries[i], hostname=f"{NAME}-99")
    return entries


def never_came_back(r: Run, pick: int) -> list[Entry] | None:
    """stable_identity: a deleted pod that is still wanted is not recreated."""
    entries = list(r.timeline.entries)
    final = ordinals(r.timeline.statefulset(NAME))
    found = [(g, a) for g, a in _recreations(entries) if ordinal_of(entries[a].name, NAME) in final]
    if not found:
        return None
    _, added = found[pick % len(found)]
    name = entries[added].name
    return [e for i, e in enumerate(entries) if not (e.kind == POD and e.name == name and i >= added)]


def claim_recreated(r: Run, pick: int) -> list[Entry] | None:
    """stable_storage: a claim is deleted and created again (new UID, new volume)."""
    entries = list(r.timeline.entries)
    picked = _live_claim(entries, pick)
    if picked is None:
        return None
    last, top, t = picked
    return [
        *entries,
        dataclasses.replace(with_data(last, deleting=True), type="MODIFIED", rv=str(top + 10), t=t),
        dataclasses.replace(with_data(last, deleting=True), type="DELETED", rv=str(top + 20), t=t),
        dataclasses.replace(
            with_data(last, phase="Pending", volume="", deleting=False),
            type="ADDED",
            uid="mutant",
            rv=str(top + 30),
            t=t,
        ),
        dataclasses.replace(
            with_data(last, phase="Bound", volume="pvc-mutant", deleting=False), uid="mutant", rv=str(top + 40), t=t
        ),
    ]


def claim_not_given_to_pod(r: Run, pick: int) -> list[Entry] | None:
    """claim_retention: whenScaled: Delete, but the claim of a pod scaled away never names it as owner."""
    entries = list(r.timeline.entries)
    owned = sorted({str(o) for e in entries if e.kind == PVC for o in e.get("owners", []) if str(o).startswith("Pod/")})
    if not owned:
        return None
    owner = owned[pick % len(owned)]
    return [
        with_data(e, owners=[o for o in e.get("owners", []) if o != owner]) if e.kind == PVC else e for e in entries
    ]


def claim_deleted_while_retained(r: Run, pick: int) -> list[Entry] | None:
    """claim_retention: whenScaled: Retain, and a claim is deleted at the end of the run."""
    entries = list(r.timeline.entries)
    picked = _live_claim(entries, pick)
    if picked is None:
        return None
    last, top, t = picked
    return [*entries, dataclasses.replace(with_data(last, deleting=True), type="DELETED", rv=str(top + 10), t=t)]


def _live_claim(entries: list[Entry], pick: int) -> tuple[Entry, int, float] | None:
    """A claim's latest entry (chosen by `pick`), the highest resourceVersion and a time after the run."""
    claims = {e.name: e for e in entries if e.kind == PVC and e.type != "DELETED"}
    if not claims:
        return None
    last = sorted(claims.values(), key=lambda e: e.name)[pick % len(claims)]
    return last, max(int(e.rv) for e in entries if e.rv.isdigit()), entries[-1].t + 0.1


def old_claim_reused(r: Run, pick: int) -> list[Entry] | None:
    """claim_retention: whenScaled: Delete, yet a claim of before a scale-down is never deleted and the
    ordinal's next pod mounts it (every later object of that name rewritten to the first)."""
    entries = list(r.timeline.entries)
    uids: dict[str, list[str]] = {}
    for e in entries:
        if e.kind == PVC and e.uid not in uids.setdefault(e.name, []):
            uids[e.name].append(e.uid)
    names = sorted(n for n, u in uids.items() if len(u) > 1)
    if not names:
        return None
    name = names[pick % len(names)]
    first = uids[name][0]
    kept = []
    for e in entries:
        if e.kind == PVC and e.name == name:
            if e.uid == first and (e.type == "DELETED" or e.get("deleting")):
                continue
            if e.uid != first:
                e = dataclasses.replace(with_data(e, owners=[]), uid=first, type="MODIFIED")
        kept.append(e)
    return kept


def wrong_claim(r: Run, pick: int) -> list[Entry] | None:
    """stable_storage: a pod is created mounting another ordinal's claim."""
    if not r.workload.claims:
        return None
    entries = list(r.timeline.entries)
    found = [i for i, e in enumerate(entries) if e.kind == POD and e.type == "ADDED"]
    i = found[pick % len(found)]
    entries[i] = with_data(entries[i], claims={"www": f"www-{NAME}-99"})
    return entries


def stale_dns_answer(r: Run, pick: int) -> list[Entry] | None:
    """pod_dns: after the last change, a pod's name answers its previous IP (recorded as ok)."""
    entries = list(r.timeline.entries)
    ips: dict[str, list[str]] = {}
    for e in entries:
        if e.kind == POD and e.get("ip") and e.get("ip") not in ips.setdefault(e.name, []):
            ips[e.name].append(str(e.get("ip")))
    changed = sorted(name for name, seen in ips.items() if len(seen) > 1)
    if not changed:
        return None
    name = changed[pick % len(changed)]
    old = ips[name][-2]
    qname = f"{name}.{ZONE}"
    t = entries[-1].t + 0.01
    answer = dict(
        qname=qname, answers=[old], expected=[old], what=f"{name}'s current IP", pod=name, ok=True, waited=0.0
    )
    return [*entries, Entry(0, t, DNS, "answer", qname, data=answer)]


def failed_dns_answer(r: Run, pick: int) -> list[Entry] | None:
    """pod_dns: an answer that never matched (recorded as not ok)."""
    entries = list(r.timeline.entries)
    answers = [i for i, e in enumerate(entries) if e.kind == DNS]
    i = answers[pick % len(answers)]
    entries[i] = with_data(entries[i], answers=["10.9.9.9"], ok=False)
    return entries


def gap(kind: str) -> Mutation:
    def lose(r: Run, pick: int) -> list[Entry] | None:
        """Events of `kind` were lost: a Gap, and the next few of them missing."""
        entries = list(r.timeline.entries)
        at = pick % len(entries)
        lost = (pick // len(entries)) % 4
        kept, dropped = [], 0
        for i, e in enumerate(entries):
            if i >= at and e.kind == kind and dropped < lost:
                dropped += 1
                continue
            kept.append(e)
        t = entries[at].t
        marker = Entry(
            0, t, GAP, "gap", kind, data={"reason": f"watch expired at resourceVersion {entries[at].rv} (410 Gone)"}
        )
        return [*kept[:at], marker, *kept[at:]]

    return lose


@dataclasses.dataclass(frozen=True)
class Case:
    """A mutation, the guarantee it breaks, and the scenarios where it applies."""

    guarantee: str
    mutate: Mutation
    scenarios: Any
    defect: str | None = None  # the KNOWN defect that lets it pass, if any


ORDERED = {"policy": "OrderedReady"}
MUTATIONS: dict[str, Case] = {
    "create_before_lower_ready": Case(
        "ordered_creation", create_before_lower_ready, scenarios(**ORDERED, replicas=(2, 4))
    ),
    "drop_ready": Case("ordered_creation", drop_ready, scenarios(**ORDERED, replicas=(2, 4))),
    "create_before_lower_available": Case(
        "ordered_creation",
        create_before_lower_available,
        scenarios(**ORDERED, replicas=(2, 4), min_ready_seconds=(1, 2)),
        "min_ready_seconds",
    ),
    "terminate_before_higher_gone": Case(
        "ordered_termination",
        terminate_before_higher_gone,
        scenarios(**ORDERED, replicas=(3, 4), allowed=("delete_pod", "update_image"), required=("scale_down",)),
    ),
    "scale_down_while_kept_unready": Case(
        "ordered_termination",
        scale_down_while_kept_unready,
        scenarios(**ORDERED, replicas=(2, 4), allowed=("delete_pod", "update_image"), required=("scale_down",)),
        "kept_pod_unready",
    ),
    "update_before_higher_ready": Case(
        "ordered_rolling_update",
        update_before_higher_ready,
        scenarios(strategy="RollingUpdate", replicas=(2, 4), max_unavailable=(1, 1), allowed=(), required=("update",)),
    ),
    "update_delete_before_higher_ready": Case(
        "ordered_rolling_update",
        update_delete_before_higher_ready,
        scenarios(strategy="RollingUpdate", replicas=(2, 4), max_unavailable=(1, 1), allowed=(), required=("update",)),
        "update_delete_order",
    ),
    "update_below_partition_start0": Case(
        "ordered_rolling_update",
        functools.partial(update_below_partition, start_above_zero=False),
        scenarios(
            strategy="RollingUpdate", replicas=(2, 4), start=(0, 0), partition=(1, 3), allowed=(), required=("update",)
        ),
    ),
    "update_below_partition": Case(
        "ordered_rolling_update",
        update_below_partition,
        scenarios(
            strategy="RollingUpdate", replicas=(2, 4), start=(1, 3), partition=(1, 3), allowed=(), required=("update",)
        ),
        "partition_absolute",
    ),
    "ondelete_controller_delete": Case(
        "ordered_rolling_update",
        ondelete_controller_delete,
        scenarios(strategy="OnDelete", allowed=("delete_pod",), required=("update",)),
    ),
    "ondelete_other_pod_during_test_delete": Case(
        "ordered_rolling_update",
        ondelete_other_pod_during_test_delete,
        scenarios(strategy="OnDelete", replicas=(2, 4), allowed=(), required=("update", "delete_pod"), window=0.0),
        "ondelete_by_step",
    ),
    "two_incarnations": Case(
        "stable_identity", two_incarnations, scenarios(allowed=("scale",), required=("delete_pod",)), "two_incarnations"
    ),
    "wrong_hostname": Case("stable_identity", wrong_hostname, scenarios()),
    "never_came_back": Case("stable_identity", never_came_back, scenarios(required=("delete_pod",))),
    "claim_recreated": Case("stable_storage", claim_recreated, scenarios(when_scaled="Retain")),
    "wrong_claim": Case("stable_storage", wrong_claim, scenarios(when_scaled="Retain")),
    "claim_not_given_to_pod": Case(
        "claim_retention", claim_not_given_to_pod, scenarios(when_scaled="Delete", required=("scale_down",))
    ),
    "claim_deleted_while_retained": Case(
        "claim_retention", claim_deleted_while_retained, scenarios(when_scaled="Retain")
    ),
    "old_claim_reused": Case(
        "claim_retention", old_claim_reused, scenarios(when_scaled="Delete", required=("scale_down", "scale_up"))
    ),
    "stale_dns_answer": Case(
        "pod_dns", stale_dns_answer, scenarios(allowed=("scale",), required=("delete_pod",)), "stale_dns"
    ),
    "failed_dns_answer": Case("pod_dns", failed_dns_answer, scenarios()),
}
READS = {
    "ordered_creation": (POD, STS),
    "ordered_termination": (POD, STS),
    "ordered_rolling_update": (POD, STS),
    "stable_identity": (POD, STS),
    "stable_storage": (POD, PVC, STS),
    "pod_dns": (POD, SERVICE),  # EndpointSlices are only shown as evidence
    "claim_retention": (POD, PVC, STS),
}
for _g, _kinds in READS.items():
    for _kind in _kinds:
        _defect = "gap_pod_dns" if _g == "pod_dns" else None
        if _kind == STS and _g != "ordered_rolling_update":
            _defect = "gap_statefulset"
        MUTATIONS[f"gap_{_kind}_{_g}"] = Case(_g, gap(_kind), scenarios(policy="OrderedReady"), _defect)

# Minimal counterexamples of the known false passes (found by shrinking), run first.
EXAMPLES: dict[str, tuple[Scenario, int]] = {
    "create_before_lower_available": (sc(replicas=2, min_ready_seconds=1), 0),
    "scale_down_while_kept_unready": (sc([A("scale", 1)], replicas=2), 0),
    "update_delete_before_higher_ready": (sc([A("update_image", 1)], replicas=2), 0),
    "update_below_partition": (sc([A("update_image", 1)], replicas=2, start=1, partition=1), 0),
    "ondelete_other_pod_during_test_delete": (
        sc([A("update_image", 1), A("delete_pod", 0)], replicas=2, strategy="OnDelete"),
        0,
    ),
    "two_incarnations": (sc([A("delete_pod", 1), A("scale", 1)], replicas=2), 0),
    "stale_dns_answer": (sc([A("delete_pod", 0)], replicas=1), 0),
    "gap_StatefulSet_ordered_creation": (sc(replicas=1), 0),
    "gap_StatefulSet_ordered_termination": (sc([A("scale", 1)], replicas=2), 0),
    "gap_StatefulSet_stable_identity": (sc(replicas=1), 0),
    "gap_StatefulSet_stable_storage": (sc(replicas=1), 0),
    "gap_Pod_pod_dns": (sc(replicas=1), 0),
    "gap_Service_pod_dns": (sc(replicas=1), 0),
}


@functools.lru_cache(maxsize=1024)
def legal_outcome(s: Scenario, guarantee: str) -> str:
    return judge(guarantee, s.run().timeline)[0]


def mutated_outcome(name: str, s: Scenario, pick: int) -> tuple[str, Verdict] | None:
    """The verdict on the mutated run; None when the mutation does not apply or the run did not pass."""
    case = MUTATIONS[name]
    r = s.run()
    if legal_outcome(s, case.guarantee) != "passed":
        return None  # only a run that passed can show a mutation passing
    entries = case.mutate(r, pick)
    if entries is None:
        return None
    result, verdict = judge(case.guarantee, renumbered(entries))
    COUNTS["mutations"] += 1
    COUNTS["mutations killed"] += result != "passed"
    return result, verdict


def _mutation_test(name: str) -> Callable[..., None]:
    case = MUTATIONS[name]
    gaps = name.startswith("gap_")

    @_settings(40 if gaps else 120, shrink(case.defect))
    @given(s=case.scenarios, pick=st.integers(0, 10_000))
    def prop(s: Scenario, pick: int) -> None:
        found = mutated_outcome(name, s, pick)
        if found is None:
            return
        result, verdict = found
        target(float(result == "passed"))
        assert result != "passed", f"mutation {name} passed {case.guarantee}:\n{verdict.explain()}\n{s}, pick={pick}"

    if name in EXAMPLES:
        s, pick = EXAMPLES[name]
        prop = example(s=s, pick=pick)(prop)
    return prop


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=known(c.defect), id=n) if c.defect in KNOWN else pytest.param(n, id=n)
        for n, c in MUTATIONS.items()
    ],
)
def test_mutation_never_passes(name: str) -> None:
    _mutation_test(name)()


# -- census: counts, kill rate, summary ----------------------------------------------------------

CENSUS: Counter[str] = Counter()
KILLS: dict[str, Counter[str]] = {}


# Weighted toward the steps that exercise the ordering guarantees (updates, scaling).
CENSUS_STEPS = (*ACTIONS, "make_ready", "update_image", "update_image", "scale", "scale")


@settings(max_examples=300, deadline=None, derandomize=True, database=None, phases=(Phase.explicit, Phase.generate))
@given(s=scenarios(allowed=CENSUS_STEPS), pick=st.integers(0, 10_000))
def test_census(s: Scenario, pick: int) -> None:
    """Every guarantee on a legal run, and every applicable mutation of it: tallies, no assertion."""
    r = s.run()
    CENSUS["cases"] += 1
    passed = set()
    for g in GUARANTEES:
        result = legal_outcome(s, g)
        if g in ("ordered_creation", "ordered_termination") and r.workload.policy == "Parallel":
            result = "failed (Parallel, documented)"
        elif g == "stable_storage" and r.claims_deleted:
            result = "failed (whenScaled: Delete acted, documented)" if result == "failed" else result
        elif result == "failed":
            result = f"failed (known: {known_cause(r, g, judge(g, r.timeline)[1])})"
        elif result == "passed":
            passed.add(g)
        CENSUS[f"legal {g}: {result}"] += 1
        if not exercised(r, g):
            CENSUS[f"unexercised {g}: {result}"] += 1
    for name, case in MUTATIONS.items():
        if case.guarantee not in passed:
            continue  # only a run that passed can show a mutation passing
        entries = case.mutate(r, pick)
        if entries is None:
            continue
        result, _ = judge(case.guarantee, renumbered(entries))
        CENSUS["mutations"] += 1
        CENSUS["killed"] += result != "passed"
        KILLS.setdefault(name, Counter())[result] += 1


def known_cause(r: Run, guarantee: str, verdict: Verdict) -> str:
    """Which KNOWN false fail explains a legal run's failure ('unexplained' if none does)."""
    text = " ".join([verdict.summary, *verdict.diagnosis])
    test_deleted = any(d.actor == "test" for d in r.deeds)
    if guarantee == "ordered_termination" and any(d.reason == "start-moved" for d in r.deeds):
        return "start_moved"
    if guarantee == "stable_storage" and "whenScaled: Delete" in text:
        return "retention_policy_alone"
    if guarantee == "ordered_rolling_update":
        if "under OnDelete" in text and test_deleted:
            return "ondelete_deletes_step"
        if r.workload.max_unavailable > 1:
            return "max_unavailable"
        if test_deleted:
            return "test_delete_in_rollout"
        if any(a.name == "scale" for a in r.actions):
            return "scale_up_in_rollout"
    return "unexplained"


def test_zz_summary(capsys: pytest.CaptureFixture[str]) -> None:
    """Print what the census and the properties ran; fail if the census ran too little."""
    if not CENSUS["cases"]:
        pytest.skip("the census did not run")
    lines = [
        "",
        "model-based checks: summary",
        f"  census: {CENSUS['cases']} generated runs, {CENSUS['mutations']} mutations, "
        f"kill rate {CENSUS['killed'] / max(1, CENSUS['mutations']):.1%} (mutations not passed / all)",
        f"  all tests: {COUNTS['model runs']} model runs, {COUNTS['mutations']} mutations judged, "
        f"{COUNTS['mutations killed']} not passed",
        "  legal runs (census):",
    ]
    lines += [f"    {k[6:]}: {v}" for k, v in sorted(CENSUS.items()) if k.startswith("legal ")]
    lines += ["  runs that never exercised a guarantee (census):"]
    lines += [f"    {k[12:]}: {v}" for k, v in sorted(CENSUS.items()) if k.startswith("unexercised ")]
    lines += ["  mutations (census): not passed / applied"]
    for name, tally in sorted(KILLS.items()):
        total = sum(tally.values())
        lines.append(f"    {name}: {total - tally['passed']}/{total}" + (" (survivors)" if tally["passed"] else ""))
    lines += ["  known defects (xfail):"] + [f"    {k}: {v}" for k, v in KNOWN.items()]
    with capsys.disabled():
        print("\n".join(lines))
    assert CENSUS["cases"] >= 250
    assert CENSUS["mutations"] >= 1500
