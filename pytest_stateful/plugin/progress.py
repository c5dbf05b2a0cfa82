"""Live progress of a waiting step in the terminal."""

from __future__ import annotations

import time

import pytest


class LiveProgress:
    """What a waiting step is waiting for: one line rewritten in place on a terminal, a plain line
    every PLAIN_EVERY seconds elsewhere (CI logs), nothing with -q."""

    PLAIN_EVERY = 10.0

    def __init__(self, config: pytest.Config) -> None:
        self.reporter: pytest.TerminalReporter | None = config.pluginmanager.get_plugin("terminalreporter")
        self.enabled = self.reporter is not None and config.get_verbosity() >= 0
        self.tty = bool(self.reporter is not None and self.reporter.isatty)
        self.shown = False
        self.last_plain = time.monotonic()

    def __call__(self, text: str) -> None:
        if not self.enabled or self.reporter is None:
            return
        if self.tty:
            if not self.shown:
                self.reporter.write("\n")
                self.shown = True
            self.reporter.rewrite(f"[stateful] {text}", erase=True)
        elif time.monotonic() - self.last_plain >= self.PLAIN_EVERY:
            self.reporter.write_line(f"[stateful] {text}")
            self.last_plain = time.monotonic()

    def __enter__(self) -> LiveProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.shown and self.reporter is not None:
            self.reporter.rewrite("", erase=True)


def say(config: pytest.Config, line: str) -> None:
    """One line in the terminal (nothing when there is no terminal reporter)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)
