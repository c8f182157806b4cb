"""The Kubernetes API calls the operator makes, as awaitables; each one idempotent where it can be.

Every call goes through `apisession.ApiSession` (aiohttp on the event loop), and the calls made per task
(Job create and stop, status patch, Event) decode only what they use from the answer: through the
official client, a thread hand-off, urllib3 and the parsing of the whole answer (the whole TaskJob, for
a status patch) were about half of the operator's CPU per task, and its import a third of the idle
operator's memory (docs/performance.md, B4). Errors are `ApiError`s (status, Retry-After, message).

Transient failures (429 with its Retry-After, 5xx, a dropped or timed-out connection) are retried here
with a short backoff, so one lost request neither fails a reconcile nor, at startup, makes kopf wait a
minute before retrying its startup handler. Every request has a timeout: a connection that goes silent
must not hold a worker (and its TaskJob) forever.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import itertools
import logging
import socket
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
import msgspec

from .. import GROUP, KIND, PLURAL, VERSION
from ..core.naming import LABEL_TASKJOB
from . import metrics
from .apisession import CONNECTIONS, ApiError, ApiSession
from .connection import load_connection
from .essentials import decode_object
from .workqueue import RetryLater

log = logging.getLogger("taskjob.kube")

MERGE = "application/merge-patch+json"
METADATA_ONLY = {"Accept": "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"}
LIST_PAGE = 500  # items per page of a resync's LIST (kubectl's default chunk size)


class _Name(msgspec.Struct):
    name: str
    namespace: str | None = None


class _Named(msgspec.Struct):
    metadata: _Name


class _ListMeta(msgspec.Struct):
    resourceVersion: str  # noqa: N815 - the API's field name
    continue_: str | None = msgspec.field(default=None, name="continue")


class _NamesList(msgspec.Struct):
    """A LIST's answer as the names of its items: msgspec skips every other field without building it."""

    metadata: _ListMeta
    items: list[_Named] | None = None  # null when empty


_NAMES_LIST = msgspec.json.Decoder(_NamesList)
TRANSIENT = frozenset({429, 500, 502, 503, 504})  # worth asking again
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)  # then the error goes to the work queue's own backoff
REQUEST_TIMEOUT = (10.0, 60.0)  # seconds to connect, and to wait for the response
MAX_QUEUED_EVENTS = 1000  # Events waiting to be sent; older ones are dropped beyond this
EVENT_SENDERS = 4  # Events in flight at once


# Request priorities for the shared rate limit: lower goes first. A Job create is the critical path of
# scheduling latency; Events are best effort and must never delay it (client-go sends them from a
# background broadcaster for the same reason).
URGENT, NORMAL, BACKGROUND = 0, 1, 2


class TokenBucket:
    """Client-side rate limit (QPS with a burst), like client-go's, so bursts of creates stay polite.

    Unlike client-go's, waiting requests are served by priority, then in arrival order.
    """

    def __init__(self, qps: float, burst: int) -> None:
        self.qps, self.burst = qps, float(burst)
        self.tokens, self.stamp = float(burst), time.monotonic()
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.qps)
        self.stamp = now

    async def take(self, priority: int = NORMAL) -> None:
        """Wait until one request of this priority may be sent."""
        if self.qps <= 0:
            return
        self._refill()
        if not self._waiting and self.tokens >= 1:
            self.tokens -= 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._arrivals), turn))
        self._schedule()
        await turn  # a cancelled waiter is skipped by _grant

    def _schedule(self) -> None:
        if self._timer is None and self._waiting:
            delay = max(0.0, (1 - self.tokens) / self.qps)
            self._timer = asyncio.get_running_loop().call_later(delay, self._grant)

    def _grant(self) -> None:
        self._timer = None
        self._refill()
        while self._waiting and self.tokens >= 1:
            _, _, turn = heapq.heappop(self._waiting)
            if not turn.done():
                turn.set_result(None)
                self.tokens -= 1
        self._schedule()


class Slots:
    """At most `n` requests in flight at once; the waiting ones go by priority, then in arrival order.

    Like asyncio.Semaphore, but a Job create waiting for a connection goes before a status patch or an Event
    that came first: in a burst, requests wait here longer than for the rate limit (B1, 50 in flight).
    """

    def __init__(self, n: int) -> None:
        self.free = n
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    async def acquire(self, priority: int) -> None:
        """Wait for a slot."""
        if self.free > 0 and not self._waiting:
            self.free -= 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._arrivals), turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release()  # given the slot, then cancelled before using it: the next one gets it
            raise

    def release(self) -> None:
        """Give the slot to the first waiting request, or back."""
        while self._waiting:
            _, _, turn = heapq.heappop(self._waiting)
            if not turn.done():  # a cancelled waiter is skipped
                turn.set_result(None)
                return
        self.free += 1


