"""Split a py-spy profile of the operator (`run.py --profile DIR`, collapsed stacks) by kind of work.

    python benchmarks/profile_split.py /tmp/prof/b4.pyspy.txt

Each sample is given to the first category whose pattern matches a frame of its stack, innermost frame
first, so "decode" wins over the watch loop that called it. Prints each category's share of the busy
samples (idle = the event loop waiting in select/epoll, threads waiting for work).
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

# (category, pattern on a frame "function (file:line)"); matched innermost first.
CATEGORIES: list[tuple[str, re.Pattern[str]]] = [
    ("decode (JSON of watch events and responses)", re.compile(r"(json/decoder|json/__init__|orjson|msgspec|_decode_events|decode_event)")),
    ("plan (core: validate, plan, status, render)", re.compile(r"taskjobs/core/")),
    ("store (facts, slimming, fact maps)", re.compile(r"taskjobs/shell/store\.py")),
    ("write (API calls: creates, patches, Events)", re.compile(r"(kubernetes/client|urllib3|ssl\.py|http/client|taskjobs/shell/kube\.py|taskjobs/shell/statuswriter\.py|taskjobs/shell/apiclient\.py)")),
    ("kopf (watch streams, per-event processing, queueing)", re.compile(r"kopf/")),
    ("aiohttp (sockets, HTTP parsing)", re.compile(r"aiohttp/")),
    ("logging", re.compile(r"logging/|taskjobs/shell/logs\.py")),
    ("reconciler/handlers/watch (shell glue)", re.compile(r"taskjobs/shell/")),
    ("asyncio loop", re.compile(r"asyncio/")),
]


# Innermost frames that are a thread waiting (for a socket, for work), not working.
IDLE = re.compile(
    r"^(SSLSocket\.read \(ssl|_worker \(concurrent/futures/thread\.py:81|\w*Selector\.select|"
    r"poll_wait_for_socket|BaseServer\.serve_forever|Condition\.wait|Event\.wait)"
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
    """Print the split of each profile given."""
    for arg in sys.argv[1:]:
        counts, total = split(Path(arg))
        busy = total - counts["idle"]
        print(f"\n{arg}: {total} samples, {busy} busy")
        print("| kind of work | share of busy samples |\n|---|---|")
        for cat, n in counts.most_common():
            if cat != "idle":
                print(f"| {cat} | {n / max(1, busy) * 100:.0f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
