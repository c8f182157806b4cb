"""plan_cron: when a CronTaskJob creates, holds back, replaces and deletes TaskJobs (CronJob's rules)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskjobs.core.cron import Child, CronPlan, child_name, plan_cron
from taskjobs.core.cronmodels import CronTaskJob

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)  # a Friday; the CronTaskJob was created at 11:59:30


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def cron(status: dict[str, Any] | None = None, **spec: Any) -> CronTaskJob:
    body: dict[str, Any] = {
        "metadata": {"name": "nightly", "namespace": "ns", "uid": "cron-uid", "generation": 2,
                     "creationTimestamp": T0 - timedelta(seconds=30)},
        "spec": {"schedule": "* * * * *", "taskJobTemplate": {"spec": {"tasks": [{"name": "a", "image": "x"}]}},
                 **spec},
    }
    if status is not None:
        body["status"] = status
    return CronTaskJob.model_validate(body)


def child(minute: int, phase: str = "Running", done: float | None = None) -> Child:
    scheduled = at(minute)
    return Child(child_name("nightly", scheduled), f"uid-{minute}", phase, scheduled,
                 None if done is None else at(done))


def created(plan: CronPlan) -> datetime | None:
    return plan.create.scheduled_time if plan.create else None


def reasons(plan: CronPlan) -> list[str]:
    return [e.reason for e in plan.events]


def test_child_names_are_minutes_since_the_epoch_like_cronjob() -> None:
    assert child_name("nightly", datetime(2026, 5, 1, 12, 0, tzinfo=UTC)) == "nightly-29627280"
    assert child_name("nightly", datetime(2026, 5, 1, 12, 0, 59, tzinfo=UTC)) == "nightly-29627280"


def test_nothing_is_due_before_the_first_scheduled_time() -> None:
    plan = plan_cron(cron(), [], at(-0.25))
    assert plan.create is None and not plan.events
    assert plan.status.next_schedule_time == at(0)
    assert plan.requeue_after == pytest.approx(15.0)


def test_a_due_time_creates_its_taskjob_and_wakes_at_the_next() -> None:
    plan = plan_cron(cron(), [], at(0) + timedelta(seconds=2))
    assert plan.create is not None
    assert (plan.create.name, plan.create.scheduled_time) == ("nightly-29627280", at(0))
    assert reasons(plan) == ["SuccessfulCreate"]
    assert plan.status.last_schedule_time == at(0)
    assert [a.name for a in plan.status.active or ()] == ["nightly-29627280"] and plan.status.active_count == 1
    assert plan.status.next_schedule_time == at(1)
    assert plan.requeue_after == pytest.approx(58.0)


def test_a_replay_after_a_crash_before_the_status_write_creates_nothing() -> None:
    # The TaskJob exists, but the status still says nothing was scheduled: its name says it was.
    plan = plan_cron(cron(), [child(0)], at(0.5))
    assert plan.create is None
    assert plan.status.last_schedule_time == at(0)


def test_the_same_reconcile_twice_creates_the_same_name() -> None:
    first, second = plan_cron(cron(), [], at(0.1)), plan_cron(cron(), [], at(0.9))
    assert first.create == second.create


@dataclass(frozen=True)
class Outage:
    what: str
    spec: dict[str, Any]
    last: float  # lastScheduleTime, minutes from T0
    now: float
    expect: float | None  # the scheduled time started, or None
    events: list[str]


OUTAGES = [
    Outage("missed three: only the latest starts", {}, 0, 3.5, 3, ["SuccessfulCreate"]),
    Outage("hourly, down 5 h: the latest hour only", {"schedule": "0 * * * *"}, 0, 301, 300, ["SuccessfulCreate"]),
    Outage("within the deadline", {"startingDeadlineSeconds": 60}, 0, 3.5, 3, ["SuccessfulCreate"]),
    Outage("past the deadline: skipped with a warning", {"schedule": "0 * * * *",
           "startingDeadlineSeconds": 300}, 0, 90, None, ["MissSchedule"]),
    Outage("past the deadline, a later time due: it starts", {"schedule": "*/30 * * * *",
           "startingDeadlineSeconds": 300}, 0, 92, 90, ["SuccessfulCreate"]),
    Outage("more than 100 missed: warn, still start the latest", {}, 0, 150.5, 150,
           ["TooManyMissedTimes", "SuccessfulCreate"]),
    Outage("a deadline bounds the count: no warning", {"startingDeadlineSeconds": 600}, 0, 150.5, 150,
           ["SuccessfulCreate"]),
]


@pytest.mark.parametrize("case", OUTAGES, ids=[c.what for c in OUTAGES])
def test_missed_runs_after_an_outage(case: Outage) -> None:
    plan = plan_cron(cron({"lastScheduleTime": at(case.last)}, **case.spec), [], at(case.now))
    assert created(plan) == (None if case.expect is None else at(case.expect))
    assert reasons(plan) == case.events


def test_too_many_missed_is_a_condition_until_a_run_starts_on_time() -> None:
    late = plan_cron(cron({"lastScheduleTime": at(0)}), [], at(150.5))
    [missed] = [c for c in late.status.conditions or () if c.type == "MissedSchedules"]
    assert (missed.status, missed.reason) == ("True", "TooManyMissedTimes")
    status = late.status.model_dump(by_alias=True)
    between = plan_cron(cron(status), [child(150)], at(150.7))
    assert [c.status for c in between.status.conditions or () if c.type == "MissedSchedules"] == ["True"]
    on_time = plan_cron(cron(between.status.model_dump(by_alias=True)), [child(150)], at(151.1))
    assert created(on_time) == at(151)
    assert [c.status for c in on_time.status.conditions or () if c.type == "MissedSchedules"] == ["False"]


def test_a_year_of_missed_minutes_is_cheap_and_exact() -> None:
    plan = plan_cron(cron({"lastScheduleTime": at(0)}), [], at(0) + timedelta(days=365, seconds=10))
    assert created(plan) == at(0) + timedelta(days=365)


def test_a_late_missed_time_past_its_deadline_warns() -> None:
    # Forbid held 12:00 back; the run ended at 12:00:45; 12:00 is now 50 s late with a 30 s deadline, and
    # the deadline moved the earliest time past it: nothing is due until 12:01.
    plan = plan_cron(cron({"lastScheduleTime": at(-1)}, startingDeadlineSeconds=30, concurrencyPolicy="Forbid"),
                     [child(-1, "Succeeded", done=0.75)], at(0) + timedelta(seconds=50))
    assert plan.create is None
    assert [(e.reason, e.message) for e in plan.events] == [
        ("MissSchedule", "missed the scheduled time 2026-05-01T12:00:00Z: it could not start within "
         "startingDeadlineSeconds")]


def test_forbid_holds_back_while_one_is_active_then_starts_late() -> None:
    spec = {"concurrencyPolicy": "Forbid"}
    held = plan_cron(cron({"lastScheduleTime": at(0)}, **spec), [child(0)], at(1) + timedelta(seconds=1))
    assert held.create is None and reasons(held) == ["JobAlreadyActive"]
    assert held.status.last_schedule_time == at(0)
    assert held.requeue_after == pytest.approx(59.0)
    # The active one ended at 12:01:20: the held-back 12:01 starts now, as CronJob does.
    late = plan_cron(cron({"lastScheduleTime": at(0)}, **spec), [child(0, "Succeeded", done=1.3)], at(1.4))
    assert created(late) == at(1)


def test_allow_starts_beside_an_active_one() -> None:
    plan = plan_cron(cron({"lastScheduleTime": at(0)}), [child(0)], at(1.1))
    assert created(plan) == at(1)
    assert [a.name for a in plan.status.active or ()] == [child(0).name, child(1).name]


def test_replace_deletes_the_active_ones_first() -> None:
    plan = plan_cron(cron({"lastScheduleTime": at(1)}, concurrencyPolicy="Replace"),
                     [child(0), child(1), child(-1, "Succeeded", done=0)], at(2.1))
    assert created(plan) == at(2)
    assert [(d.name, d.reason) for d in plan.delete_first] == [(child(0).name, "Replaced"),
                                                              (child(1).name, "Replaced")]
    assert reasons(plan) == ["Replaced", "Replaced", "SuccessfulCreate"]
    assert [a.name for a in plan.status.active or ()] == [child(2).name]


def test_suspend_creates_nothing_and_has_no_next_time() -> None:
    plan = plan_cron(cron({"lastScheduleTime": at(0)}, suspend=True), [], at(5.5))
    assert plan.create is None and plan.requeue_after is None
    assert plan.status.next_schedule_time is None
    assert [(c.type, c.status) for c in plan.status.conditions or ()][1] == ("Suspended", "True")


def test_resume_runs_only_the_latest_missed_time() -> None:
    plan = plan_cron(cron({"lastScheduleTime": at(0)}, suspend=False), [], at(5.5))
    assert created(plan) == at(5)


@pytest.mark.parametrize(
    ("limits", "kept"),
    [
        ({}, {2, 3, 4, 7}),  # defaults: 3 succeeded, 1 failed
        ({"successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 0}, {4}),
        ({"successfulJobsHistoryLimit": 10, "failedJobsHistoryLimit": 10}, {0, 1, 2, 3, 4, 5, 6, 7}),
    ],
)
def test_history_limits_delete_the_oldest_finished(limits: dict[str, int], kept: set[int]) -> None:
    children = [child(m, "Succeeded", done=m + 0.5) for m in range(5)]
    children += [child(5, "Failed", done=5.5), child(6, "Invalid", done=6.1), child(7, "Failed", done=7.5)]
    children.append(child(8))  # active: never deleted by history
    plan = plan_cron(cron({"lastScheduleTime": at(8)}, **limits), children, at(8.5))
    deleted = {d.name for d in plan.delete}
    assert all(d.reason == "HistoryLimit" for d in plan.delete)
    assert {c.name for c in children} - deleted == {child(m).name for m in kept | {8}}


def test_last_successful_time_is_the_latest_success() -> None:
    plan = plan_cron(cron({"lastScheduleTime": at(2)}), [child(0, "Succeeded", done=0.5),
                                                         child(1, "Succeeded", done=1.7),
                                                         child(2, "Failed", done=2.5)], at(2.6))
    assert plan.status.last_successful_time == at(1.7)


def test_time_zone_and_dst_decide_the_scheduled_time() -> None:
    # 02:30 daily in Berlin on the spring-forward night runs at 03:00 CEST = 01:00 UTC.
    spring = datetime(2026, 3, 29, 1, 0, 5, tzinfo=UTC)
    plan = plan_cron(cron({"lastScheduleTime": datetime(2026, 3, 28, 1, 30, tzinfo=UTC)},
                          schedule="30 2 * * *", timeZone="Europe/Berlin"), [], spring)
    assert created(plan) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    # On the fall-back night the daily run happens at the first 02:30 only.
    after_first = plan_cron(cron({"lastScheduleTime": datetime(2026, 10, 25, 0, 30, tzinfo=UTC)},
                                 schedule="30 2 * * *", timeZone="Europe/Berlin"),
                            [], datetime(2026, 10, 25, 1, 31, tzinfo=UTC))
    assert after_first.create is None
    assert after_first.status.next_schedule_time == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)


def test_conditions_keep_their_transition_time_while_unchanged() -> None:
    first = plan_cron(cron(), [], at(0.5))
    later = plan_cron(cron(first.status.model_dump(by_alias=True)), [child(0)], at(1.5))
    assert [c.last_transition_time for c in later.status.conditions or ()] == [at(0.5)] * 3


def test_an_invalid_cron_keeps_its_history_and_says_why() -> None:
    from taskjobs.core.cron import invalid_cron_status

    prior = plan_cron(cron(), [], at(0.5)).status
    first = invalid_cron_status(["spec.schedule: bad minute in '61 * * * *'"], 3, prior, at(1))
    assert first.message == "invalid CronTaskJob: spec.schedule: bad minute in '61 * * * *'"
    assert first.last_schedule_time == at(0) and first.next_schedule_time is None
    [valid] = first.conditions or []
    assert (valid.type, valid.status, valid.reason, valid.last_transition_time) == ("Valid", "False", "InvalidSpec",
                                                                                    at(1))
    again = invalid_cron_status(["spec.schedule: bad minute in '61 * * * *'"], 3, first, at(2))
    assert (again.conditions or [])[0].last_transition_time == at(1)
