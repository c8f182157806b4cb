"""The one input rule: which outputs a task receives, and the value each hands on."""

from __future__ import annotations

import pytest

from taskjobs.core.inputs import input_value, inputs_for, output_references, task_inputs
from taskjobs.core.models import EnvVar
from taskjobs.core.resolve import ResolvedRetry, ResolvedTask


def task(depends_on: tuple[str, ...] = (), *, command: tuple[str, ...] | None = None,
         args: tuple[str, ...] | None = None, env: tuple[EnvVar, ...] = ()) -> ResolvedTask:
    return ResolvedTask(
        name="t", image="busybox", command=command, args=args, env=env, resources=None, retry=ResolvedRetry(),
        timeout_seconds=None, startup_timeout_seconds=300, pod_template=None, depends_on=depends_on, priority=0,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{tasks.a.output}}", ["a"]),
        ("x={{ tasks.extract.output }} y={{tasks.b-2.output}}", ["extract", "b-2"]),
        ("{{tasks.a.output}}{{tasks.a.output}}", ["a"]),
        ("{{\ttasks.a.output\n}}", ["a"]),
        ("{{tasks.a.outputs}} {{task.a.output}} {tasks.a.output} $(tasks.a.output)", []),
        ("", []),
    ],
)
def test_output_references(text: str, expected: list[str]) -> None:
    assert output_references(text) == expected


def test_a_task_receives_its_dependencies_then_every_task_it_references() -> None:
    t = task(
        ("b",),
        command=("sh", "-c"),
        args=("{{tasks.a.output}} {{tasks.b.output}}",),
        env=(EnvVar(name="X", value="{{ tasks.c.output }}"), EnvVar(name="Y")),
    )
    assert task_inputs(t) == ("b", "a", "c")
    assert task_inputs(task(("a", "b"))) == ("a", "b")
    assert task_inputs(task()) == ()


@pytest.mark.parametrize(
    ("written", "handed_on"),
    [
        ("42\n", "42"),
        ("42\n\n\n", "42"),  # $(...) drops every trailing newline
        ("a\nb\n", "a\nb"),  # inner newlines stay
        ("  spaced \t", "  spaced \t"),  # other whitespace stays
        ("crlf\r\n", "crlf\r"),  # only newlines go, as in the shell
        ("\n", ""),
        ("", ""),
        ("$(HOME) costs $3", "$(HOME) costs $3"),
    ],
)
def test_the_value_handed_on_is_what_was_written_without_trailing_newlines(written: str, handed_on: str) -> None:
    assert input_value(written) == handed_on


def test_inputs_for_gives_each_written_input_by_the_rule_and_leaves_out_unwritten_ones() -> None:
    t = task(("a",), args=("{{tasks.b.output}} {{tasks.c.output}}",))
    assert inputs_for(t, {"a": "1\n", "b": "two\n\n", "z": "unused"}) == {"a": "1", "b": "two"}
