"""The JSON each page gets, computed from the Model at a given time (no I/O, no clock of its own).

- `overview`: counts, throughput, failure rate, last failures, and one row per TaskJob.
- `taskjob_view`: one TaskJob's tasks, its graph (big layers grouped), the timeline of attempts.
- `task_view`: one task's attempts (Job, pod, times, exit code, reason, output) and Events.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from .coreapi import attempt_fact, instance_name, instance_summary, observe_attempt
from .model import Key, Model, Obj, attempt_of, owner_of

TASK_PHASES = ("Waiting", "Ready", "Running", "Retrying", "Succeeded", "Failed", "Skipped")
TASKJOB_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Suspended", "Invalid")
FINAL_TASK_PHASES = frozenset({"Succeeded", "Failed", "Skipped"})
GROUP_OVER = 40  # a layer with more tasks than this is drawn as one node per phase
LAST_FAILURES = 20
TIMELINE_MAX = 2000  # attempts drawn in the Gantt view; the rest are counted


def parse_time(value: Any) -> datetime | None:
    """Return an RFC 3339 timestamp as an aware datetime, None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def iso(moment: datetime | None) -> str | None:
    """Return a datetime as RFC 3339 (UTC, seconds), None for None."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def _status(tj: Mapping[str, Any]) -> Mapping[str, Any]:
    return tj.get("status") or {}


def _tasks_spec(tj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    spec = tj.get("spec") or {}
    tasks = [*(spec.get("tasks") or []), *(spec.get("finally") or [])]  # finally tasks run last: listed last
    return [t for t in tasks if isinstance(t, Mapping) and isinstance(t.get("name"), str)]


def task_phase(tj: Mapping[str, Any], task: str) -> str:
    """Return a task's phase from the status (Waiting when the status does not name it yet)."""
    state = (_status(tj).get("tasks") or {}).get(task) or {}
    return str(state.get("phase") or "Waiting")


def taskjob_phase(tj: Mapping[str, Any]) -> str:
    """Return the TaskJob's phase (Pending before the operator wrote a status)."""
    return str(_status(tj).get("phase") or "Pending")


# ---------------------------------------------------------------- overview


def taskjob_row(tj: Mapping[str, Any], now: datetime) -> Obj:
    """Return one TaskJob's line in the overview list."""
    meta = tj.get("metadata") or {}
    status = _status(tj)
    total = status.get("total") or len(_tasks_spec(tj))
    created = parse_time(meta.get("creationTimestamp"))
    started = parse_time(status.get("startTime"))
    completed = parse_time(status.get("completionTime"))
    duration = ((completed or now) - started).total_seconds() if started else None
    return {
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "labels": meta.get("labels") or {},
        "phase": taskjob_phase(tj),
        "progress": status.get("progress") or f"{status.get('succeeded') or 0}/{total}",
        "total": total,
        "succeeded": status.get("succeeded") or 0,
        "failed": status.get("failed") or 0,
        "running": status.get("running") or 0,
        "pending": status.get("pending") or 0,
        "skipped": status.get("skipped") or 0,
        "created": iso(created),
        "started": iso(started),
        "completed": iso(completed),
        "age": (now - created).total_seconds() if created else None,
        "duration": duration,
        "message": status.get("message") or "",
    }


def _failed(job: Mapping[str, Any]) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Failed" and c.get("status") == "True" for c in conditions)


