"""A planner for plansim that plans incrementally (replan with a Memory, as the operator does) and checks
every step against plan's full pass: same status JSON, patch, creates, stops, events and wakeup."""

from __future__ import annotations

from datetime import datetime

from taskjobs.core import mergepatch
from taskjobs.core.actions import Plan
from taskjobs.core.facts import AttemptFact
from taskjobs.core.incremental import replan, settle
from taskjobs.core.mergepatch import dump_changes, patch_changes
from taskjobs.core.models import TaskJobMeta, TaskJobSpec, TaskJobStatus, dump_status
from taskjobs.core.plan import Memory, plan


def same(incremental: Plan, full: Plan) -> None:
    """Assert two plans do the same: status as written, creates, stops, events, wakeup, deletion."""
    assert dump_status(incremental.status) == dump_status(full.status)
    assert incremental.create == full.create
    assert sorted(incremental.stop, key=lambda s: s.job_name) == sorted(full.stop, key=lambda s: s.job_name)
    assert incremental.events == full.events
    assert incremental.requeue_after == full.requeue_after
    assert incremental.delete_taskjob == full.delete_taskjob


class Incremental:
    """A planner for plansim that carries a Memory as the operator does, checked against plan at every step."""

    def __init__(self) -> None:
        self.memory: Memory | None = None
        self.facts: dict[str, AttemptFact] = {}  # an unchanged Job keeps its fact object, as in the store
        self.delta_steps = 0
        self.decided = 0  # tasks decided again by incremental steps
        self.steps = 0
        self.outputs: dict[str, str] = {}  # recorded outputs (the ConfigMap), which fan-out tasks read

    def __call__(
        self,
        kind: str,
        meta: TaskJobMeta,
        spec: TaskJobSpec,
        status: TaskJobStatus | None,
        facts: tuple[AttemptFact, ...],
        now: datetime,
    ) -> Plan:
        seen: dict[str, AttemptFact] = {}
        for fact in facts:
            old = self.facts.get(fact.job_name)
            seen[fact.job_name] = old if old == fact else fact
        # Every other step names the Jobs that changed since the last plan, as the store's change log does.
        known = self.memory.facts if self.memory is not None else {}
        changed = {j for j in seen.keys() | known.keys() if seen.get(j) is not known.get(j)}
        self.steps += 1
        self.facts = seen
        # The shell passes its memory only when the status it read is the one that memory's plan wrote.
        memory = self.memory if kind != "stale" and self.memory is not None else None
        if memory is not None:
            assert status is not None and memory.status == status, "the memory's status is not what was written"
        hint = changed if self.steps % 2 else None
        result, self.memory = replan(
            meta, spec, memory, status, dict(seen), now, changed_jobs=hint, outputs=self.outputs
        )
        full = plan(meta, spec, status, facts, now, outputs=self.outputs)
        same(result, full)
        # The shell writes the status from the changed tasks only: the same JSON, the same patch.
        prior_raw = dump_status(status) if status is not None else {}
        new_raw = dump_changes(prior_raw, result.status, result.changed)
        assert new_raw == dump_status(full.status)
        assert patch_changes(prior_raw, new_raw, result.changed) == mergepatch.diff(prior_raw, new_raw)
        if result.changed is not None and status is not None:
            self.delta_steps += 1
            self.decided += len(result.changed)
            settled = settle(full.status).tasks or {}
            for name, state in (status.tasks or {}).items():
                if name not in result.changed:  # a task left out was indeed unchanged
                    assert settled[name] == state, name
        return result
