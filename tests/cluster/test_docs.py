"""Issue 5: the docs cannot drift from the code: runnable blocks run, the YAML reference is generated."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_stateful.spec.reference import render_markdown

ROOT = Path(__file__).resolve().parents[2]
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
BLOCK = re.compile(r"^```(python|sh) runnable\n(.*?)^```", re.M | re.S)


def runnable_blocks() -> list[tuple[str, str, str]]:
    found = []
    for doc in DOCS:
        for i, match in enumerate(BLOCK.finditer(doc.read_text())):
            found.append((f"{doc.name}#{i}", match.group(1), match.group(2)))
    return found


def test_docs_have_runnable_blocks() -> None:
    kinds = {kind for _, kind, _ in runnable_blocks()}
    assert kinds == {"python", "sh"}


@pytest.mark.parametrize(("where", "kind", "code"), runnable_blocks(), ids=lambda v: v if "#" in str(v) else "")
def test_runnable_block(where: str, kind: str, code: str, pytester: pytest.Pytester) -> None:
    if kind == "python":
        (pytester.path / "web").mkdir()
        for name in ("svc.yaml", "statefulset.yaml"):
            shutil.copy(ROOT / "examples" / "web" / name, pytester.path / "web" / name)
        pytester.makepyfile(**{"test_doc_block": code})
        pytester.runpytest().assert_outcomes(passed=1)
        return
    venv_bin = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"{where} failed:\n{proc.stdout}\n{proc.stderr}"


def test_yaml_reference_is_generated_from_the_schema() -> None:
    current = (ROOT / "docs" / "yaml-reference.md").read_text()
    assert current == render_markdown(), (
        "docs/yaml-reference.md is out of date: python -m pytest_stateful.spec.reference > docs/yaml-reference.md"
    )
