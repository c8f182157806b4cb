"""One reconcile of one TaskJob: read the store, ask the pure core what to do, do it.

Everything is derived again on each run from the TaskJob and the Jobs it owns; every action is
idempotent (a Job that already exists was created by an earlier run), so the process may die at
any line and the next run picks up where it left off.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from ..actions import Plan, RetryRequest
from ..facts import AttemptFact
from ..incremental import replan
from ..inputs import inputs_for
from ..invalid import invalid_status
from ..models import TERMINAL_PHASES, TaskJobMeta, TaskJobStatus, dump_status
from ..naming import job_name
from ..plan import COMPACT_TASKS, Memory, SpecShape
from ..render import render_job, stop_job_patch
from ..statusdelta import dump_changes, patch_changes
from ..validation import ValidationResult, validate_taskjob
from . import metrics
from .kube import Kube
from .store import Key, Store, Token, expected_fact

log = logging.getLogger("taskjob.reconciler")

# A status write of a TaskJob of 10,000 tasks costs the API server about 2 s of CPU (validating, decoding
# and encoding ~1 MB; docs/performance.md), so written after every event it starves the Job controller
# that runs the tasks. Above COMPACT_TASKS tasks, status writes are spaced: the next waits
# WRITE_SPACING times as long as the last took, at least MIN_WRITE_GAP seconds. They are also written in
# the background, one at a time per TaskJob, so the next reconcile (creating the next Jobs) need not wait
# a second for the last write to finish. Changes of phase are written at once, in the reconcile.
WRITE_SPACING = 2.0
MIN_WRITE_GAP = 1.0


def outputs_configmap(taskjob: str) -> str:
    """Return the name of the ConfigMap holding a TaskJob's task outputs."""
    return f"{taskjob}-outputs"


@dataclass(frozen=True)
class Remembered:
    """The memory of a TaskJob's last plan, the status JSON last written, and the store's change-log point seen.

    `unwritten`: the tasks whose planned state is not written yet (None: any may differ); `write_after`:
    when the next status write may go (see WRITE_SPACING).
    """

    raw: dict[str, Any]
    memory: Memory
    token: Token
    unwritten: frozenset[str] | None = frozenset()
    write_after: datetime | None = None


