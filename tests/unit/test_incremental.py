"""replan (incremental) on chosen runs; test_plan_properties runs both planners through random runs, and
replancheck.Incremental compares them at every step."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from plansim import T0, Outcome, scripted, simulate
from replancheck import Incremental

from taskjobs.core.facts import AttemptFact
from taskjobs.core.incremental import replan
from taskjobs.core.models import TaskJobMeta, TaskJobSpec, dump_status
from taskjobs.core.plan import plan


def wide(n: int, **extra: Any) -> TaskJobSpec:
    return TaskJobSpec.model_validate({"tasks": [{"name": f"t{i}"} for i in range(n)], **extra})


def test_a_wide_run_is_planned_incrementally_deciding_only_what_changed() -> None:
    planner = Incremental()
    run = simulate(wide(200, parallelism=20), scripted({}, Outcome(duration=5)), planner=planner)
    assert run.status is not None and run.status.phase == "Succeeded"
    steps = len(run.steps)
    assert planner.delta_steps >= steps - 3  # the first plan and the final ones may be full passes
    # Each step decides the tasks whose Jobs changed and the ones it starts, not all 200.
    assert planner.decided / planner.delta_steps < 60


def test_a_failure_under_failfast_falls_back_to_the_full_pass_and_skips_the_rest() -> None:
    spec = TaskJobSpec.model_validate(
        {"tasks": [{"name": "a", "retry": {"limit": 0}}, {"name": "b", "dependsOn": ["a"]}, {"name": "c"}]}
    )
    run = simulate(spec, scripted({"a": [Outcome(exit_code=1)]}, Outcome(duration=30)), planner=Incremental())
    assert run.status is not None and run.status.phase == "Failed"
    assert run.status.tasks is not None and run.status.tasks["b"].phase == "Skipped"


def test_memory_of_another_spec_or_generation_is_not_used() -> None:
    meta = TaskJobMeta(name="x", uid="u", generation=1, creation_timestamp=T0)
    spec = wide(3)
    first, memory = replan(meta, spec, None, None, {}, T0)
    assert len(first.create) == 3 and first.changed is None
    facts = {
        c.task: AttemptFact(task=c.task, attempt=1, job_name=f"x-{c.task}-1", phase="Pending", created=T0)
        for c in first.create
    }
    later = T0 + timedelta(seconds=1)
    again, _ = replan(meta, spec, memory, None, facts, later)
    assert again.changed is not None  # incremental
    other = meta.model_copy(update={"generation": 2})
    full, _ = replan(other, spec, memory, None, facts, later)
    assert full.changed is None  # a full pass
    assert dump_status(full.status) == dump_status(plan(other, spec, memory.status, list(facts.values()), later).status)
