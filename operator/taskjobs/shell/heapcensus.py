"""Where the operator's memory goes: tracemalloc snapshots grouped by file, on a signal (benchmarks only).

Set TASKJOB_TRACEMALLOC=/some/dir before starting the operator: tracing starts at once, and each
SIGUSR2 writes `census-N.txt` there, the live allocations grouped by source file, largest first.
Tracing costs CPU and memory of its own, so the benchmarks measure CPU and RSS in runs without it.
"""

from __future__ import annotations

import os
import signal
import tracemalloc
from pathlib import Path
from typing import Any

ENV = "TASKJOB_TRACEMALLOC"


def write_census(directory: Path, top: int = 40) -> Path:
    """Write the live allocations grouped by file; return the file written."""
    snapshot = tracemalloc.take_snapshot()
    stats = snapshot.statistics("filename")
    total = sum(s.size for s in stats)
    n = len(list(directory.glob("census-*.txt")))
    path = directory / f"census-{n}.txt"
    lines = [f"total traced: {total / 2**20:.1f} MiB in {sum(s.count for s in stats)} blocks"]
    lines += [f"{s.size / 2**20:8.2f} MiB {s.count:9d} blocks  {s.traceback[0].filename}" for s in stats[:top]]
    path.write_text("\n".join(lines) + "\n")
    return path


def install_from_env() -> None:
    """Start tracing and install the SIGUSR2 handler when TASKJOB_TRACEMALLOC names a directory."""
    target = os.environ.get(ENV)
    if not target:
        return
    directory = Path(target)
    directory.mkdir(parents=True, exist_ok=True)
    tracemalloc.start()

    def on_signal(*_: Any) -> None:
        write_census(directory)

    signal.signal(signal.SIGUSR2, on_signal)
