"""HA: with kopf peering, only the replica kopf lets act may reconcile.

kopf pauses its own watches when a peer with a higher (or the same) priority is alive, but our work
queue also runs on timers (backoff, timeouts), so it must pause too. This gate reads the same peering
object and applies kopf's own rule to the same identity, so both agree on who acts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from .apisession import ApiError
from .kube import Kube

log = logging.getLogger("taskjob.leadership")

PEERING_GROUP, PEERING_VERSION = "kopf.dev", "v1"
PEERING_LIFETIME = 15  # seconds a silent peer is presumed alive: the failover time after a crash


def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def may_act(peers: Mapping[str, Mapping[str, Any]], identity: str, priority: int, now: datetime) -> bool:
    """Return whether this replica acts: no other live peer has a priority higher than or equal to ours."""
    for peer_id, info in peers.items():
        if peer_id == identity or not isinstance(info, Mapping):
            continue
        try:
            lastseen = _parse_time(str(info["lastseen"]))
            lifetime = float(info.get("lifetime", 60))
            their = int(info.get("priority", 0))
        except (KeyError, TypeError, ValueError):
            continue
        if lastseen + timedelta(seconds=lifetime) > now and their >= priority:
            return False
    return identity in peers  # kopf has announced us, so kopf's watches run too


class PeeringGate:
    """Keeps the work queue enabled exactly while kopf's peering lets this replica act."""

    def __init__(
        self,
        kube: Kube,
        peering: str,
        namespaces: tuple[str, ...],
        identity: str,
        priority: int,
        on_gain: Callable[[], Awaitable[None]],
        on_loss: Callable[[], None],
        interval: float = 1.0,
    ) -> None:
        self.kube, self.peering, self.namespaces = kube, peering, namespaces
        self.identity, self.priority = identity, priority
        self.on_gain, self.on_loss, self.interval = on_gain, on_loss, interval
        self.active = False

    async def _peers(self) -> list[Mapping[str, Any]]:
        if not self.namespaces:
            objs = [await self.kube.get_custom(
                PEERING_GROUP, PEERING_VERSION, "clusterkopfpeerings", self.peering, None)]
        else:
            objs = [
                await self.kube.get_custom(PEERING_GROUP, PEERING_VERSION, "kopfpeerings", self.peering, ns)
                for ns in self.namespaces
            ]
        return [o.get("status") or {} for o in objs]

    async def check(self) -> None:
        """Read the peering object(s) once and switch the queue on or off."""
        try:
            statuses = await self._peers()
        except (ApiError, aiohttp.ClientError, TimeoutError) as e:  # the gate must outlive a lost request
            log.warning("cannot read peering object %s (%s); not acting", self.peering, e)
            statuses = []
        now = datetime.now(UTC)
        active = bool(statuses) and all(may_act(s, self.identity, self.priority, now) for s in statuses)
        if active and not self.active:
            log.info("this replica (%s, priority %d) now acts", self.identity, self.priority)
            await self.on_gain()
        elif self.active and not active:
            log.info("another replica acts; pausing")
            self.on_loss()
        self.active = active

    async def run(self) -> None:
        """Check forever, every `interval` seconds."""
        while True:
            await self.check()
            await asyncio.sleep(self.interval)
