"""Kubernetes versions of the local cluster: the pinned patch per minor, and matrix targets.

A target is a minor version with the feature gates the user set on top of the defaults. One
target is one local cluster (its own name, ports and state), so several run side by side.
`cluster build --kubernetes`, `cluster up --kubernetes --feature-gates` and
`--stateful-kubernetes` all read this module; docs/clusters.md#kubernetes-versions shows the table.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from pytest_stateful.errors import UsageError

# One patch per minor: the newest the Go module proxy serves that builds with this machine's Go (1.26)
# and runs under KWOK v0.8.0's binary runtime. Bump a patch here; nothing else names one.
PINS: dict[str, str] = {
    # go 1.24. The oldest minor in upstream support when this was written.
    "1.33": "v1.33.13",
    # The default cluster: the version the project was first built and proven on (go 1.24).
    "1.34": "v1.34.4",
    # go 1.25. From 1.35.4 MaxUnavailableStatefulSet is off by default again (kubernetes#137926):
    # 1.35.0-1.35.3 turned it on, which stalled Parallel rollouts that had to replace broken pods
    # (kubernetes#137409). Compare both with --feature-gates.
    "1.35": "v1.35.4",
    # go 1.26: needs this machine's Go, no older.
    "1.36": "v1.36.3",
}
DEFAULT_MINOR = "1.34"
# Every local cluster turns this on unless --feature-gates says otherwise, so a spec can show a
# rollout that replaces several pods at once (maxUnavailable > 1). It is off by default upstream in
# 1.34 (alpha) and from 1.35.4 (beta); on by default in 1.35.0-1.35.3.
DEFAULT_GATES: dict[str, bool] = {"MaxUnavailableStatefulSet": True}

_GATE = re.compile(r"([A-Z][A-Za-z0-9]*)=(true|false)", re.I)


@dataclass(frozen=True)
class Target:
    """A minor version and the feature gates set on top of DEFAULT_GATES (sorted by name)."""

    minor: str = DEFAULT_MINOR
    gates: tuple[tuple[str, bool], ...] = ()

    @property
    def version(self) -> str:
        # A cluster saved before its minor was unpinned must still be described and stopped.
        return PINS.get(self.minor, f"v{self.minor} (no longer pinned)")

    @property
    def is_default(self) -> bool:
        return self.minor == DEFAULT_MINOR and not self.gates

    @property
    def gates_text(self) -> str:
        """The user's gates in Kubernetes' own syntax (`A=false,B=true`); "" for none."""
        return ",".join(gate_words(self.gates))

    @property
    def feature_gates(self) -> dict[str, bool]:
        """What the cluster's components are started with: the defaults, then the user's gates."""
        return DEFAULT_GATES | dict(self.gates)

    @property
    def label(self) -> str:
        """How a person names it: `1.35`, `1.35 MaxUnavailableStatefulSet=false`."""
        return " ".join([self.minor, *gate_words(self.gates)])

    @property
    def id(self) -> str:
        """The test id part: `k8s-1.35`, `k8s-1.35-MaxUnavailableStatefulSet=false`."""
        return "-".join(["k8s", self.minor, *gate_words(self.gates)])

    def cluster_name(self, base: str) -> str:
        """The local cluster's name: the default target keeps `base`; others add the minor, and a
        short digest of the gates (names stay short enough for kwokctl's contexts and paths)."""
        if self.is_default:
            return base
        name = f"{base}-{self.minor.replace('.', '-')}"
        if self.gates:
            name += "-g" + hashlib.sha256(self.gates_text.encode()).hexdigest()[:8]
        return name


def gate_words(gates: Iterable[tuple[str, bool]]) -> list[str]:
    """Each gate as Kubernetes writes it: `MaxUnavailableStatefulSet=false`."""
    return [f"{name}={str(on).lower()}" for name, on in gates]


def parse_minor(text: str, where: str) -> str:
    """`1.35`, `v1.35` or the pinned patch `v1.35.4` -> "1.35"; anything else is one sentence."""
    match = re.fullmatch(r"v?(1\.\d+)(\.\d+)?", text.strip())
    pinned = ", ".join(f"{minor} ({patch})" for minor, patch in PINS.items())
    if match is None or match.group(1) not in PINS:
        raise UsageError(f"{where}: Kubernetes {text.strip()!r} is not pinned; choose one of {pinned}")
    minor = match.group(1)
    if match.group(2) and f"v{minor}{match.group(2)}" != PINS[minor]:
        raise UsageError(
            f"{where}: Kubernetes {text.strip()} is not pinned: {minor} is pinned to {PINS[minor]} "
            f"(write {minor}; the pins are in pytest_stateful/cluster/versions.py)"
        )
    return minor


def parse_gates(text: str, where: str) -> tuple[tuple[str, bool], ...]:
    """`A=false,B=true` (commas or spaces) -> sorted pairs; a malformed gate is one sentence."""
    gates: dict[str, bool] = {}
    for word in re.split(r"[\s,]+", text.strip()):
        if not word:
            continue
        match = _GATE.fullmatch(word)
        if match is None:
            raise UsageError(
                f"{where}: feature gate {word!r} is not Name=true or Name=false "
                "(for example MaxUnavailableStatefulSet=false)"
            )
        gates[match.group(1)] = match.group(2).lower() == "true"
    return tuple(sorted(gates.items()))


def parse_targets(text: str, where: str) -> tuple[Target, ...]:
    """A matrix: entries separated by commas or new lines, each a version and optional gates
    separated by spaces: `1.34, 1.35, 1.35 MaxUnavailableStatefulSet=false`. Duplicates go."""
    targets: list[Target] = []
    for entry in re.split(r"[,\n]", text):
        words = entry.split()
        if not words:
            continue
        if "=" in words[0]:
            raise UsageError(
                f"{where}: {words[0]!r} is a feature gate where a version was expected: separate the gates of one "
                "entry with spaces, not commas ('1.35 A=false B=true'), and entries with commas"
            )
        target = Target(parse_minor(words[0], where), parse_gates(" ".join(words[1:]), where))
        if target not in targets:
            targets.append(target)
    if not targets:
        raise UsageError(f"{where}: no Kubernetes version given; for example 1.34,1.35")
    return tuple(targets)
