"""at_most_one: never two incarnations of one identity alive at once.

A StatefulSet creates the replacement for `web-k` as soon as the old pod object is gone
(stateful_set_control.go: a missing ordinal is created; nothing waits for its containers). Whether
the old containers have stopped is known only to their node: the kubelet deletes the pod object once
they have (a graceful deletion ends with the kubelet's own delete), or reports the pod in a terminal
phase. When the node is unreachable nobody can confirm it, so the pod stays Terminating
(kubernetes/kubernetes#74689) until:
- its node comes back and confirms, or
- someone declares the node shut down: the `node.kubernetes.io/out-of-service` taint, on which the pod
  GC deletes its terminating pods (pkg/controller/podgc, gcTerminating; non-graceful node shutdown,
  GA in 1.28), or
- the Node object is deleted (the pod GC deletes its pods as orphans), or
- someone force-deletes it (grace period 0): the name is free at once, and the documentation warns
  that this may run two pods with one identity ("Force Delete StatefulSet Pods").

API level: an incarnation is unconfirmed when it went while its node was unreachable (Ready Unknown,
no heartbeat) or failed by the test (fail_node, not yet restored), and the node was neither out of
service nor deleted, and the pod had not reached a terminal phase; or when the test force-deleted it
(a grace-0 delete never waits for the kubelet, whatever the node's state). It stays unconfirmed until
its node is Ready again (not for a test force delete: only out of service or deletion end that), and a
replacement of the same name created meanwhile is a violation. Node and pod facts come from separate
watches: they are ordered by resourceVersion (one etcd revision counter for all kinds), and by receive
order only where a resourceVersion is missing.

Node level (the local real node): the container runtime of a failed node is asked which containers of
the pods it ran still run. A deleted incarnation seen running while its replacement was Running is a
violation with that evidence; node level passes only when every deleted incarnation was seen stopped
before its replacement ran.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_stateful.checks.verdict import NodeStatus, Subject, Verdict, Violation, incomplete, judged, not_exercised
from pytest_stateful.timeline import NODE, POD, PVC, RUNTIME, STEP, Entry, PodLife, Timeline

GUARANTEE = "at_most_one"
KINDS = (POD, NODE, STEP, RUNTIME)
TERMINAL = ("Succeeded", "Failed")


def before(a: Entry, b: Entry) -> bool:
    """Did `a` happen before `b`? By resourceVersion when both have one, else by receive order."""
    if a.rv.isdigit() and b.rv.isdigit():
        return int(a.rv) < int(b.rv)
    return a.seq < b.seq


@dataclass(frozen=True)
class Unconfirmed:
    """An incarnation deleted without its node's confirmation, alive as far as anyone knows until `until`."""

    life: PodLife
    deleted: Entry
    node: str
    why: str  # what the node was, or that the test force-deleted it
    forced: bool
    until: Entry | None  # the node entry that ended the doubt (Ready again, out of service, deleted)


