"""The dashboard at scale, in headless Chromium: time to first paint and to a usable page, and memory.

    python benchmarks/dashboard_bench.py            # both cases, a Markdown table on stdout
    python benchmarks/dashboard_bench.py --serve    # serve the synthetic model on 127.0.0.1:8765 to look at

Cases (the issue's goals: overview <= 1 s, big TaskJob page <= 3 s):
- overview of 1,000 TaskJobs of 10 tasks each;
- the page of one 10,000-task TaskJob (10 layers of 1,000 tasks), with a Job per started task.

The model is built in memory from synthetic objects (the dashboard's own Model fed the way the watches
feed it), so the figures are the server's views and the browser's rendering, not the API server's.
Chromium is Debian's, as in the browser tests (`make browser`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from taskjobs.dashboard.model import Model
from taskjobs.dashboard.server import Dashboard, make_app

NOW = datetime.now(UTC)
PHASES = ["Succeeded"] * 6 + ["Running", "Retrying", "Failed", "Waiting"]


def ts(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def taskjob(ns: str, name: str, layers: int, width: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Return a layered TaskJob (each task depends on one task of the layer above) and its Jobs."""
    tasks, states, jobs = [], {}, []
    for layer in range(layers):
        for i in range(width):
            task = f"t{layer}-{i}"
            spec: dict[str, Any] = {"name": task}
            if layer:
                spec["dependsOn"] = [f"t{layer - 1}-{i}"]
            tasks.append(spec)
            phase = PHASES[(layer * width + i) % len(PHASES)] if layer < layers - 1 else "Waiting"
            state: dict[str, Any] = {"phase": phase, "attempts": 0 if phase == "Waiting" else 1}
            if phase in ("Succeeded", "Failed"):
                state["finishTime"] = ts((layer * width + i) % 3000)
            if phase in ("Failed", "Retrying"):
                state.update(exitCode=1, reason="Error", message="connection refused")
            if phase == "Retrying":
                state["nextRetryTime"] = ts(-30)
            states[task] = state
            if phase != "Waiting":
                jobs.append(
                    {
                        "metadata": {
                            "name": f"{name}-{task}-1", "namespace": ns, "creationTimestamp": ts(3600),
                            "labels": {"taskjob.dev/taskjob": name, "taskjob.dev/task": task,
                                       "taskjob.dev/attempt": "1"},
                        },
                        "status": {"startTime": ts(3600 - layer * 60)} | (
                            {"completionTime": ts(3600 - layer * 60 - 50)} if phase == "Succeeded" else {}
                        ),
                    }
                )
    total = layers * width
    succeeded = sum(1 for s in states.values() if s["phase"] == "Succeeded")
    obj = {
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": ts(3600), "labels": {"bench": "yes"}},
        "spec": {"tasks": tasks},
        "status": {"phase": "Running", "total": total, "succeeded": succeeded, "progress": f"{succeeded}/{total}",
                   "running": sum(1 for s in states.values() if s["phase"] == "Running"),
                   "startTime": ts(3600), "tasks": states, "message": f"{succeeded} of {total} tasks succeeded"},
    }
    return obj, jobs


def build_model(taskjobs: int, big: bool) -> Model:
    model = Model()
    objs, jobs = [], []
    for i in range(taskjobs):
        obj, js = taskjob(f"team-{i % 5}", f"etl-{i:04d}", 3, 4 if i % 2 else 3)
        objs.append(obj)
        jobs += js
    if big:
        obj, js = taskjob("team-big", "big", 10, 1000)
        objs.append(obj)
        jobs += js
    model.replace("taskjobs", None, objs)
    model.replace("jobs", None, jobs)
    model.replace("pods", None, [])
    model.replace("events", None, [])
    return model


class Server:
    """The dashboard's app on a free port, in a thread with its own event loop."""

    def __init__(self, model: Model, port: int = 0) -> None:
        self.model = model
        self.port = port or _free_port()
        self.ready = threading.Event()
        threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True).start()
        if not self.ready.wait(30):
            raise RuntimeError("the dashboard did not start")

    async def _main(self) -> None:
        dashboard = Dashboard(self.model)
        dashboard.expected = set()
        runner = web.AppRunner(make_app(dashboard), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self.ready.set()
        await asyncio.Event().wait()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chromium(profile: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 "--enable-precise-memory-info", "--window-size=1440,1000", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))


USABLE = {
    # JS that returns true once the page shows its data
    "overview": "return document.querySelectorAll('#list tbody tr').length > 0",
    "taskjob": "return typeof graphView !== 'undefined' && graphView && graphView.cy.nodes().length > 0",
}


def measure(driver: Any, url: str, kind: str) -> dict[str, float]:
    driver.get("about:blank")
    start = time.monotonic()
    driver.get(url)
    deadline = start + 60
    while not driver.execute_script(USABLE[kind]):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not become usable in 60 s")
        time.sleep(0.02)  # polling interval of a measurement loop, not synchronisation
    usable = time.monotonic() - start
    paint = driver.execute_script(
        "const p = performance.getEntriesByName('first-contentful-paint')[0]; return p ? p.startTime : null"
    )
    heap = driver.execute_script("return performance.memory ? performance.memory.usedJSHeapSize : null")
    return {"first_paint_s": (paint or 0) / 1000, "usable_s": usable, "js_heap_mib": (heap or 0) / 2**20}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", action="store_true", help="serve the synthetic model on --port and wait")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--runs", type=int, default=3, help="measurements per case (the median is reported)")
    args = parser.parse_args()
    built = time.monotonic()
    model = build_model(1000, big=True)
    build_s = time.monotonic() - built
    server = Server(model, args.port if args.serve else 0)
    if args.serve:
        print(f"serving {server.url}/ (1,000 TaskJobs) and {server.url}/taskjobs/team-big/big; Ctrl-C stops")
        threading.Event().wait()
    rows = []
    with tempfile.TemporaryDirectory() as profile:
        driver = chromium(Path(profile))
        try:
            driver.get(server.url + "/healthz")  # the browser's own start-up is not the dashboard's
            for kind, url, goal in (
                ("overview", server.url + "/", 1.0),
                ("taskjob", server.url + "/taskjobs/team-big/big", 3.0),
            ):
                # The first load computes the view (cold); later ones get it from the server's cache, as every
                # page after the first does until the next change.
                cold = measure(driver, url, kind)
                runs = sorted((measure(driver, url, kind) for _ in range(args.runs)), key=lambda r: r["usable_s"])
                rows.append((kind, cold, runs[len(runs) // 2], goal))
        finally:
            driver.quit()
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"Model: 1,000 TaskJobs of 6-12 tasks and one of 10,000 tasks; built in {build_s:.1f} s; "
          f"server max RSS {rss_mib:.0f} MiB (model, views and the benchmark's own Python)\n")
    print("| page | first paint | usable, cold view | usable, cached view (median) | goal | JS heap |")
    print("|---|---|---|---|---|---|")
    for kind, cold, r, goal in rows:
        verdict = "met" if max(cold["usable_s"], r["usable_s"]) <= goal else "missed"
        name = "overview, 1,000 TaskJobs" if kind == "overview" else "TaskJob of 10,000 tasks"
        print(f"| {name} | {r['first_paint_s']:.2f} s | {cold['usable_s']:.2f} s | {r['usable_s']:.2f} s "
              f"| ≤ {goal:.0f} s ({verdict}) | {r['js_heap_mib']:.0f} MiB |")
    print(f"\n(1 cold run, then {args.runs} runs, median; {os.cpu_count()} CPUs; Chromium headless)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
