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


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # examples/versions compares Kubernetes versions and feature gates: its verdicts differ by design,
    # so it runs only under a version matrix (examples/versions/README.md).
    if collection_path == VERSIONS and not (
        config.getoption("stateful_kubernetes") or config.getini("stateful_kubernetes")
    ):
        return True
    return None
