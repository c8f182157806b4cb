#!/usr/bin/env python3
"""Writes a one-layer image archive in `docker save` format, which `ctr images import` reads.

    image-tar.py --tag NAME:TAG --entrypoint /pause --file SRC:/pause [--file SRC:DEST ...] OUT.tar

No registry is reachable from the test machines, so the real node's own images (the pause sandbox, the
test probe) are packed from locally built static binaries. Deterministic: the same inputs give the same
bytes (mtimes are zero), so an image is rebuilt only when its content changes.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import tarfile
from pathlib import Path


def layer(files: list[tuple[Path, str]]) -> bytes:
    """Return an uncompressed tar of the files, every one mode 0755 and owned by root."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for src, dest in files:
            parts = dest.strip("/").split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
            data = src.read_bytes()
            info = tarfile.TarInfo("/".join(parts))
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tag", required=True)
    p.add_argument("--entrypoint", required=True)
    p.add_argument("--file", action="append", required=True, help="SRC:DEST")
    p.add_argument("--user", default="")
    p.add_argument("out")
    a = p.parse_args()
    files = []
    for spec in a.file:
        src, sep, dest = spec.partition(":")
        if not sep or not dest.startswith("/"):
            p.error(f"--file {spec!r}: expected SRC:/absolute/dest")
        files.append((Path(src), dest))
    blob = layer(files)
    diff_id = "sha256:" + hashlib.sha256(blob).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": [a.entrypoint], "User": a.user, "Env": ["PATH=/"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "tests/testenv/node/image-tar.py"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layer_name = diff_id.removeprefix("sha256:") + "/layer.tar"
    manifest = [{"Config": config_name, "RepoTags": [a.tag], "Layers": [layer_name]}]
    with tarfile.open(a.out, mode="w") as tar:
        for name, data in (
            (config_name, config_bytes),
            (layer_name, blob),
            ("manifest.json", json.dumps(manifest).encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


if __name__ == "__main__":
    main()
