"""Resync: what the watches never said was deleted is found missing by a periodic LIST.

kopf re-lists a resource when its watch expires (410 Gone: the operator was cut off longer than the
API server keeps events), and a re-list sends no DELETED for what vanished in between. A Job deleted
then would stay Running in the store forever and its TaskJob would never finish; a TaskJob deleted
then would stay known. Every RESYNC_SECONDS the operator lists TaskJobs (names only, in pages: see
`Kube.list_with_version`) and drops what is gone; the TaskJobs concerned are reconciled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from .kube import Kube
from .store import Store
from .workqueue import WorkQueue

log = logging.getLogger("taskjob.resync")

RESYNC_SECONDS = 60.0
# Jobs and pods are not listed here: their lean watch (ownedwatch.py) lists again after 410 Gone and
# prunes what vanished itself; these lists (metadata of every Job and pod) were a CPU burst each minute.
KINDS = ("taskjobs",)


async def resync_once(kube: Kube, store: Store, queue: WorkQueue, namespaces: Sequence[str]) -> int:
    """List every kind in every namespace (all when none), drop what is gone; return how many TaskJobs it touched."""
    touched = 0
    for namespace in namespaces or (None,):
        for kind in KINDS:
            items, version = await kube.list_with_version(kind, namespace)
            for key in store.prune(kind, namespace, items, version):
                touched += 1
                log.info("%s of TaskJob %s/%s vanished unseen (a watch expired meanwhile)", kind, *key)
                if kind == "taskjobs":
                    queue.forget(key)
                else:
                    queue.add(key)
    return touched


async def resync_forever(
    kube: Kube, store: Store, queue: WorkQueue, namespaces: Sequence[str], period: float = RESYNC_SECONDS
) -> None:
    """Run resync_once every `period` seconds until cancelled; a failed round is logged and tried next period."""
    while True:
        await asyncio.sleep(period)
        try:
            await resync_once(kube, store, queue, namespaces)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - the next round tries again
            log.warning("resync failed: %s; trying again in %.0fs", e, period)
