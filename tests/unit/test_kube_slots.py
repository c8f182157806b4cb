"""The operator's connection slots: at most n requests in flight, a Job create first among those waiting."""

from __future__ import annotations

import asyncio
from typing import Any

from taskjobs.shell.kube import BACKGROUND, NORMAL, URGENT, Kube, Slots


async def served_order() -> list[str]:
    slots = Slots(1)
    await slots.acquire(NORMAL)  # the one slot is taken
    order: list[str] = []

    async def request(name: str, priority: int) -> None:
        await slots.acquire(priority)
        order.append(name)
        slots.release()

    waiting = [
        asyncio.create_task(request("event", BACKGROUND)),
        asyncio.create_task(request("status", NORMAL)),
        asyncio.create_task(request("create-1", URGENT)),
        asyncio.create_task(request("create-2", URGENT)),
    ]
    await asyncio.sleep(0)  # all four are waiting now
    slots.release()
    await asyncio.gather(*waiting)
    return order


def test_waiting_requests_get_a_slot_by_priority_then_in_arrival_order() -> None:
    assert asyncio.run(served_order()) == ["create-1", "create-2", "status", "event"]


async def cancelled_waiters() -> tuple[int, int]:
    slots = Slots(2)
    await slots.acquire(NORMAL)
    await slots.acquire(NORMAL)
    gone = asyncio.create_task(slots.acquire(URGENT))
    granted_then_cancelled = asyncio.create_task(slots.acquire(URGENT))
    await asyncio.sleep(0)
    gone.cancel()  # cancelled while waiting: skipped
    await asyncio.sleep(0)
    slots.release()  # goes to the second waiter...
    granted_then_cancelled.cancel()  # ...which is cancelled before it runs: the slot must not be lost
    await asyncio.gather(gone, granted_then_cancelled, return_exceptions=True)
    slots.release()
    return slots.free, len(slots._waiting)


def test_a_cancelled_waiter_loses_no_slot() -> None:
    assert asyncio.run(cancelled_waiters()) == (2, 0)


class SlowApi:
    """Answers each request when the test says so; records how many were in flight at most."""

    def __init__(self) -> None:
        self.in_flight = self.most = 0
        self.sent: list[str] = []
        self.answer = asyncio.Event()

    async def request(self, method: str, path: str, **_: Any) -> bytes:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        self.sent.append(path)
        await self.answer.wait()
        self.in_flight -= 1
        return b"{}"


async def through_kube() -> tuple[int, list[str]]:
    api = SlowApi()
    kube = Kube(api, qps=0, connections=2)  # type: ignore[arg-type]
    events = [
        asyncio.create_task(kube._request("create_namespaced_event", "POST", f"/event-{i}", {}, priority=BACKGROUND))
        for i in range(3)
    ]
    await asyncio.sleep(0)
    create = asyncio.create_task(kube._request("create_namespaced_job", "POST", "/job", {}, priority=URGENT))
    await asyncio.sleep(0)
    api.answer.set()
    await asyncio.gather(*events, create)
    return api.most, api.sent


def test_kube_keeps_to_its_connections_and_sends_a_waiting_job_create_before_a_waiting_event() -> None:
    most, sent = asyncio.run(through_kube())
    assert most == 2
    assert sent == ["/event-0", "/event-1", "/job", "/event-2"]
