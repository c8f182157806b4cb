"""The project's Docker engine (tests/images/docker.sh) as the image tests use it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# Where tests/images/lib.sh puts the engine's socket (TASKJOB_DOCKER_RUN overrides both).
ENGINE_RUN = Path(os.environ.get("TASKJOB_DOCKER_RUN") or "/run/taskjob-docker")
# Debian's client, of the engine's version; the one first on PATH may be another (a newer one uses BuildKit).
DOCKER = "/usr/bin/docker"
IMAGES = ("taskjob-operator:0.1.0", "taskjob-runner:0.1.0", "busybox:1.36")


@dataclass(frozen=True)
class Engine:
    """Our Docker engine: its socket, and a PATH on which `docker` is the client that matches it."""

    host: str
    bin_dir: Path

    def env(self) -> dict[str, str]:
        """Return an environment in which `docker` (as `taskjob run --runtime docker` calls it) uses this engine."""
        env = dict(os.environ)
        env["DOCKER_HOST"] = self.host
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        return env

    def run(self, args: Sequence[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Return the finished `docker args...` (not checked: tests assert on the exit code themselves)."""
        return subprocess.run([DOCKER, *args], capture_output=True, text=True, env=self.env(), timeout=timeout)
