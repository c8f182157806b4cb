"""The plan, rule by rule: each test gives a spec, the last status and the observed Jobs at a time."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskjobs.core.actions import CreateJob, Plan, RetryRequest, StopJob
from taskjobs.core.facts import AttemptFact, AttemptPhase
from taskjobs.core.models import MAX_MESSAGE, TaskJobMeta, TaskJobSpec, TaskJobStatus, TaskSpec, TaskState, dump_status
from taskjobs.core.plan import COMPACT_TASKS, GRACE_SECONDS, plan

T0 = datetime(2024, 1, 1, tzinfo=UTC)
META = TaskJobMeta(name="tj", generation=3)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def task(name: str, *deps: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, **({"dependsOn": list(deps)} if deps else {}), **fields}


def make_spec(*tasks: dict[str, Any] | TaskSpec, **fields: Any) -> TaskJobSpec:
    return TaskJobSpec.model_validate({"tasks": list(tasks), **fields})


Tasks = list[tuple[str, list[str]]]
DIAMOND: Tasks = [("extract", []), ("left", ["extract"]), ("right", ["extract"]), ("load", ["left", "right"])]
# Two independent chains and a task depending on both ends.
TWO_CHAINS: Tasks = [("a1", []), ("b1", []), ("a2", ["a1"]), ("b2", ["b1"]), ("join", ["a2", "b2"])]


@pytest.mark.parametrize(
    ("tasks", "succeeded", "expected"),
    [
        pytest.param(DIAMOND, [], ["extract"], id="diamond: only the root"),
        pytest.param(DIAMOND, ["extract"], ["left", "right"], id="diamond: both middles after the root"),
        pytest.param(DIAMOND, ["extract", "left"], ["right"], id="diamond: sink waits for both middles"),
        pytest.param(DIAMOND, ["extract", "left", "right"], ["load"], id="diamond: sink last"),
        pytest.param(DIAMOND, ["extract", "left", "right", "load"], [], id="diamond: nothing after all done"),
        pytest.param(TWO_CHAINS, [], ["a1", "b1"], id="independent roots together"),
        pytest.param(TWO_CHAINS, ["a1"], ["b1", "a2"], id="topological order, not spec order"),
        pytest.param(TWO_CHAINS, ["a1", "a2", "b1", "b2"], ["join"], id="join after both chains"),
        pytest.param([("solo", [])], [], ["solo"], id="single task"),
        pytest.param(DIAMOND, ["ghost"], ["extract"], id="unknown names in the done set are ignored"),
    ],
)
def test_the_tasks_started_are_those_whose_dependencies_all_succeeded(
    tasks: Tasks, succeeded: list[str], expected: list[str]
) -> None:
    spec = make_spec(*(task(name, *deps) for name, deps in tasks))
    done = {name: TaskState(phase="Succeeded", attempts=1) for name in succeeded}
    status = TaskJobStatus(phase="Running", start_time=T0, tasks=done) if done else None
    assert [c.task for c in plan(META, spec, status, [], at(1)).create] == expected


def fact(
    name: str,
    attempt: int,
    phase: AttemptPhase,
    *,
    created: float = 0,
    finished: float | None = None,
    exit_code: int | None = None,
    **extra: Any,
) -> AttemptFact:
    if finished is None and phase in ("Succeeded", "Failed"):
        finished = created + 5
    if exit_code is None and phase in ("Succeeded", "Failed"):
        exit_code = 0 if phase == "Succeeded" else 1
    return AttemptFact(
        task=name,
        attempt=attempt,
        job_name=f"tj-{name}-{attempt}",
        phase=phase,
        created=at(created),
        finish_time=at(finished) if finished is not None else None,
        exit_code=exit_code,
        **extra,
    )


def written(status: TaskJobStatus) -> TaskJobStatus:
    """Return the status as read back from the API server (camelCase JSON, whole seconds)."""
    return TaskJobStatus.model_validate(dump_status(status))


def run(
    spec: TaskJobSpec, facts: Sequence[AttemptFact] = (), now: float = 0, status: TaskJobStatus | None = None
) -> Plan:
    return plan(META, spec, status, facts, at(now))


def created(p: Plan) -> list[tuple[str, int]]:
    return [(c.task, c.attempt) for c in p.create]


def phases(p: Plan) -> dict[str, str]:
    return {name: s.phase for name, s in (p.status.tasks or {}).items()}


def events(p: Plan) -> list[tuple[str, str]]:
    return [(e.reason, e.message) for e in p.events]


DIAMOND = make_spec(task("a"), task("b", "a"), task("c", "a"), task("d", "b", "c"))


# ---------------------------------------------------------------- the ready set


@pytest.mark.parametrize(
    ("succeeded", "running", "expected"),
    [
        ((), (), [("a", 1)]),
        (("a",), (), [("b", 1), ("c", 1)]),
        (("a", "b"), ("c",), []),
        (("a", "b", "c"), (), [("d", 1)]),
        (("a", "b", "c", "d"), (), []),
    ],
)
def test_a_task_starts_once_all_its_dependencies_succeeded(
    succeeded: tuple[str, ...], running: tuple[str, ...], expected: list[tuple[str, int]]
) -> None:
    facts = [fact(t, 1, "Succeeded") for t in succeeded] + [fact(t, 1, "Running") for t in running]
    assert created(run(DIAMOND, facts, now=10)) == expected


def test_first_plan_starts_the_root_and_records_it_as_running() -> None:
    p = run(DIAMOND)
    assert p.create == (CreateJob(task="a", attempt=1),)
    assert dump_status(p.status)["tasks"] == {
        "a": {"phase": "Running", "attempts": 1, "job": "tj-a-1", "startTime": "2024-01-01T00:00:00Z"},
        "b": {"phase": "Waiting"},
        "c": {"phase": "Waiting"},
        "d": {"phase": "Waiting"},
    }
    assert (p.status.phase, p.status.progress, p.status.running, p.status.pending) == ("Running", "0/4", 1, 3)
    assert p.status.observed_generation == 3
    assert events(p) == [("TaskStarted", "task a: started attempt 1 of 4 as Job tj-a-1")]


def test_a_task_whose_dependencies_succeeded_but_cannot_start_yet_is_ready() -> None:
    p = run(DIAMOND, [fact("a", 1, "Succeeded")], now=10, status=written(run(DIAMOND).status))
    assert phases(p)["d"] == "Waiting"
    suspended = run(make_spec(*DIAMOND.tasks, suspend=True), [fact("a", 1, "Succeeded")], now=10)
    assert phases(suspended) == {"a": "Succeeded", "b": "Ready", "c": "Ready", "d": "Waiting"}


# ---------------------------------------------------------------- parallelism and priority

WIDE = [task("a"), task("b", priority=5), task("c", priority=5), task("d", priority=10), task("e")]


@pytest.mark.parametrize(
    ("parallelism", "running", "expected"),
    [
        (2, (), ["d", "b"]),  # highest priority first, then spec order among equals
        (3, (), ["d", "b", "c"]),
        (2, ("d",), ["b"]),  # a running task takes a slot
        (1, ("d",), []),
        (None, (), ["d", "b", "c", "a", "e"]),  # no limit
    ],
)
def test_parallelism_bounds_running_plus_created_and_priority_picks(
    parallelism: int | None, running: tuple[str, ...], expected: list[str]
) -> None:
    spec = make_spec(*WIDE, parallelism=parallelism)
    p = run(spec, [fact(t, 1, "Pending") for t in running], now=1)
    assert [c.task for c in p.create] == expected


def test_a_due_retry_competes_with_ready_tasks_by_priority() -> None:
    spec = make_spec(task("low"), task("high", priority=1), task("flaky", priority=2), parallelism=1)
    facts = [fact("flaky", 1, "Failed", created=0, finished=5)]
    assert created(run(spec, facts, now=15)) == [("flaky", 2)]
    spec_low = make_spec(task("low"), task("high", priority=1), task("flaky", priority=-1), parallelism=1)
    assert created(run(spec_low, facts, now=15)) == [("high", 1)]


# ---------------------------------------------------------------- retries


@pytest.mark.parametrize(
    ("failed_attempt", "wait"),
    [(1, 10), (2, 20), (3, 40), (4, 45)],  # 10 s doubling, capped at 45 s
)
def test_a_failed_attempt_retries_after_the_exponential_delay(failed_attempt: int, wait: float) -> None:
    backoff = {"delaySeconds": 10, "factor": 2, "maxDelaySeconds": 45}
    spec = make_spec(task("a", retry={"limit": 5, "backoff": backoff}))
    facts = [fact("a", n, "Failed", created=100 * n) for n in range(1, failed_attempt + 1)]
    failed_at = 100 * failed_attempt + 5

    waiting = run(spec, facts, now=failed_at + 1)
    state = (waiting.status.tasks or {})["a"]
    assert (state.phase, state.attempts, state.next_retry_time) == ("Retrying", failed_attempt, at(failed_at + wait))
    assert waiting.create == ()
    assert waiting.requeue_after == wait - 1

    due = run(spec, facts, now=failed_at + wait, status=written(waiting.status))
    assert created(due) == [("a", failed_attempt + 1)]
    assert (due.status.tasks or {})["a"].job == f"tj-a-{failed_attempt + 1}"
    assert [e.reason for e in due.events] == ["TaskStarted"]  # the retry was announced when it was decided


def test_retry_events_say_when_and_which_attempt_comes_next() -> None:
    spec = make_spec(task("load"))
    p = run(spec, [fact("load", 1, "Failed"), fact("load", 2, "Failed", created=20, finished=25)], now=26)
    assert events(p) == [
        (
            "TaskRetrying",
            "task load: attempt 2 of 4 failed: exit code 1; retrying in 20s (attempt 3 of 4)",
        )
    ]


def test_no_wait_after_the_last_attempt_the_task_fails_for_good() -> None:
    spec = make_spec(task("load"), task("report", "load"))
    facts = [fact("load", n, "Failed", created=100 * n) for n in range(1, 5)]
    p = run(spec, facts, now=405)
    load = (p.status.tasks or {})["load"]
    assert (load.phase, load.attempts, load.exit_code, load.finish_time) == ("Failed", 4, 1, at(405))
    assert load.message == "failed after 4 attempts: exit code 1"
    assert load.next_retry_time is None
    assert p.create == ()
    assert (p.status.phase, p.status.message) == ("Failed", "task load failed after 4 attempts: exit code 1")
    assert phases(p)["report"] == "Skipped"
    assert [e.reason for e in p.events] == ["TaskFailed", "Failed"]
    assert p.requeue_after is None


def test_a_non_retriable_exit_code_fails_the_task_at_once() -> None:
    spec = make_spec(task("t", retry={"nonRetriableExitCodes": [2]}))
    state = (run(spec, [fact("t", 1, "Failed", exit_code=2)], now=6).status.tasks or {})["t"]
    assert (state.phase, state.reason, state.attempts) == ("Failed", "NonRetriableExitCode", 1)
    assert state.message == "failed on attempt 1: exit code 2 (not retriable)"
    state = (run(spec, [fact("t", 1, "Failed", exit_code=3)], now=6).status.tasks or {})["t"]
    assert state.phase == "Retrying"


def test_an_attempt_awaiting_its_pods_verdict_runs_on_until_the_pod_shows_it() -> None:
    # The Job failed at 5 s, but the pod with the exit code has not reached the operator (bug 7).
    spec = make_spec(task("t", retry={"nonRetriableExitCodes": [2]}), task("u", "t"))
    awaiting = fact("t", 1, "Failed", exit_code=None, reason="PodFailed", awaiting_pod=True)
    p = run(spec, [awaiting], now=10)
    assert phases(p) == {"t": "Running", "u": "Waiting"}
    assert (p.status.tasks or {})["t"].reason is None
    assert created(p) == [] and p.requeue_after == 85  # the wait ends 90 s after the Job did
    seen = fact("t", 1, "Failed", exit_code=2)
    state = (run(spec, [seen], now=12, status=written(p.status)).status.tasks or {})["t"]
    assert (state.phase, state.reason) == ("Failed", "NonRetriableExitCode")


def test_a_pod_never_seen_is_given_up_on_after_the_wait() -> None:
    spec = make_spec(task("t"), task("u", "t"))
    awaiting = fact("t", 1, "Succeeded", exit_code=None, awaiting_pod=True)
    p = run(spec, [awaiting], now=95)
    assert phases(p) == {"t": "Succeeded", "u": "Running"} and created(p) == [("u", 1)]


def test_a_retry_time_does_not_slide_when_the_job_has_no_finish_time() -> None:
    spec = make_spec(task("t"))
    failed = AttemptFact(task="t", attempt=1, job_name="tj-t-1", phase="Failed", exit_code=1)
    first = run(spec, [failed], now=50)
    later = run(spec, [failed], now=55, status=written(first.status))
    assert (later.status.tasks or {})["t"].next_retry_time == at(60)
    assert created(run(spec, [failed], now=60, status=written(later.status))) == [("t", 2)]


def test_a_zero_delay_retry_starts_in_the_same_reconcile_and_is_announced() -> None:
    spec = make_spec(task("t", retry={"backoff": {"delaySeconds": 0}}))
    p = run(spec, [fact("t", 1, "Failed")], now=5)
    assert created(p) == [("t", 2)]
    assert [e.reason for e in p.events] == ["TaskRetrying", "TaskStarted"]


def test_after_a_manual_retry_the_backoff_starts_again_from_the_first_delay() -> None:
    spec = make_spec(task("t", retry={"limit": 1, "backoff": {"delaySeconds": 10, "factor": 2}}))
    facts = [fact("t", 1, "Failed"), fact("t", 2, "Failed", created=15)]
    failed = run(spec, facts, now=21)
    assert failed.status.phase == "Failed"
    retried = plan(META, spec, written(failed.status), facts, at(30), RetryRequest(nonce="n1"))
    assert created(retried) == [("t", 3)]
    facts.append(fact("t", 3, "Failed", created=30))
    p = plan(META, spec, written(retried.status), facts, at(36), RetryRequest(nonce="n1"))
    assert (p.status.tasks or {})["t"].next_retry_time == at(45)  # 10 s, as after a first attempt
    assert "retrying in 10s (attempt 4 of 4)" in p.events[0].message


# ---------------------------------------------------------------- failure policies


FAILING = [
    task("a", retry={"limit": 0}),
    task("b", "a"),
    task("c"),
    task("e", "c"),
    task("f"),
]


def test_fail_fast_launches_nothing_after_a_permanent_failure_and_lets_running_tasks_finish() -> None:
    spec = make_spec(*FAILING, parallelism=2)
    start = run(spec)
    assert created(start) == [("a", 1), ("c", 1)]

    failed = run(spec, [fact("a", 1, "Failed"), fact("c", 1, "Running")], now=6, status=written(start.status))
    assert failed.create == ()
    assert phases(failed) == {"a": "Failed", "b": "Skipped", "c": "Running", "e": "Skipped", "f": "Skipped"}
    states = failed.status.tasks or {}
    assert (states["b"].reason, states["e"].reason, states["f"].reason) == ("DependencyFailed", "FailFast", "FailFast")
    assert failed.status.phase == "Running"
    assert (
        failed.status.message
        == "task a failed after 1 attempt: exit code 1; waiting for 1 task still running to finish"
    )

    done = run(
        spec, [fact("a", 1, "Failed"), fact("c", 1, "Succeeded", finished=8)], now=9, status=written(failed.status)
    )
    assert done.create == ()
    assert phases(done)["e"] == "Skipped"
    assert (done.status.phase, done.status.message) == ("Failed", "task a failed after 1 attempt: exit code 1")
    assert (done.status.failed, done.status.succeeded, done.status.skipped) == (1, 1, 3)


def test_fail_fast_skips_a_task_waiting_to_retry_and_keeps_its_last_exit_code() -> None:
    spec = make_spec(task("a", retry={"limit": 0}), task("flaky"))
    p = run(spec, [fact("a", 1, "Failed", finished=6), fact("flaky", 1, "Failed", exit_code=7, finished=5)], now=7)
    flaky = (p.status.tasks or {})["flaky"]
    assert (flaky.phase, flaky.reason, flaky.attempts, flaky.exit_code) == ("Skipped", "FailFast", 1, 7)
    assert flaky.message == "not retried: task a failed"
    assert (p.status.phase, p.status.failed) == ("Failed", 1)
    assert p.create == ()


def test_continue_independent_runs_everything_not_downstream_of_a_failure() -> None:
    spec = make_spec(*FAILING, parallelism=2, failurePolicy="ContinueIndependent")
    p = run(spec, [fact("a", 1, "Failed"), fact("c", 1, "Running")], now=6)
    assert created(p) == [("f", 1)]
    assert phases(p) == {"a": "Failed", "b": "Skipped", "c": "Running", "e": "Waiting", "f": "Running"}
    assert p.status.phase == "Running"
    assert p.status.message == "2 running, 1 failed, 1 skipped of 5"

    facts = [fact("a", 1, "Failed"), fact("c", 1, "Succeeded"), fact("f", 1, "Succeeded"), fact("e", 1, "Succeeded")]
    done = run(spec, facts, now=20, status=written(p.status))
    assert (done.status.phase, done.status.progress) == ("Failed", "3/5")
    assert done.status.message == "task a failed after 1 attempt: exit code 1"


def test_a_skipped_task_skips_its_dependents_too() -> None:
    spec = make_spec(task("a", retry={"limit": 0}), task("b", "a"), task("c", "b"), failurePolicy="ContinueIndependent")
    p = run(spec, [fact("a", 1, "Failed")], now=6)
    states = p.status.tasks or {}
    assert (states["b"].message, states["c"].message) == ("dependency a failed", "dependency b was skipped")


# ---------------------------------------------------------------- pods that cannot start


def test_a_pod_that_cannot_start_shows_why_and_is_stopped_after_the_startup_timeout() -> None:
    spec = make_spec(task("t", startupTimeoutSeconds=60))
    pulling = fact("t", 1, "Pending", reason="ImagePullBackOff", message='Back-off pulling image "nope"')
    p = run(spec, [pulling], now=10)
    state = (p.status.tasks or {})["t"]
    assert (state.phase, state.reason, state.message) == (
        "Running",
        "ImagePullBackOff",
        'Back-off pulling image "nope"',
    )
    assert p.stop == ()
    assert p.requeue_after == 50

    p = run(spec, [pulling], now=60, status=written(p.status))
    message = 'the pod did not start within 60s: ImagePullBackOff: Back-off pulling image "nope"'
    assert p.stop == (StopJob(job_name="tj-t-1", reason="StartupTimeout", message=message),)
    assert (p.status.tasks or {})["t"].reason == "StartupTimeout"

    asked = run(spec, [dataclasses.replace(pulling, stopping=True)], now=61, status=written(p.status))
    assert asked.stop == ()  # already asked: not again

    failed = fact("t", 1, "Failed", finished=62, exit_code=None, reason="StartupTimeout", message=message)
    retrying = run(spec, [failed], now=62, status=written(asked.status))
    assert (retrying.status.tasks or {})["t"].phase == "Retrying"


def test_a_running_container_is_not_subject_to_the_startup_timeout() -> None:
    spec = make_spec(task("t", startupTimeoutSeconds=60))
    p = run(spec, [fact("t", 1, "Running")], now=1000)
    assert (p.stop, p.requeue_after) == ((), None)


# ---------------------------------------------------------------- the status is the record


def test_a_job_not_seen_yet_counts_as_running_for_a_grace_then_as_lost() -> None:
    spec = make_spec(task("t"), parallelism=1)
    start = run(spec)
    seen_nothing = run(spec, [], now=10, status=written(start.status))
    assert seen_nothing.create == ()  # neither a second attempt nor another task
    assert (seen_nothing.status.tasks or {})["t"].phase == "Running"
    assert seen_nothing.requeue_after == GRACE_SECONDS - 10

    lost = run(spec, [], now=GRACE_SECONDS, status=written(seen_nothing.status))
    state = (lost.status.tasks or {})["t"]
    assert (state.phase, state.attempts, state.reason) == ("Retrying", 1, "JobLost")
    assert state.next_retry_time == at(GRACE_SECONDS + 10)
    assert state.message == "attempt 1 of 4 failed: JobLost: Job tj-t-1 disappeared before it finished"

    again = run(spec, [], now=GRACE_SECONDS + 10, status=written(lost.status))
    assert created(again) == [("t", 2)]


def test_the_grace_of_a_retry_counts_from_the_retry_not_the_first_attempt() -> None:
    spec = make_spec(task("t"))
    retried = run(spec, [fact("t", 1, "Failed")], now=100)
    assert created(retried) == [("t", 2)]
    state = (retried.status.tasks or {})["t"]
    assert (state.start_time, state.attempt_start_time) == (at(0), at(100))
    p = run(spec, [fact("t", 1, "Failed")], now=110, status=written(retried.status))
    assert (p.create, phases(p)) == ((), {"t": "Running"})


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "Skipped"])
def test_a_final_task_stays_final_when_its_jobs_are_gone(phase: str) -> None:
    spec = make_spec(task("a"), task("b"))
    status = TaskJobStatus(phase="Running", start_time=at(0), tasks={"a": TaskState(phase=phase, attempts=1)})
    p = run(spec, [], now=500, status=status)
    assert phases(p)["a"] == phase
    assert created(p) == ([("b", 1)] if phase != "Failed" else [])


def test_a_retry_whose_failed_job_is_gone_keeps_its_recorded_time() -> None:
    spec = make_spec(task("t"))
    state = TaskState(phase="Retrying", attempts=2, job="tj-t-2", start_time=at(0), next_retry_time=at(300))
    status = TaskJobStatus(phase="Running", start_time=at(0), tasks={"t": state})
    waiting = run(spec, [], now=250, status=status)
    assert (waiting.create, waiting.requeue_after) == ((), 50)
    assert created(run(spec, [], now=300, status=status)) == [("t", 3)]


def test_a_stale_status_does_not_relaunch_an_attempt_the_jobs_show() -> None:
    spec = make_spec(task("t"))
    stale = written(run(spec).status.model_copy(update={"tasks": {"t": TaskState(phase="Ready")}}))
    assert run(spec, [fact("t", 1, "Running")], now=3, status=stale).create == ()
    retrying = written(run(spec, [fact("t", 1, "Failed")], now=6).status)
    assert (
        run(spec, [fact("t", 1, "Failed"), fact("t", 2, "Pending", created=15)], now=16, status=retrying).create == ()
    )


# ---------------------------------------------------------------- suspend


def test_suspend_creates_nothing_and_lets_running_tasks_finish() -> None:
    spec = make_spec(task("a"), task("b"), task("c", "a"), suspend=True)
    first = run(spec)
    assert (first.create, first.status.phase, first.status.message) == (
        (),
        "Suspended",
        "suspended: none of 3 tasks started",
    )
    suspended = {c.type: c.status for c in first.status.conditions or ()}
    assert suspended == {"Complete": "False", "Failed": "False", "Suspended": "True"}

    p = run(spec, [fact("a", 1, "Running"), fact("b", 1, "Failed")], now=20)
    assert (p.create, p.status.phase, p.status.message) == ((), "Suspended", "suspended: 1 running, 1 retrying of 3")
    assert p.requeue_after is None  # the due retry waits for the resume, which is itself an event


def test_a_retry_that_fell_due_while_suspended_starts_on_resume() -> None:
    spec = make_spec(task("t"), suspend=True)
    suspended = run(spec, [fact("t", 1, "Failed")], now=100)
    resumed = run(
        make_spec(task("t"), suspend=False), [fact("t", 1, "Failed")], now=200, status=written(suspended.status)
    )
    assert created(resumed) == [("t", 2)]
    assert resumed.status.phase == "Running"


# ---------------------------------------------------------------- activeDeadlineSeconds


def test_the_deadline_stops_running_tasks_skips_the_rest_and_fails_the_taskjob() -> None:
    spec = make_spec(task("a"), task("b"), task("c", "a"), activeDeadlineSeconds=100)
    start = run(spec)
    facts = [fact("a", 1, "Running"), fact("b", 1, "Failed", created=50)]
    before = run(spec, facts, now=60, status=written(start.status))
    assert before.requeue_after == 5  # b's retry comes first; the deadline is at 100
    assert run(spec, facts, now=90, status=written(before.status)).requeue_after == 10

    p = run(spec, facts, now=100, status=written(before.status))
    why = "the TaskJob exceeded spec.activeDeadlineSeconds (100s)"
    assert p.stop == (StopJob(job_name="tj-a-1", reason="DeadlineExceeded", message=f"stopped: {why}"),)
    states = p.status.tasks or {}
    assert (states["a"].phase, states["a"].reason) == ("Failed", "DeadlineExceeded")
    assert (states["b"].phase, states["b"].message) == ("Skipped", f"not retried: {why}")
    assert (states["c"].phase, states["c"].message) == ("Skipped", f"not started: {why}")
    assert (p.status.phase, p.status.message) == (
        "Failed",
        "exceeded spec.activeDeadlineSeconds (100s); 0 of 3 tasks succeeded",
    )
    failed = next(c for c in p.status.conditions or () if c.type == "Failed")
    assert (failed.status, failed.reason) == ("True", "DeadlineExceeded")

    stopping = [fact("a", 1, "Running", stopping=True), fact("b", 1, "Failed", created=50)]
    after = run(spec, stopping, now=101, status=written(p.status))
    assert (after.stop, after.create, after.events) == ((), (), ())
    assert after.status.message == p.status.message
    lost_stop = run(spec, facts, now=102, status=written(after.status))
    assert [s.job_name for s in lost_stop.stop] == ["tj-a-1"]  # the stop is repeated until the Job shows it


def test_the_deadline_counts_from_creation_so_a_lost_status_does_not_restart_it() -> None:
    # Created at 0 and suspended; resumed at 100, when the first Job started; the deadline is 60 s.
    spec = make_spec(task("a"), task("b", "a"), activeDeadlineSeconds=60)
    meta = META.model_copy(update={"creation_timestamp": T0})
    p = plan(meta, spec, None, [fact("a", 1, "Running", created=100)], at(110))
    assert p.status.phase == "Failed"
    assert [(s.job_name, s.reason) for s in p.stop] == [("tj-a-1", "DeadlineExceeded")]
    # A read from before the first status write, after the deadline: nothing starts.
    p = plan(meta, spec, None, [], at(61))
    assert (p.create, p.status.phase) == ((), "Failed")
    assert plan(meta, spec, None, [], at(59)).requeue_after == 1


def test_a_job_that_succeeds_after_the_deadline_does_not_turn_a_failed_taskjob_succeeded() -> None:
    # Found by test_plan_properties (read_stale_statuses): at the deadline the running task is Failed and
    # its Job stopped; its Job then succeeds anyway (it finished before the stop reached it), and a
    # reconcile that reads the status from before the deadline must still not call the TaskJob Succeeded.
    spec = make_spec(task("a"), activeDeadlineSeconds=100)
    meta = META.model_copy(update={"creation_timestamp": T0})
    before = plan(meta, spec, None, [fact("a", 1, "Running")], at(50))
    assert before.status.phase == "Running"
    at_deadline = plan(meta, spec, written(before.status), [fact("a", 1, "Running")], at(100))
    assert at_deadline.status.phase == "Failed"
    late = [fact("a", 1, "Succeeded", finished=100.5, stopping=True)]
    stale = plan(meta, spec, written(before.status), late, at(101))
    assert stale.status.phase == "Failed"
    a = (stale.status.tasks or {})["a"]
    assert (a.phase, a.reason) == ("Failed", "DeadlineExceeded")
    # The same Job not (yet) marked as stopped, finished after the deadline: the deadline decides too.
    unmarked = plan(meta, spec, written(before.status), [fact("a", 1, "Succeeded", finished=100.5)], at(101))
    assert unmarked.status.phase == "Failed"
    # A Job that finished before the deadline, seen only after it, succeeded.
    early = plan(meta, spec, written(before.status), [fact("a", 1, "Succeeded", finished=99)], at(101))
    assert early.status.phase == "Succeeded"


def test_a_job_that_ended_before_the_deadline_waits_for_its_pods_verdict_instead_of_failing() -> None:
    # Found by test_plan_properties (read_stale_statuses, seed 597): the Job ended in time, but its pod's
    # verdict (the output) was seen only after the deadline. Failing the task at the deadline broke
    # "final stays final": a later read of an older status counted the Job's success (it ended in time)
    # and turned the Failed TaskJob Succeeded. Now the plan at the deadline waits for the verdict too.
    spec = make_spec(task("a"), task("b"), activeDeadlineSeconds=100)
    meta = META.model_copy(update={"creation_timestamp": T0})
    before = plan(meta, spec, None, [fact("a", 1, "Running"), fact("b", 1, "Running")], at(50))
    ended = fact("a", 1, "Succeeded", finished=97, awaiting_pod=True)
    at_deadline = plan(meta, spec, written(before.status), [ended, fact("b", 1, "Running")], at(100))
    states = at_deadline.status.tasks or {}
    assert (states["a"].phase, states["b"].phase, states["b"].reason) == ("Running", "Failed", "DeadlineExceeded")
    assert [s.job_name for s in at_deadline.stop] == ["tj-b-1"]  # a's Job has ended: nothing to stop
    assert (at_deadline.create, at_deadline.status.phase) == ((), "Running")  # not final while a's verdict is due
    verdict = [fact("a", 1, "Succeeded", finished=97), fact("b", 1, "Failed", finished=101, stopping=True)]
    after = plan(meta, spec, written(at_deadline.status), verdict, at(102))
    stale = plan(meta, spec, written(before.status), verdict, at(102))
    assert (after.status.tasks or {})["a"].phase == "Succeeded"
    assert after.status.phase == stale.status.phase == "Failed"  # b was stopped by the deadline


def test_a_task_waiting_on_a_verdict_due_from_before_the_deadline_is_decided_by_it() -> None:
    # Found by test_flow_properties (read_stale_statuses): b waited on a, whose Job ended before the
    # deadline but whose pod's verdict came after it. Skipping b at the deadline made the TaskJob Failed;
    # a later read of an older status saw a succeeded in time, skipped b by its condition, and turned the
    # TaskJob Succeeded. b is now decided by a's verdict, as any later read decides it.
    spec = make_spec(task("a"), task("b", "a", when="tasks.a.phase == 'Failed'"), activeDeadlineSeconds=100)
    meta = META.model_copy(update={"creation_timestamp": T0})
    before = plan(meta, spec, None, [fact("a", 1, "Running")], at(50))
    ended = fact("a", 1, "Succeeded", finished=97, awaiting_pod=True)
    at_deadline = plan(meta, spec, written(before.status), [ended], at(100))
    states = at_deadline.status.tasks or {}
    assert (states["a"].phase, states["b"].phase) == ("Running", "Waiting")
    assert (at_deadline.create, at_deadline.status.phase) == ((), "Running")
    verdict = [fact("a", 1, "Succeeded", finished=97)]
    after = plan(meta, spec, written(at_deadline.status), verdict, at(102))
    stale = plan(meta, spec, written(before.status), verdict, at(102))
    assert (after.status.tasks or {})["b"].reason == (stale.status.tasks or {})["b"].reason == "ConditionFalse"
    assert after.status.phase == stale.status.phase == "Succeeded"


def test_a_task_ready_by_a_verdict_that_comes_after_the_deadline_is_not_started() -> None:
    spec = make_spec(task("a"), task("b", "a"), activeDeadlineSeconds=100)
    meta = META.model_copy(update={"creation_timestamp": T0})
    before = plan(meta, spec, None, [fact("a", 1, "Running")], at(50))
    at_deadline = plan(meta, spec, written(before.status), [fact("a", 1, "Succeeded", finished=97,
                                                                  awaiting_pod=True)], at(100))
    verdict = [fact("a", 1, "Succeeded", finished=97)]
    after = plan(meta, spec, written(at_deadline.status), verdict, at(102))
    stale = plan(meta, spec, written(before.status), verdict, at(102))
    for p in (after, stale):
        assert p.create == ()
        assert ((p.status.tasks or {})["b"].reason, p.status.phase) == ("DeadlineExceeded", "Failed")


# ---------------------------------------------------------------- ttlSecondsAfterFinished


def test_the_taskjob_is_deleted_ttl_seconds_after_it_finished() -> None:
    spec = make_spec(task("t"), ttlSecondsAfterFinished=60)
    done = run(spec, [fact("t", 1, "Succeeded")], now=10)
    assert (done.status.phase, done.status.completion_time) == ("Succeeded", at(10))
    assert (done.delete_taskjob, done.requeue_after) == (False, 60)
    later = run(spec, [fact("t", 1, "Succeeded")], now=30, status=written(done.status))
    assert (later.delete_taskjob, later.requeue_after, later.status.completion_time) == (False, 40, at(10))
    assert run(spec, [fact("t", 1, "Succeeded")], now=70, status=written(later.status)).delete_taskjob


def test_nothing_time_based_pending_means_no_requeue() -> None:
    spec = make_spec(task("t"))
    assert run(spec, [fact("t", 1, "Running")], now=3).requeue_after is None
    assert run(spec, [fact("t", 1, "Succeeded")], now=10).requeue_after is None


# ---------------------------------------------------------------- events, conditions, messages


def test_a_repeated_reconcile_repeats_no_event() -> None:
    spec = make_spec(task("a"), task("b", "a"))
    p = run(spec)
    for now, facts in [
        (6, [fact("a", 1, "Failed")]),
        (20, [fact("a", 1, "Failed"), fact("a", 2, "Succeeded", created=15)]),
        (30, [fact("a", 1, "Failed"), fact("a", 2, "Succeeded", created=15), fact("b", 1, "Succeeded", created=20)]),
    ]:
        first = run(spec, facts, now=now, status=written(p.status))
        again = run(spec, facts, now=now, status=written(first.status))
        assert first.events, now
        assert (again.events, again.create) == ((), ())
        p = first
    assert [e.reason for e in p.events] == ["TaskSucceeded", "Succeeded"]
    assert p.events[-1].type == "Normal"
    assert p.status.message == "all 2 tasks succeeded"


def test_a_condition_keeps_its_transition_time_while_its_status_holds() -> None:
    spec = make_spec(task("a"), task("b", "a"))
    first = run(spec)
    later = run(spec, [fact("a", 1, "Succeeded")], now=10, status=written(first.status))
    done = run(
        spec, [fact("a", 1, "Succeeded"), fact("b", 1, "Succeeded", created=10)], now=20, status=written(later.status)
    )
    times = {c.type: (c.status, c.last_transition_time) for c in done.status.conditions or ()}
    assert times == {"Complete": ("True", at(20)), "Failed": ("False", at(0)), "Suspended": ("False", at(0))}


@pytest.mark.parametrize(
    ("facts", "message"),
    [
        ([fact("a", 1, "Running")], "1 running of 4"),
        (
            [fact("a", 1, "Succeeded"), fact("b", 1, "Running", created=5), fact("c", 1, "Pending", created=5)],
            "2 running, 1 succeeded of 4",
        ),
        (
            [fact("a", 1, "Succeeded"), fact("b", 1, "Failed", created=5), fact("c", 1, "Running", created=5)],
            "1 running, 1 retrying, 1 succeeded of 4",
        ),
    ],
)
def test_the_message_sums_up_progress_in_one_sentence(facts: list[AttemptFact], message: str) -> None:
    p = run(DIAMOND, facts, now=11)
    assert p.status.message == message


def test_long_messages_are_cut_to_the_limit() -> None:
    spec = make_spec(task("t"))
    p = run(spec, [fact("t", 1, "Pending", reason="ErrImagePull", message="x" * 5000)], now=1)
    message = (p.status.tasks or {})["t"].message or ""
    assert len(message) == MAX_MESSAGE and message.endswith("…")


# ---------------------------------------------------------------- compact status


def test_a_task_records_only_what_is_set() -> None:
    spec = make_spec(task("a"), task("b", "a"))
    p = run(spec, [fact("a", 1, "Succeeded")], now=10)
    tasks = dump_status(p.status)["tasks"]
    assert tasks["a"] == {
        "phase": "Succeeded",
        "attempts": 1,
        "startTime": "2024-01-01T00:00:00Z",
        "finishTime": "2024-01-01T00:00:05Z",
    }
    assert "job" not in tasks["a"]


def test_ten_thousand_tasks_fit_well_under_one_mebibyte() -> None:
    n = 10_000
    assert n > COMPACT_TASKS
    names = [f"task-{i:05d}" for i in range(n)]
    tree = [task(name, *([names[(i - 1) // 2]] if i else [])) for i, name in enumerate(names)]
    spec = make_spec(*tree, parallelism=1000)
    # 3,000 finished, 1,000 running, the rest ready or waiting; then everything finished.
    facts = [fact(name, 1, "Succeeded") for name in names[:3000]]
    facts += [fact(name, 1, "Running") for name in names[3000:4000]]
    midway = run(spec, facts, now=10)
    assert midway.create == ()
    tasks = dump_status(midway.status)["tasks"]
    assert (tasks[names[4500]], tasks[names[9999]]) == ({"phase": "Ready"}, {"phase": "Waiting"})
    assert len(json.dumps(dump_status(midway.status))) < 512 * 1024

    finished = run(spec, [fact(name, 1, "Succeeded") for name in names], now=20, status=written(midway.status))
    assert finished.status.phase == "Succeeded"
    assert len(json.dumps(dump_status(finished.status))) < 600 * 1024


def test_ten_thousand_tasks_running_at_once_stay_under_one_mebibyte() -> None:
    # B3 "wide": no parallelism limit, so the first plan starts every task.
    names = [f"task-{i:05d}" for i in range(10_000)]
    spec = make_spec(*(task(name) for name in names))
    started = run(spec, [], now=0)
    assert len(started.create) == 10_000
    tasks = dump_status(started.status)["tasks"]
    assert tasks[names[0]] == {"phase": "Running", "attempts": 1, "startTime": "2024-01-01T00:00:00Z"}
    size = len(json.dumps(dump_status(started.status), separators=(",", ":")))  # as the API server stores it
    assert size < 800 * 1024  # was about 1 MiB with each task's Job name
    seen = run(spec, [fact(name, 1, "Running") for name in names], now=5, status=written(started.status))
    assert "job" not in dump_status(seen.status)["tasks"][names[1]]


def test_a_small_taskjob_names_the_job_of_a_running_task() -> None:
    p = run(make_spec(task("a")), [], now=0)
    assert dump_status(p.status)["tasks"]["a"]["job"] == "tj-a-1"
