"""A tiny discrete-event simulator that drives `plan` against a fake cluster and a fake clock.

Pure and deterministic: no threads, no sleeps, no Kubernetes. The clock jumps from one event to the
next: a Job's pod starting or finishing, a Job reaching the (lagging) watch, the plan's requeue_after,
a scheduled spec change (suspend/resume) or Job deletion. Each event runs one reconcile as the shell
does: observe, plan, execute (create Jobs, stop Jobs), write status (round-tripped through JSON, so
timestamps lose their fractions as in the API server). After every reconcile an "echo" reconcile runs
at the same instant, as the operator's own status write triggers one.

Optional adversities, each recorded on the step it affected:
- `lag`: a created Job stays invisible to the plan this many seconds (watch cache delay);
- `stale_rate`: a reconcile reads an older status than the last one written (a lagging read), with
  every Job visible; its status is then written (last write wins);
- `deletions`: at given times an active Job is deleted by someone, so its attempt is lost.
Stale reads are not combined with lag or deletions: with both, a status that predates a create and a
watch that does not show the Job leave no trace of the attempt, and only the Job's deterministic name
keeps the retried create harmless; the simulator counts such a create as a duplicate.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from taskjobs.core.actions import Plan
from taskjobs.core.facts import AttemptFact
from taskjobs.core.models import TERMINAL_PHASES, TaskJobMeta, TaskJobSpec, TaskJobStatus, dump_status
from taskjobs.core.naming import job_name
from taskjobs.core.plan import plan

T0 = datetime(2024, 1, 1, tzinfo=UTC)
STOP_LATENCY = 1.0  # seconds from a StopJob to the Job reporting Failed


@dataclass(frozen=True)
class Outcome:
    """How one attempt behaves once its Job exists."""

    exit_code: int = 0  # 0 succeeds
    duration: float = 5.0  # seconds the container runs
    startup: float = 1.0  # seconds the pod stays Pending; math.inf: never starts
    waiting_reason: str | None = None  # what the pod says while Pending, e.g. ImagePullBackOff
    pod_lag: float = 0.0  # seconds after the Job ends before its pod's verdict reaches the operator
    output: str | None = None  # what a successful attempt writes (a fan-out task's list, for one)


Script = Callable[[str, int], Outcome]


def scripted(outcomes: Mapping[str, Sequence[Outcome]], default: Outcome = Outcome()) -> Script:
    """Return a script playing outcomes[task][attempt-1], and `default` past the end of a task's list."""

    def script(task: str, attempt: int) -> Outcome:
        given = outcomes.get(task, ())
        return given[attempt - 1] if attempt <= len(given) else default

    return script


def _at(base: datetime, seconds: float) -> datetime | None:
    return None if math.isinf(seconds) else base + timedelta(seconds=seconds)