class Reconciler:
    """Turns a TaskJob key into API calls, via the pure plan."""

    def __init__(self, store: Store, kube: Kube, clock: Any = None) -> None:
        self.store = store
        self.kube = kube
        self.now = clock or (lambda: datetime.now(UTC))
        self.phases: dict[Key, str] = {}
        self.validated: dict[tuple[str, int], ValidationResult] = {}
        self.memories: dict[Key, Remembered] = {}
        self.writers: dict[Key, asyncio.Task[None]] = {}  # the status write in flight, per big TaskJob
        # Reconcile `key` again after `delay` seconds (the work queue's add_after): a background write that
        # leaves changes unwritten asks for the next one this way.
        self.wake: Callable[[Key, float], None] = lambda key, delay: None

    def forget(self, key: Key, uid: str | None = None) -> None:
        """Drop what is kept about a deleted TaskJob."""
        self._set_phase(key, None)
        self.memories.pop(key, None)
        if uid:
            self.validated = {k: v for k, v in self.validated.items() if k[0] != uid}

    def _set_phase(self, key: Key, phase: str | None) -> None:
        old = self.phases.pop(key, None)
        if old is not None:
            metrics.TASKJOBS.labels(phase=old).dec()
        if phase is not None:
            self.phases[key] = phase
            metrics.TASKJOBS.labels(phase=phase).inc()

    def _validate(self, body: Mapping[str, Any]) -> ValidationResult:
        """Validate the TaskJob; the result is kept per (uid, generation): the spec changes only with both."""
        meta = body["metadata"]
        cache_key = (meta.get("uid", ""), meta.get("generation", 0))
        cached = self.validated.get(cache_key)
        if cached is None or not meta.get("uid"):
            cached = validate_taskjob(body)
            self.validated = {k: v for k, v in self.validated.items() if k[0] != cache_key[0]}
            self.validated[cache_key] = cached
        return cached

    async def __call__(self, key: Key) -> float | None:
        """Reconcile one TaskJob; return seconds until it must be looked at again, or None."""
        body = self.store.taskjobs.get(key)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None
        started = time.perf_counter()
        try:
            return await self._reconcile(key, body)
        finally:
            metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)

    async def _reconcile(self, key: Key, body: Mapping[str, Any]) -> float | None:
        now = self.now()
        prior_raw = self.store.status_of(key) or {}
        result = self._validate(body)
        if not result.ok or result.taskjob is None:
            await self._write_in_flight(key)
            prior_raw = self.store.status_of(key) or {}
            status = invalid_status(result.problems, body["metadata"].get("generation", 1), prior_raw, now)
            first = prior_raw.get("phase") != "Invalid"
            await self._write_status(key, prior_raw, dump_status(status), None)
            self.memories.pop(key, None)
            self._set_phase(key, "Invalid")
            if first:
                log.warning("TaskJob %s/%s is invalid: %s", *key, status.message, extra=_ctx(key))
                self._event(body, "Warning", "Invalid", status.message or "invalid TaskJob")
            return None

        taskjob = result.taskjob
        meta = TaskJobMeta.model_validate(body["metadata"])
        kept = self.memories.get(key)
        # The memory of the last plan stands in for the status only if the status is still the one it wrote.
        memory = kept.memory if kept is not None and prior_raw and kept.raw is prior_raw else None
        token = self.store.token(key)
        facts = self.store.fact_map(key)
        hint = self.store.changed_since(key, kept.token) if memory is not None and kept is not None else None
        prior = memory.status if memory else (TaskJobStatus.model_validate(prior_raw) if prior_raw else None)
        retry = RetryRequest.from_annotations(body["metadata"].get("annotations"))
        the_plan, next_memory = replan(meta, taskjob.spec, memory, prior, facts, now, retry, changed_jobs=hint)
        changed = the_plan.changed

        await self._record_outputs(key, body, next_memory.latest, changed)
        await self._execute(key, body, meta, next_memory.shape, facts, the_plan, now)
        may_wait = memory is not None and kept is not None and _may_wait(prior, the_plan.status)
        if not may_wait:  # one write at a time: a merge patch landing late would undo this one
            await self._write_in_flight(key)
        latest = self.memories.get(key)
        if latest is not None and latest is not kept and latest.raw is not prior_raw:
            kept, prior_raw = latest, latest.raw  # a background write landed meanwhile: the new base
        # What differs from the status last written: this plan's changes and those of plans not written yet.
        to_write = changed
        if memory is not None and kept is not None:
            to_write = None if kept.unwritten is None or changed is None else kept.unwritten | changed
        requeue = the_plan.requeue_after
        big = len(the_plan.status.tasks or ()) > COMPACT_TASKS
        after = kept.write_after if may_wait and kept is not None else None
        wait = (after - self.now()).total_seconds() if after is not None else 0.0
        written: dict[str, Any] | None = prior_raw
        if may_wait and (wait > 0 or key in self.writers):
            # The next write carries this plan's changes: when the gap is over, or when the one in flight ends.
            self.memories[key] = Remembered(prior_raw, next_memory, token, to_write, after)
            if wait > 0:
                requeue = wait if requeue is None else min(requeue, wait)
        elif may_wait and big:
            new_raw = dump_changes(prior_raw, the_plan.status, to_write)
            self.memories[key] = Remembered(prior_raw, next_memory, token, to_write, None)
            self.writers[key] = asyncio.create_task(self._write_behind(key, prior_raw, new_raw, to_write, next_memory))
        else:
            began = self.now()
            new_raw = dump_changes(prior_raw, the_plan.status, to_write)
            written = await self._write_status(key, prior_raw, new_raw, to_write)
            if written is not None and the_plan.status.phase not in TERMINAL_PHASES:
                after = _next_write(began, self.now()) if big and written is not prior_raw else None
                self.memories[key] = Remembered(written, next_memory, token, frozenset(), after)
        if written is None or the_plan.status.phase in TERMINAL_PHASES:
            # A finished TaskJob is rarely planned again (a retry, its TTL): its plan memory (about 50 KB
            # for 10 tasks) and validation are not kept for that; the next reconcile plans in full.
            self.memories.pop(key, None)
            if the_plan.status.phase in TERMINAL_PHASES:
                self.validated.pop((body["metadata"].get("uid", ""), body["metadata"].get("generation", 0)), None)
        self._set_phase(key, the_plan.status.phase)
        for event in the_plan.events:
            _count(event.reason)
            self._event(body, event.type, event.reason, event.message)
        _observe_durations(prior, the_plan.status, changed)
        if the_plan.delete_taskjob:
            log.info("TaskJob %s/%s finished more than ttlSecondsAfterFinished ago: deleting it", *key, extra=_ctx(key))
            await self.kube.delete_taskjob(key[0], key[1], meta.uid)
            return None
        return requeue

    async def _execute(
        self,
        key: Key,
        body: Mapping[str, Any],
        meta: TaskJobMeta,
        shape: SpecShape,
        facts: Mapping[str, AttemptFact],
        the_plan: Plan,
        now: datetime,
    ) -> None:
        if the_plan.create:
            outputs = self.store.outputs_of(key, list(facts.values()))
            succeeded = {f.task: f for f in facts.values() if f.phase == "Succeeded"}

            async def create(task_name: str, attempt: int) -> None:
                task = shape.task(task_name)
                manifest = render_job(meta, task, attempt, inputs_for(task, outputs))
                name = manifest["metadata"]["name"]
                created = await self.kube.create_job(key[0], manifest)
                log.info(
                    "%s Job %s for task %s attempt %d of TaskJob %s/%s",
                    "created" if created else "found existing",
                    name,
                    task_name,
                    attempt,
                    *key,
                    extra=_ctx(key, task_name),
                )
                if created is not None:
                    metrics.TASKS_STARTED.inc()
                    self._observe_latency(key, task.depends_on, succeeded)
                    self.store.on_job("ADDED", created)
                else:
                    self.store.expect(key, expected_fact(task_name, attempt, name, now))

            await asyncio.gather(*(create(c.task, c.attempt) for c in the_plan.create))
        for stop in the_plan.stop:
            log.info("stopping Job %s of TaskJob %s/%s: %s", stop.job_name, *key, stop.reason, extra=_ctx(key))
            await self.kube.patch_job(key[0], stop.job_name, stop_job_patch(stop.reason, stop.message))

    def _observe_latency(self, key: Key, deps: tuple[str, ...], succeeded: Mapping[str, AttemptFact]) -> None:
        """Scheduling latency: when the operator saw the last dependency finish -> this Job created."""
        if not deps:
            return
        seen = [self.store.finished_seen.get((key[0], succeeded[d].job_name)) for d in deps if d in succeeded]
        known = [s for s in seen if s is not None]
        if known and len(known) == len(seen) == len(deps):  # unknown after a restart: not measured
            latency = (datetime.now(UTC) - max(known)).total_seconds()
            metrics.SCHEDULING_LATENCY.observe(max(0.0, latency))

    async def _record_outputs(
        self, key: Key, body: Mapping[str, Any], latest: Mapping[str, AttemptFact], changed: frozenset[str] | None
    ) -> None:
        """Copy outputs of succeeded tasks into the TaskJob's ConfigMap, so they outlive their pods.

        `latest` is each task's latest attempt (a task succeeds once). With an incremental plan only the
        changed tasks are looked at, not every Job: a task succeeds in the plan that first sees its Job
        succeed, and a plan whose reconcile fails is not remembered.
        """
        recorded = self.store.outputs.get(key, {})
        attempts = latest.values() if changed is None else (latest[t] for t in changed if t in latest)
        new = {
            f.task: f.output
            for f in attempts
            if f.phase == "Succeeded" and f.output is not None and recorded.get(f.task) != f.output
        }
        if new:
            await self.kube.record_outputs(body, outputs_configmap(key[1]), new)
            self.store.outputs.setdefault(key, {}).update(new)

    async def _write_behind(
        self, key: Key, base: dict[str, Any], status: dict[str, Any], changed: frozenset[str] | None, memory: Memory
    ) -> None:
        """Write a big TaskJob's status in the background; then make it the base of the plans made meanwhile."""
        began = self.now()
        try:
            written = await self._write_status(key, base, status, changed)
        except Exception:  # the next reconcile plans in full and writes it all again
            log.exception("writing the status of TaskJob %s/%s failed", *key, extra=_ctx(key))
            self.memories.pop(key, None)
            self.wake(key, MIN_WRITE_GAP)
            return
        finally:
            self.writers.pop(key, None)
        after = _next_write(began, self.now())
        current = self.memories.get(key)
        if written is None or current is None or current.raw is not base:
            return  # the TaskJob is gone, or a reconcile has written since (after waiting for this write)
        # Plans made during the write may have changed tasks it carried: those stay unwritten (a superset).
        unwritten = frozenset() if current.memory is memory else current.unwritten
        self.memories[key] = replace(current, raw=written, unwritten=unwritten, write_after=after)
        if unwritten != frozenset():
            self.wake(key, (after - self.now()).total_seconds())

    async def _write_in_flight(self, key: Key) -> None:
        """Wait for the status write in flight for `key`, if any (it handles its own errors)."""
        writer = self.writers.get(key)
        if writer is not None:
            await asyncio.wait([writer])

    async def _write_status(
        self, key: Key, prior: dict[str, Any], status: dict[str, Any], changed: frozenset[str] | None
    ) -> dict[str, Any] | None:
        """Write the status as a merge patch of its change; return the status now in force (None: unknown)."""
        patch = patch_changes(prior, status, changed)
        if not patch:
            return prior
        rv = await self.kube.patch_status(key[0], key[1], patch)
        if rv is None:
            return None
        self.store.remember_write(key, rv, status)
        return status

    def _event(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        self.kube.post_event(body, type_, reason, message)


def _next_write(began: datetime, ended: datetime) -> datetime:
    """Return when a big TaskJob's next status write may go, after one that took from `began` to `ended`."""
    return ended + timedelta(seconds=max(MIN_WRITE_GAP, WRITE_SPACING * (ended - began).total_seconds()))


def _may_wait(prior: TaskJobStatus | None, status: TaskJobStatus) -> bool:
    """Return whether a status may wait for its write slot: a change of phase (final ones too) is written at once."""
    return prior is not None and prior.phase == status.phase


def _ctx(key: Key, task: str | None = None) -> dict[str, str]:
    """Return the log context of a line about a TaskJob (JSON logs carry these as fields)."""
    ctx = {"namespace": key[0], "taskjob": key[1]}
    if task:
        ctx["task"] = task
    return ctx


def _count(reason: str) -> None:
    counter = {
        "TaskSucceeded": metrics.TASKS_SUCCEEDED,
        "TaskFailed": metrics.TASKS_FAILED,
        "TaskRetrying": metrics.TASKS_RETRIED,
    }.get(reason)
    if counter is not None:
        counter.inc()


def _observe_durations(prior: TaskJobStatus | None, status: TaskJobStatus, changed: frozenset[str] | None) -> None:
    """Record the duration of every task that reached a final phase in this reconcile."""
    before = (prior.tasks if prior else None) or {}
    tasks = status.tasks or {}
    for name in tasks if changed is None else changed:
        state = tasks[name]
        if state.phase in ("Succeeded", "Failed") and state.start_time and state.finish_time:
            old = before.get(name)
            if old is None or old.phase != state.phase:
                metrics.TASK_DURATION.observe((state.finish_time - state.start_time).total_seconds())


__all__ = ["Reconciler", "job_name", "outputs_configmap"]
