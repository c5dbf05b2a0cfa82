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

from pytest_stateful.errors import ImageError

REPOSITORY = "pytest-stateful.local/tools"
PAUSE = "pytest-stateful.local/pause:1"
COREDNS = "pytest-stateful.local/coredns:1"
TAGS = [str(n) for n in range(1, 10)]
APPLETS = ("sh", "hostname", "nslookup", "httpd", "sleep", "cat", "echo", "ls", "mkdir", "rm", "test", "wget")
BUSYBOX = Path("/bin/busybox")
RESOLVE = r"""#!/bin/sh
# resolve NAME: the addresses NAME has, trying resolv.conf's search domains first (ndots:5).
name=$1
for domain in $(sed -n 's/^search //p' /etc/resolv.conf) ""; do
    query=$name${domain:+.$domain}
    if out=$(nslookup -type=a "$query" 2>/dev/null); then
        echo "$out" | sed -n '/^Name:/,$ s/^Address: *//p'
        exit 0
    fi
done
exit 1
"""


def _run(args: list[str], cwd: Path | None = None) -> None:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise ImageError(f"{' '.join(args[:3])} failed: {(proc.stderr or proc.stdout).strip()}")


def build_archive(
    target: Path, tag: str, entrypoint: list[str], cmd: list[str], extra: dict[str, Path] | None = None
) -> Path:
    """An OCI image layout, tarred: busybox-static and its applets, with this entrypoint."""
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
        for applet in APPLETS:
            (rootfs / "bin" / applet).symlink_to("busybox")
        (rootfs / "www" / "index.html").write_text("pytest-stateful\n")
        for name, source in (extra or {}).items():
            shutil.copy2(source, rootfs / "bin" / name)
        # busybox nslookup ignores resolv.conf's search list; `resolve NAME` applies it, as libc would.
        resolve = rootfs / "bin" / "resolve"
        resolve.write_text(RESOLVE)
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
    if stamp.is_file() and all(p.is_file() for p in archives.values()):
        return archives
    build_archive(archives["pause"], "1", ["/bin/sleep"], ["2147483647"])
    # PID 1 gets no default signal handlers: without the trap, SIGTERM is ignored and every
    # pod takes its whole grace period (30 s) to stop.
    serve = "trap 'exit 0' TERM; httpd -f -p 80 -h /www & wait"
    build_archive(archives["tools"], "1", ["/bin/sh", "-c"], [serve])
    # The cluster DNS as a pod too (k8s-app=kube-dns), as on kind: what port-forward probing talks to.
    build_archive(archives["coredns"], "1", ["/bin/coredns"], [], extra={"coredns": coredns})
    stamp.write_text(json.dumps({"busybox": BUSYBOX.resolve().name}) + "\n")
    return archives


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
