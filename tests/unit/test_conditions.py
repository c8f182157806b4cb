"""`when` conditions: CEL compiled once, evaluated purely, and checked at validation with the field named."""

from __future__ import annotations

import re
from typing import Any

import pytest

from taskjobs.core.conditions import ConditionError, compile_when, evaluate
from taskjobs.core.validation import validate_spec


def ok(**tasks: str) -> dict[str, dict[str, str]]:
    return {name: {"phase": "Succeeded", "output": out} for name, out in tasks.items()}


@pytest.mark.parametrize(
    ("source", "tasks", "expected"),
    [
        ("tasks.a.phase == 'Failed'", {"a": {"phase": "Failed"}}, True),
        ("tasks.a.phase == 'Failed'", {"a": {"phase": "Succeeded"}}, False),
        ("tasks.a.output == 'yes'", ok(a="yes"), True),
        ("int(tasks.count.output) > 3", ok(count="7"), True),
        ("int(tasks.count.output) > 3", ok(count="2"), False),
        ("tasks['my-task'].output.startsWith('go')", {"my-task": {"phase": "Succeeded", "output": "go on"}}, True),
        ("tasks.a.reason == 'Timeout'", {"a": {"phase": "Failed", "reason": "Timeout"}}, True),
        ("1 == 2", {}, False),
    ],
)
def test_a_condition_reads_dependencies_phases_reasons_and_outputs(
    source: str, tasks: dict[str, dict[str, str]], expected: bool
) -> None:
    assert evaluate(compile_when(source), tasks) is expected


def test_the_evaluator_takes_an_optional_fan_out_item_and_the_taskjob_outcome() -> None:
    assert evaluate(compile_when("item.size > 2"), {}, item={"size": 3}) is True
    assert evaluate(compile_when("item == 'b'"), {}, item="a") is False
    with pytest.raises(ConditionError, match="undeclared reference to 'item'"):
        evaluate(compile_when("item == 'b'"), {})
    finale = compile_when("taskjob.outcome == 'Failed' && 'load' in taskjob.failedTasks")
    assert evaluate(finale, {}, taskjob={"outcome": "Failed", "failedTasks": ["load"]}) is True


def test_what_a_condition_reads_is_known_before_it_runs() -> None:
    when = compile_when("tasks.a.phase == 'Failed' || (int(tasks.b.output) > 1 && tasks.c.reason != '')")
    assert (when.tasks, when.outcomes, when.outputs) == ({"a", "b", "c"}, {"a", "c"}, {"b"})
    assert not when.uses_item and not when.uses_taskjob
    loop = compile_when("taskjob.failedTasks.exists(t, t == 'a')")  # a macro's loop variable is not ours
    assert loop.uses_taskjob and loop.tasks == frozenset()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("tasks.a.phase ==", "not a valid CEL expression: syntax error at column"),
        ("tasks.a", "read tasks.a.phase, tasks.a.reason or tasks.a.output"),
        ("tasks.a.exitcode == 1", "read tasks.a.phase"),
        ("tasks[name].phase == 'x'", "with the name written out"),
        ("phase == 'x'", "unknown variable 'phase'"),
    ],
)
def test_a_bad_condition_is_refused_with_the_reason(source: str, message: str) -> None:
    with pytest.raises(ConditionError, match=message):
        compile_when(source)


@pytest.mark.parametrize(
    ("source", "tasks", "message"),
    [
        ("int(tasks.a.output) > 3", ok(a="many"), "cannot evaluate 'int(tasks.a.output) > 3': invalid literal"),
        ("tasks.a.output", ok(a="yes"), "must be true or false, not the string 'yes'"),
    ],
)
def test_a_condition_that_cannot_be_evaluated_says_why(
    source: str, tasks: dict[str, dict[str, str]], message: str
) -> None:
    with pytest.raises(ConditionError, match=re.escape(message)):
        evaluate(compile_when(source), tasks)


