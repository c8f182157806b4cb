"""Status writes are spaced (a 10-task TaskJob changed its status 20-30 times; the API server pays ~2 s of CPU
per 10,000-task write), big TaskJobs' in the background; Job creates and phase changes are not held up, and
a later write carries every change made meanwhile.

The reconciler runs against the real Store and a recording stand-in for the API client: what is checked
is which writes it sends and when, not how the API server takes them (tests/cluster does that).
"""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskjobs.core.mergepatch import apply
from taskjobs.shell.reconciler import Reconciler
from taskjobs.shell.statuswriter import MIN_WRITE_GAP, StatusWriter
from taskjobs.shell.store import PackedJson, Store

T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
KEY = ("ns", "big")


class RecordingKube:
    """Answers as the API server would, and records the status patches and Job creates.

    While `gate` is cleared, status patches wait for it: a slow write of a big object.
    """

    def __init__(self) -> None:
        self.patches: list[dict[str, Any]] = []
        self.created: list[dict[str, Any]] = []
        self.rv = 10
        self.gate = asyncio.Event()
        self.gate.set()
        self.outputs: list[dict[str, str]] = []  # outputs ConfigMap writes
        self.outputs_gate = asyncio.Event()  # cleared: the ConfigMap write takes its time
        self.outputs_gate.set()
        self.in_flight = self.most_in_flight = 0
        self.writes: list[str] = []  # "outputs" and "status", in the order they were stored

    async def create_job(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        job = copy.deepcopy(body)
        job["metadata"].update(
            uid=f"uid-{body['metadata']['name']}",
            namespace=namespace,
            resourceVersion="1",
            creationTimestamp=T0.isoformat(),
        )
        self.created.append(job)
        return job

    async def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> int:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await self.gate.wait()
        self.in_flight -= 1
        self.patches.append(patch)
        self.writes.append("status")
        self.rv += 1
        return self.rv

    async def patch_job(self, *_: Any) -> None: ...

    async def record_outputs(self, owner: Any, name: str, data: dict[str, str]) -> None:
        await self.outputs_gate.wait()
        self.outputs.append(dict(data))
        self.writes.append("outputs")

    def post_event(self, *_: Any) -> None: ...


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def taskjob(tasks: int, chain: bool) -> dict[str, Any]:
    return {
        "apiVersion": "taskjob.dev/v1alpha1",
        "kind": "TaskJob",
        "metadata": {
            "name": KEY[1],
            "namespace": KEY[0],
            "uid": "tj-uid",
            "resourceVersion": "5",
            "generation": 1,
            "creationTimestamp": T0.isoformat(),
        },
        "spec": {
            "defaults": {"image": "busybox"},
            "tasks": [{"name": f"t{i}", **({"dependsOn": [f"t{i - 1}"]} if chain and i else {})} for i in range(tasks)],
        },
    }


def finish(store: Store, job: dict[str, Any], at: datetime, output: str = "") -> None:
    """Deliver the watch events of a Job that succeeded, and of its pod (which wrote `output`)."""
    done = copy.deepcopy(job)
    done["metadata"]["resourceVersion"] = "2"
    done["status"] = {
        "completionTime": at.isoformat(),
        "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": at.isoformat()}],
    }
    store.on_job("MODIFIED", done)
    name = job["metadata"]["name"]
    store.on_pod(
        "MODIFIED",
        {
            "metadata": {
                "name": f"{name}-p",
                "namespace": KEY[0],
                "uid": f"pod-{name}",
                "resourceVersion": "3",
                "labels": {**job["metadata"]["labels"], "batch.kubernetes.io/job-name": name},
                "ownerReferences": [{"uid": job["metadata"]["uid"], "kind": "Job", "name": name, "controller": True}],
            },
            "spec": {"containers": [{"name": "task"}]},
            "status": {
                "phase": "Succeeded",
                "containerStatuses": [
                    {
                        "name": "task",
                        "state": {"terminated": {"exitCode": 0, "finishedAt": at.isoformat(), "message": output}},
                    }
                ],
            },
        },
    )


