"""The Kubernetes API calls the operator makes, as awaitables; each one idempotent where it can be.

The calls made per task (Job create and stop, status patch, Event) go through `apisession.ApiSession`
(aiohttp on the event loop) and decode only what they use from the answer: through the official client,
a thread hand-off, urllib3 and the parsing of the whole answer (the whole TaskJob, for a status patch)
were about half of the operator's CPU per task (docs/performance.md, B4). The rare calls (startup lists,
resync, gets) still use the official client, which is synchronous, in a thread pool.

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
import json
import logging
import socket
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp
import msgspec
import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from .. import GROUP, KIND, PLURAL, VERSION
from ..core.naming import LABEL_TASKJOB
from . import metrics
from .apisession import ApiError, ApiSession
from .essentials import decode_object
from .workqueue import RetryLater

log = logging.getLogger("taskjob.kube")

T = TypeVar("T")
MERGE = "application/merge-patch+json"
METADATA_ONLY = {"Accept": "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"}
TRANSIENT = frozenset({429, 500, 502, 503, 504})  # worth asking again
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)  # then the error goes to the work queue's own backoff
REQUEST_TIMEOUT = (10.0, 60.0)  # seconds to connect, and to wait for the response
MAX_QUEUED_EVENTS = 1000  # Events waiting to be sent; older ones are dropped beyond this
EVENT_SENDERS = 4  # Events in flight at once


def load_config() -> None:
    """Load in-cluster credentials when running in a pod, else the current kubeconfig."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]


def pooled_configuration(connections: int) -> client.Configuration:
    """Return the default client configuration with room for `connections` concurrent HTTPS connections.

    The client sizes its urllib3 pool to 5 per CPU (10 on 2 cores); with more threads than that, every
    extra request opens a new TLS connection and throws it away ("Connection pool is full"), and the
    handshakes cost more CPU than the requests.
    """
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0, connections)
    return configuration


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