@dataclass
class SimJob:
    """One Job in the fake cluster."""

    task: str
    attempt: int
    name: str
    created: datetime
    outcome: Outcome
    stop_at: datetime | None = None
    stop_reason: str = ""
    stop_message: str = ""
    deleted_at: datetime | None = None

    @property
    def started(self) -> datetime | None:
        """When the container starts, if ever."""
        return _at(self.created, self.outcome.startup)

    @property
    def end(self) -> datetime | None:
        """When the Job finishes, if ever: naturally, or STOP_LATENCY after a stop."""
        natural = _at(self.started, self.outcome.duration) if self.started else None
        stopped = self.stop_at + timedelta(seconds=STOP_LATENCY) if self.stop_at else None
        if natural is None or (stopped is not None and stopped < natural):
            return stopped
        return natural

    @property
    def stopped(self) -> bool:
        """Whether the stop, not the container, ended the Job."""
        return self.stop_at is not None and self.end == self.stop_at + timedelta(seconds=STOP_LATENCY)

    def active(self, now: datetime) -> bool:
        """Whether the Job exists and has not finished at `now`."""
        return self.deleted_at is None and (self.end is None or now < self.end)

    def succeeded(self, now: datetime) -> bool:
        """Whether the Job finished successfully by `now` (deleted Jobs never finished)."""
        end = self.end
        return (
            self.deleted_at is None
            and end is not None
            and end <= now
            and not self.stopped
            and self.outcome.exit_code == 0
        )

    def fact(self, now: datetime) -> AttemptFact:
        """Return what the operator would observe of this Job at `now`."""
        base: dict[str, Any] = {
            "task": self.task,
            "attempt": self.attempt,
            "job_name": self.name,
            "created": self.created,
            "stopping": self.stop_at is not None,
        }
        end, started = self.end, self.started
        if end is not None and end <= now:
            if self.stopped:
                return AttemptFact(
                    **base,
                    phase="Failed",
                    start_time=started,
                    finish_time=end,
                    reason=self.stop_reason,
                    message=self.stop_message,
                )
            ok = self.outcome.exit_code == 0
            if now < end + timedelta(seconds=self.outcome.pod_lag):
                # The Job's end is seen, its pod's exit code not yet (observe.attempt_fact, awaiting_pod).
                return AttemptFact(
                    **base,
                    phase="Succeeded" if ok else "Failed",
                    start_time=started,
                    finish_time=end,
                    reason=None if ok else "PodFailed",
                    awaiting_pod=True,
                )
            return AttemptFact(
                **base,
                phase="Succeeded" if ok else "Failed",
                start_time=started,
                finish_time=end,
                exit_code=self.outcome.exit_code,
                reason=None if ok else "Error",
                output=self.outcome.output if ok else None,
            )
        if started is not None and started <= now:
            return AttemptFact(**base, phase="Running", start_time=started)
        return AttemptFact(**base, phase="Pending", reason=self.outcome.waiting_reason)

    def changes(self) -> list[datetime]:
        """Return the times at which this Job's fact changes."""
        end = self.end
        seen = end + timedelta(seconds=self.outcome.pod_lag) if end is not None and not self.stopped else None
        return [t for t in (self.started, end, seen) if t is not None]


@dataclass
class Cluster:
    """The fake API server: Jobs by name, deleted ones kept as tombstones."""

    taskjob: str
    script: Script
    jobs: dict[str, SimJob] = field(default_factory=dict)
    duplicates: list[tuple[str, int]] = field(default_factory=list)

    def facts(self, now: datetime, lag: float = 0.0) -> tuple[AttemptFact, ...]:
        """Return the facts of the Jobs visible at `now`: not deleted, and created at least `lag` s ago."""
        horizon = now - timedelta(seconds=lag)
        return tuple(j.fact(now) for j in self.jobs.values() if j.deleted_at is None and j.created <= horizon)

    def execute(self, the_plan: Plan, now: datetime) -> None:
        """Create and stop Jobs as the shell would; an existing name is recorded as a duplicate."""
        for c in the_plan.create:
            name = job_name(self.taskjob, c.task, c.attempt)
            if name in self.jobs:
                self.duplicates.append((c.task, c.attempt))
                continue
            self.jobs[name] = SimJob(c.task, c.attempt, name, now, self.script(c.task, c.attempt))
        for s in the_plan.stop:
            job = self.jobs.get(s.job_name)
            # The shell patches the stop annotation onto the Job whether or not it has just finished (the
            # operator may not have seen that yet): a finished Job keeps its outcome but shows `stopping`.
            if job is not None and job.deleted_at is None and job.stop_at is None:
                job.stop_at, job.stop_reason, job.stop_message = now, s.reason, s.message

    def next_change(self, now: datetime, lag: float) -> datetime | None:
        """Return the next time a visible fact changes or a Job becomes visible, after `now`."""
        times: list[datetime] = []
        for j in self.jobs.values():
            if j.deleted_at is None:
                times.extend(j.changes())
                times.append(j.created + timedelta(seconds=lag))
        future = [t for t in times if t > now]
        return min(future) if future else None


@dataclass(frozen=True)
class Step:
    """One reconcile: what the plan saw and what it decided."""

    kind: Literal["event", "echo", "stale"]
    now: datetime
    spec: TaskJobSpec
    status_in: TaskJobStatus | None
    facts: tuple[AttemptFact, ...]  # what the plan saw
    truth: tuple[AttemptFact, ...]  # every live Job, before the plan's actions
    after: tuple[AttemptFact, ...]  # every live Job, after the plan's actions
    plan: Plan


