"""B1 scheduling latency: last dependency seen done -> the dependent's Job seen created.

Chains of tasks (each depends on the one before), so every task after the first gives one sample.
Measured from outside with watches on pods and Jobs, in local receive times: a dependency is done when
its pod is first seen Succeeded (or its Job Complete, if that arrives first); the dependent's Job is
seen in its ADDED event. That includes the watch delivery of the first event to the operator and of the
second to us (both on loopback). The same from the Job's Complete condition is printed too: until
session 7 the operator waited for it, which the Job controller sends a batch period (1 s) after the pod.
Run with 1 TaskJob in flight, then with 50 at once.
"""

from __future__ import annotations

import time
from typing import Any

from common import (
    Cluster,
    JobWatch,
    Operator,
    PodWatch,
    chain,
    histogram,
    log,
    ms,
    percentile,
    poll,
    table,
    taskjob,
    verdict,
)

GOAL_P50, GOAL_P99 = 0.050, 0.250


def samples(
    watch: JobWatch, deps: dict[tuple[str, str], list[str]], pods: dict[tuple[str, str, int], float] | None = None
) -> list[float]:
    """Return one latency per dependent Job: its ADDED time minus its last dependency's done time.

    Done: the Job seen Complete, or (given `pods`) its pod seen Succeeded if that came first.
    """
    jobs = watch.snapshot().values()
    finished: dict[tuple[str, str], float | None] = {}
    for j in jobs:
        if j.attempt == 1:
            seen = [t for t in (j.finished, (pods or {}).get((j.taskjob, j.task, 1))) if t is not None]
            finished[(j.taskjob, j.task)] = min(seen) if seen else None
    result = []
    for j in jobs:
        wanted = deps.get((j.taskjob, j.task))
        if j.attempt != 1 or not wanted:
            continue
        times = [finished.get((j.taskjob, d)) for d in wanted]
        if all(t is not None for t in times):
            result.append(j.added - max(t for t in times if t is not None))
    return result


def scenario(cluster: Cluster, qps: float, taskjobs: int, length: int, timeout: float) -> dict[str, Any]:
    """Run `taskjobs` chains of `length` tasks at once; return the latency figures."""
    with (
        cluster.namespace("bench-b1") as ns,
        Operator(cluster.kubeconfig, [ns], qps, label=f"b1-{taskjobs}") as op,
        JobWatch(cluster, ns) as w,
        PodWatch(cluster, ns) as pw,
    ):
        deps: dict[tuple[str, str], list[str]] = {}
        started = time.perf_counter()
        for i in range(taskjobs):
            name = f"chain-{i}"
            tasks = chain(length)
            for t in tasks:
                deps[(name, t["name"])] = list(t.get("dependsOn", []))
            cluster.create_taskjob(ns, taskjob(name, tasks, duration="0s"))
        total = taskjobs * length
        poll(lambda: w.finished() >= total, timeout, f"{total} Jobs to finish", interval=0.5)
        phases = cluster.wait_finished(ns, taskjobs, 60)
        wall = time.perf_counter() - started
        values = samples(w, deps, pw.snapshot())
        from_complete = samples(w, deps)
        samples_ = op.metrics()
        metric = histogram(samples_, "taskjob_scheduling_latency_seconds")
        reconcile = histogram(samples_, "taskjob_reconcile_duration_seconds")
        # Where the operator's part of a step goes: waiting for the rate limit and a connection, then the
        # API server's answer.
        create = histogram(samples_, "taskjob_api_request_duration_seconds", operation="create_namespaced_job")
        limit_wait = histogram(samples_, "taskjob_api_rate_limit_wait_seconds")
        connection_wait = histogram(samples_, "taskjob_api_connection_wait_seconds")
        cpu = op.cpu_seconds()
        problems = op.problems()
    return {
        "taskjobs_in_flight": taskjobs,
        "chain_length": length,
        "samples": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values) if values else float("nan"),
        "from_complete_p50": percentile(from_complete, 50),
        "from_complete_p99": percentile(from_complete, 99),
        "wall_seconds": wall,
        "succeeded": sum(1 for p in phases.values() if p == "Succeeded"),
        "operator_metric": metric,
        "reconcile": reconcile,
        "job_create": create,
        "rate_limit_wait": limit_wait,
        "connection_wait": connection_wait,
        "operator_cpu_seconds": cpu,
        "operator_problems": problems[:5],
    }


def run(cluster: Cluster, mode: str, qps: float) -> dict[str, Any]:
    """Run B1 and print its table; return the figures."""
    length_1 = 15 if mode == "quick" else 40
    many, length_many = (20, 8) if mode == "quick" else (50, 10)
    results = []
    for n, length in ((1, length_1), (many, length_many)):
        log(f"B1: {n} TaskJob(s) in flight, chains of {length}")
        results.append(scenario(cluster, qps, n, length, timeout=120 + n * length * 2.0))
    rows = [
        [r["taskjobs_in_flight"], r["samples"], ms(r["p50"]), ms(r["p95"]), ms(r["p99"]), ms(r["max"]),
         verdict(r["p50"], GOAL_P50), verdict(r["p99"], GOAL_P99)]
        for r in results
    ]  # fmt: skip
    print("\n### B1 scheduling latency (dependency seen done: its pod Succeeded or its Job Complete -> "
          "dependent Job ADDED seen)\n")
    headers = ["TaskJobs in flight", "samples", "p50", "p95", "p99", "max", "p50 goal 50 ms", "p99 goal 250 ms"]
    print(table(headers, rows))
    for r in results:
        print(f"\nfrom the dependency Job's Complete seen instead ({r['taskjobs_in_flight']} in flight; negative: "
              f"the dependent came first): p50 {ms(r['from_complete_p50'])}, p99 {ms(r['from_complete_p99'])}")
    for r in results:
        m = r["operator_metric"]
        if m:
            print(
                f"\noperator's taskjob_scheduling_latency_seconds ({r['taskjobs_in_flight']} in flight): "
                f"{m['count']} samples, mean {ms(m['mean'])}, p50 <= {ms(m['p50_le'])}, "
                f"p95 <= {ms(m['p95_le'])}, p99 <= {ms(m['p99_le'])} (bucket bounds)"
            )
        parts = [
            f"{label}: mean {ms(h['mean'])}, p50 <= {ms(h['p50_le'])}, p99 <= {ms(h['p99_le'])}"
            for label, h in (
                ("reconcile", r["reconcile"]),
                ("Job create answered by the API server", r["job_create"]),
                ("rate-limit wait per request", r["rate_limit_wait"]),
                ("wait for a connection slot per request", r["connection_wait"]),
            )
            if h
        ]
        if parts:
            print(f"\nwithin the operator ({r['taskjobs_in_flight']} in flight): " + "; ".join(parts))
        if r["operator_problems"]:
            print(f"\noperator log problems ({r['taskjobs_in_flight']} in flight): {r['operator_problems']}")
    return {"scenarios": results}
