"""The plan with `when` conditions, dependencies on failure and `finally` tasks (rules: taskjobs.core.flow)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskjobs.core.actions import Plan, RetryRequest
from taskjobs.core.facts import AttemptFact, AttemptPhase
from taskjobs.core.flow import Flow
from taskjobs.core.models import TaskJobMeta, TaskJobSpec, TaskJobStatus, dump_status
from taskjobs.core.plan import plan
from taskjobs.core.resolve import resolve_task

T0 = datetime(2024, 1, 1, tzinfo=UTC)
META = TaskJobMeta(name="tj", creation_timestamp=T0)
NO_RETRY = {"retry": {"limit": 0}}


def t(name: str, *deps: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox", **NO_RETRY, **({"dependsOn": list(deps)} if deps else {}), **fields}


def spec_of(*tasks: dict[str, Any], final: Sequence[dict[str, Any]] = (), **fields: Any) -> TaskJobSpec:
    return TaskJobSpec.model_validate({"tasks": list(tasks), **({"finally": list(final)} if final else {}), **fields})


def fact(name: str, phase: AttemptPhase, at: float = 0, output: str | None = None) -> AttemptFact:
    done = phase in ("Succeeded", "Failed")
    return AttemptFact(
        task=name,
        attempt=1,
        job_name=f"tj-{name}-1",
        phase=phase,
        created=T0 + timedelta(seconds=at),
        finish_time=T0 + timedelta(seconds=at + 5) if done else None,
        exit_code=(0 if phase == "Succeeded" else 1) if done else None,
        output=output,
    )


def drive(spec: TaskJobSpec, outcomes: dict[str, tuple[AttemptPhase, str | None]], steps: int = 12) -> Plan:
    """Run the plan to its end: each created Job ends at once as `outcomes` says (default Succeeded)."""
    status: TaskJobStatus | None = None
    facts: dict[str, AttemptFact] = {}
    now = 0.0
    created: list[str] = []
    for _ in range(steps):
        p = plan(META, spec, status, list(facts.values()), T0 + timedelta(seconds=now))
        status = TaskJobStatus.model_validate(dump_status(p.status))
        for c in p.create:
            created.append(c.task)
            phase, output = outcomes.get(c.task, ("Succeeded", None))
            facts[c.task] = fact(c.task, phase, at=now, output=output)
        if p.status.phase in ("Succeeded", "Failed") and not p.create:
            assert len(created) == len(set(created)), f"a task started twice: {created}"
            return p
        now += 10
    raise AssertionError(f"never finished: {status}")


def states(p: Plan) -> dict[str, tuple[str, str | None]]:
    return {n: (s.phase, s.reason) for n, s in (p.status.tasks or {}).items()}


# ---------------------------------------------------------------- when


def test_a_false_condition_skips_the_task_and_its_dependents_still_run() -> None:
    spec = spec_of(t("check"), t("deploy", "check", when="tasks.check.output == 'go'"), t("report", "deploy"))
    p = drive(spec, {"check": ("Succeeded", "stop\n")})
    assert states(p) == {
        "check": ("Succeeded", None),
        "deploy": ("Skipped", "ConditionFalse"),
        "report": ("Succeeded", None),
    }
    assert (p.status.phase, p.status.message) == ("Succeeded", "succeeded: 2 succeeded, 1 skipped of 3")
    assert (p.status.tasks or {})["deploy"].message == "condition tasks.check.output == 'go' is false"


def test_a_true_condition_runs_the_task() -> None:
    spec = spec_of(t("count"), t("big", "count", when="int(tasks.count.output) > 3"))
    assert states(drive(spec, {"count": ("Succeeded", "7\n")}))["big"] == ("Succeeded", None)


def test_a_dependent_that_reads_the_skipped_tasks_output_is_skipped_too_and_so_on() -> None:
    spec = spec_of(
        t("a"),
        t("b", "a", when="tasks.a.output == 'yes'"),
        t("c", "b", args=["{{tasks.b.output}}"]),
        t("d", "c"),
    )
    p = drive(spec, {"a": ("Succeeded", "no")})
    assert states(p) == {
        "a": ("Succeeded", None),
        "b": ("Skipped", "ConditionFalse"),
        "c": ("Skipped", "DependencySkipped"),
        "d": ("Succeeded", None),
    }
    assert p.status.phase == "Succeeded"


def test_a_condition_that_cannot_be_evaluated_fails_the_task_with_the_reason() -> None:
    spec = spec_of(t("count"), t("big", "count", when="int(tasks.count.output) > 3"), t("after", "big"))
    p = drive(spec, {"count": ("Succeeded", "many")})
    big = (p.status.tasks or {})["big"]
    assert (big.phase, big.reason, big.attempts) == ("Failed", "ConditionError", None)
    why = "invalid literal for int() with base 10: 'many'"
    assert big.message == f"cannot evaluate 'int(tasks.count.output) > 3': {why}"
    assert states(p)["after"] == ("Skipped", "DependencyFailed")
    assert p.status.phase == "Failed"
    assert p.status.message is not None and p.status.message.startswith("task big cannot evaluate")


# ---------------------------------------------------------------- dependencies on failure


def test_a_task_that_reads_a_dependencys_phase_runs_when_it_failed_and_handles_the_failure() -> None:
    spec = spec_of(
        t("build"),
        t("rollback", "build", when="tasks.build.phase == 'Failed'"),
        t("deploy", "build"),
        t("other"),
    )
    p = drive(spec, {"build": ("Failed", None)})
    assert states(p) == {
        "build": ("Failed", "Failed"),
        "rollback": ("Succeeded", None),
        "deploy": ("Skipped", "DependencyFailed"),
        "other": ("Succeeded", None),  # FailFast did not stop it: the failure was handled
    }
    assert p.status.phase == "Succeeded"  # rule: a handled failure does not fail the TaskJob
    assert p.status.message == "succeeded: 2 succeeded, 1 failed, 1 skipped of 4"


def test_the_handler_is_skipped_when_the_dependency_succeeded() -> None:
    spec = spec_of(t("build"), t("rollback", "build", when="tasks.build.phase == 'Failed'"))
    p = drive(spec, {})
    assert states(p)["rollback"] == ("Skipped", "ConditionFalse")
    assert p.status.phase == "Succeeded"


def test_a_failure_whose_handler_does_not_run_fails_the_taskjob_and_failfast_applies() -> None:
    # The handler reads the phase but runs only on success: the failure is not handled.
    spec = spec_of(
        t("build"),
        t("on-ok", "build", when="tasks.build.phase == 'Succeeded'"),
        t("slow", "build"),
        t("late", "other"),
        t("other"),
    )
    p = drive(spec, {"build": ("Failed", None)})
    assert p.status.phase == "Failed"
    assert states(p)["on-ok"] == ("Skipped", "ConditionFalse")
    assert states(p)["slow"] == ("Skipped", "DependencyFailed")
    assert states(p)["late"] == ("Skipped", "FailFast")
    assert p.status.message is not None and p.status.message.startswith("task build failed")


def test_a_failing_handler_fails_the_taskjob() -> None:
    spec = spec_of(t("build"), t("rollback", "build", when="tasks.build.phase == 'Failed'"))
    p = drive(spec, {"build": ("Failed", None), "rollback": ("Failed", None)})
    assert p.status.phase == "Failed"
    assert p.status.message is not None and p.status.message.startswith("task rollback failed")


@pytest.mark.parametrize("policy", ["FailFast", "ContinueIndependent"])
def test_a_handled_failure_keeps_independent_tasks_running_under_both_policies(policy: str) -> None:
    spec = spec_of(
        t("a"), t("handler", "a", when="tasks.a.phase == 'Failed'"), t("b"), t("c", "b"), failurePolicy=policy
    )
    first = plan(META, spec, None, [], T0)
    assert sorted(c.task for c in first.create) == ["a", "b"]
    status = TaskJobStatus.model_validate(dump_status(first.status))
    p = plan(META, spec, status, [fact("a", "Failed"), fact("b", "Succeeded")], T0 + timedelta(seconds=10))
    assert sorted(c.task for c in p.create) == ["c", "handler"]


# ---------------------------------------------------------------- finally


def test_finally_tasks_run_after_every_task_ended_with_the_outcome() -> None:
    spec = spec_of(
        t("extract"),
        t("load", "extract"),
        t("side"),
        final=[t("notify", when="taskjob.outcome == 'Failed'"), t("cleanup"), t("after-cleanup", "cleanup")],
    )
    status: TaskJobStatus | None = None
    first = plan(META, spec, status, [], T0)
    assert sorted(c.task for c in first.create) == ["extract", "side"]  # finally tasks wait
    assert states(first)["cleanup"] == ("Waiting", None)
    status = TaskJobStatus.model_validate(dump_status(first.status))
    facts = [fact("extract", "Failed"), fact("side", "Running")]
    mid = plan(META, spec, status, facts, T0 + timedelta(seconds=10))
    assert mid.create == ()  # FailFast stops new work, but side still runs: finally waits for it
    assert states(mid)["load"] == ("Skipped", "DependencyFailed")
    assert states(mid)["notify"] == ("Waiting", None)
    status = TaskJobStatus.model_validate(dump_status(mid.status))
    facts = [fact("extract", "Failed"), fact("side", "Succeeded", at=10)]
    end = plan(META, spec, status, facts, T0 + timedelta(seconds=20))
    assert sorted(c.task for c in end.create) == ["cleanup", "notify"]
    assert end.status.phase == "Running"
    flow = Flow(spec)
    notify = flow.with_outcome(resolve_task(spec.finally_[0], None), end.status.tasks or {})  # type: ignore[index]
    env = {e.name: e.value for e in notify.env}
    assert env == {"TASKJOB_OUTCOME": "Failed", "TASKJOB_FAILED_TASKS": "extract"}


def test_finally_tasks_do_not_change_a_failed_outcome_and_their_failure_fails_a_succeeded_one() -> None:
    spec = spec_of(t("a"), final=[t("notify"), t("after", "notify")])
    failed = drive(spec, {"a": ("Failed", None)})
    assert (failed.status.phase, states(failed)["notify"], states(failed)["after"]) == (
        "Failed",
        ("Succeeded", None),
        ("Succeeded", None),
    )
    broken = drive(spec, {"notify": ("Failed", None)})
    assert broken.status.phase == "Failed"  # rule: a finally task's failure fails the TaskJob
    assert states(broken)["after"] == ("Skipped", "DependencyFailed")
    assert broken.status.message is not None and broken.status.message.startswith("task notify failed")
    fine = drive(spec, {})
    assert (fine.status.phase, fine.status.progress) == ("Succeeded", "3/3")


def test_a_finally_condition_on_the_outcome_skips_it_when_all_went_well() -> None:
    spec = spec_of(t("a"), final=[t("notify", when="taskjob.outcome == 'Failed' && 'a' in taskjob.failedTasks")])
    assert states(drive(spec, {}))["notify"] == ("Skipped", "ConditionFalse")
    assert states(drive(spec, {"a": ("Failed", None)}))["notify"] == ("Succeeded", None)


def test_a_finally_task_reading_a_task_phase_reports_but_does_not_handle_its_failure() -> None:
    spec = spec_of(t("a"), final=[t("notify", when="tasks.a.phase == 'Failed'")])
    p = drive(spec, {"a": ("Failed", None)})
    assert states(p)["notify"] == ("Succeeded", None)
    assert p.status.phase == "Failed"


def test_the_deadline_stops_finally_tasks_too() -> None:
    spec = spec_of(t("a"), final=[t("notify")], activeDeadlineSeconds=30)
    first = plan(META, spec, None, [], T0)
    status = TaskJobStatus.model_validate(dump_status(first.status))
    p = plan(META, spec, status, [fact("a", "Running")], T0 + timedelta(seconds=30))
    assert states(p) == {"a": ("Failed", "DeadlineExceeded"), "notify": ("Skipped", "DeadlineExceeded")}
    assert (p.create, p.status.phase) == ((), "Failed")


def test_no_finally_task_starts_while_suspended() -> None:
    spec = spec_of(t("a"), final=[t("notify")], suspend=True)
    p = plan(META, spec, None, [fact("a", "Succeeded")], T0 + timedelta(seconds=10))
    assert (p.create, p.status.phase, states(p)["notify"]) == ((), "Suspended", ("Ready", None))


def test_a_finally_task_retries_after_a_failfast_failure() -> None:
    # Found by test_flow_properties: FailFast dropped the retry's wake-up, so the retry never came.
    spec = spec_of(t("a"), final=[t("notify", retry={"limit": 1, "backoff": {"delaySeconds": 7}})])
    first = plan(META, spec, None, [], T0)
    status = TaskJobStatus.model_validate(dump_status(first.status))
    facts = [fact("a", "Failed"), fact("notify", "Failed", at=10)]
    p = plan(META, spec, status, facts, T0 + timedelta(seconds=20))
    assert (states(p)["notify"][0], p.requeue_after) == ("Retrying", 2)  # failed at 15, retried at 22


def test_a_manual_retry_reruns_failed_and_skipped_finally_tasks_but_not_succeeded_ones() -> None:
    spec = spec_of(t("a"), final=[t("notify", when="taskjob.outcome == 'Failed'"), t("cleanup")])
    done = drive(spec, {"a": ("Failed", None)})
    assert states(done) == {"a": ("Failed", "Failed"), "notify": ("Succeeded", None), "cleanup": ("Succeeded", None)}
    status = TaskJobStatus.model_validate(dump_status(done.status))
    facts = [fact("a", "Failed"), fact("notify", "Succeeded", at=10), fact("cleanup", "Succeeded", at=10)]
    again = plan(META, spec, status, facts, T0 + timedelta(seconds=100), RetryRequest(nonce="1"))
    assert [(c.task, c.attempt) for c in again.create] == [("a", 2)]
    assert states(again)["notify"] == ("Succeeded", None)
