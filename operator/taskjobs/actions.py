"""What the plan asks the shell to do. Each action is idempotent when executed."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from .models import TaskJobStatus


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


class Plan(BaseModel):
    """Everything one reconcile should do, computed from facts alone."""

    model_config = ConfigDict(frozen=True)
    status: TaskJobStatus
    create: tuple[CreateJob, ...] = ()
    stop: tuple[StopJob, ...] = ()
    events: tuple[Event, ...] = ()
    delete_taskjob: bool = False  # ttlSecondsAfterFinished has passed
    requeue_after: float | None = None  # seconds until a time-based decision (retry, timeout, deadline, TTL)
