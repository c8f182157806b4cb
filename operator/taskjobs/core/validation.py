"""One validation of a TaskJob, shared by the operator, the admission webhook and the CLI.

It reports every problem at once, each as a field path in camelCase (`spec.tasks[2].retry.limit`) and
a sentence saying what is wrong and how to fix it. It never raises: any input gives a result.

Pure: no I/O, no kopf, no client.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from . import dag, fanout, flowcheck
from .inputs import OUTPUT_REF, output_references
from .models import DNS_LABEL, MAX_TASKS, TaskJob, TaskJobMeta, TaskJobSpec, TaskJobStatus

API_VERSION = "taskjob.dev/v1alpha1"
KIND = "TaskJob"
MAX_NAME = 63  # the TaskJob name is used in Job names and is a label value on every Job and pod
MAX_DEPTH = 100  # deeper input is refused before any recursive walk could hit Python's recursion limit
TOP_LEVEL_FIELDS = ("apiVersion", "kind", "metadata", "spec", "status")

# Anything that starts like a reference; those OUTPUT_REF does not match are reported as malformed.
_REF_LIKE = re.compile(r"\{\{\s*tasks\b[^{}]*\}\}")

_DNS_LABEL = re.compile(DNS_LABEL)
_NAME_PREFIX = re.compile(r"^[a-z0-9][-a-z0-9]*$")
_LABEL_RULE = "lowercase letters, digits and '-', starting and ending with a letter or digit"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a TaskJob: the field path (spec.tasks[2].retry.limit) and why."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass(frozen=True)
class ValidationResult:
    """The outcome of validating one TaskJob manifest."""

    taskjob: TaskJob | None  # the parsed model; set exactly when there are no problems
    problems: tuple[Problem, ...]
    graph: dag.Graph | None = None  # the validated task graph, when there are no problems

    @property
    def ok(self) -> bool:
        """Return True when the TaskJob has no problems."""
        return not self.problems


def summarize(problems: Sequence[Problem], limit: int = 3) -> str:
    """Return the first `limit` problems as one line, counting the rest (for status messages and Events)."""
    shown = "; ".join(str(p) for p in problems[:limit])
    rest = len(problems) - limit
    return f"{shown} (and {rest} more)" if rest > 0 else shown


def validate_taskjob(obj: Mapping[str, Any]) -> ValidationResult:
    """Return the parsed TaskJob with its graph, or every problem found in the manifest."""
    try:
        return _validate_taskjob(obj)
    except Exception as exc:  # a bug here must not crash the operator or the webhook
        return ValidationResult(None, (Problem("", f"could not validate the TaskJob: {exc!r}"),))


def validate_spec(spec: Mapping[str, Any]) -> tuple[TaskJobSpec | None, tuple[Problem, ...]]:
    """Return the parsed spec, or None and every problem found in it (paths start with "spec")."""
    try:
        parsed, _, problems = _validate_spec(_plain(spec))
    except _TooDeep as exc:
        return None, (Problem(exc.path("spec"), str(exc)),)
    except Exception as exc:
        return None, (Problem("spec", f"could not validate the spec: {exc!r}"),)
    return parsed, problems


# ---------------------------------------------------------------- the manifest


def _validate_taskjob(raw: Any) -> ValidationResult:
    if isinstance(raw, Mapping) and isinstance(raw.get("metadata"), Mapping) and "managedFields" in raw["metadata"]:
        # The server's record of field owners mirrors the spec's shape (as deep, as big): not user input.
        raw = {**raw, "metadata": {k: v for k, v in raw["metadata"].items() if k != "managedFields"}}
    try:
        obj = _plain(raw)
    except _TooDeep as exc:
        return ValidationResult(None, (Problem(exc.path(), str(exc)),))
    if not isinstance(obj, dict):
        return ValidationResult(None, (Problem("", f"a TaskJob must be an object{_got(obj)}"),))
    problems: list[Problem] = []
    if obj.get("apiVersion") != API_VERSION:
        problems.append(Problem("apiVersion", f"must be {_quote(API_VERSION)}{_got(obj.get('apiVersion'))}"))
    if obj.get("kind") != KIND:
        problems.append(Problem("kind", f"must be {_quote(KIND)}{_got(obj.get('kind'))}"))
    for key in obj:
        if key not in TOP_LEVEL_FIELDS:
            problems.append(_unknown_field(str(key), str(key), TOP_LEVEL_FIELDS))
    meta, meta_problems = _validate_metadata(obj.get("metadata"))
    problems.extend(meta_problems)
    if "spec" in obj:
        spec, graph, spec_problems = _validate_spec(obj["spec"])
        problems.extend(spec_problems)
    else:
        spec, graph = None, None
        problems.append(Problem("spec", "is required"))
    if problems or meta is None or spec is None:
        return ValidationResult(None, _ordered(problems))
    taskjob = TaskJob(metadata=meta, spec=spec, status=_status(obj.get("status")))
    return ValidationResult(taskjob, (), graph)


def _validate_metadata(meta: Any) -> tuple[TaskJobMeta | None, list[Problem]]:
    if not isinstance(meta, dict):
        what = "is required" if meta is None else f"must be an object{_got(meta)}"
        return None, [Problem("metadata", f"{what}; it needs at least a name")]
    name, prefix = meta.get("name"), meta.get("generateName")
    problems: list[Problem] = []
    if name is not None:
        if not isinstance(name, str) or not _DNS_LABEL.fullmatch(name) or len(name) > MAX_NAME:
            problems.append(
                Problem(
                    "metadata.name",
                    f"must be a DNS-1123 label of at most {MAX_NAME} characters ({_LABEL_RULE}): it is used in "
                    f"Job names and label values{_got(name)}",
                )
            )
    elif prefix is not None:
        if not isinstance(prefix, str) or not _NAME_PREFIX.fullmatch(prefix):
            problems.append(
                Problem(
                    "metadata.generateName",
                    f"must start with a lowercase letter or digit and contain only "
                    f"lowercase letters, digits and '-'{_got(prefix)}",
                )
            )
    else:
        problems.append(Problem("metadata.name", "is required (or set metadata.generateName)"))
    if problems:
        return None, problems
    try:
        # Until the server assigns a name, a generateName manifest is known by its prefix.
        return TaskJobMeta.model_validate({**meta, "name": name if name is not None else prefix}), []
    except ValidationError as exc:
        return None, [_problem("metadata", err, TaskJobMeta) for err in exc.errors()]


def _status(status: Any) -> TaskJobStatus | None:
    # Status is the operator's own record, not user input: an unreadable one is rebuilt, not reported.
    if not isinstance(status, dict):
        return None
    try:
        return TaskJobStatus.model_validate(status)
    except ValidationError:
        return None


# ---------------------------------------------------------------- the spec


def _validate_spec(spec: Any) -> tuple[TaskJobSpec | None, dag.Graph | None, tuple[Problem, ...]]:
    if not isinstance(spec, dict):
        return None, None, (Problem("spec", f"must be an object{_got(spec)}"),)
    problems: list[Problem] = []
    parsed: TaskJobSpec | None = None
    try:
        # Strict and by alias only: accept exactly what the API server's schema accepts ("3" is not
        # an integer, depends_on is not dependsOn).
        parsed = TaskJobSpec.model_validate(spec, strict=True, by_alias=True, by_name=False)
    except ValidationError as exc:
        problems.extend(_problem("spec", err, TaskJobSpec) for err in exc.errors())

    graph: dag.Graph | None = None
    tasks = spec.get("tasks")
    # The checks below read the raw tasks so they run even when the schema check failed elsewhere.
    if isinstance(tasks, list) and 0 < len(tasks) <= MAX_TASKS:
        pairs = _dag_input(tasks)
        if pairs is not None:
            try:
                graph = dag.build(pairs)
            except dag.DagError as exc:
                problems.extend(Problem(p.path, p.message) for p in exc.problems)
        problems.extend(_repeated_dependencies(tasks))
        problems.extend(_image_problems(spec, tasks))
        problems.extend(_reference_problems(spec, tasks))
        problems.extend(Problem(path, message) for path, message in flowcheck.problems(spec, _texts))
        raw_defaults = spec.get("defaults")
        defaults: dict[str, Any] = raw_defaults if isinstance(raw_defaults, dict) else {}
        problems.extend(Problem(path, why) for path, why in fanout.spec_problems(tasks, defaults))
    if problems:
        return None, None, _ordered(problems)
    return parsed, graph, ()


def _dag_input(tasks: list[Any]) -> list[tuple[str, Sequence[str]]] | None:
    """Return (name, dependsOn) pairs, or None when the tasks are too malformed to form a graph."""
    pairs: list[tuple[str, Sequence[str]]] = []
    for task in tasks:
        if not isinstance(task, dict) or not isinstance(task.get("name"), str):
            return None
        deps = task.get("dependsOn")
        if deps is None:
            deps = []
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            return None
        pairs.append((task["name"], deps))
    return pairs


def _repeated_dependencies(tasks: list[Any]) -> Iterator[Problem]:
    # The schema makes dependsOn a set, so the API server refuses repeats: say so here too.
    for i, task in enumerate(tasks):
        deps = task.get("dependsOn") if isinstance(task, dict) else None
        if not isinstance(deps, list):
            continue
        seen: set[str] = set()
        for j, dep in enumerate(deps):
            if isinstance(dep, str):
                if dep in seen:
                    yield Problem(f"spec.tasks[{i}].dependsOn[{j}]", f"{_quote(dep)} is listed twice")
                seen.add(dep)


def _image_problems(spec: dict[str, Any], tasks: list[Any]) -> Iterator[Problem]:
    defaults = spec.get("defaults")
    if isinstance(defaults, dict) and defaults.get("image") is not None:
        return
    for i, task in enumerate(tasks):
        if isinstance(task, dict) and task.get("image") is None:
            who = f"task {_quote(task['name'])}" if isinstance(task.get("name"), str) else "this task"
            yield Problem(
                f"spec.tasks[{i}].image", f"{who} has no image: set spec.tasks[{i}].image or spec.defaults.image"
            )


def _reference_problems(spec: dict[str, Any], tasks: list[Any]) -> Iterator[Problem]:
    index: dict[str, int] = {}
    deps: dict[str, list[str]] = {}
    for i, task in enumerate(tasks):
        if isinstance(task, dict) and isinstance(task.get("name"), str) and task["name"] not in index:
            index[task["name"]] = i
            raw = task.get("dependsOn")
            deps[task["name"]] = [d for d in raw if isinstance(d, str)] if isinstance(raw, list) else []
    raw_defaults = spec.get("defaults")
    defaults: dict[str, Any] = raw_defaults if isinstance(raw_defaults, dict) else {}
    upstream = _Upstream(deps)
    for name, i in index.items():
        task = tasks[i]
        for path, text in _texts(task, defaults, f"spec.tasks[{i}]"):
            for bad in _malformed(text):
                yield Problem(path, f"malformed output reference {_quote(bad)}: write {{{{tasks.<name>.output}}}}")
            for ref in output_references(text):
                ref_text = f"{{{{tasks.{ref}.output}}}}"
                # The same inherited text is checked once per inheriting task: say which one.
                what = ref_text if path.startswith("spec.tasks") else f"{ref_text} (inherited by task {_quote(name)})"
                if ref not in index:
                    yield Problem(path, f"{ref_text} names an unknown task{dag.suggest(ref, index)}")
                elif ref == name:
                    yield Problem(path, f"{what}: a task cannot use its own output")
                elif upstream.known_not_upstream(ref, name):
                    yield Problem(
                        path,
                        f"{what} needs task {_quote(ref)} to finish before task {_quote(name)}: "
                        f"add {_quote(ref)} to spec.tasks[{i}].dependsOn",
                    )


def _texts(task: dict[str, Any], defaults: dict[str, Any], base: str) -> Iterator[tuple[str, str]]:
    """Yield (path, text) for the task's effective command, args and env values (inherited ones too)."""
    for field in ("command", "args", "env"):
        where, values = (
            (base, task.get(field)) if task.get(field) is not None else ("spec.defaults", defaults.get(field))
        )
        if not isinstance(values, list):
            continue
        for j, item in enumerate(values):
            if field == "env":
                if isinstance(item, dict) and isinstance(item.get("value"), str):
                    yield f"{where}.env[{j}].value", item["value"]
            elif isinstance(item, str):
                yield f"{where}.{field}[{j}]", item


