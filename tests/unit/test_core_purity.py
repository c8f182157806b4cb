"""The functional core stays pure: importing all of taskjobs.core loads no client, no kopf, no shell."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "operator" / "taskjobs" / "core"


def test_the_core_imports_neither_kopf_nor_a_kubernetes_client_nor_the_shell() -> None:
    modules = sorted(p.stem for p in CORE.glob("*.py") if p.stem != "__init__")
    assert {"plan", "models", "validation", "render", "observe"} <= set(modules)
    script = (
        "import sys\n"
        + "".join(f"import taskjobs.core.{m}\n" for m in modules)
        + "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('kopf', 'kubernetes', 'aiohttp')"
        " or m.startswith(('taskjobs.shell', 'taskjobs.cli')))\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == ""
