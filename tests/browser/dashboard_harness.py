"""Helpers of the dashboard's browser tests: `taskjob dashboard` as a child process, and where things live.

Test modules import from here, never from conftest (several conftest modules share that name).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))
from operator_harness import ROOT, free_port, poll  # noqa: E402

SCREENSHOTS = Path(os.environ.get("TASKJOB_SCREENSHOTS") or ROOT / ".testenv" / "screenshots")

__all__ = ["ROOT", "SCREENSHOTS", "DashboardProcess", "free_port", "poll"]


class DashboardProcess:
    """`taskjob dashboard` as a child process on a free port."""

    def __init__(self, kubeconfig: str, namespaces: list[str], log_path: Path, extra: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        args = [sys.executable, "-m", "taskjobs.cli.main", "dashboard", "--port", str(self.port)]
        for ns in namespaces:
            args += ["-n", ns]
        args += extra
        env = {**os.environ, "KUBECONFIG": kubeconfig, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def ready(self, path: str = "/readyz") -> bool:
        """Return whether the server answers 200 on `path` (/readyz: every watch has listed once)."""
        if self.proc.poll() is not None:
            raise AssertionError(f"taskjob dashboard exited:\n{self.logs()}")
        try:
            with urllib.request.urlopen(self.url + path, timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def view(self, **query: str) -> dict[str, Any]:
        """Return the JSON of a page's view (GET /api/view)."""
        with urllib.request.urlopen(f"{self.url}/api/view?{urllib.parse.urlencode(query)}", timeout=10) as r:
            data: dict[str, Any] = json.loads(r.read())
            return data

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
