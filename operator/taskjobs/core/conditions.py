"""`when` conditions: CEL expressions over a task's dependencies, compiled once and evaluated purely.

Pure: no clock, no I/O. The expression language is CEL (Kubernetes' own, via cel-python): no `eval`
and no parser of ours. What an expression may read:

- `tasks.<name>.phase`, `tasks.<name>.reason`, `tasks.<name>.output` for each task it depends on
  (a finally task also for every main task); `output` is the value handed on ('' when none);
- `item`: the fan-out item, when the task is one instance of a fan-out (see `evaluate`);
- `taskjob.outcome` ('Succeeded' or 'Failed') and `taskjob.failedTasks` (a list of names) in a
  finally task.

Reading a dependency's `phase` or `reason` says that the task handles its outcome: the dependency's
failure does not skip it (see taskjobs.core.plan, "Conditions").

cel-python is used through `cel.py`, imported the first time an expression is compiled: with the
parser and the libraries it brings it is about 16 MiB of the operator's memory, which TaskJobs without
`when` never need (B4, docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

TASK_FIELDS = ("phase", "reason", "output")
OUTCOME_FIELDS = frozenset({"phase", "reason"})
ROOTS = ("tasks", "item", "taskjob")

class ConditionError(ValueError):
    """A condition that cannot be compiled or evaluated; the message says why, for a user."""


@dataclass(frozen=True)
class When:
    """A compiled `when` expression and what it reads."""

    source: str
    program: Any  # celpy Runner
    tasks: frozenset[str]  # tasks it reads
    outcomes: frozenset[str]  # tasks whose phase or reason it reads: it handles their failure
    outputs: frozenset[str]  # tasks whose output it reads
    uses_item: bool
    uses_taskjob: bool


def compile_when(source: str) -> When:
    """Return the compiled expression; raise ConditionError naming what is wrong."""
    cel = _cel()
    tree = cel.parse(source)
    tasks: set[str] = set()
    outcomes: set[str] = set()
    outputs: set[str] = set()
    roots: set[str] = set()
    for root, path in cel.references(tree):
        roots.add(root)
        if root not in ROOTS:
            raise ConditionError(f"unknown variable {root!r}: use tasks.<name>.phase|reason|output, item or taskjob")
        if root != "tasks":
            continue
        if not path or path[0] is None:
            raise ConditionError("read a task as tasks.<name> or tasks['<name>'], with the name written out")
        name = path[0]
        field = path[1] if len(path) > 1 else None
        if field not in TASK_FIELDS:
            raise ConditionError(f"read tasks.{name}.phase, tasks.{name}.reason or tasks.{name}.output")
        tasks.add(name)
        (outcomes if field in OUTCOME_FIELDS else outputs).add(name)
    return When(
        source=source,
        program=cel.program(tree),
        tasks=frozenset(tasks),
        outcomes=frozenset(outcomes),
        outputs=frozenset(outputs),
        uses_item="item" in roots,
        uses_taskjob="taskjob" in roots,
    )


def evaluate(
    when: When,
    tasks: Mapping[str, Mapping[str, str]],
    item: Any = None,
    taskjob: Mapping[str, Any] | None = None,
) -> bool:
    """Return the condition's value for the tasks' {phase, reason, output} and an optional fan-out item.

    Raises ConditionError when it cannot be evaluated (e.g. int() of a non-number) or is not a bool.
    `item` is None outside a fan-out: then reading `item` is an evaluation error.
    """
    activation: dict[str, Any] = {"tasks": {n: {f: v.get(f, "") for f in TASK_FIELDS} for n, v in tasks.items()}}
    if item is not None:
        activation["item"] = item
    if taskjob is not None:
        activation["taskjob"] = dict(taskjob)
    value: bool = _cel().run(when.program, when.source, activation)
    return value


def _cel() -> ModuleType:
    """Return cel-python's side of `when` (cel.py), importing it the first time."""
    from . import cel

    return cel


