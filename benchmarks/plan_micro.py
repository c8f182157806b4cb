"""B3 planning time per event: the reconciler's CPU work when one attempt of an N-task DAG just finished.

Pure (no cluster): a Store filled with synthetic Jobs and pods of a half-finished run, the status the
previous reconcile wrote, then one running Job turns Complete. Each step the reconciler runs for that
event is timed on its own, with the same functions it calls:

  status      TaskJobStatus.model_validate(the last written status)
  facts       Store.facts(key): an AttemptFact per Job (cached per resourceVersion in the store)
  plan        taskjobs.core.plan.plan(...)
  dump        dump_status(new status)
  diff        mergepatch.diff(old status, new status): the patch sent
  validate    validate_taskjob(body): the reconciler caches it per (uid, generation), so it runs once per
              spec, not per event; shown for reference

Shapes: wide (N independent tasks), chain (each task depends on the one before), layered (sqrt(N)
layers of sqrt(N) tasks, each depending on 2 of the layer before).
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from common import chain, independent, layered, table, taskjob

NS, NAME, UID = "bench", "dag", "00000000-0000-0000-0000-00000000d0a9"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def shape_tasks(shape: str, n: int) -> list[dict[str, Any]]:
    """Return the task list of a shape with n tasks (layered: the nearest square)."""
    if shape == "wide":
        return independent(n)
    if shape == "chain":
        return chain(n)
    side = max(2, round(math.sqrt(n)))
    return layered(side, side)


def _stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class Synthetic:
    """A half-finished run of one TaskJob in a Store, and the event that one more Job finished."""

    def __init__(self, shape: str, n: int) -> None:
        from taskjobs.core.dag import build
        from taskjobs.core.models import TaskJobMeta, TaskJobSpec
        from taskjobs.core.render import render_job
        from taskjobs.core.resolve import resolve_tasks
        from taskjobs.shell.store import Store

        manifest = taskjob(NAME, shape_tasks(shape, n))
        manifest["metadata"] = {
            "name": NAME, "namespace": NS, "uid": UID, "generation": 1, "resourceVersion": "1",
            "creationTimestamp": _stamp(T0),
        }  # fmt: skip
        self.body = manifest
        self.n = len(manifest["spec"]["tasks"])
        self.meta = TaskJobMeta.model_validate(manifest["metadata"])
        self.spec = TaskJobSpec.model_validate(manifest["spec"])
        graph = build([(t.name, tuple(t.depends_on or ())) for t in self.spec.tasks])
        order = list(graph.order)
        done = set(order[: len(order) // 2])
        running = [t for t in order if t not in done and all(d in done for d in graph.deps[t])]
        self.finishing = running[0]
        self.running = running
        self.store = Store()
        self.store.on_taskjob(None, manifest)
        resolved = resolve_tasks(self.spec)
        self.rv = 10
        self.jobs: dict[str, dict[str, Any]] = {}
        for task in [*[t for t in order if t in done], *running]:
            job = render_job(self.meta, resolved[task], 1, {})
            job["metadata"]["uid"] = f"job-{task}"
            job["metadata"]["creationTimestamp"] = _stamp(T0)
            self.jobs[task] = job
            self._set(task, finished=task in done)
        self.key = (NS, NAME)

    def _set(self, task: str, finished: bool) -> None:
        """Record the task's Job (and pod) in the store: running, or Complete."""
        self.rv += 1
        job = dict(self.jobs[task])
        job["metadata"] = {**job["metadata"], "resourceVersion": str(self.rv)}
        name = job["metadata"]["name"]
        started, ended = _stamp(T0 + timedelta(seconds=1)), _stamp(T0 + timedelta(seconds=2))
        job["status"] = {"startTime": started, "active": 0 if finished else 1}
        state: dict[str, Any] = {"running": {"startedAt": started}}
        if finished:
            job["status"] |= {
                "succeeded": 1, "completionTime": ended,
                "conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": ended},
                    {"type": "Complete", "status": "True", "lastTransitionTime": ended},
                ],
            }  # fmt: skip
            state = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": ended}}
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{name}-abcde", "namespace": NS, "uid": f"pod-{task}", "resourceVersion": str(self.rv),
                "creationTimestamp": _stamp(T0),
                "labels": {**job["metadata"]["labels"], "batch.kubernetes.io/job-name": name},
                "ownerReferences": [{"kind": "Job", "name": name, "uid": f"job-{task}", "controller": True}],
            },
            "status": {
                "phase": "Succeeded" if finished else "Running",
                "containerStatuses": [{"name": "task", "state": state}],
            },
        }  # fmt: skip
        self.store.on_job("MODIFIED", job)
        self.store.on_pod("MODIFIED", pod)

    def plan(self, status: Any) -> Any:
        """Return the plan for the store's current facts."""
        from taskjobs.core.plan import plan

        return plan(self.meta, self.spec, status, self.store.facts(self.key), T0 + timedelta(seconds=3))

    def prior(self) -> dict[str, Any]:
        """Return the status written before the event (all running tasks shown Running)."""
        from taskjobs.core.models import TaskJobStatus, dump_status

        status: dict[str, Any] = {}
        for _ in range(2):  # twice: the second plan starts from a written status, as in a live run
            prev = TaskJobStatus.model_validate(status) if status else None
            status = dump_status(self.plan(prev).status)
        return status

    def finish(self) -> None:
        """The event: the first running task's Job turns Complete."""
        self._set(self.finishing, finished=True)


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Return the median seconds of `repeat` calls of fn, and its last result."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def measure(shape: str, n: int) -> dict[str, Any]:
    """Return the per-step CPU times of one event in an n-task DAG of the shape, and the status sizes."""
    from taskjobs.core import mergepatch
    from taskjobs.core.models import TaskJobStatus, dump_status
    from taskjobs.core.validation import validate_taskjob

    syn = Synthetic(shape, n)
    repeat = 3 if syn.n >= 5000 else 7 if syn.n >= 500 else 25
    prior_raw = syn.prior()
    syn.finish()
    t_status, prior = best(lambda: TaskJobStatus.model_validate(prior_raw), repeat)
    syn.store.facts(syn.key)  # warm the fact cache as a live store's would be, but for the finished Job
    t_facts, facts = best(lambda: syn.store.facts(syn.key), repeat)
    from taskjobs.core.plan import plan

    now = T0 + timedelta(seconds=3)
    t_plan, result = best(lambda: plan(syn.meta, syn.spec, prior, facts, now), repeat)
    t_dump, new_raw = best(lambda: dump_status(result.status), repeat)
    t_diff, patch = best(lambda: mergepatch.diff(prior_raw, new_raw), repeat)
    t_validate, _ = best(lambda: validate_taskjob(syn.body), max(1, repeat // 3))
    per_event = t_status + t_facts + t_plan + t_dump + t_diff
    return {
        "shape": shape,
        "tasks": syn.n,
        "status_s": t_status,
        "facts_s": t_facts,
        "plan_s": t_plan,
        "dump_s": t_dump,
        "diff_s": t_diff,
        "per_event_s": per_event,
        "validate_once_s": t_validate,
        "creates": len(result.create),
        "patch_bytes": len(json.dumps(patch, separators=(",", ":"))),
        "status_bytes_midrun": len(json.dumps(new_raw, separators=(",", ":"))),
        "spec_bytes": len(json.dumps(syn.body["spec"], separators=(",", ":"))),
    }


def measure_incremental(shape: str, n: int, events: int = 15) -> dict[str, Any]:
    """Return the operator's per-event CPU time as it runs now: one Job finishes, the reconciler replans.

    The same steps as the reconciler: the store's fact map and change log, replan from the memory of the
    last plan, the status JSON and patch of the changed tasks. Median over `events` Jobs finishing in turn.
    """
    from taskjobs.core.incremental import replan
    from taskjobs.core.mergepatch import dump_changes, patch_changes
    from taskjobs.core.models import dump_status

    syn = Synthetic(shape, n)
    now = T0 + timedelta(seconds=3)
    memory, raw, token = None, {}, syn.store.token(syn.key)
    for _ in range(2):  # as live: a full pass, then one from its memory
        token = syn.store.token(syn.key)
        result, memory = replan(syn.meta, syn.spec, memory, None, syn.store.fact_map(syn.key), now)
        raw = dump_status(result.status)
    times, decided = [], []
    for task in syn.running[:events]:
        syn._set(task, finished=True)
        started = time.perf_counter()
        hint = syn.store.changed_since(syn.key, token)
        token = syn.store.token(syn.key)
        facts = syn.store.fact_map(syn.key)
        result, memory = replan(syn.meta, syn.spec, memory, None, facts, now, changed_jobs=hint)
        new_raw = dump_changes(raw, result.status, result.changed)
        patch_changes(raw, new_raw, result.changed)
        times.append(time.perf_counter() - started)
        raw = new_raw
        decided.append(len(result.changed) if result.changed is not None else syn.n)
    return {"shape": shape, "tasks": syn.n, "per_event_s": statistics.median(times), "decided": max(decided)}


def final_status_bytes(shape: str, n: int) -> int:
    """Return the size of the status once every task succeeded (the largest a successful run writes)."""
    from taskjobs.core.models import dump_status

    syn = Synthetic(shape, n)
    for task in syn.jobs:
        syn._set(task, finished=True)
    # Tasks never started in the half-finished store: run them to completion too.
    from taskjobs.core.render import render_job
    from taskjobs.core.resolve import resolve_tasks

    resolved = resolve_tasks(syn.spec)
    for task in resolved:
        if task not in syn.jobs:
            job = render_job(syn.meta, resolved[task], 1, {})
            job["metadata"]["uid"] = f"job-{task}"
            job["metadata"]["creationTimestamp"] = _stamp(T0)
            syn.jobs[task] = job
            syn._set(task, finished=True)
    status = dump_status(syn.plan(None).status)
    assert status["phase"] == "Succeeded", status["phase"]
    return len(json.dumps(status, separators=(",", ":")))


def run(sizes: tuple[int, ...] = (100, 1000, 10000), shapes: tuple[str, ...] = ("wide", "chain", "layered")) -> dict:
    """Run the micro-benchmark and print its table; return the figures."""
    rows, results = [], []
    for shape in shapes:
        for n in sizes:
            r = measure(shape, n)
            inc = measure_incremental(shape, n)
            r["incremental_per_event_s"] = inc["per_event_s"]
            r["incremental_decided"] = inc["decided"]
            results.append(r)
            rows.append([
                shape, r["tasks"], f"{r['status_s'] * 1e3:.1f}", f"{r['plan_s'] * 1e3:.1f}",
                f"{r['dump_s'] * 1e3:.1f}", f"{r['diff_s'] * 1e3:.1f}", f"{r['per_event_s'] * 1e3:.1f}",
                f"{inc['per_event_s'] * 1e3:.2f}", inc["decided"],
                f"{r['per_event_s'] / inc['per_event_s']:.0f}x", f"{r['validate_once_s'] * 1e3:.0f}",
                r["patch_bytes"],
            ])  # fmt: skip
    print("\n### B3 planning time per event (one Job of an N-task DAG just finished; CPU ms, median)\n")
    print("Full pass = what every event cost before incremental planning (and what a restart's first reconcile")
    print("costs); incremental = what the reconciler does now per event (fact map, replan, status JSON and patch).\n")
    print(
        table(
            ["shape", "tasks", "full: status parse", "plan()", "dump", "diff", "full pass per event",
             "incremental per event", "tasks decided", "speed-up", "validate (once per spec)", "patch bytes"],
            rows,
        )
    )  # fmt: skip
    return {"rows": results}


if __name__ == "__main__":
    run()
