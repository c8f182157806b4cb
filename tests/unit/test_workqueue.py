"""The work queue: one reconcile per key at a time, coalesced adds, requeues and error backoff."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

from taskjobs.shell.workqueue import WorkQueue


async def _until(predicate: object, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.001)


def test_adds_while_running_coalesce_into_one_more_run() -> None:
    async def scenario() -> list[str]:
        calls: list[str] = []
        gate = asyncio.Event()

        async def reconcile(key: Hashable) -> float | None:
            calls.append(str(key))
            if len(calls) == 1:
                await gate.wait()
            return None

        q = WorkQueue(reconcile, workers=4)
        q.start()
        q.add("a")
        await _until(lambda: len(calls) == 1)
        for _ in range(5):  # many events while the first reconcile is in flight
            q.add("a")
        gate.set()
        await _until(lambda: len(calls) == 2)
        await asyncio.sleep(0.05)
        await q.stop()
        return calls

    assert asyncio.run(scenario()) == ["a", "a"]


def test_never_two_workers_on_one_key() -> None:
    async def scenario() -> int:
        running: dict[Hashable, int] = {}
        peak = 0
        done = 0

        async def reconcile(key: Hashable) -> float | None:
            nonlocal peak, done
            running[key] = running.get(key, 0) + 1
            peak = max(peak, running[key])
            await asyncio.sleep(0.001)
            running[key] -= 1
            done += 1
            return None

        q = WorkQueue(reconcile, workers=8)
        q.start()
        for i in range(200):
            q.add(i % 3)
            await asyncio.sleep(0)
        await _until(lambda: done >= 3 and all(v == 0 for v in running.values()))
        await q.stop()
        return peak

    assert asyncio.run(scenario()) == 1


def test_requeue_after_runs_again_and_earliest_timer_wins() -> None:
    async def scenario() -> list[float]:
        loop = asyncio.get_running_loop()
        times: list[float] = []

        async def reconcile(key: Hashable) -> float | None:
            times.append(loop.time())
            return 0.05 if len(times) == 1 else None

        q = WorkQueue(reconcile)
        q.start()
        q.add("k")
        await _until(lambda: len(times) == 2)
        q.add_after("k", 10.0)
        q.add_after("k", 0.01)  # an earlier deadline replaces the later one
        await _until(lambda: len(times) == 3)
        await q.stop()
        return times

    times = asyncio.run(scenario())
    assert times[1] - times[0] >= 0.05


def test_a_failing_reconcile_is_retried_with_backoff() -> None:
    async def scenario() -> int:
        attempts = 0

        async def reconcile(key: Hashable) -> float | None:
            nonlocal attempts
            attempts += 1
            if attempts < 3:
                raise RuntimeError("API down")
            return None

        q = WorkQueue(reconcile, error_backoff=0.01)
        q.start()
        q.add("k")
        await _until(lambda: attempts == 3)
        await q.stop()
        return attempts

    assert asyncio.run(scenario()) == 3


def test_disabled_queue_runs_nothing_until_resumed() -> None:
    async def scenario() -> tuple[int, int]:
        calls = 0

        async def reconcile(key: Hashable) -> float | None:
            nonlocal calls
            calls += 1
            return None

        q = WorkQueue(reconcile)
        q.enabled = False
        q.start()
        q.add("k")
        await asyncio.sleep(0.05)
        before = calls
        q.resume()
        await _until(lambda: calls == 1)
        await q.stop()
        return before, calls

    assert asyncio.run(scenario()) == (0, 1)


def test_news_added_soon_coalesce_into_one_run_within_the_window() -> None:
    async def scenario() -> tuple[list[float], float]:
        loop = asyncio.get_running_loop()
        runs: list[float] = []

        async def reconcile(key: Hashable) -> float | None:
            runs.append(loop.time())
            return None

        q = WorkQueue(reconcile, workers=4)
        q.start()
        began = loop.time()
        for _ in range(8):  # a fan-out's pods going Running, one after the other
            q.add_soon("a", 0.2)
            await asyncio.sleep(0.01)
        await _until(lambda: len(runs) == 1)
        await asyncio.sleep(0.3)  # a second run would have come by now
        await q.stop()
        return runs, began

    runs, began = asyncio.run(scenario())
    assert len(runs) == 1 and 0.19 <= runs[0] - began <= 1.0


def test_a_run_for_another_reason_carries_the_news_and_voids_its_timer() -> None:
    async def scenario() -> int:
        calls = 0

        async def reconcile(key: Hashable) -> float | None:
            nonlocal calls
            calls += 1
            return None

        q = WorkQueue(reconcile, workers=4)
        q.start()
        q.add_soon("a", 0.1)
        q.add("a")  # a Job finished: at once
        await _until(lambda: calls == 1)
        await asyncio.sleep(0.3)  # past the news' window
        await q.stop()
        return calls

    assert asyncio.run(scenario()) == 1


def test_news_that_arrives_during_a_run_gets_a_run_of_its_own() -> None:
    async def scenario() -> int:
        calls = 0
        gate = asyncio.Event()

        async def reconcile(key: Hashable) -> float | None:
            nonlocal calls
            calls += 1
            if calls == 1:
                await gate.wait()
            return None

        q = WorkQueue(reconcile, workers=4)
        q.start()
        q.add("a")
        await _until(lambda: calls == 1)
        q.add_soon("a", 0.05)  # the running reconcile may have read the store before this news
        gate.set()
        await _until(lambda: calls == 2)
        await q.stop()
        return calls

    assert asyncio.run(scenario()) == 2
