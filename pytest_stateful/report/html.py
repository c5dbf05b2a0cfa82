"""A self-contained HTML report of one test: inline SVG and CSS, no scripts or network.

One lane per ordinal shows each pod's life (created, scheduled, Ready, terminating,
gone, with its IP and node); a lane per failed node shows when it was unreachable and
out of service, with what its container runtime still ran; steps are markers on the
same time axis; DNS answers are dots on their pod's lane; each verdict is listed with
its evidence, and a violation is a red mark on the chart.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pytest_stateful.checks.availability import series
from pytest_stateful.checks.pod_dns import convergence
from pytest_stateful.timeline import DNS, NODE, POD, RUNTIME, STEP, Entry, Timeline, ordinal_of

WIDTH = 1100
LANE = 34
LEFT = 90
TOP = 88  # room for four rows of step labels
LABEL_ROWS = 4
COLORS = {"pending": "#c9d6ea", "ready": "#3b9c5a", "unready": "#e0b12f", "terminating": "#e07b39"}
NODE_COLORS = {"node unreachable": "#7d8696", "node out of service": "#6b4fa3"}


def render_html(report: Mapping[str, Any]) -> str:
    timeline = Timeline(Entry.from_dict(raw) for raw in report.get("timeline", []))
    subject = report.get("subject", {})
    sts = str(subject.get("statefulset", ""))
    verdicts: Mapping[str, Any] = report.get("verdicts", {})
    chart = _chart(timeline, sts, verdicts)
    rows = "".join(_verdict_row(v, timeline) for v in verdicts.values())
    # The header says, per guarantee, where node-level evidence came from (or why there is none).
    sources = "".join(
        f"<li>{html.escape(str(v.get('guarantee')))}: {html.escape(str(v['node_source']))}</li>"
        for v in verdicts.values()
        if v.get("node_source")
    )
    node_header = f'<div class="meta">node-level evidence<ul>{sources}</ul></div>' if sources else ""
    errors = [str(x) for x in report.get("watch_errors", [])]
    if errors:
        shown = "\n".join(html.escape(x) for x in errors[-10:])
        chart += f"<p>The recorder's watches failed {len(errors)} time(s) (each resumed; lost events show as gaps):</p>"
        chart += f"<pre>{shown}</pre>"
    title = html.escape(str(report.get("test", "")))
    legend = "".join(f'<span><i style="background:{c}"></i>{k}</span>' for k, c in {**COLORS, **NODE_COLORS}.items())
    outcome = str(report.get("outcome", ""))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>pytest-stateful: {title}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d2330; }}
h1 {{ font-size: 18px; margin: 0 0 4px; }} .meta {{ color: #5b6475; margin-bottom: 16px; }}
.outcome-passed {{ color: #2e7d46; }} .outcome-failed {{ color: #b3261e; }}
table {{ border-collapse: collapse; margin-top: 16px; width: 100%; }}
td, th {{ border-top: 1px solid #dde2ea; padding: 6px 8px; text-align: left; vertical-align: top; }}
.passed {{ color: #2e7d46; font-weight: 600; }} .failed {{ color: #b3261e; font-weight: 600; }}
.incomplete {{ color: #9a6b00; font-weight: 600; }} .not-exercised {{ color: #6b4fa3; font-weight: 600; }}
pre {{ background: #f5f7fa; padding: 8px; white-space: pre-wrap; font-size: 12px; margin: 4px 0 0; }}
table {{ table-layout: fixed; }} th:first-child {{ width: 17%; }} th:last-child {{ width: 55%; }}
td {{ overflow-wrap: anywhere; }}
.legend span {{ display: inline-block; margin-right: 14px; }}
.legend i {{ display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -1px; }}
svg text {{ font: 11px system-ui, sans-serif; }}
</style></head><body>
<h1>{title}</h1>
<div class="meta">StatefulSet <b>{html.escape(sts)}</b> in namespace {html.escape(str(subject.get("namespace", "")))}
 &middot; {html.escape(str(subject.get("cluster", "")))} &middot;
 outcome <b class="outcome-{html.escape(outcome)}">{html.escape(outcome)}</b></div>
{node_header}
<div class="legend">{legend}
<span><i style="background:#4063d8;border-radius:6px"></i>DNS answer (label: seconds after Ready)</span>
<span><i style="background:#b3261e"></i>violation</span></div>
{chart}
<table><tr><th>guarantee</th><th>verdict</th><th>fidelity</th><th>node level</th><th>evidence</th></tr>{rows}</table>
</body></html>
"""


