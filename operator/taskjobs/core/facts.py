"""What the operator observed of one task attempt (one Job and its pod), as plain data.

The shell turns Jobs and pods into these (`taskjobs.observe`); the plan reads only these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

AttemptPhase = Literal["Pending", "Running", "Succeeded", "Failed"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptFact:
    """One attempt of one task, as seen in its Job and pod.

    A slotted dataclass, not a pydantic model: the store keeps one per attempt of every live TaskJob, and
    a model's field dict and fields-set made it about 2.3 KB, a fifth of that here (B4 census,
    docs/performance.md). Its values come from `observe.attempt_fact`, which parses them itself.
    """

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
