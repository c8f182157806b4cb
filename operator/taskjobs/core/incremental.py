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
`replan` plans without the memory, deciding every task. Both are the one decision path of
`plan.Planner`, fed all tasks or only the changed ones; either way the plan is the same as `plan` would
give for the status the API server holds: tests/unit/test_plan_properties.py drives both through random
runs and compares every step.

The memory's status is "settled": its timestamps are cut to whole seconds as the API server stores
them, so it equals the status the next full plan would read back.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime

from .actions import Plan, RetryRequest
from .facts import AttemptFact
from .models import TERMINAL_PHASES, Condition, TaskJobMeta, TaskJobSpec, TaskJobStatus, TaskState
from .plan import Memory, Planner, volatile


def replan(
    meta: TaskJobMeta,
    spec: TaskJobSpec,
    memory: Memory | None,
    status: TaskJobStatus | None,
    facts: Mapping[str, AttemptFact],
    now: datetime,
    retry: RetryRequest | None = None,
    changed_jobs: Collection[str] | None = None,
    outputs: Mapping[str, str] | None = None,
) -> tuple[Plan, Memory]:
    """Return the plan for the facts (by Job name) and the memory for the next call.

    With a memory, `status` is ignored: the memory's status is the previous status (the caller passes a
    memory only when the status it holds is the one the memory's plan produced). `changed_jobs`, if
    given, names every Job whose fact may differ from the memory's (else all are compared). `facts` must
    not be changed after the call: the memory keeps it. `outputs`: the task outputs recorded so far,
    which `when` conditions and fan-out tasks read (core/fanout.py).
    """
    shape = None
    if memory is not None:
        if _fits(memory, meta, spec, retry):
            planner = Planner(meta, spec, now, shape=memory.shape, memory=memory, outputs=outputs)
            result = planner.run(facts, changed_jobs=changed_jobs)
            if result is not None:
                return result, remember(planner, result, facts)
        status, shape = memory.status, memory.shape  # the planner takes the shape only if it is of this spec
    planner = Planner(meta, spec, now, status, shape, outputs=outputs)
    result = planner.run(facts, retry)
    assert result is not None  # only a planner with a memory gives up
    return result, remember(planner, result, facts)


def _fits(memory: Memory, meta: TaskJobMeta, spec: TaskJobSpec, retry: RetryRequest | None) -> bool:
    """Return whether the memory may stand in for deciding every task (the TaskJob-wide rules are not run)."""
    status = memory.status
    if memory.shape.spec is not spec or memory.uid != meta.uid or memory.generation != meta.generation:
        return False
    if status.phase in TERMINAL_PHASES or status.start_time is None:
        return False
    return retry is None or retry.nonce == status.observed_retry


def remember(planner: Planner, result: Plan, facts: Mapping[str, AttemptFact]) -> Memory:
    """Return the memory a plan leaves for the next one."""
    states = result.status.tasks or {}
    touched = planner.touched
    jobs_of = planner.jobs_of
    if planner.memory is None:  # a plan without a memory does not need them by task: group them now
        grouped: dict[str, list[str]] = {}
        for job, fact in facts.items():
            grouped.setdefault(fact.task, []).append(job)
        jobs_of = {task: tuple(jobs) for task, jobs in grouped.items()}
    return Memory(
        uid=planner.meta.uid,
        generation=planner.meta.generation,
        shape=planner.shape,
        status=settle(result.status, None if planner.memory is None else touched),
        facts=facts,
        jobs_of=jobs_of,
        latest=planner.latest,
        first_seen=planner.first_seen,
        bases=planner.bases,
        volatile=frozenset(n for n in touched if volatile(states[n], planner.latest.get(n))),
        ready=tuple(planner.ready),
        finished_stops=planner.finished_stops,
        phases=+planner.phases,
        started=planner.started,
        join_phases={name: +count for name, count in planner.join_phases.items()},
    )


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