def check(timeline: Timeline, subject: Subject) -> Verdict:
    gap = incomplete(GUARANTEE, timeline, (POD, NODE))
    if gap:
        return gap
    name = subject.statefulset
    lives = [p for p in timeline.pod_lives(name) if p.ordinal is not None and _owned(p, name)]
    nodes = _NodeHistory(timeline)
    steps = timeline.of(STEP)
    forced = {
        u for e in steps if e.type == "deletes" and e.get("action") == "force_delete_pod" for u in e.get("uids", [])
    }
    doomed = {u for e in steps if e.type == "deletes" and e.get("action") == "fail_node" for u in e.get("uids", [])}

    doubts: list[Unconfirmed] = []
    exercised = any(p.uid in doomed or p.uid in forced for p in lives)
    for life in lives:
        if life.gone_at is None or life.last is None or not life.node:
            continue
        deleted = life.last
        state = nodes.state_at(life.node, deleted)
        if state != "confirmed":
            exercised = True
        if state in ("out of service", "deleted"):
            continue
        if life.uid in forced:
            why = f"force-deleted by the test (force_delete_pod) on node {life.node}, which was {_shown(state)}"
            # A kubelet that is back reconciles (kills the containers of a pod the API no longer has);
            # one that never went away gives no sign that it did.
            until = (
                nodes.declared_after(life.node, deleted)
                if state == "confirmed"
                else nodes.back_after(life.node, deleted)
            )
            doubts.append(Unconfirmed(life, deleted, life.node, why, True, until))
        elif state != "confirmed" and not _stopped_by_kubelet(deleted):
            why = (
                "deleted without its node's confirmation (grace period 0, by a person, script or operator) "
                f"on node {life.node}, which was {state}"
            )
            doubts.append(Unconfirmed(life, deleted, life.node, why, False, nodes.back_after(life.node, deleted)))

    if not exercised:
        return not_exercised(
            GUARANTEE,
            f"no pod of {name} was on a failed node or force-deleted: add fail_node, then out_of_service or "
            "force_delete_pod",
        )

    violations: list[Violation] = []
    for doubt in doubts:
        replacement = _replacement(lives, doubt)
        if replacement is None:
            continue
        violations.append(
            Violation(
                f"{doubt.life.name} was replaced at {replacement.created.t:.1f} s (uid {replacement.uid[:8]}) "
                f"while its previous incarnation (uid {doubt.life.uid[:8]}) had been {doubt.why} at "
                f"{doubt.deleted.t:.1f} s, and not out of service: nobody confirmed that its containers stopped, "
                f"so two incarnations of {doubt.life.name} could run at once ({_until(doubt)})",
                replacement.created,
            )
        )
    node_violations, node_state, source = _node_level(timeline, lives)
    timings = _recovery(timeline, lives, nodes)
    diagnosis: list[str] = []
    if violations or node_violations:
        first = (
            "a pod must not be force-deleted"
            if any(d.forced for d in doubts)
            else "a pod on an unreachable node must not be deleted without its node"
        )
        diagnosis = [
            f"{first}: wait for the node to come back, or, when it is really shut down, taint it "
            "node.kubernetes.io/out-of-service=nodeshutdown:NoExecute (the pod GC then deletes its pods and their "
            "volumes are detached) or delete the Node object"
        ]
    verdict = judged(
        GUARANTEE,
        timeline,
        [*violations, *node_violations],
        f"no two incarnations of a pod of {name} were alive at once{_summary(timings)}",
        diagnosis,
        timings=timings,
        kinds=KINDS,
    )
    verdict.node_source = source
    if node_state is not None:
        verdict.fidelity = "node"
        verdict.node = node_state
    return verdict


def _stopped_by_kubelet(pod: Entry) -> bool:
    """A terminal phase the kubelet reported (DisruptionTarget TerminationByKubelet): its containers
    stopped. The pod GC also marks a pod Failed before it deletes it, after the taint manager's
    DeletionByTaintManager or with DeletionByPodGC: that is no confirmation."""
    return pod.pod.phase in TERMINAL and pod.pod.disruption == "TerminationByKubelet"


def _owned(life: PodLife, name: str) -> bool:
    owner = life.last.pod.owner if life.last is not None else ""
    return owner in ("", name)


def _shown(state: str) -> str:
    return "Ready" if state == "confirmed" else state


def _until(doubt: Unconfirmed) -> str:
    end = doubt.until
    if end is None:
        return "for the rest of the record"
    if end.type == "DELETED":
        return f"until node {doubt.node} was deleted at {end.t:.1f} s"
    if end.node.out_of_service:
        return f"until node {doubt.node} was declared out of service at {end.t:.1f} s"
    return f"until node {doubt.node} was Ready again at {end.t:.1f} s"