def _malformed(text: str) -> list[str]:
    if "{{" not in text:
        return []
    return [m.group(0) for m in _REF_LIKE.finditer(text) if not OUTPUT_REF.fullmatch(m.group(0))]


class _Upstream:
    """Answers "does task run after ref?" for many pairs without quadratic work."""

    # Tasks caught in or behind a dependency cycle have no topological order; for them each question
    # walks the dependencies, and this caps the total walking so a broken 10,000-task graph cannot
    # stall the operator. Past it, such tasks are not checked (the cycle is reported anyway).
    WALK_BUDGET = 1_000_000

    def __init__(self, deps: Mapping[str, Sequence[str]]) -> None:
        self._deps = {name: [d for d in ds if d in deps and d != name] for name, ds in deps.items()}
        self._bits: dict[str, int] | None = None
        self._position = {name: i for i, name in enumerate(deps)}
        self._walked: dict[str, set[str]] = {}
        self._budget = self.WALK_BUDGET

    def known_not_upstream(self, ref: str, task: str) -> bool:
        """Return True if `ref` is certainly not a direct or transitive dependency of `task`."""
        bits = self._ancestor_bits()
        if task in bits:
            return not ((bits[task] >> self._position[ref]) & 1)
        if task not in self._walked:
            walked = self._walk(task)
            if walked is None:
                return False
            self._walked[task] = walked
        return ref not in self._walked[task]

    def _ancestor_bits(self) -> dict[str, int]:
        # One bitset of ancestors per task, built in topological order (Kahn's): linear in edges
        # times n/64. Tasks in or behind a cycle never become ready and get no bitset.
        if self._bits is None:
            dependents: dict[str, list[str]] = {n: [] for n in self._deps}
            waiting = {n: len(set(ds)) for n, ds in self._deps.items()}
            for name, ds in self._deps.items():
                for d in set(ds):
                    dependents[d].append(name)
            ready = [n for n, w in waiting.items() if w == 0]
            bits: dict[str, int] = {}
            for name in ready:  # the list grows while we walk it
                acc = 0
                for d in self._deps[name]:
                    acc |= bits[d] | (1 << self._position[d])
                bits[name] = acc
                for m in dependents[name]:
                    waiting[m] -= 1
                    if waiting[m] == 0:
                        ready.append(m)
            self._bits = bits
        return self._bits

    def _walk(self, task: str) -> set[str] | None:
        seen: set[str] = set()
        stack = list(self._deps.get(task, ()))
        while stack:
            self._budget -= 1
            if self._budget < 0:
                return None
            t = stack.pop()
            if t not in seen:
                seen.add(t)
                stack.extend(self._deps.get(t, ()))
        return seen


