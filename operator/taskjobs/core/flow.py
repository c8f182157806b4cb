"""What `when` conditions and `finally` tasks add to the plan: the rules, as pure functions of task states.

The plan (taskjobs.core.plan) asks this module; the rules, in one place:

Conditions
- A task with `when` is decided once its dependencies allow it to start: true -> Ready; false ->
  Skipped with reason ConditionFalse; an expression that cannot be evaluated -> Failed with reason
  ConditionError (no attempt is made).
- A dependent of a task skipped by its condition still runs (the skipped task counts as done), unless
  it reads that task's output ({{tasks.x.output}} in command/args/env, or tasks.x.output in `when`):
  then it is Skipped too (reason DependencySkipped), as Tekton does. Such a skip passes on the same way.
- A task whose `when` reads a dependency's phase or reason handles that dependency's outcome: it waits
  for the dependency to end in any phase, and the dependency's failure or skip does not skip it (Argo's
  `depends: "a.Failed"`). Other dependencies keep the usual rule (a failure skips, DependencyFailed).
- A failed task is "handled" while some task that reads its phase has not been skipped: the handler
  either is still to decide or ran. A handled failure neither stops the TaskJob under FailFast nor
  fails it; once every handler is skipped (e.g. its condition was false) the failure counts as usual.
  A task stopped by activeDeadlineSeconds is never handled.

The TaskJob's outcome (the phase once every task ended)
- Failed when a task failed and is not handled, or a task was skipped because the TaskJob stopped
  (FailFast, DeadlineExceeded); else Succeeded, even with tasks skipped by a false condition.

Finally tasks (spec.finally)
- They wait until every task of spec.tasks has ended, then start whatever the outcome; among
  themselves dependsOn works as usual (ContinueIndependent: a failure skips only dependents). FailFast
  never skips them. activeDeadlineSeconds stops them like any task; while suspended none starts.
- They receive the outcome of spec.tasks (TASKJOB_OUTCOME, `taskjob.outcome`) and the failed tasks
  (TASKJOB_FAILED_TASKS comma-separated, `taskjob.failedTasks`).
- Their failure fails the TaskJob (as in Tekton and Argo): a notification that was not sent is news.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from functools import cached_property

from . import dag
from .conditions import When, compile_when
from .inputs import output_references
from .models import TERMINAL_TASK_PHASES, EnvVar, TaskJobSpec, TaskSpec, TaskState
from .resolve import ResolvedTask

CONDITION_FALSE = "ConditionFalse"
DEPENDENCY_SKIPPED = "DependencySkipped"
CONDITION_ERROR = "ConditionError"
# Skips that do not make the TaskJob fail: nothing failed, or the failure behind it is judged on its own.
PASSING_SKIPS = frozenset({CONDITION_FALSE, DEPENDENCY_SKIPPED})
HARMLESS_SKIPS = PASSING_SKIPS | {"DependencyFailed"}
NEVER_HANDLED = frozenset({"DeadlineExceeded"})
ENV_OUTCOME = "TASKJOB_OUTCOME"
ENV_FAILED = "TASKJOB_FAILED_TASKS"
MAX_FAILED_LISTED = 100  # TASKJOB_FAILED_TASKS names at most this many (the env var stays small)


def all_tasks(spec: TaskJobSpec) -> tuple[TaskSpec, ...]:
    """Return spec.tasks then spec.finally."""
    return (*spec.tasks, *(spec.finally_ or ()))


def build_graph(spec: TaskJobSpec) -> dag.Graph:
    """Return the graph of spec.tasks and spec.finally, finally tasks last in the order (they run last)."""
    main = dag.build([(t.name, tuple(t.depends_on or ())) for t in spec.tasks])
    if not spec.finally_:
        return main
    final = dag.build([(t.name, tuple(t.depends_on or ())) for t in spec.finally_])
    return dag.Graph(
        names=(*main.names, *final.names),
        deps={**main.deps, **final.deps},
        dependents={**main.dependents, **final.dependents},
        order=(*main.order, *final.order),
    )


def _references_output(task: TaskSpec, name: str) -> bool:
    texts = [*(task.command or ()), *(task.args or ()), *(e.value for e in task.env or () if e.value)]
    return any(name in output_references(t) for t in texts if "{{" in t)


class Flow:
    """The conditions and finally tasks of one spec, compiled once (kept with the plan's SpecShape)."""

    def __init__(self, spec: TaskJobSpec) -> None:
        self.spec = spec
        self.main: tuple[str, ...] = tuple(t.name for t in spec.tasks)
        self.final: tuple[str, ...] = tuple(t.name for t in spec.finally_ or ())
        self.final_set = frozenset(self.final)
        self.specs = {t.name: t for t in all_tasks(spec)}
        # The spec is valid (validation compiled every condition), so compiling cannot fail here.
        self.whens: dict[str, When] = {t.name: compile_when(t.when) for t in all_tasks(spec) if t.when}
        handlers: dict[str, list[str]] = {}
        for name, when in self.whens.items():
            for dep in when.outcomes:
                # A finally task reading a task's phase reports on it; it does not handle its failure.
                if (name in self.final_set) == (dep in self.final_set):
                    handlers.setdefault(dep, []).append(name)
        self.handlers = {dep: tuple(names) for dep, names in handlers.items()}
        # Without conditions or finally tasks every rule here is the plain one: the plan skips the work.
        self.plain = not self.whens and not self.final

    def outcomes_read(self, name: str) -> frozenset[str]:
        """Return the dependencies whose outcome (phase, reason) task `name` reads: their failure does not skip it."""
        when = self.whens.get(name)
        return when.outcomes if when is not None else frozenset()

    @cached_property
    def _output_readers(self) -> dict[str, frozenset[str]]:
        readers: dict[str, set[str]] = {}
        for task in all_tasks(self.spec):
            when = self.whens.get(task.name)
            for dep in task.depends_on or ():
                if (when is not None and dep in when.outputs) or _references_output(task, dep):
                    readers.setdefault(task.name, set()).add(dep)
        return {n: frozenset(s) for n, s in readers.items()}

    def reads_output(self, name: str, dep: str) -> bool:
        """Return whether task `name` reads dependency `dep`'s output."""
        return dep in self._output_readers.get(name, frozenset())

    def skip_for(self, name: str, dep: str, state: TaskState) -> tuple[str, str] | None:
        """Return (reason, message) when dependency `dep` in `state` skips task `name`, else None.

        Only for a dependency whose outcome `name` does not read, once it is Failed or Skipped.
        """
        if state.phase == "Failed":
            return "DependencyFailed", f"dependency {dep} failed"
        if state.phase != "Skipped":
            return None
        if state.reason in PASSING_SKIPS:
            if self.reads_output(name, dep):
                return DEPENDENCY_SKIPPED, f"dependency {dep} was skipped and this task reads its output"
            return None
        return "DependencyFailed", f"dependency {dep} was skipped"

    def handled(self, name: str, states: Mapping[str, TaskState]) -> bool:
        """Return whether the failure of task `name` is handled: a task reading its phase is not skipped."""
        if states[name].reason in NEVER_HANDLED:
            return False
        return any(states[h].phase != "Skipped" for h in self.handlers.get(name, ()))

    def unhandled_failures(self, states: Mapping[str, TaskState], among: Iterable[str]) -> list[str]:
        """Return the tasks among `among` that failed and whose failure is not handled, in that order."""
        return [n for n in among if states[n].phase == "Failed" and not self.handled(n, states)]

    def failing(self, states: Mapping[str, TaskState], among: Iterable[str]) -> bool:
        """Return whether the tasks among `among` make the outcome Failed (see the module docstring)."""
        for name in among:
            state = states[name]
            if state.phase == "Failed" and not self.handled(name, states):
                return True
            if state.phase == "Skipped" and state.reason not in HARMLESS_SKIPS:
                return True
        return False

    def outcome(self, states: Mapping[str, TaskState]) -> tuple[str, list[str]]:
        """Return the outcome of spec.tasks ('Succeeded' or 'Failed') and the names of its failed tasks."""
        failed = [n for n in self.main if states[n].phase == "Failed"]
        return ("Failed" if self.failing(states, self.main) else "Succeeded"), failed

    def main_open(self, states: Mapping[str, TaskState]) -> bool:
        """Return whether a task of spec.tasks has not ended yet (O(tasks): the plan counts instead when it can)."""
        return any(states[n].phase not in TERMINAL_TASK_PHASES for n in self.main)

    def taskjob_vars(self, states: Mapping[str, TaskState]) -> dict[str, object]:
        """Return the `taskjob` CEL variable of a finally task."""
        outcome, failed = self.outcome(states)
        return {"outcome": outcome, "failedTasks": failed}

    def with_outcome(self, task: ResolvedTask, states: Mapping[str, TaskState]) -> ResolvedTask:
        """Return a finally task with TASKJOB_OUTCOME and TASKJOB_FAILED_TASKS added to its env (others as given)."""
        if task.name not in self.final_set:
            return task
        outcome, failed = self.outcome(states)
        listed = ",".join(failed[:MAX_FAILED_LISTED])
        ours = (EnvVar(name=ENV_OUTCOME, value=outcome), EnvVar(name=ENV_FAILED, value=listed))
        given = tuple(e for e in task.env if e.name not in (ENV_OUTCOME, ENV_FAILED))
        return replace(task, env=(*given, *ours))
