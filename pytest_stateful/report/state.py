"""The state of the StatefulSet and its namespace when a test failed, for pytest's failure output."""

from __future__ import annotations

from pytest_stateful.actions import StatefulSetHandle
from pytest_stateful.timeline import EVENT, POD, PVC, STS, describe

MAX_EVENTS = 15
MAX_PODS = 30


def cluster_state_text(handle: StatefulSetHandle) -> str:
    """StatefulSet status, pods (phase, Ready, node, IP, revision), claims, recent events; bounded."""
    rec = handle.recorder
    lines = [f"namespace {handle.namespace}"]
    sts = rec.current.get((STS, handle.name))
    lines.append(f"StatefulSet {handle.name}: {describe(sts) if sts else 'not seen'}")
    if sts is not None:
        lines.append(
            f"  policy={sts.get('policy')} strategy={sts.get('strategy')} partition={sts.get('partition')} "
            f"serviceName={sts.get('service_name')} observedGeneration={sts.get('observed_generation')}/"
            f"{sts.get('generation')}"
        )
    pods = rec.snapshot(POD)
    lines.append(f"pods ({len(pods)}):")
    rows = [("name", "phase", "ready", "node", "ip", "revision")]
    for p in pods[:MAX_PODS]:
        ready = "terminating" if p.get("deleting") else ("True" if p.get("ready") else "False")
        rows.append(
            (
                p.name,
                str(p.get("phase")),
                ready,
                str(p.get("node") or "-"),
                str(p.get("ip") or "-"),
                str(p.get("revision") or "-"),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    if len(pods) > MAX_PODS:
        lines.append(f"  ... and {len(pods) - MAX_PODS} more")
    claims = rec.snapshot(PVC)
    if claims:
        lines.append(f"claims ({len(claims)}):")
        lines += [f"  {c.name}: {describe(c)}" for c in claims[:MAX_PODS]]
    events = [e for e in rec.timeline.entries if e.kind == EVENT][-MAX_EVENTS:]
    if events:
        lines.append(f"recent events (last {len(events)}):")
        lines += [f"  {e.t:8.3f}s {e.get('type')} {e.get('object')} {describe(e)}" for e in events]
    return "\n".join(lines)
