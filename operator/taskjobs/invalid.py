"""The status of a TaskJob that cannot run: phase Invalid, a Valid=False condition, every problem named."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from .models import MAX_MESSAGE, Condition, TaskJobStatus


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
