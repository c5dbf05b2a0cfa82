"""Report rendering from recorded timelines: the table, the HTML page, the JSON round trip."""

from __future__ import annotations

import json
from pathlib import Path

from recorded import SUBJECT, load

from pytest_stateful.checks import GUARANTEES, run_check
from pytest_stateful.report import guarantee_table, write_reports
from pytest_stateful.report.html import render_html


def test_table_shows_each_guarantee_per_test() -> None:
    good = {g: run_check(g, load("good"), SUBJECT) for g in GUARANTEES}
    bad = {"ordered_creation": run_check("ordered_creation", load("parallel"), SUBJECT)}
    lines = guarantee_table({"web.stateful.yaml::good": good, "parallel.stateful.yaml::bad": bad})
    assert lines[0].split() == [
        "test",
        "creation",
        "termination",
        "rolling",
        "update",
        "identity",
        "pod",
        "dns",
        "storage",
        "recovers",
        "availability",
        "at-most-one",
        "retention",
    ]
    assert lines[1].split() == [
        "web.stateful.yaml::good",
        *["passed"] * 6,
        "not-exercised",
        "passed",
        "not-exercised",
        "passed",
    ]
    assert lines[2].split() == ["parallel.stateful.yaml::bad", "FAILED", *["-"] * 9]
    assert lines[-1] == (
        "all verdicts at api level: no node-level probe ran (on simulated nodes no container runs and no "
        "image is pulled; elsewhere each test's report says why)"
    )


def test_reports_are_written_and_the_html_is_self_contained(tmp_path: Path) -> None:
    timeline = load("parallel")
    verdicts = {g: run_check(g, timeline, SUBJECT) for g in ("ordered_creation", "ordered_termination")}
    subject = {"statefulset": "web", "namespace": "recorded", "cluster": "local"}
    written = write_reports(tmp_path, "examples/x.stateful.yaml::bad one", "failed", subject, verdicts, timeline)
    assert [p.name for p in written] == [
        "examples_x.stateful.yaml_bad_one.json",
        "examples_x.stateful.yaml_bad_one.html",
    ]
    data = json.loads(written[0].read_text())
    assert data["verdicts"]["ordered_termination"]["status"] == "failed"
    assert len(data["timeline"]) == len(timeline)
    page = written[1].read_text()
    for needle in ("web-0", "web-1", "web-2", "ordered_creation", "failed", "podManagementPolicy is Parallel"):
        assert needle in page
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert 'fill="#b3261e"' in page  # the violation is marked on the chart


def test_html_of_a_good_run_marks_no_violation() -> None:
    timeline = load("good")
    verdicts = {g: run_check(g, timeline, SUBJECT).to_dict() for g in GUARANTEES}
    page = render_html(
        {
            "test": "good",
            "outcome": "passed",
            "subject": {"statefulset": "web"},
            "verdicts": verdicts,
            "timeline": [e.to_dict() for e in timeline],
        }
    )
    # Every guarantee but rollout_recovers and at_most_one (no bad rollout, no failed node: not exercised).
    assert page.count('class="passed"') == len(GUARANTEES) - 2
    # The availability curve: a step line of available pods, the floor shown during the rolling update.
    assert "available pods" in page and '<polyline points="' in page and 'fill="#b3261e"/>' in page
    assert '<rect x="' in page and "<title>web-0 uid" in page
    assert "s</text>" in page  # DNS convergence labels


def test_not_exercised_and_incomplete_read_differently_from_passed_and_failed() -> None:
    from pytest_stateful.checks.verdict import Verdict

    verdicts = {
        "ordered_termination": Verdict("ordered_termination", "not exercised", "web was never scaled down"),
        "pod_dns": Verdict("pod_dns", "incomplete", "no DNS answer was recorded"),
    }
    lines = guarantee_table({"t::x": verdicts})
    assert lines[1].split() == ["t::x", "not-exercised", "incomplete"]
    page = render_html(
        {
            "test": "x",
            "outcome": "failed",
            "subject": {"statefulset": "web"},
            "verdicts": {g: v.to_dict() for g, v in verdicts.items()},
            "timeline": [],
        }
    )
    assert '<td class="not-exercised">not exercised</td>' in page
    assert '<td class="incomplete">incomplete</td>' in page
