"""Routine Events of a TaskJob gathered for a moment and sent as one; the others at once, in order."""

from __future__ import annotations

import asyncio
from typing import Any

from taskjobs.core.actions import Event
from taskjobs.shell.eventbatch import EventBatcher


def owner(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"}}


def started(task: str) -> Event:
    return Event(type="Normal", reason="TaskStarted", message=f"task {task}: started attempt 1 of 1 as Job {task}-1")


def succeeded(task: str) -> Event:
    return Event(type="Normal", reason="TaskSucceeded", message=f"task {task} succeeded on attempt 1")


async def _until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


def test_routine_news_within_the_window_is_one_event_per_reason_and_taskjob() -> None:
    async def scenario() -> list[tuple[str, str, str]]:
        posted: list[tuple[str, str, str]] = []
        batcher = EventBatcher(lambda o, t, r, m: posted.append((o["metadata"]["name"], r, m)), window=0.05)
        for task in ("b", "c", "d"):
            batcher.add(owner("tj"), started(task))
            batcher.add(owner("other"), started(task))
        batcher.add(owner("tj"), succeeded("a"))
        assert posted == []  # nothing yet: the window is open
        await _until(lambda: len(posted) == 3)
        return posted

    posted = asyncio.run(scenario())
    assert sorted((name, reason) for name, reason, _ in posted) == [
        ("other", "TaskStarted"), ("tj", "TaskStarted"), ("tj", "TaskSucceeded")
    ]
    tj_started = next(m for name, reason, m in posted if name == "tj" and reason == "TaskStarted")
    assert tj_started.startswith("3 tasks: task b: started") and "task d: started" in tj_started


def test_a_warning_sends_the_gathered_news_first_and_goes_out_at_once() -> None:
    async def scenario() -> list[str]:
        posted: list[str] = []
        batcher = EventBatcher(lambda o, t, r, m: posted.append(r), window=10.0)
        batcher.add(owner("tj"), started("a"))
        batcher.add(owner("tj"), Event(type="Warning", reason="TaskRetrying", message="task a failed; retrying"))
        batcher.add(owner("tj"), Event(type="Normal", reason="Succeeded", message="all 1 tasks succeeded"))
        return posted

    assert asyncio.run(scenario()) == ["TaskStarted", "TaskRetrying", "Succeeded"]


def test_news_of_a_deleted_taskjob_is_dropped() -> None:
    async def scenario() -> list[str]:
        posted: list[str] = []
        batcher = EventBatcher(lambda o, t, r, m: posted.append(r), window=0.02)
        batcher.add(owner("tj"), started("a"))
        batcher.discard("uid-tj")
        await asyncio.sleep(0.1)  # past the window: a timer left behind would have posted by now
        return posted

    assert asyncio.run(scenario()) == []
