"""A lean list-then-watch of the Jobs, pods or ConfigMaps labelled as ours, feeding the store.

kopf's watch of Jobs and pods cost most of the operator's CPU per task (B4: its per-event processing,
queueing, and parsing every event whole). This loop does what an informer does and no more: LIST with
the label selector, then WATCH from the list's resourceVersion with bookmarks, resuming from the last
version seen when the stream ends or breaks; when that version has expired (410 Gone) it lists again,
and what the new list no longer shows is dropped from the store (no DELETED event ever came for it).
Events are decoded by `essentials`: only the fields the facts need, no full objects kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiohttp

from ..core.naming import LABEL_TASKJOB
from .apisession import ApiError
from .essentials import decode_event, decode_list

if TYPE_CHECKING:
    from .kube import Kube

log = logging.getLogger("taskjob.watch")

PATHS = {"jobs": "/apis/batch/v1", "pods": "/api/v1", "configmaps": "/api/v1"}
WATCH_SECONDS = 270  # the server ends each watch after this; the loop resumes from the last version
# A watch that sends nothing, not even a bookmark, this long is dead (a stalled connection or proxy): the
# API server sends a bookmark about every 60 s and keeps recent events ~75 s, as kopf's own default says.
INACTIVITY_SECONDS = 70.0
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)  # after a broken watch; the last one repeats

OnEvent = Callable[[str | None, dict[str, Any]], None]  # (type, essentials); type None = listed
OnListed = Callable[[list[dict[str, Any]], int], None]  # (every item listed, the list's resourceVersion)


class Expired(Exception):  # noqa: N818 - names the server's answer
    """The watch's resourceVersion is too old (410 Gone): list again."""


def collection_path(kind: str, namespace: str | None) -> str:
    """Return the API path of the collection of `kind` in `namespace` (all namespaces when None)."""
    base = PATHS[kind]
    return f"{base}/namespaces/{namespace}/{kind}" if namespace else f"{base}/{kind}"


class OwnedWatch:
    """Keeps the store current with one kind of our objects in one namespace (or all)."""

    def __init__(self, kube: Kube, kind: str, namespace: str | None, on_event: OnEvent, on_listed: OnListed) -> None:
        self.kube, self.api, self.kind, self.namespace = kube, kube.http, kind, namespace
        self.on_event, self.on_listed = on_event, on_listed
        self.path = collection_path(kind, namespace)
        self.version: str | None = None  # None: list before watching
        self._listing = 0  # bumped by each list: events of a stream opened before it are stale

    async def relist(self) -> None:
        """LIST every object, hand each to on_event (type None) and all to on_listed; watch from its version."""
        self._listing += 1
        items, version = decode_list(self.kind, await self._list())
        for item in items:
            self.on_event(None, item)
        self.on_listed(items, int(version or 0))
        self.version = version
        self._listing += 1

    async def _list(self) -> bytes:
        """Return the LIST's answer. Kube retries a transient failure (429, 5xx, a lost connection): the
        startup handler lists through here, and if one lost request failed it, kopf would retry it only a
        minute later, the operator unhealthy meanwhile."""
        return await self.kube.get_raw(
            f"list_{self.kind}", self.path, {"labelSelector": LABEL_TASKJOB},
            aiohttp.ClientTimeout(sock_connect=10, total=120),
        )  # fmt: skip

    async def run(self) -> None:
        """Watch until cancelled: resume from the last version; list again when it expired."""
        failures = 0
        while True:
            try:
                if self.version is None:
                    await self.relist()
                await self._watch()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Expired:
                log.info("watch of %s expired (410 Gone): listing again", self.kind)
                self.version = None
            except (TimeoutError, aiohttp.ClientError, ApiError) as e:  # the connection or the server
                delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)]
                failures += 1
                if isinstance(e, ApiError) and e.status == 410:
                    self.version = None
                log.warning("watch of %s failed (%s); again in %.1fs", self.kind, e, delay)
                await asyncio.sleep(delay)
            except Exception:  # noqa: BLE001 - an event we could not take in: the store may miss it, so list again
                delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)]
                failures += 1
                log.exception("watch of %s: an event could not be handled; listing again in %.1fs", self.kind, delay)
                self.version = None
                await asyncio.sleep(delay)

    async def _watch(self) -> None:
        listing = self._listing
        params = {
            "labelSelector": LABEL_TASKJOB,
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": self.version or "",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        timeout = aiohttp.ClientTimeout(sock_connect=10, sock_read=INACTIVITY_SECONDS)
        async with self.api.stream(self.path, params, timeout) as resp:
            if resp.status != 200:
                raise ApiError(resp.status, await resp.read())
            while True:
                line = await resp.content.readline()
                if not line:
                    return  # the server ended the watch: resume from self.version
                if listing != self._listing:
                    return  # listed meanwhile (the store was reloaded): watch from the new list's version
                self._handle(line)

    def _handle(self, line: bytes) -> None:
        event = decode_event(self.kind, line)
        if event.type == "ERROR":
            if event.code == 410:
                raise Expired()
            raise ApiError(event.code or 500, str(event.object.get("message") or "").encode())
        version = event.object.get("metadata", {}).get("resourceVersion")
        if event.type != "BOOKMARK":
            self.on_event(event.type, event.object)
        if version:
            self.version = version
