"""pytest collection of `*.stateful.yaml` and the `stateful` marker: one Item per YAML document;
failures in the spec's terms (its YAML line and the reason), keyed on StatefulError."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _pytest._code.code import TerminalRepr

from pytest_stateful.cluster.versions import Target
from pytest_stateful.errors import ExpectFailed, InfrastructureError, SpecError, StatefulError, StepFailed
from pytest_stateful.plugin.run import KUBERNETES_FIXTURE, run_spec_in_fresh_namespace, spec_run_key
from pytest_stateful.plugin.settings import Settings
from pytest_stateful.spec.loader import Spec, load_file, spec_from_mapping
from pytest_stateful.spec.runner import SpecRun


class StatefulFile(pytest.File):
    def collect(self) -> Iterator[StatefulItem]:
        # Under --stateful-kubernetes, each document once per version, the version in its id as a
        # parametrized test has it: `name[k8s-1.35]`.
        targets: tuple[Target | None, ...] = Settings.of(self.config).kubernetes or (None,)
        for spec in load_file(self.path):
            for target in targets:
                name = f"{spec.name}[{target.id}]" if target else spec.name
                item = StatefulItem.from_parent(self, name=name, spec=spec, target=target)
                for mark in spec.marks:
                    item.add_marker(mark)
                yield item

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> str | TerminalRepr:  # type: ignore[override]
        if isinstance(excinfo.value, SpecError) and not Settings.of(self.config).traceback:
            return f"invalid spec: {excinfo.value}"
        return super().repr_failure(excinfo)


class StatefulItem(pytest.Item):
    """One spec document, run in its own namespace with the session's cluster."""

    def __init__(self, *, spec: Spec, target: Target | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.target = target
        self.run = self.stash[spec_run_key] = SpecRun(spec)

    def runtest(self) -> None:
        run_spec_in_fresh_namespace(self.config, self.name, self.run, self.target)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str | TerminalRepr:
        if Settings.of(self.config).traceback or not isinstance(excinfo.value, StatefulError):
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

    if isinstance(exc, InfrastructureError):
        quote(exc.step.line if exc.step is not None else spec.line)
        during = f" during step {exc.index + 1} ({exc.step.describe()})" if exc.step is not None else ""
        lines.append(f"infrastructure error{during}: the cluster failed, not the workload; nothing was judged:")
        lines.append(f"  {exc}")
    elif isinstance(exc, StepFailed):
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


def run_marker_spec(item: pytest.Function, marker: pytest.Mark) -> None:
    """`@pytest.mark.stateful(...)`: validate like a YAML document, run it in its own namespace."""
    __tracebackhide__ = True
    if marker.args:
        raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.stateful takes keyword arguments only")
    line = item.function.__code__.co_firstlineno
    failure = None
    try:
        spec = spec_from_mapping(marker.kwargs, item.path, line, item.name)
    except SpecError as exc:
        failure = f"invalid @pytest.mark.stateful: {exc.message} ({item.path.name}:{line})"
    if failure is not None:
        pytest.fail(failure, pytrace=False)
    run = item.stash[spec_run_key] = SpecRun(spec)
    callspec = getattr(item, "callspec", None)
    target = callspec.params.get(KUBERNETES_FIXTURE) if callspec is not None else None
    try:
        run_spec_in_fresh_namespace(item.config, item.name, run, target)
    except StatefulError as exc:
        if Settings.of(item.config).traceback:
            raise
        failure = explain_failure(spec, exc)
    if failure is not None:
        pytest.fail(failure, pytrace=False)
