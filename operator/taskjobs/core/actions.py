"""What the plan asks the shell to do. Each action is idempotent when executed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict

from .models import TaskJobStatus
from .naming import ANNOTATION_RETRY, ANNOTATION_RETRY_TASKS


class CreateJob(BaseModel):
    """Create the Job for this task attempt; an existing Job of that name means it is done."""

    model_config = ConfigDict(frozen=True)
    task: str
    attempt: int


class StopJob(BaseModel):
    """Make a running attempt fail now (startup timeout, TaskJob deadline); the Job is kept as a record."""

    model_config = ConfigDict(frozen=True)
    job_name: str
    reason: str
    message: str


class Event(BaseModel):
    """A Kubernetes Event to record on the TaskJob."""

    model_config = ConfigDict(frozen=True)
    type: Literal["Normal", "Warning"]
    reason: str
    message: str
    tasks: int = 1  # how many tasks' news this one Event carries (see merge_events)


# Routine news of several tasks in one plan goes in one Kubernetes Event: a fan-out of 8 started 8 Events, each
# an API request (with TaskSucceeded, 2 of the operator's 4.5 requests per task, B4). Warnings stay one per
# task; the local runner prints the plan's events unmerged, one line per task.
MERGED_REASONS = frozenset({"TaskStarted", "TaskSucceeded"})
MAX_EVENT_MESSAGE = 1024  # events.k8s.io/v1 caps an Event's note at 1 kB


def merge_events(events: list[Event], limit: int = MAX_EVENT_MESSAGE) -> list[Event]:
    """Return `events` with those of a reason in MERGED_REASONS joined into one per reason, in first-seen order.

    The joined message lists each task's message, shortened to `limit` characters.
    """
    groups: dict[str, list[Event]] = {}
    for event in events:
        if event.reason in MERGED_REASONS:
            groups.setdefault(event.reason, []).append(event)
    merged: list[Event] = []
    for event in events:
        group = groups.get(event.reason)
        if group is None or len(group) == 1:
            merged.append(event)
        elif group[0] is event:
            text = f"{len(group)} tasks: " + "; ".join(e.message for e in group)
            text = text if len(text) <= limit else text[: limit - 1] + "…"
            merged.append(Event(type=event.type, reason=event.reason, message=text, tasks=len(group)))
    return merged


class RetryRequest(BaseModel):
    """A manual retry (`taskjob retry`): re-run failed and skipped tasks, keeping succeeded ones."""

    model_config = ConfigDict(frozen=True)
    nonce: str  # a new value asks again; the status records the last one applied
    tasks: tuple[str, ...] | None = None  # None: every Failed and Skipped task

    @classmethod
    def from_annotations(cls, annotations: Mapping[str, str] | None) -> RetryRequest | None:
        """Return the retry asked for with `taskjob retry` (the TaskJob's annotations), if any."""
        annotations = annotations or {}
        nonce = annotations.get(ANNOTATION_RETRY)
        if not nonce:
            return None
        listed = annotations.get(ANNOTATION_RETRY_TASKS)
        tasks = tuple(t.strip() for t in listed.split(",") if t.strip()) if listed else None
        return cls(nonce=nonce, tasks=tasks)


class Plan(BaseModel):
    """Everything one reconcile should do, computed from facts alone."""

    model_config = ConfigDict(frozen=True)
    status: TaskJobStatus
    create: tuple[CreateJob, ...] = ()
    stop: tuple[StopJob, ...] = ()
    events: tuple[Event, ...] = ()
    delete_taskjob: bool = False  # ttlSecondsAfterFinished has passed
    requeue_after: float | None = None  # seconds until a time-based decision (retry, timeout, deadline, TTL)
    changed: frozenset[str] | None = None  # tasks whose state may differ from the previous status; None: any
    outputs: dict[str, str] = {}  # outputs to record before any create: a fan-out task's list (core/fanout.py)
