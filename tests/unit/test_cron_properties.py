"""plan_cron under replays and kills: whatever the timing, a scheduled time is started at most once.

A simulated world: the operator reconciles at random instants, may die after any action of a
reconcile (after the deletes that must come first, after the create, after the status write), runs
finish at random, and history limits delete old runs. What must hold: no TaskJob name is ever created
twice (not even after its run was deleted by the history limit), every run is for a scheduled time,
and each run started is the most recent scheduled time at that moment.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from taskjobs.core.cron import Child, plan_cron
from taskjobs.core.cronmodels import CronTaskJob, CronTaskJobStatus
from taskjobs.core.cronschedule import parse_schedule

START = datetime(2026, 3, 28, 23, 0, tzinfo=UTC)  # the night Berlin springs forward


def manifest(schedule: str, zone: str | None, policy: str, keep: int, deadline: int | None) -> CronTaskJob:
    spec: dict[str, Any] = {"schedule": schedule, "concurrencyPolicy": policy, "successfulJobsHistoryLimit": keep,
                            "failedJobsHistoryLimit": keep,
                            "taskJobTemplate": {"spec": {"tasks": [{"name": "a", "image": "x"}]}}}
    if zone:
        spec["timeZone"] = zone
    if deadline is not None:
        spec["startingDeadlineSeconds"] = deadline
    return CronTaskJob.model_validate({"metadata": {"name": "c", "uid": "u", "creationTimestamp": START},
                                       "spec": spec})


@settings(max_examples=300, deadline=None)
@given(
    schedule=st.sampled_from(["* * * * *", "*/7 * * * *", "30 2 * * *", "0 * * * *"]),
    zone=st.sampled_from([None, "Europe/Berlin", "America/New_York"]),
    policy=st.sampled_from(["Allow", "Forbid", "Replace"]),
    keep=st.integers(0, 2),
    deadline=st.sampled_from([None, 30, 600]),
    steps=st.lists(
        st.tuples(
            st.one_of(st.integers(1, 90), st.integers(1, 4 * 3600)),  # seconds to the next reconcile
            st.sampled_from(["none", "after-replace", "after-create", "after-status"]),  # where the operator dies
            st.floats(0, 1),  # which active runs finish meanwhile
        ),
        min_size=1, max_size=25,
    ),
)
def test_a_scheduled_time_is_started_at_most_once_whatever_dies_when(
    schedule: str, zone: str | None, policy: str, keep: int, deadline: int | None,
    steps: list[tuple[int, str, float]],
) -> None:
    cron = manifest(schedule, zone, policy, keep, deadline)
    parsed = parse_schedule(schedule, zone)
    children: dict[str, Child] = {}
    status: CronTaskJobStatus | None = None
    ever_created: set[str] = set()
    now = START
    for i, (gap, dies, finish) in enumerate(steps):
        now += timedelta(seconds=gap)
        for name, c in list(children.items()):  # some runs end meanwhile
            if not c.finished and (hash((name, i)) % 100) / 100 < finish:
                children[name] = Child(c.name, c.uid, "Succeeded", c.scheduled_time, now)
        plan = plan_cron(cron.model_copy(update={"status": status}), list(children.values()), now)
        for d in plan.delete_first:
            children.pop(d.name, None)
        if dies == "after-replace":
            continue
        if plan.create is not None:
            t = plan.create.scheduled_time
            assert plan.create.name not in ever_created, f"{plan.create.name} created twice"
            assert parsed.next_after(t - timedelta(seconds=1)) == t, "a run for a time not on the schedule"
            assert parsed.next_after(t) > now, "a run for a time older than the most recent one"
            ever_created.add(plan.create.name)
            children[plan.create.name] = Child(plan.create.name, plan.create.name, "Running", t)
        if dies == "after-create":
            continue
        status = plan.status
        if dies == "after-status":
            continue
        for d in plan.delete:
            children.pop(d.name, None)
        # Whatever the operator did, the same reconcile again (a replay) does nothing new.
        replay = plan_cron(cron.model_copy(update={"status": plan.status}), list(children.values()), now)
        assert replay.create is None and not replay.delete_first
