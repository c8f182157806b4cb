"""Fan-out (`forEach`): one task run once per item, as instances named `<task>-<index>`.

Pure. What the planner, the renderer, the local run and validation share:

- The items: `forEach.items` as written, or the output of the task `forEach.fromOutput` names (a
  dependency) parsed as a JSON list. An output that is not a JSON list, or has more than `maxItems`
  elements, is an expansion error: the task fails with that reason (`InvalidForEachOutput`,
  `TooManyItems`). So is an object item lacking a field the task uses as `{{item.<field>}}`.
- Exactly once: the items are a function of the spec and one dependency's output, which never changes
  once that task succeeded and is recorded in the outputs ConfigMap before any instance's Job is
  created. Every plan after a crash therefore derives the same instances, and instance `<task>-<i>`
  attempt `n` is the Job `<taskjob>-<task>-<i>-<n>`: "already exists" means done, as for any task.
- In the plan, instances are units like tasks (status.tasks has an entry `<task>-<i>` for each, each
  retried under the task's policy) and the task itself becomes a join over them: Succeeded when every
  instance succeeded, Failed once every instance ended and one failed, Skipped when every instance
  ended and some were skipped; Running while some run. Its output is the JSON list of the instances'
  outputs in item order (each parsed as JSON when it is JSON, else kept as a string).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .dag import Graph, quote, suggest
from .inputs import input_value
from .models import DEFAULT_MAX_ITEMS, MAX_UNITS, TaskJobMeta, TaskSpec
from .render import CONTAINER, ENV_INPUTS, render_job
from .resolve import ResolvedTask

MAX_FANIN_BYTES = 128 * 1024  # the list a fan-out task hands on: it travels in env vars and args of one Job

LABEL_FANOUT = "taskjob.dev/fan-out"  # on an instance's Job and pod: the fan-out task
LABEL_ITEM = "taskjob.dev/item"  # on an instance's Job and pod: the item's index
ENV_ITEM = "TASKJOB_ITEM"
ENV_ITEM_INDEX = "TASKJOB_ITEM_INDEX"

# {{item}} or {{item.a.b}}, whitespace tolerated inside the braces; group 1 is the field path (".a.b").
ITEM_REF = re.compile(r"\{\{\s*item((?:\.[A-Za-z0-9_-]+)*)\s*\}\}")


def instance_name(task: str, index: int) -> str:
    """Return the name of instance `index` of a fan-out task: `<task>-<index>`."""
    return f"{task}-{index}"


@dataclass(frozen=True)
class Expansion:
    """A fan-out task's items, or why it cannot expand (reason, message)."""

    task: str
    items: tuple[Any, ...] = ()
    reason: str | None = None
    message: str | None = None

    @property
    def ok(self) -> bool:
        """Return whether the task expanded (into len(items) instances)."""
        return self.reason is None


def item_text(item: Any) -> str:
    """Return an item as {{item}} and TASKJOB_ITEM give it: a string as is, anything else as compact JSON."""
    return item if isinstance(item, str) else json.dumps(item, separators=(",", ":"), ensure_ascii=False)


def _field(item: Any, path: str) -> tuple[bool, Any]:
    value = item
    for key in path.split(".")[1:]:
        if not isinstance(value, dict) or key not in value:
            return False, None
        value = value[key]
    return True, value


def substitute_item(text: str, item: Any) -> str:
    """Return `text` with {{item}} and {{item.<field>}} replaced, each `$` doubled for the kubelet."""
    def one(m: re.Match[str]) -> str:
        _, value = _field(item, m.group(1))
        return item_text(value).replace("$", "$$")

    return ITEM_REF.sub(one, text)


def item_fields(texts: Iterable[str]) -> list[str]:
    """Return the field paths (".a.b") used as {{item.<field>}} in texts, in order, without repeats."""
    return list(dict.fromkeys(m.group(1) for t in texts for m in ITEM_REF.finditer(t) if m.group(1)))


