"""B2 launch throughput: a 1,000-task fan-out, Jobs created per second by the operator vs a raw client loop.

Both sides create the same Jobs (rendered by `taskjobs.core.render.render_job` from the same spec) through the
same client stack and rate limit: the raw loop uses the operator's own `Kube` facade (token bucket at
the operator's --qps, burst 2x, as many connections) and creates all Jobs at once with asyncio.gather. Rates are
measured from outside by a watch on Jobs: from the moment the work is handed over (the raw loop starts;
the TaskJob create call returns) to the last Job's ADDED event. The sides run one after the other,
each in a quiet cluster (the previous side's Jobs seen finished).
Goals (issue 13): the operator >= 0.9 of the raw loop at the same QPS; at QPS 200 and above also
>= 0.8 of an unthrottled raw loop (no client rate limit at all), run in the same B2 run.

At QPS >= 200 one run swings by +-30 % on a 2-core bed (docs/performance.md, Session 8), so there the sides
run in several rounds on the same cluster, in an order rotated per round, and the goals are judged on the
median of the per-round ratios. Beside the rates, each side's create answer times (the operator's own
`taskjob_api_request_duration_seconds`, measured the same way in the raw loop's process) and rate-limit
waits say whether the API server, the connections or the limiter held it.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

from common import (
    Cluster,
    JobWatch,
    Operator,
    Samples,
    histogram,
    independent,
    local_metrics,
    log,
    metrics_delta,
    percentile,
    poll,
    table,
    taskjob,
    verdict,
)

from taskjobs.shell.apisession import CONNECTIONS, ApiSession  # the operator's requests in flight at once

GOAL_RATIO = 0.90  # of the raw loop at the same QPS
GOAL_UNTHROTTLED = 0.80  # of an unthrottled raw loop, at QPS >= UNTHROTTLED_FROM
UNTHROTTLED_FROM = 200.0
CREATE = "taskjob_api_request_duration_seconds"
LIMIT_WAIT = "taskjob_api_rate_limit_wait_seconds"
CONNECTION_WAIT = "taskjob_api_connection_wait_seconds"
SIDES = ("raw", "raw_unthrottled", "operator")
LABELS = {
    "raw": "raw client loop (Kube.create_job x gather)",
    "raw_unthrottled": "raw client loop, unthrottled",
    "operator": "operator (one TaskJob create)",
}


def _answer_times(samples: Samples, window: float) -> dict[str, Any]:
    """Return a window's create answer times, rate-limit and connection waits, and the creates in flight.

    The answer time (taskjob_api_request_duration_seconds) runs from the request's sending on a connection
    to its answer; the waits before it, for the rate limit and for one of the CONNECTIONS
    (taskjob_api_connection_wait_seconds, of every request: in these windows nearly all are creates), are
    apart. In flight, by Little's law over the create window (first to last Job seen): on a connection =
    answer time sum / window, at most CONNECTIONS; queued for one = connection wait sum / window.
    """
    create = histogram(samples, CREATE, operation="create_namespaced_job")
    wait = histogram(samples, CONNECTION_WAIT)
    answered = create["mean"] * create["count"] if create else 0.0
    queued = wait["mean"] * wait["count"] if wait else 0.0
    return {
        "create": create,
        "rate_limit_wait": histogram(samples, LIMIT_WAIT),
        "connection_wait": wait,
        "on_connections": answered / window if window > 0 else float("nan"),
        "queued_for_connection": queued / window if window > 0 else float("nan"),
    }


def raw_loop(cluster: Cluster, n: int, qps: float) -> dict[str, Any]:
    """Create n Jobs with the operator's client facade; return the timings."""
    from taskjobs.core.models import TaskJobMeta, TaskJobSpec
    from taskjobs.core.render import render_job
    from taskjobs.core.resolve import resolve_tasks
    from taskjobs.shell.connection import load_connection
    from taskjobs.shell.kube import Kube

    class TimedSession(ApiSession):
        """The operator's session, timing each POST from its sending to its answer (exact quantiles)."""

        times: list[float]

        async def request(self, method: str, path: str, **kwargs: Any) -> bytes:
            sent = time.perf_counter()
            try:
                return await super().request(method, path, **kwargs)
            finally:
                if method == "POST":
                    self.times.append(time.perf_counter() - sent)

    with cluster.namespace("bench-b2-raw") as ns, JobWatch(cluster, ns) as watch:
        # A real (suspended, unwatched) TaskJob owns the Jobs, so their manifests are exactly the operator's.
        owner = cluster.create_taskjob(ns, taskjob("fanout", independent(n), suspend=True))
        meta = TaskJobMeta.model_validate(owner["metadata"])
        tasks = resolve_tasks(TaskJobSpec.model_validate(owner["spec"]))
        manifests = [render_job(meta, tasks[name], 1, {}) for name in tasks]
        session = TimedSession(load_connection({"KUBECONFIG": cluster.kubeconfig}))
        session.times = []

        async def create_all() -> float:
            kube = Kube(session, qps=qps, connections=CONNECTIONS)  # as the operator makes it
            started = time.perf_counter()
            await asyncio.gather(*(kube.create_job(ns, m) for m in manifests))
            await kube.http.close()
            return started

        before = local_metrics()  # this process's registry: the raw loop's Kube records the operator's metrics
        started = asyncio.run(create_all())
        after = local_metrics()
        poll(lambda: watch.count() >= n, 120, f"{n} Jobs seen")
        seen = watch.snapshot().values()
        first, last = min(j.added for j in seen), max(j.added for j in seen)
        poll(lambda: watch.finished() >= n, 600, f"{n} raw Jobs to finish", interval=1)
    exact = session.times
    return {
        "started": 0.0,
        "first": first - started,
        "last": last - started,
        "rate": n / (last - started),
        **_answer_times(metrics_delta(before, after), last - first),
        "create_exact": {"mean": statistics.fmean(exact), "p50": percentile(exact, 50), "p99": percentile(exact, 99)},
    }