class _NodeHistory:
    """Each node's recorded states, and when the test failed and restored it (fail_node)."""

    def __init__(self, timeline: Timeline) -> None:
        self.entries: dict[str, list[Entry]] = {}
        for e in timeline.of(NODE):
            self.entries.setdefault(e.name, []).append(e)
        for history in self.entries.values():
            history.sort(key=lambda e: (int(e.rv), e.seq) if e.rv.isdigit() else (0, e.seq))
        # node -> [(failed at, restored at or None)], the test's own Step entries
        self.failed: dict[str, list[tuple[Entry, Entry | None]]] = {}
        for e in timeline.of(STEP):
            node = str(e.get("node") or "")
            if not node:
                continue
            spans = self.failed.setdefault(node, [])
            if e.type == "fails" and not (spans and spans[-1][1] is None):
                spans.append((e, None))
            elif e.type == "restores":
                self.failed[node] = [(a, b if b is not None else e) for a, b in spans]

    def _at(self, node: str, entry: Entry) -> Entry | None:
        found = None
        for e in self.entries.get(node, []):
            if not before(e, entry):
                break
            found = e
        return found

    def failed_by_test(self, node: str, entry: Entry) -> bool:
        return any(a.seq < entry.seq and (b is None or entry.seq < b.seq) for a, b in self.failed.get(node, []))

    def state_at(self, node: str, deleted: Entry) -> str:
        """ "confirmed", "out of service", "deleted", or what the node was when the pod went."""
        at = self._at(node, deleted)
        if at is None:
            return "confirmed" if node not in self.entries else "not yet recorded"
        if at.type == "DELETED":
            return "deleted"
        if at.node.out_of_service:
            return "out of service"
        if self.failed_by_test(node, deleted):
            if at.node.ready == "Unknown":
                return "failed by the test (fail_node) and unreachable (Ready Unknown)"
            return "failed by the test (fail_node; its heartbeats had stopped, not yet marked Unknown)"
        # Ready False: the kubelet still reports (it is shutting down, or a condition failed); it confirms.
        if at.node.ready in ("True", "False"):
            return "confirmed"
        return f"unreachable (Ready {at.node.ready or 'unknown'})"

    def back_after(self, node: str, deleted: Entry) -> Entry | None:
        """The first state after the deletion that ends the doubt: Ready (and not failed by the test),
        out of service, or the Node gone."""
        for e in self.entries.get(node, []):
            if not before(deleted, e):
                continue
            if e.type == "DELETED" or e.node.out_of_service:
                return e
            if e.node.ready == "True" and not self.failed_by_test(node, e):
                return e
        return None

    def declared_after(self, node: str, deleted: Entry) -> Entry | None:
        """After a force delete only a declaration ends the doubt: out of service, or the Node gone."""
        for e in self.entries.get(node, []):
            if before(deleted, e) and (e.type == "DELETED" or e.node.out_of_service):
                return e
        return None


def _replacement(lives: list[PodLife], doubt: Unconfirmed) -> PodLife | None:
    for other in lives:
        if other.name != doubt.life.name or other.uid == doubt.life.uid:
            continue
        if not before(doubt.deleted, other.created):
            continue
        if doubt.until is None or before(other.created, doubt.until):
            return other
    return None


def _node_level(timeline: Timeline, lives: list[PodLife]) -> tuple[list[Violation], NodeStatus | None, str]:
    """Runtime observations of deleted incarnations held against their replacements' lifetimes:
    (violations, node status or None when no runtime was asked, where the evidence came from)."""
    observations = timeline.of(RUNTIME)
    if not observations:
        return [], None, "not available: no failed node whose container runtime can be asked (the local real node)"
    nodes = sorted({str(e.get("node")) for e in observations})
    source = f"container runtime of the failed node ({', '.join(nodes)})"
    by_uid = {life.uid: life for life in lives}
    violations: list[Violation] = []
    unknown: list[str] = []
    for uid in dict.fromkeys(e.uid for e in observations):
        old = by_uid.get(uid)
        if old is None or old.gone_at is None or old.last is None:
            continue
        seen = [e for e in observations if e.uid == uid]
        for other in lives:
            if other.name != old.name or other.uid == old.uid or not before(old.last, other.created):
                continue
            running = _running_from(timeline, other)
            if running is None:
                continue
            # The old containers seen running while the replacement was Running: proof of two at once.
            both = next(
                (e for e in seen if e.get("running") and running.seq < e.seq and not _gone_before(other, e)), None
            )
            if both is not None:
                violations.append(
                    Violation(
                        f"node level: the container runtime of node {both.get('node')} still ran "
                        f"{', '.join(both.get('running'))} of {old.name}'s deleted incarnation (uid {old.uid[:8]}) at "
                        f"{both.t:.1f} s, while its replacement (uid {other.uid[:8]}) was Running on node "
                        f"{other.node or '?'}",
                        both,
                    )
                )
            elif not any(not e.get("running") and e.seq < running.seq for e in seen):
                unknown.append(old.name)
            break
    if violations:
        return violations, "failed", source
    if unknown:
        return (
            [],
            "not available",
            (
                f"not available: the runtime did not see the old containers of {', '.join(sorted(set(unknown)))} stop "
                "before the replacement ran"
            ),
        )
    return [], "passed", source


