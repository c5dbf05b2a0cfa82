"""The StatefulSet as recorded right now: its pods, whether it settled, what a wait still waits for,
and the state a person needs when a wait times out or a test fails.

Pure reads of the recorder's current state; nothing here talks to the API server.
"""

from __future__ import annotations

from pytest_stateful.recorder import Recorder
from pytest_stateful.timeline import EVENT, POD, PVC, STS, Entry, aligned, describe, ordinal_of

MAX_ROWS = 30


class WorkloadView:
    def __init__(self, recorder: Recorder, name: str) -> None:
        self.recorder = recorder
        self.name = name

    def statefulset(self) -> Entry | None:
        return self.recorder.current.get((STS, self.name))

    def pods(self) -> list[Entry]:
        """This StatefulSet's live pod objects, by ordinal."""
        return sorted(
            (e for e in self.recorder.snapshot(POD) if ordinal_of(e.name, self.name) is not None),
            key=lambda e: ordinal_of(e.name, self.name) or 0,
        )

    def pod(self, name: str) -> Entry | None:
        return self.recorder.current.get((POD, name))

    def pod_uids(self) -> set[str]:
        return {e.uid for e in self.pods()}

    def claim(self, name: str) -> Entry | None:
        return self.recorder.current.get((PVC, name))

    def claim_user(self, claim: str) -> Entry | None:
        """A scheduled pod that uses this claim: while there is one, kubernetes.io/pvc-protection keeps
        a deleted claim (upstream pvcprotection podUsesPVC checks only pods with a node)."""
        return next(
            (p for p in self.recorder.snapshot(POD) if p.pod.node and claim in p.pod.claims.values()),
            None,
        )

    def selector(self) -> str:
        sts = self.statefulset()
        labels = sts.sts.selector if sts else {}
        return ",".join(f"{k}={v}" for k, v in labels.items())

    def settled(self, min_generation: int = 0) -> bool:
        """observedGeneration current, every replica Ready, the rollout done (or up to the partition)."""
        entry = self.statefulset()
        if entry is None or entry.sts.deleting:
            return False
        sts = entry.sts
        if sts.observed_generation < max(sts.generation, min_generation):
            return False
        if sts.ready_replicas != sts.replicas or sts.status_replicas != sts.replicas:
            return False
        pods = self.pods()
        if len(pods) != sts.replicas or any(p.pod.deleting or not p.pod.ready for p in pods):
            return False
        if self.retained_claims():
            return False
        if sts.strategy == "OnDelete":
            return True
        if sts.partition > 0:
            # Upstream applies the partition relative to the start ordinal: ordinals below
            # start + partition keep the current revision, so fewer pods can be updated.
            return sts.updated_replicas >= max(0, sts.replicas - sts.partition)
        return not sts.rolling_out and bool(sts.current_revision)

    def settle_goal(self) -> str:
        """What a settle is still waiting for, in a person's words."""
        entry = self.statefulset()
        if entry is None:
            return f"StatefulSet {self.name} to appear"
        sts = entry.sts
        pods = {ordinal_of(p.name, self.name): p for p in self.pods()}
        for k in sts.ordinals:
            pod = pods.get(k)
            if pod is None:
                return f"{self.name}-{k} to be created"
            if pod.pod.deleting:
                return f"{self.name}-{k} to be replaced"
            if not pod.pod.ready:
                return f"{self.name}-{k} Ready"
        extra = sorted(p.name for k, p in pods.items() if k is not None and k not in sts.ordinals)
        if extra:
            return f"{extra[-1]} to go"
        claims = self.retained_claims()
        if claims:
            return f"the claims of removed ordinals to be deleted (whenScaled: Delete): {', '.join(claims)}"
        return f"{self.name} to finish its rollout ({sts.updated_replicas}/{sts.replicas} updated)"

    def retained_claims(self) -> list[str]:
        """whenScaled: Delete: claims of ordinals outside the spec that the garbage collector still has to
        delete (they carry an owner reference to their pod). Until they are gone a scale-up would stall:
        the controller does not create a pod whose claim is being deleted."""
        entry = self.statefulset()
        if entry is None or entry.sts.retention_when_scaled != "Delete":
            return []
        sts = entry.sts
        left = []
        for claim in self.recorder.snapshot(PVC):
            for template in sts.claim_templates:
                prefix = f"{template}-"
                pod = claim.name[len(prefix) :] if claim.name.startswith(prefix) else ""
                k = ordinal_of(pod, self.name)
                if k is not None and k not in sts.ordinals and f"Pod/{pod}" in claim.claim.owners:
                    left.append(claim.name)
        return sorted(left)

    def causes(self) -> list[str]:
        """What the cluster shows as the reason a wait cannot finish: the scheduler's message for a
        Pending pod, a claim being deleted, a pod whose claim is missing."""
        found = []
        claims = {c.name: c for c in self.recorder.snapshot(PVC)}
        for p in self.pods():
            d = p.pod
            if d.phase == "Pending" and d.scheduled_message:
                found.append(f"{p.name} is not scheduled: {d.scheduled_message}")
            found += [f"{p.name} cannot start its container {w}" for w in d.waiting]
            for claim in d.claims.values():
                if claim not in claims and d.phase == "Pending":
                    found.append(f"{p.name} waits for claim {claim}, which does not exist")
        for c in claims.values():
            if c.claim.deleting:
                found.append(f"claim {c.name} is being deleted: a pod of that ordinal is not created until it is gone")
        entry = self.statefulset()
        if entry is not None:
            k = next((k for k in entry.sts.ordinals if self.pod(f"{self.name}-{k}") is None), None)
            if k is not None and entry.sts.policy == "OrderedReady":
                lower = [p for p in self.pods() if (ordinal_of(p.name, self.name) or 0) < k and not p.pod.ready]
                if lower:
                    found.append(
                        f"{self.name}-{k} is not created while {lower[0].name} is not Ready (OrderedReady halts)"
                    )
        return found

    def recent_events(self, count: int) -> list[Entry]:
        """The last `count` events, and for each pod that is not Ready the last warning about it when
        that is older: why a pod is down must not scroll away behind later scheduling noise."""
        events = [e for e in self.recorder.timeline.entries if e.kind == EVENT]
        recent = events[-count:]
        shown = {e.get("object") for e in recent if e.get("type") == "Warning"}
        older = []
        for p in self.pods():
            what = f"Pod/{p.name}"
            if p.pod.ready or what in shown:
                continue
            last = next(
                (e for e in reversed(events[:-count]) if e.get("object") == what and e.get("type") == "Warning"), None
            )
            if last is not None:
                older.append(last)
        return sorted([*older, *recent], key=lambda e: e.seq)

    def last_seen(self, what: str, timeout: float) -> str:
        """The text of a wait that timed out: what it waited for, and the state it last saw."""
        lines = [f"timed out after {timeout:.0f} s waiting for {what}; last seen:"]
        sts = self.statefulset()
        lines.append(f"  StatefulSet {self.name}: {describe(sts) if sts else 'not seen'}")
        lines += [f"  pod {p.name}: {describe(p)}" for p in self.pods()]
        events = self.recent_events(8)
        if events:
            lines.append("  recent events:")
            lines += [f"    {e.get('type')} {e.get('object')} {describe(e)}" for e in events]
        causes = self.causes()
        if causes:
            lines.append("  why it cannot finish, as far as the cluster shows:")
            lines += [f"    - {c}" for c in causes]
        lost = self.recorder.lost()
        if lost:
            lines.append(f"  the record is not being kept: {lost}")
        return "\n".join(lines)

    def state_text(self, namespace: str, max_events: int = 15) -> str:
        """StatefulSet status, pods (phase, Ready, node, IP, revision), claims, recent events; bounded."""
        lines = [f"namespace {namespace}"]
        entry = self.statefulset()
        lines.append(f"StatefulSet {self.name}: {describe(entry) if entry else 'not seen'}")
        if entry is not None:
            sts = entry.sts
            lines.append(
                f"  policy={sts.policy} strategy={sts.strategy} partition={sts.partition} "
                f"serviceName={sts.service_name} observedGeneration={sts.observed_generation}/{sts.generation}"
            )
        pods = self.recorder.snapshot(POD)
        lines.append(f"pods ({len(pods)}):")
        rows = [("name", "phase", "ready", "node", "ip", "revision")]
        for p in pods[:MAX_ROWS]:
            d = p.pod
            ready = "terminating" if d.deleting else str(d.ready)
            rows.append((p.name, d.phase, ready, d.node or "-", d.ip or "-", d.revision or "-"))
        lines += ["  " + row for row in aligned(rows)]
        if len(pods) > MAX_ROWS:
            lines.append(f"  ... and {len(pods) - MAX_ROWS} more")
        claims = self.recorder.snapshot(PVC)
        if claims:
            lines.append(f"claims ({len(claims)}):")
            lines += [f"  {c.name}: {describe(c)}" for c in claims[:MAX_ROWS]]
        causes = self.causes()
        if causes:
            lines.append("why the cluster has not converged, as far as it shows:")
            lines += [f"  - {c}" for c in causes]
        if self.recorder.errors:
            lines.append(f"watch errors ({len(self.recorder.errors)}, the last 5):")
            lines += [f"  {e}" for e in self.recorder.errors[-5:]]
        events = self.recent_events(max_events)
        if events:
            lines.append(f"recent events (last {len(events)}):")
            lines += [f"  {e.t:8.3f}s {e.get('type')} {e.get('object')} {describe(e)}" for e in events]
        return "\n".join(lines)