def operator_run(cluster: Cluster, n: int, qps: float) -> dict[str, Any]:
    """Let the operator create n Jobs from one TaskJob of n independent tasks; return the timings."""

    def creates(samples: Samples) -> float:
        found = histogram(samples, CREATE, operation="create_namespaced_job")
        return found["count"] if found else 0

    with cluster.namespace("bench-b2-op") as ns, Operator(cluster.kubeconfig, [ns], qps, label="b2") as op:
        with JobWatch(cluster, ns) as watch:
            before = op.metrics()  # after its startup's LISTs
            cpu0 = op.cpu_seconds()
            started = time.perf_counter()
            cluster.create_taskjob(ns, taskjob("fanout", independent(n)))
            poll(lambda: watch.count() >= n, 300, f"{n} Jobs seen")
            seen = watch.snapshot().values()
            first, last = min(j.added for j in seen), max(j.added for j in seen)
            cpu = op.cpu_seconds() - cpu0

            def answered() -> Samples | None:  # the last answer may reach the operator just after its Job's event
                samples = op.metrics()
                return samples if creates(samples) >= n else None

            after = poll(answered, 30, "the operator's answers to its creates")
            # Its Jobs finished, the cluster is quiet for the next side (the TaskJob's own end is not measured).
            poll(lambda: watch.finished() >= n, 600, f"{n} Jobs of the operator to finish", interval=1)
        problems = op.problems()
    return {
        "first": first - started,
        "last": last - started,
        "rate": n / (last - started),
        "burst_rate": (n - 1) / (last - first) if last > first else float("nan"),
        "operator_cpu_seconds_while_creating": cpu,
        "operator_problems": problems[:5],
        **_answer_times(metrics_delta(before, after), last - first),
    }


def rounds_order(sides: list[str], i: int) -> list[str]:
    """Return the order of the sides in round i: rotated by one each round, so none always runs first or last."""
    k = i % len(sides)
    return sides[k:] + sides[:k]


def run(cluster: Cluster, mode: str, qps: float, rounds: int = 3) -> dict[str, Any]:
    """Run B2 at one QPS and print its tables; return the figures (medians over the rounds, and each round's).

    `rounds` applies at QPS >= UNTHROTTLED_FROM; below it the rate limit bounds both sides and one round is run.
    """
    n = 300 if mode == "quick" else 1000
    with_free = qps >= UNTHROTTLED_FROM
    rounds = max(1, rounds) if with_free else 1
    sides = list(SIDES) if with_free else ["raw", "operator"]
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "raw": lambda: raw_loop(cluster, n, qps),
        "raw_unthrottled": lambda: raw_loop(cluster, n, 0.0),
        "operator": lambda: operator_run(cluster, n, qps),
    }
    what = {
        "raw": f"raw client loop, {n} Jobs at {qps:g} QPS",
        "raw_unthrottled": f"raw client loop, {n} Jobs, no client rate limit",
        "operator": f"the operator, a TaskJob of {n} independent tasks at --qps {qps:g}",
    }
    done: list[dict[str, Any]] = []
    for i in range(rounds):
        figures: dict[str, Any] = {"order": rounds_order(sides, i)}
        for side in figures["order"]:
            log(f"B2{f' round {i + 1}/{rounds}' if rounds > 1 else ''}: {what[side]}")
            figures[side] = runners[side]()
        figures["ratio"] = figures["operator"]["rate"] / figures["raw"]["rate"]
        free = figures.get("raw_unthrottled")
        figures["ratio_unthrottled"] = figures["operator"]["rate"] / free["rate"] if free else None
        done.append(figures)

    def median(side: str, key: str) -> float:
        return float(statistics.median(r[side][key] for r in done))

    summary: dict[str, dict[str, Any]] = {
        side: {key: median(side, key) for key in ("first", "last", "rate")} for side in sides
    }
    cpu = "operator_cpu_seconds_while_creating"
    summary["operator"][cpu] = median("operator", cpu)
    summary["operator"]["operator_problems"] = [p for r in done for p in r["operator"]["operator_problems"]][:5]
    ratio = statistics.median(r["ratio"] for r in done)
    free_ratio = statistics.median(r["ratio_unthrottled"] for r in done) if with_free else None
    _print(n, qps, done, summary, ratio, free_ratio)
    return {
        "jobs": n,
        "qps": qps,
        "rounds": done,
        "raw": summary["raw"],
        "raw_unthrottled": summary.get("raw_unthrottled"),
        "operator": summary["operator"],
        "ratio": ratio,
        "ratio_unthrottled": free_ratio,
    }