def _chart(timeline: Timeline, sts: str, verdicts: Mapping[str, Any]) -> str:
    lives = [life for life in timeline.pod_lives(sts) if life.ordinal is not None]
    if not timeline.entries:
        return "<p>No events were recorded.</p>"
    end = max(e.t for e in timeline.entries) or 1.0
    ordinals = sorted({life.ordinal for life in lives if life.ordinal is not None})
    lane_of = {o: i for i, o in enumerate(ordinals)}
    hosts = {life.node for life in lives if life.node}
    failed = {n: pieces for n in sorted(hosts) if (pieces := _node_segments(timeline, n, end))}
    node_lane = {n: len(ordinals) + i for i, n in enumerate(failed)}
    height = TOP + LANE * max(1, len(ordinals) + len(failed)) + 30

    def x(t: float) -> float:
        return LEFT + (WIDTH - LEFT - 20) * (t / end)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="100%" '
        f'style="max-width:{WIDTH}px" role="img">'
    ]
    for i in range(11):  # time axis
        t = end * i / 10
        parts.append(f'<line x1="{x(t):.1f}" y1="{TOP - 8}" x2="{x(t):.1f}" y2="{height - 24}" stroke="#eef1f5"/>')
        parts.append(f'<text x="{x(t):.1f}" y="{height - 8}" text-anchor="middle">{t:.1f}s</text>')
    for o, i in lane_of.items():
        parts.append(f'<text x="8" y="{TOP + i * LANE + 18}">{html.escape(sts)}-{o}</text>')
    row_end = [0.0] * LABEL_ROWS  # where the last label of each row ends, so labels do not overlap
    for e in timeline.entries:  # steps: markers across every lane
        if e.kind == STEP and e.type == "begin":
            label = html.escape(f"{e.name} {e.get('detail', '')}".strip())[:40]
            row = next((r for r in range(LABEL_ROWS) if row_end[r] < x(e.t)), LABEL_ROWS - 1)
            row_end[row] = x(e.t) + 6.2 * len(label) + 8
            y_label = TOP - 16 - 16 * row
            parts.append(
                f'<line x1="{x(e.t):.1f}" y1="{y_label + 2}" x2="{x(e.t):.1f}" y2="{height - 24}" '
                f'stroke="#8a93a6" stroke-dasharray="3,3"><title>{label}</title></line>'
            )
            parts.append(f'<text x="{x(e.t) + 2:.1f}" y="{y_label}" fill="#5b6475">{label}</text>')
    for life in lives:
        assert life.ordinal is not None
        y = TOP + lane_of[life.ordinal] * LANE
        for start, stop, state in _segments(timeline, life.uid, end):
            tip = html.escape(
                f"{life.name} uid {life.uid[:8]} {state} {start:.2f}-{stop:.2f}s ip {life.ip or '-'} "
                f"node {life.node or '-'}"
            )
            parts.append(
                f'<rect x="{x(start):.1f}" y="{y + 4}" width="{max(1.0, x(stop) - x(start)):.1f}" '
                f'height="{LANE - 12}" fill="{COLORS[state]}" rx="2"><title>{tip}</title></rect>'
            )
        if life.ip:
            parts.append(
                f'<text x="{x(life.created.t) + 3:.1f}" y="{y + LANE - 12}" fill="#1d2330">'
                f"{html.escape(life.ip)} {html.escape(life.node)}</text>"
            )
    for node, pieces in failed.items():  # failed nodes: when unreachable, when out of service
        y = TOP + node_lane[node] * LANE
        parts.append(f'<text x="8" y="{y + 18}">{html.escape(node[:13])}</text>')
        for start, stop, state in pieces:
            tip = html.escape(f"node {node}: {state.removeprefix('node ')} {start:.2f}-{stop:.2f}s")
            parts.append(
                f'<rect x="{x(start):.1f}" y="{y + 4}" width="{max(1.0, x(stop) - x(start)):.1f}" '
                f'height="{LANE - 12}" fill="{NODE_COLORS[state]}" rx="2"><title>{tip}</title></rect>'
            )
    for e in timeline.of(RUNTIME):  # what a failed node's runtime still ran
        node = str(e.get("node"))
        if node in node_lane and e.get("running"):
            tip = html.escape(
                f"{e.get('pod')} (uid {e.uid[:8]}) still running on {node}: {', '.join(e.get('running'))}"
            )
            cy = TOP + node_lane[node] * LANE + LANE / 2 - 2
            parts.append(f'<circle cx="{x(e.t):.1f}" cy="{cy:.1f}" r="4" fill="#b3261e"><title>{tip}</title></circle>')
    latency = convergence(timeline)
    for e in timeline.entries:  # DNS answers on their pod's lane
        if e.kind == DNS and e.get("pod"):
            ordinal = ordinal_of(str(e.get("pod")), sts)
            if ordinal in lane_of:
                y = TOP + lane_of[ordinal] * LANE + 4
                color = "#4063d8" if e.get("ok") else "#b3261e"
                waited = latency.get(e.seq)
                label = f"{waited:.2f}s" if waited is not None else ""
                tip = html.escape(f"{e.get('qname')} -> {', '.join(e.get('answers') or []) or 'nothing'}")
                parts.append(f'<circle cx="{x(e.t):.1f}" cy="{y}" r="4" fill="{color}"><title>{tip}</title></circle>')
                if label:
                    parts.append(f'<text x="{x(e.t) + 5:.1f}" y="{y + 3}" fill="#4063d8">{label}</text>')
    for verdict in verdicts.values():  # violations: red marks
        for v in verdict.get("violations", []):
            seq = v.get("seq")
            if seq is None or seq >= len(timeline.entries):
                continue
            e = timeline.entries[seq]
            ordinal = ordinal_of(e.name, sts) if e.kind == POD else None
            y = TOP + lane_of.get(ordinal if ordinal is not None else -1, 0) * LANE
            tip = html.escape(f"{verdict.get('guarantee')}: {v.get('message')}")
            parts.append(
                f'<rect x="{x(e.t) - 3:.1f}" y="{y}" width="6" height="{LANE - 4}" fill="#b3261e">'
                f"<title>{tip}</title></rect>"
            )
    parts.append("</svg>")
    return "".join(parts) + _availability_chart(timeline, sts, end)


