"""What a task receives from the tasks before it: which outputs, and in what form.

Pure. The one rule for the operator's reconciler, the local run (`taskjob run`) and validation:

- A task's inputs are the outputs of the tasks it depends on plus of every task its command, args or
  env values reference as `{{tasks.<name>.output}}` (validation makes sure each of those runs before it).
- The value handed on is what the task wrote with its trailing newlines dropped, as the shell's `$(...)`
  drops them; everything else is kept byte for byte. What the task wrote is stored unchanged.
- A fan-out task's output is the JSON list of its instances' outputs (core/fanout.gather); an instance
  receives its task's inputs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping

from .resolve import ResolvedTask

# {{tasks.<name>.output}}, whitespace tolerated inside the braces; group 1 is the task name. The name part
# is loose on purpose: validation then reports a misspelt or mis-cased name as an unknown task with a
# suggestion, and only valid names reach the renderer.
OUTPUT_REF = re.compile(r"\{\{\s*tasks\.([^.\s{}]+)\.output\s*\}\}")


def output_references(text: str) -> list[str]:
    """Return the task names referenced as {{tasks.<name>.output}} in text, in order, without repeats."""
    return list(dict.fromkeys(m.group(1) for m in OUTPUT_REF.finditer(text)))


def _texts(task: ResolvedTask) -> Iterator[str]:
    yield from task.command or ()
    yield from task.args or ()
    yield from (e.value for e in task.env if e.value)


def task_inputs(task: ResolvedTask) -> tuple[str, ...]:
    """Return the tasks whose outputs `task` receives: its dependencies, then the other tasks it references."""
    names = dict.fromkeys(task.depends_on)
    for text in _texts(task):
        if "{{" in text:
            names.update(dict.fromkeys(output_references(text)))
    return tuple(names)


def input_value(written: str) -> str:
    """Return the value a task's output hands to dependents: what it wrote, without trailing newlines."""
    return written.rstrip("\n")


def inputs_for(
    task: ResolvedTask, outputs: Mapping[str, str], succeeded: Callable[[str], bool] = lambda name: False
) -> dict[str, str]:
    """Return {upstream task: value handed on} for `task`, from the outputs written so far (by task).

    `succeeded(name)`: whether that task succeeded; one that did with no output known wrote none (an empty
    output is not stored) and hands on ''.
    """
    inputs: dict[str, str] = {}
    for name in task_inputs(task):
        if name in outputs:
            inputs[name] = input_value(outputs[name])
        elif succeeded(name):
            inputs[name] = ""
    return inputs

