"""The planner as it was before the one-planner redesign (a frozen copy; tests compare the new one with it).

Original docstring:


Pure: `now` is an argument; no clock, no I/O, no kopf or client. One call is O(tasks + attempts), and
the same inputs always give the same plan, so a repeated reconcile repeats nothing.

How each task's state is decided, in topological order:

1. A task the previous status records as final (Succeeded, Failed, Skipped) stays so. The status is the
   record: a succeeded task whose Job was deleted is still succeeded.
2. Otherwise the latest attempt decides. Its number is the higher of the attempts observed and the
   attempts the status records. Succeeded -> Succeeded. Pending/Running -> Running, showing the pod's
   waiting reason (ImagePullBackOff ...); a pod unstarted for startupTimeoutSeconds gets a StopJob
   (StartupTimeout), and its Job then fails like any attempt. Failed -> Failed at once for a
   non-retriable exit code or when attempts are used up, else Retrying until finish + retry_delay(n),
   after which it is a candidate for the next attempt. An attempt whose Job ended by its pod's verdict
   while no pod seen shows that verdict (AttemptFact.awaiting_pod) stays Running for up to
   POD_VERDICT_WAIT_SECONDS after the end, so a lagging pod watch loses no exit code or output.
3. An attempt the status records but no Job shows was just created (the watch has not delivered it)
   or was deleted: it counts as Running for GRACE_SECONDS after it started, then as a failed attempt
   with reason JobLost, which the normal retry rules handle. A Retrying task whose Job is gone keeps
   the status's record, nextRetryTime included.
4. A task never started is Skipped when a dependency failed or was skipped, Ready when all its
   dependencies succeeded, else Waiting.

Then the TaskJob-wide rules:

- activeDeadlineSeconds counts from metadata.creationTimestamp (wall time, suspension included). Once past, every
  running task is Failed (DeadlineExceeded) and its Job stopped, every other unfinished task Skipped.
- FailFast (the default): once a task failed for good, nothing new is created. Waiting, Ready and
  Retrying tasks become Skipped (reason FailFast; a Retrying task keeps its last attempt's exit code:
  it did not fail for good on its own, so it is not counted as failed and the first failure stays the
  one named in the message). Running tasks finish; then the TaskJob is Failed. ContinueIndependent:
  only the dependents of a failed task are skipped (rule 4).
- suspend: nothing is created; running tasks finish. A retry that fell due meanwhile starts on resume.
- Candidates (Ready tasks and Retrying tasks that are due) start by priority, highest first, then in
  topological order, while running + created <= parallelism.
- A Job still running for a task that is final (stopped at the deadline) gets a StopJob until its Job
  shows the stop was seen, so a lost stop is repeated.

Manual retry (`taskjob retry`, a new nonce in the taskjob.dev/retry annotation): the chosen Failed
tasks (default: all), the Skipped tasks below them and, without a task list, every Skipped task start
again. Each keeps its attempt count as `retryBase`: attempt numbers continue (Job names never repeat),
older attempts are history, and the retry limit counts only the attempts after the base. Succeeded
tasks and their outputs are kept. The retry does not extend activeDeadlineSeconds (patch it first).

Status stays small: empty fields are omitted, a Waiting task is just {"phase": "Waiting"}, and in a
TaskJob of more than COMPACT_TASKS tasks succeeded and skipped tasks record only phase, attempts and
reason (their Jobs, found by label, have the times) and running tasks leave out their Job's name (the
usual <taskjob>-<task>-<attempt>), so 10,000 tasks stay under 1 MiB even all running at once.
Events are the difference between the previous status and the new one, so they are not repeated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from taskjobs import dag
from taskjobs.actions import CreateJob, Event, Plan, RetryRequest, StopJob
from taskjobs.backoff import is_non_retriable, max_attempts, next_retry_time, retry_delay
from taskjobs.facts import AttemptFact
from taskjobs.models import (
    TERMINAL_PHASES,
    TERMINAL_TASK_PHASES,
    TaskJobMeta,
    TaskJobSpec,
    TaskJobStatus,
    TaskState,
)
from taskjobs.naming import job_name
from taskjobs.resolve import ResolvedTask, resolve_task
from taskjobs.status import Counts, conditions, count, cut, describe, taskjob_phase

GRACE_SECONDS = 30.0  # a Job just created may take this long to reach the operator's watch
# How long an attempt whose Job ended waits for its pod's verdict (AttemptFact.awaiting_pod): longer than
# the shell's 60 s resync, which lists the pods a broken watch missed. Past it the pod is taken as gone.
POD_VERDICT_WAIT_SECONDS = 90.0
COMPACT_TASKS = 1000  # above this many tasks, finished tasks record less (see module docstring)

_ACTIVE = frozenset({"Pending", "Running"})
_WAITING = TaskState(phase="Waiting")
_READY = TaskState(phase="Ready")


def plan(
    meta: TaskJobMeta,
    spec: TaskJobSpec,
    status: TaskJobStatus | None,
    attempts: Iterable[AttemptFact],
    now: datetime,
    retry: RetryRequest | None = None,
) -> Plan:
    """Return the new status and the actions that move the TaskJob on from what was observed.

    `spec` must be valid (dag.build accepts it); `status` is the last written status (possibly stale,
    or None); `attempts` are the observed Jobs, any number per task; `retry` a manual retry request.
    """
    return _Planner(meta, spec, status, now).run(attempts, retry)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _seconds(value: float) -> str:
    return f"{value:.0f}s" if value == int(value) else f"{value:g}s"


def _detail(exit_code: int | None, reason: str | None, message: str | None) -> str:
    """Return why an attempt failed, e.g. 'exit code 1', 'exit code 137 (OOMKilled)', 'JobLost: ...'."""
    if exit_code is not None:
        head = f"exit code {exit_code}"
        if reason and reason not in ("Error", "Completed"):
            head += f" ({reason})"
    else:
        head = reason or "failed"
    return f"{head}: {message}" if message else head


class SpecShape:
    """What plan derives from the spec alone (graph, order, settings): kept between plans of one generation."""

    def __init__(self, spec: TaskJobSpec) -> None:
        self.spec = spec
        self.graph = dag.build([(t.name, tuple(t.depends_on or ())) for t in spec.tasks])
        self.specs = {t.name: t for t in spec.tasks}
        self.position = {name: i for i, name in enumerate(self.graph.order)}
        self.resolved: dict[str, ResolvedTask] = {}  # filled on demand: most tasks never need it

    def task(self, name: str) -> ResolvedTask:
        """Return a task's effective settings (defaults applied)."""
        found = self.resolved.get(name)
        if found is None:
            found = self.resolved[name] = resolve_task(self.specs[name], self.spec.defaults)
        return found


