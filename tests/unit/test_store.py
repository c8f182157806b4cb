"""The store: what a reconcile sees right after it acted, before the watch catches up."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from taskjobs.shell.store import Store, expected_fact

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def taskjob(rv: int, status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "tj", "namespace": "ns", "resourceVersion": str(rv)}, "status": status or {}}


def job(name: str, task: str, attempt: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "creationTimestamp": "2026-11-23T12:00:00Z",
            "labels": {"taskjob.dev/taskjob": "tj", "taskjob.dev/task": task, "taskjob.dev/attempt": str(attempt)},
        },
        "spec": {},
        "status": {},
    }


def test_a_created_job_not_yet_watched_still_counts_as_an_attempt() -> None:
    store = Store()
    key = store.on_taskjob(None, taskjob(1))
    store.expect(key, expected_fact("a", 1, "tj-a-1", NOW))
    assert [(f.task, f.attempt, f.phase) for f in store.facts(key)] == [("a", 1, "Pending")]
    store.on_job("ADDED", job("tj-a-1", "a", 1))  # the watch delivers it: one fact, not two
    assert [(f.task, f.attempt) for f in store.facts(key)] == [("a", 1)]


def test_own_status_write_wins_until_the_watch_shows_it() -> None:
    store = Store()
    key = store.on_taskjob(None, taskjob(5, {"phase": "Pending"}))
    store.remember_write(key, 7, {"phase": "Running"})
    store.on_taskjob("MODIFIED", taskjob(6, {"phase": "Pending"}))  # an older event arriving late
    assert store.status_of(key) == {"phase": "Running"}
    store.on_taskjob("MODIFIED", taskjob(7, {"phase": "Running", "progress": "0/1"}))
    assert store.status_of(key) == {"phase": "Running", "progress": "0/1"}


def test_deleting_a_taskjob_forgets_its_jobs_and_pods() -> None:
    store = Store()
    key = store.on_taskjob(None, taskjob(1))
    store.on_job(None, job("tj-a-1", "a", 1))
    store.on_taskjob("DELETED", taskjob(2))
    assert store.facts(key) == []
    assert key not in store.taskjobs


def test_jobs_without_our_label_are_ignored() -> None:
    store = Store()
    foreign = job("other", "a", 1)
    del foreign["metadata"]["labels"]["taskjob.dev/taskjob"]
    assert store.on_job("ADDED", foreign) is None


def test_a_fact_is_reparsed_when_its_job_or_pod_changes() -> None:
    store = Store()
    key = store.on_taskjob(None, taskjob(1))
    body = job("tj-a-1", "a", 1)
    body["metadata"]["resourceVersion"] = "10"
    store.on_job("ADDED", body)
    assert [f.phase for f in store.facts(key)] == ["Pending"]
    done = job("tj-a-1", "a", 1)
    done["metadata"]["resourceVersion"] = "11"
    done["status"] = {"conditions": [{"type": "Complete", "status": "True",
                                      "lastTransitionTime": "2026-11-23T12:00:05Z"}]}
    store.on_job("MODIFIED", done)
    assert [f.phase for f in store.facts(key)] == ["Succeeded"]


def test_the_echo_of_our_own_status_write_is_recognised() -> None:
    store = Store()
    key = store.on_taskjob(None, taskjob(5, {"phase": "Pending"}))
    assert not store.echoes_own_write(key)
    store.remember_write(key, 7, {"phase": "Running"})
    store.on_taskjob("MODIFIED", taskjob(7, {"phase": "Running"}))
    assert store.echoes_own_write(key)
    store.on_taskjob("MODIFIED", taskjob(8, {"phase": "Running"}))  # e.g. a label added: not our write
    assert not store.echoes_own_write(key)
    store.remember_write(key, 9, {"phase": "Succeeded"})
    store.on_taskjob("MODIFIED", taskjob(9, {"phase": "Failed"}))  # our patch met someone else's status
    assert not store.echoes_own_write(key)


def test_the_echo_of_our_write_shares_the_status_written_instead_of_a_second_copy() -> None:
    store = Store()
    key = store.on_taskjob(None, taskjob(5, {"phase": "Pending"}))
    written = {"phase": "Running", "tasks": {"a": {"phase": "Running"}}}
    store.remember_write(key, 7, written)
    store.on_taskjob("MODIFIED", taskjob(7, {"phase": "Running", "tasks": {"a": {"phase": "Running"}}}))
    assert store.taskjobs[key]["status"] is written
    assert store.status_of(key) is written
    store.on_taskjob("MODIFIED", taskjob(8, {"phase": "Failed"}))  # someone else's status: kept as watched
    assert store.status_of(key) == {"phase": "Failed"}


def failed_job(name: str, at: str) -> dict[str, Any]:
    body = job(name, "a", 1)
    body["status"] = {
        "startTime": "2026-11-23T12:00:00Z",
        "conditions": [{"type": "Failed", "status": "True", "reason": "PodFailurePolicy", "lastTransitionTime": at}],
    }
    return body


def test_a_failure_the_operator_saw_keeps_the_sub_second_time_it_saw_it() -> None:
    # Kubernetes records whole seconds: a failure at 12:00:05.x reads 12:00:05. Seen at 12:00:05.7, the
    # attempt ended by then: a 0.5 s backoff counted from 12:00:05 would start the retry early.
    seen = NOW.replace(second=5, microsecond=700_000)
    store = Store(clock=lambda: seen)
    key = store.on_taskjob(None, taskjob(1))
    store.on_job("MODIFIED", failed_job("tj-a-1", "2026-11-23T12:00:05Z"))
    assert [f.finish_time for f in store.facts(key)] == [seen]


def test_without_a_sighting_within_its_second_a_failure_keeps_the_recorded_time() -> None:
    recorded = NOW.replace(second=5)
    later = Store(clock=lambda: NOW.replace(second=9))  # seen late (a lagging watch): its second is unknown
    key = later.on_taskjob(None, taskjob(1))
    later.on_job("MODIFIED", failed_job("tj-a-1", "2026-11-23T12:00:05Z"))
    assert [f.finish_time for f in later.facts(key)] == [recorded]
    listed = Store(clock=lambda: NOW.replace(second=5, microsecond=700_000))  # a restart lists it: not seen live
    key = listed.on_taskjob(None, taskjob(1))
    listed.on_job(None, failed_job("tj-a-1", "2026-11-23T12:00:05Z"))
    assert [f.finish_time for f in listed.facts(key)] == [recorded]
