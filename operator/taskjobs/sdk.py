"""Build TaskJobs in Python: tasks, dependencies (`a >> b`), retries and defaults; validate, emit, create.

    from taskjobs.sdk import DAG, Defaults, Retry, Task

    with DAG("etl", parallelism=2, defaults=Defaults(image="busybox:1.36", command=["sh", "-c"])) as dag:
        extract = Task("extract", args=["echo extracting"])
        transform = Task("transform", args=["echo transforming"], retry=Retry(limit=3, delay_seconds=5))
        load = Task("load", args=["echo loading"])
        extract >> transform >> load
    print(dag.to_yaml())

`Pipeline("etl").source([1, 2, 3]).map("double").filter("is_even").reduce("sum")` builds the linear
TaskJob of runner tasks that the seed systems' pipeline builder described (see task-images/runner).

Manifests are plain dicts, built without checking; `validate()` runs the operator's own validation.
"""

from __future__ import annotations

import contextvars
import importlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import yaml

from . import API_VERSION, GROUP, KIND, PLURAL, VERSION
from .core.validation import ValidationResult, validate_taskjob

RUNNER_IMAGE = "taskjob-runner:0.1.0"
RUNNER_COMMAND: tuple[str, ...] = ("python", "-m", "taskjob_runner")
RUNNER_BAD_INPUT_EXIT_CODE = 2  # the runner's exit code for bad arguments or ill-typed input: never retried

FailurePolicy = Literal["FailFast", "ContinueIndependent"]


class InvalidTaskJob(ValueError):
    """The TaskJob has problems; `problems` lists each with its field path."""

    def __init__(self, name: str, result: ValidationResult) -> None:
        self.problems = result.problems
        lines = "\n".join(f"  {p}" for p in result.problems)
        super().__init__(f"TaskJob {name!r} is invalid:\n{lines}")


# ---------------------------------------------------------------- retry


@dataclass(frozen=True)
class Retry:
    """A retry policy; unset fields inherit from spec.defaults, then the built-in defaults (3, 10 s, ×2, 300 s)."""

    limit: int | None = None
    delay_seconds: float | None = None
    factor: float | None = None
    max_delay_seconds: float | None = None
    non_retriable_exit_codes: Sequence[int] | None = None

    def to_manifest(self) -> dict[str, Any]:
        """Return the retry policy as manifest fields (camelCase, unset fields omitted)."""
        out: dict[str, Any] = {}
        if self.limit is not None:
            out["limit"] = self.limit
        backoff = _compact(
            {"delaySeconds": self.delay_seconds, "factor": self.factor, "maxDelaySeconds": self.max_delay_seconds}
        )
        if backoff:
            out["backoff"] = backoff
        if self.non_retriable_exit_codes is not None:
            out["nonRetriableExitCodes"] = list(self.non_retriable_exit_codes)
        return out


RetryLike = Retry | int | Mapping[str, Any]


def _retry_manifest(retry: RetryLike) -> dict[str, Any]:
    if isinstance(retry, Retry):
        return retry.to_manifest()
    if isinstance(retry, int) and not isinstance(retry, bool):
        return {"limit": retry}
    return _plain(retry)  # type: ignore[no-any-return]


# ---------------------------------------------------------------- tasks and defaults


EnvLike = Mapping[str, str] | Sequence[Mapping[str, Any]]


def _env_manifest(env: EnvLike) -> list[dict[str, Any]]:
    if isinstance(env, Mapping):
        return [{"name": str(k), "value": str(v)} for k, v in env.items()]
    return [_plain(e) for e in env]


