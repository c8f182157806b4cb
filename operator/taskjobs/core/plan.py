"""The plan: from the spec, the last written status and the observed Jobs, decide what to do now.

Pure: `now` is an argument; no clock, no I/O, no kopf or client. One call is O(tasks + attempts), and
the same inputs always give the same plan, so a repeated reconcile repeats nothing. The operator plans
from the `Memory` of its last plan instead, deciding only what a change touches (taskjobs.incremental):
the same `Planner`, fed fewer tasks.

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
   dependencies succeeded, else Waiting. With `when` conditions or `finally` tasks, taskjobs.core.flow
   says how (a condition decides Ready or Skipped; a task reading a dependency's phase waits for any
   end; finally tasks wait for every task of spec.tasks), and also decides the final phase.

Then the TaskJob-wide rules:

- activeDeadlineSeconds counts from metadata.creationTimestamp (wall time, suspension included). Once past, every
  running task is Failed (DeadlineExceeded) and its Job stopped, every other unfinished task Skipped;
  a task whose Job ended in time and awaits only its pod's verdict is judged by that verdict. A Job
  that ends at or after the deadline, or that the operator asked to stop, never counts as a success.
- FailFast (the default): once a task failed for good (and no task handles it: flow), nothing new
  is created but finally tasks. Waiting, Ready and Retrying tasks (not finally ones) become Skipped
  (reason FailFast; a Retrying task keeps its last attempt's exit code: it did not fail for good on
  its own, so it is not counted as failed and the first failure stays the one named in the message).
  Running tasks finish; then the TaskJob is Failed. ContinueIndependent: only the dependents of a
  failed task are skipped (rule 4).
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

Fan-out (core/fanout.py): once a fan-out task's list is known (from the spec, or its dependency's
output, read from that task's Job or the outputs recorded so far), its instances are units decided by
the rules above, and the task itself is decided from their phases (`_join`): Succeeded when all
succeeded (its output, the list of theirs, is handed to the shell to record before any create), Failed
or Skipped once all ended, else Running, Ready or Waiting. It never gets a Job and is not counted: the
counts and `parallelism` are of instances. A list that cannot expand fails the task when its
dependencies succeeded. With a memory, a list that becomes known makes `run` return None (a new graph).

Status stays small: empty fields are omitted, a Waiting task is just {"phase": "Waiting"}, and in a
TaskJob of more than COMPACT_TASKS tasks succeeded and skipped tasks record only phase, attempts and
reason (their Jobs, found by label, have the times) and running tasks leave out their Job's name (the
usual <taskjob>-<task>-<attempt>), so 10,000 tasks stay under 1 MiB even all running at once.
Events are the difference between the previous status and the new one, so they are not repeated.
"""

from __future__ import annotations

import dataclasses
import heapq
from bisect import bisect_left, insort
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from . import dag, fanout, flow
from .actions import CreateJob, Event, Plan, RetryRequest, StopJob
from .backoff import is_non_retriable, max_attempts, next_retry_time, retry_delay
from .conditions import ConditionError, evaluate
from .facts import AttemptFact
from .inputs import input_value
from .models import (
    TERMINAL_PHASES,
    TERMINAL_TASK_PHASES,
    TaskJobMeta,
    TaskJobSpec,
    TaskJobStatus,
    TaskSpec,
    TaskState,
)
from .naming import job_name
from .resolve import ResolvedTask, resolve_task
from .status import conditions, count_phases, cut, describe, taskjob_phase

GRACE_SECONDS = 30.0  # a Job just created may take this long to reach the operator's watch
# How long an attempt whose Job ended waits for its pod's verdict (AttemptFact.awaiting_pod): longer than
# the shell's 60 s resync, which lists the pods a broken watch missed. Past it the pod is taken as gone.
POD_VERDICT_WAIT_SECONDS = 90.0
COMPACT_TASKS = 1000  # above this many tasks, finished tasks record less (see module docstring)

