"""R3: people and controllers touching what the operator owns while it runs.

- A task's Job deleted by hand: the attempt counts as failed (reason JobLost, once the attempt is older
  than the 30 s grace that covers a Job not yet seen by the watch) and the task is retried.
- A task's pod deleted by hand (on the testenv, where kwok removes it without a terminal phase): the Job
  controller starts a new pod within the same attempt; no attempt is counted.
- A TaskJob deleted mid-run: every Job, pod and ConfigMap it owns is garbage-collected and the operator
  logs no error about it.
- A TaskJob deleted and created again under the same name while a Job of the first one still exists:
  the new TaskJob runs every task itself; it never takes the old Jobs for its own.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from operator_harness import OperatorProcess, TaskJobs, poll
from outcomes import pod_outcomes

pytestmark = pytest.mark.cluster

LABEL = "taskjob.dev/taskjob"
HOLD = "reliability.taskjob.dev/hold"  # a finalizer the test puts on a Job to keep it around while deleted


def taskjob(name: str, tasks: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "taskjob.dev/v1alpha1",
        "kind": "TaskJob",
        "metadata": {"name": name},
        "spec": {"defaults": {"image": "busybox:1.36", "retry": {"backoff": {"delaySeconds": 1}}}, "tasks": tasks},
    }


def task(name: str, annotations: dict[str, str], deps: list[str] | None = None, **fields: Any) -> dict[str, Any]:
    return {"name": name, "podTemplate": {"metadata": {"annotations": annotations}},
            **({"dependsOn": deps} if deps else {}), **fields}


def long_then_quick() -> dict[str, str]:
    """Attempt 1 runs for ten minutes (it is interfered with); attempt 2 succeeds in half a second."""
    annotations = pod_outcomes(0, duration_ms=600_000)
    annotations["kwok.taskjob.dev/duration-attempt-2"] = "500ms"
    return annotations


def job_owned_by(job: Any, uid: str) -> bool:
    return any(ref.uid == uid for ref in job.metadata.owner_references or ())


def test_r3_job_deleted_by_hand_counts_as_a_failed_attempt(
    operators: Callable[..., OperatorProcess], taskjobs: TaskJobs, figures: dict[str, Any]
) -> None:
    operators()
    taskjobs.create(taskjob("lostjob", [task("a", long_then_quick(), retry={"limit": 2}), task("b", {}, ["a"])]))
    poll(lambda: taskjobs.status("lostjob").get("running"), 30, "task a to run")
    deleted = time.monotonic()
    taskjobs.batch.delete_namespaced_job("lostjob-a-1", taskjobs.ns, propagation_policy="Background")
    poll(lambda: any(j.metadata.name == "lostjob-a-2" for j in taskjobs.jobs("lostjob")), 60, "attempt 2 of a")
    figures.update(retried_after_seconds=round(time.monotonic() - deleted, 1))
    status = taskjobs.wait_phase("lostjob", ("Succeeded", "Failed"))
    assert status["phase"] == "Succeeded", status.get("message")
    assert status["tasks"]["a"]["attempts"] == 2
    retried = [e.message for e in taskjobs.events("lostjob") if e.reason == "TaskRetrying"]
    assert any("JobLost" in m for m in retried), retried


def test_r3_pod_deleted_by_hand_is_replaced_within_the_same_attempt(
    operators: Callable[..., OperatorProcess], taskjobs: TaskJobs, figures: dict[str, Any]
) -> None:
    """kwok removes a deleted pod without a terminal phase; the Job controller then starts a new pod for it.

    (A real kubelet first marks the killed pod Failed: the attempt then fails and is retried, as any
    failed attempt is: R1 covers that.)
    """
    operators()
    taskjobs.create(taskjob("lostpod", [task("a", pod_outcomes(0, duration_ms=8000), retry={"limit": 2})]))
    selector = f"{LABEL}=lostpod"
    pods = poll(
        lambda: [p for p in taskjobs.core.list_namespaced_pod(taskjobs.ns, label_selector=selector).items
                 if p.status.phase == "Running"],
        30, "the pod of attempt 1 to run",
    )
    deleted = pods[0].metadata.name
    taskjobs.core.delete_namespaced_pod(deleted, taskjobs.ns)
    status = taskjobs.wait_phase("lostpod", ("Succeeded", "Failed"), timeout=90)
    assert status["phase"] == "Succeeded", status.get("message")
    assert [j.metadata.name for j in taskjobs.jobs("lostpod")] == ["lostpod-a-1"]
    assert status["tasks"]["a"]["attempts"] == 1
    finished = taskjobs.core.list_namespaced_pod(taskjobs.ns, label_selector=selector).items
    figures.update(replacement=[p.metadata.name for p in finished], deleted=deleted)
    assert [p.status.phase for p in finished] == ["Succeeded"] and finished[0].metadata.name != deleted


def test_r3_taskjob_deleted_mid_run_leaves_nothing_behind_and_no_errors(
    operators: Callable[..., OperatorProcess], taskjobs: TaskJobs, figures: dict[str, Any]
) -> None:
    op = operators()
    long = pod_outcomes(0, duration_ms=600_000)
    tasks = [task("first", pod_outcomes(0, message="an output", duration_ms=200))]
    tasks += [task(f"long{i}", long, ["first"]) for i in range(3)]
    tasks += [task("flaky", pod_outcomes({1: 1, 2: 1}, duration_ms=300), retry={"limit": 5})]
    tasks += [task("last", {}, [f"long{i}" for i in range(3)])]
    taskjobs.create(taskjob("doomed", tasks))
    poll(lambda: taskjobs.status("doomed").get("running", 0) >= 3, 60, "three long tasks to run")
    owned = {
        "jobs": lambda: taskjobs.batch.list_namespaced_job(taskjobs.ns, label_selector=f"{LABEL}=doomed").items,
        "pods": lambda: taskjobs.core.list_namespaced_pod(taskjobs.ns, label_selector=f"{LABEL}=doomed").items,
        "configmaps": lambda: taskjobs.core.list_namespaced_config_map(
            taskjobs.ns, label_selector=f"{LABEL}=doomed").items,
    }
    before = {kind: len(list_()) for kind, list_ in owned.items()}
    assert all(before.values()), f"expected Jobs, pods and the outputs ConfigMap before the deletion: {before}"
    log_before = len(op.logs())
    taskjobs.delete("doomed")
    for kind, list_ in owned.items():
        poll(lambda list_=list_: not list_(), 60, f"every {kind} of the deleted TaskJob to be gone")
    # Let the operator see the deletions; then nothing it logged about this TaskJob may be an error.
    poll(lambda: "Handler" in op.logs()[log_before:], 10, "the operator to handle the deletion events")
    after = op.logs()[log_before:]
    bad = [line for line in after.splitlines()
           if re.search(r"\b(ERROR|WARNING|CRITICAL)\b|Traceback", line) and "doomed" in line]
    figures.update(owned_before=before, log_lines_after=len(after.splitlines()))
    assert not bad, "\n".join(bad)


def test_r3_taskjob_recreated_under_the_same_name_never_adopts_old_jobs(
    operators: Callable[..., OperatorProcess], taskjobs: TaskJobs, figures: dict[str, Any]
) -> None:
    op = operators()
    tasks = [task("a", pod_outcomes(0, duration_ms=200)), task("b", pod_outcomes(0, duration_ms=600_000), ["a"])]
    first_uid = taskjobs.create(taskjob("again", tasks))["metadata"]["uid"]
    poll(lambda: taskjobs.status("again").get("tasks", {}).get("b", {}).get("phase") == "Running", 60, "task b to run")
    for name in ("again-a-1", "again-b-1"):  # both Jobs outlive their TaskJob for a while, as with any finalizer
        taskjobs.batch.patch_namespaced_job(name, taskjobs.ns, {"metadata": {"finalizers": [HOLD]}})
    taskjobs.delete("again")
    poll(lambda: all(j.metadata.deletion_timestamp for j in taskjobs.jobs("again")), 30, "the old Jobs to be deleting")
    quick = [task("a", pod_outcomes(0, duration_ms=200)), task("b", pod_outcomes(0, duration_ms=200), ["a"])]
    offset = len(op.logs())
    second_uid = taskjobs.create(taskjob("again", quick))["metadata"]["uid"]
    # The operator acts on the new TaskJob while the old Jobs still exist: it writes a status, or tries
    # to create the Job of task a and finds the old one in the way.
    poll(lambda: taskjobs.status("again").get("phase") or "again-a-1" in op.logs()[offset:], 30,
         "the operator to act on the new TaskJob")
    seen = taskjobs.status("again")
    for name in ("again-a-1", "again-b-1"):
        taskjobs.batch.patch_namespaced_job(name, taskjobs.ns, {"metadata": {"finalizers": None}})
    status = taskjobs.wait_phase("again", ("Succeeded", "Failed"), timeout=120)
    jobs = taskjobs.jobs("again")
    figures.update(while_old_jobs_lingered=seen.get("progress"), attempts={t: s.get("attempts") for t, s in
                                                                           status["tasks"].items()})
    assert seen.get("succeeded", 0) == 0, f"the new TaskJob counted an old Job as its own: {seen}"
    assert status["phase"] == "Succeeded", status.get("message")
    assert all(job_owned_by(j, second_uid) for j in jobs), [j.metadata.name for j in jobs]
    assert not any(job_owned_by(j, first_uid) for j in jobs)
    assert {t: s["attempts"] for t, s in status["tasks"].items()} == {"a": 1, "b": 1}