class Kube:
    """Async facade over the calls the operator needs."""

    def __init__(self, api: ApiSession | None = None, qps: float = 50.0, connections: int = CONNECTIONS) -> None:
        self.http = api or ApiSession(load_connection())
        self.limiter = TokenBucket(qps, burst=max(1, int(qps * 2)))
        self.slots = Slots(connections)  # requests in flight; watch streams are not counted
        self.instance = socket.gethostname()
        self._events: collections.deque[tuple[Mapping[str, Any], str, str, str]] = collections.deque()
        self._event_senders: set[asyncio.Task[None]] = set()

    async def _request(
        self,
        operation: str,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        retry: frozenset[int] | None = TRANSIENT,
        priority: int = NORMAL,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> bytes:
        """Send one request under the rate limit; return the answer's body, or raise ApiError.

        The HTTP statuses in `retry` and lost or timed-out connections are asked again after a short
        backoff (a 429's Retry-After when longer); `retry=None` sends once (for requests whose repetition
        is not harmless, such as an Event).
        """
        data = msgspec.json.encode(body) if body is not None else None
        timeout = timeout or aiohttp.ClientTimeout(sock_connect=REQUEST_TIMEOUT[0], sock_read=REQUEST_TIMEOUT[1])
        delays = RETRY_DELAYS if retry is not None else ()
        counted = metrics.api_metrics(operation)
        for delay in (*delays, None):
            queued = time.perf_counter()
            await self.limiter.take(priority)
            limited = time.perf_counter()
            metrics.RATE_LIMIT_SECONDS.observe(limited - queued)
            await self.slots.acquire(priority)
            sent = time.perf_counter()
            metrics.CONNECTION_WAIT_SECONDS.observe(sent - limited)
            counted.requests.inc()
            try:
                try:
                    answer = await self.http.request(
                        method, path, body=data, content_type=content_type, params=params, headers=headers,
                        timeout=timeout,
                    )  # fmt: skip
                finally:
                    self.slots.release()
                counted.seconds.observe(time.perf_counter() - sent)
                return answer
            except ApiError as e:
                if e.status not in (404, 409):  # expected answers, handled by the callers
                    counted.errors.inc()
                if delay is None or retry is None or e.status not in retry:
                    raise
                wait = max(delay, e.retry_after)
                why = f"HTTP {e.status}"
            except (aiohttp.ClientError, TimeoutError) as e:  # reset, refused, timed out: it may not have arrived
                counted.errors.inc()
                if delay is None:
                    raise
                wait, why = delay, type(e).__name__
            log.debug("%s failed (%s); retrying in %.1fs", operation, why, wait)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def get_raw(
        self, operation: str, path: str, params: Mapping[str, str], timeout: aiohttp.ClientTimeout
    ) -> bytes:
        """Return the undecoded answer of a GET, retried as every request is (the lean watch's LIST)."""
        return await self._request(operation, "GET", path, params=params, timeout=timeout)

    async def _get(self, operation: str, path: str, **kwargs: Any) -> Any:
        """Return the decoded answer of a GET."""
        return msgspec.json.decode(await self._request(operation, "GET", path, **kwargs))

    # ---- reads (startup only: afterwards watches keep the store current)

    async def list_taskjobs(self, namespace: str | None) -> list[dict[str, Any]]:
        """Return every TaskJob in the namespace (all namespaces when None)."""
        listing = await self._get("list_taskjobs", _custom_path(GROUP, VERSION, PLURAL, namespace))
        return list(listing.get("items") or ())

    async def list_with_version(self, kind: str, namespace: str | None) -> tuple[list[dict[str, Any]], int]:
        """Return the names of the TaskJobs, or of the Jobs/pods labelled as ours, and the LIST's resourceVersion.

        Each item is {"metadata": {"name": ..., "namespace": ...}}: a prune needs nothing else. The answer is
        asked for as metadata only (PartialObjectMetadata), in pages of LIST_PAGE, and decoded into names
        alone: a TaskJob's metadata is mostly its managedFields (about 3 KB of JSON for 10 tasks), and the
        whole list decoded as dicts was an 18 MiB burst of the operator's peak memory every resync with 1,000
        TaskJobs (B4). Every page is of the first page's resourceVersion (the continue token keeps it), so
        `Store.prune` can drop only what was last seen at or before it.
        """
        params = {"limit": str(LIST_PAGE)}
        if kind == "taskjobs":
            path = _custom_path(GROUP, VERSION, PLURAL, namespace)
        else:
            path = _collection_path({"jobs": "/apis/batch/v1", "pods": "/api/v1"}[kind], kind, namespace)
            params["labelSelector"] = LABEL_TASKJOB
        items: list[dict[str, Any]] = []
        version: int | None = None
        while True:
            data = await self._request(f"list_{kind}_metadata", "GET", path, params=params, headers=METADATA_ONLY)
            page = _NAMES_LIST.decode(data)
            if version is None:
                version = int(page.metadata.resourceVersion)
            for item in page.items or ():
                items.append({"metadata": {"name": item.metadata.name, "namespace": item.metadata.namespace}})
            if not page.metadata.continue_:
                return items, version
            params = {**params, "continue": page.metadata.continue_}

    async def get_custom(self, group: str, version: str, plural: str, name: str, namespace: str | None) -> Any:
        """Return a custom object (cluster-scoped when namespace is None)."""
        return await self._get("get_custom_object", f"{_custom_path(group, version, plural, namespace)}/{name}")

    # ---- writes

    async def create_job(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """Create the Job; return its essentials (`essentials.py`), or None when this TaskJob's Job of that
        name already exists (already done).

        A 409 is checked: the Job must exist and belong to the same TaskJob (by uid). A Job left by an
        earlier TaskJob of the same name, still being deleted, raises RetryLater: taking it for ours
        would count its outcome as this TaskJob's.
        """
        name = body["metadata"]["name"]
        try:
            data = await self._request(
                "create_namespaced_job", "POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", body, priority=URGENT
            )
            return decode_object("jobs", data)  # only what the store keeps
        except ApiError as e:
            if e.status != 409:
                raise
        existing = await self._get_job(namespace, name)
        if existing is None:
            raise RetryLater(f"creating Job {namespace}/{name} conflicted, but no such Job exists; trying again")
        owner = {ref.get("uid") for ref in body["metadata"].get("ownerReferences", ())}
        theirs = {ref.get("uid") for ref in existing["metadata"].get("ownerReferences") or ()}
        if owner and not owner & theirs:
            raise RetryLater(
                f"Job {namespace}/{name} still exists from an earlier TaskJob of the same name"
                f"{' (being deleted)' if existing['metadata'].get('deletionTimestamp') else ''}; "
                "its tasks start once it is gone"
            )
        return None

    async def _get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(await self._get("read_namespaced_job", f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}"))
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    async def patch_job(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        """Merge-patch a Job; a Job that is gone needs no patch."""
        try:
            await self._request(
                "patch_namespaced_job", "PATCH", f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}", patch,
                content_type=MERGE, retry=TRANSIENT | {409}, priority=URGENT,
            )  # fmt: skip
        except ApiError as e:
            if e.status != 404:
                raise

    async def patch_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> int | None:
        """Merge-patch the TaskJob's status; return the new resourceVersion, or None if the TaskJob is gone."""
        try:
            data = await self._request(
                "patch_namespaced_custom_object_status",
                "PATCH",
                f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}/status",
                {"status": patch},
                content_type=MERGE,
                retry=TRANSIENT | {409},  # a merge patch carries no resourceVersion: asking again is safe
            )
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        return int(_VERSION_ONLY.decode(data).metadata.resourceVersion)  # not the whole TaskJob: its version

    async def delete_taskjob(self, namespace: str, name: str, uid: str) -> None:
        """Delete the TaskJob (its Jobs and pods follow by garbage collection); gone already is fine."""
        try:
            path = f"{_custom_path(GROUP, VERSION, PLURAL, namespace)}/{name}"
            body = {"propagationPolicy": "Background", "preconditions": {"uid": uid}}
            await self._request("delete_namespaced_custom_object", "DELETE", path, body)
        except ApiError as e:
            if e.status not in (404, 409):
                raise

    # ---- CronTaskJobs and the TaskJobs they create (shell/cron.py)

    async def get_namespaced_custom(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """Return one taskjob.dev object, or None when it does not exist."""
        try:
            return dict(await self._get("get_namespaced_custom_object",
                                        f"{_custom_path(GROUP, VERSION, plural, namespace)}/{name}"))
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    async def list_taskjobs_labelled(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        """Return the TaskJobs of a namespace matching a label selector (fresh from the API server)."""
        listing = await self._get(
            "list_namespaced_custom_object", _custom_path(GROUP, VERSION, PLURAL, namespace),
            params={"labelSelector": selector},
        )  # fmt: skip
        return list(listing.get("items") or ())

    async def create_taskjob(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """Create the TaskJob; return it, or None when one of that name already exists (the caller checks whose)."""
        try:
            data = await self._request(
                "create_namespaced_custom_object", "POST", _custom_path(GROUP, VERSION, PLURAL, namespace), body
            )
        except ApiError as e:
            if e.status != 409:
                raise
            return None
        return dict(msgspec.json.decode(data))

    async def patch_custom_status(
        self, plural: str, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Merge-patch the status of a taskjob.dev object; return it, or None if it is gone."""
        try:
            data = await self._request(
                "patch_namespaced_custom_object_status", "PATCH",
                f"{_custom_path(GROUP, VERSION, plural, namespace)}/{name}/status", {"status": patch},
                content_type=MERGE, retry=TRANSIENT | {409},
            )  # fmt: skip
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        return dict(msgspec.json.decode(data))

    async def record_outputs(self, owner: Mapping[str, Any], name: str, data: Mapping[str, str]) -> None:
        """Create or merge the outputs ConfigMap owned by the TaskJob."""
        meta = owner["metadata"]
        namespace = meta["namespace"]
        path = f"/api/v1/namespaces/{namespace}/configmaps"
        patch = {"data": dict(data)}
        try:
            await self._request("patch_namespaced_config_map", "PATCH", f"{path}/{name}", patch, content_type=MERGE)
            return
        except ApiError as e:
            if e.status != 404:
                raise
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {LABEL_TASKJOB: meta["name"]},
                "ownerReferences": [owner_reference(owner)],
            },
            "data": dict(data),
        }
        try:
            await self._request("create_namespaced_config_map", "POST", path, body)
        except ApiError as e:
            if e.status != 409:
                raise
            await self._request("patch_namespaced_config_map", "PATCH", f"{path}/{name}", patch, content_type=MERGE)

    def post_event(self, owner: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """Queue an Event on the TaskJob, sent in the background at the lowest priority, in order.

        A reconcile never waits for its Events: under load they would hold a worker and delay the next
        Job create. Past MAX_QUEUED_EVENTS the oldest are dropped (counted), as client-go's broadcaster does.
        """
        if len(self._events) >= MAX_QUEUED_EVENTS:
            self._events.popleft()
            metrics.EVENTS_DROPPED.inc()
        self._events.append((_event_owner(owner), type_, reason, message))
        if len(self._event_senders) < EVENT_SENDERS:
            sender = asyncio.get_running_loop().create_task(self._send_events(), name="taskjob-events")
            self._event_senders.add(sender)
            sender.add_done_callback(self._event_senders.discard)

    async def _send_events(self) -> None:
        while self._events:
            owner, type_, reason, message = self._events.popleft()
            try:
                await self.event(owner, type_, reason, message)
            except Exception as e:  # noqa: BLE001 - events are best effort
                meta = owner["metadata"]
                log.warning(
                    "could not record event %s on %s: %s", reason, meta["name"], e,
                    extra={"taskjob": meta["name"], "namespace": meta.get("namespace")},
                )

    async def flush_events(self, timeout: float = 5.0) -> None:
        """Wait (up to `timeout` seconds) until the queued Events are sent."""
        if self._event_senders:
            await asyncio.wait(list(self._event_senders), timeout=timeout)

    async def event(self, owner: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """Record a Kubernetes Event on the TaskJob (best effort: an event lost is not worth a retry loop)."""
        meta = owner["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": owner.get("apiVersion") or f"{GROUP}/{VERSION}",
                "kind": owner.get("kind") or KIND,  # a TaskJob, or a CronTaskJob
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "source": {"component": "taskjob-operator"},
            "reportingComponent": "taskjob.dev/operator",
            "reportingInstance": self.instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await self._request(
            "create_namespaced_event", "POST", f"/api/v1/namespaces/{meta['namespace']}/events", body,
            retry=None, priority=BACKGROUND,
        )  # fmt: skip


def _event_owner(owner: Mapping[str, Any]) -> dict[str, Any]:
    """Return what an Event needs of its TaskJob: a queued Event holding the whole body kept it alive after the
    store had moved on to the next one (up to MAX_QUEUED_EVENTS stale TaskJobs, ~15 KB each, under load)."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner.get("apiVersion"),
        "kind": owner.get("kind"),
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta.get("uid")},
    }


class _Version(msgspec.Struct):
    resourceVersion: str  # noqa: N815 - the API's spelling


class _VersionOnly(msgspec.Struct):
    metadata: _Version


_VERSION_ONLY = msgspec.json.Decoder(_VersionOnly)


def _collection_path(prefix: str, plural: str, namespace: str | None) -> str:
    """Return the API path of a collection in a namespace (in all namespaces when None)."""
    return f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"


def _custom_path(group: str, version: str, plural: str, namespace: str | None) -> str:
    """Return the API path of a custom resource's collection (cluster-scoped or all namespaces when None)."""
    return _collection_path(f"/apis/{group}/{version}", plural, namespace)


def owner_reference(owner: Mapping[str, Any]) -> dict[str, Any]:
    """Return an ownerReference to the TaskJob, so deleting it deletes what it owns."""
    meta = owner["metadata"]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