ReadyKey = tuple[int, int, str]  # (-priority, topological position, task): the order tasks start in

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
    outputs: Mapping[str, str] | None = None,
) -> Plan:
    """Return the new status and the actions that move the TaskJob on from what was observed.

    `spec` must be valid (dag.build accepts it); `status` is the last written status (possibly stale,
    or None); `attempts` are the observed Jobs, any number per task; `retry` a manual retry request;
    `outputs` the task outputs recorded so far (by task or instance): for `when` conditions and fan-out
    tasks' lists (a Job's own output comes first).
    """
    result = Planner(meta, spec, now, status, outputs=outputs).run({f.job_name: f for f in attempts}, retry)
    assert result is not None  # only a planner with a memory gives up
    return result


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
    """What plan derives from the spec alone (graph, order, settings): kept between plans of one generation.

    Given the expansions of fan-out tasks (`expand` finds them), the graph is of units: tasks and instances
    (core/fanout.py); the plan makes a new shape when an expansion becomes known.
    """

    def __init__(
        self, spec: TaskJobSpec, base: SpecShape | None = None, expansions: Mapping[str, fanout.Expansion] | None = None
    ) -> None:
        self.spec = spec
        self.base_graph: dag.Graph = base.base_graph if base else flow.build_graph(spec)  # tasks, then finally
        self.tasks: Mapping[str, TaskSpec] = base.tasks if base else {t.name: t for t in flow.all_tasks(spec)}
        self.flow: flow.Flow = base.flow if base else flow.Flow(spec)  # when conditions and finally tasks
        self.resolved: dict[str, ResolvedTask] = base.resolved if base else {}  # filled on demand
        # (fan-out task, the task whose output lists its items): read on every event (Planner._expands), which
        # walked every task to find them: at 10,000 tasks most of an event's planning time (B3).
        self.from_outputs: tuple[tuple[str, str], ...] = (
            base.from_outputs
            if base
            else tuple(
                (n, t.for_each.from_output) for n, t in self.tasks.items() if t.for_each and t.for_each.from_output
            )
        )
        self.expansions: Mapping[str, fanout.Expansion] = expansions or {}
        counts = {name: len(e.items) for name, e in self.expansions.items() if e.ok}
        self.units = fanout.units(self.base_graph, counts) if counts else None
        self.graph = self.units.graph if self.units else self.base_graph
        self.parent: Mapping[str, str] = self.units.parent if self.units else {}
        self.joins: frozenset[str] = self.units.joins if self.units else frozenset()
        specs = dict(self.tasks)
        specs.update((unit, self.tasks[task]) for unit, task in self.parent.items())
        self.specs = specs  # by unit: an instance has its task's spec
        self.position = {name: i for i, name in enumerate(self.graph.order)}

    def task(self, name: str) -> ResolvedTask:
        """Return a task's effective settings (defaults applied); an instance's are its task's."""
        name = self.parent.get(name, name)
        found = self.resolved.get(name)
        if found is None:
            found = self.resolved[name] = resolve_task(self.tasks[name], self.spec.defaults)
        return found

    def instance(self, unit: str) -> tuple[int, Any] | None:
        """Return (index, item) when `unit` is an instance of a fan-out task, else None."""
        task = self.parent.get(unit)
        if task is None or self.units is None:
            return None
        index = self.units.index[unit]
        return index, self.expansions[task].items[index]

    def expand(self, output_of: Callable[[str], str | None]) -> dict[str, fanout.Expansion]:
        """Return the expansion of every fan-out task whose list is known; `output_of(task)`: its output."""
        found: dict[str, fanout.Expansion] = {}
        for name in self.base_graph.order:
            spec = self.tasks[name]
            if spec.for_each is None:
                continue
            known = self.expansions.get(name)
            if known is None:
                source = spec.for_each.from_output
                resolved = self.task(name)
                texts = [*(resolved.command or ()), *(resolved.args or ()), *(e.value for e in resolved.env if e.value)]
                known = fanout.expand(spec, output_of(source) if source else None, fanout.item_fields(texts))
            if known is not None:
                found[name] = known
        return found

    def ready_key(self, name: str) -> ReadyKey:
        """Return the order a candidate starts in: highest priority first, then topological order."""
        return (-self.task(name).priority, self.position[name], name)


@dataclass(frozen=True)
class Memory:
    """What one plan of a TaskJob leaves for the next (see taskjobs.incremental): enough to decide only what changed."""

    uid: str | None
    generation: int | None
    shape: SpecShape
    status: TaskJobStatus  # settled: as the API server stores it
    facts: Mapping[str, AttemptFact]  # by Job name, as this plan saw them
    jobs_of: Mapping[str, tuple[str, ...]]  # task -> names of its Jobs
    latest: Mapping[str, AttemptFact]  # task -> its latest attempt (after any manual-retry base)
    first_seen: Mapping[str, datetime]  # task -> when its attempt 1 began
    bases: Mapping[str, int]  # task -> attempts before its manual retry
    volatile: frozenset[str]  # tasks whose state the clock alone can change: decided again by every plan
    ready: tuple[ReadyKey, ...]  # Ready tasks, sorted
    finished_stops: Mapping[str, StopJob]  # task -> stop for its Job that runs though the task is final
    phases: Mapping[str, int]  # number of tasks in each phase
    started: bool
    join_phases: Mapping[str, Mapping[str, int]] = dataclasses.field(default_factory=dict)  # fan-out: per task


def volatile(state: TaskState, fact: AttemptFact | None) -> bool:
    """Return whether the clock alone can change the task's state, so every plan decides it again."""
    if state.phase == "Retrying":
        return True
    if state.phase != "Running":
        return False
    return fact is None or fact.phase != "Running" or fact.attempt < (state.attempts or 0)