class Operator:
    """The reconciler of one TaskJob, its store, the recording API and a clock; wake-ups recorded."""

    def __init__(self, tasks: int, chain: bool = False, body: dict[str, Any] | None = None) -> None:
        self.store, self.kube, self.clock = Store(), RecordingKube(), Clock()
        self.store.on_taskjob(None, body or taskjob(tasks, chain))
        self.reconciler = Reconciler(self.store, self.kube, self.clock)  # type: ignore[arg-type]
        self.wakes: list[float] = []
        self.reconciler.status.wake = lambda key, delay: self.wakes.append(delay)

    async def reconcile(self) -> float | None:
        """Reconcile, and show the new Jobs to the store as the watch would."""
        before = len(self.kube.created)
        requeue = await self.reconciler(KEY)
        for job in self.kube.created[before:]:
            self.store.on_job("ADDED", job)
        return requeue

    async def written(self) -> None:
        """Let the write in flight finish."""
        await self.reconciler.status.flush(KEY)

    def later(self, seconds: float) -> None:
        self.clock.now += timedelta(seconds=seconds)

    async def gap_over(self) -> None:
        """Move the clock to the end of the write gap and let the writer's own timer write (no reconcile)."""
        kept = self.reconciler.status.remembered.get(KEY)
        if kept is not None and kept.write_after is not None and kept.write_after > self.clock.now:
            self.clock.now = kept.write_after
        status = self.reconciler.status
        for _ in range(500):  # a deadline, not a pause: the timer fires within the gap (at most a second)
            if KEY not in status.timers and KEY not in status.writers:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the status writer did not write at the end of the gap")


def task_states(patches: list[dict[str, Any]]) -> dict[str, str]:
    """Return the task phases the patches wrote, the later ones winning."""
    states: dict[str, str] = {}
    for patch in patches:
        states.update({name: s["phase"] for name, s in (patch.get("tasks") or {}).items() if s and "phase" in s})
    return states


async def spaced() -> None:
    op = Operator(1001)
    await op.reconcile()
    await op.written()
    assert len(op.kube.created) == 1001 and len(op.kube.patches) == 1  # every Job at once, then one status

    op.later(0.2)
    finish(op.store, op.kube.created[0], op.clock.now)
    await op.reconcile()
    await op.written()
    assert len(op.kube.patches) == 1, "written again within the gap"
    assert KEY in op.reconciler.status.timers  # the writer's own write at the end of the gap, no requeue

    op.later(0.3)
    finish(op.store, op.kube.created[1], op.clock.now)
    await op.reconcile()
    assert len(op.kube.patches) == 1

    await op.gap_over()
    assert len(op.kube.patches) == 2
    assert task_states(op.kube.patches[1:]) == {"t0": "Succeeded", "t1": "Succeeded"}  # both waited changes
    assert op.kube.patches[1]["progress"] == "2/1001"


def test_a_big_taskjob_writes_its_status_at_most_once_per_gap_and_loses_no_change() -> None:
    asyncio.run(spaced())


async def not_held_up() -> None:
    op = Operator(1001, chain=True)
    await op.reconcile()
    await op.written()
    op.later(MIN_WRITE_GAP)
    op.kube.gate.clear()  # the API server takes its time over the next status write
    finish(op.store, op.kube.created[0], op.clock.now)
    await asyncio.wait_for(op.reconcile(), timeout=5)  # creates t1, leaves the write to the background
    assert [j["metadata"]["labels"]["taskjob.dev/task"] for j in op.kube.created] == ["t0", "t1"]
    assert len(op.kube.patches) == 1 and KEY in op.reconciler.status.writers  # t0's success is being written

    op.later(0.5)
    finish(op.store, op.kube.created[1], op.clock.now)
    await asyncio.wait_for(op.reconcile(), timeout=5)  # does not wait for the write in flight
    assert len(op.kube.created) == 3

    op.kube.gate.set()
    await op.written()
    assert len(op.kube.patches) == 2 and op.wakes == []  # t1 is still unwritten: the writer's timer is set
    assert KEY in op.reconciler.status.timers
    await op.gap_over()
    states = task_states(op.kube.patches)
    assert [states[t] for t in ("t0", "t1", "t2", "t3")] == ["Succeeded", "Succeeded", "Running", "Waiting"]
    assert op.kube.patches[-1]["progress"] == "2/1001"


