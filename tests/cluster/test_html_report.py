"""Issue 5: the HTML report renders in headless Chromium: not blank, with pod names and verdicts."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from PIL import Image

WEB = Path(__file__).resolve().parents[2] / "examples" / "web"
# The flags a sandboxed root session needs, and none that reach for the network.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1200,900",
]


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    assert binary, "Debian's chromium is missing: `./run setup` installs it (apt-get install chromium)"
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )


def test_html_report_renders_with_pods_and_verdicts(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makepyfile(
        f"""
        def test_web(stateful):
            web = stateful(["{WEB / "svc.yaml"}", "{WEB / "statefulset.yaml"}"])
            web.delete_pod(0)
            web.scale(3)
            web.assert_ordered_creation()
            web.assert_stable_identity()
            web.assert_pod_dns()
        """
    )
    reports = tmp_path / "reports"
    result = pytester.runpytest(f"--stateful-report-dir={reports}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"stateful reports: {reports}"])
    page = next(reports.glob("*.html"))

    shot = tmp_path / "shot.png"
    proc = chromium(f"--screenshot={shot}", page.as_uri())
    assert shot.is_file(), proc.stderr
    image = Image.open(shot).convert("RGB")
    colors = image.getcolors(maxcolors=1 << 20) or []
    assert len(colors) > 50, "the screenshot is (nearly) blank"
    # The chart's "ready" green is on the page.
    assert any(abs(r - 0x3B) < 8 and abs(g - 0x9C) < 8 and abs(b - 0x5A) < 8 for _, (r, g, b) in colors)

    dom = chromium("--dump-dom", page.as_uri()).stdout
    for text in ("web-0", "web-1", "web-2", "ordered_creation", "stable_identity", "pod_dns", "passed"):
        assert text in dom, f"{text!r} not on the rendered page"
