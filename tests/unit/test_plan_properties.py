"""Properties of the plan over random DAGs, settings and attempt outcomes, driven to the end by plansim."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plansim import T0, Outcome, Run, scripted, simulate
from replancheck import Incremental

from taskjobs.core.backoff import is_non_retriable, max_attempts, retry_delay
from taskjobs.core.models import TERMINAL_PHASES, TaskJobSpec
from taskjobs.core.naming import job_name
from taskjobs.core.plan import plan
from taskjobs.core.resolve import resolve_tasks

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# From reliable (every attempt succeeds) to broken; a single bad attempt is rare enough in the first
# two that large DAGs often run to success, and common in the last.
EXIT_CODES = ([0], [0, 0, 0, 0, 0, 0, 0, 1], [0, 1, 2])
STARTUPS = ([0, 1, 2], [0, 1, 2, 5, 5, 5, 5, math.inf], [0, 5, math.inf])


def outcomes(flakiness: int) -> st.SearchStrategy[Outcome]:
    """Return attempt outcomes: exit codes 1 (retriable) and 2 (not), pods that never start."""
    return st.builds(
        Outcome,
        exit_code=st.sampled_from(EXIT_CODES[flakiness]),
        duration=st.integers(1, 30),
        startup=st.sampled_from(STARTUPS[flakiness]),
        waiting_reason=st.just("ImagePullBackOff"),
        pod_lag=st.sampled_from([0, 0, 0, 2, 30]),  # the pod watch behind the Job watch (bug 7)
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[TaskJobSpec, dict[str, list[Outcome]], list[tuple[float, dict[str, Any]]]]:
    """Return a random valid TaskJob, each task's attempt outcomes, and suspend/resume changes."""
    n = draw(st.integers(1, 30))
    flakiness = draw(st.integers(0, 2))
    names = [f"t{i}" for i in range(n)]
    tasks = []
    script: dict[str, list[Outcome]] = {}
    for i in draw(st.permutations(range(n))):  # spec order need not be topological
        limit = draw(st.integers(0, 3))
        deps = draw(st.lists(st.sampled_from(names[:i]), max_size=3, unique=True)) if i else []
        tasks.append(
            {
                "name": names[i],
                "dependsOn": deps or None,
                "priority": draw(st.integers(-1, 2)),
                "startupTimeoutSeconds": draw(st.integers(5, 60)),
                "retry": {
                    "limit": limit,
                    "nonRetriableExitCodes": [2],
                    "backoff": {
                        "delaySeconds": draw(st.integers(0, 20)),
                        "factor": draw(st.sampled_from([1, 2, 3])),
                        "maxDelaySeconds": draw(st.integers(0, 60)),
                    },
                },
            }
        )
        script[names[i]] = draw(st.lists(outcomes(flakiness), min_size=limit + 1, max_size=limit + 1))
    spec = TaskJobSpec.model_validate(
        {
            "tasks": tasks,
            "parallelism": draw(st.none() | st.integers(1, 4)),
            "failurePolicy": draw(st.sampled_from([None, "FailFast", "ContinueIndependent"])),
            "activeDeadlineSeconds": draw(st.none() | st.integers(10, 600)),
            "ttlSecondsAfterFinished": draw(st.none() | st.integers(0, 100)),
            "suspend": draw(st.sampled_from([None, False, True])),
        }
    )
    changes: list[tuple[float, dict[str, Any]]] = []
    suspended = bool(spec.suspend)
    t = 0
    for _ in range(draw(st.integers(0, 3))):
        t += draw(st.integers(1, 120))
        suspended = not suspended
        changes.append((t, {"suspend": suspended}))
    if suspended:
        changes.append((t + draw(st.integers(1, 120)), {"suspend": False}))  # always resumed in the end
    return spec, script, changes


