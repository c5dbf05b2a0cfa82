"""Images for the real node, without a registry: built with umoci from Debian's busybox-static.

One small image serves every need: a shell, `hostname`, `nslookup` and a web server
(busybox httpd), and `sleep` for the pod sandbox ("pause"). It is imported into
containerd under several tags, so a test can still roll out "another image"
(each original image of a workload maps to the next tag).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from pytest_stateful.dns import RESOLVE
from pytest_stateful.errors import ImageError

REPOSITORY = "pytest-stateful.local/tools"
PAUSE = "pytest-stateful.local/pause:1"
COREDNS = "pytest-stateful.local/coredns:1"
TAGS = [str(n) for n in range(1, 10)]
APPLETS = ("sh", "hostname", "nslookup", "httpd", "sleep", "cat", "echo", "ls", "mkdir", "rm", "test", "wget", "sed")
# Bumped when what build_images makes changes, so a cached older build is made again.
IMAGES_VERSION = 2
BUSYBOX = Path("/bin/busybox")


def _run(args: list[str], cwd: Path | None = None) -> None:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise ImageError(f"{' '.join(args[:3])} failed: {(proc.stderr or proc.stdout).strip()}")


def build_archive(
    target: Path,
    tag: str,
    entrypoint: list[str],
    cmd: list[str],
    extra: dict[str, Path] | None = None,
    applets: tuple[str, ...] = APPLETS,
) -> Path:
    """An OCI image layout, tarred: busybox-static and these applets, with this entrypoint.
    Without applets the image has no shell and no tools: only /bin/busybox, run by its full path."""
    for tool in ("umoci",):
        if shutil.which(tool) is None:
            raise ImageError(f"{tool} is not installed: run `./run setup --real-node` (apt-get install umoci)")
    if not BUSYBOX.is_file():
        raise ImageError("busybox-static is not installed: run `./run setup --real-node`")
    with tempfile.TemporaryDirectory(prefix="pytest-stateful-image-") as tmp:
        layout, bundle = Path(tmp) / "layout", Path(tmp) / "bundle"
        _run(["umoci", "init", "--layout", str(layout)])
        _run(["umoci", "new", "--image", f"{layout}:{tag}"])
        _run(["umoci", "unpack", "--image", f"{layout}:{tag}", str(bundle)])
        rootfs = bundle / "rootfs"
        for sub in ("bin", "etc", "tmp", "www", "data"):
            (rootfs / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
        for applet in applets:
            (rootfs / "bin" / applet).symlink_to("busybox")
        (rootfs / "www" / "index.html").write_text("pytest-stateful\n")
        for name, source in (extra or {}).items():
            shutil.copy2(source, rootfs / "bin" / name)
        if "sh" in applets:
            # busybox nslookup ignores resolv.conf's search list; `resolve NAME` applies it, as libc would.
            resolve = rootfs / "bin" / "resolve"
            resolve.write_text("#!/bin/sh\n" + RESOLVE)
            resolve.chmod(0o755)
        (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
        _run(["umoci", "repack", "--image", f"{layout}:{tag}", str(bundle)])
        config = ["umoci", "config", "--image", f"{layout}:{tag}", "--config.workingdir", "/"]
        config += [f"--config.entrypoint={e}" for e in entrypoint] + [f"--config.cmd={c}" for c in cmd]
        config += ["--config.env=PATH=/bin"]
        _run(config)
        target.parent.mkdir(parents=True, exist_ok=True)
        _run(["tar", "-C", str(layout), "-cf", str(target), "."])
    return target


def build_images(directory: Path, coredns: Path) -> dict[str, Path]:
    """The pause, tools and coredns archives, built once into `directory` (the build cache)."""
    stamp = directory / "images.json"
    archives = {
        "pause": directory / "pause.tar",
        "tools": directory / "tools.tar",
        "coredns": directory / "coredns.tar",
    }
    wanted = {"busybox": BUSYBOX.resolve().name, "version": IMAGES_VERSION}
    if stamp.is_file() and all(p.is_file() for p in archives.values()) and _stamp(stamp) == wanted:
        return archives
    # The pause image is shell-less, as the real one is: a workload running it can only be probed
    # from an ephemeral container.
    build_archive(archives["pause"], "1", ["/bin/busybox", "sleep"], ["2147483647"], applets=())
    # PID 1 gets no default signal handlers: without the trap, SIGTERM is ignored and every
    # pod takes its whole grace period (30 s) to stop.
    serve = "trap 'exit 0' TERM; httpd -f -p 80 -h /www & wait"
    build_archive(archives["tools"], "1", ["/bin/sh", "-c"], [serve])
    # The cluster DNS as a pod too (k8s-app=kube-dns), as on kind: what port-forward probing talks to.
    build_archive(archives["coredns"], "1", ["/bin/coredns"], [], extra={"coredns": coredns})
    stamp.write_text(json.dumps(wanted) + "\n")
    return archives


def _stamp(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def import_images(archives: dict[str, Path], address: Path) -> list[str]:
    """Import into containerd's k8s.io namespace; the tools image under every tag in TAGS."""
    ctr = ["ctr", "--address", str(address), "-n", "k8s.io"]
    _run([*ctr, "images", "import", "--base-name", PAUSE.rsplit(":", 1)[0], str(archives["pause"])])
    _run([*ctr, "images", "import", "--base-name", REPOSITORY, str(archives["tools"])])
    _run([*ctr, "images", "import", "--base-name", COREDNS.rsplit(":", 1)[0], str(archives["coredns"])])
    names = [PAUSE, COREDNS, f"{REPOSITORY}:1"]
    for tag in TAGS[1:]:
        _run([*ctr, "images", "tag", "--force", f"{REPOSITORY}:1", f"{REPOSITORY}:{tag}"])
        names.append(f"{REPOSITORY}:{tag}")
    return names
