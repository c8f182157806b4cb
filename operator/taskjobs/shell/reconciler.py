"""One reconcile of one TaskJob: read the store, ask the pure core what to do, do it.

Everything is derived again on each run from the TaskJob and the Jobs it owns; every action is
idempotent (a Job that already exists was created by an earlier run), so the process may die at
any line and the next run picks up where it left off.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..core.actions import Event, Plan, RetryRequest
from ..core.facts import AttemptFact
from ..core.fanout import render_unit
from ..core.incremental import replan
from ..core.inputs import inputs_for
from ..core.models import TERMINAL_PHASES, TaskJobMeta, TaskJobStatus
from ..core.naming import job_name
from ..core.plan import SpecShape
from ..core.render import stop_job_patch
from ..core.status import invalid_status
from ..core.validation import ValidationResult, validate_taskjob
from . import metrics
from .eventbatch import EventBatcher
from .kube import Kube
from .statuswriter import StatusWriter, outputs_configmap
from .store import Key, Store, expected_fact

log = logging.getLogger("taskjob.reconciler")


class Reconciler:
    """Turns a TaskJob key into API calls, via the pure plan."""

    def __init__(self, store: Store, kube: Kube, clock: Any = None) -> None:
        self.store = store
        self.kube = kube
        self.now = clock or (lambda: datetime.now(UTC))
        self.phases: dict[Key, str] = {}
        self.validated: dict[str, tuple[int, ValidationResult]] = {}  # uid -> (generation, result)
        self.status = StatusWriter(store, kube, self.now)
        self.events = EventBatcher(kube.post_event)

    def forget(self, key: Key, uid: str | None = None) -> None:
        """Drop what is kept about a deleted TaskJob."""
        self._set_phase(key, None)
        self.status.discard(key)
        if uid:
            self.events.discard(uid)
            self.validated.pop(uid, None)

    def _set_phase(self, key: Key, phase: str | None) -> None:
        old = self.phases.pop(key, None)
        if phase is not None:
            self.phases[key] = phase
        if old == phase:
            return  # most reconciles: the gauge stays (its labels() lookups were 1 % of B4's CPU)
        if old is not None:
            metrics.TASKJOBS.labels(phase=old).dec()
        if phase is not None:
            metrics.TASKJOBS.labels(phase=phase).inc()

    def _validate(self, body: Mapping[str, Any]) -> ValidationResult:
        """Validate the TaskJob; the result is kept per uid and generation: the spec changes only with both.

        What is kept is what a reconcile reads, the spec: the status parsed with it (as stale as the body it
        came from) and the graph were two thirds of the result (33 KB for 10 tasks).
        """
        meta = body["metadata"]
        uid, generation = meta.get("uid", ""), meta.get("generation", 0)
        cached = self.validated.get(uid)
        if cached is not None and cached[0] == generation and uid:
            return cached[1]
        result = validate_taskjob(body)
        if result.taskjob is not None:
            result = dataclasses.replace(result, taskjob=result.taskjob.model_copy(update={"status": None}), graph=None)
        self.validated[uid] = (generation, result)
        return result

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
        result = self._validate(body)
        if not result.ok or result.taskjob is None:
            await self._invalid(key, body, result, now)
            return None
        meta = TaskJobMeta.model_validate(body["metadata"])
        base = self.status.base(key)
        facts = self.store.fact_map(key)
        retry = RetryRequest.from_annotations(body["metadata"].get("annotations"))
        the_plan, memory = replan(
            meta,
            result.taskjob.spec,
            base.memory,
            base.status,
            facts,
            now,
            retry,
            changed_jobs=base.changed_jobs,
            outputs=self.store.recorded_outputs(key),
        )
        self._gather_outputs(key, body, memory.latest, the_plan.changed, the_plan.outputs)
        if the_plan.outputs or any(c.task in memory.shape.parent for c in the_plan.create):
            # A fan-out's expansion and its join's list are read back from the outputs ConfigMap after a
            # restart: they are stored before the Jobs that depend on them exist.
            await self.status.store_outputs(key)
        # Other outputs are stored with the status write (statuswriter): a dependent's inputs are rendered
        # from the facts, so its Job need not wait for the ConfigMap. If a write fails, this plan is not
        # remembered and the next one gathers every output again (and finds the Jobs created).
        await self._execute(key, body, meta, memory.shape, facts, the_plan, now)
        requeue = await self.status.submit(key, base, the_plan, memory)
        if the_plan.status.phase in TERMINAL_PHASES:  # rarely planned again: the next plan validates again
            self.validated.pop(body["metadata"].get("uid", ""), None)
        self._set_phase(key, the_plan.status.phase)
        for event in the_plan.events:
            _count(event.reason)
            self.events.add(body, event)
        _observe_durations(base.status, the_plan.status, the_plan.changed)
        if the_plan.delete_taskjob:
            log.info("TaskJob %s/%s finished more than ttlSecondsAfterFinished ago: deleting it", *key, extra=_ctx(key))
            await self.kube.delete_taskjob(key[0], key[1], meta.uid)
            return None
        return requeue

    async def _invalid(self, key: Key, body: Mapping[str, Any], result: ValidationResult, now: datetime) -> None:
        """Write the Invalid status naming the problems; warn once, when the TaskJob turns Invalid."""
        generation = body["metadata"].get("generation", 1)
        prior_raw, status = await self.status.replace(
            key, lambda prior: invalid_status(result.problems, generation, prior, now)
        )
        self._set_phase(key, "Invalid")
        if prior_raw.get("phase") != "Invalid":
            log.warning("TaskJob %s/%s is invalid: %s", *key, status.message, extra=_ctx(key))
            self.events.add(body, Event(type="Warning", reason="Invalid", message=status.message or "invalid TaskJob"))

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
            states = the_plan.status.tasks or {}

            def done(name: str) -> bool:
                state = states.get(name)
                return state is not None and state.phase == "Succeeded"

            async def create(task_name: str, attempt: int) -> None:
                task = shape.flow.with_outcome(shape.task(task_name), states)  # finally tasks
                inputs = inputs_for(task, outputs, done)
                manifest = render_unit(meta, task, task_name, attempt, inputs, shape.instance(task_name))
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
        seen = [self.store.finished_at(key[0], succeeded[d].job_name) for d in deps if d in succeeded]
        known = [s for s in seen if s is not None]
        if known and len(known) == len(seen) == len(deps):  # unknown after a restart: not measured
            latency = (datetime.now(UTC) - max(known)).total_seconds()
            metrics.SCHEDULING_LATENCY.observe(max(0.0, latency))

    def _gather_outputs(
        self,
        key: Key,
        body: Mapping[str, Any],
        latest: Mapping[str, AttemptFact],
        changed: frozenset[str] | None,
        gathered: Mapping[str, str],
    ) -> None:
        """Hand the outputs of succeeded tasks to the status writer, which stores them in the TaskJob's ConfigMap.

        `latest` is each task's latest attempt (a task succeeds once). With an incremental plan only the
        changed tasks are looked at, not every Job: a task succeeds in the plan that first sees its Job
        succeed, and a plan whose reconcile fails is not remembered. `gathered`: the lists of fan-out
        tasks that just succeeded. An empty output is stored only over another one (a retried task's).
        """
        recorded = self.store.recorded_outputs(key)
        attempts = latest.values() if changed is None else (latest[t] for t in changed if t in latest)
        new = {
            f.task: f.output
            for f in attempts
            if f.phase == "Succeeded" and f.output is not None and recorded.get(f.task, "") != f.output
        }
        new.update((task, text) for task, text in gathered.items() if recorded.get(task, "") != text)
        self.status.add_outputs(key, body, new)


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
