"""Routine Events of a TaskJob (TaskStarted, TaskSucceeded) gathered for up to a second and sent as one.

Events were the largest share of the operator's API requests: 2.1 per task in B4 (docs/performance.md).
The news of the tasks that started or succeeded within WINDOW seconds goes in one Event per reason, its
message listing each task (core.actions.merge_events). Any other Event of the TaskJob (a failure, a retry,
its end) first sends what is gathered, so `kubectl describe` keeps the order in which things happened.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from ..core.actions import MERGED_REASONS, Event, merge_events

WINDOW = 1.0  # seconds: what the status shows waits as long (statuswriter.MIN_WRITE_GAP)

Post = Callable[[Mapping[str, Any], str, str, str], None]  # (owner, type, reason, message): queued for sending


class EventBatcher:
    """Gathers routine Events per TaskJob for up to WINDOW seconds; passes the others on at once."""

    def __init__(self, post: Post, window: float = WINDOW) -> None:
        self._post = post
        self._window = window
        self._gathered: dict[str, tuple[Mapping[str, Any], list[Event], asyncio.TimerHandle]] = {}  # by owner uid

    def add(self, owner: Mapping[str, Any], event: Event) -> None:
        """Record `event` on the TaskJob `owner`."""
        uid = owner["metadata"].get("uid") or f"{owner['metadata'].get('namespace')}/{owner['metadata']['name']}"
        if event.type == "Normal" and event.reason in MERGED_REASONS:
            gathered = self._gathered.get(uid)
            if gathered is None:
                timer = asyncio.get_running_loop().call_later(self._window, self.flush, uid)
                self._gathered[uid] = (owner, [event], timer)
            else:
                gathered[1].append(event)
            return
        self.flush(uid)
        self._post(owner, event.type, event.reason, event.message)

    def flush(self, uid: str) -> None:
        """Send what is gathered for the TaskJob of this uid."""
        gathered = self._gathered.pop(uid, None)
        if gathered is None:
            return
        owner, events, timer = gathered
        timer.cancel()
        for event in merge_events(events):
            self._post(owner, event.type, event.reason, event.message)

    def discard(self, uid: str) -> None:
        """Drop what is gathered for a TaskJob that is gone."""
        gathered = self._gathered.pop(uid, None)
        if gathered is not None:
            gathered[2].cancel()

    def flush_all(self) -> None:
        """Send everything gathered (at shutdown)."""
        for uid in list(self._gathered):
            self.flush(uid)
