"""B3 scale: one TaskJob of up to 10,000 tasks, in four shapes, on the testenv; then planning time per event.

The fourth shape, fanout, is 3 tasks of which one fans out (forEach) into 9,997 instances: 10,000 entries
in status.tasks, 9,999 counted by progress (a fan-out task counts as its instances).

For each shape: the TaskJob is created (accepted by the API server: schema, CEL rules, size), the operator
runs it, and we record the time to the first status, the time to completion (or, for a run that cannot
finish in the time given, how far it got and the extrapolated total), the largest TaskJob object and
status seen (goal: status <= 1 MiB; etcd refuses requests over 1.5 MiB, spec included), the operator's
CPU and memory. Pods "run" for 0 s (kwok), so what is measured is the control loop, not the tasks.
The planning micro-benchmark (plan_micro.py) follows.
"""

from __future__ import annotations

import json
import time
from typing import Any

import plan_micro
from common import Cluster, Operator, log, table, taskjob, verdict

MIB = 1024 * 1024
GOAL_STATUS = 1 * MIB
ETCD_LIMIT = 1.5 * MIB


def fanout_tasks(n: int) -> list[dict[str, Any]]:
    """Return gen -> work (forEach over n-3 items) -> sum: 3 tasks and n-3 instances, n entries in status.tasks.

    progress counts n-1 of them: a fan-out task counts as its instances.
    """
    return [
        {"name": "gen"},
        {"name": "work", "dependsOn": ["gen"], "forEach": {"items": list(range(n - 3))}},
        {"name": "sum", "dependsOn": ["work"]},
    ]


def fanout_final_status_bytes(n: int) -> int:
    """Return the status size once every unit of fanout_tasks(n) succeeded, computed with the operator's plan."""
    from datetime import UTC, datetime, timedelta

    from taskjobs.core.facts import AttemptFact
    from taskjobs.core.models import TaskJobMeta, TaskJobSpec, dump_status
    from taskjobs.core.plan import plan

    spec = TaskJobSpec.model_validate({"defaults": {"image": "busybox:1.36"}, "tasks": fanout_tasks(n)})
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    units = ["gen", *(f"work-{i}" for i in range(n - 3)), "sum"]
    facts = [
        AttemptFact(
            task=u, attempt=1, job_name=f"b3-{u}-1", phase="Succeeded", created=t0, start_time=t0,
            finish_time=t0 + timedelta(seconds=1), exit_code=0, output="",
        )
        for u in units
    ]  # fmt: skip
    status = dump_status(plan(TaskJobMeta(name="b3", uid="u"), spec, None, facts, t0 + timedelta(seconds=2)).status)
    assert status["phase"] == "Succeeded", status["phase"]
    return len(json.dumps(status, separators=(",", ":")))