class Planner:
    """One plan call's working state; `run` is the only entry.

    Without a memory nothing is known: every task is decided, and the TaskJob-wide rules (deadline,
    FailFast, a new manual retry) are applied. With the memory of the last plan, only the tasks whose
    Jobs changed, the volatile ones and the dependents of a task whose phase changed are decided; when a
    TaskJob-wide rule would touch every task, `run` returns None and the caller plans without the memory.
    """

    def __init__(
        self,
        meta: TaskJobMeta,
        spec: TaskJobSpec,
        now: datetime,
        status: TaskJobStatus | None = None,
        shape: SpecShape | None = None,
        memory: Memory | None = None,
        outputs: Mapping[str, str] | None = None,
    ) -> None:
        self.meta = meta
        self.spec = spec
        self.now = now
        self.memory = memory
        self.prev = memory.status if memory is not None else status
        self.shape = shape if shape is not None and shape.spec is spec else SpecShape(spec)
        self.graph = self.shape.graph
        self.specs = self.shape.specs
        self.prev_tasks: Mapping[str, TaskState] = (self.prev.tasks or {}) if self.prev else {}
        self.compact = len(self.specs) > COMPACT_TASKS
        self.start_time = now
        # What the memory knows (empty without one); `states` holds the tasks decided so far.
        self.states: dict[str, TaskState] = dict(self.prev_tasks) if memory is not None else {}
        self.latest: dict[str, AttemptFact] = dict(memory.latest) if memory else {}
        self.first_seen: dict[str, datetime] = dict(memory.first_seen) if memory else {}  # from attempt 1's Job
        self.jobs_of: dict[str, tuple[str, ...]] = dict(memory.jobs_of) if memory else {}
        self.phases: Counter[str] = Counter(memory.phases) if memory else Counter()
        self.ready: list[ReadyKey] = list(memory.ready) if memory else []
        self.finished_stops: dict[str, StopJob] = dict(memory.finished_stops) if memory else {}
        self.started = memory.started if memory else False
        if memory is not None:
            self.bases = dict(memory.bases)
        else:
            self.bases = {n: s.retry_base for n, s in self.prev_tasks.items() if s.retry_base}
        self.reset: set[str] = set()  # tasks a new manual retry starts again
        self.touched: list[str] = []  # tasks decided or started by this plan, in topological order
        self.due: list[str] = []  # Retrying tasks whose next attempt may start now
        self.retry_wakeups: list[datetime] = []
        self.wakeups: list[datetime] = []
        self.stops: dict[str, StopJob] = {}
        self.replaced: dict[str, TaskState] = {}  # state of each task created now, before its creation
        self.flow = self.shape.flow
        self.main_open: bool | None = None  # whether a task of spec.tasks is unfinished (finally tasks wait)
        # Outputs recorded so far (the ConfigMap), for `when` and fan-out lists (a Job's own output comes
        # first); fan-out (core/fanout.py): instance phases per fan-out task, the fan-out tasks whose
        # instances changed after they were decided, and the lists they hand on.
        self.outputs: Mapping[str, str] = outputs or {}
        self.join_phases: dict[str, Counter[str]] = (
            {k: Counter(v) for k, v in memory.join_phases.items()} if memory else {}
        )
        self.dirty_joins: set[str] = set()
        self.records: dict[str, str] = {}

    def task(self, name: str) -> ResolvedTask:
        """Return a task's effective settings."""
        return self.shape.task(name)

    # ------------------------------------------------------------------ the whole

    def run(
        self,
        facts: Mapping[str, AttemptFact],
        retry: RetryRequest | None = None,
        changed_jobs: Collection[str] | None = None,
    ) -> Plan | None:
        """Return the plan for the facts (by Job name), or None when a memory cannot stand in (see class).

        `changed_jobs`, with a memory, names every Job whose fact may differ from the memory's (None: all
        are compared).
        """
        memory = self.memory
        applied = self.prev.observed_retry if self.prev else None
        if memory is None:
            self._expand(facts)
        if memory is None and retry is not None and retry.nonce != applied:
            self._start_retry(retry, facts.values())
            applied = retry.nonce
        if memory is not None:
            deadline_at = self._deadline_at()
            if deadline_at is not None and self.now >= deadline_at:
                return None  # the deadline ends every unfinished task
        if memory is None:
            changed: set[str] = set()  # every task is decided
            self._index(facts.values(), self.latest, self.first_seen)
        else:
            changed = self._changed_tasks(facts, changed_jobs)
            latest: dict[str, AttemptFact] = {}
            first_seen: dict[str, datetime] = {}
            self._index((facts[job] for name in changed for job in self.jobs_of.get(name, ())), latest, first_seen)
            # Assigned in place, not popped and added again: a dict with deleted entries copies slowly.
            for name in changed:
                if name in latest:
                    self.latest[name] = latest[name]
                else:
                    self.latest.pop(name, None)
                if name in first_seen:
                    self.first_seen[name] = first_seen[name]
                else:
                    self.first_seen.pop(name, None)
            if self._expands(changed):
                return None  # a fan-out task's list is now known: its instances change the graph
        # Attempts before a manual retry are history: they neither decide the task nor count to its limit.
        self.start_time = (self.prev.start_time if self.prev else None) or self._earliest(facts) or self.now
        decided = self._decide_dirty(changed)
        failfast = self.spec.failure_policy != "ContinueIndependent"
        if memory is not None and failfast and self.phases.get("Failed"):
            return None  # FailFast skips every unfinished task
        halt = self._halt() if memory is None else None
        if halt == "failfast" and self.flow.final:
            self._decide_finally_again()  # FailFast may just have ended the last open task of spec.tasks
        # After a FailFast failure only finally tasks start; after the deadline or while suspended none.
        creates = [] if halt == "deadline" or self.spec.suspend else self._create(final_only=halt is not None)
        joins = self._settle_joins()

        if memory is None:
            self.touched = list(self.graph.order)  # every task was decided
        else:
            self.touched = sorted(
                {*decided, *(c.task for c in creates), *joins}, key=self.shape.position.__getitem__
            )
        for name in self.touched if memory is not None else self.latest:  # no Job, no stop
            stop = self._finished_stop(name)
            if stop is None:
                self.finished_stops.pop(name, None)
            else:
                self.finished_stops[name] = stop
        for stop in self.finished_stops.values():
            self.stops[stop.job_name] = stop
        self.started = self.started or bool(creates) or any(self.states[n].attempts for n in decided)
        return self._conclude(
            applied, halt, creates, changed=None if memory is None else frozenset(self.touched)
        )

    def _set(self, name: str, state: TaskState) -> None:
        """Record a task's new state, keeping the count per phase and the Ready tasks in step."""
        old = self.states.get(name)
        self.states[name] = state
        was = old.phase if old is not None else None
        if was == state.phase or name in self.shape.joins:  # a fan-out task is counted by its instances
            return
        if was is not None:
            self.phases[was] -= 1
        self.phases[state.phase] += 1
        join = self.shape.parent.get(name)
        if join is not None:
            counter = self.join_phases.setdefault(join, Counter())
            if was is not None:
                counter[was] -= 1
            counter[state.phase] += 1
            self.dirty_joins.add(join)
        if was == "Ready":
            key = self.shape.ready_key(name)
            i = bisect_left(self.ready, key)
            if i < len(self.ready) and self.ready[i] == key:
                del self.ready[i]
        elif state.phase == "Ready":
            insort(self.ready, self.shape.ready_key(name))

    def _decide_dirty(self, changed: set[str]) -> Collection[str]:
        """Decide every task that may have changed, in topological order; return the tasks decided.

        Without a memory that is every task (and the counts per phase and the Ready tasks are built
        from their states). With one: the tasks whose Jobs changed, the volatile ones, and the dependents
        of a task whose phase changed, transitively; the others keep their state.
        """
        if self.memory is None:
            parent = self.shape.parent
            self.join_phases = {}
            for name in self.graph.order:
                state = self.states[name] = self._decide_based(name)
                if name in parent:
                    self.join_phases.setdefault(parent[name], Counter())[state.phase] += 1
            joins = self.shape.joins
            self.phases = Counter(s.phase for n, s in self.states.items() if n not in joins)
            self.ready = sorted(
                self.shape.ready_key(n) for n, s in self.states.items() if s.phase == "Ready" and n not in joins
            )
            return self.graph.order
        dirty = changed | set(self.memory.volatile) | set(self.flow.final)  # finally tasks watch every task
        decided: list[str] = []
        position = self.shape.position
        heap = [(position[n], n) for n in dirty]
        heapq.heapify(heap)
        while heap:
            _, name = heapq.heappop(heap)
            old = self.states[name]
            decided.append(name)
            new = self._decide_based(name)
            self._set(name, new)
            if new.phase != old.phase:
                for dependent in self.graph.dependents[name]:
                    if dependent not in dirty:
                        dirty.add(dependent)
                        heapq.heappush(heap, (position[dependent], dependent))
        self.dirty_joins.clear()  # each was decided after its instances
        return decided

    def _decide_based(self, name: str) -> TaskState:
        """Decide a task, recording the retry base of a manual retry on it."""
        state = self._decide(name)
        base = self.bases.get(name)
        if base and state.retry_base != base:
            state = state.model_copy(update={"retry_base": base, "attempts": max(state.attempts or 0, base)})
        return state

    def _conclude(
        self, applied: str | None, halt: str | None, creates: list[CreateJob], changed: frozenset[str] | None
    ) -> Plan:
        """Return the plan, once every task is decided: the TaskJob's status, wakeup, events and actions.

        `changed`: the tasks whose state may differ from the previous status (None: any).
        """
        counts = count_phases(self.phases)
        # With conditions or finally tasks, "every task succeeded" is not the rule: flow decides (O(tasks), once).
        # A fan-out task stands for its instances (it is Failed or Skipped as they are).
        failing = None
        if not self.flow.plain and counts.finished:
            failing = self.flow.failing(self.states, (n for n in self.graph.order if n not in self.shape.parent))
        phase = taskjob_phase(counts, suspended=bool(self.spec.suspend), started=self.started, failing=failing)

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
            # After FailFast only finally tasks can still retry; after the deadline nothing does.
            if (halt is None or (halt == "failfast" and self.flow.final)) and not self.spec.suspend:
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
            events=tuple(self._events(self.touched, creates, phase, prev_phase, message)),
            delete_taskjob=delete,
            requeue_after=requeue,
            changed=changed,
            outputs=self.records,
        )

    def _start_retry(self, retry: RetryRequest, facts: Iterable[AttemptFact]) -> None:
        """Choose the tasks a manual retry starts again, and record how many attempts each already made."""
        prev = {n: s.phase for n, s in self.prev_tasks.items()}
        if retry.tasks is None:
            chosen = {n for n, phase in prev.items() if phase in ("Failed", "Skipped")}
        else:
            chosen = {n for n in retry.tasks if prev.get(n) in ("Failed", "Skipped")}
            for name in list(chosen):
                chosen |= {d for d in self.graph.descendants(name) if prev.get(d) == "Skipped"}
                if name in self.shape.joins:  # a fan-out task: its instances that did not succeed
                    chosen |= {u for u in self._instances(name) if prev.get(u) in ("Failed", "Skipped")}
        observed: dict[str, int] = {}
        for f in facts:
            observed[f.task] = max(observed.get(f.task, 0), f.attempt)
        for name in chosen & set(self.specs):
            state = self.prev_tasks.get(name)
            self.bases[name] = max((state.attempts or 0) if state else 0, observed.get(name, 0))
            self.reset.add(name)

    def _changed_tasks(self, facts: Mapping[str, AttemptFact], changed_jobs: Collection[str] | None) -> set[str]:
        """Return the tasks whose Jobs changed since the memory.

        Notes each such task's Jobs in `jobs_of`.
        """
        assert self.memory is not None
        old = self.memory.facts
        changed: set[str] = set()
        added: dict[str, list[str]] = {}
        if changed_jobs is None:
            new_jobs = 0
            for job, fact in facts.items():
                was = old.get(job)
                if was is not fact:
                    changed.add(fact.task)
                    if was is None:
                        new_jobs += 1
                        added.setdefault(fact.task, []).append(job)
                    elif was.task != fact.task:
                        changed.add(was.task)
            gone: Collection[str] = old.keys() - facts.keys() if len(old) + new_jobs > len(facts) else ()
        else:
            gone = []
            for job in changed_jobs:
                before, after = old.get(job), facts.get(job)
                if before is after:
                    continue
                if after is not None:
                    changed.add(after.task)
                    if before is None:
                        added.setdefault(after.task, []).append(job)
                if before is not None:
                    changed.add(before.task)
        for job in gone:
            changed.add(old[job].task)
        for task in changed:
            known = (*self.jobs_of.get(task, ()), *added.get(task, ()))
            jobs = tuple(j for j in dict.fromkeys(known) if j in facts and facts[j].task == task)
            if jobs:
                self.jobs_of[task] = jobs
            else:
                self.jobs_of.pop(task, None)
        return {t for t in changed if t in self.specs}

    def _index(
        self, facts: Iterable[AttemptFact], latest: dict[str, AttemptFact], first_seen: dict[str, datetime]
    ) -> None:
        """Note each task's latest attempt (after any manual-retry base) and when its attempt 1 began."""
        for fact in facts:
            task = fact.task
            if task not in self.specs or fact.attempt <= self.bases.get(task, 0):
                continue
            known = latest.get(task)
            if known is None or fact.attempt >= known.attempt:
                latest[task] = fact
            if fact.attempt == 1 and (began := fact.created or fact.start_time) is not None:
                first_seen[task] = began

    def _earliest(self, facts: Mapping[str, AttemptFact]) -> datetime | None:
        """Return when the first Job (after any manual-retry base) was created: the TaskJob's start."""
        times = [
            began
            for f in facts.values()
            if f.task in self.specs and f.attempt > self.bases.get(f.task, 0)
            and (began := f.created or f.start_time) is not None
        ]
        return min(times, default=None)


    # ------------------------------------------------------------------ fan-out (core/fanout.py)

    def _expand(self, facts: Mapping[str, AttemptFact]) -> None:
        """Expand every fan-out task whose list is known, before the facts are read (instances are units)."""
        sources = {source for _, source in self.shape.from_outputs}
        written: dict[str, AttemptFact] = {}
        if sources:
            for fact in facts.values():
                if (
                    fact.task in sources
                    and fact.phase == "Succeeded"
                    and fact.output is not None
                    and fact.attempt > self.bases.get(fact.task, 0)
                ):
                    known = written.get(fact.task)
                    if known is None or fact.attempt > known.attempt:
                        written[fact.task] = fact

        def output_of(task: str) -> str | None:
            fact = written.get(task)
            return fact.output if fact is not None else self.outputs.get(task)

        found = self.shape.expand(output_of)
        if found.keys() != self.shape.expansions.keys():
            self.shape = SpecShape(self.spec, base=self.shape, expansions=found)
            self.graph = self.shape.graph
            self.specs = self.shape.specs
            self.compact = len(self.specs) > COMPACT_TASKS

    def _expands(self, changed: Collection[str]) -> bool:
        """Return whether a changed task's output expands a fan-out task the memory's graph lacks."""
        for name, source in self.shape.from_outputs:
            if name in self.shape.expansions or source not in changed:
                continue
            fact = self.latest.get(source)
            if fact is not None and fact.phase == "Succeeded":
                return True
        return False

    def _raw_output(self, unit: str) -> str | None:
        fact = self.latest.get(unit)
        if fact is not None and fact.phase == "Succeeded" and fact.output is not None:
            return fact.output
        return self.outputs.get(unit)

    def _unexpanded(self, name: str) -> TaskState:
        """Decide a fan-out task whose dependencies succeeded but whose list gave no instances: it fails."""
        expansion = self.shape.expansions.get(name)
        if expansion is not None:
            reason, message = expansion.reason or "InvalidForEach", expansion.message or "cannot expand"
        else:
            each = self.specs[name].for_each
            source = each.from_output if each else None
            reason, message = "ForEachOutputMissing", f"the output of task {source} (forEach.fromOutput) is not known"
        return TaskState(phase="Failed", finish_time=self.now, reason=reason, message=cut(f"failed: {message}"))

    def _instances(self, name: str) -> list[str]:
        return [fanout.instance_name(name, i) for i in range(len(self.shape.expansions[name].items))]

    def _join(self, name: str, prev: TaskState | None) -> TaskState:
        """Decide an expanded fan-out task from its instances' phases (see core/fanout.py)."""
        n = len(self.shape.expansions[name].items)
        count = self.join_phases.get(name) or Counter()
        done = count["Succeeded"] + count["Failed"] + count["Skipped"]
        start = (prev.start_time if prev else None) or self.now
        if n == 0:
            base = self._not_started(name)
            if base.phase != "Ready":
                return base.model_copy(update={"items": 0})
        if done == n:
            if count["Succeeded"] == n:
                return self._join_succeeded(name, n, start, self._instances(name))
            if count["Succeeded"] and not count["Failed"]:
                # `when` over the item filters: the instances it skipped are left out of the list.
                kept = [u for u in self._instances(name) if self.states[u].phase == "Succeeded"]
                if all(
                    self.states[u].reason == flow.CONDITION_FALSE
                    for u in self._instances(name)
                    if self.states[u].phase == "Skipped"
                ):
                    return self._join_succeeded(name, n, start, kept)
            phase = "Failed" if count["Failed"] else "Skipped"
            first = next(u for u in self._instances(name) if self.states[u].phase == phase)
            state = self.states[first]
            word = phase.lower()
            text = f"{word}: {count[phase]} of {_plural(n, 'instance')} {word}; {first} {state.message or word}"
            return TaskState(
                phase=phase,
                items=n,
                start_time=None if self.compact else start,
                finish_time=None if self.compact else self.now,
                reason="InstanceFailed" if phase == "Failed" else state.reason,
                message=cut(text),
            )
        if done or count["Running"] or count["Retrying"]:
            return TaskState(phase="Running", items=n, start_time=start)
        return TaskState(phase="Ready" if count["Ready"] == n else "Waiting", items=n)

    def _join_succeeded(self, name: str, n: int, start: datetime, kept: list[str]) -> TaskState:
        """Return the state of a fan-out task whose instances succeeded; note the list it hands on.

        `kept`: the instances whose outputs make the list (all of them, or those a condition did not skip).
        """
        text = fanout.gather([self._raw_output(u) for u in kept])
        size = len(text.encode())
        if size > fanout.MAX_FANIN_BYTES:
            return TaskState(
                phase="Failed",
                items=n,
                start_time=start,
                finish_time=self.now,
                reason="OutputTooLarge",
                message=cut(
                    f"the list of its {n} instances' outputs is {size} bytes, over the {fanout.MAX_FANIN_BYTES}-byte "
                    "limit of a fan-out task's output: pass large data by reference (object storage, a volume)"
                ),
            )
        self.records[name] = text
        return TaskState(
            phase="Succeeded",
            items=n,
            start_time=None if self.compact else start,
            finish_time=None if self.compact else self.now,
            message=(
                f"all {_plural(n, 'instance')} succeeded"
                if len(kept) == n
                else f"{len(kept)} of {_plural(n, 'instance')} succeeded, {n - len(kept)} skipped by their condition"
            ),
        )

    def _settle_joins(self) -> list[str]:
        """Decide again the fan-out tasks whose instances the TaskJob-wide rules or the creates changed."""
        settled = sorted(self.dirty_joins, key=self.shape.position.__getitem__)
        for name in settled:
            state = self.states[name]
            if state.phase not in TERMINAL_TASK_PHASES:
                self._set(name, self._join(name, state))
        self.dirty_joins.clear()
        return settled

    # ------------------------------------------------------------------ one task

    def _decide(self, name: str) -> TaskState:
        prev = None if name in self.reset else self.prev_tasks.get(name)
        if prev is not None and prev.phase in TERMINAL_TASK_PHASES:
            return prev
        if name in self.shape.joins:
            return self._join(name, prev)
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
        if self.flow.plain:
            ready = True
            for dep in self.graph.deps[name]:
                phase = self.states[dep].phase
                if phase in ("Failed", "Skipped"):
                    word = "failed" if phase == "Failed" else "was skipped"
                    return self._skipped("DependencyFailed", f"dependency {dep} {word}")
                ready = ready and phase == "Succeeded"
            if ready and self._awaits_expansion(name):
                return self._unexpanded(name)
            return _READY if ready else _WAITING
        return self._not_started_flow(name)

    def _not_started_flow(self, name: str) -> TaskState:
        """Decide a task not started yet under the rules of conditions and finally tasks (taskjobs.core.flow)."""
        task = self.shape.parent.get(name, name)  # an instance follows its fan-out task's rules
        if task in self.flow.final_set and self._main_open():
            return _WAITING
        handles = self.flow.outcomes_read(task)
        ready = True
        for dep in self.graph.deps[name]:
            state = self.states[dep]
            if dep in handles:  # this task handles dep's outcome: it waits for any end
                ready = ready and state.phase in TERMINAL_TASK_PHASES
                continue
            skip = self.flow.skip_for(task, dep, state)
            if skip is not None:
                return self._skipped(*skip)
            ready = ready and state.phase in TERMINAL_TASK_PHASES
        if not ready:
            return _WAITING
        if self._awaits_expansion(name):
            return self._unexpanded(name)
        when = self.flow.whens.get(task)
        if when is None or name in self.shape.joins:  # a fan-out task's condition is its instances', per item
            return _READY
        view = {
            dep: {"phase": self.states[dep].phase, "reason": self.states[dep].reason or "", "output": self._output(dep)}
            for dep in when.tasks
        }
        taskjob = self.flow.taskjob_vars(self.states) if when.uses_taskjob else None
        instance = self.shape.instance(name)
        try:
            true = evaluate(when, view, item=instance[1] if instance else None, taskjob=taskjob)
        except ConditionError as err:
            return TaskState(phase="Failed", finish_time=self.now, reason=flow.CONDITION_ERROR, message=cut(str(err)))
        return _READY if true else self._skipped(flow.CONDITION_FALSE, f"condition {when.source} is false")

    def _awaits_expansion(self, name: str) -> bool:
        """Return whether `name` is a fan-out task whose list has given no instances yet."""
        shape = self.shape
        return self.specs[name].for_each is not None and name not in shape.parent and name not in shape.joins

    def _output(self, name: str) -> str:
        """Return the output task `name` hands on ('' when none): its Job's, else the one recorded (now or before)."""
        fact = self.latest.get(name)
        if fact is not None and fact.phase == "Succeeded" and fact.output is not None:
            return input_value(fact.output)
        return input_value(self.records.get(name) or self.outputs.get(name, ""))

    def _main_open(self) -> bool:
        """Return whether a task of spec.tasks is unfinished; asked only once they are all decided."""
        if self.main_open is None:
            if self.memory is None:
                self.main_open = self.flow.main_open(self.states)
            else:  # count, not scan: the plan with a memory is O(changes)
                unfinished = sum(n for p, n in self.phases.items() if p not in TERMINAL_TASK_PHASES)
                final = sum(1 for f in self.flow.final if self.states[f].phase not in TERMINAL_TASK_PHASES)
                return unfinished - final > 0
        return self.main_open

    def _decide_finally_again(self) -> None:
        """Decide the finally tasks not started again, after a TaskJob-wide rule ended tasks."""
        self.main_open = None
        for name in self.flow.final:
            if self.states[name].phase in ("Waiting", "Ready"):
                self._set(name, self._decide_based(name))

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
                    name, dataclasses.replace(fact, phase="Running", reason=None, message=None), prev, start
                )
        if fact.phase == "Succeeded" and self._past_deadline(fact):
            return self._deadline_failed(TaskState(attempts=fact.attempt, job=fact.job_name, start_time=start))
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

    def _first_failed(self, main_only: bool = False) -> str | None:
        """Return the task that failed for good first (by finish time, then topological order).

        Failures a task handles (taskjobs.core.flow) do not count; with `main_only`, nor finally tasks'.
        """
        best: tuple[datetime, int, str] | None = None
        plain = self.flow.plain
        for i, name in enumerate(self.graph.order):
            state = self.states[name]
            if state.phase == "Failed" and (
                plain
                or not (
                    self.flow.handled(self.shape.parent.get(name, name), self.states)  # an instance: as its task
                    or (main_only and name in self.flow.final_set)
                )
            ):
                key = (state.finish_time or self.now, i, name)
                if best is None or key < best:
                    best = key
        return best[2] if best else None

    def _failure(self) -> str | None:
        """Return the sentence naming the first permanent failure, e.g. 'task load failed after 4 attempts: ...'."""
        first = self._first_failed()
        if first is None:
            return None
        others = self.phases.get("Failed", 0) - 1  # a fan-out task counts as its instances
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

    def _ended_before(self, name: str, deadline_at: datetime) -> bool:
        """Return whether the task's latest Job ended before `deadline_at` and awaits only its pod's verdict.

        Final stays final: a read after the verdict arrived (even of an older status) sees a Job that ended
        in time and counts its success (`_past_deadline`), so the plan at the deadline must not fail it.
        """
        fact = self.latest.get(name)
        return (
            fact is not None
            and fact.awaiting_pod
            and not fact.stopping
            and fact.finish_time is not None
            and fact.finish_time < deadline_at
        )

    def _deadline_why(self) -> str:
        return f"the TaskJob exceeded spec.activeDeadlineSeconds ({self.spec.active_deadline_seconds}s)"

    def _deadline_failed(self, state: TaskState) -> TaskState:
        """Return the Failed state of a task whose attempt the deadline stopped."""
        return TaskState(
            phase="Failed",
            attempts=state.attempts,
            job=state.job,
            start_time=state.start_time,
            finish_time=self.now,
            reason="DeadlineExceeded",
            message=f"stopped: {self._deadline_why()}",
        )

    def _past_deadline(self, fact: AttemptFact) -> bool:
        """Return whether a succeeded attempt ended too late to count: the deadline stopped its task.

        Final stays final: the plan at the deadline Failed the task and stopped its Job. If the Job
        succeeds anyway (it finished before the stop reached it), a reconcile reading a status from
        before the deadline must decide the same, so an attempt that ended at or after the deadline, or
        whose Job the operator asked to stop, is not a success once the deadline has passed.
        """
        deadline_at = self._deadline_at()
        if deadline_at is None or self.now < deadline_at:
            return False
        return fact.stopping or fact.finish_time is None or fact.finish_time >= deadline_at

    def _halt(self) -> str | None:
        """Apply the deadline or FailFast to unfinished tasks; return which stopped the TaskJob, or None."""
        unfinished = [n for n in self.graph.order if self.states[n].phase not in TERMINAL_TASK_PHASES]
        if not unfinished:
            return None
        deadline = self.spec.active_deadline_seconds
        deadline_at = self._deadline_at()
        if deadline is not None and deadline_at is not None and self.now >= deadline_at:
            why = self._deadline_why()
            held: set[str] = set()  # ended in time, awaiting the pod's verdict, and the tasks waiting on them
            for name in unfinished:  # in dependency order
                state = self.states[name]
                if state.phase == "Running":
                    if self._ended_before(name, deadline_at):
                        held.add(name)
                        continue  # its Job ended in time: its pod's verdict decides, as any later read would
                    self._set(name, self._deadline_failed(state))
                elif state.phase == "Waiting" and not held.isdisjoint(self.graph.deps[name]):
                    # A later read sees the verdict and decides this task by its dependencies' ends, which came
                    # before the deadline (its condition may skip it): the plan at the deadline must agree.
                    held.add(name)
                else:
                    verb = "not retried" if state.phase == "Retrying" else "not started"
                    self._set(name, self._skipped("DeadlineExceeded", f"{verb}: {why}", state))
            return "deadline"
        if self.spec.failure_policy != "ContinueIndependent":
            culprit = self._first_failed(main_only=True)
            if culprit is None:
                return None
            for name in unfinished:
                state = self.states[name]
                if state.phase != "Running" and name not in self.flow.final_set:  # finally tasks run anyway
                    verb = "not retried" if state.phase == "Retrying" else "not started"
                    self._set(name, self._skipped("FailFast", f"{verb}: task {culprit} failed", state))
            return "failfast"
        return None

    def _create(self, final_only: bool = False) -> list[CreateJob]:
        """Start the best candidates (Ready tasks, Retrying ones due) within parallelism; return the creates.

        `final_only`: only finally tasks may start (FailFast stopped the others).
        """
        due = sorted(self.shape.ready_key(n) for n in self.due)
        limit = self.spec.parallelism
        room = None if limit is None else max(0, limit - self.phases.get("Running", 0))
        candidates = heapq.merge(self.ready, due)
        if final_only:
            final = self.flow.final_set
            candidates = (key for key in candidates if key[2] in final)
        chosen = [name for _, _, name in islice(candidates, room)]
        creates: list[CreateJob] = []
        for name in chosen:
            old = self.states[name]
            attempt = (old.attempts or 0) + 1
            self.replaced[name] = old
            self._set(name, TaskState(
                phase="Running",
                attempts=attempt,
                job=self._running_job(name, attempt, job_name(self.meta.name, name, attempt)),
                start_time=old.start_time or self.now,
                attempt_start_time=self.now if attempt > 1 else None,
                retry_base=old.retry_base,
            ))  # fmt: skip
            creates.append(CreateJob(task=name, attempt=attempt))
        return creates

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
        if name in self.shape.joins:
            return f"task {name} succeeded: {state.message}"
        return f"task {name} succeeded on attempt {state.attempts or 1}"

    def _retrying_text(self, name: str, state: TaskState) -> str:
        retry = self.task(name).retry
        attempt = state.attempts or 1
        delay = _seconds(retry_delay(retry, attempt, self.bases.get(name, 0)))
        upcoming = f"attempt {attempt + 1} of {max_attempts(retry) + self.bases.get(name, 0)}"
        return cut(f"task {name}: {state.message}; retrying in {delay} ({upcoming})")
