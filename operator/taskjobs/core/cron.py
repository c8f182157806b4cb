"""plan_cron(cron, children, now) -> what one reconcile of a CronTaskJob does. Pure: time is an argument.

The rules are Kubernetes' CronJob controller's (pkg/controller/cronjob, `mostRecentScheduleTime` and
`syncCronJob`), so a CronJob user meets no surprise:

- Only the most recent unmet scheduled time is started; older missed ones are dropped. The earliest
  time considered is the last scheduled time (or the creation time), moved up to now minus
  startingDeadlineSeconds when that is later. More than 100 missed times give a Warning
  (TooManyMissedTimes), and the most recent one still starts.
- A scheduled time older than startingDeadlineSeconds is skipped (Warning MissSchedule).
- Forbid: while a created TaskJob is active, nothing starts (Normal JobAlreadyActive). The held-back
  time then starts late, once the active one ended, if it is still the most recent and within the deadline.
- Replace: the active TaskJobs are deleted, then the new one is created.
- The child's name is `<cron>-<scheduled time in minutes since the epoch>`: a crash or a replay creates
  the same name again, and "already exists" means done. The last scheduled time is also read back from
  the children, so a crash between the create and the status write never starts a time twice.
- Finished TaskJobs beyond the history limits are deleted, oldest first.

Executing any action twice is harmless: creates are by fixed name, deletes are by uid.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from .. import API_VERSION
from .actions import Event
from .cronmodels import (
    CRON_KIND,
    DEFAULT_FAILED_HISTORY,
    DEFAULT_SUCCESSFUL_HISTORY,
    ActiveRef,
    CronTaskJob,
    CronTaskJobStatus,
)
from .cronschedule import Schedule, parse_schedule
from .models import TERMINAL_PHASES, Condition

MAX_ACTIVE_LISTED = 1000  # status stays bounded however many runs Allow lets pile up
MANY_MISSED = 100  # CronJob's bound: beyond it, warn that the clock or the deadline is off
ANNOTATION_SCHEDULED = "taskjob.dev/scheduled-time"  # RFC 3339, on each created TaskJob
LABEL_CRON = "taskjob.dev/crontaskjob"  # the CronTaskJob's name, on each created TaskJob


@dataclass(frozen=True)
class Child:
    """What the plan needs to know about one TaskJob this CronTaskJob created."""

    name: str
    uid: str
    phase: str  # the TaskJob's status.phase ("Pending" when it has none yet)
    scheduled_time: datetime | None  # from its annotation; None if someone removed it
    completion_time: datetime | None = None

    @property
    def finished(self) -> bool:
        """Return whether the TaskJob has reached a final phase."""
        return self.phase in TERMINAL_PHASES


@dataclass(frozen=True)
class CreateChild:
    """Create the TaskJob for this scheduled time; one of that name already existing means done."""

    name: str
    scheduled_time: datetime


@dataclass(frozen=True)
class DeleteChild:
    """Delete this TaskJob (by uid, so a newer one of the same name is never hit)."""

    name: str
    uid: str
    reason: Literal["Replaced", "HistoryLimit"]


@dataclass(frozen=True)
class CronPlan:
    """Everything one reconcile of a CronTaskJob should do, from facts alone."""

    status: CronTaskJobStatus
    create: CreateChild | None = None
    delete: tuple[DeleteChild, ...] = ()
    events: tuple[Event, ...] = ()
    requeue_after: float | None = None  # seconds until the next scheduled time; None: only events wake it
    # Deletes that must finish before the create (Replace), as opposed to history cleanup after it.
    delete_first: tuple[DeleteChild, ...] = field(default=())


def child_name(cron: str, scheduled: datetime) -> str:
    """Return the name of the TaskJob for a scheduled time: `<cron>-<minutes since the epoch>`, as CronJob does."""
    return f"{cron}-{int(scheduled.timestamp()) // 60}"


def plan_cron(cron: CronTaskJob, children: Sequence[Child], now: datetime) -> CronPlan:
    """Return the actions, status and next wake-up of a valid CronTaskJob, given its children and the time."""
    spec, meta = cron.spec, cron.metadata
    prior = cron.status or CronTaskJobStatus()
    schedule = parse_schedule(spec.schedule, spec.time_zone)
    active = sorted((c for c in children if not c.finished), key=_age)
    events: list[Event] = []

    last = _latest([prior.last_schedule_time, *(c.scheduled_time for c in children)])
    created: CreateChild | None = None
    replaced: list[DeleteChild] = []
    missed_many = False
    if not spec.suspend:
        since = last or meta.creation_timestamp or now
        earliest = since
        if spec.starting_deadline_seconds is not None:
            earliest = max(since, now - timedelta(seconds=spec.starting_deadline_seconds))
        scheduled, missed = most_recent(schedule, earliest, now)
        if scheduled is None and earliest > since:
            # Nothing starts now, and the deadline dropped a time (the operator was down, or Forbid held
            # it back): say so, or the skipped run would go unnoticed.
            dropped, _ = most_recent(schedule, since, earliest)
            if dropped is not None:
                events.append(Event(type="Warning", reason="MissSchedule",
                                    message=f"missed the scheduled time {_show(dropped)}: it could not start "
                                    "within startingDeadlineSeconds"))
        if missed > MANY_MISSED:
            missed_many = True
            events.append(Event(
                type="Warning", reason="TooManyMissedTimes",
                message=f"more than {MANY_MISSED} scheduled times were missed: only the latest is considered. "
                "Set or decrease spec.startingDeadlineSeconds, or check the clocks.",
            ))
        names = {c.name for c in children}
        deadline = spec.starting_deadline_seconds
        if scheduled is None or scheduled == last or child_name(meta.name, scheduled) in names:
            pass  # nothing due, or already started
        elif deadline is not None and scheduled + timedelta(seconds=deadline) < now:
            events.append(Event(type="Warning", reason="MissSchedule",
                                message=f"missed the scheduled time {_show(scheduled)}: past startingDeadlineSeconds"))
        elif spec.concurrency_policy == "Forbid" and active:
            events.append(Event(
                type="Normal", reason="JobAlreadyActive",
                message=f"not starting the run of {_show(scheduled)}: {active[-1].name} is still running "
                "and concurrencyPolicy is Forbid",
            ))
        else:
            if spec.concurrency_policy == "Replace":
                replaced = [DeleteChild(c.name, c.uid, "Replaced") for c in active]
                events.extend(Event(type="Normal", reason="Replaced",
                                    message=f"deleted {d.name}, still running at the next scheduled time")
                              for d in replaced)
            created = CreateChild(child_name(meta.name, scheduled), scheduled)
            events.append(Event(type="Normal", reason="SuccessfulCreate",
                                message=f"created TaskJob {created.name} for {_show(scheduled)}"))
            last = scheduled

    # MissedSchedules stays True from a run started after too many misses until one starts on time.
    was_missing = any(c.type == "MissedSchedules" and c.status == "True" for c in prior.conditions or ())
    missed = missed_many or (was_missing and created is None)
    gone = {d.uid for d in replaced}
    keep_succeeded = spec.successful_jobs_history_limit
    keep_failed = spec.failed_jobs_history_limit
    history = tuple(_beyond_limits(
        [c for c in children if c.finished and c.uid not in gone],
        DEFAULT_SUCCESSFUL_HISTORY if keep_succeeded is None else keep_succeeded,
        DEFAULT_FAILED_HISTORY if keep_failed is None else keep_failed,
    ))

    still_active = [ActiveRef(name=c.name, uid=c.uid, scheduled_time=c.scheduled_time)
                    for c in active if c.uid not in gone]
    if created is not None:
        still_active.append(ActiveRef(name=created.name, scheduled_time=created.scheduled_time))
    next_time = None if spec.suspend else schedule.next_after(now)
    status = CronTaskJobStatus(
        active=still_active[-MAX_ACTIVE_LISTED:] or None,  # the newest; the count says how many in all
        active_count=len(still_active),
        last_schedule_time=last,
        last_successful_time=_latest(
            [prior.last_successful_time, *(c.completion_time for c in children if c.phase == "Succeeded")]
        ),
        next_schedule_time=next_time,
        observed_generation=meta.generation,
        message=_message(bool(spec.suspend), len(still_active), next_time),
        conditions=_conditions(prior.conditions, bool(spec.suspend), missed, meta.generation, now),
    )
    return CronPlan(
        status=status,
        create=created,
        delete=history,
        delete_first=tuple(replaced),
        events=tuple(events),
        requeue_after=None if next_time is None else max(0.0, (next_time - now).total_seconds()),
    )


def most_recent(schedule: Schedule, earliest: datetime, now: datetime) -> tuple[datetime | None, int]:
    """Return the latest scheduled time in (earliest, now] (None if none) and how many there are.

    The count stops at MANY_MISSED + 1: beyond it only "many" matters. The latest time is then found by
    looking back from now in doubling windows, so a year of minutely times costs a few dozen steps.
    """
    count, latest = 0, None
    t = schedule.next_after(earliest)
    while t <= now and count <= MANY_MISSED:
        count, latest = count + 1, t
        t = schedule.next_after(t)
    if t > now:
        return latest, count
    window = timedelta(minutes=1)
    while True:
        start = max(earliest, now - window)
        found = None
        t = schedule.next_after(start)
        while t <= now:
            found, t = t, schedule.next_after(t)
        if found is not None or start == earliest:
            return found or latest, count
        window *= 2


def _beyond_limits(finished: Iterable[Child], keep_succeeded: int, keep_failed: int) -> Iterable[DeleteChild]:
    """Yield the finished children to delete: the oldest beyond each limit (Invalid counts as failed)."""
    succeeded = sorted((c for c in finished if c.phase == "Succeeded"), key=_age)
    failed = sorted((c for c in finished if c.phase != "Succeeded"), key=_age)
    for group, keep in ((succeeded, keep_succeeded), (failed, keep_failed)):
        for c in group[: max(0, len(group) - keep)]:
            yield DeleteChild(c.name, c.uid, "HistoryLimit")


def _age(c: Child) -> tuple[datetime, str]:
    return (c.scheduled_time or datetime.min.replace(tzinfo=UTC), c.name)


def _latest(times: Iterable[datetime | None]) -> datetime | None:
    known = [t for t in times if t is not None]
    return max(known) if known else None


def _show(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _message(suspended: bool, active: int, next_time: datetime | None) -> str:
    running = f"{active} running" if active else "none running"
    if suspended:
        return f"suspended; {running}"
    return f"{running}; next run at {_show(next_time)}" if next_time else running


def _conditions(
    previous: Sequence[Condition] | None, suspended: bool, missed_many: bool, generation: int, now: datetime
) -> list[Condition]:
    """Return Valid, Suspended and MissedSchedules; a condition keeps its lastTransitionTime while unchanged."""
    before = {c.type: c for c in previous or ()}
    wanted = [
        ("Valid", True, "ValidSpec", ""),
        ("Suspended", suspended, "Suspended" if suspended else "NotSuspended", ""),
        ("MissedSchedules", missed_many, "TooManyMissedTimes" if missed_many else "OnSchedule",
         f"more than {MANY_MISSED} scheduled times were missed" if missed_many else ""),
    ]
    result = []
    for type_, true, reason, message in wanted:
        status: Literal["True", "False"] = "True" if true else "False"
        old = before.get(type_)
        result.append(Condition(
            type=type_, status=status, reason=reason, message=message, observed_generation=generation,
            last_transition_time=old.last_transition_time if old and old.status == status else now,
        ))
    return result


def invalid_cron_status(
    problems: Sequence[str], generation: int, prior: CronTaskJobStatus | None, now: datetime
) -> CronTaskJobStatus:
    """Return the status of a CronTaskJob that cannot be scheduled: Valid=False naming each problem."""
    message = ("invalid CronTaskJob: " + "; ".join(problems))[:511]
    old = next((c for c in (prior.conditions if prior else None) or () if c.type == "Valid"), None)
    since = old.last_transition_time if old is not None and old.status == "False" else now
    return CronTaskJobStatus(
        active=prior.active if prior else None,
        last_schedule_time=prior.last_schedule_time if prior else None,
        last_successful_time=prior.last_successful_time if prior else None,
        observed_generation=generation,
        message=message,
        conditions=[Condition(type="Valid", status="False", reason="InvalidSpec", message=message,
                              last_transition_time=since, observed_generation=generation)],
    )


# ---------------------------------------------------------------- children: TaskJob manifests and facts


def render_child(cron: Mapping[str, Any], create: CreateChild) -> dict[str, Any]:
    """Return the TaskJob manifest for one scheduled time: the template as written, labelled and owned."""
    meta = cron["metadata"]
    template = cron["spec"]["taskJobTemplate"]
    template_meta = template.get("metadata") or {}
    return {
        "apiVersion": API_VERSION,
        "kind": "TaskJob",
        "metadata": {
            "name": create.name,
            "namespace": meta["namespace"],
            "labels": {**(template_meta.get("labels") or {}), LABEL_CRON: meta["name"]},
            "annotations": {**(template_meta.get("annotations") or {}),
                            ANNOTATION_SCHEDULED: _show(create.scheduled_time)},
            "ownerReferences": [{
                "apiVersion": API_VERSION,
                "kind": CRON_KIND,
                "name": meta["name"],
                "uid": meta["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }],
        },
        "spec": copy.deepcopy(dict(template["spec"])),
    }


def child_fact(cron_name: str, body: Mapping[str, Any]) -> Child:
    """Return what the plan needs of a TaskJob this CronTaskJob created."""
    meta = body["metadata"]
    status = body.get("status") or {}
    scheduled = _parse_time((meta.get("annotations") or {}).get(ANNOTATION_SCHEDULED))
    suffix = meta["name"][len(cron_name) + 1:]
    if scheduled is None and meta["name"].startswith(cron_name + "-") and suffix.isdigit():
        scheduled = datetime.fromtimestamp(int(suffix) * 60, UTC)  # the annotation was removed: the name says it
    return Child(
        name=meta["name"],
        uid=meta.get("uid", ""),
        phase=status.get("phase") or "Pending",
        scheduled_time=scheduled,
        completion_time=_parse_time(status.get("completionTime")),
    )


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