def last_failures(model: Model, now: datetime, limit: int = LAST_FAILURES) -> list[Obj]:
    """Return the newest failed attempts: each failed Job, and failed tasks whose Job is gone.

    Each says whether a retry is scheduled (the task is Retrying after this very attempt) and when.
    """
    failures: list[Obj] = []
    covered: set[tuple[str, str, str, int]] = set()
    pods_of: dict[Key, dict[tuple[str, int], list[Obj]]] = {}  # each TaskJob's pods by attempt, when needed
    for job in model.jobs.values():
        if not _failed(job):
            continue
        owner = owner_of("jobs", job)
        if owner is None:
            continue
        ns, name = owner
        task, attempt = attempt_of(job)
        covered.add((ns, name, task, attempt))
        tj = model.taskjobs.get(owner)
        state = ((_status(tj).get("tasks") or {}).get(task) or {}) if tj else {}
        if owner not in pods_of:
            pods_of[owner] = defaultdict(list)
            for pod in model.children("pods", owner):
                pods_of[owner][attempt_of(pod)].append(pod)
        row = attempt_row(job, pods_of[owner].get((task, attempt), []), now)
        latest = (state.get("attempts") or 0) == attempt
        failures.append(
            {
                "namespace": ns, "taskjob": name, "task": task, "attempt": attempt,
                "phase": state.get("phase") if latest else "Retried",
                "exitCode": row["exitCode"], "reason": row["reason"] or state.get("reason") or "",
                "message": row["message"] or (state.get("message") if latest else "") or "",
                "when": row["finish"],
                "nextRetryTime": state.get("nextRetryTime") if latest and state.get("phase") == "Retrying" else None,
            }
        )
    for (ns, name), tj in model.taskjobs.items():
        for task, state in (_status(tj).get("tasks") or {}).items():
            attempt = state.get("attempts") or 0
            failed = state.get("phase") == "Failed" or (
                state.get("phase") == "Retrying" and (state.get("exitCode") is not None or state.get("reason"))
            )
            if failed and (ns, name, task, attempt) not in covered:
                failures.append(
                    {
                        "namespace": ns, "taskjob": name, "task": task, "attempt": attempt,
                        "phase": state.get("phase"), "exitCode": state.get("exitCode"),
                        "reason": state.get("reason") or "", "message": state.get("message") or "",
                        "when": state.get("finishTime"),
                        "nextRetryTime": state.get("nextRetryTime") if state.get("phase") == "Retrying" else None,
                    }
                )
    failures.sort(key=lambda f: f["when"] or "", reverse=True)
    return failures[:limit]


def overview(model: Model, now: datetime) -> Obj:
    """Return the overview page's data."""
    tj_phases: Counter[str] = Counter()
    task_phases: Counter[str] = Counter()
    finished_5 = finished_60 = failed_60 = 0
    rows = []
    for tj in model.taskjobs.values():
        row = taskjob_row(tj, now)
        rows.append(row)
        tj_phases[row["phase"]] += 1
        tasks = _status(tj).get("tasks") or {}
        named = 0
        for state in tasks.values():
            phase = state.get("phase") or "Waiting"
            task_phases[phase] += 1
            named += 1
            finish = parse_time(state.get("finishTime"))
            if finish is not None and phase in ("Succeeded", "Failed"):
                age = now - finish
                if age <= timedelta(minutes=60):
                    finished_60 += 1
                    failed_60 += phase == "Failed"
                    if age <= timedelta(minutes=5):
                        finished_5 += 1
        task_phases["Waiting"] += max(0, int(row["total"] or 0) - named)  # big TaskJobs omit waiting tasks
    rows.sort(key=lambda r: (r["created"] or "", r["namespace"] or "", r["name"] or ""), reverse=True)
    return {
        "now": iso(now),
        "taskjobPhases": {p: tj_phases.get(p, 0) for p in TASKJOB_PHASES},
        "taskPhases": {p: task_phases.get(p, 0) for p in TASK_PHASES},
        "throughput": {"last5": finished_5 / 5, "last60": finished_60 / 60},
        "failureRate": (failed_60 / finished_60) if finished_60 else None,
        "finishedLast60": finished_60,
        "failedLast60": failed_60,
        "lastFailures": last_failures(model, now),
        "namespaces": sorted({r["namespace"] for r in rows if r["namespace"]}),
        "taskjobs": rows,
    }


# ---------------------------------------------------------------- one TaskJob