def test_a_slow_status_write_does_not_hold_up_the_next_job() -> None:
    asyncio.run(not_held_up())


async def small() -> None:
    op = Operator(10)
    await op.reconcile()
    assert len(op.kube.created) == 10 and len(op.kube.patches) == 1  # Pending -> Running: at once
    op.later(0.2)
    finish(op.store, op.kube.created[0], op.clock.now)
    requeue = await op.reconcile()
    assert len(op.kube.patches) == 1, "written again within the gap"
    # No reconcile for the write at the end of the gap (the plan's own timeout is far): the writer's timer.
    assert requeue is None or requeue > MIN_WRITE_GAP

    await op.gap_over()
    assert len(op.kube.patches) == 2 and task_states(op.kube.patches[1:]) == {"t0": "Succeeded"}

    op.later(0.1)  # within the next gap, every task ends: the change of phase is written at once
    for job in op.kube.created[1:]:
        finish(op.store, job, op.clock.now)
    await op.reconcile()
    assert len(op.kube.patches) == 3 and op.kube.patches[-1]["phase"] == "Succeeded"
    assert set(task_states(op.kube.patches).values()) == {"Succeeded"}


def test_a_small_taskjob_writes_task_changes_at_most_once_per_gap_and_its_phase_at_once() -> None:
    asyncio.run(small())


async def phase_change() -> None:
    op = Operator(1001)
    await op.reconcile()
    await op.written()
    op.later(MIN_WRITE_GAP)
    op.kube.gate.clear()
    finish(op.store, op.kube.created[0], op.clock.now)
    await op.reconcile()  # a write in flight
    for job in op.kube.created[1:]:
        finish(op.store, job, op.clock.now)
    final = asyncio.create_task(op.reconcile())
    await asyncio.sleep(0.01)
    op.kube.gate.set()
    await final
    # One write at a time: two merge patches in flight could land in either order, the older one last.
    assert op.kube.most_in_flight == 1
    assert len(op.kube.patches) == 3 and op.kube.patches[-1]["phase"] == "Succeeded"
    assert set(task_states(op.kube.patches).values()) == {"Succeeded"}


def test_a_change_of_phase_is_written_at_once_after_the_write_in_flight() -> None:
    asyncio.run(phase_change())


