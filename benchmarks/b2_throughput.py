"""B2 launch throughput: a 1,000-task fan-out, Jobs created per second by the operator vs a raw client loop.

Both sides create the same Jobs (rendered by `taskjobs.core.render.render_job` from the same spec) through the
same client stack and rate limit: the raw loop uses the operator's own `Kube` facade (token bucket at
the operator's --qps, burst 2x, 16 threads) and creates all Jobs at once with asyncio.gather. Rates are
measured from outside by a watch on Jobs: from the moment the work is handed over (the raw loop starts;
the TaskJob create call returns) to the last Job's ADDED event. The two sides run one after the other,
each in a quiet cluster (the previous side's Jobs finished and their namespace deleted).
Goals (issue 13): the operator >= 0.9 of the raw loop at the same QPS; at QPS 200 and above also
>= 0.8 of an unthrottled raw loop (no client rate limit at all), run in the same B2 run.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from common import Cluster, JobWatch, Operator, independent, log, poll, table, taskjob, verdict

GOAL_RATIO = 0.90  # of the raw loop at the same QPS
GOAL_UNTHROTTLED = 0.80  # of an unthrottled raw loop, at QPS >= UNTHROTTLED_FROM
UNTHROTTLED_FROM = 200.0


def raw_loop(cluster: Cluster, n: int, qps: float) -> dict[str, Any]:
    """Create n Jobs with the operator's client facade; return the timings."""
    from taskjobs.core.models import TaskJobMeta, TaskJobSpec
    from taskjobs.core.render import render_job
    from taskjobs.core.resolve import resolve_tasks
    from taskjobs.shell.kube import Kube

    with cluster.namespace("bench-b2-raw") as ns, JobWatch(cluster, ns) as watch:
        # A real (suspended, unwatched) TaskJob owns the Jobs, so their manifests are exactly the operator's.
        owner = cluster.create_taskjob(ns, taskjob("fanout", independent(n), suspend=True))
        meta = TaskJobMeta.model_validate(owner["metadata"])
        tasks = resolve_tasks(TaskJobSpec.model_validate(owner["spec"]))
        manifests = [render_job(meta, tasks[name], 1, {}) for name in tasks]

        async def create_all() -> float:
            from taskjobs.shell.apisession import ApiSession
            from taskjobs.shell.connection import load_connection

            kube = Kube(ApiSession(load_connection({"KUBECONFIG": cluster.kubeconfig})), qps=qps)  # as the operator
            started = time.perf_counter()
            await asyncio.gather(*(kube.create_job(ns, m) for m in manifests))
            await kube.http.close()
            return started

        started = asyncio.run(create_all())
        poll(lambda: watch.count() >= n, 120, f"{n} Jobs seen")
        seen = watch.snapshot().values()
        first, last = min(j.added for j in seen), max(j.added for j in seen)
        poll(lambda: watch.finished() >= n, 600, f"{n} raw Jobs to finish", interval=1)
    return {"started": 0.0, "first": first - started, "last": last - started, "rate": n / (last - started)}


def operator_run(cluster: Cluster, n: int, qps: float) -> dict[str, Any]:
    """Let the operator create n Jobs from one TaskJob of n independent tasks; return the timings."""
    with cluster.namespace("bench-b2-op") as ns, Operator(cluster.kubeconfig, [ns], qps, label="b2") as op:
        with JobWatch(cluster, ns) as watch:
            cpu0 = op.cpu_seconds()
            started = time.perf_counter()
            cluster.create_taskjob(ns, taskjob("fanout", independent(n)))
            poll(lambda: watch.count() >= n, 300, f"{n} Jobs seen")
            seen = watch.snapshot().values()
            first, last = min(j.added for j in seen), max(j.added for j in seen)
            cpu = op.cpu_seconds() - cpu0
            cluster.wait_finished(ns, 1, 900)
        problems = op.problems()
    return {
        "first": first - started,
        "last": last - started,
        "rate": n / (last - started),
        "burst_rate": (n - 1) / (last - first) if last > first else float("nan"),
        "operator_cpu_seconds_while_creating": cpu,
        "operator_problems": problems[:5],
    }


def run(cluster: Cluster, mode: str, qps: float) -> dict[str, Any]:
    """Run B2 and print its table; return the figures."""
    n = 300 if mode == "quick" else 1000
    log(f"B2: raw client loop, {n} Jobs at {qps:g} QPS")
    raw = raw_loop(cluster, n, qps)
    free = None
    if qps >= UNTHROTTLED_FROM:
        log(f"B2: raw client loop, {n} Jobs, no client rate limit")
        free = raw_loop(cluster, n, 0.0)
    log(f"B2: the operator, a TaskJob of {n} independent tasks at --qps {qps:g}")
    op = operator_run(cluster, n, qps)
    ratio = op["rate"] / raw["rate"]
    rows = [
        ["raw client loop (Kube.create_job x gather)", f"{raw['first']:.2f} s", f"{raw['last']:.2f} s",
         f"{raw['rate']:.1f}", "1.00", ""],
    ]  # fmt: skip
    if free is not None:
        rows.append(["raw client loop, unthrottled", f"{free['first']:.2f} s", f"{free['last']:.2f} s",
                     f"{free['rate']:.1f}", f"{free['rate'] / raw['rate']:.2f}", "1.00"])  # fmt: skip
    free_ratio = op["rate"] / free["rate"] if free is not None else None
    rows.append(
        ["operator (one TaskJob create)", f"{op['first']:.2f} s", f"{op['last']:.2f} s", f"{op['rate']:.1f}",
         f"{ratio:.2f} ({verdict(ratio, GOAL_RATIO, higher_is_better=True)}; goal >= {GOAL_RATIO:.2f})",
         "" if free_ratio is None else
         f"{free_ratio:.2f} ({verdict(free_ratio, GOAL_UNTHROTTLED, higher_is_better=True)}; "
         f"goal >= {GOAL_UNTHROTTLED:.2f})"]
    )  # fmt: skip
    print(f"\n### B2 launch throughput ({n} Jobs, client QPS {qps:g}, burst {int(qps * 2)})\n")
    print(
        table(
            ["creator", "first Job seen", "last Job seen", "Jobs/s (handover -> last)", "ratio to raw, same QPS",
             "ratio to raw, unthrottled"],
            rows,
        )
    )  # fmt: skip
    print(f"\noperator CPU while creating: {op['operator_cpu_seconds_while_creating']:.1f} s")
    if op["operator_problems"]:
        print(f"\noperator log problems: {op['operator_problems']}")
    return {"jobs": n, "qps": qps, "raw": raw, "raw_unthrottled": free, "operator": op, "ratio": ratio,
            "ratio_unthrottled": free_ratio}  # fmt: skip
