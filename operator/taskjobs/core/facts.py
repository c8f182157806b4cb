"""What the operator observed of one task attempt (one Job and its pod), as plain data.

The shell turns Jobs and pods into these (`taskjobs.observe`); the plan reads only these.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

AttemptPhase = Literal["Pending", "Running", "Succeeded", "Failed"]


class AttemptFact(BaseModel):
    """One attempt of one task, as seen in its Job and pod."""

    model_config = ConfigDict(frozen=True)

    task: str
    attempt: int  # 1-based
    job_name: str
    phase: AttemptPhase  # Pending: Job exists but its pod has not started a container yet
    created: datetime | None = None  # Job creationTimestamp
    start_time: datetime | None = None  # container started (else Job startTime)
    finish_time: datetime | None = None  # Job Complete/Failed transition
    exit_code: int | None = None
    reason: str | None = None  # e.g. Error, DeadlineExceeded, StartupTimeout, ImagePullBackOff
    message: str | None = None
    output: str | None = None  # the container's termination message, for a Succeeded attempt
    stopping: bool = False  # the operator already asked this Job to stop (see StopJob)
    # The Job ended by its pod's verdict, which no pod seen so far shows (the pod watch lags the Job's):
    # the plan keeps the attempt running for a while, expecting the exit code, message and output.
    awaiting_pod: bool = False
