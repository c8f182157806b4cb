"""The TaskJob-level summary of task states: counts, phase, the one-sentence message, conditions; and the
status of a TaskJob that cannot run (phase Invalid, a Valid=False condition, every problem named).

Pure: no clock (now is an argument), no I/O. `plan` decides every task's state; this module only
describes the whole.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from .models import MAX_MESSAGE, Condition, TaskJobPhase, TaskJobStatus, TaskState

MANAGED_CONDITIONS = ("Complete", "Failed", "Suspended")


@dataclass(frozen=True)
class Counts:
    """How many tasks are in each phase."""

    total: int = 0
    waiting: int = 0
    ready: int = 0
    running: int = 0
    retrying: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def pending(self) -> int:
        """Return the tasks not running and not finished: waiting, ready or waiting to retry."""
        return self.waiting + self.ready + self.retrying

    @property
    def finished(self) -> bool:
        """Return whether every task reached a final phase."""
        return self.succeeded + self.failed + self.skipped == self.total


def count(states: Iterable[TaskState]) -> Counts:
    """Return the number of tasks in each phase."""
    return count_phases(Counter(s.phase for s in states))


def count_phases(by_phase: Mapping[str, int]) -> Counts:
    """Return the Counts of a number of tasks per phase."""
    return Counts(
        total=sum(by_phase.values()),
        waiting=by_phase.get("Waiting", 0),
        ready=by_phase.get("Ready", 0),
        running=by_phase.get("Running", 0),
        retrying=by_phase.get("Retrying", 0),
        succeeded=by_phase.get("Succeeded", 0),
        failed=by_phase.get("Failed", 0),
        skipped=by_phase.get("Skipped", 0),
    )


def taskjob_phase(counts: Counts, *, suspended: bool, started: bool, failing: bool | None = None) -> TaskJobPhase:
    """Return the TaskJob phase: final once every task is, else Suspended, Running or Pending.

    Final: Failed unless every task succeeded; `failing`, when given, decides instead (conditions and
    handled failures: taskjobs.core.flow).
    """
    if counts.finished:
        if failing is not None:
            return "Failed" if failing else "Succeeded"
        return "Succeeded" if counts.succeeded == counts.total else "Failed"
    if suspended:
        return "Suspended"
    return "Running" if started else "Pending"


def _tasks(n: int) -> str:
    return f"{n} task" if n == 1 else f"{n} tasks"


def summary(counts: Counts) -> str:
    """Return e.g. '2 running, 1 succeeded of 4': the non-zero counts, out of the total."""
    parts = [
        f"{n} {label}"
        for n, label in (
            (counts.running, "running"),
            (counts.retrying, "retrying"),
            (counts.succeeded, "succeeded"),
            (counts.failed, "failed"),
            (counts.skipped, "skipped"),
        )
        if n
    ]
    if not parts:
        return f"none of {_tasks(counts.total)} started"
    return ", ".join(parts) + f" of {counts.total}"


def cut(text: str, limit: int = MAX_MESSAGE) -> str:
    """Return text shortened to `limit` characters, marking the cut with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(
    phase: TaskJobPhase, counts: Counts, *, failure: str | None = None, deadline_seconds: int | None = None
) -> str:
    """Return the status message: one sentence a user reads first.

    `failure` is the first permanent failure (e.g. 'task load failed after 4 attempts: exit code 1'),
    given once it stops the TaskJob; `deadline_seconds` when spec.activeDeadlineSeconds stopped it.
    """
    if deadline_seconds is not None:
        text = (
            f"exceeded spec.activeDeadlineSeconds ({deadline_seconds}s); "
            f"{counts.succeeded} of {_tasks(counts.total)} succeeded"
        )
    elif phase == "Succeeded" and counts.succeeded != counts.total:  # tasks skipped by a condition, handled failures
        text = f"succeeded: {summary(counts)}"
    elif phase == "Succeeded":
        text = "the task succeeded" if counts.total == 1 else f"all {counts.total} tasks succeeded"
    elif failure is not None and phase == "Failed":
        text = failure
    elif failure is not None and counts.running:
        text = f"{failure}; waiting for {_tasks(counts.running)} still running to finish"
    elif phase == "Suspended":
        text = f"suspended: {summary(counts)}"
    elif phase == "Pending":
        text = f"{_tasks(counts.total)} waiting to start"
    else:
        text = summary(counts)
    return cut(text)


def conditions(
    previous: Sequence[Condition] | None,
    *,
    phase: TaskJobPhase,
    message: str,
    failed_reason: str,
    generation: int,
    now: datetime,
) -> list[Condition]:
    """Return the Complete, Failed and Suspended conditions, then any others the previous status had.

    A condition keeps its lastTransitionTime while its status stays the same.
    """
    before = {c.type: c for c in previous or ()}
    wanted: list[tuple[str, bool, str]] = [
        ("Complete", phase == "Succeeded", "Succeeded" if phase == "Succeeded" else phase),
        ("Failed", phase == "Failed", failed_reason if phase == "Failed" else phase),
        ("Suspended", phase == "Suspended", "Suspended" if phase == "Suspended" else "NotSuspended"),
    ]
    result: list[Condition] = []
    for type_, true, reason in wanted:
        status = "True" if true else "False"
        old = before.get(type_)
        result.append(
            Condition(
                type=type_,
                status=status,
                reason=reason,
                message=message if true else "",
                last_transition_time=old.last_transition_time if old and old.status == status else now,
                observed_generation=generation,
            )
        )
    result.extend(c for c in previous or () if c.type not in MANAGED_CONDITIONS)
    return result


# ---------------------------------------------------------------- an invalid TaskJob


class _Problem(Protocol):
    @property
    def path(self) -> str: ...
    @property
    def message(self) -> str: ...


def invalid_status(
    problems: Sequence[_Problem], generation: int, prior: Mapping[str, Any], now: datetime
) -> TaskJobStatus:
    """Return the status for an invalid TaskJob; the message lists each problem with its field path."""
    listed = "; ".join(f"{p.path}: {p.message}" for p in problems) or "invalid TaskJob"
    message = f"invalid TaskJob: {listed}"
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    since = now
    for c in prior.get("conditions") or []:
        if c.get("type") == "Valid" and c.get("status") == "False" and c.get("lastTransitionTime"):
            since = datetime.fromisoformat(c["lastTransitionTime"].replace("Z", "+00:00"))
    return TaskJobStatus(
        phase="Invalid",
        message=message,
        observed_generation=generation,
        conditions=[
            Condition(
                type="Valid",
                status="False",
                reason="InvalidSpec",
                message=message,
                last_transition_time=since,
                observed_generation=generation,
            )
        ],
    )
