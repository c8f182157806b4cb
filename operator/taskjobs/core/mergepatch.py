"""JSON merge patches (RFC 7386) computed from two documents, so a status write carries only the change.

`dump_changes` and `patch_changes` give the status JSON and its patch from the tasks a plan changed
only: dumping and diffing 10,000 task states on every event would undo what incremental planning saves.
They give exactly what `dump_status` and `diff` would (tests/unit/test_plan_properties.py checks this at
every step of random runs), provided the previous JSON is the dump of the previous status.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .models import TaskJobStatus, dump_status


def diff(old: Any, new: Any) -> Any:
    """Return the merge patch that turns `old` into `new` ({} when they are equal)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch: dict[str, Any] = {}
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            if isinstance(old[key], dict) and isinstance(value, dict):
                sub = diff(old[key], value)
                if sub:  # an empty patch of an object means "no change"
                    patch[key] = sub
            else:
                patch[key] = value  # a whole new value; applied to a non-object, {} replaces it too
    for key in old:
        if key not in new:
            patch[key] = None
    return patch


def apply(doc: Any, patch: Any) -> Any:
    """Return `doc` with the merge patch applied (RFC 7386), without changing `doc`."""
    if not isinstance(patch, dict):
        return patch
    result = dict(doc) if isinstance(doc, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply(result.get(key), value)
    return result


def dump_changes(prior: Mapping[str, Any], status: TaskJobStatus, changed: Iterable[str] | None) -> dict[str, Any]:
    """Return dump_status(status), reusing `prior`'s JSON for the tasks not in `changed` (None: dump all)."""
    old_tasks = prior.get("tasks")
    if changed is None or status.tasks is None or not isinstance(old_tasks, Mapping):
        return dump_status(status)
    result = status.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"tasks"})
    tasks = dict(old_tasks)
    for name in changed:
        tasks[name] = status.tasks[name].model_dump(mode="json", by_alias=True, exclude_none=True)
    result["tasks"] = tasks
    return result


def patch_changes(prior: Mapping[str, Any], new: Mapping[str, Any], changed: Iterable[str] | None) -> Any:
    """Return diff(prior, new), looking only at the tasks in `changed` (None: at all)."""
    old_tasks, new_tasks = prior.get("tasks"), new.get("tasks")
    if changed is None or not isinstance(old_tasks, Mapping) or not isinstance(new_tasks, Mapping):
        return diff(dict(prior), dict(new))
    patch = diff(
        {k: v for k, v in prior.items() if k != "tasks"}, {k: v for k, v in new.items() if k != "tasks"}
    )
    tasks: dict[str, Any] = {}
    for name in changed:
        if name not in old_tasks:
            tasks[name] = new_tasks[name]
        elif old_tasks[name] != new_tasks[name]:
            tasks[name] = diff(old_tasks[name], new_tasks[name])
    if tasks:
        patch["tasks"] = tasks
    return patch
