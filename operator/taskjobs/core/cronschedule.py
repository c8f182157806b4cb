"""Cron schedules in a time zone: parse once, then ask for the next time after an instant.

The expression is evaluated by cronsim, which matches Debian's cron, DST included: a time the clock
skips (02:30 on a spring-forward night) runs at the first minute after the change, and a time that
happens twice (02:30 on a fall-back night) runs once, unless the expression fires every hour or more
often. Times in and out are timezone-aware; everything the operator stores is UTC.

Pure: no clock, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

DEFAULT_TIME_ZONE = "Etc/UTC"

# The macros CronJob accepts; cronsim reads only the five-field form.
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class ScheduleError(ValueError):
    """The schedule or time zone cannot be used; the message says why, for a user."""


@dataclass(frozen=True)
class Schedule:
    """A parsed cron expression and the zone it is read in."""

    expression: str  # five fields, macros expanded
    zone: ZoneInfo

    def next_after(self, instant: datetime) -> datetime:
        """Return the first scheduled time strictly after `instant`, in UTC."""
        # cronsim answers strictly after its start (12:00:00 gives 12:01), which is what a "next" needs.
        return next(iter(CronSim(self.expression, instant.astimezone(self.zone)))).astimezone(UTC)


def parse_zone(name: str | None) -> ZoneInfo:
    """Return the IANA time zone, or raise ScheduleError naming it."""
    name = name or DEFAULT_TIME_ZONE
    if name.startswith("/") or ".." in name or name != name.strip():
        raise ScheduleError(f"{name!r} is not an IANA time zone name (such as Europe/Berlin)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin or Etc/UTC") from None


def parse_schedule(expression: str, time_zone: str | None = None) -> Schedule:
    """Return the schedule, or raise ScheduleError saying what is wrong with the expression or zone."""
    text = " ".join(expression.split())
    if text.upper().startswith(("TZ=", "CRON_TZ=")):
        raise ScheduleError("a time zone inside the schedule is not supported: set spec.timeZone instead")
    if text.startswith("@"):
        if text.lower() not in MACROS:
            raise ScheduleError(f"unknown macro {text!r}: use one of {', '.join(MACROS)}, or five fields")
        text = MACROS[text.lower()]
    fields = text.split(" ")
    if len(fields) != 5:
        raise ScheduleError(
            f"must have five fields (minute hour day-of-month month day-of-week), got {len(fields)}: {expression!r}"
        )
    zone = parse_zone(time_zone)
    try:
        # cronsim checks the fields when it computes, and refuses dates that never exist (Feb 30).
        next(iter(CronSim(text, datetime(2000, 1, 1, tzinfo=zone))))
    except (CronSimError, StopIteration) as exc:
        reason = str(exc).rstrip(".").lower() or "never fires"
        raise ScheduleError(f"{reason} in {expression!r}") from None
    return Schedule(text, zone)