def _print(
    n: int, qps: float, done: list[dict[str, Any]], summary: dict[str, Any], ratio: float, free_ratio: float | None
) -> None:
    """Print the summary table (medians over the rounds), each round's rates, and the create answer times."""
    raw, op, free = summary["raw"], summary["operator"], summary.get("raw_unthrottled")
    rows = [[LABELS["raw"], f"{raw['first']:.2f} s", f"{raw['last']:.2f} s", f"{raw['rate']:.1f}", "1.00", ""]]
    if free is not None:
        rows.append([LABELS["raw_unthrottled"], f"{free['first']:.2f} s", f"{free['last']:.2f} s",
                     f"{free['rate']:.1f}", f"{free['rate'] / raw['rate']:.2f}", "1.00"])  # fmt: skip
    rows.append(
        [LABELS["operator"], f"{op['first']:.2f} s", f"{op['last']:.2f} s", f"{op['rate']:.1f}",
         f"{ratio:.2f} ({verdict(ratio, GOAL_RATIO, higher_is_better=True)}; goal >= {GOAL_RATIO:.2f})",
         "" if free_ratio is None else
         f"{free_ratio:.2f} ({verdict(free_ratio, GOAL_UNTHROTTLED, higher_is_better=True)}; "
         f"goal >= {GOAL_UNTHROTTLED:.2f})"]
    )  # fmt: skip
    rounds = len(done)
    how = f"; medians of {rounds} rounds, order rotated per round" if rounds > 1 else ""
    print(f"\n### B2 launch throughput ({n} Jobs, client QPS {qps:g}, burst {int(qps * 2)}{how})\n")
    print(
        table(
            ["creator", "first Job seen", "last Job seen", "Jobs/s (handover -> last)", "ratio to raw, same QPS",
             "ratio to raw, unthrottled"],
            rows,
        )
    )  # fmt: skip
    if rounds > 1:
        print("\nEach round (ratios are per round; the goals are judged on their medians, above):\n")
        print(
            table(
                ["round", "order", "raw Jobs/s", "unthrottled Jobs/s", "operator Jobs/s", "operator first Job",
                 "operator / raw", "operator / unthrottled"],
                [[str(i + 1), ", ".join(r["order"]), f"{r['raw']['rate']:.1f}",
                  f"{r['raw_unthrottled']['rate']:.1f}" if r.get("raw_unthrottled") else "",
                  f"{r['operator']['rate']:.1f}", f"{r['operator']['first']:.2f} s", f"{r['ratio']:.2f}",
                  f"{r['ratio_unthrottled']:.2f}" if r["ratio_unthrottled"] is not None else ""]
                 for i, r in enumerate(done)],
            )
        )  # fmt: skip
    print(
        f"\nCreate answer times (sent on one of {CONNECTIONS} connections -> answer; p50/p99 are histogram bucket "
        "bounds, `exact` the raw loop's own timings), the waits before it for the rate limit and for a connection, "
        "and the creates in flight over the create window (Little's law):\n"
    )
    rows = []
    for i, r in enumerate(done):
        for side in r["order"]:
            f = r[side]
            create, limit, conn = f["create"] or {}, f["rate_limit_wait"] or {}, f["connection_wait"] or {}
            exact = f.get("create_exact")
            rows.append([
                str(i + 1), LABELS[side].split(" (")[0], create.get("count", 0), _ms(create.get("mean")),
                f"<= {_ms(create.get('p50_le'))}", f"<= {_ms(create.get('p99_le'))}",
                f"{_ms(exact['p50'])} / {_ms(exact['p99'])}" if exact else "",
                f"{_ms(limit.get('mean'))} / <= {_ms(limit.get('p99_le'))}",
                f"{_ms(conn.get('mean'))} / <= {_ms(conn.get('p99_le'))}",
                f"{f['on_connections']:.1f} + {f['queued_for_connection']:.1f}",
            ])  # fmt: skip
    print(
        table(
            ["round", "creator", "creates", "answer mean", "p50", "p99", "exact p50 / p99",
             "rate-limit wait mean / p99", "connection wait mean / p99", "in flight: on a connection + queued"],
            rows,
        )
    )  # fmt: skip
    print(f"\noperator CPU while creating: {op['operator_cpu_seconds_while_creating']:.1f} s")
    if op["operator_problems"]:
        print(f"\noperator log problems: {op['operator_problems']}")


def _ms(seconds: float | None) -> str:
    """Return seconds as milliseconds (one decimal below 10 ms) for a table cell."""
    if seconds is None or seconds != seconds:
        return "n/a"
    if seconds == float("inf"):
        return "inf"
    return f"{seconds * 1000:.1f} ms" if seconds < 0.01 else f"{seconds * 1000:.0f} ms"