def _compact(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _plain(value: Any) -> Any:
    """Return value as plain dicts and lists (so YAML output and equality do not depend on input types)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass
class Defaults:
    """spec.defaults: what every task inherits for the fields it does not set."""

    image: str | None = None
    command: Sequence[str] | None = None
    args: Sequence[str] | None = None
    env: EnvLike | None = None
    resources: Mapping[str, Any] | None = None
    retry: RetryLike | None = None
    timeout_seconds: int | None = None
    startup_timeout_seconds: int | None = None
    pod_template: Mapping[str, Any] | None = None

    def to_manifest(self) -> dict[str, Any]:
        """Return the template as manifest fields (camelCase, unset fields omitted)."""
        return _compact(
            {
                "image": self.image,
                "command": list(self.command) if self.command is not None else None,
                "args": list(self.args) if self.args is not None else None,
                "env": _env_manifest(self.env) if self.env is not None else None,
                "resources": _plain(self.resources) if self.resources is not None else None,
                "retry": _retry_manifest(self.retry) if self.retry is not None else None,
                "timeoutSeconds": self.timeout_seconds,
                "startupTimeoutSeconds": self.startup_timeout_seconds,
                "podTemplate": _plain(self.pod_template) if self.pod_template is not None else None,
            }
        )


_active: contextvars.ContextVar[tuple[TaskJobBuilder, ...]] = contextvars.ContextVar("taskjob_sdk_active", default=())


@dataclass(eq=False, init=False, repr=False)  # identity equality: tasks are nodes, named uniquely by validation
class Task(Defaults):
    """One task of the DAG. `a >> b` makes b depend on a; `a >> [b, c]` and `[a, b] >> c` fan out and in.

    Created inside `with DAG(...):`, the task joins that DAG.
    """

    name: str = ""
    depends_on: list[str] = field(default_factory=list)
    priority: int | None = None

    def __init__(
        self,
        name: str,
        image: str | None = None,
        command: Sequence[str] | None = None,
        args: Sequence[str] | None = None,
        env: EnvLike | None = None,
        *,
        depends_on: Iterable[Task | str] = (),
        resources: Mapping[str, Any] | None = None,
        retry: RetryLike | None = None,
        timeout_seconds: int | None = None,
        startup_timeout_seconds: int | None = None,
        priority: int | None = None,
        pod_template: Mapping[str, Any] | None = None,
        when: str | None = None,
        for_each: Sequence[Any] | Task | str | None = None,
        max_items: int | None = None,
    ) -> None:
        super().__init__(
            image=image,
            command=command,
            args=args,
            env=env,
            resources=resources,
            retry=retry,
            timeout_seconds=timeout_seconds,
            startup_timeout_seconds=startup_timeout_seconds,
            pod_template=pod_template,
        )
        self.name = name
        self.depends_on = []
        self.priority = priority
        self.when = when  # a CEL condition, e.g. "tasks.build.phase == 'Failed'" (see docs/conditions-and-finally.md)
        # Fan-out: a list of items, or the task (name) whose output is the JSON list; it runs first.
        self.for_each: dict[str, Any] | None = None
        if isinstance(for_each, Task | str):
            source = for_each.name if isinstance(for_each, Task) else for_each
            self.for_each = _compact({"fromOutput": source, "maxItems": max_items})
            depends_on = [*depends_on, source]
        elif for_each is not None:
            self.for_each = {"items": _plain(list(for_each))}
        self.after(*depends_on)
        for builder in _active.get()[-1:]:
            builder.add(self)

    def after(self, *upstream: Task | str) -> Task:
        """Return this task, now depending on `upstream` (tasks or task names)."""
        for up in upstream:
            name = up.name if isinstance(up, Task) else up
            if name not in self.depends_on:
                self.depends_on.append(name)
        return self

    def output(self) -> str:
        """Return the reference `{{tasks.<name>.output}}`, replaced by this task's output in downstream args and env."""
        return f"{{{{tasks.{self.name}.output}}}}"

    @property
    def phase(self) -> str:
        """Return this task's phase as CEL, for a dependent's `when`: f"{build.phase} == 'Failed'"."""
        return f"tasks.{self.name}.phase"

    def __rshift__(self, other: Task | Sequence[Task]) -> Any:
        if isinstance(other, Task):
            other.after(self)
            return other
        for task in other:
            task.after(self)
        return other

    def __rrshift__(self, other: Sequence[Task]) -> Task:
        return self.after(*other)

    def to_manifest(self) -> dict[str, Any]:
        """Return the task as an entry of spec.tasks."""
        out: dict[str, Any] = {"name": self.name}
        if self.depends_on:
            out["dependsOn"] = list(self.depends_on)
        out.update(super().to_manifest())
        if self.priority is not None:
            out["priority"] = self.priority
        if self.when is not None:
            out["when"] = self.when
        if self.for_each is not None:
            out["forEach"] = self.for_each
        return out

    def __repr__(self) -> str:
        return f"Task({self.name!r}, depends_on={self.depends_on!r})"

    # Tasks are graph nodes: equal only to themselves (Defaults compares by value).
    __eq__ = object.__eq__
    __hash__ = object.__hash__


# ---------------------------------------------------------------- the TaskJob


class _Dumper(yaml.SafeDumper):
    """Writes short lists of one-line scalars on one line (`command: [sh, -c]`), the way people write them."""


def _represent_list(dumper: yaml.SafeDumper, items: list[Any]) -> yaml.Node:
    flow = all(
        isinstance(i, (int, float, bool)) or (isinstance(i, str) and "\n" not in i and len(i) <= 60) for i in items
    )
    return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flow and bool(items))


