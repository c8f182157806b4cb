"""An attempt whose fact is final keeps only its fact: later events of its Job and pods cannot change it,
and only the Job's deletion (an event, or its absence from a fresh LIST) removes it."""

from __future__ import annotations

from typing import Any

from test_store_wake import deliver, job, pod, taskjob

from taskjobs.shell.store import Store

EXITED = {
    "phase": "Failed",
    "containerStatuses": [
        {"name": "main", "state": {"terminated": {"exitCode": 3, "reason": "Error", "message": "bad row",
                                                  "startedAt": "2026-11-23T12:00:01Z"}}},
    ],
}  # fmt: skip
FAILED = {
    "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}],
    "startTime": "2026-11-23T12:00:00Z",
}


def ended(store: Store) -> tuple[str, ...]:
    """Return (phase, exit code) of the attempt as a reconcile reads it."""
    fact = store.fact_map(("ns", "tj"))["tj-a-1"]
    return fact.phase, fact.exit_code, fact.message  # type: ignore[return-value]


def finished_store() -> Store:
    store = Store()
    store.on_taskjob(None, taskjob())
    store.fact_map(("ns", "tj"))
    deliver(store, "job", "ADDED", job(2, {"active": 1}))
    deliver(store, "pod", "MODIFIED", pod(3, EXITED))
    assert deliver(store, "job", "MODIFIED", job(4, FAILED))
    assert ended(store) == ("Failed", 3, "bad row")
    return store


def test_a_final_fact_outlives_its_pod_and_its_jobs_body() -> None:
    store = finished_store()
    assert store.jobs[("ns", "tj")] == {} and ("ns", "tj-a-1") not in store.pods  # only the fact is kept
    # The Job's pod garbage-collected, the Job relabelled, its pod listed again: nothing changes, nothing wakes.
    assert not deliver(store, "pod", "DELETED", pod(5, EXITED))
    assert not deliver(store, "job", "MODIFIED", job(6, {**FAILED, "terminating": 0}))
    assert not deliver(store, "pod", None, pod(7, {"phase": "Unknown"}))
    assert ended(store) == ("Failed", 3, "bad row")


def test_deleting_the_job_of_a_final_fact_drops_the_fact() -> None:
    store = finished_store()
    assert deliver(store, "job", "DELETED", job(8, FAILED))
    assert store.fact_map(("ns", "tj")) == {}


def test_a_list_without_the_job_of_a_final_fact_drops_the_fact() -> None:
    store = finished_store()
    assert store.prune("jobs", "ns", [], 100) == {("ns", "tj")}
    assert store.fact_map(("ns", "tj")) == {}


def test_a_list_still_showing_the_job_keeps_its_final_fact() -> None:
    store = finished_store()
    assert store.prune("jobs", "ns", [job(9, FAILED)], 100) == set()
    assert store.prune("jobs", "ns", [], 3) == set()  # a list older than what was seen of the Job
    assert ended(store) == ("Failed", 3, "bad row")


def test_a_new_job_of_the_same_name_replaces_the_final_fact() -> None:
    store = finished_store()
    new: dict[str, Any] = job(10, {"active": 1})
    new["metadata"]["uid"] = "new-job-uid"
    assert deliver(store, "job", "ADDED", new)
    assert store.fact_map(("ns", "tj"))["tj-a-1"].phase == "Pending"


def test_a_fact_waiting_for_its_pods_verdict_is_not_final() -> None:
    store = Store()
    store.on_taskjob(None, taskjob())
    store.fact_map(("ns", "tj"))
    assert deliver(store, "job", "ADDED", job(2, FAILED))  # the pod watch lags the Job's
    assert store.fact_map(("ns", "tj"))["tj-a-1"].awaiting_pod
    assert deliver(store, "pod", "MODIFIED", pod(3, EXITED))  # the pod's verdict arrives and counts
    assert ended(store) == ("Failed", 3, "bad row")
