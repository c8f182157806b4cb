"""Kubernetes Events of one plan: routine news of several tasks goes in one Event, warnings stay one per task."""

from __future__ import annotations

from taskjobs.core.actions import MAX_EVENT_MESSAGE, Event, merge_events


def started(task: str) -> Event:
    return Event(type="Normal", reason="TaskStarted", message=f"task {task}: started attempt 1 of 4 as Job tj-{task}-1")


def test_one_event_per_routine_reason_listing_every_task_in_order() -> None:
    failed = Event(type="Warning", reason="TaskFailed", message="task x failed: exit code 1")
    done = Event(type="Normal", reason="TaskSucceeded", message="task a succeeded on attempt 1")
    events = [done, started("b"), failed, started("c"), started("d")]
    merged = merge_events(events)
    assert [(e.reason, e.tasks) for e in merged] == [("TaskSucceeded", 1), ("TaskStarted", 3), ("TaskFailed", 1)]
    assert merged[0] == done and merged[2] == failed  # a single one is left as it was
    assert merged[1].message == (
        "3 tasks: task b: started attempt 1 of 4 as Job tj-b-1; task c: started attempt 1 of 4 as Job tj-c-1; "
        "task d: started attempt 1 of 4 as Job tj-d-1"
    )


def test_warnings_are_never_joined() -> None:
    retries = [Event(type="Warning", reason="TaskRetrying", message=f"task {t} failed; retrying") for t in "abc"]
    assert merge_events(retries) == retries


def test_a_wide_fan_out_fits_one_event_of_bounded_size() -> None:
    merged = merge_events([started(f"work-{i}") for i in range(1000)])
    assert len(merged) == 1 and merged[0].tasks == 1000
    assert len(merged[0].message) == MAX_EVENT_MESSAGE and merged[0].message.endswith("…")
    assert merged[0].message.startswith("1000 tasks: task work-0: started")