class _Planner:
    """One plan call's working state; `run` is the only entry."""

    def __init__(
        self,
        meta: TaskJobMeta,
        spec: TaskJobSpec,
        status: TaskJobStatus | None,
        now: datetime,
        shape: SpecShape | None = None,
    ) -> None:
        self.meta = meta
        self.spec = spec
        self.prev = status
        self.now = now
        self.shape = shape if shape is not None and shape.spec is spec else SpecShape(spec)
        self.graph = self.shape.graph
        self.specs = self.shape.specs
        self.resolved = self.shape.resolved
        self.prev_tasks: Mapping[str, TaskState] = (status.tasks or {}) if status else {}
        self.compact = len(self.specs) > COMPACT_TASKS
        self.start_time = now
        self.latest: dict[str, AttemptFact] = {}
        self.first_seen: dict[str, datetime] = {}  # when attempt 1 of a task was created, from its Job
        self.states: dict[str, TaskState] = {}
        self.due: list[str] = []  # Retrying tasks whose next attempt may start now
        self.retry_wakeups: list[datetime] = []
        self.wakeups: list[datetime] = []
        self.stops: dict[str, StopJob] = {}
        self.replaced: dict[str, TaskState] = {}  # state of each task created now, before its creation
        self.bases: dict[str, int] = {n: s.retry_base for n, s in self.prev_tasks.items() if s.retry_base}
        self.reset: set[str] = set()  # tasks a new manual retry starts again

    def task(self, name: str) -> ResolvedTask:
        """Return a task's effective settings."""
        return self.shape.task(name)

    # ------------------------------------------------------------------ the whole

    def run(self, attempts: Iterable[AttemptFact], retry: RetryRequest | None = None) -> Plan:
        facts = list(attempts)
        applied = self.prev.observed_retry if self.prev else None
        if retry is not None and retry.nonce != applied:
            self._start_retry(retry, facts)
            applied = retry.nonce
        # Attempts before a manual retry are history: they neither decide the task nor count to its limit.
        earliest = self._index(f for f in facts if f.attempt > self.bases.get(f.task, 0))
        self.start_time = (self.prev.start_time if self.prev else None) or earliest or self.now
        for name in self.graph.order:
            self.states[name] = self._decide_based(name)
        halt = self._halt()
        creates = [] if halt or self.spec.suspend else self._create()
        self._stop_jobs_of_finished_tasks()

        counts = count(self.states.values())
        started = bool(creates) or any(s.attempts for s in self.states.values())
        return self._conclude(applied, halt, creates, counts, started, self.graph.order)

    def _decide_based(self, name: str) -> TaskState:
        """Decide a task, recording the retry base of a manual retry on it."""
        state = self._decide(name)
        base = self.bases.get(name)
        if base and state.retry_base != base:
            state = state.model_copy(update={"retry_base": base, "attempts": max(state.attempts or 0, base)})
        return state

    def _conclude(
        self,
        applied: str | None,
        halt: str | None,
        creates: list[CreateJob],
        counts: Counts,
        started: bool,
        touched: Iterable[str],
        changed: frozenset[str] | None = None,
    ) -> Plan:
        """Return the plan, once every task is decided: the TaskJob's status, wakeup, events and actions.

        `touched` are the tasks (in topological order) whose events are looked for; `changed` those
        whose state may differ from the previous status (None: any).
        """
        phase = taskjob_phase(counts, suspended=bool(self.spec.suspend), started=started)
        final = phase in TERMINAL_PHASES
        failure = self._failure() if final or halt == "failfast" else None
        deadline = self.spec.active_deadline_seconds if halt == "deadline" else None
        message = describe(phase, counts, failure=failure, deadline_seconds=deadline)
        failed_reason = "DeadlineExceeded" if halt == "deadline" else "TaskFailed"
        prev_phase = self.prev.phase if self.prev else None
        if final and self.prev is not None and prev_phase == phase:
            # Final is final: keep the words written when it happened (e.g. the deadline).
            message = self.prev.message or message
            old = next((c for c in self.prev.conditions or () if c.type == "Failed" and c.status == "True"), None)
            failed_reason = old.reason if old else failed_reason
        completion = ((self.prev.completion_time if self.prev else None) or self.now) if final else None

        # Every value is already typed; validating 10,000 task states again would cost about 1 ms.
        status = TaskJobStatus.model_construct(
            phase=phase,
            progress=f"{counts.succeeded}/{counts.total}",
            total=counts.total,
            running=counts.running,
            succeeded=counts.succeeded,
            failed=counts.failed,
            pending=counts.pending,
            skipped=counts.skipped,
            start_time=self.start_time,
            completion_time=completion,
            observed_generation=self.meta.generation,
            observed_retry=applied,
            message=message,
            conditions=conditions(
                self.prev.conditions if self.prev else None,
                phase=phase,
                message=message,
                failed_reason=failed_reason,
                generation=self.meta.generation,
                now=self.now,
            ),
            tasks=self.states,
        )

        delete = False
        wakeups = list(self.wakeups)
        if final:
            ttl = self.spec.ttl_seconds_after_finished
            if ttl is not None and completion is not None:
                at = completion + timedelta(seconds=ttl)
                delete = self.now >= at
                wakeups.append(at)
        else:
            if halt is None and not self.spec.suspend:
                wakeups.extend(self.retry_wakeups)
            deadline_at = self._deadline_at()
            if deadline_at is not None:
                wakeups.append(deadline_at)
        future = [w for w in wakeups if w > self.now]
        requeue = None if delete or not future else (min(future) - self.now).total_seconds()

        return Plan(
            status=status,
            create=tuple(creates),
            stop=tuple(self.stops.values()),
            events=tuple(self._events(touched, creates, phase, prev_phase, message)),
            delete_taskjob=delete,
            requeue_after=requeue,
            changed=changed,
        )

    def _start_retry(self, retry: RetryRequest, facts: list[AttemptFact]) -> None:
        """Choose the tasks a manual retry starts again, and record how many attempts each already made."""
        prev = {n: s.phase for n, s in self.prev_tasks.items()}
        if retry.tasks is None:
            chosen = {n for n, phase in prev.items() if phase in ("Failed", "Skipped")}
        else:
            chosen = {n for n in retry.tasks if prev.get(n) in ("Failed", "Skipped")}
            for name in list(chosen):
                chosen |= {d for d in self.graph.descendants(name) if prev.get(d) == "Skipped"}
        observed: dict[str, int] = {}
        for f in facts:
            observed[f.task] = max(observed.get(f.task, 0), f.attempt)
        for name in chosen & set(self.specs):
            state = self.prev_tasks.get(name)
            self.bases[name] = max((state.attempts or 0) if state else 0, observed.get(name, 0))
            self.reset.add(name)

    def _index(self, attempts: Iterable[AttemptFact]) -> datetime | None:
        """Keep each task's latest attempt and when its first began; return the earliest Job creation."""
        earliest: datetime | None = None
        for fact in attempts:
            if fact.task not in self.specs:
                continue
            latest = self.latest.get(fact.task)
            if latest is None or fact.attempt >= latest.attempt:
                self.latest[fact.task] = fact
            began = fact.created or fact.start_time
            if began is not None:
                if fact.attempt == 1:
                    self.first_seen[fact.task] = began
                if earliest is None or began < earliest:
                    earliest = began
        return earliest

    # ------------------------------------------------------------------ one task

    def _decide(self, name: str) -> TaskState:
        prev = None if name in self.reset else self.prev_tasks.get(name)
        if prev is not None and prev.phase in TERMINAL_TASK_PHASES:
            return prev
        fact = self.latest.get(name)
        observed = fact.attempt if fact else 0
        recorded = (prev.attempts or 0) if prev else 0
        if fact is not None and observed >= recorded:
            return self._from_fact(name, fact, prev)
        if prev is None or recorded <= self.bases.get(name, 0):
            return self._not_started(name)
        if prev.phase == "Retrying":
            self._retry_at(name, prev.next_retry_time or self.now)
            return prev
        return self._unseen(name, recorded, prev)

    def _not_started(self, name: str) -> TaskState:
        ready = True
        for dep in self.graph.deps[name]:
            phase = self.states[dep].phase
            if phase in ("Failed", "Skipped"):
                word = "failed" if phase == "Failed" else "was skipped"
                return self._skipped("DependencyFailed", f"dependency {dep} {word}")
            ready = ready and phase == "Succeeded"
        return _READY if ready else _WAITING

    def _first_start(self, name: str, prev: TaskState | None, fact: AttemptFact) -> datetime:
        return (
            (prev.start_time if prev else None)
            or self.first_seen.get(name)
            or fact.created
            or fact.start_time
            or self.now
        )

    def _attempt_start(self, attempt: int, prev: TaskState | None, seen: datetime | None) -> datetime | None:
        """Return when a retry began (None for attempt 1, whose start is the task's startTime)."""
        if attempt <= 1:
            return None
        if prev is not None and prev.attempts == attempt and prev.attempt_start_time is not None:
            return prev.attempt_start_time
        return seen or self.now

    def _from_fact(self, name: str, fact: AttemptFact, prev: TaskState | None) -> TaskState:
        start = self._first_start(name, prev, fact)
        if fact.awaiting_pod and fact.finish_time is not None:
            until = fact.finish_time + timedelta(seconds=POD_VERDICT_WAIT_SECONDS)
            if self.now < until:
                self.wakeups.append(until)
                return self._running(
                    name, fact.model_copy(update={"phase": "Running", "reason": None, "message": None}), prev, start
                )
        if fact.phase == "Succeeded":
            if self.compact:
                return TaskState(phase="Succeeded", attempts=fact.attempt)
            return TaskState(
                phase="Succeeded",
                attempts=fact.attempt,
                start_time=start,
                finish_time=fact.finish_time or self.now,
                reason=fact.reason,  # e.g. OutputTruncated
                message=cut(fact.message) if fact.message else None,
            )
        if fact.phase in _ACTIVE:
            return self._running(name, fact, prev, start)
        return self._after_failure(
            name,
            fact.attempt,
            fact.job_name,
            fact.exit_code,
            fact.reason,
            fact.message,
            failed_at=fact.finish_time or fact.start_time or fact.created,
            prev=prev,
            start=start,
        )

    def _running(self, name: str, fact: AttemptFact, prev: TaskState | None, start: datetime) -> TaskState:
        attempt_start = self._attempt_start(fact.attempt, prev, fact.created)
        reason, message = fact.reason, fact.message
        if fact.phase == "Pending":
            timeout = self.task(name).startup_timeout_seconds
            limit_at = (fact.created or attempt_start or start) + timedelta(seconds=timeout)
            if self.now >= limit_at:
                why = _detail(None, fact.reason, fact.message) if fact.reason or fact.message else None
                reason = "StartupTimeout"
                message = cut(f"the pod did not start within {timeout}s" + (f": {why}" if why else ""))
                if not fact.stopping:
                    self.stops[fact.job_name] = StopJob(job_name=fact.job_name, reason=reason, message=message)
            else:
                self.wakeups.append(limit_at)
        return TaskState(
            phase="Running",
            attempts=fact.attempt,
            job=self._running_job(name, fact.attempt, fact.job_name),
            start_time=start,
            attempt_start_time=attempt_start,
            reason=reason,
            message=cut(message) if message else None,
        )

    def _running_job(self, name: str, attempt: int, job: str) -> str | None:
        """Return the Job name a Running state records: none in a big TaskJob when the name is the usual one.

        10,000 tasks running at once would otherwise write about 1 MB of status (B3).
        """
        return None if self.compact and job == job_name(self.meta.name, name, attempt) else job

    def _unseen(self, name: str, attempt: int, prev: TaskState) -> TaskState:
        """Decide a task whose latest recorded attempt has no Job in sight: not seen yet, or lost."""
        began = (prev.attempt_start_time if attempt > 1 else prev.start_time) or self.start_time
        job = prev.job or job_name(self.meta.name, name, attempt)
        expires = began + timedelta(seconds=GRACE_SECONDS)
        if self.now < expires:
            self.wakeups.append(expires)
            if prev.phase == "Running":
                return prev
            return TaskState(
                phase="Running",
                attempts=attempt,
                job=self._running_job(name, attempt, job),
                start_time=prev.start_time or began,
                attempt_start_time=began if attempt > 1 else None,
            )
        return self._after_failure(
            name,
            attempt,
            job,
            None,
            "JobLost",
            f"Job {job} disappeared before it finished",
            failed_at=expires,
            prev=prev,
            start=prev.start_time or began,
        )

    def _after_failure(
        self,
        name: str,
        attempt: int,
        job: str,
        exit_code: int | None,
        reason: str | None,
        message: str | None,
        *,
        failed_at: datetime | None,
        prev: TaskState | None,
        start: datetime,
    ) -> TaskState:
        """Decide a task whose latest attempt failed: Failed for good, or Retrying."""
        retry = self.task(name).retry
        detail = _detail(exit_code, reason, message)
        total = max_attempts(retry) + self.bases.get(name, 0)
        if is_non_retriable(retry, exit_code) or attempt >= total:
            text = (
                f"failed on attempt {attempt}: {detail} (not retriable)"
                if is_non_retriable(retry, exit_code)
                else f"failed after {_plural(attempt, 'attempt')}: {detail}"
            )
            return TaskState(
                phase="Failed",
                attempts=attempt,
                job=job,
                start_time=start,
                finish_time=failed_at or self.now,
                exit_code=exit_code,
                reason="NonRetriableExitCode" if is_non_retriable(retry, exit_code) else reason or "Failed",
                message=cut(text),
            )
        base = self.bases.get(name, 0)  # backoff, like the limit, counts afresh after a manual retry
        if failed_at is not None:
            at = next_retry_time(retry, attempt, failed_at, base)
        elif prev is not None and prev.phase == "Retrying" and prev.attempts == attempt and prev.next_retry_time:
            at = prev.next_retry_time  # no time on the Job: keep the recorded one, so it does not slide
        else:
            at = next_retry_time(retry, attempt, self.now, base)
        self._retry_at(name, at)
        return TaskState(
            phase="Retrying",
            attempts=attempt,
            job=job,
            start_time=start,
            exit_code=exit_code,
            reason=reason or "Failed",
            message=cut(f"attempt {attempt} of {total} failed: {detail}"),
            next_retry_time=at,
        )

    def _retry_at(self, name: str, at: datetime) -> None:
        if at <= self.now:
            self.due.append(name)
        else:
            self.retry_wakeups.append(at)

    def _skipped(self, reason: str, message: str, base: TaskState | None = None) -> TaskState:
        """Return a Skipped state; a task that had attempts keeps what they left."""
        text = None if self.compact else cut(message)
        if base is None or not base.attempts:
            return TaskState(phase="Skipped", reason=reason, message=text)
        return TaskState(
            phase="Skipped",
            attempts=base.attempts,
            job=base.job,
            start_time=base.start_time,
            finish_time=self.now,
            exit_code=base.exit_code,
            reason=reason,
            message=text,
        )

    # ------------------------------------------------------------------ TaskJob-wide rules

    def _first_failed(self) -> str | None:
        """Return the task that failed for good first (by finish time, then topological order)."""
        best: tuple[datetime, int, str] | None = None
        for i, name in enumerate(self.graph.order):
            state = self.states[name]
            if state.phase == "Failed":
                key = (state.finish_time or self.now, i, name)
                if best is None or key < best:
                    best = key
        return best[2] if best else None

    def _failure(self) -> str | None:
        """Return the sentence naming the first permanent failure, e.g. 'task load failed after 4 attempts: ...'."""
        first = self._first_failed()
        if first is None:
            return None
        others = sum(1 for s in self.states.values() if s.phase == "Failed") - 1
        text = f"task {first} {self.states[first].message or 'failed'}"
        return text + (f"; {_plural(others, 'other task')} failed too" if others else "")

    def _deadline_at(self) -> datetime | None:
        """Return when activeDeadlineSeconds runs out: counted from the TaskJob's creation.

        Not from status.startTime: a status that is lost or read from before the first write would
        restart the clock, and a TaskJob past its deadline would run again.
        """
        deadline = self.spec.active_deadline_seconds
        if deadline is None:
            return None
        return (self.meta.creation_timestamp or self.start_time) + timedelta(seconds=deadline)

    def _halt(self) -> str | None:
        """Apply the deadline or FailFast to unfinished tasks; return which stopped the TaskJob, or None."""
        unfinished = [n for n in self.graph.order if self.states[n].phase not in TERMINAL_TASK_PHASES]
        if not unfinished:
            return None
        deadline = self.spec.active_deadline_seconds
        deadline_at = self._deadline_at()
        if deadline is not None and deadline_at is not None and self.now >= deadline_at:
            why = f"the TaskJob exceeded spec.activeDeadlineSeconds ({deadline}s)"
            for name in unfinished:
                state = self.states[name]
                if state.phase == "Running":
                    self.states[name] = TaskState(
                        phase="Failed",
                        attempts=state.attempts,
                        job=state.job,
                        start_time=state.start_time,
                        finish_time=self.now,
                        reason="DeadlineExceeded",
                        message=f"stopped: {why}",
                    )
                else:
                    verb = "not retried" if state.phase == "Retrying" else "not started"
                    self.states[name] = self._skipped("DeadlineExceeded", f"{verb}: {why}", state)
            return "deadline"
        if self.spec.failure_policy != "ContinueIndependent":
            culprit = self._first_failed()
            if culprit is None:
                return None
            for name in unfinished:
                state = self.states[name]
                if state.phase != "Running":
                    verb = "not retried" if state.phase == "Retrying" else "not started"
                    self.states[name] = self._skipped("FailFast", f"{verb}: task {culprit} failed", state)
            return "failfast"
        return None

    def _create(self) -> list[CreateJob]:
        """Turn the best candidates into Running attempts, within parallelism; return the creates."""
        position = self.shape.position
        candidates = [n for n in self.graph.order if self.states[n].phase == "Ready"] + self.due
        if not candidates:
            return []
        candidates.sort(key=lambda n: (-self.task(n).priority, position[n]))
        limit = self.spec.parallelism
        if limit is not None:
            running = sum(1 for s in self.states.values() if s.phase == "Running")
            candidates = candidates[: max(0, limit - running)]
        return self._launch(candidates)

    def _launch(self, candidates: Iterable[str]) -> list[CreateJob]:
        """Make each candidate's next attempt Running; return the creates."""
        creates: list[CreateJob] = []
        for name in candidates:
            old = self.states[name]
            attempt = (old.attempts or 0) + 1
            self.replaced[name] = old
            self.states[name] = TaskState(
                phase="Running",
                attempts=attempt,
                job=self._running_job(name, attempt, job_name(self.meta.name, name, attempt)),
                start_time=old.start_time or self.now,
                attempt_start_time=self.now if attempt > 1 else None,
                retry_base=old.retry_base,
            )
            creates.append(CreateJob(task=name, attempt=attempt))
        return creates

    def _stop_jobs_of_finished_tasks(self) -> None:
        for name in self.latest:
            stop = self._finished_stop(name)
            if stop is not None:
                self.stops[stop.job_name] = stop

    def _finished_stop(self, name: str) -> StopJob | None:
        """Return the stop for a task that is final while its latest Job still runs (stopped at the deadline)."""
        fact = self.latest.get(name)
        state = self.states[name]
        if fact is None or fact.phase not in _ACTIVE or fact.stopping or state.phase not in TERMINAL_TASK_PHASES:
            return None
        return StopJob(
            job_name=fact.job_name,
            reason=state.reason or state.phase,
            message=state.message or f"task {name} is {state.phase}",
        )

    # ------------------------------------------------------------------ events

    def _events(
        self, touched: Iterable[str], creates: list[CreateJob], phase: str, prev_phase: str | None, message: str
    ) -> list[Event]:
        events: list[Event] = []
        for name in touched:
            new = self.states[name]
            old = self.prev_tasks.get(name)
            if new is old:
                continue
            was = old.phase if old else "Waiting"
            if new.phase == "Succeeded" and was != "Succeeded":
                events.append(Event(type="Normal", reason="TaskSucceeded", message=self._succeeded_text(name, new)))
            elif new.phase == "Failed" and was != "Failed":
                events.append(Event(type="Warning", reason="TaskFailed", message=cut(f"task {name} {new.message}")))
            retrying = new if new.phase == "Retrying" else self.replaced.get(name)
            if (
                retrying is not None
                and retrying.phase == "Retrying"
                and not (old is not None and was == "Retrying" and old.attempts == retrying.attempts)
            ):
                events.append(Event(type="Warning", reason="TaskRetrying", message=self._retrying_text(name, retrying)))
        if self.reset:
            names = ", ".join(n for n in self.graph.order if n in self.reset)
            events.append(Event(type="Normal", reason="RetryRequested", message=cut(f"re-running tasks: {names}")))
        for c in creates:
            total = max_attempts(self.task(c.task).retry) + self.bases.get(c.task, 0)
            job = job_name(self.meta.name, c.task, c.attempt)
            text = f"task {c.task}: started attempt {c.attempt} of {total} as Job {job}"
            events.append(Event(type="Normal", reason="TaskStarted", message=text))
        if phase in ("Succeeded", "Failed") and prev_phase != phase:
            events.append(Event(type="Normal" if phase == "Succeeded" else "Warning", reason=phase, message=message))
        return events

    def _succeeded_text(self, name: str, state: TaskState) -> str:
        return f"task {name} succeeded on attempt {state.attempts or 1}"

    def _retrying_text(self, name: str, state: TaskState) -> str:
        retry = self.task(name).retry
        attempt = state.attempts or 1
        delay = _seconds(retry_delay(retry, attempt, self.bases.get(name, 0)))
        upcoming = f"attempt {attempt + 1} of {max_attempts(retry) + self.bases.get(name, 0)}"
        return cut(f"task {name}: {state.message}; retrying in {delay} ({upcoming})")
