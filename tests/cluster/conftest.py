from __future__ import annotations

from pathlib import Path

import pytest

from pytest_stateful.cluster.build import cache_dir

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# pytester moves HOME; the inner runs must still find the one cache and cluster.
CACHE = cache_dir()


@pytest.fixture(autouse=True)
def _same_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_STATEFUL_CACHE", str(CACHE))


@pytest.fixture
def web_manifests() -> list[Path]:
    return [EXAMPLES / "web" / "svc.yaml", EXAMPLES / "web" / "statefulset.yaml"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/cluster" in str(item.path):
            item.add_marker(pytest.mark.stateful_cluster)
