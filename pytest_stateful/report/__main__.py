"""python -m pytest_stateful.report REPORT.json ...: re-render each HTML page from its JSON report."""

import json
import sys
from pathlib import Path

from pytest_stateful.report.html import render_html

for arg in sys.argv[1:]:
    source = Path(arg)
    target = source.with_suffix(".html")
    target.write_text(render_html(json.loads(source.read_text())))
    print(target)
