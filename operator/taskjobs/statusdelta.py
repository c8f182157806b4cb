"""The status as JSON, and the patch that writes it, computed from the tasks a plan changed only.

Dumping and diffing 10,000 task states on every event would undo what incremental planning saves.
Both functions give exactly what `dump_status` and `mergepatch.diff` would (tests/unit/test_incremental.py
checks this at every step of random runs), provided the previous JSON is the dump of the previous status.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from . import mergepatch
from .models import TaskJobStatus, dump_status


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
    """Return mergepatch.diff(prior, new), looking only at the tasks in `changed` (None: at all)."""
    old_tasks, new_tasks = prior.get("tasks"), new.get("tasks")
    if changed is None or not isinstance(old_tasks, Mapping) or not isinstance(new_tasks, Mapping):
        return mergepatch.diff(dict(prior), dict(new))
    patch = mergepatch.diff(
        {k: v for k, v in prior.items() if k != "tasks"}, {k: v for k, v in new.items() if k != "tasks"}
    )
    tasks: dict[str, Any] = {}
    for name in changed:
        if name not in old_tasks:
            tasks[name] = new_tasks[name]
        elif old_tasks[name] != new_tasks[name]:
            tasks[name] = mergepatch.diff(old_tasks[name], new_tasks[name])
    if tasks:
        patch["tasks"] = tasks
    return patch
