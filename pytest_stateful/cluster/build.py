"""Build the local cluster's programs from their published Go modules.

Every component is the upstream program, compiled with this machine's Go
toolchain into a per-user cache outside the repository. A second run with a
warm cache only checks stamps and takes well under a second.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pytest_stateful.cluster.versions import DEFAULT_MINOR, PINS
from pytest_stateful.errors import BuildError

# The default cluster's version, and the real node's kubelet (other minors: cluster/versions.py).
KUBERNETES_VERSION = PINS[DEFAULT_MINOR]
ETCD_VERSION = "v3.6.10"
KWOK_VERSION = "v0.8.0"
COREDNS_VERSION = "v1.14.7"
HELM_VERSION = "v3.22.0"

# Progress lines while a long compile runs; CI logs must show life, not flood.
HEARTBEAT_SECONDS = 30.0


def cache_dir() -> Path:
    """Root of everything pytest-stateful keeps between runs (never in a repo)."""
    explicit = os.environ.get("PYTEST_STATEFUL_CACHE")
    if explicit:
        return Path(explicit).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "pytest-stateful"


@dataclass(frozen=True)
class Component:
    """One upstream program (or a set built from one module) at a pinned version."""

    name: str
    module: str
    version: str
    packages: tuple[str, ...]
    # "install": `go install pkg@version` works (no replace directives).
    # "wrapper": a small module requires the target, whose replaces are then ignored.
    # "kubernetes": a wrapper that also maps k8s staging modules to their published tags.
    method: str = "install"
    ldflags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def binaries(self) -> tuple[str, ...]:
        return tuple(_binary_name(p) for p in self.packages)

    def bin_dir(self, root: Path) -> Path:
        return root / "bin" / f"{self.name}-{self.version}"


def _binary_name(package: str) -> str:
    last = package.rstrip("/").split("/")[-1]
    # go.etcd.io/etcd/server/v3 builds a program called etcd, not v3.
    return "etcd" if package.startswith("go.etcd.io/etcd/server") else last


def _go_default_name(package: str) -> str:
    parts = package.rstrip("/").split("/")
    if len(parts) > 1 and re.fullmatch(r"v[0-9]+", parts[-1]):
        return parts[-2]
    return parts[-1]


def _kubernetes_ldflags(version: str) -> tuple[str, ...]:
    major, minor = version.lstrip("v").split(".")[:2]
    flags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
        ]
    return tuple(flags)


def control_plane(minor: str) -> Component:
    """kube-apiserver, kube-controller-manager, kube-scheduler and kubectl of one pinned minor."""
    version = PINS[minor]
    k8s_cmds = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"]
    return Component(
        "kubernetes",
        "k8s.io/kubernetes",
        version,
        tuple(f"k8s.io/kubernetes/cmd/{c}" for c in k8s_cmds),
        method="kubernetes",
        ldflags=_kubernetes_ldflags(version),
    )


def components(
    with_kubelet: bool = False, with_helm: bool = True, kubernetes: Sequence[str] = (DEFAULT_MINOR,)
) -> list[Component]:
    """The pinned set, in build order (fast ones first so failures show early): one control plane
    per minor in `kubernetes`; the kubelet only at the default version (the real node's)."""
    result = [
        Component(
            "kwok",
            "sigs.k8s.io/kwok",
            KWOK_VERSION,
            ("sigs.k8s.io/kwok/cmd/kwok", "sigs.k8s.io/kwok/cmd/kwokctl"),
        ),
        Component("coredns", "github.com/coredns/coredns", COREDNS_VERSION, ("github.com/coredns/coredns",)),
        Component(
            "etcd",
            "go.etcd.io/etcd/server/v3",
            ETCD_VERSION,
            ("go.etcd.io/etcd/server/v3",),
            method="wrapper",
        ),
        *[control_plane(minor) for minor in dict.fromkeys(kubernetes)],
    ]
    if with_helm:
        result.append(Component("helm", "helm.sh/helm/v3", HELM_VERSION, ("helm.sh/helm/v3/cmd/helm",)))
    if with_kubelet:
        # Its own component, so that the control plane's cached binaries stay valid without it.
        result.append(
            Component(
                "kubelet",
                "k8s.io/kubernetes",
                KUBERNETES_VERSION,
                ("k8s.io/kubernetes/cmd/kubelet",),
                method="kubernetes",
                ldflags=_kubernetes_ldflags(KUBERNETES_VERSION),
            )
        )
    return result


@dataclass
class Builder:
    root: Path
    log: Callable[[str], None] = field(default=lambda line: print(line, flush=True))

    @property
    def go_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            GOMODCACHE=str(self.root / "go" / "mod"),
            GOCACHE=str(self.root / "go" / "build"),
            GOTOOLCHAIN="local",  # never download another toolchain
            GOFLAGS="-mod=mod -buildvcs=false",
            CGO_ENABLED="0",
            GOWORK="off",
        )
        return env

    def build_all(self, wanted: Sequence[Component]) -> dict[str, Path]:
        go = shutil.which("go")
        if go is None:
            raise BuildError(
                "The Go toolchain was not found on PATH: install Go 1.24 or newer "
                "(and a GOPROXY it can reach) and run `pytest-stateful cluster build` again."
            )
        paths: dict[str, Path] = {}
        started = time.monotonic()
        for comp in wanted:
            paths[comp.name] = self.build(comp)
        self.log(f"[build] all components ready in {_fmt(time.monotonic() - started)} ({self.root / 'bin'})")
        return paths

    def is_built(self, comp: Component) -> bool:
        out = comp.bin_dir(self.root)
        return (out / ".complete").is_file() and all((out / b).is_file() for b in comp.binaries)

    def build(self, comp: Component) -> Path:
        out = comp.bin_dir(self.root)
        if self.is_built(comp):
            self.log(f"[build] {comp.name} {comp.version}: cached ({', '.join(comp.binaries)})")
            return out
        self.log(f"[build] {comp.name} {comp.version}: building {', '.join(comp.binaries)}")
        started = time.monotonic()
        tmp = out.with_name(out.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        gomod = self._download(comp)
        if comp.method == "install":
            self._go(
                comp,
                ["install", "-trimpath", *self._ldflags(comp), *[f"{p}@{comp.version}" for p in comp.packages]],
                cwd=tmp,
                extra_env={"GOBIN": str(tmp)},
            )
        else:
            workdir = self._wrapper_module(comp, gomod)
            self._go(comp, ["get", *[f"{p}@{comp.version}" for p in comp.packages]], cwd=workdir)
            self._go(
                comp, ["build", "-trimpath", *self._ldflags(comp), "-o", str(tmp) + "/", *comp.packages], cwd=workdir
            )
            # Go names a binary after the last path element that is not a major
            # version (go.etcd.io/etcd/server/v3 -> "server"); give it its real name.
            for pkg in comp.packages:
                built = tmp / _go_default_name(pkg)
                if built.name != _binary_name(pkg) and built.exists():
                    built.rename(tmp / _binary_name(pkg))
        missing = [b for b in comp.binaries if not (tmp / b).is_file()]
        if missing:
            raise BuildError(f"{comp.name} {comp.version}: go finished but did not produce {', '.join(missing)}.")
        elapsed = time.monotonic() - started
        (tmp / ".complete").write_text(
            json.dumps({"version": comp.version, "seconds": round(elapsed, 1), "go": _go_version()}) + "\n"
        )
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        self.log(f"[build] {comp.name} {comp.version}: done in {_fmt(elapsed)}")
        return out

    def _ldflags(self, comp: Component) -> list[str]:
        return ["-ldflags", " ".join(("-s", "-w", *comp.ldflags))]

    def _download(self, comp: Component) -> str:
        """Fetch the module (fails in one sentence without a module proxy); its go.mod text."""
        proc = subprocess.run(
            ["go", "mod", "download", "-json", f"{comp.module}@{comp.version}"],
            env=self.go_env,
            cwd=self.root,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            detail = _first_error(proc.stdout + proc.stderr)
            raise BuildError(
                f"Could not fetch {comp.module}@{comp.version} through the Go module proxy "
                f"(GOPROXY={self.go_env.get('GOPROXY') or 'default'}): {detail}"
            )
        return Path(json.loads(proc.stdout)["GoMod"]).read_text()

    def _wrapper_module(self, comp: Component, gomod: str) -> Path:
        workdir = self.root / "src" / f"{comp.name}-{comp.version}"
        workdir.mkdir(parents=True, exist_ok=True)
        lines = ["module pytest-stateful.local/build/" + comp.name, "", "go 1.24.0", ""]
        if comp.method == "kubernetes":
            godebug = re.search(r"^godebug .*$", gomod, re.M)
            if godebug:
                lines += [godebug.group(0), ""]
            minor_tag = "v0." + comp.version.lstrip("v").split(".", 1)[1]
            staging = sorted(set(re.findall(r"^\s*(k8s\.io/\S+)\s*=>\s*\./staging/", gomod, re.M)))
            if not staging:
                raise BuildError(f"{comp.module}@{comp.version}: no staging replaces found in its go.mod.")
            lines.append(f"require {comp.module} {comp.version}")
            lines.append("")
            lines.append("replace (")
            lines += [f"\t{m} => {m} {minor_tag}" for m in staging]
            lines.append(")")
        else:
            lines.append(f"require {comp.module} {comp.version}")
        (workdir / "go.mod").write_text("\n".join(lines) + "\n")
        (workdir / "go.sum").touch()
        return workdir

    def _go(self, comp: Component, args: list[str], cwd: Path, extra_env: dict[str, str] | None = None) -> None:
        env = self.go_env | (extra_env or {})
        if args[0] in ("build", "install"):
            args = [args[0], "-v", *args[1:]]
        started = time.monotonic()
        proc = subprocess.Popen(
            ["go", *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        compiled = 0
        other: list[str] = []
        lock = threading.Lock()
        done = threading.Event()

        def heartbeat() -> None:
            while not done.wait(HEARTBEAT_SECONDS):
                with lock:
                    n = compiled
                self.log(
                    f"[build] {comp.name} {comp.version}: go {args[0]}, {n} packages compiled, "
                    f"{_fmt(time.monotonic() - started)}"
                )

        beat = threading.Thread(target=heartbeat, daemon=True)
        beat.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.rstrip("\n")
                # `go build -v` prints one bare import path per compiled package.
                if re.fullmatch(r"[\w.\-/~]+", line):
                    with lock:
                        compiled += 1
                else:
                    other.append(line)
            rc = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            done.set()
        if rc != 0:
            tail = "\n".join(other[-25:])
            raise BuildError(f"{comp.name} {comp.version}: `go {' '.join(args[:2])} ...` failed (exit {rc}):\n{tail}")


def _first_error(text: str) -> str:
    for line in text.splitlines():
        if '"Error"' in line:
            return str(json.loads("{" + line.strip().rstrip(",") + "}")["Error"])
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def _go_version() -> str:
    try:
        return subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


def _fmt(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


if __name__ == "__main__":
    try:
        Builder(cache_dir()).build_all(components(with_kubelet="--kubelet" in sys.argv))
    except BuildError as exc:
        print(f"pytest-stateful: {exc}", file=sys.stderr)
        sys.exit(1)