@dataclass
class Run:
    """The outcome of a simulation."""

    meta: TaskJobMeta
    steps: list[Step]
    cluster: Cluster
    status: TaskJobStatus | None
    deleted: bool = False  # the plan asked to delete the TaskJob (TTL)
    stuck: bool = False  # not final, and nothing left that would wake the operator


# How a reconcile plans: (kind, meta, spec, status read, facts seen, now) -> Plan. Default: `plan`.
Planner = Callable[[str, TaskJobMeta, TaskJobSpec, "TaskJobStatus | None", tuple[AttemptFact, ...], datetime], Plan]


def _full(
    kind: str,
    meta: TaskJobMeta,
    spec: TaskJobSpec,
    status: TaskJobStatus | None,
    facts: tuple[AttemptFact, ...],
    now: datetime,
) -> Plan:
    return plan(meta, spec, status, facts, now)


def _roundtrip(status: TaskJobStatus) -> TaskJobStatus:
    return TaskJobStatus.model_validate(dump_status(status))


def simulate(
    spec: TaskJobSpec,
    script: Script,
    *,
    name: str = "sim",
    lag: float = 0.0,
    stale_rate: float = 0.0,
    spec_changes: Sequence[tuple[float, dict[str, Any]]] = (),
    deletions: Sequence[float] = (),
    seed: int = 0,
    max_steps: int = 3000,
    planner: Planner | None = None,
) -> Run:
    """Run the TaskJob to the end; return every step. `spec_changes` and `deletions` are seconds after T0."""
    if stale_rate and (lag or deletions):
        raise ValueError("stale reads are not combined with lag or deletions (see module docstring)")
    rng = random.Random(seed)
    meta = TaskJobMeta(name=name, uid="uid-1", creation_timestamp=T0)
    cluster = Cluster(name, script)
    run = Run(meta, [], cluster, None)
    changes = sorted(((T0 + timedelta(seconds=s), c) for s, c in spec_changes), key=lambda x: x[0])
    pending_deletions = sorted(T0 + timedelta(seconds=s) for s in deletions)
    history: list[TaskJobStatus | None] = [None]
    now = T0

    def reconcile(kind: Literal["event", "echo", "stale"], status_in: TaskJobStatus | None) -> Plan:
        facts = cluster.facts(now, 0.0 if kind == "stale" else lag)
        truth = cluster.facts(now)
        the_plan = (planner or _full)(kind, meta, spec, status_in, facts, now)
        cluster.execute(the_plan, now)
        run.steps.append(Step(kind, now, spec, status_in, facts, truth, cluster.facts(now), the_plan))
        run.status = _roundtrip(the_plan.status)
        history.append(run.status)
        return the_plan

    while len(run.steps) < max_steps:
        while changes and changes[0][0] <= now:
            spec = spec.model_copy(update=changes.pop(0)[1])
        while pending_deletions and pending_deletions[0] <= now:
            pending_deletions.pop(0)
            live = sorted(
                j.name for j in cluster.jobs.values() if j.active(now) and j.created + timedelta(seconds=lag) <= now
            )
            if live:
                cluster.jobs[rng.choice(live)].deleted_at = now

        stale = len(history) > 2 and rng.random() < stale_rate
        status_in = history[rng.randrange(len(history) - 1)] if stale else run.status
        the_plan = reconcile("stale" if stale else "event", status_in)
        if the_plan.delete_taskjob:
            run.deleted = True
            return run
        the_plan = reconcile("echo", run.status)
        if the_plan.delete_taskjob:
            run.deleted = True
            return run

        wake = [t for t in (cluster.next_change(now, lag),) if t is not None]
        if the_plan.requeue_after is not None:
            wake.append(now + timedelta(seconds=the_plan.requeue_after))
        wake.extend(t for t, _ in changes[:1])
        wake.extend(pending_deletions[:1])
        if not wake:
            run.stuck = run.status is None or run.status.phase not in TERMINAL_PHASES
            return run
        now = max(min(wake), now)
    raise AssertionError(f"no end after {max_steps} reconciles; last status: {run.status}")
