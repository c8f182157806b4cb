"""Pod annotations that tell the testenv's kwok how each attempt's pod ends (see docs/testing.md)."""

from __future__ import annotations

PREFIX = "kwok.taskjob.dev/"


def pod_outcomes(
    exit_codes: int | dict[int, int] = 0,
    *,
    message: str | None = None,
    duration_ms: int | None = None,
    never_start: str | None = None,
) -> dict[str, str]:
    """Return annotations: one exit code for every attempt, or {attempt: exit code} (attempts not named exit 0)."""
    ann: dict[str, str] = {}
    if isinstance(exit_codes, int):
        ann[PREFIX + "exit-code"] = str(exit_codes)
    else:
        for attempt, code in exit_codes.items():
            ann[f"{PREFIX}exit-code-attempt-{attempt}"] = str(code)
    if message is not None:
        ann[PREFIX + "message"] = message
    if duration_ms is not None:
        ann[PREFIX + "duration"] = f"{duration_ms}ms"
    if never_start is not None:
        ann[PREFIX + "waiting-reason"] = never_start
        ann[PREFIX + "waiting-message"] = f"simulated {never_start}"
    return ann
