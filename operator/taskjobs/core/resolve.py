"""Effective task settings: each task's own fields, else spec.defaults, else the built-in defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .models import Backoff, EnvVar, RetryPolicy, TaskJobSpec, TaskSpec, TaskTemplate

DEFAULT_RETRY_LIMIT = 3
DEFAULT_DELAY_SECONDS = 10.0
DEFAULT_FACTOR = 2.0
DEFAULT_MAX_DELAY_SECONDS = 300.0
DEFAULT_STARTUP_TIMEOUT_SECONDS = 300


@dataclass(frozen=True, slots=True)
class ResolvedRetry:
    """A retry policy with every value filled in."""

    limit: int = DEFAULT_RETRY_LIMIT
    delay_seconds: float = DEFAULT_DELAY_SECONDS
    factor: float = DEFAULT_FACTOR
    max_delay_seconds: float = DEFAULT_MAX_DELAY_SECONDS
    non_retriable_exit_codes: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class ResolvedTask:
    """A task with every inheritable field resolved against spec.defaults and built-in defaults."""

    name: str
    image: str | None
    command: tuple[str, ...] | None
    args: tuple[str, ...] | None
    env: tuple[EnvVar, ...]
    resources: dict[str, Any] | None
    retry: ResolvedRetry
    timeout_seconds: int | None
    startup_timeout_seconds: int
    pod_template: dict[str, Any] | None
    depends_on: tuple[str, ...]
    priority: int


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _retry(task: RetryPolicy | None, dflt: RetryPolicy | None) -> ResolvedRetry:
    tb: Backoff = (task.backoff if task else None) or Backoff()
    db: Backoff = (dflt.backoff if dflt else None) or Backoff()
    codes = _first(task and task.non_retriable_exit_codes, dflt and dflt.non_retriable_exit_codes) or []
    return ResolvedRetry(
        limit=_first(task and task.limit, dflt and dflt.limit, DEFAULT_RETRY_LIMIT),
        delay_seconds=float(_first(tb.delay_seconds, db.delay_seconds, DEFAULT_DELAY_SECONDS)),
        factor=float(_first(tb.factor, db.factor, DEFAULT_FACTOR)),
        max_delay_seconds=float(_first(tb.max_delay_seconds, db.max_delay_seconds, DEFAULT_MAX_DELAY_SECONDS)),
        non_retriable_exit_codes=frozenset(codes),
    )


def resolve_task(task: TaskSpec, defaults: TaskTemplate | None) -> ResolvedTask:
    """Return the task's effective settings."""
    d = defaults or TaskTemplate()
    command = _first(task.command, d.command)
    args = _first(task.args, d.args)
    return ResolvedTask(
        name=task.name,
        image=_first(task.image, d.image),
        command=tuple(command) if command is not None else None,
        args=tuple(args) if args is not None else None,
        env=tuple(_first(task.env, d.env) or ()),
        resources=_first(task.resources, d.resources),
        retry=_retry(task.retry, d.retry),
        timeout_seconds=_first(task.timeout_seconds, d.timeout_seconds),
        startup_timeout_seconds=_first(
            task.startup_timeout_seconds, d.startup_timeout_seconds, DEFAULT_STARTUP_TIMEOUT_SECONDS
        ),
        pod_template=_first(task.pod_template, d.pod_template),
        depends_on=tuple(task.depends_on or ()),
        priority=task.priority or 0,
    )


def resolve_tasks(spec: TaskJobSpec) -> dict[str, ResolvedTask]:
    """Return every task's effective settings, by name, in spec order (spec.tasks, then spec.finally)."""
    return {t.name: resolve_task(t, spec.defaults) for t in (*spec.tasks, *(spec.finally_ or ()))}
