"""Where the operator's memory goes: tracemalloc snapshots grouped by file, on a signal (benchmarks only).

Set TASKJOB_TRACEMALLOC=/some/dir before starting the operator: tracing starts at once, and each
SIGUSR2 writes `census-N.txt` there, the live allocations grouped by source file, largest first, then
the deep size of each part of the operator's own state (the store's maps, the reconciler's caches and
plan memories), found by type among the live objects.
Tracing costs CPU and memory of its own, so the benchmarks measure CPU and RSS in runs without it.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import tracemalloc
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ENV = "TASKJOB_TRACEMALLOC"
_SKIP = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType)


def deep_size(root: Any, seen: set[int]) -> int:
    """Return the bytes of `root` and everything it refers to that is not in `seen` (which grows)."""
    total = 0
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, _SKIP):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(_referents(obj))
    return total


def _referents(obj: Any) -> Iterator[Any]:
    if isinstance(obj, str | bytes | int | float | bool) or obj is None:
        return iter(())
    if isinstance(obj, dict):
        return iter([*obj.keys(), *obj.values()])
    return iter(gc.get_referents(obj))


def _instances(name: str) -> list[Any]:
    return [o for o in gc.get_objects() if type(o).__name__ == name and type(o).__module__.startswith("taskjobs.")]


def state_census() -> list[str]:
    """Return the deep size of each part of the operator's state; what parts share is counted in the first."""
    lines: list[str] = []
    seen: set[int] = set()
    # Modules, classes and functions are skipped by type; their shared constants (interned names) are few.
    for store in _instances("Store"):
        for part in ("taskjobs", "jobs", "pods", "finished_seen", "_maps", "_log", "expected", "written", "outputs",
                     "final"):  # fmt: skip
            if hasattr(store, part):
                value = getattr(store, part)
                lines.append(f"{deep_size(value, seen) / 2**20:8.2f} MiB  store.{part} ({len(value)} entries)")
    for reconciler in _instances("Reconciler"):
        lines.append(f"{deep_size(reconciler.validated, seen) / 2**20:8.2f} MiB  reconciler.validated "
                     f"({len(reconciler.validated)} entries)")  # fmt: skip
        remembered = reconciler.status.remembered
        parts: dict[str, int] = {}
        for kept in remembered.values():
            parts["raw"] = parts.get("raw", 0) + deep_size(kept.raw, seen)
            for field in ("facts", "latest", "status", "shape", "jobs_of", "first_seen", "ready", "volatile"):
                parts[field] = parts.get(field, 0) + deep_size(getattr(kept.memory, field), seen)
            parts["memory, rest"] = parts.get("memory, rest", 0) + deep_size(kept, seen)
        for field, size in parts.items():
            lines.append(f"{size / 2**20:8.2f} MiB  remembered[*].{field} ({len(remembered)} TaskJobs)")
    return lines


def write_census(directory: Path, top: int = 40) -> Path:
    """Write the live allocations grouped by file, and the operator's state by part; return the file written."""
    before = tracemalloc.take_snapshot()
    # Cyclic garbage waiting for a collection holds memory too: how much a full collection frees says so.
    unreachable = gc.collect()
    snapshot = tracemalloc.take_snapshot()
    stats = snapshot.statistics("filename")
    total = sum(s.size for s in stats)
    garbage = sum(s.size for s in before.statistics("filename")) - total
    n = len(list(directory.glob("census-*.txt")))
    path = directory / f"census-{n}.txt"
    _, peak = tracemalloc.get_traced_memory()
    lines = [f"total traced: {total / 2**20:.1f} MiB in {sum(s.count for s in stats)} blocks; traced peak so far "
             f"{peak / 2**20:.1f} MiB; a full collection freed {unreachable} objects, {garbage / 2**20:.2f} MiB"]
    lines += [f"{s.size / 2**20:8.2f} MiB {s.count:9d} blocks  {s.traceback[0].filename}" for s in stats[:top]]
    lines += ["", "by line:"]
    lines += [f"{s.size / 2**20:8.2f} MiB {s.count:9d} blocks  {s.traceback[0]}" for s in
              snapshot.statistics("lineno")[:top]]
    lines += ["", "state (deep sizes; shared objects counted once, in the first part that holds them):"]
    lines += state_census()
    path.write_text("\n".join(lines) + "\n")
    return path


def _malloc_stats() -> None:
    """Print pymalloc's arenas and glibc malloc's arenas (objects over 512 bytes, C libraries) to stderr."""
    sys._debugmallocstats()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_stats()
    except (OSError, AttributeError):  # not glibc
        pass


def install_from_env() -> None:
    """Start tracing and install the SIGUSR2 handler when TASKJOB_TRACEMALLOC names a directory.

    With TASKJOB_MALLOCSTATS set, SIGUSR1 prints pymalloc's arena statistics to stderr (the log), without
    tracing: how much of the RSS is arenas kept for a few live objects (fragmentation).
    """
    if os.environ.get("TASKJOB_MALLOCSTATS"):
        signal.signal(signal.SIGUSR1, lambda *_: _malloc_stats())
    target = os.environ.get(ENV)
    if not target:
        return
    directory = Path(target)
    directory.mkdir(parents=True, exist_ok=True)
    tracemalloc.start()

    def on_signal(*_: Any) -> None:
        write_census(directory)

    signal.signal(signal.SIGUSR2, on_signal)