class Kube:
    """Async facade over the calls the operator needs."""

    def __init__(self, api_client: client.ApiClient | None = None, qps: float = 50.0, threads: int = 16) -> None:
        self.api = api_client or client.ApiClient(pooled_configuration(threads))
        self.core = client.CoreV1Api(self.api)
        self.batch = client.BatchV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="kube")
        self.limiter = TokenBucket(qps, burst=max(1, int(qps * 2)))
        self.instance = socket.gethostname()
        self._events: collections.deque[tuple[Mapping[str, Any], str, str, str]] = collections.deque()
        self._event_senders: set[asyncio.Task[None]] = set()
        self.http = ApiSession(self.api.configuration, connections=threads)

    async def _request(
        self,
        operation: str,
        method: str,
        path: str,
        body: Any,
        *,
        content_type: str = "application/json",
        retry: frozenset[int] | None = TRANSIENT,
        priority: int = NORMAL,
    ) -> bytes:
        """Send one request through the lean session; retry as `_call` does. Errors raise ApiException.

        Raising the official client's ApiException (status, headers, body) keeps one error type for callers.
        """
        data = msgspec.json.encode(body)
        timeout = aiohttp.ClientTimeout(sock_connect=REQUEST_TIMEOUT[0], sock_read=REQUEST_TIMEOUT[1])
        delays = RETRY_DELAYS if retry is not None else ()
        for delay in (*delays, None):
            queued = time.perf_counter()
            await self.limiter.take(priority)
            sent = time.perf_counter()
            metrics.RATE_LIMIT_SECONDS.observe(sent - queued)
            metrics.API_REQUESTS.labels(operation=operation).inc()
            try:
                answer = await self.http.request(method, path, body=data, content_type=content_type, timeout=timeout)
                metrics.API_SECONDS.labels(operation=operation).observe(time.perf_counter() - sent)
                return answer
            except ApiError as e:
                if e.status not in (404, 409):  # expected answers, handled by the callers
                    metrics.API_ERRORS.labels(operation=operation).inc()
                if delay is None or retry is None or e.status not in retry:
                    raise _api_exception(e) from None
                wait = max(delay, e.retry_after)
                why = f"HTTP {e.status}"
            except (aiohttp.ClientError, TimeoutError) as e:  # reset, refused, timed out: it may not have arrived
                metrics.API_ERRORS.labels(operation=operation).inc()
                if delay is None:
                    raise
                wait, why = delay, type(e).__name__
            log.debug("%s failed (%s); retrying in %.1fs", operation, why, wait)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def _call(
        self,
        fn: Callable[..., T],
        *args: Any,
        retry: frozenset[int] | None = TRANSIENT,
        priority: int = NORMAL,
        **kwargs: Any,
    ) -> T:
        """Return fn(*args, **kwargs) run in the pool; retry the HTTP statuses in `retry` and lost connections.

        `retry=None` sends once (for requests whose repetition is not harmless, such as an Event).
        """
        loop = asyncio.get_running_loop()
        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
        delays = RETRY_DELAYS if retry is not None else ()
        for delay in (*delays, None):
            await self.limiter.take(priority)
            metrics.API_REQUESTS.labels(operation=getattr(fn, "__name__", "call")).inc()
            try:
                return await loop.run_in_executor(self.pool, lambda: _read(fn(*args, **kwargs)))
            except ApiException as e:
                if e.status not in (404, 409):  # expected answers, handled by the callers
                    metrics.API_ERRORS.labels(operation=fn.__name__).inc()
                if delay is None or retry is None or e.status not in retry:
                    raise
                wait = max(delay, _retry_after(e))
                why = f"HTTP {e.status}"
            except urllib3.exceptions.HTTPError as e:  # reset, refused, timed out: the request may not have arrived
                metrics.API_ERRORS.labels(operation=fn.__name__).inc()
                if delay is None:
                    raise
                wait, why = delay, type(e).__name__
            except Exception:
                metrics.API_ERRORS.labels(operation=fn.__name__).inc()
                raise
            log.debug("%s failed (%s); retrying in %.1fs", getattr(fn, "__name__", fn), why, wait)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    @staticmethod
    def _json(resp: Any) -> Any:
        return json.loads(resp.data)

    # ---- reads (startup only: afterwards watches keep the store current)

    async def list_taskjobs(self, namespace: str | None) -> list[dict[str, Any]]:
        """Return every TaskJob in the namespace (all namespaces when None)."""
        if namespace:
            resp = await self._call(
                self.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, _preload_content=False
            )
        else:
            resp = await self._call(
                self.custom.list_cluster_custom_object, GROUP, VERSION, PLURAL, _preload_content=False
            )
        return list(self._json(resp)["items"])

    async def list_with_version(self, kind: str, namespace: str | None) -> tuple[list[dict[str, Any]], int]:
        """Return the metadata of the TaskJobs, or of the Jobs/pods labelled as ours, and the LIST's resourceVersion.

        Each item is {"metadata": {...}} (a PartialObjectMetadata): a prune needs names and versions, and
        full Jobs and pods (about 25 KB each once parsed) cost a burst of CPU and memory every resync.
        Served from the API server's watch cache (resourceVersion=0): cheap, and possibly a little old,
        which `Store.prune` allows for (it drops only objects last seen at or before that version).
        """
        fn: Callable[..., Any]
        args: tuple[Any, ...]
        extra: dict[str, Any] = {"resource_version": "0", "_preload_content": False, "_headers": METADATA_ONLY}
        if kind == "taskjobs":
            fn, args = (
                (self.custom.list_namespaced_custom_object, (GROUP, VERSION, namespace, PLURAL))
                if namespace
                else (self.custom.list_cluster_custom_object, (GROUP, VERSION, PLURAL))
            )
        else:
            fns: tuple[Callable[..., Any], Callable[..., Any]] = {
                "jobs": (self.batch.list_namespaced_job, self.batch.list_job_for_all_namespaces),
                "pods": (self.core.list_namespaced_pod, self.core.list_pod_for_all_namespaces),
            }[kind]
            fn, args = (fns[0], (namespace,)) if namespace else (fns[1], ())
            extra["label_selector"] = LABEL_TASKJOB
        resp = await self._call(fn, *args, **extra)
        listing = self._json(resp)
        return list(listing.get("items") or ()), int(listing["metadata"]["resourceVersion"])  # empty: null

    async def get_custom(self, group: str, version: str, plural: str, name: str, namespace: str | None) -> Any:
        """Return a custom object (cluster-scoped when namespace is None)."""
        if namespace is None:
            resp = await self._call(
                self.custom.get_cluster_custom_object, group, version, plural, name, _preload_content=False
            )
        else:
            resp = await self._call(
                self.custom.get_namespaced_custom_object, group, version, namespace, plural, name,
                _preload_content=False,
            )
        return self._json(resp)

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
        except ApiException as e:
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
            resp = await self._call(self.batch.read_namespaced_job, name, namespace, _preload_content=False)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return dict(self._json(resp))

    async def patch_job(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        """Merge-patch a Job; a Job that is gone needs no patch."""
        try:
            await self._request(
                "patch_namespaced_job", "PATCH", f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}", patch,
                content_type=MERGE, retry=TRANSIENT | {409}, priority=URGENT,
            )  # fmt: skip
        except ApiException as e:
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
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return int(_VERSION_ONLY.decode(data).metadata.resourceVersion)  # not the whole TaskJob: its version

    async def delete_taskjob(self, namespace: str, name: str, uid: str) -> None:
        """Delete the TaskJob (its Jobs and pods follow by garbage collection); gone already is fine."""
        try:
            await self._call(
                self.custom.delete_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                body={"propagationPolicy": "Background", "preconditions": {"uid": uid}},
            )
        except ApiException as e:
            if e.status not in (404, 409):
                raise

    # ---- CronTaskJobs and the TaskJobs they create (shell/cron.py)

    async def get_namespaced_custom(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """Return one taskjob.dev object, or None when it does not exist."""
        try:
            resp = await self._call(
                self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, plural, name,
                _preload_content=False,
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return dict(self._json(resp))

    async def list_taskjobs_labelled(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        """Return the TaskJobs of a namespace matching a label selector (fresh from the API server)."""
        resp = await self._call(
            self.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL,
            label_selector=selector, _preload_content=False,
        )
        return list(self._json(resp).get("items") or ())

    async def create_taskjob(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """Create the TaskJob; return it, or None when one of that name already exists (the caller checks whose)."""
        try:
            resp = await self._call(
                self.custom.create_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, body,
                _preload_content=False,
            )
        except ApiException as e:
            if e.status != 409:
                raise
            return None
        return dict(self._json(resp))

    async def patch_custom_status(
        self, plural: str, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Merge-patch the status of a taskjob.dev object; return it, or None if it is gone."""
        try:
            resp = await self._call(
                self.custom.patch_namespaced_custom_object_status, GROUP, VERSION, namespace, plural, name,
                {"status": patch}, _content_type=MERGE, _preload_content=False, retry=TRANSIENT | {409},
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return dict(self._json(resp))

    async def record_outputs(self, owner: Mapping[str, Any], name: str, data: Mapping[str, str]) -> None:
        """Create or merge the outputs ConfigMap owned by the TaskJob."""
        meta = owner["metadata"]
        namespace = meta["namespace"]
        try:
            await self._call(self.core.patch_namespaced_config_map, name, namespace, {"data": dict(data)})
            return
        except ApiException as e:
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
            await self._call(self.core.create_namespaced_config_map, namespace, body)
        except ApiException as e:
            if e.status != 409:
                raise
            await self._call(self.core.patch_namespaced_config_map, name, namespace, {"data": dict(data)})

    def post_event(self, owner: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """Queue an Event on the TaskJob, sent in the background at the lowest priority, in order.

        A reconcile never waits for its Events: under load they would hold a worker and delay the next
        Job create. Past MAX_QUEUED_EVENTS the oldest are dropped (counted), as client-go's broadcaster does.
        """
        if len(self._events) >= MAX_QUEUED_EVENTS:
            self._events.popleft()
            metrics.EVENTS_DROPPED.inc()
        self._events.append((owner, type_, reason, message))
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


def _read(result: T) -> T:
    """Return `result` with a raw response's body read, in the calling thread.

    Reading it there hands its connection back to the pool at once; read later on the event loop, the
    worker thread would already have opened another connection, and the pool would overflow and discard
    connections (each new one costing a TLS handshake).
    """
    if isinstance(result, urllib3.BaseHTTPResponse):
        result.data  # noqa: B018 - cached by urllib3 for the caller's own .data
    return result


class _Version(msgspec.Struct):
    resourceVersion: str  # noqa: N815 - the API's spelling


class _VersionOnly(msgspec.Struct):
    metadata: _Version


_VERSION_ONLY = msgspec.json.Decoder(_VersionOnly)


def _api_exception(e: ApiError) -> ApiException:
    """Return the official client's exception for an HTTP error answer of the lean session."""
    exc = ApiException(status=e.status, reason=e.body[:300].decode(errors="replace"))
    exc.body = e.body.decode(errors="replace")
    exc.headers = {"Retry-After": str(e.retry_after)} if e.retry_after else {}
    return exc


def _retry_after(e: ApiException) -> float:
    """Return the seconds a 429 asks to wait (its Retry-After header), 0 when it does not say."""
    try:
        return float((e.headers or {}).get("Retry-After") or 0)
    except ValueError:
        return 0.0


_LIST_KINDS = {"jobs": ("batch/v1", "Job"), "pods": ("v1", "Pod"), "configmaps": ("v1", "ConfigMap")}


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
