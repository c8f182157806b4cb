"""Conditions and finally tasks keep their rules in random runs, replayed with stale reads and watch lag.

The simulator (plansim) drives the plan against a fake cluster; "incremental" also checks at every step
that the operator's incremental planner decides as the full plan does (replancheck).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from plansim import Outcome, Run, scripted, simulate
from test_plan_properties import PLANNERS, SETTINGS, outcomes, planner_of, scenarios

from taskjobs.core.flow import Flow
from taskjobs.core.models import TERMINAL_PHASES, TERMINAL_TASK_PHASES, TaskJobSpec

Scenario = tuple[TaskJobSpec, dict[str, list[Outcome]], list[tuple[float, dict[str, Any]]]]


@st.composite
def flow_scenarios(draw: st.DrawFn) -> Scenario:
    """Return a random scenario with conditions on dependencies' phases and up to three finally tasks."""
    spec, script, changes = draw(scenarios())
    raw = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    for task in raw["tasks"]:
        deps = task.get("dependsOn") or []
        if deps and draw(st.booleans()):
            dep = draw(st.sampled_from(deps))
            phase = draw(st.sampled_from(["Failed", "Succeeded", "Skipped"]))
            task["when"] = f"tasks.{dep}.phase == '{phase}'"
    final = []
    for i in range(draw(st.integers(0, 3))):
        entry: dict[str, Any] = {"name": f"f{i}", "retry": {"limit": draw(st.integers(0, 1))}}
        if i and draw(st.booleans()):
            entry["dependsOn"] = [f"f{draw(st.integers(0, i - 1))}"]
        if draw(st.booleans()):
            entry["when"] = draw(st.sampled_from(["taskjob.outcome == 'Failed'", "size(taskjob.failedTasks) == 0"]))
        final.append(entry)
        limit = entry["retry"]["limit"]
        flaky = outcomes(draw(st.integers(0, 2)))
        script[entry["name"]] = draw(st.lists(flaky, min_size=limit + 1, max_size=limit + 1))
    if final:
        raw["finally"] = final
    return TaskJobSpec.model_validate(raw), script, changes


def check(run: Run) -> None:
    """Assert the rules of conditions and finally tasks on every step, and the outcome at the end."""
    assert not run.stuck, f"stuck in {run.status}"
    assert run.cluster.duplicates == [], "a (task, attempt) was created twice"
    final_phase: str | None = None
    for step in run.steps:
        flow = Flow(step.spec)
        states = step.plan.status.tasks or {}
        for c in step.plan.create:
            if c.task in flow.final_set:
                open_ = [n for n in flow.main if states[n].phase not in TERMINAL_TASK_PHASES]
                assert not open_, f"finally task {c.task} started while {open_} had not ended"
            else:
                assert final_phase is None
        for name, state in states.items():
            if state.reason == "ConditionFalse":
                assert not state.attempts, f"{name} was skipped by its condition after it ran"
        phase = step.plan.status.phase
        if final_phase is None and phase in TERMINAL_PHASES:
            final_phase = phase
            assert phase == oracle(step.spec, states), (phase, {n: (s.phase, s.reason) for n, s in states.items()})
        elif final_phase is not None:
            assert phase == final_phase, "a final TaskJob changed phase"
    assert final_phase is not None, "the TaskJob never finished"


def oracle(spec: TaskJobSpec, states: dict[str, Any]) -> str:
    """The documented outcome, written out again: Failed iff an unhandled failure or a stop-skip."""
    final = {t.name for t in spec.finally_ or ()}
    readers: dict[str, list[str]] = {}
    for t in (*spec.tasks, *(spec.finally_ or ())):
        for dep in t.depends_on or ():
            if t.when and f"tasks.{dep}.phase" in t.when and ((t.name in final) == (dep in final)):
                readers.setdefault(dep, []).append(t.name)
    for name, s in states.items():
        ran = [h for h in readers.get(name, ()) if states[h].phase != "Skipped"]
        if s.phase == "Failed" and (s.reason == "DeadlineExceeded" or not ran):
            return "Failed"
        if s.phase == "Skipped" and s.reason in ("FailFast", "DeadlineExceeded"):
            return "Failed"
    return "Succeeded"


@PLANNERS
@SETTINGS
@given(flow_scenarios(), st.sampled_from([0.0, 3.0, 10.0]), st.integers(0, 2**16))
def test_conditions_and_finally_keep_their_rules_despite_watch_lag(
    planner: str, scenario: Scenario, lag: float, seed: int
) -> None:
    spec, script, changes = scenario
    check(simulate(spec, scripted(script), lag=lag, spec_changes=changes, seed=seed, planner=planner_of(planner)))


@PLANNERS
@SETTINGS
@given(flow_scenarios(), st.integers(0, 2**16))
def test_conditions_and_finally_keep_their_rules_when_reconciles_read_stale_statuses(
    planner: str, scenario: Scenario, seed: int
) -> None:
    spec, script, changes = scenario
    run = simulate(spec, scripted(script), stale_rate=0.3, spec_changes=changes, seed=seed, planner=planner_of(planner))
    check(run)
