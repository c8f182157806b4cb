"""Split a py-spy profile of the operator (`run.py --profile DIR`, collapsed stacks) by kind of work.

    python benchmarks/profile_split.py before/b4.pyspy.txt after/b4.pyspy.txt

Several profiles give one table, a column each. Each sample is given to the first category whose
pattern matches a frame of its stack, innermost frame first, so "decode" wins over the watch loop
that called it. Prints each category's share of the busy
samples (idle = the event loop waiting in select/epoll, threads waiting for work).
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

# (category, pattern on a frame "function (file:line)"); matched innermost first.
CATEGORIES: list[tuple[str, re.Pattern[str]]] = [
    ("decode (JSON of watch events and responses)",
     re.compile(r"(json/decoder|json/__init__|msgspec|_decode_events|decode_event|decode_object|decode_list)")),
    ("plan (core: validate, plan, status, render)", re.compile(r"taskjobs/core/")),
    ("store (facts, slimming, fact maps)", re.compile(r"taskjobs/shell/store\.py")),
    ("write (API calls: creates, patches, Events)",
     re.compile(r"(kubernetes/client|urllib3|ssl\.py|http/client|shell/kube\.py|shell/statuswriter\.py|shell/apisession\.py)")),
    ("kopf (watch streams, per-event processing, queueing)", re.compile(r"kopf/")),
    ("aiohttp (sockets, HTTP parsing)", re.compile(r"aiohttp/")),
    ("logging", re.compile(r"logging/|taskjobs/shell/logs\.py")),
    ("reconciler/handlers/watch (shell glue)", re.compile(r"taskjobs/shell/")),
    ("asyncio loop", re.compile(r"asyncio/")),
]


# Innermost frames that are a thread waiting (for a socket, for work), not working.
# With uvloop the loop's own work (libuv, its Cython transports) and its wait in epoll are one C frame
# under Runner.run that py-spy cannot split: counted as idle, so "busy" is Python code.
IDLE = re.compile(
    r"^(SSLSocket\.read \(ssl|_worker \(concurrent/futures/thread\.py:81|\w*Selector\.select|"
    r"poll_wait_for_socket|BaseServer\.serve_forever|Condition\.wait|Event\.wait|Runner\.run \(asyncio/runners)"
)


def split(path: Path) -> tuple[Counter[str], int]:
    """Return samples per category and the total."""
    counts: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = stack.split(";")
        total += int(n)
        if IDLE.search(frames[-1]):
            counts["idle"] += int(n)
            continue
        for frame in reversed(frames):
            cat = next((c for c, p in CATEGORIES if p.search(frame)), None)
            if cat is not None:
                counts[cat] += int(n)
                break
        else:
            counts["other"] += int(n)
    return counts, total


def main() -> int:
    """Print one table: the share of busy samples of each kind of work, a column per profile given."""
    splits = [split(Path(arg)) for arg in sys.argv[1:]]
    kinds = [c for c, _ in CATEGORIES] + ["other"]
    print("| kind of work | " + " | ".join(Path(a).parent.name or a for a in sys.argv[1:]) + " |")
    print("|---|" + "---|" * len(splits))
    for kind in kinds:
        cells = [f"{c[kind] / max(1, t - c['idle']) * 100:.0f} %" for c, t in splits]
        print(f"| {kind} | " + " | ".join(cells) + " |")
    print("| busy samples (50 Hz) | " + " | ".join(str(t - c["idle"]) for c, t in splits) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
