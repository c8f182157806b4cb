"""Plan again after a change, deciding only the tasks the change touches.

`plan` decides every task on every call: O(tasks). At 10,000 tasks that is about 0.1 s of CPU for each
Job that finishes. The operator keeps the `Memory` of a TaskJob's last plan and calls `replan`, which
decides again only

- the tasks whose Jobs changed (an unchanged Job keeps the very same AttemptFact object in the store),
- the tasks whose state the clock alone can change ("volatile": Retrying, a pod not started yet, a Job
  created but not seen yet), and
- the dependents of a task whose phase changed, transitively;

every other task keeps its state. When a TaskJob-wide rule would touch every task (the deadline passed,
a FailFast failure, a manual retry), when the TaskJob is final, or when the memory is not of this spec,
`replan` runs plan's full pass instead. Either way the plan is the same as `plan` would give for the
status the API server holds: tests/unit/test_incremental.py drives both through random runs and
compares every step.

The memory's status is "settled": its timestamps are cut to whole seconds as the API server stores
them, so it equals the status the next full plan would read back.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import islice

from .actions import CreateJob, Plan, RetryRequest, StopJob
from .facts import AttemptFact
from .models import TERMINAL_PHASES, Condition, TaskJobMeta, TaskJobSpec, TaskJobStatus, TaskState
from .plan import SpecShape, _Planner
from .status import count_phases

ReadyKey = tuple[int, int, str]  # (-priority, topological position, task): the order tasks start in


@dataclass(frozen=True)
class Memory:
    """What one plan of a TaskJob leaves for the next: enough to decide only what changed."""

    uid: str | None
    generation: int | None
    shape: SpecShape
    status: TaskJobStatus  # settled: as the API server stores it
    facts: Mapping[str, AttemptFact]  # by Job name, as this plan saw them
    jobs_of: Mapping[str, tuple[str, ...]]  # task -> names of its Jobs
    latest: Mapping[str, AttemptFact]  # task -> its latest attempt (after any manual-retry base)
    first_seen: Mapping[str, datetime]  # task -> when its attempt 1 began
    bases: Mapping[str, int]  # task -> attempts before its manual retry
    volatile: frozenset[str]
    ready: tuple[ReadyKey, ...]  # Ready tasks, sorted
    finished_stops: Mapping[str, StopJob]  # task -> stop for its Job that runs though the task is final
    phases: Mapping[str, int]  # number of tasks in each phase
    started: bool


def replan(
    meta: TaskJobMeta,
    spec: TaskJobSpec,
    memory: Memory | None,
    status: TaskJobStatus | None,
    facts: Mapping[str, AttemptFact],
    now: datetime,
    retry: RetryRequest | None = None,
    changed_jobs: Collection[str] | None = None,
) -> tuple[Plan, Memory]:
    """Return the plan for the facts (by Job name) and the memory for the next call.

    With a memory, `status` is ignored: the memory's status is the previous status (the caller passes a
    memory only when the status it holds is the one the memory's plan produced). `changed_jobs`, if
    given, names every Job whose fact may differ from the memory's (else all are compared). `facts` must
    not be changed after the call: the memory keeps it.
    """
    shape = None
    if memory is not None:
        if _fits(memory, meta, spec, retry):
            delta = _Delta(meta, spec, memory, now)
            result = delta.run_delta(facts, changed_jobs)
            if result is not None:
                return result, delta.remember(result, facts)
        status, shape = memory.status, memory.shape  # the planner takes the shape only if it is of this spec
    planner = _Planner(meta, spec, status, now, shape)
    result = planner.run(facts.values(), retry)
    return result, _remember(planner, result, facts)


def _fits(memory: Memory, meta: TaskJobMeta, spec: TaskJobSpec, retry: RetryRequest | None) -> bool:
    """Return whether the memory may stand in for a full pass (the TaskJob-wide rules are run_delta's)."""
    status = memory.status
    if memory.shape.spec is not spec or memory.uid != meta.uid or memory.generation != meta.generation:
        return False
    if status.phase in TERMINAL_PHASES or status.start_time is None:
        return False
    return retry is None or retry.nonce == status.observed_retry


def _volatile(state: TaskState, fact: AttemptFact | None) -> bool:
    """Return whether the clock alone can change the task's state, so every plan decides it again."""
    if state.phase == "Retrying":
        return True
    if state.phase != "Running":
        return False
    return fact is None or fact.phase != "Running" or fact.attempt < (state.attempts or 0)


def _ready_key(planner: _Planner, name: str) -> ReadyKey:
    return (-planner.task(name).priority, planner.shape.position[name], name)


# ---------------------------------------------------------------------- settling timestamps


def _whole(value: datetime | None) -> datetime | None:
    return value.replace(microsecond=0) if value is not None and value.microsecond else value


def _settle_state(state: TaskState) -> TaskState:
    update = {
        field: _whole(value)
        for field in ("start_time", "attempt_start_time", "finish_time", "next_retry_time")
        if (value := getattr(state, field)) is not None and value.microsecond
    }
    return state.model_copy(update=update) if update else state


def _settle_condition(condition: Condition) -> Condition:
    when = condition.last_transition_time
    return condition.model_copy(update={"last_transition_time": _whole(when)}) if when.microsecond else condition


def settle(status: TaskJobStatus, tasks: Iterable[str] | None = None) -> TaskJobStatus:
    """Return the status with timestamps cut to whole seconds, as written; only `tasks` (None: all) are looked at."""
    states = dict(status.tasks or {})
    for name in states if tasks is None else tasks:
        states[name] = _settle_state(states[name])
    return status.model_copy(
        update={
            "start_time": _whole(status.start_time),
            "completion_time": _whole(status.completion_time),
            "conditions": [_settle_condition(c) for c in status.conditions] if status.conditions else status.conditions,
            "tasks": states if status.tasks is not None else None,
        }
    )


# ---------------------------------------------------------------------- the full pass's memory


def _remember(planner: _Planner, result: Plan, facts: Mapping[str, AttemptFact]) -> Memory:
    """Return the memory of a full pass."""
    states = result.status.tasks or {}
    jobs_of: dict[str, list[str]] = {}
    for job, fact in facts.items():
        jobs_of.setdefault(fact.task, []).append(job)
    stops = {n: s for n in planner.latest if (s := planner._finished_stop(n)) is not None}
    return Memory(
        uid=planner.meta.uid,
        generation=planner.meta.generation,
        shape=planner.shape,
        status=settle(result.status),
        facts=facts,
        jobs_of={t: tuple(j) for t, j in jobs_of.items()},
        latest=dict(planner.latest),
        first_seen=dict(planner.first_seen),
        bases=dict(planner.bases),
        volatile=frozenset(n for n, s in states.items() if _volatile(s, planner.latest.get(n))),
        ready=tuple(sorted(_ready_key(planner, n) for n, s in states.items() if s.phase == "Ready")),
        finished_stops=stops,
        phases=Counter(s.phase for s in states.values()),
        started=bool(result.create) or any(s.attempts for s in states.values()),
    )


# ---------------------------------------------------------------------- the incremental pass


class _Delta(_Planner):
    """A plan that starts from a memory and decides only the tasks a change touches."""

    def __init__(self, meta: TaskJobMeta, spec: TaskJobSpec, memory: Memory, now: datetime) -> None:
        super().__init__(meta, spec, None, now, memory.shape)
        self.memory = memory
        self.prev = memory.status
        self.prev_tasks = memory.status.tasks or {}
        self.bases = dict(memory.bases)
        self.start_time = memory.status.start_time or now
        self.touched: list[str] = []
        self.jobs_of: dict[str, tuple[str, ...]] = {}
        self.phases: Counter[str] = Counter()
        self.ready: list[ReadyKey] = []
        self.finished_stops: dict[str, StopJob] = {}
        self.started = memory.started
        self._changed: set[str] = set()

    def run_delta(self, facts: Mapping[str, AttemptFact], changed_jobs: Collection[str] | None) -> Plan | None:
        """Return the plan, or None when a TaskJob-wide rule needs the full pass."""
        memory = self.memory
        deadline_at = self._deadline_at()
        if deadline_at is not None and self.now >= deadline_at:
            return None  # the deadline ends every unfinished task: the full pass does that
        self.states = dict(self.prev_tasks)
        self.latest = dict(memory.latest)
        self.first_seen = dict(memory.first_seen)
        self.jobs_of = dict(memory.jobs_of)
        before: dict[str, TaskState] = {}

        for name in self._changed_tasks(facts, changed_jobs):
            self._index_task(name, facts)
        dirty = self._changed | set(memory.volatile)
        position = self.shape.position
        heap = [(position[n], n) for n in dirty]
        heapq.heapify(heap)
        while heap:
            _, name = heapq.heappop(heap)
            old = self.states[name]
            new = self._decide_based(name)
            self.states[name] = new
            before[name] = old
            if new.phase != old.phase:
                for dependent in self.graph.dependents[name]:
                    if dependent not in dirty:
                        dirty.add(dependent)
                        heapq.heappush(heap, (position[dependent], dependent))

        self.phases = Counter(memory.phases)
        for name, old in before.items():
            self.phases[old.phase] -= 1
            self.phases[self.states[name].phase] += 1
        if self.phases.get("Failed") and self.spec.failure_policy != "ContinueIndependent":
            return None  # FailFast: every unfinished task is skipped; the full pass does that

        self.ready = list(memory.ready)
        for name, old in before.items():
            self._move_ready(name, old.phase, self.states[name].phase)
        creates = [] if self.spec.suspend else self._create_delta()

        touched = set(before) | {c.task for c in creates}
        self.touched = sorted(touched, key=position.__getitem__)
        self.finished_stops = dict(memory.finished_stops)
        for name in self.touched:
            stop = self._finished_stop(name)
            if stop is None:
                self.finished_stops.pop(name, None)
            else:
                self.finished_stops[name] = stop
        for stop in self.finished_stops.values():
            self.stops[stop.job_name] = stop

        self.started = memory.started or bool(creates) or any(self.states[n].attempts for n in before)
        return self._conclude(
            self.memory.status.observed_retry,
            None,
            creates,
            count_phases(self.phases),
            self.started,
            self.touched,
            changed=frozenset(touched),
        )

    def _changed_tasks(self, facts: Mapping[str, AttemptFact], changed_jobs: Collection[str] | None) -> set[str]:
        """Return the tasks whose Jobs changed since the memory; note new and gone Jobs per task."""
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
        self._changed = {t for t in changed if t in self.specs}
        return self._changed

    def _index_task(self, name: str, facts: Mapping[str, AttemptFact]) -> None:
        """Find a task's latest attempt and when its first began, as plan's _index does for all tasks."""
        base = self.bases.get(name, 0)
        latest: AttemptFact | None = None
        first: datetime | None = None
        for job in self.jobs_of.get(name, ()):
            fact = facts[job]
            if fact.attempt <= base:
                continue
            if latest is None or fact.attempt >= latest.attempt:
                latest = fact
            began = fact.created or fact.start_time
            if began is not None and fact.attempt == 1:
                first = began
        if latest is None:
            self.latest.pop(name, None)
        else:
            self.latest[name] = latest
        if first is None:
            self.first_seen.pop(name, None)
        else:
            self.first_seen[name] = first

    def _move_ready(self, name: str, was: str, now: str) -> None:
        if was == now or "Ready" not in (was, now):
            return
        key = _ready_key(self, name)
        if now == "Ready":
            insort(self.ready, key)
        else:
            i = bisect_left(self.ready, key)
            if i < len(self.ready) and self.ready[i] == key:
                del self.ready[i]

    def _create_delta(self) -> list[CreateJob]:
        """Start the best Ready and due tasks within parallelism, as plan's _create does."""
        due = sorted(_ready_key(self, n) for n in self.due)
        limit = self.spec.parallelism
        room = None if limit is None else max(0, limit - self.phases.get("Running", 0))
        chosen = [name for _, _, name in islice(heapq.merge(self.ready, due), room)]
        creates = self._launch(chosen)
        for name in chosen:
            was = self.replaced[name].phase
            self._move_ready(name, was, "Running")
            self.phases[was] -= 1
            self.phases["Running"] += 1
        return creates

    def remember(self, result: Plan, facts: Mapping[str, AttemptFact]) -> Memory:
        """Return the memory of this incremental pass."""
        states = result.status.tasks or {}
        return Memory(
            uid=self.meta.uid,
            generation=self.meta.generation,
            shape=self.shape,
            status=settle(result.status, self.touched),
            facts=facts,
            jobs_of=self.jobs_of,
            latest=self.latest,
            first_seen=self.first_seen,
            bases=self.bases,
            volatile=frozenset(n for n in self.touched if _volatile(states[n], self.latest.get(n))),
            ready=tuple(self.ready),
            finished_stops=self.finished_stops,
            phases=+self.phases,
            started=self.started,
        )
