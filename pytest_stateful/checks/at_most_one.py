"""at_most_one: never two incarnations of one identity alive at once.

A StatefulSet creates the replacement for `web-k` as soon as the old pod object is gone
(stateful_set_control.go: a missing ordinal is created; nothing waits for its containers). Whether
the old containers have stopped is known only to their node: the kubelet deletes the pod object once
they have (a graceful deletion ends with the kubelet's own delete). When the node is unreachable
nobody can confirm it, so the pod stays Terminating (kubernetes/kubernetes#74689) until:
- its node comes back and confirms, or
- someone declares the node shut down: the `node.kubernetes.io/out-of-service` taint, on which the pod
  GC deletes its terminating pods (pkg/controller/podgc, gcTerminating; non-graceful node shutdown,
  GA in 1.28), or
- the Node object is deleted (the pod GC deletes its pods as orphans), or
- someone force-deletes it (grace period 0): the name is free at once, and the documentation warns
  that this may run two pods with one identity ("Force Delete StatefulSet Pods").

API level: a pod deleted while its node was not Ready (or failed by the test and not yet back) and
neither out of service nor deleted left an unconfirmed incarnation, alive as far as anyone knows
until the node is Ready again; a replacement of the same name created meanwhile is a violation.
Node readiness and pod deletions arrive on separate watches, so a node seen Ready within
READY_SLACK seconds of a deletion counts as confirming it.

Node level (the local real node): the container runtime of a failed node is asked which containers of
the pods it ran still run; one of a deleted incarnation running while its replacement is Running is
a violation with that evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_stateful.checks.verdict import Subject, Verdict, Violation, incomplete, judged, not_exercised
from pytest_stateful.timeline import NODE, POD, RUNTIME, STEP, Entry, PodLife, Timeline

GUARANTEE = "at_most_one"
KINDS = (POD, NODE, STEP, RUNTIME)
# Seconds between a node being seen Ready and a deletion that still counts as confirmed by it.
READY_SLACK = 2.0
DELETE_CALLS = ("force_delete_pod", "delete_pod", "delete_pods")


@dataclass(frozen=True)
class Unconfirmed:
    """An incarnation deleted without its node's confirmation, alive as far as anyone knows until `until`."""

    life: PodLife
    deleted: Entry
    node: str
    node_state: str
    until: Entry | None  # the node entry that ended the doubt (Ready again, out of service, deleted)


def check(timeline: Timeline, subject: Subject) -> Verdict:
    gap = incomplete(GUARANTEE, timeline, (POD, NODE))
    if gap:
        return gap
    name = subject.statefulset
    lives = [p for p in timeline.pod_lives(name) if p.ordinal is not None]
    nodes = _NodeHistory(timeline)
    failed_steps = [e for e in timeline.of(STEP) if e.type == "begin" and e.get("action") == "fail_node"]
    # Who removed a pod object: only the test's delete calls say; fail_node and out_of_service also
    # note the pods they doom, but the pod GC or someone else removes those.
    actions = {
        u: str(e.get("action"))
        for e in timeline.of(STEP)
        if e.type == "deletes" and e.get("action") in DELETE_CALLS
        for u in e.get("uids", [])
    }

    doubts: list[Unconfirmed] = []
    on_failed = 0
    for life in lives:
        if life.gone_at is None or life.last is None or not life.node:
            continue
        deleted = life.last
        state = nodes.state_at(life.node, deleted)
        if state == "confirmed":
            continue
        on_failed += 1
        if state in ("out of service", "deleted"):
            continue
        doubts.append(Unconfirmed(life, deleted, life.node, state, nodes.back_after(life.node, deleted)))

    if not failed_steps and not on_failed:
        return not_exercised(
            GUARANTEE,
            f"no pod of {name} was on a failed node: add fail_node, then out_of_service or force_delete_pod",
        )

    violations: list[Violation] = []
    for doubt in doubts:
        replacement = _replacement(lives, doubt)
        if replacement is None:
            continue
        how = _how(actions.get(doubt.life.uid, ""))
        until = (
            f"until node {doubt.node} came back at {doubt.until.t:.1f} s" if doubt.until else "for the rest of the run"
        )
        violations.append(
            Violation(
                f"{doubt.life.name} was replaced at {replacement.created.t:.1f} s (uid {replacement.uid[:8]}) "
                f"while its previous incarnation (uid {doubt.life.uid[:8]}) had been {how} at "
                f"{doubt.deleted.t:.1f} s on node {doubt.node}, which was {doubt.node_state} and not out of "
                f"service: nobody confirmed that its containers stopped, so two incarnations of {doubt.life.name} "
                f"could run at once ({until})",
                replacement.created,
            )
        )
    node_violations, observed = _node_level(timeline, lives)
    timings = _recovery(timeline, lives, failed_steps)
    diagnosis = []
    if violations or node_violations:
        diagnosis = [
            "a pod on an unreachable node must not be force-deleted: wait for the node to come back, or, when it "
            "is really shut down, taint it node.kubernetes.io/out-of-service=nodeshutdown:NoExecute (the pod GC "
            "then deletes its pods and their volumes are detached) or delete the Node object"
        ]
    verdict = judged(
        GUARANTEE,
        timeline,
        [*violations, *node_violations],
        f"no two incarnations of a pod of {name} were alive at once{_summary(timings)}",
        diagnosis if violations or node_violations else (),
        timings=timings,
        kinds=KINDS,
    )
    if observed:
        verdict.fidelity = "node"
        verdict.node = "failed" if node_violations else "passed"
        verdict.node_source = "container runtime of the failed node (" + ", ".join(sorted(observed)) + ")"
    else:
        verdict.node_source = "not available: no failed node whose container runtime can be asked (the local real node)"
    return verdict


