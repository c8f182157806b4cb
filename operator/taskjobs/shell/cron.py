"""CronTaskJobs in the operator: kopf handlers, and one reconcile that reads, plans (core/cron.py), acts.

Wake-ups: a reconcile returns the seconds until the next scheduled time and the work queue sets one
timer for it (no polling); a change of the CronTaskJob's spec and a child TaskJob's phase change or
deletion wake it too. Each reconcile reads the CronTaskJob and its children fresh from the API server
(a GET and a labelled LIST, a few per scheduled time): with no cache to go stale, a watch that missed
a deletion cannot make Forbid wait forever, and a replica that just took over acts on the world as it is.
Cron keys share the TaskJob work queue, so HA leadership pauses them with everything else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf

from .. import GROUP, PLURAL, VERSION
from ..core.cron import LABEL_CRON, CronPlan, child_fact, invalid_cron_status, plan_cron, render_child
from ..core.cronmodels import CRON_PLURAL, CronTaskJobStatus
from ..core.cronvalidation import validate_crontaskjob
from .kube import Kube
from .options import OperatorOptions
from .workqueue import RetryLater, WorkQueue

log = logging.getLogger("taskjob.cron")


@dataclass(frozen=True)
class CronKey:
    """A CronTaskJob in the shared work queue (never equal to a TaskJob's (namespace, name) key)."""

    namespace: str
    name: str


class CronController:
    """Reconciles CronTaskJobs: creates their TaskJobs on schedule, trims history, writes status."""

    def __init__(self, kube: Kube, clock: Callable[[], datetime] | None = None) -> None:
        self.kube = kube
        self.now = clock or (lambda: datetime.now(UTC))
        self._generations: dict[CronKey, int] = {}  # last spec generation queued, to skip status echoes
        self._child_phases: dict[tuple[str, str], str] = {}  # child TaskJob -> phase last seen

    # ---- events

    def on_cron(self, event_type: str | None, body: Mapping[str, Any]) -> CronKey | None:
        """Return the key to reconcile for a CronTaskJob event, or None (deleted, or only its status changed)."""
        meta = body["metadata"]
        key = CronKey(meta["namespace"], meta["name"])
        if event_type == "DELETED":
            self._generations.pop(key, None)
            return None
        generation = int(meta.get("generation") or 0)
        if event_type in (None, "ADDED") or self._generations.get(key) != generation:
            self._generations[key] = generation
            return key
        return None

    def on_child(self, event_type: str | None, body: Mapping[str, Any]) -> CronKey | None:
        """Return the CronTaskJob to reconcile for a child TaskJob event: when it appears, ends or goes."""
        meta = body["metadata"]
        owner = (meta.get("labels") or {}).get(LABEL_CRON)
        if not owner:
            return None
        child = (meta["namespace"], meta["name"])
        if event_type == "DELETED":
            self._child_phases.pop(child, None)
            return CronKey(meta["namespace"], owner)
        phase = (body.get("status") or {}).get("phase") or "Pending"
        if self._child_phases.get(child) == phase:
            return None  # a progress update: nothing for the schedule
        self._child_phases[child] = phase
        return CronKey(meta["namespace"], owner)

    # ---- one reconcile

    async def reconcile(self, key: CronKey) -> float | None:
        """Reconcile one CronTaskJob; return the seconds until its next scheduled time, or None."""
        body = await self.kube.get_namespaced_custom(CRON_PLURAL, key.namespace, key.name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None
        now = self.now()
        result = validate_crontaskjob(body)
        if not result.ok or result.cron is None:
            await self._invalid(body, [str(p) for p in result.problems], now)
            return None
        uid = body["metadata"]["uid"]
        listed = await self.kube.list_taskjobs_labelled(key.namespace, f"{LABEL_CRON}={key.name}")
        # Only TaskJobs this CronTaskJob owns: one left by an earlier CronTaskJob of the same name is not ours.
        ours = [b for b in listed if any(r.get("uid") == uid for r in b["metadata"].get("ownerReferences") or ())]
        plan = plan_cron(result.cron, [child_fact(key.name, b) for b in ours], now)
        await self._execute(key, body, plan)
        log.debug("reconciled CronTaskJob %s/%s: %d of its TaskJobs exist; next run %s", key.namespace, key.name,
                  len(ours), plan.status.next_schedule_time.isoformat() if plan.status.next_schedule_time else "none",
                  extra=_ctx(key))
        return plan.requeue_after

    async def _execute(self, key: CronKey, body: Mapping[str, Any], plan: CronPlan) -> None:
        for d in plan.delete_first:
            log.info("deleting TaskJob %s/%s of CronTaskJob %s: %s", key.namespace, d.name, key.name, d.reason,
                     extra=_ctx(key))
            await self.kube.delete_taskjob(key.namespace, d.name, d.uid)
        created: dict[str, Any] | None = None
        if plan.create is not None:
            manifest = render_child(body, plan.create)
            created = await self.kube.create_taskjob(key.namespace, manifest)
            if created is None:
                await self._check_existing(key, body, plan.create.name)
            log.info("%s TaskJob %s/%s for CronTaskJob %s (scheduled %s)",
                     "created" if created else "found existing", key.namespace, plan.create.name, key.name,
                     plan.create.scheduled_time.isoformat(), extra=_ctx(key))
        status = plan.status
        if plan.create is not None and created is not None and status.active:  # the new run's uid, known now
            uid = created["metadata"].get("uid")
            active = [a.model_copy(update={"uid": uid}) if a.name == plan.create.name else a for a in status.active]
            status = status.model_copy(update={"active": active})
        await self._write_status(key, body, status)
        for event in plan.events:
            self.kube.post_event(body, event.type, event.reason, event.message)
        for d in plan.delete:
            log.info("deleting TaskJob %s/%s of CronTaskJob %s: %s", key.namespace, d.name, key.name, d.reason,
                     extra=_ctx(key))
            await self.kube.delete_taskjob(key.namespace, d.name, d.uid)

    async def _check_existing(self, key: CronKey, body: Mapping[str, Any], name: str) -> None:
        """A TaskJob of that name exists: ours means done; someone else's must not be taken for our run."""
        existing = await self.kube.get_namespaced_custom(PLURAL, key.namespace, name)
        if existing is None:
            raise RetryLater(f"creating TaskJob {key.namespace}/{name} conflicted, but it is gone; trying again")
        owners = {r.get("uid") for r in existing["metadata"].get("ownerReferences") or ()}
        if body["metadata"]["uid"] not in owners:
            raise RetryLater(
                f"TaskJob {key.namespace}/{name} exists but does not belong to CronTaskJob {key.name}"
                f"{' (it is being deleted)' if existing['metadata'].get('deletionTimestamp') else ''}; "
                "this scheduled run waits for it to go"
            )

    async def _write_status(self, key: CronKey, body: Mapping[str, Any], status: CronTaskJobStatus) -> None:
        new = status.model_dump(mode="json", by_alias=True, exclude_none=True)
        old = body.get("status") or {}
        if new == old:
            return
        patch: dict[str, Any] = {k: None for k in old if k not in new}  # a merge patch removes with null
        patch.update(new)
        await self.kube.patch_custom_status(CRON_PLURAL, key.namespace, key.name, patch)

    async def _invalid(self, body: Mapping[str, Any], problems: list[str], now: datetime) -> None:
        meta = body["metadata"]
        key = CronKey(meta["namespace"], meta["name"])
        try:
            prior = CronTaskJobStatus.model_validate(body.get("status") or {})
        except ValueError:
            prior = None
        status = invalid_cron_status(problems, int(meta.get("generation") or 1), prior, now)
        before = (prior.conditions if prior else None) or ()
        was_invalid = any(c.type == "Valid" and c.status == "False" for c in before)
        await self._write_status(key, body, status)
        if not was_invalid:
            log.warning("CronTaskJob %s/%s is invalid: %s", key.namespace, key.name, status.message, extra=_ctx(key))
            self.kube.post_event(body, "Warning", "Invalid", status.message or "invalid CronTaskJob")

    # ---- kopf

    def register(self, registry: kopf.OperatorRegistry, options: OperatorOptions, queue: WorkQueue) -> None:
        """Add the CronTaskJob handlers to the operator's registry; reconciles go through `queue`."""

        @kopf.on.event(GROUP, VERSION, CRON_PLURAL, registry=registry)
        async def crontaskjob_event(event: kopf.RawEvent, **_: Any) -> None:
            body = event["object"]
            key = self.on_cron(event["type"], body)
            if event["type"] == "DELETED":
                queue.forget(CronKey(body["metadata"]["namespace"], body["metadata"]["name"]))
            elif key is not None:
                queue.add(key)

        # The TaskJob watch already running for the operator feeds this handler too (kopf shares it).
        @kopf.on.event(GROUP, VERSION, PLURAL, labels={LABEL_CRON: kopf.PRESENT}, registry=registry)
        async def cron_child_event(event: kopf.RawEvent, **_: Any) -> None:
            key = self.on_child(event["type"], event["object"])
            if key is not None:
                queue.add(key)

        if options.webhook_port:

            @kopf.on.validate(
                GROUP, VERSION, CRON_PLURAL, id="validate-cron", registry=registry,
                ignore_failures=options.webhook_failure_policy == "Ignore",
            )
            def admit_cron(body: kopf.Body, **_: Any) -> None:
                result = validate_crontaskjob(dict(body))
                if not result.ok:
                    raise kopf.AdmissionError(
                        "invalid CronTaskJob: " + "; ".join(str(p) for p in result.problems), code=422
                    )


def _ctx(key: CronKey) -> dict[str, str]:
    """Return the log context of a line about a CronTaskJob (JSON logs carry these as fields)."""
    return {"namespace": key.namespace, "crontaskjob": key.name}
