"""Status writes of big TaskJobs are spaced (the API server pays ~2 s of CPU per 10,000-task write); Job
creates and phase changes are not held up, and a spaced write carries every change made meanwhile.

The reconciler runs against the real Store and a recording stand-in for the API client: what is checked
is which writes it sends and when, not how the API server takes them (tests/cluster does that).
"""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from taskjobs.shell.reconciler import MIN_WRITE_GAP, Reconciler
from taskjobs.shell.store import Store

T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
KEY = ("ns", "big")


class RecordingKube:
    """Answers as the API server would, and records the status patches and Job creates."""

    def __init__(self) -> None:
        self.patches: list[dict[str, Any]] = []
        self.created: list[dict[str, Any]] = []
        self.rv = 10

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
        self.patches.append(patch)
        self.rv += 1
        return self.rv

    async def patch_job(self, *_: Any) -> None: ...

    async def record_outputs(self, *_: Any) -> None: ...

    def post_event(self, *_: Any) -> None: ...


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def taskjob(tasks: int) -> dict[str, Any]:
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
        "spec": {"defaults": {"image": "busybox"}, "tasks": [{"name": f"t{i}"} for i in range(tasks)]},
    }


def finish(store: Store, job: dict[str, Any], at: datetime) -> None:
    """Deliver the watch events of a Job that succeeded, and of its pod."""
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
                    {"name": "task", "state": {"terminated": {"exitCode": 0, "finishedAt": at.isoformat()}}}
                ],
            },
        },
    )


def started(tasks: int) -> tuple[Store, RecordingKube, Clock, Reconciler]:
    """Return a TaskJob of `tasks` independent tasks after its first reconcile, its Jobs seen by the watch."""
    store, kube, clock = Store(), RecordingKube(), Clock()
    store.on_taskjob(None, taskjob(tasks))
    reconciler = Reconciler(store, kube, clock)  # type: ignore[arg-type]
    reconcile(reconciler)
    for job in kube.created:
        store.on_job("ADDED", job)
    return store, kube, clock, reconciler


def reconcile(reconciler: Reconciler) -> float | None:
    return asyncio.run(reconciler(KEY))


def task_states(patches: list[dict[str, Any]]) -> dict[str, str]:
    """Return the task phases the patches wrote, the later ones winning."""
    states: dict[str, str] = {}
    for patch in patches:
        states.update({name: s["phase"] for name, s in (patch.get("tasks") or {}).items() if s and "phase" in s})
    return states


def test_a_big_taskjob_writes_its_status_at_most_once_per_gap_and_loses_no_change() -> None:
    store, kube, clock, reconciler = started(1001)
    assert len(kube.created) == 1001 and len(kube.patches) == 1  # every Job at once, then one status

    clock.now += timedelta(seconds=0.2)
    finish(store, kube.created[0], clock.now)
    wait = reconcile(reconciler)
    assert len(kube.patches) == 1, "written again within the gap"
    assert wait is not None and 0 < wait <= MIN_WRITE_GAP - 0.2

    clock.now += timedelta(seconds=0.3)
    finish(store, kube.created[1], clock.now)
    reconcile(reconciler)
    assert len(kube.patches) == 1

    clock.now = T0 + timedelta(seconds=MIN_WRITE_GAP)  # the requeue: the gap is over
    reconcile(reconciler)
    assert len(kube.patches) == 2
    assert task_states(kube.patches[1:]) == {"t0": "Succeeded", "t1": "Succeeded"}  # both waited changes
    assert kube.patches[1]["progress"] == "2/1001"


def test_a_small_taskjob_is_written_after_every_change() -> None:
    store, kube, clock, reconciler = started(10)
    clock.now += timedelta(seconds=0.2)
    finish(store, kube.created[0], clock.now)
    reconcile(reconciler)
    assert len(kube.patches) == 2 and task_states(kube.patches[1:]) == {"t0": "Succeeded"}


def test_a_change_of_phase_is_written_at_once() -> None:
    store, kube, clock, reconciler = started(1001)
    clock.now += timedelta(seconds=0.2)
    for job in kube.created:
        finish(store, job, clock.now)
    reconcile(reconciler)
    assert len(kube.patches) == 2 and kube.patches[1]["phase"] == "Succeeded"