# ---------------------------------------------------------------- pydantic errors as sentences


def _problem(prefix: str, err: Mapping[str, Any], model: type[BaseModel]) -> Problem:
    loc = [part for part in err.get("loc", ()) if part != "[key]"]
    path = prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
    kind, ctx, value = err.get("type", ""), err.get("ctx") or {}, err.get("input")
    if kind == "extra_forbidden" and loc:
        return _unknown_field(path, str(loc[-1]), _field_names(model, loc[:-1]))
    if "[key]" in err.get("loc", ()):
        return Problem(path, f"keys must be strings{_got(value)}")
    return Problem(path, _reason(kind, ctx, value, str(err.get("msg", "is invalid"))))


def _reason(kind: str, ctx: Mapping[str, Any], value: Any, fallback: str) -> str:
    got = _got(value)
    bounds = {
        "greater_than_equal": ("≥", "ge"),
        "less_than_equal": ("≤", "le"),
        "greater_than": (">", "gt"),
        "less_than": ("<", "lt"),
    }
    if kind in bounds:
        sign, key = bounds[kind]
        return f"must be {sign} {_number(ctx.get(key))}{got}"
    if kind == "missing":
        return "is required"
    if kind == "string_too_short":
        n = ctx.get("min_length", 1)
        return f"must not be empty{got}" if n == 1 else f"must be at least {n} characters{got}"
    if kind == "string_too_long":
        size = f" (got {len(value)})" if isinstance(value, str) else ""
        return f"must be at most {ctx.get('max_length')} characters{size}"
    if kind == "too_short":
        return f"must have at least {_items(ctx.get('min_length'))} (got {ctx.get('actual_length')})"
    if kind == "too_long":
        size = f" (got {len(value)})" if isinstance(value, Sequence) else ""
        return f"must have at most {_items(ctx.get('max_length'))}{size}"
    if kind == "string_pattern_mismatch":
        if ctx.get("pattern") == DNS_LABEL:
            return f"must be a DNS-1123 label: {_LABEL_RULE}{got}"
        return f"must match {ctx.get('pattern')}{got}"
    if kind == "literal_error":
        allowed = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        hint = ""
        if isinstance(value, str):
            same = [a for a in allowed if a.lower() == value.lower()]
            hint = f" (did you mean {_quote(same[0])}?)" if same else dag.suggest(value, allowed)
        return f"must be one of {', '.join(allowed)}{got}{hint}"
    types_ = {
        "int_type": "an integer",
        "float_type": "a number",
        "string_type": "a string",
        "bool_type": "true or false",
        "list_type": "a list",
        "dict_type": "an object",
        "model_type": "an object",
        "model_attributes_type": "an object",
    }
    if kind in types_:
        return f"must be {types_[kind]}{got}"
    if kind == "invalid_key":
        return f"keys must be strings{got}"
    return fallback[:1].lower() + fallback[1:] + got


