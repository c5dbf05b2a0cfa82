"""Helpers for unit tests over timelines recorded from the real cluster."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from pytest_stateful.checks import Subject
from pytest_stateful.timeline import Entry, Timeline

DATA = Path(__file__).resolve().parents[1] / "data"


def load(name: str) -> Timeline:
    """A timeline recorded from the real local cluster by scripts/record_timelines.py."""
    return Timeline.load(DATA / f"{name}.timeline.json")


def renumbered(entries: list[Entry]) -> Timeline:
    return Timeline(dataclasses.replace(e, seq=i) for i, e in enumerate(entries))


def first(timeline: Timeline, predicate: Callable[[Entry], bool]) -> Entry:
    return next(e for e in timeline.entries if predicate(e))


SUBJECT = Subject("web", "recorded")
