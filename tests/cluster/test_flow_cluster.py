"""`when` conditions, dependencies on failure and finally tasks, run by the operator on the test control plane."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from kubernetes.client.rest import ApiException
from operator_harness import OperatorProcess, TaskJobs
from outcomes import pod_outcomes

pytestmark = pytest.mark.cluster


def taskjob(name: str, tasks: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    spec.setdefault("defaults", {"image": "busybox:1.36", "retry": {"limit": 0}})
    return {"apiVersion": "taskjob.dev/v1alpha1", "kind": "TaskJob", "metadata": {"name": name},
            "spec": {**spec, "tasks": tasks}}


def task(
    name: str, deps: list[str] | None = None, outcome: dict[str, str] | None = None, **fields: Any
) -> dict[str, Any]:
    extra = {"podTemplate": {"metadata": {"annotations": outcome}}} if outcome else {}
    return {"name": name, **({"dependsOn": deps} if deps else {}), **extra, **fields}


def jobs_per_task(tj: TaskJobs, name: str) -> Counter[str]:
    return Counter(j.metadata.labels["taskjob.dev/task"] for j in tj.jobs(name))


def test_conditions_skip_on_output_and_a_handler_runs_when_its_dependency_failed(
    operator: OperatorProcess, taskjobs: TaskJobs
) -> None:
    taskjobs.create(taskjob("cond", [
        task("count", outcome=pod_outcomes(0, message="2")),
        task("big", ["count"], when="int(tasks.count.output) > 5"),
        task("after-big", ["big"]),
        task("parse", ["count"], when="int(tasks.count.output + 'x') > 1"),
        task("build", outcome=pod_outcomes(1)),
        task("rollback", ["build"], when="tasks.build.phase == 'Failed'"),
    ], failurePolicy="ContinueIndependent"))
    status = taskjobs.wait_phase("cond", ("Succeeded", "Failed"), timeout=120)
    states = {n: (s["phase"], s.get("reason")) for n, s in status["tasks"].items()}
    assert states["big"] == ("Skipped", "ConditionFalse")
    assert states["after-big"][0] == "Succeeded"  # a when-skipped dependency does not skip its dependents
    assert states["parse"] == ("Failed", "ConditionError")
    assert "cannot evaluate" in status["tasks"]["parse"]["message"]
    assert states["build"][0] == "Failed" and states["rollback"][0] == "Succeeded"
    # build's failure is handled by rollback; parse's condition error is not: the TaskJob fails for it.
    assert status["phase"] == "Failed"
    assert status["message"].startswith("task parse cannot evaluate")
    assert set(jobs_per_task(taskjobs, "cond")) == {"count", "after-big", "build", "rollback"}  # no Job for a skip


def test_a_handled_failure_leaves_the_taskjob_succeeded_and_finally_tasks_run_once_with_the_outcome(
    operator: OperatorProcess, taskjobs: TaskJobs
) -> None:
    manifest = taskjob("fin", [
        task("build", outcome=pod_outcomes(1)),
        task("rollback", ["build"], when="tasks.build.phase == 'Failed'"),
        task("other"),
    ])
    manifest["spec"]["finally"] = [
        task("notify", when="size(taskjob.failedTasks) > 0"),
        task("cleanup"),
        task("last", ["cleanup"], outcome=pod_outcomes(1)),
    ]
    taskjobs.create(manifest)
    status = taskjobs.wait_phase("fin", ("Succeeded", "Failed"), timeout=120)
    phases = {n: s["phase"] for n, s in status["tasks"].items()}
    assert phases == {"build": "Failed", "rollback": "Succeeded", "other": "Succeeded",
                      "notify": "Succeeded", "cleanup": "Succeeded", "last": "Failed"}
    # The outcome the finally tasks saw: build's failure was handled, so Succeeded, with build listed.
    job = taskjobs.batch.read_namespaced_job("fin-notify-1", taskjobs.ns)
    env = {e.name: e.value for e in job.spec.template.spec.containers[0].env}
    assert (env["TASKJOB_OUTCOME"], env["TASKJOB_FAILED_TASKS"]) == ("Succeeded", "build")
    # Finally tasks started after every other task ended, and once each.
    jobs = {j.metadata.labels["taskjob.dev/task"]: j for j in taskjobs.jobs("fin")}
    ended = max(taskjobs.ended(jobs[n]) for n in ("build", "rollback", "other"))
    assert all(jobs[n].metadata.creation_timestamp >= ended for n in ("notify", "cleanup"))
    assert jobs_per_task(taskjobs, "fin") == Counter({n: 1 for n in phases})
    # A finally task's failure fails the TaskJob (rule documented in docs/conditions-and-finally.md).
    assert status["phase"] == "Failed"
    assert status["message"].startswith("task last failed")


def test_finally_tasks_cannot_be_added_to_an_existing_taskjob(operator: OperatorProcess, taskjobs: TaskJobs) -> None:
    taskjobs.create(taskjob("late", [task("a")]))
    taskjobs.wait_phase("late", "Succeeded", timeout=120)
    with pytest.raises(ApiException) as refused:
        taskjobs.patch_spec("late", {"finally": [{"name": "notify"}]})
    assert refused.value.status == 422
    assert "spec.finally cannot be added or removed after creation" in str(refused.value.body)
    assert taskjobs.status("late")["phase"] == "Succeeded"