class _NodeHistory:
    """Each node's recorded states, and the nodes the test failed (fail_node) until restored."""

    def __init__(self, timeline: Timeline) -> None:
        self.entries: dict[str, list[Entry]] = {}
        for e in timeline.of(NODE):
            self.entries.setdefault(e.name, []).append(e)
        # node -> [(failed at seq, restored at seq or None)]
        self.failed: dict[str, list[tuple[int, int | None]]] = {}
        for e in timeline.of(STEP):
            node = str(e.get("node") or "")
            if e.type == "fails" and node:
                self.failed.setdefault(node, []).append((e.seq, None))
            elif e.type == "restores" and node and self.failed.get(node):
                start, _ = self.failed[node][-1]
                self.failed[node][-1] = (start, e.seq)

    def _at(self, node: str, seq: int) -> Entry | None:
        found = None
        for e in self.entries.get(node, []):
            if e.seq > seq:
                break
            found = e
        return found

    def _failed_by_test(self, node: str, seq: int) -> bool:
        return any(a < seq and (b is None or seq < b) for a, b in self.failed.get(node, []))

    def state_at(self, node: str, deleted: Entry) -> str:
        """ "confirmed", "out of service", "deleted", or what the node was when the pod went."""
        at = self._at(node, deleted.seq)
        if at is None:
            return "confirmed" if node not in self.entries else "not yet recorded"
        if at.type == "DELETED":
            return "deleted"
        if at.node.out_of_service:
            return "out of service"
        by_test = self._failed_by_test(node, deleted.seq)
        if not by_test and (at.node.ready == "True" or self._ready_near(node, deleted)):
            return "confirmed"
        if at.node.ready == "True":
            return "failed by the test (its heartbeats had stopped; not yet marked Unknown)"
        return f"unreachable (Ready {at.node.ready or 'unknown'})"

    def _ready_near(self, node: str, deleted: Entry) -> bool:
        return any(
            e.type != "DELETED" and e.node.ready == "True" and abs(e.t - deleted.t) <= READY_SLACK
            for e in self.entries.get(node, [])
        )

    def back_after(self, node: str, deleted: Entry) -> Entry | None:
        """The first state after the deletion that ends the doubt: Ready (and not failed by the test),
        out of service, or the Node gone."""
        for e in self.entries.get(node, []):
            if e.seq <= deleted.seq:
                continue
            if e.type == "DELETED" or e.node.out_of_service:
                return e
            if e.node.ready == "True" and not self._failed_by_test(node, e.seq):
                return e
        return None