def missing_field(items: Sequence[Any], fields: Sequence[str]) -> str | None:
    """Return a sentence on the first item lacking a field the task uses, or None."""
    for i, item in enumerate(items):
        for path in fields:
            if not _field(item, path)[0]:
                return f"item {i} ({_short(item)}) has no field {quote(path[1:])}, used as {{{{item{path}}}}}"
    return None


def _short(item: Any, limit: int = 60) -> str:
    text = json.dumps(item, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def expand(task: TaskSpec, output: str | None, fields: Sequence[str] = ()) -> Expansion | None:
    """Return the expansion of a fan-out task; None while its list is not known (fromOutput not done).

    `output`: what the task forEach.fromOutput names wrote (None: not known); `fields`: the
    {{item.<field>}} paths the task uses, which every item must have.
    """
    each = task.for_each
    assert each is not None
    where = "forEach.items"
    if each.items is not None:
        items: list[Any] = list(each.items)
    else:
        if output is None:
            return None
        where = f"the output of task {each.from_output} (forEach.fromOutput)"
        try:
            parsed = json.loads(input_value(output))
        except ValueError:
            return Expansion(task.name, reason="InvalidForEachOutput", message=f"{where} is not JSON: {_short(output)}")
        if not isinstance(parsed, list):
            return Expansion(
                task.name, reason="InvalidForEachOutput", message=f"{where} is not a JSON list: {_short(parsed)}"
            )
        limit = each.max_items or DEFAULT_MAX_ITEMS
        if len(parsed) > limit:
            return Expansion(
                task.name,
                reason="TooManyItems",
                message=f"{where} has {len(parsed)} items; forEach.maxItems allows {limit}",
            )
        items = parsed
    missing = missing_field(items, fields)
    if missing is not None:
        return Expansion(task.name, reason="InvalidForEachItem", message=f"{where}: {missing}")
    return Expansion(task.name, items=tuple(items))


def gather(outputs: Sequence[str | None]) -> str:
    """Return a fan-out task's output: the JSON list of its instances' outputs, in item order.

    Each output, without trailing newlines, is parsed as JSON when it is JSON and kept as a string otherwise.
    """
    values: list[Any] = []
    for out in outputs:
        text = input_value(out or "")
        try:
            values.append(json.loads(text))
        except ValueError:
            values.append(text)
    return json.dumps(values, separators=(",", ":"), ensure_ascii=False)


# ---------------------------------------------------------------- the graph of units


@dataclass(frozen=True)
class Units:
    """The graph the plan walks once fan-out tasks expanded: instances in place of their task's Job."""

    graph: Graph
    parent: Mapping[str, str]  # instance -> its fan-out task
    index: Mapping[str, int]  # instance -> its item's index
    joins: frozenset[str]  # the expanded fan-out tasks: decided from their instances, never run


def units(graph: Graph, counts: Mapping[str, int]) -> Units:
    """Return the unit graph: each fan-out task with n instances gets units <task>-0..<task>-(n-1).

    An instance depends on its task's dependencies; the task (the join) on its dependencies and its
    instances; dependents keep depending on the task. Instances come just before their task in the order.
    """
    deps: dict[str, tuple[str, ...]] = dict(graph.deps)
    dependents: dict[str, list[str]] = {n: list(v) for n, v in graph.dependents.items()}
    order: list[str] = []
    parent: dict[str, str] = {}
    index: dict[str, int] = {}
    for name in graph.order:
        n = counts.get(name)
        if n is not None:
            mine = [instance_name(name, i) for i in range(n)]
            for i, unit in enumerate(mine):
                parent[unit] = name
                index[unit] = i
                deps[unit] = graph.deps[name]
                dependents[unit] = [name]
                order.append(unit)
            for dep in graph.deps[name]:
                dependents[dep].extend(mine)
            deps[name] = (*graph.deps[name], *mine)
        order.append(name)
    return Units(
        graph=Graph(
            names=tuple(order),
            deps=deps,
            dependents={n: tuple(v) for n, v in dependents.items()},
            order=tuple(order),
        ),
        parent=parent,
        index=index,
        joins=frozenset(counts),
    )


def split(spec_names: Mapping[str, TaskSpec], unit: str) -> tuple[str, int] | None:
    """Return (fan-out task, index) when `unit` names an instance, else None (validation keeps this unambiguous)."""
    task, _, digits = unit.rpartition("-")
    spec = spec_names.get(task)
    if spec is None or spec.for_each is None or not digits.isdigit() or (len(digits) > 1 and digits[0] == "0"):
        return None
    return task, int(digits)


# ---------------------------------------------------------------- an instance's Job


def render_unit(
    meta: TaskJobMeta,
    task: ResolvedTask,
    unit: str,
    attempt: int,
    inputs: Mapping[str, str],
    instance: tuple[int, Any] | None = None,
) -> dict[str, Any]:
    """Return the Job for one attempt of a unit: a task, or (with `instance` = (index, item)) an instance of one.

    An instance's Job is its task's, named and labelled as the unit, with {{item}} substituted in the
    `task` container's command, args and env values, TASKJOB_ITEM and TASKJOB_ITEM_INDEX set, and the
    labels taskjob.dev/fan-out=<task> and taskjob.dev/item=<index> on the Job and its pod.
    """
    if instance is None:
        return render_job(meta, task, attempt, inputs)
    index, item = instance
    job = render_job(meta, dataclasses.replace(task, name=unit), attempt, inputs)
    extra = {LABEL_FANOUT: task.name, LABEL_ITEM: str(index)}
    job["metadata"]["labels"].update(extra)
    job["spec"]["template"]["metadata"]["labels"].update(extra)
    for container in job["spec"]["template"]["spec"]["containers"]:
        if container.get("name") != CONTAINER:
            continue
        for key in ("command", "args"):
            if key in container:
                container[key] = [substitute_item(s, item) for s in container[key]]
        env = container["env"]
        for var in env:
            if isinstance(var.get("value"), str):
                var["value"] = substitute_item(var["value"], item)
        ours = next(i for i, var in enumerate(env) if var["name"] == ENV_INPUTS) + 1
        env[ours:ours] = [
            {"name": ENV_ITEM, "value": item_text(item).replace("$", "$$")},
            {"name": ENV_ITEM_INDEX, "value": str(index)},
        ]
        container["env"] = [v for i, v in enumerate(env) if i < ours + 2 or v["name"] not in (ENV_ITEM, ENV_ITEM_INDEX)]
    return job


# ---------------------------------------------------------------- validation

MAX_FANOUT_NAME = 58  # "-<index>" (up to "-9999") must fit the 63-character label value taskjob.dev/task


def spec_problems(tasks: Sequence[Any], defaults: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Yield (field path, reason) for each fan-out problem in the raw tasks (spec.tasks as written)."""
    names = {t["name"]: i for i, t in enumerate(tasks) if isinstance(t, dict) and isinstance(t.get("name"), str)}
    fanouts = {
        t["name"]: i
        for i, t in enumerate(tasks)
        if isinstance(t, dict) and isinstance(t.get("name"), str) and isinstance(t.get("forEach"), dict)
    }
    units = 0
    for i, task in enumerate(tasks):
        if not isinstance(task, dict):
            continue
        base = f"spec.tasks[{i}]"
        name = task.get("name")
        texts = list(_raw_texts(task, defaults, base))
        each = task.get("forEach")
        if isinstance(name, str):
            owner, _, digits = name.rpartition("-")
            if owner in fanouts and digits.isdigit() and owner != name:
                yield (
                    f"{base}.name",
                    f"the name {quote(name)} is taken by instance {digits} of fan-out task {quote(owner)} "
                    f"(spec.tasks[{fanouts[owner]}]): rename one of them",
                )
        if not isinstance(each, dict):
            units += 1
            for path, text in texts:
                if ITEM_REF.search(text):
                    yield path, "{{item}} is only set in a task with forEach: add spec.tasks[].forEach or remove it"
            continue
        if isinstance(name, str) and len(name) > MAX_FANOUT_NAME:
            yield (
                f"{base}.name",
                f"a fan-out task's name is at most {MAX_FANOUT_NAME} characters, so that its instances' names "
                f"(<name>-<index>) fit in a 63-character label value",
            )
        where = f"{base}.forEach"
        items, source, limit = each.get("items"), each.get("fromOutput"), each.get("maxItems")
        if (items is None) == (source is None):
            yield where, "set exactly one of items (a literal list) and fromOutput (a dependency's output)"
        if items is not None and limit is not None:
            yield f"{where}.maxItems", "applies to fromOutput only: a literal list's length is its limit"
        if isinstance(source, str):
            raw = task.get("dependsOn")
            deps: list[Any] = raw if isinstance(raw, list) else []
            if source not in names:
                yield f"{where}.fromOutput", f"names an unknown task {quote(source)}{suggest(source, names)}"
            elif source == name:
                yield f"{where}.fromOutput", "a task cannot fan out over its own output"
            elif source not in deps:
                yield (
                    f"{where}.fromOutput",
                    f"task {quote(source)} must finish first: add it to {base}.dependsOn (its output is the list)",
                )
        if isinstance(items, list):
            units += 1 + len(items)
            fields = item_fields(t for _, t in texts)
            for k, item in enumerate(items):
                for path in fields:
                    if not _field(item, path)[0]:
                        used = next(p for p, t in texts if f"item{path}" in t.replace(" ", ""))
                        yield (
                            f"{where}.items[{k}]",
                            f"has no field {quote(path[1:])}, used as {{{{item{path}}}}} in {used}",
                        )
        elif source is not None:
            units += 1 + (limit if isinstance(limit, int) and not isinstance(limit, bool) else DEFAULT_MAX_ITEMS)
    if units > MAX_UNITS and fanouts:
        first = min(fanouts.values())
        yield (
            f"spec.tasks[{first}].forEach",
            f"the TaskJob would hold up to {units:,} tasks and fan-out instances (fromOutput counts as its maxItems, "
            f"default {DEFAULT_MAX_ITEMS:,}); the limit is {MAX_UNITS:,}: fewer items, a lower maxItems, or split it",
        )


def _raw_texts(task: Mapping[str, Any], defaults: Mapping[str, Any], base: str) -> Iterator[tuple[str, str]]:
    """Yield (path, text) for a raw task's effective command, args and env values."""
    for key in ("command", "args", "env"):
        where, values = (base, task.get(key)) if task.get(key) is not None else ("spec.defaults", defaults.get(key))
        if not isinstance(values, list):
            continue
        for j, value in enumerate(values):
            if key == "env":
                if isinstance(value, dict) and isinstance(value.get("value"), str):
                    yield f"{where}.env[{j}].value", value["value"]
            elif isinstance(value, str):
                yield f"{where}.{key}[{j}]", value


# ---------------------------------------------------------------- views


def instance_summary(items: int, phases: Iterable[str]) -> str:
    """Return e.g. '4 instances: 3 succeeded, 1 running': a fan-out task's instances by phase."""
    counts: dict[str, int] = {}
    for phase in phases:
        counts[phase] = counts.get(phase, 0) + 1
    order = ("Running", "Retrying", "Succeeded", "Failed", "Skipped", "Ready", "Waiting")
    parts = [f"{counts[p]} {p.lower()}" for p in order if counts.get(p)]
    head = f"{items} instance" if items == 1 else f"{items} instances"
    return f"{head}: {', '.join(parts)}" if parts else head