async def dependent_not_held_up_by_outputs() -> None:
    op = Operator(3, chain=True)
    await op.reconcile()
    op.later(MIN_WRITE_GAP)
    finish(op.store, op.kube.created[0], op.clock.now, output="42\n")
    op.kube.outputs_gate.clear()  # the API server is slow to store t0's output
    reconcile = asyncio.create_task(op.reconcile())
    for _ in range(200):  # a deadline, not a pause: the create goes out while the ConfigMap write waits
        if len(op.kube.created) == 2:
            break
        await asyncio.sleep(0.005)
    assert [j["metadata"]["labels"]["taskjob.dev/task"] for j in op.kube.created] == ["t0", "t1"]
    env = {e["name"]: e["value"] for e in op.kube.created[1]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["TASKJOB_INPUT_T0"] == "42"  # rendered from the pod's output, not the ConfigMap
    assert op.kube.outputs == [] and not reconcile.done()  # the status saying t0 succeeded waits for it
    op.kube.outputs_gate.set()
    await reconcile
    assert op.kube.outputs == [{"t0": "42\n"}]
    assert op.kube.writes[-2:] == ["outputs", "status"] and task_states(op.kube.patches)["t0"] == "Succeeded"


def test_a_dependent_job_is_created_while_the_output_it_was_given_is_being_stored() -> None:
    asyncio.run(dependent_not_held_up_by_outputs())


async def outputs_with_the_status() -> None:
    op = Operator(10)
    await op.reconcile()
    op.later(0.1)
    for i, job in enumerate(op.kube.created[:6]):  # six tasks succeed within one gap, each seen on its own
        finish(op.store, job, op.clock.now, output=f"out{i}" if i < 4 else "")
        await op.reconcile()
        op.later(0.1)
    assert op.kube.outputs == [] and len(op.kube.patches) == 1  # nothing stored within the gap
    await op.gap_over()  # the gap is over: one ConfigMap write, then the status
    assert op.kube.outputs == [{f"t{i}": f"out{i}" for i in range(4)}]  # empty outputs are not stored
    assert op.kube.writes[-2:] == ["outputs", "status"]
    succeeded = [t for t, phase in task_states(op.kube.patches).items() if phase == "Succeeded"]
    assert succeeded == [f"t{i}" for i in range(6)]


def test_outputs_of_tasks_succeeding_within_a_gap_are_stored_in_one_write_before_the_status() -> None:
    asyncio.run(outputs_with_the_status())


async def empty_output_handed_on() -> None:
    body = taskjob(3, chain=False)
    body["spec"]["tasks"][2]["dependsOn"] = ["t0", "t1"]
    op = Operator(3, body=body)  # one spec per uid and generation, as the API server keeps it
    await op.reconcile()
    op.later(MIN_WRITE_GAP)
    finish(op.store, op.kube.created[0], op.clock.now)  # t0 wrote nothing
    await op.reconcile()
    assert task_states(op.kube.patches)["t0"] == "Succeeded" and op.kube.outputs == []
    # The operator restarts; t0's Job and pod are gone by then. t2 still receives t0's (empty) output.
    body["status"] = {}
    for patch in op.kube.patches:
        body["status"] = apply(body["status"], patch)
    store = Store()
    store.on_taskjob(None, body)
    store.on_job("ADDED", op.kube.created[1])
    op.later(1)
    finish(store, op.kube.created[1], op.clock.now, output="b")
    kube = RecordingKube()
    await Reconciler(store, kube, op.clock)(KEY)  # type: ignore[arg-type]
    assert [j["metadata"]["labels"]["taskjob.dev/task"] for j in kube.created] == ["t2"]
    env = {e["name"]: e["value"] for e in kube.created[0]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["TASKJOB_INPUT_T0"] == "" and env["TASKJOB_INPUTS"] == '{"t0":"","t1":"b"}'


def test_an_empty_output_is_not_stored_and_a_dependent_created_after_a_restart_still_receives_it() -> None:
    asyncio.run(empty_output_handed_on())


async def outputs_added_while_stored() -> None:
    store, kube = Store(), RecordingKube()
    writer = StatusWriter(store, kube, Clock())  # type: ignore[arg-type]
    owner = taskjob(2, chain=False)
    writer.add_outputs(KEY, owner, {"t0": "1"})
    kube.outputs_gate.clear()  # the ConfigMap write takes its time
    storing = asyncio.create_task(writer.store_outputs(KEY))
    await asyncio.sleep(0)  # one turn of the loop: the write is sent and waits for the gate
    writer.add_outputs(KEY, owner, {"t0": "2", "t1": "3"})  # meanwhile: t0 retried with a new output, t1
    kube.outputs_gate.set()
    await storing
    assert kube.outputs == [{"t0": "1"}] and store.recorded_outputs(KEY) == {"t0": "1"}
    await writer.store_outputs(KEY)  # the next write carries what was added meanwhile
    assert kube.outputs[-1] == {"t0": "2", "t1": "3"} and KEY not in writer.outputs

    # The TaskJob is deleted while its outputs are stored, and one of the same name adds its own: kept.
    writer.add_outputs(KEY, owner, {"t0": "old"})
    kube.outputs_gate.clear()
    storing = asyncio.create_task(writer.store_outputs(KEY))
    await asyncio.sleep(0)
    writer.discard(KEY)
    writer.add_outputs(KEY, {**owner, "metadata": {**owner["metadata"], "uid": "new-uid"}}, {"t1": "new"})
    kube.outputs_gate.set()
    await storing
    await writer.store_outputs(KEY)
    assert kube.outputs[-2:] == [{"t0": "old"}, {"t1": "new"}] and KEY not in writer.outputs


def test_outputs_added_while_others_are_being_stored_are_stored_by_the_next_write() -> None:
    asyncio.run(outputs_added_while_stored())


def test_a_reconcile_decodes_the_kept_spec_once_and_not_again_while_its_generation_stays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The store keeps a TaskJob's spec encoded (memory); each read of a part of it would decode it all.
    decodes = 0
    value = PackedJson.value

    def counted(self: PackedJson) -> dict[str, Any]:
        nonlocal decodes
        decodes += 1
        return value(self)

    monkeypatch.setattr(PackedJson, "value", counted)

    async def run() -> None:
        op = Operator(10)
        assert isinstance(op.store.taskjobs[KEY]["spec"], PackedJson)
        await op.reconcile()
        assert decodes == 1
        op.later(0.2)
        finish(op.store, op.kube.created[0], op.clock.now)
        await op.reconcile()
        assert decodes == 1  # the spec parsed at the first reconcile is kept for its uid and generation

    asyncio.run(run())


async def chain_of_three() -> tuple[list[dict[str, Any]], list[bool], list[bool]]:
    """Run a chain of 3 to the end; return the status patches and, after each write, whether the writer kept
    the memory's status as models and whether the next plan was incremental (planned from the memory)."""
    from taskjobs.shell import statuswriter

    op = Operator(3, chain=True)
    as_models: list[bool] = []
    incremental: list[bool] = []
    for step in range(3):
        await op.reconcile()
        await op.written()
        kept = op.reconciler.status.remembered[KEY]
        as_models.append(kept.memory.status is not statuswriter._IN_RAW)
        incremental.append(op.reconciler.status.base(KEY).memory is not None)
        op.later(MIN_WRITE_GAP)
        finish(op.store, op.kube.created[step], op.clock.now)
    await op.reconcile()
    await op.written()
    return op.kube.patches, as_models, incremental


def test_a_small_taskjobs_written_status_is_kept_as_its_json_and_writes_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The memory's status models (about 2 KB a task) are not kept once written: the next plan parses the JSON
    written, incrementally still, and every status write is the same as with the models kept."""
    from taskjobs.shell import statuswriter

    lean_patches, as_models, incremental = asyncio.run(chain_of_three())
    assert as_models == [False, False, False] and incremental == [True, True, True]
    assert lean_patches[-1]["phase"] == "Succeeded"

    monkeypatch.setattr(statuswriter, "STATUS_AS_JSON_TASKS", -1)  # keep the models, as before
    kept_patches, as_models, _ = asyncio.run(chain_of_three())
    assert as_models == [True, True, True]
    assert lean_patches == kept_patches


async def gauge_through_a_run() -> list[dict[str, float]]:
    from prometheus_client import REGISTRY

    def gauge() -> dict[str, float]:
        return {
            phase: REGISTRY.get_sample_value("taskjob_taskjobs", {"phase": phase}) or 0.0
            for phase in ("Pending", "Running", "Succeeded")
        }

    start = gauge()
    seen = []
    op = Operator(2, chain=True)
    await op.reconcile()
    await op.reconcile()  # the same phase again
    seen.append(gauge())
    finish(op.store, op.kube.created[0], op.clock.now)
    await op.reconcile()
    finish(op.store, op.kube.created[1], op.clock.now)
    await op.reconcile()
    seen.append(gauge())
    op.reconciler.forget(KEY)
    seen.append(gauge())
    return [{p: g[p] - start[p] for p in g} for g in seen]


def test_the_taskjobs_gauge_counts_a_taskjob_once_in_its_current_phase() -> None:
    running, succeeded, forgotten = asyncio.run(gauge_through_a_run())
    assert running == {"Pending": 0, "Running": 1, "Succeeded": 0}
    assert succeeded == {"Pending": 0, "Running": 0, "Succeeded": 1}
    assert forgotten == {"Pending": 0, "Running": 0, "Succeeded": 0}