def _running_from(timeline: Timeline, life: PodLife) -> Entry | None:
    return next((e for e in timeline.of(POD) if e.uid == life.uid and e.pod.phase == "Running"), None)


def _gone_before(life: PodLife, entry: Entry) -> bool:
    return life.gone_at is not None and life.last is not None and life.last.seq < entry.seq


def _recovery(timeline: Timeline, lives: list[PodLife], nodes: _NodeHistory) -> dict[str, float | bool]:
    """For the first pod alive on a node the test failed and deleted before the node was restored:
    fail_node to its replacement created, out_of_service of that node to the replacement Ready, and
    whether the replacement mounts the same claim objects (UID) bound to the same volumes."""
    steps = timeline.of(STEP)
    for node, spans in nodes.failed.items():
        for failed, restored in spans:
            fail = next((e for e in reversed(steps) if e.type == "begin" and e.seq < failed.seq), failed)
            for gone in lives:
                if gone.node != node or gone.last is None or gone.created.seq > failed.seq:
                    continue
                if gone.gone_at is None or gone.last.seq < failed.seq:
                    continue
                if restored is not None and gone.last.seq > restored.seq:
                    continue
                new = next((p for p in lives if p.name == gone.name and before(gone.last, p.created)), None)
                if new is None:
                    continue
                timings: dict[str, float | bool] = {"replaced_after_fail_s": round(new.created.t - fail.t, 3)}
                oos = next(
                    (
                        e
                        for e in steps
                        if e.type == "begin"
                        and e.get("action") == "out_of_service"
                        and e.get("detail") == node
                        and e.seq > failed.seq
                        and e.seq < new.created.seq
                    ),
                    None,
                )
                if oos is not None and new.ready_at is not None and new.ready_at >= oos.t:
                    timings["ready_after_out_of_service_s"] = round(new.ready_at - oos.t, 3)
                same = _same_claims(timeline, gone, new)
                if same is not None:
                    timings["claims_reattached"] = same
                return timings
    return {}


def _same_claims(timeline: Timeline, old: PodLife, new: PodLife) -> bool | None:
    """Does the replacement mount the very claims (UID, volume) its predecessor had? None: no claims."""
    names = sorted(set((old.last.pod.claims if old.last else {}).values()))
    if not names or new.last is None:
        return None
    claims = timeline.of(PVC)

    def state(claim: str, upto: Entry) -> tuple[str, str] | None:
        found = None
        for e in claims:
            if e.name == claim and e.seq <= upto.seq and e.type != "DELETED":
                found = (e.uid, e.claim.volume)
            elif e.name == claim and e.seq <= upto.seq:
                found = None
        return found

    mounted = sorted(set(new.last.pod.claims.values()))
    return mounted == names and all(
        state(c, old.last) is not None and state(c, old.last) == state(c, new.last) for c in names if old.last
    )


def _summary(timings: dict[str, float | bool]) -> str:
    parts = []
    if "replaced_after_fail_s" in timings:
        parts.append(f"replaced {timings['replaced_after_fail_s']:.1f} s after fail_node")
    if "ready_after_out_of_service_s" in timings:
        parts.append(f"Ready {timings['ready_after_out_of_service_s']:.1f} s after out_of_service")
    if "claims_reattached" in timings:
        parts.append(
            "on the same claims and volumes" if timings["claims_reattached"] else "NOT on its predecessor's claims"
        )
    return f" ({'; '.join(parts)})" if parts else ""