_Dumper.add_representer(list, _represent_list)


class TaskJobBuilder:
    """A TaskJob under construction: metadata, spec settings and tasks. `DAG` is the same class."""

    def __init__(
        self,
        name: str | None = None,
        tasks: Iterable[Task] = (),
        *,
        namespace: str | None = None,
        generate_name: str | None = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        defaults: Defaults | Mapping[str, Any] | None = None,
        parallelism: int | None = None,
        failure_policy: FailurePolicy | None = None,
        active_deadline_seconds: int | None = None,
        ttl_seconds_after_finished: int | None = None,
        suspend: bool | None = None,
    ) -> None:
        self.name = name
        self.namespace = namespace
        self.generate_name = generate_name
        self.labels = dict(labels or {})
        self.annotations = dict(annotations or {})
        self.defaults = defaults
        self.parallelism = parallelism
        self.failure_policy = failure_policy
        self.active_deadline_seconds = active_deadline_seconds
        self.ttl_seconds_after_finished = ttl_seconds_after_finished
        self.suspend = suspend
        self._tasks: list[Task] = []
        self._finally: list[Task] = []
        self._token: contextvars.Token[tuple[TaskJobBuilder, ...]] | None = None
        self.add(*tasks)

    @property
    def tasks(self) -> tuple[Task, ...]:
        """Return the tasks in the order they were added."""
        return tuple(self._tasks)

    def add(self, *tasks: Task) -> TaskJobBuilder:
        """Return this builder with `tasks` added (a task already added is not added twice)."""
        for task in tasks:
            if not any(t is task for t in self._tasks):
                self._tasks.append(task)
        return self

    def add_finally(self, *tasks: Task) -> TaskJobBuilder:
        """Return this builder with `tasks` as spec.finally tasks: they run after every task, whatever the outcome.

        A task created inside `with DAG(...)` joined spec.tasks; this moves it.
        """
        for task in tasks:
            self._tasks = [t for t in self._tasks if t is not task]
            if not any(t is task for t in self._finally):
                self._finally.append(task)
        return self

    def __getitem__(self, name: str) -> Task:
        for task in (*self._tasks, *self._finally):
            if task.name == name:
                return task
        raise KeyError(name)

    def __iter__(self) -> Iterator[Task]:
        return iter(self._tasks)

    def __enter__(self) -> TaskJobBuilder:
        self._token = _active.set((*_active.get(), self))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _active.reset(self._token)
            self._token = None

    def to_manifest(self) -> dict[str, Any]:
        """Return the TaskJob manifest as a plain dict (not validated: see validate())."""
        metadata = _compact(
            {
                "name": self.name,
                "generateName": self.generate_name if self.name is None else None,
                "namespace": self.namespace,
                "labels": dict(self.labels) or None,
                "annotations": dict(self.annotations) or None,
            }
        )
        defaults = self.defaults.to_manifest() if isinstance(self.defaults, Defaults) else _plain(self.defaults)
        spec = _compact(
            {
                "parallelism": self.parallelism,
                "failurePolicy": self.failure_policy,
                "activeDeadlineSeconds": self.active_deadline_seconds,
                "ttlSecondsAfterFinished": self.ttl_seconds_after_finished,
                "suspend": self.suspend,
                "defaults": defaults or None,
            }
        )
        spec["tasks"] = [t.to_manifest() for t in self._tasks]
        if self._finally:
            spec["finally"] = [t.to_manifest() for t in self._finally]
        return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}

    def to_yaml(self) -> str:
        """Return the manifest as YAML text, ready for `kubectl apply -f -` or `taskjob run`."""
        return yaml.dump(
            self.to_manifest(), Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True
        )

    def validate(self) -> ValidationResult:
        """Return the operator's own validation of the manifest (`.ok`, `.problems` with field paths)."""
        return validate_taskjob(self.to_manifest())

    def check(self) -> dict[str, Any]:
        """Return the manifest, or raise InvalidTaskJob listing every problem."""
        manifest = self.to_manifest()
        result = validate_taskjob(manifest)
        if not result.ok:
            raise InvalidTaskJob(self.name or self.generate_name or "", result)
        return manifest

    def create(self, namespace: str | None = None, api_client: Any = None) -> dict[str, Any]:
        """Return the TaskJob as created in the cluster, after validating it (InvalidTaskJob if it is not valid).

        Without `api_client`, the current kubeconfig (or the in-cluster service account) is used.
        """
        from kubernetes import client, config  # lazy: building and validating need no cluster client

        manifest = self.check()
        ns = namespace or self.namespace or "default"
        manifest["metadata"]["namespace"] = ns
        if api_client is None:
            try:
                config.load_kube_config()  # type: ignore[no-untyped-call]
            except config.ConfigException:  # no kubeconfig: perhaps we run in a pod
                config.load_incluster_config()  # type: ignore[no-untyped-call]
        api = client.CustomObjectsApi(api_client)
        return cast(dict[str, Any], api.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, manifest))


