"""replan (incremental) gives the same plan as plan (full pass) at every step of random runs."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from plansim import T0, Outcome, scripted, simulate
from test_plan_properties import SETTINGS, check, scenarios

from taskjobs import mergepatch
from taskjobs.actions import Plan
from taskjobs.facts import AttemptFact
from taskjobs.incremental import Memory, replan, settle
from taskjobs.models import TaskJobMeta, TaskJobSpec, TaskJobStatus, dump_status
from taskjobs.plan import plan
from taskjobs.statusdelta import dump_changes, patch_changes


def same(incremental: Plan, full: Plan) -> None:
    """Assert two plans do the same: status as written, creates, stops, events, wakeup, deletion."""
    assert dump_status(incremental.status) == dump_status(full.status)
    assert incremental.create == full.create
    assert sorted(incremental.stop, key=lambda s: s.job_name) == sorted(full.stop, key=lambda s: s.job_name)
    assert incremental.events == full.events
    assert incremental.requeue_after == full.requeue_after
    assert incremental.delete_taskjob == full.delete_taskjob


class Incremental:
    """A planner for plansim that carries a Memory as the operator does, checked against plan at every step."""

    def __init__(self) -> None:
        self.memory: Memory | None = None
        self.facts: dict[str, AttemptFact] = {}  # an unchanged Job keeps its fact object, as in the store
        self.delta_steps = 0
        self.decided = 0  # tasks decided again by incremental steps
        self.steps = 0

    def __call__(
        self,
        kind: str,
        meta: TaskJobMeta,
        spec: TaskJobSpec,
        status: TaskJobStatus | None,
        facts: tuple[AttemptFact, ...],
        now: datetime,
    ) -> Plan:
        seen: dict[str, AttemptFact] = {}
        for fact in facts:
            old = self.facts.get(fact.job_name)
            seen[fact.job_name] = old if old == fact else fact
        # Every other step names the Jobs that changed since the last plan, as the store's change log does.
        known = self.memory.facts if self.memory is not None else {}
        changed = {j for j in seen.keys() | known.keys() if seen.get(j) is not known.get(j)}
        self.steps += 1
        self.facts = seen
        # The shell passes its memory only when the status it read is the one that memory's plan wrote.
        memory = self.memory if kind != "stale" and self.memory is not None else None
        if memory is not None:
            assert status is not None and memory.status == status, "the memory's status is not what was written"
        hint = changed if self.steps % 2 else None
        result, self.memory = replan(meta, spec, memory, status, dict(seen), now, changed_jobs=hint)
        full = plan(meta, spec, status, facts, now)
        same(result, full)
        # The shell writes the status from the changed tasks only: the same JSON, the same patch.
        prior_raw = dump_status(status) if status is not None else {}
        new_raw = dump_changes(prior_raw, result.status, result.changed)
        assert new_raw == dump_status(full.status)
        assert patch_changes(prior_raw, new_raw, result.changed) == mergepatch.diff(prior_raw, new_raw)
        if result.changed is not None and status is not None:
            self.delta_steps += 1
            self.decided += len(result.changed)
            settled = settle(full.status).tasks or {}
            for name, state in (status.tasks or {}).items():
                if name not in result.changed:  # a task left out was indeed unchanged
                    assert settled[name] == state, name
        return result


@SETTINGS
@given(
    scenarios(),
    st.sampled_from([0.0, 0.0, 3.0, 10.0]),
    st.lists(st.integers(1, 200), max_size=2),
    st.integers(0, 2**16),
)
def test_replan_equals_plan_at_every_step_of_random_runs(
    scenario: tuple[TaskJobSpec, dict[str, list[Outcome]], list[tuple[float, dict[str, Any]]]],
    lag: float,
    deletions: list[int],
    seed: int,
) -> None:
    spec, script, changes = scenario
    planner = Incremental()
    run = simulate(
        spec, scripted(script), lag=lag, spec_changes=changes, deletions=deletions, seed=seed, planner=planner
    )
    check(run, deletions=bool(deletions))


@SETTINGS
@given(scenarios(), st.integers(0, 2**16))
def test_replan_equals_plan_when_reconciles_read_stale_statuses(
    scenario: tuple[TaskJobSpec, dict[str, list[Outcome]], list[tuple[float, dict[str, Any]]]], seed: int
) -> None:
    spec, script, changes = scenario
    run = simulate(spec, scripted(script), stale_rate=0.3, spec_changes=changes, seed=seed, planner=Incremental())
    check(run, deletions=False)


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