def _replacement(lives: list[PodLife], doubt: Unconfirmed) -> PodLife | None:
    for other in lives:
        if other.name != doubt.life.name or other.uid == doubt.life.uid:
            continue
        if other.created.seq < doubt.deleted.seq:
            continue
        if doubt.until is None or other.created.seq < doubt.until.seq:
            return other
    return None


def _how(action: str) -> str:
    if action == "force_delete_pod":
        return "force-deleted by the test (force_delete_pod)"
    if action:
        return f"deleted by the test ({action}) and then removed without its node"
    return "deleted without its node's confirmation (grace period 0, by a person, script or operator)"


def _node_level(timeline: Timeline, lives: list[PodLife]) -> tuple[list[Violation], set[str]]:
    """Runtime observations of deleted incarnations held against their replacements' lifetimes."""
    observed: set[str] = set()
    violations: list[Violation] = []
    seen: set[str] = set()
    by_uid = {life.uid: life for life in lives}
    for e in timeline.of(RUNTIME):
        observed.add(str(e.get("node")))
        running = list(e.get("running") or [])
        old = by_uid.get(e.uid)
        if not running or old is None or old.gone_at is None or old.last is None or old.last.seq > e.seq:
            continue
        for other in lives:
            if other.name != old.name or other.uid == old.uid or other.created.seq > e.seq:
                continue
            if other.gone_at is not None and other.last is not None and other.last.seq < e.seq:
                continue
            state = _state_at(timeline, other, e.seq)
            if state is None or state.pod.phase != "Running" or e.uid in seen:
                continue
            seen.add(e.uid)
            violations.append(
                Violation(
                    f"node level: the container runtime of node {e.get('node')} still ran {', '.join(running)} of "
                    f"{old.name}'s deleted incarnation (uid {old.uid[:8]}) at {e.t:.1f} s, while its replacement "
                    f"(uid {other.uid[:8]}) was Running on node {state.pod.node or '?'}",
                    e,
                )
            )
    return violations, observed


def _state_at(timeline: Timeline, life: PodLife, seq: int) -> Entry | None:
    found = None
    for e in timeline.of(POD):
        if e.seq > seq:
            break
        if e.uid == life.uid:
            found = e
    return found


def _recovery(timeline: Timeline, lives: list[PodLife], failed_steps: list[Entry]) -> dict[str, float | bool]:
    """From fail_node to the pod replaced, from out_of_service to the replacement Ready, and whether
    the replacement mounts the claims its predecessor had."""
    timings: dict[str, float | bool] = {}
    steps = timeline.of(STEP)
    for fail in failed_steps[:1]:
        node = next((str(e.get("node")) for e in steps if e.type == "fails" and e.seq > fail.seq), "")
        old = [p for p in lives if p.node == node and p.created.seq < fail.seq and p.gone_at is not None]
        if not old:
            continue
        gone = old[0]
        new = next((p for p in lives if p.name == gone.name and p.created.seq > fail.seq), None)
        if new is None:
            continue
        timings["replaced_after_fail_s"] = round(new.created.t - fail.t, 3)
        oos = next(
            (e for e in steps if e.type == "begin" and e.get("action") == "out_of_service" and e.seq > fail.seq), None
        )
        if oos is not None and new.ready_at is not None:
            timings["ready_after_out_of_service_s"] = round(new.ready_at - oos.t, 3)
        before = dict(gone.last.pod.claims) if gone.last else {}
        after = dict(new.last.pod.claims) if new.last else {}
        if before:
            timings["claims_reattached"] = before == after
    return timings


def _summary(timings: dict[str, float | bool]) -> str:
    parts = []
    if "replaced_after_fail_s" in timings:
        parts.append(f"replaced {timings['replaced_after_fail_s']:.1f} s after fail_node")
    if "ready_after_out_of_service_s" in timings:
        parts.append(f"Ready {timings['ready_after_out_of_service_s']:.1f} s after out_of_service")
    if "claims_reattached" in timings:
        parts.append("its claims reattached" if timings["claims_reattached"] else "NOT on its old claims")
    return f" ({'; '.join(parts)})" if parts else ""