def _availability_chart(timeline: Timeline, sts: str, end: float) -> str:
    """Available pods over time (a step line), with the floor availability judges shaded in."""
    points = series(timeline, sts)
    if not points:
        return ""
    top = max(max(p[2] for p in points), 1)
    height = 120

    def x(t: float) -> float:
        return LEFT + (WIDTH - LEFT - 20) * (t / end)

    def y(n: float) -> float:
        return 12 + (height - 36) * (1 - n / top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="100%" '
        f'style="max-width:{WIDTH}px" role="img"><text x="8" y="{y(top / 2) + 4:.1f}">available pods</text>'
    ]
    for n in range(top + 1):
        parts.append(f'<line x1="{LEFT}" y1="{y(n):.1f}" x2="{WIDTH - 20}" y2="{y(n):.1f}" stroke="#eef1f5"/>')
        parts.append(f'<text x="{LEFT - 14}" y="{y(n) + 4:.1f}" text-anchor="end">{n}</text>')
    line, previous = [], None
    for t, available, _replicas, floor in points:
        if previous is not None:
            line.append(f"{x(t):.1f},{y(previous):.1f}")
        line.append(f"{x(t):.1f},{y(available):.1f}")
        previous = available
        if floor is not None:
            parts.append(f'<circle cx="{x(t):.1f}" cy="{y(floor):.1f}" r="1.5" fill="#b3261e"/>')
    parts.append(f'<polyline points="{" ".join(line)}" fill="none" stroke="#2e7d32" stroke-width="2"/>')
    parts.append(
        f'<text x="{WIDTH - 20}" y="{height - 8}" text-anchor="end" fill="#5b6475">green: available pods; '
        "red dots: the floor during rolling updates and drains</text></svg>"
    )
    return "".join(parts)


