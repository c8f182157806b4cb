"""Pod logs for the task panel, read through the API server (pods/log) and relayed as server-sent events.

The last lines of a finished container, or the log followed while it runs; when the API server has no
log to give (a pod not started yet, a fake node), its answer is relayed in one sentence instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

from aiohttp import web

from ..cli.kube import stream_lines

LOG_TAIL_LINES = 1000
MAX_LOG_STREAMS = 50  # followed logs at once: each holds a thread and a connection to the API server
OpenLog = Callable[[str, str, str, bool], Any]  # (namespace, pod, container, follow) -> a streaming response


def _api_log(api_client: Any) -> OpenLog:
    def open_log(namespace: str, pod: str, container: str, follow: bool) -> Any:
        from kubernetes import client

        return client.CoreV1Api(api_client).read_namespaced_pod_log(
            pod, namespace, container=container, follow=follow, tail_lines=LOG_TAIL_LINES,
            _preload_content=False, _request_timeout=(10, 86400) if follow else (10, 60),
        )

    return open_log


class LogReader:
    """Pod logs through the API server (pods/log): the last lines, or followed while the container runs."""

    def __init__(self, api_client: Any, open_log: OpenLog | None = None) -> None:
        self.open_log = open_log or _api_log(api_client)
        self.streams = 0

    async def serve(self, request: web.Request) -> web.StreamResponse:
        """Stream a pod's log as server-sent events: `line` events, then one `end` event saying why it ended."""
        namespace, pod = request.match_info["namespace"], request.match_info["pod"]
        follow = request.query.get("follow") == "1"
        container = request.query.get("container", "task")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        if self.streams >= MAX_LOG_STREAMS:
            await _send(resp, "end", f"(too many logs are open at once: {MAX_LOG_STREAMS}; close some pages)")
            return resp
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue(maxsize=10000)
        handle: dict[str, Any] = {}
        stop = threading.Event()

        def put(kind: str, text: str) -> None:
            with contextlib.suppress(asyncio.QueueFull):  # a reader that cannot keep up loses lines, not memory
                queue.put_nowait((kind, text))

        def read() -> None:
            try:
                for line in self._lines(namespace, pod, container, follow, handle):
                    if stop.is_set():
                        return
                    loop.call_soon_threadsafe(put, "line", line)
                loop.call_soon_threadsafe(put, "end", "(end of log)" if not follow else "(the container ended)")
            except Exception as exc:  # noqa: BLE001 - the API's answer is shown in the panel
                loop.call_soon_threadsafe(put, "end", f"(no log: {_log_problem(exc)})")

        self.streams += 1
        thread = threading.Thread(target=read, name=f"log-{namespace}-{pod}", daemon=True)
        thread.start()
        try:
            while True:
                kind, text = await queue.get()
                await _send(resp, kind, text)
                if kind == "end":
                    break
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.streams -= 1
            stop.set()
            response = handle.get("response")
            if response is not None:  # ends a followed log the reader no longer reads
                with contextlib.suppress(Exception):
                    response.close()
        return resp

    def _lines(
        self, namespace: str, pod: str, container: str, follow: bool, handle: dict[str, Any]
    ) -> Iterator[str]:
        resp = self.open_log(namespace, pod, container, follow)
        handle["response"] = resp
        yield from stream_lines(resp)


async def _send(resp: web.StreamResponse, event: str, text: str) -> None:
    await resp.write(f"event: {event}\ndata: {json.dumps(text)}\n\n".encode())


def _log_problem(exc: Exception) -> str:
    """Return the API server's answer to a log request, in one line."""
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, ApiException):
        message = exc.reason or ""
        with contextlib.suppress(ValueError, TypeError):
            message = json.loads(str(exc.body)).get("message") or message
        return f"the API server answered {exc.status}: {message}"
    return f"{type(exc).__name__}: {exc}"
