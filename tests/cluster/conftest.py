from __future__ import annotations

from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def web_manifests() -> list[Path]:
    return [EXAMPLES / "web" / "svc.yaml", EXAMPLES / "web" / "statefulset.yaml"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/cluster" in str(item.path):
            item.add_marker(pytest.mark.stateful_cluster)
