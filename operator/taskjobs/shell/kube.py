"""The Kubernetes API calls the operator makes, as awaitables; each one idempotent where it can be.

The official client is synchronous, so calls run in a thread pool (never block the event loop).
Responses are read as raw JSON so bodies have the same shape as the ones kopf's watches deliver.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from .. import GROUP, KIND, PLURAL, VERSION
from ..naming import LABEL_TASKJOB
from . import metrics

T = TypeVar("T")
MERGE = "application/merge-patch+json"


def load_config() -> None:
    """Load in-cluster credentials when running in a pod, else the current kubeconfig."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]


class TokenBucket:
    """Client-side rate limit (QPS with a burst), like client-go's, so bursts of creates stay polite."""

    def __init__(self, qps: float, burst: int) -> None:
        self.qps, self.burst = qps, float(burst)
        self.tokens, self.stamp = float(burst), time.monotonic()
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        """Wait until one request may be sent."""
        if self.qps <= 0:
            return
        async with self._lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.qps)
            self.stamp = now
            if self.tokens < 1:
                await asyncio.sleep((1 - self.tokens) / self.qps)
                self.stamp = time.monotonic()
                self.tokens = 0.0
            else:
                self.tokens -= 1


class Kube:
    """Async facade over the calls the operator needs."""

    def __init__(self, api_client: client.ApiClient | None = None, qps: float = 50.0, threads: int = 16) -> None:
        self.api = api_client or client.ApiClient()
        self.core = client.CoreV1Api(self.api)
        self.batch = client.BatchV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="kube")
        self.limiter = TokenBucket(qps, burst=max(1, int(qps * 2)))
        self.instance = socket.gethostname()

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        await self.limiter.take()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.pool, lambda: fn(*args, **kwargs))
        except ApiException as e:
            if e.status not in (404, 409):  # expected answers, handled by the callers
                metrics.API_ERRORS.labels(operation=fn.__name__).inc()
            raise
        except Exception:
            metrics.API_ERRORS.labels(operation=fn.__name__).inc()
            raise

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

    async def list_owned(self, kind: str, namespace: str | None) -> list[dict[str, Any]]:
        """Return every Job, Pod or ConfigMap carrying the taskjob label."""
        fns = {
            "jobs": (self.batch.list_namespaced_job, self.batch.list_job_for_all_namespaces),
            "pods": (self.core.list_namespaced_pod, self.core.list_pod_for_all_namespaces),
            "configmaps": (self.core.list_namespaced_config_map, self.core.list_config_map_for_all_namespaces),
        }[kind]
        if namespace:
            resp = await self._call(fns[0], namespace, label_selector=LABEL_TASKJOB, _preload_content=False)
        else:
            resp = await self._call(fns[1], label_selector=LABEL_TASKJOB, _preload_content=False)
        items = list(self._json(resp)["items"])
        api_version, item_kind = _LIST_KINDS[kind]
        for item in items:  # list items omit these; watch bodies have them
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", item_kind)
        return items

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
        """Create the Job; return it, or None when a Job of that name already exists (already done)."""
        try:
            resp = await self._call(self.batch.create_namespaced_job, namespace, body, _preload_content=False)
            return dict(self._json(resp))
        except ApiException as e:
            if e.status == 409:
                return None
            raise

    async def patch_job(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        """Merge-patch a Job; a Job that is gone needs no patch."""
        try:
            await self._call(self.batch.patch_namespaced_job, name, namespace, patch, _content_type=MERGE)
        except ApiException as e:
            if e.status != 404:
                raise

    async def patch_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> int | None:
        """Merge-patch the TaskJob's status; return the new resourceVersion, or None if the TaskJob is gone."""
        try:
            resp = await self._call(
                self.custom.patch_namespaced_custom_object_status,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                {"status": patch},
                _content_type=MERGE,
                _preload_content=False,
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return int(self._json(resp)["metadata"]["resourceVersion"])

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

    async def event(self, owner: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """Record a Kubernetes Event on the TaskJob (best effort: an event lost is not worth a retry loop)."""
        meta = owner["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": KIND,
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
        await self._call(self.core.create_namespaced_event, meta["namespace"], body)


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
