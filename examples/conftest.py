import os
from pathlib import Path

import pytest

# examples/failing/ fails on purpose, to show what a failure looks like; it is left out of
# the default run. See it with:  PYTEST_STATEFUL_FAILING=1 pytest examples/failing
# (and examples/failures/broken: the failures users fear, judged failing; examples/charts/broken: an
# upgrade refused before it is sent).
if not os.environ.get("PYTEST_STATEFUL_FAILING"):
    collect_ignore = ["failing", "failures/broken", "charts/broken"]

VERSIONS = Path(__file__).parent / "versions"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # examples/versions compares Kubernetes versions and feature gates: its verdicts differ by design,
    # so without a version matrix it is skipped, saying how to run it (examples/versions/README.md).
    if config.getoption("stateful_kubernetes") or config.getini("stateful_kubernetes"):
        return
    skip = pytest.mark.skip(reason="runs under a version matrix: --stateful-kubernetes (examples/versions/README.md)")
    for item in items:
        if VERSIONS in item.path.parents:
            item.add_marker(skip)
