"""Validation of `when` conditions and `finally` tasks: (field path, sentence) for each problem.

Pure; reads the raw spec (so it runs even when the schema check failed elsewhere) and is called by
taskjobs.core.validation, which the webhook, the operator and `taskjob validate` share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from . import dag
from .conditions import ConditionError, compile_when
from .inputs import output_references

Found = tuple[str, str]  # (field path, message)
Texts = Callable[[dict[str, Any], dict[str, Any], str], Iterator[tuple[str, str]]]


def _named(tasks: Any) -> list[tuple[int, dict[str, Any]]]:
    if not isinstance(tasks, list):
        return []
    return [(i, t) for i, t in enumerate(tasks) if isinstance(t, dict) and isinstance(t.get("name"), str)]


def _deps(task: Mapping[str, Any]) -> list[str]:
    raw = task.get("dependsOn")
    return [d for d in raw if isinstance(d, str)] if isinstance(raw, list) else []


def problems(spec: Mapping[str, Any], texts: Texts) -> Iterator[Found]:
    """Yield every problem of the spec's conditions and finally tasks."""
    main = _named(spec.get("tasks"))
    final = _named(spec.get("finally"))
    main_names = {t["name"]: i for i, t in main}
    final_names: dict[str, int] = {}
    for j, task in final:
        name = task["name"]
        if name in main_names:
            yield (
                f"spec.finally[{j}].name",
                f"task name {dag.quote(name)} is already used by spec.tasks[{main_names[name]}]: names are unique "
                "across spec.tasks and spec.finally",
            )
        elif name not in final_names:
            final_names[name] = j
    for i, task in main:
        yield from _when_problems(task, f"spec.tasks[{i}]", set(_deps(task)), main_names, final=False)
    if final:
        yield from _finally_graph(final, main_names)
        upstream = _finally_upstream(final, final_names)
        raw_defaults = spec.get("defaults")
        defaults: dict[str, Any] = raw_defaults if isinstance(raw_defaults, dict) else {}
        for j, task in final:
            name = task["name"]
            allowed = set(main_names) | upstream.get(name, set())
            yield from _when_problems(task, f"spec.finally[{j}]", allowed, {**main_names, **final_names}, final=True)
            if "forEach" in task:
                yield (
                    f"spec.finally[{j}].forEach",
                    "a finally task cannot fan out: fan out in spec.tasks and let a finally task read the outcome",
                )
            if task.get("image") is None and defaults.get("image") is None:
                yield (
                    f"spec.finally[{j}].image",
                    f"task {dag.quote(name)} has no image: set spec.finally[{j}].image or spec.defaults.image",
                )
            for path, text in texts(task, defaults, f"spec.finally[{j}]"):
                for ref in output_references(text):
                    if ref in main_names or ref in upstream.get(name, set()):
                        continue
                    ref_text = f"{{{{tasks.{ref}.output}}}}"
                    if ref in final_names:
                        yield path, f"{ref_text} needs finally task {dag.quote(ref)} to end first: add it to dependsOn"
                    else:
                        known = {*main_names, *final_names}
                        yield path, f"{ref_text} names an unknown task{dag.suggest(ref, known)}"


def _when_problems(
    task: Mapping[str, Any], base: str, allowed: set[str], known: Mapping[str, int], *, final: bool
) -> Iterator[Found]:
    source = task.get("when")
    if not isinstance(source, str) or not source.strip():
        return  # the schema reports a missing or non-string value
    path = f"{base}.when"
    try:
        when = compile_when(source)
    except ConditionError as err:
        yield path, str(err)
        return
    name = task["name"]
    add = f"to {base}.dependsOn"
    for ref in sorted(when.tasks):
        if ref in allowed:
            continue
        if ref not in known:
            yield path, f"tasks.{ref} names an unknown task{dag.suggest(ref, known)}"
        elif ref == name:
            yield path, f"tasks.{ref}: a task cannot read its own state"
        elif final:
            yield path, f"tasks.{ref} is a finally task this one does not depend on: add {dag.quote(ref)} {add}"
        else:
            yield path, f"tasks.{ref} is not a dependency of task {dag.quote(name)}: add {dag.quote(ref)} {add}"
    if when.uses_taskjob and not final:
        yield path, "taskjob.outcome and taskjob.failedTasks are set only in spec.finally tasks"
    if when.uses_item and "forEach" not in task:
        yield path, "item is set only in a task with forEach"


def _finally_graph(final: list[tuple[int, dict[str, Any]]], main_names: Mapping[str, int]) -> Iterator[Found]:
    pairs: list[tuple[str, list[str]]] = []
    positions: list[list[int]] = []  # for each finally task, the index in dependsOn of each kept entry
    for j, task in final:
        kept: list[str] = []
        positions.append([])
        for k, dep in enumerate(_deps(task)):
            if dep in main_names:
                yield (
                    f"spec.finally[{j}].dependsOn[{k}]",
                    f"{dag.quote(dep)} is in spec.tasks: finally tasks run after all of those, so list only "
                    "finally tasks here",
                )
            else:
                kept.append(dep)
                positions[-1].append(k)
        pairs.append((task["name"], kept))
    try:
        dag.build(pairs)
    except dag.DagError as err:
        for p in err.problems:
            # dag speaks of spec.tasks[k]; k is the index in this list of finally tasks.
            yield _finally_path(p.path, final, positions), p.message


def _finally_path(path: str, final: list[tuple[int, dict[str, Any]]], positions: list[list[int]]) -> str:
    """Return dag's path (spec.tasks[k].dependsOn[m], over the finally list it was given) as the user wrote it."""
    if not path.startswith("spec.tasks["):
        return path.replace("spec.tasks", "spec.finally", 1)
    k_text, rest = path[len("spec.tasks[") :].split("]", 1)
    k = int(k_text)
    if rest.startswith(".dependsOn["):
        m = int(rest[len(".dependsOn[") :].split("]", 1)[0])
        rest = f".dependsOn[{positions[k][m]}]"
    return f"spec.finally[{final[k][0]}]{rest}"


def _finally_upstream(final: list[tuple[int, dict[str, Any]]], names: Mapping[str, int]) -> dict[str, set[str]]:
    """Return each finally task's direct and transitive finally dependencies (cycles tolerated)."""
    deps = {t["name"]: [d for d in _deps(t) if d in names] for _, t in final}
    result: dict[str, set[str]] = {}
    for name in deps:
        seen: set[str] = set()
        stack = list(deps[name])
        while stack:
            d = stack.pop()
            if d not in seen:
                seen.add(d)
                stack.extend(deps.get(d, ()))
        result[name] = seen
    return result
