"""Job and pod events wake their TaskJob (the store returns its key) only when they change what its reconcile sees."""

from __future__ import annotations

from typing import Any

from taskjobs.shell.store import Store


def taskjob() -> dict[str, Any]:
    return {"metadata": {"name": "tj", "namespace": "ns", "uid": "tj-uid", "resourceVersion": "1"}}


def job(rv: int, status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "tj-a-1",
            "namespace": "ns",
            "uid": "job-uid",
            "resourceVersion": str(rv),
            "creationTimestamp": "2026-11-23T12:00:00Z",
            "labels": {"taskjob.dev/taskjob": "tj", "taskjob.dev/task": "a", "taskjob.dev/attempt": "1"},
            "ownerReferences": [{"uid": "tj-uid", "kind": "TaskJob", "name": "tj", "controller": True}],
        },
        "status": status or {},
    }


def pod(rv: int, status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "tj-a-1-xyz",
            "namespace": "ns",
            "uid": "pod-uid",
            "resourceVersion": str(rv),
            "labels": {"taskjob.dev/taskjob": "tj", "batch.kubernetes.io/job-name": "tj-a-1"},
            "ownerReferences": [{"uid": "job-uid", "kind": "Job", "name": "tj-a-1", "controller": True}],
        },
        "spec": {"containers": [{"name": "main"}]},
        "status": status or {"phase": "Pending"},
    }


RUNNING = {
    "phase": "Running",
    "containerStatuses": [{"name": "main", "state": {"running": {"startedAt": "2026-11-23T12:00:01Z"}}}],
}


def deliver(store: Store, kind: str, event: str, body: dict[str, Any]) -> bool:
    """Record the event as the handlers do; return whether the TaskJob is woken."""
    key = store.on_job(event, body) if kind == "job" else store.on_pod(event, body).key
    assert key in (None, ("ns", "tj"))
    return key is not None


def test_events_that_change_no_fact_do_not_wake() -> None:
    store = Store()
    key = store.on_taskjob(None, taskjob())
    assert store.fact_map(key) == {}  # a reconcile has read the TaskJob's facts
    assert deliver(store, "job", "ADDED", job(2))
    first = store.fact_map(key)["tj-a-1"]
    assert not deliver(store, "job", "ADDED", job(2))  # the watch echoes what a reconcile recorded
    assert not deliver(store, "pod", "ADDED", pod(3))  # Pending pod: the attempt is Pending already
    assert not deliver(store, "job", "MODIFIED", job(4, {"active": 1}))
    assert store.fact_map(key)["tj-a-1"] is first  # unchanged facts keep their object (plan memory)
    assert deliver(store, "pod", "MODIFIED", pod(5, RUNNING))  # the container started
    assert not deliver(store, "pod", "MODIFIED", pod(6, {**RUNNING, "podIP": "10.0.0.1"}))
    exited = {
        "phase": "Succeeded",
        "containerStatuses": [
            {
                "name": "main",
                "state": {
                    "terminated": {
                        "exitCode": 0,
                        "startedAt": "2026-11-23T12:00:01Z",
                        "finishedAt": "2026-11-23T12:00:02Z",
                    }
                },
            }
        ],
    }
    assert deliver(store, "pod", "MODIFIED", pod(7, exited))  # the pod's success ends the attempt at once
    assert store.fact_map(key)["tj-a-1"].phase == "Succeeded"
    done = {"conditions": [{"type": "Complete", "status": "True"}], "completionTime": "2026-11-23T12:00:03Z"}
    assert not deliver(store, "job", "MODIFIED", job(8, done))  # the Job's Complete a second later: said already
    assert store.fact_map(key)["tj-a-1"].phase == "Succeeded"
    assert deliver(store, "job", "DELETED", job(9, done))
    assert store.fact_map(key) == {}


def test_events_before_the_first_read_always_wake() -> None:
    store = Store()
    store.on_taskjob(None, taskjob())
    assert deliver(store, "job", "ADDED", job(2))
    assert deliver(store, "job", "ADDED", job(2))  # no facts read yet: nothing to compare with


def test_a_new_taskjob_of_the_same_name_reads_its_jobs_again() -> None:
    store = Store()
    key = store.on_taskjob(None, taskjob())
    store.on_job("ADDED", job(2))
    assert list(store.fact_map(key)) == ["tj-a-1"]
    store.on_taskjob("MODIFIED", {"metadata": {**taskjob()["metadata"], "uid": "other-uid"}})
    assert store.fact_map(key) == {}  # the Job belongs to the TaskJob of the old uid
    assert not deliver(store, "job", "MODIFIED", job(3))  # the old TaskJob's Job is none of the new one's business


