"""Build the real node's images as OCI archives (no registry), and optionally import them.

    .venv/bin/python scripts/build_images.py DIR                   # DIR/pause.tar, tools.tar, coredns.tar
    .venv/bin/python scripts/build_images.py DIR --import SOCKET   # also into containerd (namespace k8s.io)

`pytest-stateful cluster up --node real` does the same into the build cache; this
script is for looking at, or reusing, the images on their own. Needs umoci and
busybox-static (Debian), and CoreDNS from `pytest-stateful cluster build`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pytest_stateful.cluster.build import COREDNS_VERSION, cache_dir
from pytest_stateful.cluster.images import build_images, import_images


def main(args: list[str]) -> None:
    if not args or args[0].startswith("-"):
        sys.exit(__doc__)
    coredns = cache_dir() / "bin" / f"coredns-{COREDNS_VERSION}" / "coredns"
    archives = build_images(Path(args[0]), coredns)
    for name, path in archives.items():
        print(f"{name}: {path}")
    if len(args) == 3 and args[1] == "--import":
        for image in import_images(archives, Path(args[2])):
            print(f"imported {image}")


if __name__ == "__main__":
    main(sys.argv[1:])
