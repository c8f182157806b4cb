"""The task panel's log: lines relayed as server-sent events, and the API server's refusal in one sentence."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from kubernetes.client.exceptions import ApiException

from taskjobs.dashboard.logs import LogReader, OpenLog
from taskjobs.dashboard.model import Model
from taskjobs.dashboard.server import Dashboard, make_app


class Chunks:
    """A streaming log response: its bytes in the given chunks."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks
        self.closed = False

    def stream(self, amt: int, decode_content: bool) -> Iterator[bytes]:
        yield from self.chunks

    def close(self) -> None:
        self.closed = True


def read_log(open_log: OpenLog, query: str = "") -> list[tuple[str, str]]:
    """Return the (event, text) pairs the log endpoint sends for one pod."""

    async def main() -> list[tuple[str, str]]:
        app = make_app(Dashboard(Model()), LogReader(None, open_log=open_log))
        async with TestClient(TestServer(app)) as client:
            resp = await client.get(f"/api/logs/team-a/diamond-root-1-abcde{query}")
            events, event = [], "message"
            while True:
                line = (await asyncio.wait_for(resp.content.readline(), 5)).decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    events.append((event, json.loads(line[6:])))
                    if event == "end":
                        return events

    return asyncio.run(main())


def test_lines_split_across_chunks_arrive_whole_then_the_end() -> None:
    asked: list[tuple[str, str, str, bool]] = []

    def open_log(namespace: str, pod: str, container: str, follow: bool) -> Any:
        asked.append((namespace, pod, container, follow))
        return Chunks(b"root: star", b"ting\nsecond line\nno newline at the e", b"nd")

    assert read_log(open_log) == [
        ("line", "root: starting"),
        ("line", "second line"),
        ("line", "no newline at the end"),
        ("end", "(end of log)"),
    ]
    assert asked == [("team-a", "diamond-root-1-abcde", "task", False)]
    read_log(open_log, "?follow=1")
    assert asked[-1][3] is True, "a running task's log is followed"


def test_the_api_servers_refusal_is_relayed_in_one_sentence() -> None:
    def open_log(namespace: str, pod: str, container: str, follow: bool) -> Any:
        error = ApiException(status=400, reason="Bad Request")
        error.body = json.dumps({"message": 'container "task" in pod "diamond-root-1-abcde" is waiting to start'})
        raise error

    assert read_log(open_log) == [
        (
            "end",
            '(no log: the API server answered 400: container "task" in pod "diamond-root-1-abcde" is waiting to start)',
        )
    ]