def _segments(timeline: Timeline, uid: str, end: float) -> list[tuple[float, float, str]]:
    """(start, stop, state) pieces of one pod's life."""

    def changes() -> Iterator[tuple[float, str | None]]:
        for e in timeline.entries:
            if e.kind != POD or e.uid != uid:
                continue
            if e.type == "DELETED":
                yield e.t, None
                return
            if e.get("deleting"):
                yield e.t, "terminating"
            elif e.get("ready"):
                yield e.t, "ready"
            else:
                yield e.t, "unready" if e.get("phase") == "Running" else "pending"

    return _pieces(changes(), end)


def _node_segments(timeline: Timeline, node: str, end: float) -> list[tuple[float, float, str]]:
    """(start, stop, state) pieces of a node's failure: unreachable (not Ready), out of service."""

    def changes() -> Iterator[tuple[float, str | None]]:
        for e in timeline.of(NODE):
            if e.name != node:
                continue
            if e.type == "DELETED":
                yield e.t, None
            elif e.node.out_of_service:
                yield e.t, "node out of service"
            elif e.node.ready and e.node.ready != "True":
                yield e.t, "node unreachable"
            else:
                yield e.t, None

    return _pieces(changes(), end)


def _pieces(changes: Iterable[tuple[float, str | None]], end: float) -> list[tuple[float, float, str]]:
    """State changes as (start, stop, state) pieces; None is no piece; the last state lasts until `end`."""
    pieces: list[tuple[float, float, str]] = []
    state: str | None = None
    since = 0.0
    for t, now in changes:
        if now != state:
            if state is not None:
                pieces.append((since, t, state))
            state, since = now, t
    if state is not None:
        pieces.append((since, end, state))
    return pieces


def _verdict_row(v: Mapping[str, Any], timeline: Timeline) -> str:
    status = str(v.get("status", ""))
    evidence = [html.escape(str(v.get("summary", "")))]
    for d in v.get("diagnosis", []):
        evidence.append("diagnosis: " + html.escape(str(d)))
    for n in v.get("notes", []):
        evidence.append("note: " + html.escape(str(n)))
    if v.get("timings"):
        evidence.append("timings: " + html.escape(", ".join(f"{k}={val}" for k, val in v["timings"].items())))
    extra = [html.escape(str(x.get("message"))) for x in v.get("violations", [])[1:6]]
    body = "<br>".join(evidence)
    if extra:
        body += "<pre>" + "\n".join(extra) + "</pre>"
    source = f"<br><small>{html.escape(str(v['node_source']))}</small>" if v.get("node_source") else ""
    return (
        f"<tr><td>{html.escape(str(v.get('guarantee')))}</td>"
        f'<td class="{html.escape(status.replace(" ", "-"))}">{status}</td>'
        f"<td>{html.escape(str(v.get('fidelity')))}</td><td>{html.escape(str(v.get('node')))}{source}</td>"
        f"<td>{body}</td></tr>"
    )