def check(run: Run, *, deletions: bool) -> None:
    """Assert every property a run must have."""
    jobs = run.cluster.jobs
    assert not run.stuck, f"stuck in {run.status}"
    assert run.cluster.duplicates == [], "a (task, attempt) was created twice"
    final_phase: str | None = None
    failed_for_good = False
    for step in run.steps:
        tasks = resolve_tasks(step.spec)
        # A success whose pod's verdict (output) has not been seen yet does not count (awaiting_pod), nor,
        # once the deadline has passed, one that ended at or after it (plan.py's rule: final stays final).
        deadline = step.spec.active_deadline_seconds
        deadline_at = T0 + timedelta(seconds=deadline) if deadline is not None else None
        succeeded = {
            f.task
            for f in step.truth
            if f.phase == "Succeeded"
            and not f.awaiting_pod
            and not (
                deadline_at is not None
                and step.now >= deadline_at
                and (f.finish_time is None or f.finish_time >= deadline_at)
            )
        }
        # Idempotence: the same inputs give the same plan (an incremental planner's steps are compared
        # with plan's by test_incremental itself).
        if step.plan.changed is None:
            assert plan(run.meta, step.spec, step.status_in, step.facts, step.now) == step.plan
        if step.kind == "echo":  # re-planning at the same instant from the status just written
            assert (step.plan.create, step.plan.events) == ((), ())
        if final_phase is not None or failed_for_good or step.spec.suspend:
            assert step.plan.create == (), f"created after the end, after a FailFast failure or while suspended: {step}"
        for c in step.plan.create:
            task = tasks[c.task]
            assert c.attempt <= max_attempts(task.retry)
            assert set(task.depends_on) <= succeeded, f"{c.task} started before its dependencies succeeded"
            if c.attempt == 1:
                assert not any(j.task == c.task and j.created < step.now for j in jobs.values())
            else:
                before = jobs[job_name(run.meta.name, c.task, c.attempt - 1)]
                assert not before.active(step.now), f"{c.task} attempt {c.attempt} started while the last one ran"
                if before.deleted_at is None:
                    assert before.end is not None
                    assert step.now >= before.end + timedelta(seconds=retry_delay(task.retry, c.attempt - 1))
                    assert before.stopped or not is_non_retriable(task.retry, before.outcome.exit_code), (
                        f"{c.task} retried after a non-retriable exit code"
                    )
        if step.spec.parallelism is not None:
            active = sum(1 for f in step.after if f.phase in ("Pending", "Running"))
            assert active <= step.spec.parallelism
        states = step.plan.status.tasks or {}
        assert all((s.attempts or 0) <= max_attempts(tasks[name].retry) for name, s in states.items())
        if not deletions:
            assert all(s.reason != "JobLost" for s in states.values())
        if step.spec.failure_policy != "ContinueIndependent" and any(s.phase == "Failed" for s in states.values()):
            assert step.plan.create == ()
            failed_for_good = True
        phase = step.plan.status.phase
        if final_phase is None and phase in TERMINAL_PHASES:
            final_phase = phase
            # Succeeded exactly when every task had succeeded by then.
            assert (phase == "Succeeded") == (succeeded == set(tasks)), (phase, succeeded)
        elif final_phase is not None:
            assert phase == final_phase, "a final TaskJob changed phase"
    assert final_phase is not None, "the TaskJob never finished"


# "incremental" plans as the operator does (replan from the last plan's memory) and asserts at every
# step that plan's full pass would have done the same (replancheck.Incremental).
PLANNERS = pytest.mark.parametrize("planner", ["full", "incremental"])


def planner_of(name: str) -> Incremental | None:
    return Incremental() if name == "incremental" else None


@PLANNERS
@SETTINGS
@given(
    scenarios(),
    st.sampled_from([0.0, 0.0, 3.0, 10.0]),
    st.lists(st.integers(1, 200), max_size=2),
    st.integers(0, 2**16),
)
def test_random_runs_keep_every_promise_despite_watch_lag_and_deleted_jobs(
    planner: str,
    scenario: tuple[TaskJobSpec, dict[str, list[Outcome]], list[tuple[float, dict[str, Any]]]],
    lag: float,
    deletions: list[int],
    seed: int,
) -> None:
    spec, script, changes = scenario
    run = simulate(
        spec,
        scripted(script),
        lag=lag,
        spec_changes=changes,
        deletions=deletions,
        seed=seed,
        planner=planner_of(planner),
    )
    check(run, deletions=bool(deletions))


@PLANNERS
@SETTINGS
@given(scenarios(), st.integers(0, 2**16))
def test_random_runs_keep_every_promise_when_reconciles_read_stale_statuses(
    planner: str,
    scenario: tuple[TaskJobSpec, dict[str, list[Outcome]], list[tuple[float, dict[str, Any]]]],
    seed: int,
) -> None:
    spec, script, changes = scenario
    run = simulate(spec, scripted(script), stale_rate=0.3, spec_changes=changes, seed=seed, planner=planner_of(planner))
    check(run, deletions=False)


def test_the_simulator_reaches_the_end_of_a_plain_diamond() -> None:
    spec = TaskJobSpec.model_validate(
        {
            "tasks": [
                {"name": "a"},
                {"name": "b", "dependsOn": ["a"]},
                {"name": "c", "dependsOn": ["a"]},
                {"name": "d", "dependsOn": ["b", "c"]},
            ]
        }
    )
    run = simulate(spec, scripted({"b": [Outcome(exit_code=1)]}))
    check(run, deletions=False)
    assert run.status is not None and run.status.phase == "Succeeded"
    starts = {(j.task, j.attempt): (j.created - T0).total_seconds() for j in run.cluster.jobs.values()}
    # a runs 1+5 s; b fails at 12 and retries 10 s later; d starts when b's retry succeeds at 28.
    assert starts == {("a", 1): 0, ("b", 1): 6, ("c", 1): 6, ("b", 2): 22, ("d", 1): 28}
