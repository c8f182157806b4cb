"""Settings shared by the reliability tests: soak or CI size, the seed of every random choice."""

from __future__ import annotations

import os
import random
import re

SOAK = os.environ.get("TASKJOB_SOAK", "") not in ("", "0")
SEED = int(os.environ.get("TASKJOB_RELIABILITY_SEED") or random.SystemRandom().randrange(1 << 30))


def tracebacks(logs: str) -> list[str]:
    """Return each traceback in an operator log, from its header to its exception line."""
    return [m.group(0) for m in re.finditer(r"Traceback \(most recent call last\):\n(?:[ \t].*\n)*(.*)", logs)]