DAG = TaskJobBuilder


# ---------------------------------------------------------------- the pipeline helper


def _step_name(*parts: str) -> str:
    name = "-".join(parts).lower().replace("_", "-")
    name = re.sub(r"[^a-z0-9-]+", "-", name).strip("-")
    return name[:63].rstrip("-") or "step"


def _check_function(name: str) -> None:
    """Raise ValueError for a function the runner does not know (skipped when the runner is not installed)."""
    try:
        # Imported by name: the runner is a separate package (its own image), installed alongside for local runs.
        functions = importlib.import_module("taskjob_runner.functions")
    except ImportError:  # pragma: no cover - the runner ships with this package
        return
    if name not in functions.REGISTRY:
        try:
            functions.lookup(name)
        except Exception as e:  # the runner's BadInput, with a did-you-mean hint
            raise ValueError(str(e)) from None


class Pipeline:
    """A linear TaskJob of runner steps: `Pipeline("etl").source([1, 2]).map("double").reduce("sum")`.

    Each step is one task running `python -m taskjob_runner <operation> ...` in the runner image, named
    after the step (`source`, `map-double`, `filter-is-even`, `reduce-sum`; repeats get `-2`, `-3`) and
    depending on the step before. The runner's bad-input exit code (2) is not retried.
    """

    def __init__(
        self,
        name: str,
        *,
        image: str = RUNNER_IMAGE,
        retry: RetryLike | None = None,
        namespace: str | None = None,
        parallelism: int | None = None,
        active_deadline_seconds: int | None = None,
        ttl_seconds_after_finished: int | None = None,
    ) -> None:
        self.name = name
        self.image = image
        self.retry: RetryLike = (
            retry
            if retry is not None
            else Retry(limit=2, delay_seconds=2, non_retriable_exit_codes=[RUNNER_BAD_INPUT_EXIT_CODE])
        )
        self.namespace = namespace
        self.parallelism = parallelism
        self.active_deadline_seconds = active_deadline_seconds
        self.ttl_seconds_after_finished = ttl_seconds_after_finished
        self._steps: list[tuple[str, tuple[str, ...]]] = []  # (task name, runner arguments)
        self._parts: dict[str, int] = {}  # partitioned steps (fan-out tasks): their number of partitions

    def _add(self, base_name: str, *args: str) -> Pipeline:
        if not self._steps and args[0] != "source":
            raise ValueError(f"pipeline {self.name!r} must start with .source(...), before .{args[0]}(...)")
        taken = {n for n, _ in self._steps}
        name, n = base_name, 2
        while name in taken:
            name, n = f"{base_name}-{n}", n + 1
        if self._steps and self._steps[-1][0] in self._parts:
            args = (*args, "--flatten")  # the step before is partitioned: its output is the list of its parts'
        self._steps.append((name, args))
        return self

    def _partitioned(self, op: str, fn: str, partitions: int | None) -> Pipeline:
        if partitions is None:
            return self._fn_step(op, fn)
        if not 1 <= partitions <= 1000:
            raise ValueError(f"partitions must be between 1 and 1000, got {partitions}")
        _check_function(fn)
        self._add(_step_name(op, fn), op, fn, "--partition", "{{item}}", "--partitions", str(partitions))
        self._parts[self._steps[-1][0]] = partitions
        return self

    def _fn_step(self, op: str, fn: str) -> Pipeline:
        _check_function(fn)
        return self._add(_step_name(op, fn), op, fn)

    def source(self, value: Any) -> Pipeline:
        """Return the pipeline, starting from `value` (any JSON value, usually a list)."""
        if self._steps:
            raise ValueError(f"pipeline {self.name!r} already has a source; .source(...) comes first, once")
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return self._add("source", "source", text)

    def map(self, fn: str, partitions: int | None = None) -> Pipeline:
        """Return the pipeline with a step applying `fn` to every item.

        With `partitions`, the step is a fan-out task of that many instances (parallel pods), each mapping
        its contiguous part of the list; the next step takes their results, concatenated in order.
        """
        return self._partitioned("map", fn, partitions)

    def filter(self, fn: str, partitions: int | None = None) -> Pipeline:
        """Return the pipeline with a step keeping the items for which the predicate `fn` is true (see map)."""
        return self._partitioned("filter", fn, partitions)

    def flat_map(self, fn: str, partitions: int | None = None) -> Pipeline:
        """Return the pipeline with a step applying the list-returning `fn` to every item, concatenated (see map)."""
        return self._partitioned("flat_map", fn, partitions)

    def reduce(self, fn: str) -> Pipeline:
        """Return the pipeline with a step applying the aggregate `fn` (sum, count, max ...) to the list."""
        return self._fn_step("reduce", fn)

    def group_by(self, fn: str) -> Pipeline:
        """Return the pipeline with a step grouping the items into {key: items} by `fn`."""
        return self._fn_step("group_by", fn)

    def unique(self) -> Pipeline:
        """Return the pipeline with a step dropping repeated items."""
        return self._add("unique", "unique")

    def sort(self, key: str | None = None, reverse: bool = False) -> Pipeline:
        """Return the pipeline with a step sorting the items (by the function `key` when given)."""
        args: list[str] = ["sort"]
        if key is not None:
            _check_function(key)
            args += ["--key", key]
        if reverse:
            args.append("--reverse")
        return self._add(_step_name("sort", *(["by", key] if key else [])), *args)

    def take(self, n: int) -> Pipeline:
        """Return the pipeline with a step keeping the first `n` items."""
        if n < 0:
            raise ValueError(f"take needs a count of 0 or more, got {n}")
        return self._add(f"take-{n}", "take", str(n))

    def to_taskjob(self) -> TaskJobBuilder:
        """Return the pipeline as a TaskJob builder: one runner task per step, each after the one before."""
        if not self._steps:
            raise ValueError(f"pipeline {self.name!r} has no steps: start it with .source(...)")
        builder = TaskJobBuilder(
            self.name,
            namespace=self.namespace,
            defaults=Defaults(image=self.image, retry=self.retry),
            parallelism=self.parallelism,
            active_deadline_seconds=self.active_deadline_seconds,
            ttl_seconds_after_finished=self.ttl_seconds_after_finished,
        )
        previous: Task | None = None
        with builder:  # the steps join this builder, even inside another `with DAG(...)`
            for name, args in self._steps:
                parts = self._parts.get(name)
                previous = Task(
                    name,
                    command=[*RUNNER_COMMAND, *args],
                    depends_on=[previous] if previous else [],
                    for_each=list(range(parts)) if parts else None,
                )
        return builder

    @property
    def last(self) -> str:
        """Return the name of the final step, whose output is the pipeline's result."""
        if not self._steps:
            raise ValueError(f"pipeline {self.name!r} has no steps")
        return self._steps[-1][0]

    def to_manifest(self) -> dict[str, Any]:
        """Return the TaskJob manifest as a plain dict."""
        return self.to_taskjob().to_manifest()

    def to_yaml(self) -> str:
        """Return the TaskJob manifest as YAML text."""
        return self.to_taskjob().to_yaml()

    def validate(self) -> ValidationResult:
        """Return the operator's validation of the TaskJob."""
        return self.to_taskjob().validate()

    def create(self, namespace: str | None = None, api_client: Any = None) -> dict[str, Any]:
        """Return the TaskJob as created in the cluster (see TaskJobBuilder.create)."""
        return self.to_taskjob().create(namespace, api_client)
