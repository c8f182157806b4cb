"""kopf registration: watch TaskJobs, start the lean watches of what they own, feed the store, queue reconciles.

Only `on.event` handlers are used: they add no finalizer and no annotation to TaskJobs, so deleting a
TaskJob never hangs when the operator is down. Jobs, pods and outputs ConfigMaps are watched by
`ownedwatch.OwnedWatch`, not kopf: a dozen such events per task made kopf's per-event machinery most of
the operator's CPU (docs/performance.md, B4). A Job or pod event that may start something (a pod's verdict,
a Job finished or gone) wakes its TaskJob at once; live news (a pod or Job starting) within a second; other
timers exist only for backoff deadlines, timeouts and TTLs (the plan's requeue_after).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import kopf

from .. import GROUP, PLURAL, VERSION
from ..core.validation import validate_taskjob
from .connection import kopf_login
from .kube import Kube
from .leadership import PEERING_LIFETIME, PeeringGate
from .options import OperatorOptions
from .ownedwatch import OwnedWatch
from .resync import resync_forever
from .store import Key, Store, job_finished
from .workqueue import WorkQueue

log = logging.getLogger("taskjob.handlers")

# A live attempt's news (a pod scheduled, started or waiting; its Job started) changes a task's shown state, never
# what to create: it is planned within this many seconds, with any other run of its TaskJob meanwhile. Status
# writes wait up to a second anyway (statuswriter.MIN_WRITE_GAP); a fan-out of 8 starting made up to 8
# reconciles, and a Job's startTime woke one per task at once (B4: 0.7 of the 2.0 reconciles per task).
LIVE_NEWS_WITHIN = 1.0

# Seconds kopf keeps an object's worker (and the object's last event) after handling it; see startup().
KOPF_WORKER_IDLE = 0.1


def on_pod_event(store: Store, queue: WorkQueue, event_type: str | None, body: dict[str, Any]) -> None:
    """Record a pod event; wake its TaskJob at once for a verdict, within LIVE_NEWS_WITHIN for live news.

    The store tells which (it reads the pod's verdict once, for the attempt's finish time too).
    """
    news = store.on_pod(event_type, body)
    if news.key is None or news.key not in store.taskjobs:
        return
    if news.verdict:
        queue.add(news.key)  # a pod's verdict: a dependent may start, a retry be planned
    else:
        queue.add_soon(news.key, LIVE_NEWS_WITHIN)  # a pod started, scheduled or is waiting: no Job to create


def on_job_event(store: Store, queue: WorkQueue, event_type: str | None, body: dict[str, Any]) -> None:
    """Record a Job event; wake its TaskJob at once when the Job finished or vanished, else within
    LIVE_NEWS_WITHIN (it appeared or started: what to create stays the same)."""
    key = store.on_job(event_type, body)
    if key is None or key not in store.taskjobs:
        return
    if event_type == "DELETED" or job_finished(body):
        queue.add(key)  # the attempt's verdict, or its Job gone: a dependent, a retry or a new Job may be due
    else:
        queue.add_soon(key, LIVE_NEWS_WITHIN)


class NoDiffBaseStorage(kopf.DiffBaseStorage):
    """kopf's diff base for on.create/on.update handlers, which this operator has none of: store nothing.

    kopf builds an object's "essence" on every watch event (a deep copy of all but its metadata and
    status, copied once more to strip its progress annotations) to diff it with the last handled one,
    whatever handlers are registered. With only on.event handlers the diff is never read, and the copies
    took about a quarter of the operator's CPU (B4, issue 7). Remove this if an on.create/on.update
    handler is ever added.
    """

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def build_registry(
    options: OperatorOptions,
    store: Store,
    queue: WorkQueue,
    kube: Kube,
    identity: str,
    on_deleted: Callable[[Key, str], None] = lambda key, uid: None,
) -> kopf.OperatorRegistry:
    """Return a kopf registry with every handler of the operator."""
    registry = kopf.OperatorRegistry()
    background: list[asyncio.Task[None]] = []
    watches: list[OwnedWatch] = []

    def wake(key: Key | None) -> None:
        if key is not None and key in store.taskjobs:
            queue.add(key)

    def feed(kind: str, namespace: str | None) -> tuple[Callable[..., None], Callable[..., None]]:
        """Return the event and list callbacks of the watch of `kind`: update the store, wake the TaskJob."""
        on_event: Callable[[str | None, dict[str, Any]], None]
        if kind == "jobs":
            def on_event(event_type: str | None, body: dict[str, Any]) -> None:
                on_job_event(store, queue, event_type, body)
        elif kind == "pods":
            def on_event(event_type: str | None, body: dict[str, Any]) -> None:
                on_pod_event(store, queue, event_type, body)
        else:
            def on_event(event_type: str | None, body: dict[str, Any]) -> None:
                store.on_outputs(event_type, body)

        def on_listed(items: list[dict[str, Any]], version: int) -> None:
            for key in store.prune(kind, namespace, items, version):  # vanished while not watched
                wake(key)

        return on_event, on_listed

    async def seed() -> None:
        """Load every TaskJob and owned object, so a reconcile never acts on a partial view."""
        store.clear()
        for namespace in options.namespaces or (None,):
            for body in await kube.list_taskjobs(namespace):
                store.on_taskjob(None, body)
        if not watches:
            for namespace in options.namespaces or (None,):
                for kind in ("jobs", "pods", "configmaps"):
                    watches.append(OwnedWatch(kube, kind, namespace, *feed(kind, namespace)))
        for watch in watches:  # each then watches from its own list's version
            await watch.relist()
        for watch in watches:
            if not any(t.get_name() == f"taskjob-watch-{id(watch)}" for t in background):
                background.append(asyncio.create_task(watch.run(), name=f"taskjob-watch-{id(watch)}"))

    async def gain() -> None:
        # No reconcile while the store loads: the lists wake TaskJobs as they go, and a reconcile between
        # the Jobs' list and the pods' or outputs' would plan on a partial view (a fan-out's list unknown).
        queue.enabled = False
        await seed()  # the previous leader acted meanwhile: start from the world as it is
        queue.resume()
        for key in store.known():
            queue.add(key)

    def lose() -> None:
        queue.enabled = False

    # A private registry gets none of kopf's default login handlers: kopf logs in as our session does.
    kopf.on.login(registry=registry)(kopf_login)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.enabled = False  # the operator posts its own, meaningful events
        settings.persistence.diffbase_storage = NoDiffBaseStorage()  # only on.event handlers: no diffs
        # kopf's worker of an object waits this long for its next event holding the last one: a whole
        # TaskJob (managedFields, spec, the status our write echoed) as dicts. At the default 5 s, every
        # TaskJob with a status write in the last 5 s had one (B4 1,000 x 10: about 1,000 of them, ~20 KB
        # each). Our handler keeps what it needs; a new event starts a new worker (docs/performance.md).
        settings.queueing.idle_timeout = KOPF_WORKER_IDLE
        settings.watching.server_timeout = 270  # re-list before long-idle watches go stale silently
        settings.watching.client_timeout = 300
        settings.networking.request_timeout = 60
        if options.webhook_port:
            from .webhook import configure_webhook

            configure_webhook(settings, options)
        queue.start()
        if options.peering:
            settings.peering.lifetime = PEERING_LIFETIME
            queue.enabled = False  # until the peering gate says this replica acts
            gate = PeeringGate(kube, options.peering, options.namespaces, identity, options.priority, gain, lose)
            background.append(asyncio.create_task(gate.run(), name="taskjob-peering-gate"))
        else:
            # Seed the store before any reconcile, so a restarted operator sees every Job it created
            # and neither relaunches an attempt nor inflates attempt counts.
            await gain()
        # Deletions a watch never reported (it expired meanwhile) are found by a periodic LIST.
        background.append(asyncio.create_task(resync_forever(kube, store, queue, options.namespaces),
                                              name="taskjob-resync"))
        log.info("operator started: %d TaskJobs known", len(store.taskjobs))

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        for task in background:
            task.cancel()
        await queue.stop()
        if watches:
            await watches[0].api.close()

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def taskjob_event(event: kopf.RawEvent, **_: Any) -> None:
        body = event["object"]
        key = store.on_taskjob(event["type"], body)
        if event["type"] == "DELETED":
            queue.forget(key)
            on_deleted(key, body["metadata"].get("uid", ""))
        elif not store.echoes_own_write(key):  # the echo of our status write brings nothing new
            queue.add(key)

    @kopf.on.probe(id="taskjobs", registry=registry)
    def probe(**_: Any) -> int:
        return len(store.taskjobs)

    if options.webhook_port:

        # failurePolicy Ignore (the default) admits TaskJobs while the operator is down; they are marked Invalid later.
        @kopf.on.validate(
            GROUP, VERSION, PLURAL, id="validate", registry=registry,
            ignore_failures=options.webhook_failure_policy == "Ignore",
        )
        def admit(body: kopf.Body, **_: Any) -> None:
            result = validate_taskjob(dict(body))
            if not result.ok:
                raise kopf.AdmissionError(
                    "invalid TaskJob: " + "; ".join(f"{p.path}: {p.message}" for p in result.problems), code=422
                )

    return registry