def test_a_pods_success_is_a_verdict_even_before_its_phase_says_so() -> None:
    store = Store()
    store.on_taskjob(None, taskjob())
    store.on_job("ADDED", job(2))

    def verdict(event: str, body: dict[str, Any]) -> bool:
        return store.on_pod(event, body).verdict

    exited = {"name": "main", "state": {"terminated": {"exitCode": 0, "finishedAt": "2026-11-23T12:00:02Z"}}}
    assert not verdict("ADDED", pod(3))  # pending: shown within a second
    assert not verdict("MODIFIED", pod(5, RUNNING))  # started
    assert verdict("MODIFIED", pod(6, {"phase": "Running", "containerStatuses": [exited]}))
    assert verdict("MODIFIED", pod(7, {"phase": "Succeeded", "containerStatuses": [exited]}))
    assert verdict("MODIFIED", pod(7, {"phase": "Failed"}))
    assert verdict("DELETED", pod(8, RUNNING))


class RecordingQueue:
    def __init__(self) -> None:
        self.now: list[Any] = []
        self.soon: list[Any] = []

    def add(self, key: Any) -> None:
        self.now.append(key)

    def add_soon(self, key: Any, within: float) -> None:
        self.soon.append(key)


def test_the_handler_wakes_a_taskjob_at_once_exactly_when_the_store_says_the_pod_event_is_a_verdict() -> None:
    from taskjobs.shell.handlers import on_pod_event
    from taskjobs.shell.store import PodNews

    class Told(Store):
        """A store whose answer about pod events is set by the test, whatever the pod says."""

        answer = PodNews(None, False)

        def on_pod(self, event_type: str | None, body: Any) -> PodNews:
            super().on_pod(event_type, body)
            return self.answer

    store = Told()
    key = store.on_taskjob(None, taskjob())
    queue = RecordingQueue()
    exited = {"name": "main", "state": {"terminated": {"exitCode": 0, "finishedAt": "2026-11-23T12:00:02Z"}}}
    store.answer = PodNews(key, True)
    on_pod_event(store, queue, "ADDED", pod(3))  # a Pending pod, but a verdict told
    assert (queue.now, queue.soon) == ([key], [])
    store.answer = PodNews(key, False)
    on_pod_event(store, queue, "MODIFIED", pod(6, {"phase": "Running", "containerStatuses": [exited]}))
    assert (queue.now, queue.soon) == ([key], [key])
    store.answer = PodNews(None, True)
    on_pod_event(store, queue, "DELETED", pod(7))  # nothing changed: no wake
    assert (queue.now, queue.soon) == ([key], [key])


def test_a_job_event_wakes_its_taskjob_at_once_only_when_the_job_finished_or_vanished() -> None:
    """A Job appearing or starting changes what the status shows, never what to create: it waits for the next
    run (within a second); its Complete, Failed or deletion may start a dependent or a retry at once."""
    from taskjobs.shell.handlers import on_job_event

    store = Store()
    key = store.on_taskjob(None, taskjob())
    store.fact_map(key)
    queue = RecordingQueue()
    on_job_event(store, queue, "ADDED", job(2))  # seen for the first time
    assert (queue.now, queue.soon) == ([], [key])
    on_job_event(store, queue, "MODIFIED", job(3, {"active": 1, "startTime": "2026-11-23T12:00:01Z"}))
    assert store.fact_map(key)["tj-a-1"].start_time is not None  # the store has it for the next run
    assert (queue.now, queue.soon) == ([], [key, key])
    on_job_event(store, queue, "MODIFIED", job(4, {"active": 1, "startTime": "2026-11-23T12:00:01Z"}))
    assert (queue.now, queue.soon) == ([], [key, key])  # nothing changed: no wake
    failed = {
        "startTime": "2026-11-23T12:00:01Z",
        "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}],
    }
    on_job_event(store, queue, "MODIFIED", job(5, failed))
    assert (queue.now, queue.soon) == ([key], [key, key])
    on_job_event(store, queue, "DELETED", job(6, failed))
    assert (queue.now, queue.soon) == ([key, key], [key, key])
    on_job_event(store, queue, "ADDED", {**job(7), "metadata": {**job(7)["metadata"], "labels": {}}})
    assert (queue.now, queue.soon) == ([key, key], [key, key])  # not one of ours
