"""A keyed work queue: each key is reconciled by one worker at a time, repeated adds coalesce.

Like controller-runtime's workqueue: an add while the key is being processed marks it dirty so it runs
once more afterwards; delayed adds keep only the earliest deadline per key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

log = logging.getLogger("taskjob.workqueue")

Reconcile = Callable[[Any], Awaitable[float | None]]  # key -> seconds until the next run, or None


class RetryLater(Exception):  # noqa: N818 - reads as what the caller asks for
    """Raised by a reconcile that cannot go on yet for a reason it states: retried with backoff, no traceback."""


# Reconciles in flight at once. Each mostly waits for its API calls (a Job create, a status patch): in B1
# with 50 TaskJobs in flight at 200 QPS, 8 workers were 6.6 busy on average, and 32 halved the p50
# (626 -> 329 ms). At 50 QPS the rate limit is the bound and more workers do not help (docs/performance.md).
WORKERS = 32


class WorkQueue:
    """Runs `reconcile(key)` for added keys; its return value (seconds) schedules the next run."""

    def __init__(self, reconcile: Reconcile, workers: int = WORKERS, error_backoff: float = 2.0) -> None:
        self._reconcile = reconcile
        self._queue: asyncio.Queue[Hashable] = asyncio.Queue()
        self._queued: set[Hashable] = set()
        self._active: set[Hashable] = set()
        self._dirty: set[Hashable] = set()
        self._timers: dict[Hashable, tuple[float, asyncio.TimerHandle]] = {}
        self._soon: dict[Hashable, asyncio.TimerHandle] = {}  # add_soon's timers: void once the key runs
        self._failures: dict[Hashable, int] = {}
        self._workers = workers
        self._error_backoff = error_backoff
        self._tasks: list[asyncio.Task[None]] = []
        self.enabled = True  # False while another replica leads: adds are kept, nothing runs

    def add(self, key: Hashable) -> None:
        """Reconcile `key` as soon as a worker is free (once, however often it is added)."""
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def add_after(self, key: Hashable, delay: float) -> None:
        """Reconcile `key` after `delay` seconds, unless an earlier run is already scheduled."""
        loop = asyncio.get_running_loop()
        when = loop.time() + max(0.0, delay)
        current = self._timers.get(key)
        if current and current[0] <= when:
            return
        if current:
            current[1].cancel()
        self._timers[key] = (when, loop.call_at(when, self._fire, key))

    def add_soon(self, key: Hashable, within: float) -> None:
        """Reconcile `key` within `within` seconds, or with whichever run of it comes first.

        For news that no decision waits on (a pod went Running): a run for any other reason meanwhile
        sees it too, and the timer is dropped, so a burst of such news costs one reconcile, not one each.
        """
        if key in self._queued or key in self._soon:
            return
        self._soon[key] = asyncio.get_running_loop().call_later(within, self._fire_soon, key)

    def _fire_soon(self, key: Hashable) -> None:
        self._soon.pop(key, None)
        self.add(key)

    def forget(self, key: Hashable) -> None:
        """Drop timers and failure counts of a key whose object is gone."""
        timer = self._timers.pop(key, None)
        if timer:
            timer[1].cancel()
        soon = self._soon.pop(key, None)
        if soon:
            soon.cancel()
        self._failures.pop(key, None)

    def _fire(self, key: Hashable) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def start(self) -> None:
        """Start the workers on the running loop (once: a startup handler retried by kopf calls this again)."""
        if any(not task.done() for task in self._tasks):
            return
        self._tasks = [asyncio.create_task(self._work(), name=f"taskjob-worker-{i}") for i in range(self._workers)]

    async def stop(self) -> None:
        """Stop the workers; in-flight reconciles are cancelled."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for handle in self._soon.values():
            handle.cancel()
        self._soon.clear()

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            if not self.enabled:
                self._dirty.add(key)  # kept for when this replica leads again
                continue
            self._active.add(key)
            soon = self._soon.pop(key, None)  # this run reads the store as it is now: news included
            if soon:
                soon.cancel()
            try:
                requeue = await self._reconcile(key)
                self._failures.pop(key, None)
                if requeue is not None:
                    self.add_after(key, requeue)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                n = self._failures.get(key, 0) + 1
                self._failures[key] = n
                delay = min(self._error_backoff * 2 ** (n - 1), 300.0)
                if isinstance(e, RetryLater):
                    log.warning("reconcile of %s postponed (attempt %d): %s; retrying in %.1fs", key, n, e, delay)
                else:
                    log.exception("reconcile of %s failed (attempt %d); retrying in %.1fs", key, n, delay)
                self.add_after(key, delay)
            finally:
                self._active.discard(key)
                if key in self._dirty:
                    self._dirty.discard(key)
                    self.add(key)

    def resume(self) -> None:
        """Run every key that was added while disabled."""
        self.enabled = True
        for key in list(self._dirty):
            self._dirty.discard(key)
            self.add(key)
