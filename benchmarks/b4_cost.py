"""B4 cost: operator memory and CPU per task lifecycle with many TaskJobs of 10 tasks each.

Each TaskJob is a fan-out/fan-in of 10 tasks (1 root, 8 in parallel, 1 sink); pods run 0 s (kwok).
CPU is the operator process's utime + stime (/proc/<pid>/stat) from the first TaskJob created to the
last one Succeeded, divided by the number of tasks; memory is VmRSS sampled every second and VmHWM
(the kernel's peak RSS) from /proc/<pid>/status. The operator's idle CPU rate is measured first, for
reference.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from common import Cluster, Operator, histogram, log, table, taskjob, verdict

MIB = 1024 * 1024
GOAL_RSS = 150 * MIB
GOAL_CPU_PER_TASK = 0.005


def ten_tasks() -> list[dict[str, Any]]:
    """Return 10 tasks: a root, 8 in parallel after it, and a sink after those."""
    middle = [f"m{i}" for i in range(8)]
    fan_out = [{"name": m, "dependsOn": ["root"]} for m in middle]
    return [{"name": "root"}, *fan_out, {"name": "sink", "dependsOn": middle}]


def run(cluster: Cluster, mode: str, qps: float) -> dict[str, Any]:
    """Run B4 and print its table; return the figures."""
    count = {"quick": 100, "default": 300, "full": 1000}[mode]
    tasks_each = len(ten_tasks())
    log(f"B4: {count} TaskJobs x {tasks_each} tasks (operator --qps {qps:g})")
    with cluster.namespace("bench-b4") as ns, Operator(cluster.kubeconfig, [ns], qps, label="b4") as op:
        reconciles0 = _reconciles(op)
        requests0 = _requests(op)
        idle0, t0 = op.cpu_seconds(), time.perf_counter()
        time.sleep(10)  # measuring the idle CPU rate needs idle time
        idle_rate = (op.cpu_seconds() - idle0) / (time.perf_counter() - t0)
        rss_start = op.memory()["VmRSS"]

        peak = {"rss": rss_start}
        timeline: list[tuple[float, int, float]] = []  # (seconds, RSS bytes, CPU seconds)
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(1.0):
                try:
                    rss = op.memory()["VmRSS"]
                    timeline.append((time.perf_counter() - started, rss, op.cpu_seconds() - cpu0))
                except OSError:
                    return
                if rss > peak["rss"] * 1.05:  # a new peak: what holds the memory now (with --census)
                    op.take_census()
                peak["rss"] = max(peak["rss"], rss)

        cpu0, started = op.cpu_seconds(), time.perf_counter()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: cluster.create_taskjob(ns, taskjob(f"tj-{i}", ten_tasks())), range(count)))
        created = time.perf_counter() - started
        phases = cluster.wait_finished(ns, count, timeout=120 + count * 3.0)
        elapsed = time.perf_counter() - started
        cpu = op.cpu_seconds() - cpu0
        reconciles = _reconciles(op)
        reconciles = {k: v - reconciles0[k] for k, v in reconciles.items()}
        requests = {k: v - requests0.get(k, 0.0) for k, v in _requests(op).items()}
        stop.set()
        sampler.join()
        mem = op.memory()
        # Memory after the run, with every finished Job and pod still in the cluster (and the store).
        time.sleep(5)
        rss_after = op.memory()["VmRSS"]
        op.take_census()
        problems = op.problems()
    tasks = count * tasks_each
    succeeded = sum(1 for p in phases.values() if p == "Succeeded")
    per_task = cpu / tasks
    result = {
        "taskjobs": count,
        "tasks": tasks,
        "succeeded_taskjobs": succeeded,
        "create_s": created,
        "elapsed_s": elapsed,
        "tasks_per_s": tasks / elapsed,
        "cpu_s": cpu,
        "cpu_per_task_s": per_task,
        "cpu_busy_fraction": cpu / elapsed,
        "reconciles": reconciles["count"],
        "reconcile_seconds": reconciles["seconds"],
        "api_requests": requests,
        "idle_cpu_per_s": idle_rate,
        "rss_start_bytes": rss_start,
        "rss_peak_sampled_bytes": peak["rss"],
        "rss_hwm_bytes": mem.get("VmHWM"),
        "rss_after_bytes": rss_after,
        "operator_problems": problems[:5],
        "timeline": timeline[:: max(1, len(timeline) // 60)],
    }
    print(f"\n### B4 cost: {count} TaskJobs x {tasks_each} tasks = {tasks} task lifecycles (operator --qps {qps:g})\n")
    print(
        table(
            ["figure", "value", "goal"],
            [
                ["TaskJobs Succeeded", f"{succeeded}/{count} in {elapsed:.0f} s ({tasks / elapsed:.1f} tasks/s)", ""],
                ["operator CPU", f"{cpu:.1f} s ({cpu / elapsed * 100:.0f}% of one core over the run)", ""],
                ["CPU per task lifecycle", f"{per_task * 1000:.2f} ms",
                 f"<= 5 ms: {verdict(per_task, GOAL_CPU_PER_TASK)}"],
                ["reconciles", f"{reconciles['count']:.0f} ({reconciles['count'] / tasks:.1f} per task, "
                 f"{reconciles['seconds'] / max(1, reconciles['count']) * 1000:.1f} ms each on average)", ""],
                ["API requests per task", f"{sum(requests.values()) / tasks:.2f} ("
                 + ", ".join(f"{k} {v / tasks:.2f}" for k, v in sorted(requests.items(), key=lambda kv: -kv[1]) if v)
                 + ")", ""],
                ["RSS at start (idle, connected)", f"{rss_start / MIB:.0f} MiB", ""],
                ["peak RSS (VmHWM)", f"{(mem.get('VmHWM') or 0) / MIB:.0f} MiB",
                 f"<= 150 MiB: {verdict(mem.get('VmHWM') or 0, GOAL_RSS)}"],
                ["RSS after the run (all Jobs/pods still present)", f"{rss_after / MIB:.0f} MiB", ""],
                ["idle CPU", f"{idle_rate * 1000:.1f} ms/s", ""],
            ],
        )
    )  # fmt: skip
    if problems:
        print(f"\noperator log problems: {problems[:5]}")
    return result


def _requests(op: Operator) -> dict[str, float]:
    """Return the operator's API requests so far, by operation (its /metrics)."""
    return {labels["operation"]: value for labels, value in op.metrics().get("taskjob_api_requests_total", [])}


def _reconciles(op: Operator) -> dict[str, float]:
    """Return how many reconciles the operator ran so far and their total duration (its /metrics)."""
    found = histogram(op.metrics(), "taskjob_reconcile_duration_seconds")
    if not found:
        return {"count": 0, "seconds": 0.0}
    return {"count": found["count"], "seconds": found["mean"] * found["count"]}