def _unknown_field(path: str, key: str, known: Iterable[str]) -> Problem:
    known = list(known)
    squash = {k.lower().replace("_", "").replace("-", ""): k for k in known}
    same = squash.get(key.lower().replace("_", "").replace("-", ""))
    hint = f" (did you mean {_quote(same)}?)" if same else dag.suggest(key, known)
    return Problem(path, f"unknown field {_quote(key)}{hint}")


def _field_names(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """Return the camelCase field names of the object at `loc` inside `model` ([] if it is not a model)."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int):
            args = typing.get_args(current)
            current = args[0] if typing.get_origin(current) is list and args else None
        elif isinstance(current, type) and issubclass(current, BaseModel):
            fields = {f.alias or n: f for n, f in current.model_fields.items()}
            current = fields[part].annotation if part in fields else None
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return []


def _unwrap(tp: Any) -> Any:
    """Return the type inside Optional[...] and Annotated[...]."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            rest = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(rest) != 1:
                return tp
            tp = rest[0]
        else:
            return tp


# ---------------------------------------------------------------- small helpers


class _TooDeep(ValueError):
    """Input nested deeper than MAX_DEPTH; `path()` says where, from the keys collected while unwinding."""

    def __init__(self) -> None:
        super().__init__(f"is nested more than {MAX_DEPTH} levels deep")
        self.segments: list[str] = []  # innermost first

    def path(self, prefix: str = "", keep: int = 6) -> str:
        """Return the field path where the nesting starts, e.g. spec.tasks[0].podTemplate.spec.affinity…"""
        segments = self.segments[::-1]
        text = prefix + "".join(s if s.startswith("[") else f".{s}" for s in segments[:keep])
        return text.lstrip(".") + ("…" if len(segments) > keep else "")


def _plain(value: Any, depth: int = 0) -> Any:
    """Return value as plain dicts and lists (kopf bodies are Mapping views; YAML may give tuples)."""
    if depth > MAX_DEPTH:
        raise _TooDeep
    if isinstance(value, Mapping):
        plain: dict[Any, Any] = {}
        for k, v in value.items():
            try:
                plain[k] = _plain(v, depth + 1)
            except _TooDeep as exc:
                exc.segments.append(str(k))
                raise
        return plain
    if isinstance(value, list | tuple):
        items = []
        for i, v in enumerate(value):
            try:
                items.append(_plain(v, depth + 1))
            except _TooDeep as exc:
                exc.segments.append(f"[{i}]")
                raise
        return items
    return value


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _got(value: Any) -> str:
    """Return ' (got <value>)' when the value is short enough to show, else a description of its kind."""
    if value is None:
        return " (got null)"
    if isinstance(value, bool):
        return f" (got {str(value).lower()})"
    if isinstance(value, int | float):
        text = _number(value)
        return f" (got {text})" if len(text) <= 40 else " (got a very large number)"
    if isinstance(value, str):
        return f" (got {_quote(value)})" if len(value) <= 60 else f" (got a {len(value)}-character string)"
    if isinstance(value, Mapping):
        return " (got an object)"
    if isinstance(value, list | tuple):
        return " (got a list)"
    return f" (got a {type(value).__name__})"


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def _items(n: Any) -> str:
    return f"{n} item" if n == 1 else f"{n} items"


def _ordered(problems: Iterable[Problem]) -> tuple[Problem, ...]:
    """Return the problems without repeats, in field order (spec.tasks[2] before spec.tasks[10])."""

    def key(p: Problem) -> list[tuple[int, int | str]]:
        parts = re.findall(r"\[(\d+)\]|([^.\[\]]+)", p.path)
        return [(0, int(n)) if n else (1, s) for n, s in parts]

    return tuple(sorted(dict.fromkeys(problems), key=key))
