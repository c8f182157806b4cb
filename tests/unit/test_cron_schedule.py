"""Cron schedules: parsing errors a user can act on, time zones, and DST as Debian's cron does it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from taskjobs.core.cronschedule import ScheduleError, parse_schedule


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def times(expression: str, zone: str | None, start: datetime, n: int) -> list[str]:
    schedule = parse_schedule(expression, zone)
    out, t = [], start
    for _ in range(n):
        t = schedule.next_after(t)
        out.append(t.strftime("%Y-%m-%dT%H:%MZ"))
    return out


def test_next_is_strictly_after_and_in_utc() -> None:
    schedule = parse_schedule("*/15 * * * *")
    assert schedule.next_after(utc(2026, 1, 1, 12, 0)) == utc(2026, 1, 1, 12, 15)
    assert schedule.next_after(utc(2026, 1, 1, 12, 14, 59)) == utc(2026, 1, 1, 12, 15)
    assert schedule.next_after(utc(2026, 1, 1, 12, 0)).tzinfo is UTC


@pytest.mark.parametrize(
    ("macro", "expected"),
    [("@hourly", "2026-01-01T13:00Z"), ("@daily", "2026-01-02T00:00Z"), ("@midnight", "2026-01-02T00:00Z"),
     ("@weekly", "2026-01-04T00:00Z"), ("@monthly", "2026-02-01T00:00Z"), ("@yearly", "2027-01-01T00:00Z"),
     ("@annually", "2027-01-01T00:00Z")],
)
def test_macros_as_cronjob_accepts_them(macro: str, expected: str) -> None:
    assert times(macro, None, utc(2026, 1, 1, 12, 30), 1) == [expected]


def test_schedule_is_read_in_its_time_zone() -> None:
    # 09:00 in New York is 14:00 UTC in winter and 13:00 UTC in summer.
    assert times("0 9 * * *", "America/New_York", utc(2026, 1, 10), 1) == ["2026-01-10T14:00Z"]
    assert times("0 9 * * *", "America/New_York", utc(2026, 7, 10), 1) == ["2026-07-10T13:00Z"]


def test_spring_forward_runs_a_skipped_time_once_just_after_the_change() -> None:
    # Europe/Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST, so 02:30 does not exist that night.
    assert times("30 2 * * *", "Europe/Berlin", utc(2026, 3, 27, 12), 3) == [
        "2026-03-28T01:30Z",  # 02:30 CET
        "2026-03-29T01:00Z",  # 03:00 CEST, the first minute after the change
        "2026-03-30T00:30Z",  # 02:30 CEST
    ]


def test_fall_back_runs_a_daily_time_once() -> None:
    # Europe/Berlin, 2026-10-25: 02:00-02:59 happens twice; a daily job must not run twice.
    assert times("30 2 * * *", "Europe/Berlin", utc(2026, 10, 24, 12), 2) == [
        "2026-10-25T00:30Z",  # 02:30 CEST, the first 02:30
        "2026-10-26T01:30Z",  # 02:30 CET the next day
    ]


def test_fall_back_runs_a_frequent_schedule_in_both_hours() -> None:
    # Every 30 minutes keeps its rhythm in real time through the repeated hour.
    assert times("*/30 * * * *", "Europe/Berlin", utc(2026, 10, 24, 23, 45), 4) == [
        "2026-10-25T00:00Z", "2026-10-25T00:30Z", "2026-10-25T01:00Z", "2026-10-25T01:30Z",
    ]


@pytest.mark.parametrize(
    ("expression", "zone", "message"),
    [
        ("* * * *", None, "must have five fields"),
        ("* * * * * *", None, "must have five fields"),  # no seconds: TaskJob names are per minute
        ("61 * * * *", None, "bad minute"),
        ("*/0 * * * *", None, "bad minute"),
        ("0 0 30 2 *", None, "bad day-of-month"),  # never exists
        ("@fortnightly", None, "unknown macro"),
        ("TZ=Europe/Berlin 0 9 * * *", None, "set spec.timeZone instead"),
        ("0 9 * * *", "Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("0 9 * * *", "../../etc/passwd", "not an IANA time zone name"),
    ],
)
def test_bad_schedules_say_why(expression: str, zone: str | None, message: str) -> None:
    with pytest.raises(ScheduleError, match=message.replace("(", r"\(")):
        parse_schedule(expression, zone)
