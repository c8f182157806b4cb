"""How a reconcile's status reaches the API server: at once, after a gap, or in the background.

Status writes of every TaskJob are spaced: after a write, the next waits WRITE_SPACING times as long as
the last took, at least MIN_WRITE_GAP seconds, and then carries every change made meanwhile. A TaskJob
of 10 tasks changes its status 20-30 times in its life (each task Running, then Succeeded); written after
every event, the status patches, and their echoes over the TaskJob watch, were the largest share of the
operator's CPU and of its API requests (B4, B1 in docs/performance.md). A write of a 10,000-task status
costs the API server about 2 s of CPU, so there the gap grows with the write's duration. Job creates are
never held up, and changes of phase (final ones too) are written at once, in the reconcile.

The write at the end of a gap is the writer's own (a timer, in the background): no reconcile is planned
for it. Above COMPACT_TASKS tasks every write goes in the background, one at a time per TaskJob, so the next
reconcile (creating the next Jobs) need not wait a second for the last write to finish.

The writer keeps, per TaskJob, what was last written with the memory of the plan that made it
(`Remembered`); a reconcile asks it for the `Base` to plan from and hands it the plan to `submit`. Once
all of a small TaskJob's status is written, the memory's status is not kept as models (about 2 KB a
task; 20 MiB of B4's 1,000 live TaskJobs): it is the JSON written, parsed again by the next reconcile
(30 us at 10 tasks), which gives the same status (the memory's status is "settled", incremental.py).

Task outputs go to the TaskJob's outputs ConfigMap with the status write, just before it: a status that says
a task succeeded is written only once its output is stored, so the output outlives the task's pod. Until
then the pod holds it (the store's fact), and a dependent's Job is rendered from that. Written in every
reconcile where a task succeeded, the ConfigMap was a quarter of the operator's API requests (B4). An empty
output is not written: a task the status shows Succeeded without a stored output wrote none.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from ..core.actions import Plan
from ..core.mergepatch import dump_changes, patch_changes
from ..core.models import TERMINAL_PHASES, TaskJobStatus, dump_status
from ..core.plan import COMPACT_TASKS, Memory
from .kube import Kube
from .store import Key, Store, Token

log = logging.getLogger("taskjob.reconciler")

WRITE_SPACING = 2.0
MIN_WRITE_GAP = 1.0
# Up to this many tasks the memory's status, once written, is kept as its JSON only (see the docstring);
# above it, parsing it again per reconcile would cost more than its models weigh (B3: 10,000 tasks).
STATUS_AS_JSON_TASKS = 100
_IN_RAW = TaskJobStatus()  # stands for the memory's status while it is Remembered.raw (see `_lean`)


def outputs_configmap(taskjob: str) -> str:
    """Return the name of the ConfigMap holding a TaskJob's task outputs."""
    return f"{taskjob}-outputs"


@dataclass(frozen=True)
class Remembered:
    """The status JSON last written, the memory of the plan that made it, and the store's change-log point seen.

    `unwritten`: the tasks whose planned state is not written yet (None: any may differ); `write_after`:
    when the next status write may go (see WRITE_SPACING).
    """

    raw: dict[str, Any]
    memory: Memory
    token: Token
    unwritten: frozenset[str] | None = frozenset()
    write_after: datetime | None = None


@dataclass(frozen=True)
class Base:
    """What a reconcile plans from: the status in force and, if that is the one it wrote, the last plan's memory."""

    raw: dict[str, Any]
    status: TaskJobStatus | None  # the previous status (the memory's, when there is one)
    memory: Memory | None  # the last plan's memory, when `raw` is the status that plan wrote
    kept: Remembered | None  # what was remembered when this base was taken
    token: Token  # the store's change-log point before this reconcile read the facts
    changed_jobs: list[str] | None  # the Jobs changed since the memory's plan (None: unknown)


@dataclass
class PendingOutputs:
    """Outputs of one TaskJob to store before its next status write: the ConfigMap's owner, and text by task."""

    owner: Mapping[str, Any]
    outputs: dict[str, str]