def problems(spec: dict[str, Any]) -> list[str]:
    parsed, found = validate_spec(spec)
    assert (parsed is None) == bool(found)
    return [str(p) for p in found]


def t(name: str, *deps: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox", **({"dependsOn": list(deps)} if deps else {}), **fields}


def test_validation_names_the_field_and_the_cel_error() -> None:
    spec = {"tasks": [t("a"), t("b"), t("c", "a", when="tasks.a.phase = 'Failed'")]}
    assert problems(spec) == [
        "spec.tasks[2].when: not a valid CEL expression: syntax error at column 15 of \"tasks.a.phase = 'Failed'\""
    ]


def test_validation_refuses_a_condition_on_a_task_that_is_not_a_dependency() -> None:
    spec = {"tasks": [t("a"), t("b"), t("c", "a", when="tasks.b.phase == 'Failed' && tasks.aa.output == ''")]}
    assert problems(spec) == [
        'spec.tasks[2].when: tasks.aa names an unknown task (did you mean "a"?)',
        'spec.tasks[2].when: tasks.b is not a dependency of task "c": add "b" to spec.tasks[2].dependsOn',
    ]


def test_validation_keeps_taskjob_for_finally_tasks_and_item_for_fan_out() -> None:
    spec = {"tasks": [t("a", when="taskjob.outcome == 'Failed' || item == 1")]}
    assert problems(spec) == [
        "spec.tasks[0].when: taskjob.outcome and taskjob.failedTasks are set only in spec.finally tasks",
        "spec.tasks[0].when: item is set only in a task with forEach",
    ]


def test_validation_of_finally_tasks() -> None:
    spec = {
        "tasks": [t("a")],
        "finally": [
            t("a"),
            {"name": "n", "dependsOn": ["a", "m"], "when": "tasks.m.phase == 'Failed'"},
            t("m", "n", args=["{{tasks.zz.output}}"]),
            t("ok", when="tasks.a.phase == 'Failed' && taskjob.outcome == 'Failed'", args=["{{tasks.a.output}}"]),
        ],
    }
    assert problems(spec) == [
        'spec.finally[0].name: task name "a" is already used by spec.tasks[0]: names are unique across '
        "spec.tasks and spec.finally",
        'spec.finally[1].dependsOn[0]: "a" is in spec.tasks: finally tasks run after all of those, so list only '
        "finally tasks here",
        "spec.finally[1].dependsOn[1]: dependency cycle n → m → n: each task depends on the one before it",
        'spec.finally[1].image: task "n" has no image: set spec.finally[1].image or spec.defaults.image',
        "spec.finally[2].args[0]: {{tasks.zz.output}} names an unknown task",
    ]
    good = {"tasks": [t("a")], "finally": [t("notify", when="tasks.a.phase == 'Failed'", args=["{{tasks.a.output}}"])]}
    assert problems(good) == []


def test_the_operator_loads_cel_only_when_a_taskjob_uses_when() -> None:
    """cel-python and its parser are ~8 MiB of the operator's RSS: an operator whose TaskJobs have no `when`
    (validating, planning and rendering them) must not load them; the first `when` does."""
    import subprocess
    import sys

    script = """
import sys
import taskjobs.cli.main, taskjobs.shell.run, taskjobs.shell.webhook
from taskjobs.core.validation import validate_taskjob
tasks = [{"name": "a"}, {"name": "b", "dependsOn": ["a"]}]
body = {"apiVersion": "taskjob.dev/v1alpha1", "kind": "TaskJob", "metadata": {"name": "t", "namespace": "n"},
        "spec": {"defaults": {"image": "busybox"}, "tasks": tasks}}
assert validate_taskjob(body).ok
print("celpy" in sys.modules, "lark" in sys.modules)
tasks[1]["when"] = "tasks.a.phase == 'Succeeded'"
assert validate_taskjob(body).ok
print("celpy" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False", "True"]
