"""One set of watches (TaskJobs, their Jobs and pods, Events) feeding the Model, however many browsers look.

The official client is synchronous: each watch runs in its own thread (list, then watch from the
listing's resourceVersion; list again after a 410 or a dropped connection) and hands its events to the
event loop with `call_soon_threadsafe`, so the Model is only ever touched on the loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .coreapi import GROUP, LABEL_TASKJOB, PLURAL, VERSION

log = logging.getLogger("taskjob.dashboard")

WATCH_SECONDS = 300  # the API server ends each watch after this; we resume from the last version
RETRY_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)
REQUEST_TIMEOUT = (10, 60)


@dataclass(frozen=True)
class Source:
    """One kind to watch in one namespace (None: all namespaces)."""

    kind: str  # taskjobs, jobs, pods or events
    namespace: str | None


def list_call(api_client: Any, source: Source) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
    """Return the client function, arguments and keywords that list (and, with watch=True, watch) a source."""
    from kubernetes import client

    ns = source.namespace
    kwargs: dict[str, Any] = {}
    if source.kind == "taskjobs":
        custom = client.CustomObjectsApi(api_client)
        if ns:
            return custom.list_namespaced_custom_object, (GROUP, VERSION, ns, PLURAL), kwargs
        return custom.list_cluster_custom_object, (GROUP, VERSION, PLURAL), kwargs
    if source.kind in ("jobs", "pods"):
        kwargs["label_selector"] = LABEL_TASKJOB
    core, batch = client.CoreV1Api(api_client), client.BatchV1Api(api_client)
    fns = {
        "jobs": (batch.list_namespaced_job, batch.list_job_for_all_namespaces),
        "pods": (core.list_namespaced_pod, core.list_pod_for_all_namespaces),
        "events": (core.list_namespaced_event, core.list_event_for_all_namespaces),
    }[source.kind]
    return (fns[0], (ns,), kwargs) if ns else (fns[1], (), kwargs)


class Watcher:
    """Threads that list and watch every source, calling `on_replace` and `on_event` on the event loop."""

    def __init__(
        self,
        api_client: Any,
        sources: list[Source],
        loop: asyncio.AbstractEventLoop,
        on_replace: Callable[[str, str | None, list[dict[str, Any]]], None],
        on_event: Callable[[str, str, dict[str, Any]], None],
        on_error: Callable[[Source, str | None], None],
    ) -> None:
        self.api_client = api_client
        self.sources = sources
        self.loop = loop
        self.on_replace, self.on_event, self.on_error = on_replace, on_event, on_error
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start one thread per source."""
        for source in self.sources:
            name = f"watch-{source.kind}-{source.namespace or 'all'}"
            thread = threading.Thread(target=self._run, args=(source,), name=name, daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self) -> None:
        """Ask the threads to end (each notices at its next event or watch timeout; they are daemons)."""
        self.stopping.set()

    def _run(self, source: Source) -> None:
        from kubernetes.client.exceptions import ApiException

        failures = 0
        while not self.stopping.is_set():
            try:
                version = self._list(source)
                self.loop.call_soon_threadsafe(self.on_error, source, None)
                failures = 0
                self._watch(source, version)
            except ApiException as exc:
                if exc.status != 410:
                    self._failed(source, exc, failures)
                    failures += 1
                # 410: the version is too old to resume from; list again at once
            except Exception as exc:  # noqa: BLE001 - shown on the page; the watch is tried again
                self._failed(source, exc, failures)
                failures += 1

    def _failed(self, source: Source, exc: Exception, failures: int) -> None:
        message = _describe(exc, source)
        log.warning("%s", message)
        self.loop.call_soon_threadsafe(self.on_error, source, message)
        self.stopping.wait(RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)])  # a pause, cut short by stop()

    def _list(self, source: Source) -> str:
        fn, args, kwargs = list_call(self.api_client, source)
        resp = fn(*args, **kwargs, _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
        listing = json.loads(resp.data)
        self.loop.call_soon_threadsafe(self.on_replace, source.kind, source.namespace, listing.get("items") or [])
        return str((listing.get("metadata") or {}).get("resourceVersion") or "")

    def _watch(self, source: Source, version: str) -> None:
        """Stream events until the watch ends or expires (then the caller lists again)."""
        from kubernetes import watch

        fn, args, kwargs = list_call(self.api_client, source)
        w: Any = watch.Watch()  # type: ignore[no-untyped-call]
        while not self.stopping.is_set():
            stream = w.stream(
                fn, *args, **kwargs, resource_version=version, timeout_seconds=WATCH_SECONDS,
                allow_watch_bookmarks=True, deserialize=False, _request_timeout=(10, WATCH_SECONDS + 30),
            )
            for event in stream:
                obj = event.get("object") or {}
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if event.get("type") != "BOOKMARK":
                    self.loop.call_soon_threadsafe(self.on_event, source.kind, event["type"], obj)
                if self.stopping.is_set():
                    w.stop()
                    return


def _describe(exc: Exception, source: Source) -> str:
    from kubernetes.client.exceptions import ApiException

    where = f"in namespace {source.namespace}" if source.namespace else "in all namespaces"
    if isinstance(exc, ApiException):
        if exc.status == 403:
            hint = "" if source.namespace else " (use -n NAMESPACE to watch one namespace you may read)"
            return f"not allowed to watch {source.kind} {where}{hint}"
        if exc.status == 410:
            return f"the watch of {source.kind} {where} expired; listing again"
        return f"watching {source.kind} {where} failed: HTTP {exc.status} {exc.reason}"
    return f"watching {source.kind} {where} failed: {type(exc).__name__}: {exc}"