class StatusWriter:
    """Writes each TaskJob's status by the spacing policy, and remembers what it wrote."""

    def __init__(self, store: Store, kube: Kube, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.kube = kube
        self.now = clock
        self.remembered: dict[Key, Remembered] = {}
        self.writers: dict[Key, asyncio.Task[None]] = {}  # the status write in flight, per big TaskJob
        self.outputs: dict[Key, PendingOutputs] = {}  # to store before the next status write, per TaskJob
        self.timers: dict[Key, asyncio.TimerHandle] = {}  # the write at the end of a TaskJob's gap
        # Reconcile `key` again after `delay` seconds (the work queue's add_after): a background write that
        # fails, or a status changed under the plan's memory, asks for the next one this way.
        self.wake: Callable[[Key, float], None] = lambda key, delay: None

    def forget(self, key: Key) -> None:
        """Drop what is remembered of a TaskJob: its next plan decides every task."""
        self.remembered.pop(key, None)

    def discard(self, key: Key) -> None:
        """Drop everything kept of a deleted TaskJob, its outputs not stored yet too."""
        self.forget(key)
        self.outputs.pop(key, None)
        timer = self.timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def add_outputs(self, key: Key, owner: Mapping[str, Any], new: Mapping[str, str]) -> None:
        """Store these outputs (by task) with the next status write, or at `store_outputs`."""
        if not new:
            return
        kept = self.outputs.get(key)
        if kept is None:
            self.outputs[key] = PendingOutputs(owner, dict(new))
        else:
            kept.owner = owner
            kept.outputs.update(new)

    async def store_outputs(self, key: Key) -> None:
        """Write the outputs gathered for `key` to its ConfigMap (a merge: one request for them all)."""
        kept = self.outputs.get(key)
        if kept is None:
            return
        batch = dict(kept.outputs)
        await self.kube.record_outputs(kept.owner, outputs_configmap(key[1]), batch)
        self.store.record_outputs(key, batch)
        for task, text in batch.items():  # what a reconcile added meanwhile stays for the next write
            if kept.outputs.get(task) == text:
                del kept.outputs[task]
        if key in self.outputs and not self.outputs[key].outputs:  # a record starts with outputs: empty, all stored
            del self.outputs[key]

    def base(self, key: Key) -> Base:
        """Return what the next plan of `key` starts from."""
        raw = self.store.status_of(key) or {}
        kept = self.remembered.get(key)
        token = self.store.token(key)
        # The memory of the last plan stands in for the status only if the status is still the one it wrote.
        if kept is None or not raw or kept.raw is not raw:
            status = TaskJobStatus.model_validate(raw) if raw else None
            return Base(raw, status, None, kept, token, None)
        memory = kept.memory
        if memory.status is _IN_RAW:
            memory = replace(memory, status=TaskJobStatus.model_validate(raw))
        return Base(raw, memory.status, memory, kept, token, self.store.changed_since(key, kept.token))

    async def submit(self, key: Key, base: Base, plan: Plan, memory: Memory) -> float | None:
        """Write (or schedule) the plan's status; return when to reconcile again (the plan's requeue)."""
        kept, prior_raw = base.kept, base.raw
        prior = base.status
        # A change of phase (final ones too) is written at once; other changes may wait for their slot.
        same_phase = prior is not None and prior.phase == plan.status.phase
        may_wait = base.memory is not None and kept is not None and same_phase
        if not may_wait:  # one write at a time: a merge patch landing late would undo this one
            await self.flush(key)
        latest = self.remembered.get(key)
        if latest is not None and latest is not kept and latest.raw is not prior_raw:
            kept, prior_raw = latest, latest.raw  # a background write landed meanwhile: the new base
        # What differs from the status last written: this plan's changes and those of plans not written yet.
        to_write = plan.changed
        if base.memory is not None and kept is not None:
            to_write = None if kept.unwritten is None or plan.changed is None else kept.unwritten | plan.changed
        requeue = plan.requeue_after
        final = plan.status.phase in TERMINAL_PHASES
        big = len(plan.status.tasks or ()) > COMPACT_TASKS
        after = kept.write_after if may_wait and kept is not None else None
        wait = (after - self.now()).total_seconds() if after is not None else 0.0
        written: dict[str, Any] | None = prior_raw
        if may_wait and (wait > 0 or key in self.writers):
            # The next write carries this plan's changes: when the gap is over (the writer's own timer, not a
            # reconcile: those were ~0.4 reconciles per task in B4), or when the one in flight ends.
            self.remembered[key] = Remembered(prior_raw, memory, base.token, to_write, after)
            if wait > 0:
                self._write_later(key, wait)
        elif may_wait and big:
            new_raw = dump_changes(prior_raw, plan.status, to_write)
            self.remembered[key] = Remembered(prior_raw, memory, base.token, to_write, None)
            self.writers[key] = asyncio.create_task(self._write_behind(key, prior_raw, new_raw, to_write, memory))
        else:
            began = self.now()
            new_raw = dump_changes(prior_raw, plan.status, to_write)
            written = await self._write(key, prior_raw, new_raw, to_write)
            if written is not None and not final:
                after = _next_write(began, self.now()) if written is not prior_raw else None
                self.remembered[key] = Remembered(written, _lean(memory), base.token, frozenset(), after)
        if written is None or final:
            # A finished TaskJob is rarely planned again (a retry, its TTL): its plan memory (about 50 KB
            # for 10 tasks) is not kept for that; the next reconcile plans in full.
            self.forget(key)
        return requeue

    async def replace(
        self, key: Key, make: Callable[[dict[str, Any]], TaskJobStatus]
    ) -> tuple[dict[str, Any], TaskJobStatus]:
        """Write the whole status `make` builds from the one in force, after any write in flight.

        Return the status replaced (JSON) and the new one.
        """
        await self.flush(key)
        prior_raw = self.store.status_of(key) or {}
        status = make(prior_raw)
        await self._write(key, prior_raw, dump_status(status), None)
        self.forget(key)
        return prior_raw, status

    async def _write_behind(
        self, key: Key, base: dict[str, Any], status: dict[str, Any], changed: frozenset[str] | None, memory: Memory
    ) -> None:
        """Write a big TaskJob's status in the background; then make it the base of the plans made meanwhile."""
        began = self.now()
        try:
            written = await self._write(key, base, status, changed)
        except Exception:  # the next reconcile plans in full and writes it all again
            log.exception("writing the status of TaskJob %s/%s failed", *key, extra=_ctx(key))
            self.forget(key)
            self.wake(key, MIN_WRITE_GAP)
            return
        finally:
            self.writers.pop(key, None)
        after = _next_write(began, self.now())
        current = self.remembered.get(key)
        if written is None or current is None or current.raw is not base:
            return  # the TaskJob is gone, or a reconcile has written since (after waiting for this write)
        # Plans made during the write may have changed tasks it carried: those stay unwritten (a superset).
        unwritten = frozenset() if current.memory is memory else current.unwritten
        lean = _lean(current.memory) if unwritten == frozenset() else current.memory
        self.remembered[key] = replace(current, raw=written, memory=lean, unwritten=unwritten, write_after=after)
        if unwritten != frozenset():
            self._write_later(key, (after - self.now()).total_seconds())

    def _write_later(self, key: Key, delay: float) -> None:
        """Write the changes left unwritten for `key` in `delay` seconds (once: a timer already set stands)."""
        if key not in self.timers:
            self.timers[key] = asyncio.get_running_loop().call_later(max(0.0, delay), self._gap_over, key)

    def _gap_over(self, key: Key) -> None:
        """Write what the plans of `key` left unwritten, in the background as a big TaskJob's write goes."""
        self.timers.pop(key, None)
        if key in self.writers:
            return  # the write in flight sets the next timer if it leaves changes unwritten
        kept = self.remembered.get(key)
        if kept is None or kept.unwritten == frozenset():
            return  # a reconcile wrote meanwhile, or the TaskJob finished or is gone
        if kept.raw is not self.store.status_of(key):
            self.wake(key, 0.0)  # the status changed under the memory: a reconcile plans in full
            return
        new_raw = dump_changes(kept.raw, kept.memory.status, kept.unwritten)
        self.writers[key] = asyncio.create_task(self._write_behind(key, kept.raw, new_raw, kept.unwritten, kept.memory))

    async def flush(self, key: Key) -> None:
        """Wait for the status write in flight for `key`, if any (it handles its own errors)."""
        writer = self.writers.get(key)
        if writer is not None:
            await asyncio.wait([writer])

    async def _write(
        self, key: Key, prior: dict[str, Any], status: dict[str, Any], changed: frozenset[str] | None
    ) -> dict[str, Any] | None:
        """Write the status as a merge patch of its change; return the status now in force (None: unknown).

        The outputs gathered are stored first: the status may say their tasks succeeded.
        """
        await self.store_outputs(key)
        patch = patch_changes(prior, status, changed)
        if not patch:
            return prior
        rv = await self.kube.patch_status(key[0], key[1], patch)
        if rv is None:
            return None
        self.store.remember_write(key, rv, status)
        return status


def _lean(memory: Memory) -> Memory:
    """Return the memory to keep once its whole status is written: without the status's models (a small
    TaskJob's), which `StatusWriter.base` parses again from the JSON written."""
    if len(memory.status.tasks or ()) > STATUS_AS_JSON_TASKS:
        return memory
    return replace(memory, status=_IN_RAW)


def _next_write(began: datetime, ended: datetime) -> datetime:
    """Return when a big TaskJob's next status write may go, after one that took from `began` to `ended`."""
    return ended + timedelta(seconds=max(MIN_WRITE_GAP, WRITE_SPACING * (ended - began).total_seconds()))


def _ctx(key: Key) -> dict[str, str]:
    return {"namespace": key[0], "taskjob": key[1]}