def depths(tasks: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Return each task's layer: the length of the longest dependency chain above it (cycles cut)."""
    deps = {str(t["name"]): [str(d) for d in t.get("dependsOn") or [] if isinstance(d, str)] for t in tasks}
    depth: dict[str, int] = {}
    for start in deps:
        stack: list[tuple[str, bool]] = [(start, False)]
        visiting: set[str] = set()
        while stack:
            name, done = stack.pop()
            if done:
                visiting.discard(name)
                depth[name] = 1 + max((depth.get(d, -1) for d in deps.get(name, []) if d in deps), default=-1)
                continue
            if name in depth or name in visiting:
                continue
            visiting.add(name)
            stack.append((name, True))
            stack.extend((d, False) for d in deps.get(name, []) if d in deps and d not in depth)
    return depth


def task_rows(tj: Mapping[str, Any]) -> list[Obj]:
    """Return every task of the spec with its state, in spec order."""
    states = _status(tj).get("tasks") or {}
    spec = _tasks_spec(tj)
    layer = depths(spec)
    final = {t.get("name") for t in (tj.get("spec") or {}).get("finally") or [] if isinstance(t, Mapping)}
    if final:  # finally tasks are drawn in layers after every other task
        below = 1 + max((v for n, v in layer.items() if n not in final), default=-1)
        layer = {n: v + below if n in final else v for n, v in layer.items()}
    rows = []
    for t in spec:
        name = str(t["name"])
        state = states.get(name) or {}
        rows.append(
            {
                "name": name,
                "dependsOn": [d for d in t.get("dependsOn") or [] if isinstance(d, str)],
                "layer": layer.get(name, 0),
                "phase": state.get("phase") or "Waiting",
                "attempts": state.get("attempts") or 0,
                "startTime": state.get("startTime"),
                "finishTime": state.get("finishTime"),
                "exitCode": state.get("exitCode"),
                "reason": state.get("reason") or "",
                "message": _fanout_message(name, state, states) or state.get("message") or "",
                "nextRetryTime": state.get("nextRetryTime"),
            }
        )
    return rows


def _fanout_message(name: str, state: Mapping[str, Any], states: Mapping[str, Any]) -> str | None:
    """Return a fan-out task's instances by phase ('4 instances: 3 succeeded, 1 running'), else None."""
    items = state.get("items")
    if not isinstance(items, int):
        return None
    units = (instance_name(name, i) for i in range(items))
    phases = (str((states.get(u) or {}).get("phase") or "Waiting") for u in units)
    own = state.get("message") if state.get("phase") != "Succeeded" else None
    return instance_summary(items, phases) + (f"; {own}" if own else "")


def graph(rows: Sequence[Mapping[str, Any]], group_over: int = GROUP_OVER) -> Obj:
    """Return the nodes and edges to draw: one node per task, or per (layer, phase) in layers over `group_over`.

    A grouped node carries its task count and phase; edges between groups are deduplicated, so a
    10,000-task TaskJob draws tens of nodes instead of ten thousand.
    """
    per_layer = Counter(int(r["layer"]) for r in rows)
    node_of: dict[str, str] = {}
    nodes: dict[str, Obj] = {}
    for r in rows:
        layer = int(r["layer"])
        if per_layer[layer] > group_over:
            node_id = f"group:{layer}:{r['phase']}"
            node = nodes.setdefault(
                node_id,
                {"id": node_id, "group": True, "layer": layer, "phase": r["phase"], "count": 0, "label": ""},
            )
            node["count"] += 1
            node["label"] = f"layer {layer}: {node['count']} {r['phase']}"
        else:
            node_id = f"task:{r['name']}"
            nodes[node_id] = {
                "id": node_id,
                "group": False,
                "task": r["name"],
                "layer": layer,
                "phase": r["phase"],
                "attempts": r["attempts"],
                "label": r["name"],
                "nextRetryTime": r["nextRetryTime"],
                "exitCode": r["exitCode"],
            }
        node_of[r["name"]] = node_id
    edges: set[tuple[str, str]] = set()
    for r in rows:
        target = node_of[r["name"]]
        for dep in r["dependsOn"]:
            source = node_of.get(dep)
            if source is not None and source != target:
                edges.add((source, target))
    return {
        "grouped": any(n["group"] for n in nodes.values()),
        "nodes": sorted(nodes.values(), key=lambda n: (n["layer"], n["id"])),
        "edges": [{"source": s, "target": t} for s, t in sorted(edges)],
    }


def attempt_end(job: Obj, pods: Sequence[Obj]) -> tuple[str, datetime | None] | None:
    """Return an attempt's phase and, once it ended, when, as the operator decides (core.observe).

    None if the Job is not an attempt (no task or attempt label: the operator ignores it too). A stopped
    Job, or one whose pod finished after its activeDeadlineSeconds, waits for the Job's verdict. A
    succeeded attempt ends when the pod that decided it finished, also once the Job is Complete.
    """
    fact = attempt_fact(job, pods)
    if fact is None:
        return None
    return fact.phase, fact.finish_time  # None until the attempt ended


def timeline(model: Model, key: Key, now: datetime) -> Obj:
    """Return the attempts of a TaskJob's tasks as bars (task, attempt, start, finish, outcome)."""
    bars = []
    pods: dict[tuple[str, int], list[Obj]] = defaultdict(list)
    for pod in model.children("pods", key):
        pods[attempt_of(pod)].append(pod)
    for job in model.children("jobs", key):
        task, attempt = attempt_of(job)
        ended = attempt_end(job, pods.get((task, attempt), ()))
        if ended is None:
            continue  # no task or attempt label: not an attempt
        phase, finish = ended
        outcome = phase if phase in ("Succeeded", "Failed") else "Running"  # a bar has no Pending
        status = job.get("status") or {}
        start = parse_time(status.get("startTime")) or parse_time(job["metadata"].get("creationTimestamp"))
        bars.append(
            {"task": task, "attempt": attempt, "job": job["metadata"].get("name"), "start": iso(start),
             "finish": iso(finish), "outcome": outcome}
        )
    bars.sort(key=lambda b: (b["start"] or "", b["task"], b["attempt"]))
    return {"bars": bars[:TIMELINE_MAX], "omitted": max(0, len(bars) - TIMELINE_MAX), "now": iso(now)}


def taskjob_view(model: Model, key: Key, now: datetime) -> Obj | None:
    """Return a TaskJob page's data, None when there is no such TaskJob."""
    tj = model.taskjobs.get(key)
    if tj is None:
        return None
    rows = task_rows(tj)
    phases = Counter(r["phase"] for r in rows)
    status = _status(tj)
    return {
        "now": iso(now),
        "summary": taskjob_row(tj, now),
        "conditions": status.get("conditions") or [],
        "taskPhases": {p: phases.get(p, 0) for p in TASK_PHASES},
        "tasks": rows,
        "graph": graph(rows),
        "timeline": timeline(model, key, now),
        "events": [_event_row(e) for e in model.events_about(key[0], {("TaskJob", key[1])})[-50:]],
    }


def manifest(model: Model, key: Key) -> str | None:
    """Return the TaskJob as YAML (metadata, spec and status as the dashboard holds them)."""
    tj = model.taskjobs.get(key)
    if tj is None:
        return None
    meta = {k: v for k, v in tj["metadata"].items() if k not in ("resourceVersion", "uid")}
    body = {"apiVersion": "taskjob.dev/v1alpha1", "kind": "TaskJob", "metadata": meta, "spec": tj["spec"]}
    return yaml.safe_dump(body, sort_keys=False)


# ---------------------------------------------------------------- one task


def _container(pod: Mapping[str, Any] | None, name: str = "task") -> Mapping[str, Any]:
    for status in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == name:
            return dict(status)
    statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or []
    return dict(statuses[0]) if statuses else {}


def attempt_row(job: Obj | None, pods: Sequence[Obj], now: datetime) -> Obj:
    """Return one attempt: its Job, pod, start, finish, duration, exit code, reason, message and output.

    With its Job, every field is the operator's fact (core.observe, as the timeline's bars), read from the
    pod that decided the attempt: a stopped attempt shows the stop, not its container's exit 0. Without its
    Job (not in view yet, or deleted) the pod alone does not say how the attempt ended: the Job holds the
    operator's stop and the deadline, so a pod whose container has ended is Unknown.
    """
    observed = observe_attempt(job, pods) if job is not None else None
    outcome: str
    if observed is not None:
        fact, pod = observed
        terminated = (_container(pod).get("state") or {}).get("terminated") or {}
        outcome, start, finish = fact.phase, fact.start_time, fact.finish_time
        exit_code, reason, message = fact.exit_code, fact.reason or "", fact.message or ""
        output = (fact.output or "") if outcome == "Succeeded" else ""
    else:
        pod = max(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "", default=None)
        state = _container(pod).get("state") or {}
        terminated = state.get("terminated") or {}
        waiting = state.get("waiting") or {}
        start = parse_time(terminated.get("startedAt")) or parse_time((state.get("running") or {}).get("startedAt"))
        finish = parse_time(terminated.get("finishedAt"))
        outcome = "Unknown" if terminated else "Running" if state.get("running") else "Pending"
        exit_code, reason = terminated.get("exitCode"), terminated.get("reason") or waiting.get("reason") or ""
        message, output = waiting.get("message") or "", ""
    task, attempt = attempt_of(job or pod or {})
    return {
        "attempt": attempt,
        "job": (job or {}).get("metadata", {}).get("name"),
        "pod": pod["metadata"].get("name") if pod else None,
        "node": ((pod or {}).get("spec") or {}).get("nodeName"),
        "outcome": outcome,
        "start": iso(start),
        "finish": iso(finish),
        "duration": ((finish or now) - start).total_seconds() if start else None,
        "exitCode": exit_code,
        "reason": reason,
        "message": message,
        "output": output,
        "running": outcome == "Running" and not terminated,  # its log may still grow
    }


def task_view(model: Model, key: Key, task: str, now: datetime) -> Obj | None:
    """Return a task panel's data, None when the TaskJob has no such task."""
    tj = model.taskjobs.get(key)
    if tj is None or task not in {t["name"] for t in _tasks_spec(tj)}:
        return None
    jobs: dict[int, Obj] = {}
    pods: dict[int, list[Obj]] = defaultdict(list)
    for job in model.children("jobs", key):
        t, attempt = attempt_of(job)
        if t == task:
            jobs[attempt] = job
    for pod in model.children("pods", key):
        t, attempt = attempt_of(pod)
        if t == task:
            pods[attempt].append(pod)
    attempts = [attempt_row(jobs.get(a), pods.get(a, []), now) for a in sorted(set(jobs) | set(pods))]
    subjects = {("Job", a["job"]) for a in attempts if a["job"]} | {("Pod", a["pod"]) for a in attempts if a["pod"]}
    row = next(r for r in task_rows(tj) if r["name"] == task)
    return {
        "now": iso(now),
        "task": row,
        "attempts": attempts,
        "events": [_event_row(e) for e in model.events_about(key[0], subjects)],
    }


def _event_row(event: Mapping[str, Any]) -> Obj:
    involved = event.get("involvedObject") or {}
    return {
        "type": event.get("type") or "Normal",
        "reason": event.get("reason") or "",
        "message": event.get("message") or "",
        "count": event.get("count") or 1,
        "time": event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp"),
        "object": f"{involved.get('kind')}/{involved.get('name')}",
    }