def run_one(cluster: Cluster, shape: str, n: int, qps: float, budget: float) -> dict[str, Any]:
    """Run one TaskJob of the shape for at most `budget` seconds; return what was measured."""
    tasks = fanout_tasks(n) if shape == "fanout" else plan_micro.shape_tasks(shape, n)
    units = n - 1 if shape == "fanout" else len(tasks)  # a fan-out task counts as its instances: 2 + (n-3)
    manifest = taskjob(f"{shape}-{units}", tasks, duration="0s")
    name = manifest["metadata"]["name"]
    spec_bytes = len(json.dumps(manifest["spec"], separators=(",", ":")))
    with cluster.namespace("bench-b3") as ns, Operator(cluster.kubeconfig, [ns], qps, label=f"b3-{name}") as op:
        cpu0 = op.cpu_seconds()
        started = time.perf_counter()
        cluster.create_taskjob(ns, manifest)
        accepted = time.perf_counter() - started
        first_status = all_launched = None
        largest = largest_status = 0
        status: dict[str, Any] = {}
        samples: list[tuple[float, int]] = []
        next_log = 30.0
        while time.perf_counter() - started < budget:
            raw = cluster.taskjob_raw(ns, name)
            now = time.perf_counter() - started
            obj = json.loads(raw)
            status = obj.get("status") or {}
            largest = max(largest, len(raw))
            largest_status = max(largest_status, len(json.dumps(status, separators=(",", ":"))))
            if status.get("phase") and first_status is None:
                first_status = now
            launched = sum(int(status.get(k) or 0) for k in ("running", "succeeded", "failed"))
            if all_launched is None and launched >= units:
                all_launched = now
            samples.append((now, int(status.get("succeeded") or 0)))
            if status.get("phase") in ("Succeeded", "Failed", "Invalid"):
                break
            if now >= next_log:
                log(f"B3: {name}: {status.get('progress')} succeeded, {status.get('running')} running after {now:.0f}s")
                next_log += 30
            time.sleep(2.0 if len(raw) > 100_000 else 0.5)  # polling interval; large objects cost the server
        elapsed = time.perf_counter() - started
        done = int(status.get("succeeded") or 0)
        finished = status.get("phase") in ("Succeeded", "Failed", "Invalid")
        cpu = op.cpu_seconds() - cpu0
        mem = op.memory()
        reconcile = _count(op.metrics(), "taskjob_reconcile_duration_seconds")
        problems = op.problems()
    rate = done / elapsed if elapsed else 0.0
    return {
        "shape": shape,
        "tasks": units,
        "spec_bytes": spec_bytes,
        "accepted_s": accepted,
        "first_status_s": first_status,
        "all_launched_s": all_launched,
        "phase": status.get("phase"),
        "finished": finished,
        "succeeded": done,
        "elapsed_s": elapsed,
        "tasks_per_s": rate,
        "extrapolated_total_s": None if finished or not rate else units / rate,
        "largest_object_bytes": largest,
        "largest_status_bytes": largest_status,
        "operator_cpu_s": cpu,
        "operator_rss_bytes": mem.get("VmRSS"),
        "operator_peak_rss_bytes": mem.get("VmHWM"),
        "reconciles": reconcile,
        "operator_problems": problems[:5],
        "progress": samples[:: max(1, len(samples) // 20)],
    }


def _count(samples: dict[str, Any], name: str) -> int:
    values = samples.get(f"{name}_count")
    return int(values[0][1]) if values else 0


def run(cluster: Cluster, mode: str, qps: float, live: str | None = None) -> dict[str, Any]:
    """Run B3 and print its tables; return the figures. `live` ("wide:10000:1800,...") replaces the mode's runs.

    Pure planning first (it needs a quiet CPU), then the live runs, the wide one last: a run stopped at its
    time budget leaves Jobs for the cluster to finish, which would slow down whatever comes next.
    """
    sizes: tuple[int, ...] = (100, 1000) if mode == "quick" else (100, 1000, 10000)
    log("B3: planning time per event (pure, no cluster)")
    micro = plan_micro.run(sizes=sizes)
    log("B3: status size when every task succeeded (computed with the operator's own plan)")
    finals = {shape: plan_micro.final_status_bytes(shape, 10000) for shape in ("wide", "chain", "layered")}
    print("\nStatus size once all 10,000 tasks succeeded (computed offline with plan()): "
          + ", ".join(f"{s} {b / 1024:.0f} KiB" for s, b in finals.items())
          + f" (goal <= 1024 KiB: {verdict(max(finals.values()), GOAL_STATUS)})")  # fmt: skip
    finals["fanout"] = fanout_final_status_bytes(10000)
    print(f"Status size once a fan-out of 3 tasks and 9,997 instances succeeded: {finals['fanout'] / 1024:.0f} KiB"
          f" (goal <= 1024 KiB: {verdict(finals['fanout'], GOAL_STATUS)})")  # fmt: skip
    plan = {
        "quick": [("chain", 20, 120), ("layered", 1000, 240), ("fanout", 1000, 240), ("wide", 1000, 240)],
        "default": [("chain", 10000, 60), ("layered", 10000, 120), ("fanout", 10000, 240), ("wide", 10000, 240)],
        "full": [("chain", 200, 900), ("layered", 10000, 3600), ("fanout", 10000, 3600), ("wide", 10000, 3600)],
    }[mode]
    if live:
        plan = [(shape, int(n), float(budget)) for shape, n, budget in (r.split(":") for r in live.split(","))]
    results = []
    for shape, n, budget in plan:
        log(f"B3: {shape} TaskJob of {n} tasks (at most {budget}s)")
        results.append(run_one(cluster, shape, n, qps, budget))
        log(f"B3: {json.dumps({k: v for k, v in results[-1].items() if k != 'progress'}, default=str)}")
    rows = []
    for r in results:
        outcome = (
            f"{r['phase']} in {r['elapsed_s']:.0f} s"
            if r["finished"]
            else f"{r['succeeded']}/{r['tasks']} in {r['elapsed_s']:.0f} s; "
            f"all in ~{r['extrapolated_total_s'] or 0:.0f} s"
        )
        rows.append([
            r["shape"], r["tasks"], f"{r['spec_bytes'] / 1024:.0f} KiB", f"{r['accepted_s'] * 1000:.0f} ms",
            f"{r['first_status_s']:.1f} s" if r["first_status_s"] is not None else "none",
            f"{r['all_launched_s']:.0f} s" if r["all_launched_s"] is not None else "not yet",
            outcome, f"{r['tasks_per_s']:.1f}",
            f"{r['largest_status_bytes'] / 1024:.0f} KiB ({verdict(r['largest_status_bytes'], GOAL_STATUS)})",
            f"{r['largest_object_bytes'] / 1024:.0f} KiB", f"{r['operator_cpu_s']:.0f} s",
            f"{(r['operator_peak_rss_bytes'] or 0) / MIB:.0f} MiB", r["reconciles"],
        ])  # fmt: skip
    print(f"\n### B3 scale: one TaskJob on the testenv (operator --qps {qps:g}; pods run 0 s)\n")
    print(
        table(
            ["shape", "tasks", "spec", "create accepted", "first status", "every task launched", "outcome", "tasks/s",
             "largest status",
             "largest object", "operator CPU", "peak RSS", "reconciles"],
            rows,
        )
    )  # fmt: skip
    for r in results:
        if r["operator_problems"]:
            print(f"\noperator log problems ({r['shape']} {r['tasks']}): {r['operator_problems']}")

    return {"runs": results, "final_status_bytes_10k": finals, "micro": micro}
