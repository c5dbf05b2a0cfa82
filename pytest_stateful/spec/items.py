"""pytest collection of `*.stateful.yaml`: one Item per YAML document; failures in the spec's terms."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _pytest._code.code import TerminalRepr

from pytest_stateful.actions import ManifestError, StepTimeout
from pytest_stateful.assertions import GuaranteeFailed
from pytest_stateful.spec.loader import Spec, SpecError, load_file
from pytest_stateful.spec.runner import ExpectFailed, SpecRun, StepFailed

SPEC_ERRORS = (SpecError, StepFailed, ExpectFailed, ManifestError, StepTimeout, GuaranteeFailed)


class StatefulFile(pytest.File):
    def collect(self) -> Iterator[StatefulItem]:
        for spec in load_file(self.path):
            item = StatefulItem.from_parent(self, name=spec.name, spec=spec)
            for mark in spec.marks:
                item.add_marker(mark)
            yield item

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> str | TerminalRepr:  # type: ignore[override]
        if isinstance(excinfo.value, SpecError) and not self.config.getoption("stateful_traceback"):
            return f"invalid spec: {excinfo.value}"
        return super().repr_failure(excinfo)


class StatefulItem(pytest.Item):
    """One spec document, run in its own namespace with the session's cluster."""

    def __init__(self, *, spec: Spec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.run = SpecRun(spec)

    def runtest(self) -> None:
        from pytest_stateful.plugin import run_spec_in_fresh_namespace

        run_spec_in_fresh_namespace(self.config, self.name, self.run)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str | TerminalRepr:
        if self.config.getoption("stateful_traceback") or not isinstance(excinfo.value, SPEC_ERRORS):
            return super().repr_failure(excinfo)
        return explain_failure(self.spec, excinfo.value)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, self.spec.line - 1, f"stateful spec: {self.name}"


def explain_failure(spec: Spec, exc: BaseException) -> str:
    """The failing step or guarantee with its YAML line, then the evidence; no Python traceback."""
    lines: list[str] = []
    source = spec.path.read_text().splitlines()

    def quote(line: int) -> None:
        if 0 < line <= len(source):
            lines.append(f"{spec.path.name}:{line}: {source[line - 1].strip()}")

    if isinstance(exc, StepFailed):
        quote(exc.step.line)
        lines.append(f"step {exc.index + 1} ({exc.step.describe()}) failed:")
        lines += ["  " + ln for ln in exc.reason.splitlines()]
    elif isinstance(exc, ExpectFailed):
        for verdict in exc.failed:
            quote(spec.expect_lines.get(verdict.guarantee, spec.line))
            lines += ["  " + ln for ln in verdict.explain().splitlines()]
        passed = [g for g, v in exc.verdicts.items() if v.passed]
        if passed:
            lines.append(f"held: {', '.join(passed)}")
    else:
        quote(spec.line)
        lines.append(str(exc))
    return "\n".join(lines)
