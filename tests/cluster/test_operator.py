"""The operator, as a real process, running TaskJobs on the real control plane (issue 3's acceptance)."""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient
from kubernetes.client.rest import ApiException
from operator_harness import ROOT, OperatorProcess, TaskJobs, poll
from outcomes import pod_outcomes

from taskjobs.core.models import TaskJobMeta, TaskSpec
from taskjobs.core.observe import attempt_fact
from taskjobs.core.render import render_job
from taskjobs.core.resolve import resolve_task

pytestmark = pytest.mark.cluster

DIAMOND = ROOT / "examples" / "diamond.yaml"


def taskjob(name: str, tasks: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    spec.setdefault("defaults", {"image": "busybox:1.36", "retry": {"backoff": {"delaySeconds": 1}}})
    return {
        "apiVersion": "taskjob.dev/v1alpha1",
        "kind": "TaskJob",
        "metadata": {"name": name},
        "spec": {**spec, "tasks": tasks},
    }


def task(name: str, deps: list[str] | None = None, **fields: Any) -> dict[str, Any]:
    return {"name": name, **({"dependsOn": deps} if deps else {}), **fields}


def attempts_by_task(tj: TaskJobs, name: str) -> Counter[tuple[str, str]]:
    return Counter(
        (j.metadata.labels["taskjob.dev/task"], j.metadata.labels["taskjob.dev/attempt"]) for j in tj.jobs(name)
    )


def test_diamond_succeeds_with_jobs_in_dependency_order(operator: OperatorProcess, taskjobs: TaskJobs) -> None:
    taskjobs.create(DIAMOND)
    status = taskjobs.wait_phase("diamond", "Succeeded")
    assert status["progress"] == "4/4"
    assert len(status["tasks"]) == 4
    assert all(s["phase"] == "Succeeded" for s in status["tasks"].values())
    manifest = yaml.safe_load(DIAMOND.read_text())
    deps = {t["name"]: t.get("dependsOn", []) for t in manifest["spec"]["tasks"]}
    jobs = {j.metadata.labels["taskjob.dev/task"]: j for j in taskjobs.jobs("diamond")}
    assert set(jobs) == set(deps)
    for name, ds in deps.items():
        job = jobs[name]
        assert job.spec.backoff_limit == 0
        assert job.metadata.owner_references[0].kind == "TaskJob"
        for d in ds:  # a dependent's Job is created only after its dependency's pod succeeded
            assert taskjobs.ended(jobs[d]) <= job.metadata.creation_timestamp, (d, name)
    reasons = {e.reason for e in taskjobs.events("diamond")}
    assert {"TaskStarted", "TaskSucceeded", "Succeeded"} <= reasons


def test_flaky_task_succeeds_on_third_attempt_after_backoff(operator: OperatorProcess, taskjobs: TaskJobs) -> None:
    flaky = task(
        "flaky",
        retry={"limit": 3, "backoff": {"delaySeconds": 2, "factor": 2}},
        podTemplate={"metadata": {"annotations": pod_outcomes({1: 1, 2: 1, 3: 0})}},
    )
    taskjobs.create(taskjob("flaky", [flaky]))
    status = taskjobs.wait_phase("flaky", "Succeeded")
    assert status["tasks"]["flaky"]["attempts"] == 3
    jobs = taskjobs.jobs("flaky")
    assert [j.metadata.labels["taskjob.dev/attempt"] for j in jobs] == ["1", "2", "3"]
    # The wait after attempt n fails is delaySeconds·factor^(n-1): 2 s, then 4 s.
    for failed, retry, wait in ((jobs[0], jobs[1], 2), (jobs[1], jobs[2], 4)):
        finished = next(c.last_transition_time for c in failed.status.conditions if c.type == "Failed")
        gap = (retry.metadata.creation_timestamp - finished).total_seconds()
        assert wait - 1 <= gap <= wait + 3, f"gap {gap}s, expected about {wait}s"
    assert any(e.reason == "TaskRetrying" for e in taskjobs.events("flaky"))


def test_task_failing_for_good_fails_fast_and_skips_dependents(operator: OperatorProcess, taskjobs: TaskJobs) -> None:
    bad = task("bad", retry={"limit": 1}, podTemplate={"metadata": {"annotations": pod_outcomes(7)}})
    taskjobs.create(taskjob("doomed", [bad, task("after", ["bad"]), task("last", ["after"])]))
    status = taskjobs.wait_phase("doomed", "Failed")
    assert status["tasks"]["bad"]["phase"] == "Failed"
    assert status["tasks"]["bad"]["attempts"] == 2  # limit 1: at most limit+1 attempts
    assert status["tasks"]["bad"]["exitCode"] == 7
    assert status["tasks"]["after"]["phase"] == "Skipped"
    assert status["tasks"]["last"]["phase"] == "Skipped"
    assert "bad" in status["message"]
    assert sorted(attempts_by_task(taskjobs, "doomed")) == [("bad", "1"), ("bad", "2")]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["Failed"] == "True"
    # The Job controller records the exit code in the Job too (render's FailJob rule), so a pod gone
    # for good, or never seen by the operator, still leaves the code that decides on a retry.
    job = ApiClient().sanitize_for_serialization(taskjobs.jobs("doomed")[0])
    fact = attempt_fact(job, [])
    assert fact is not None and (fact.phase, fact.exit_code) == ("Failed", 7)


def test_killed_operator_resumes_without_duplicate_or_lost_attempts(
    operator: OperatorProcess, taskjobs: TaskJobs
) -> None:
    slow = {"metadata": {"annotations": pod_outcomes(0, duration_ms=1500)}}
    flaky = {"metadata": {"annotations": pod_outcomes({1: 1, 2: 0}, duration_ms=1500)}}
    tasks = [task("a", podTemplate=slow)]
    tasks += [task(f"m{i}", ["a"], podTemplate=flaky if i % 2 else slow) for i in range(4)]
    tasks += [task("z", [f"m{i}" for i in range(4)], podTemplate=slow)]
    taskjobs.create(taskjob("crashy", tasks))
    for _ in range(3):  # kill while work is in flight, then restart
        poll(lambda: taskjobs.status("crashy").get("running"), 60, "a running task")
        operator.kill()
        operator.start()
    status = taskjobs.wait_phase("crashy", ("Succeeded", "Failed"), timeout=120)
    assert status["phase"] == "Succeeded", status.get("message")
    per_attempt = attempts_by_task(taskjobs, "crashy")
    assert max(per_attempt.values()) == 1, f"a (task, attempt) has two Jobs: {per_attempt}"
    for i in range(4):  # flaky ones needed exactly two attempts; steady ones exactly one
        assert status["tasks"][f"m{i}"]["attempts"] == (2 if i % 2 else 1)
    assert status["tasks"]["a"]["attempts"] == 1 and status["tasks"]["z"]["attempts"] == 1


def test_cyclic_taskjob_is_invalid_with_the_cycle_named(operator: OperatorProcess, taskjobs: TaskJobs) -> None:
    taskjobs.create(taskjob("loop", [task("a", ["c"]), task("b", ["a"]), task("c", ["b"])]))
    status = taskjobs.wait_phase("loop", "Invalid", timeout=30)
    assert "a → b → c → a" in status["message"]
    assert "spec.tasks[0].dependsOn" in status["message"]
    assert taskjobs.jobs("loop") == []
    poll(
        lambda: any(e.reason == "Invalid" and e.type == "Warning" for e in taskjobs.events("loop")),
        15,
        "a Warning event",
    )


def test_deleting_a_taskjob_deletes_its_jobs(operator: OperatorProcess, taskjobs: TaskJobs) -> None:
    long = {"metadata": {"annotations": pod_outcomes(0, duration_ms=60000)}}
    taskjobs.create(taskjob("gone", [task("a", podTemplate=long), task("b", podTemplate=long)]))
    poll(lambda: len(taskjobs.jobs("gone")) == 2, 30, "two Jobs")
    taskjobs.delete("gone")  # no finalizer: deletion does not wait for the operator
    poll(lambda: not taskjobs.jobs("gone"), 60, "the garbage collector to delete the Jobs")


def test_suspend_holds_and_resume_continues(operator: OperatorProcess, taskjobs: TaskJobs) -> None:
    taskjobs.create(taskjob("paused", [task("a"), task("b", ["a"])], suspend=True))
    status = taskjobs.wait_phase("paused", "Suspended", timeout=30)
    assert taskjobs.jobs("paused") == []
    assert {c["type"]: c["status"] for c in status["conditions"]}["Suspended"] == "True"
    taskjobs.patch_spec("paused", {"suspend": False})
    status = taskjobs.wait_phase("paused", "Succeeded")
    assert status["progress"] == "2/2"


def test_pod_that_cannot_start_shows_why_then_fails_after_startup_timeout(
    operator: OperatorProcess, taskjobs: TaskJobs
) -> None:
    stuck = task(
        "stuck",
        startupTimeoutSeconds=5,
        retry={"limit": 0},
        podTemplate={"metadata": {"annotations": pod_outcomes(0, never_start="ImagePullBackOff")}},
    )
    taskjobs.create(taskjob("stuck", [stuck]))
    poll(
        lambda: taskjobs.status("stuck").get("tasks", {}).get("stuck", {}).get("reason") == "ImagePullBackOff",
        30,
        "the waiting reason in the task status",
    )
    status = taskjobs.wait_phase("stuck", "Failed", timeout=60)
    assert status["tasks"]["stuck"]["reason"] == "StartupTimeout"


def test_spec_tasks_cannot_change_after_creation(operator: OperatorProcess, taskjobs: TaskJobs) -> None:
    taskjobs.create(taskjob("fixed", [task("a")], suspend=True))
    body = taskjobs.get("fixed")
    changed = copy.deepcopy(body["spec"]["tasks"])
    changed.append({"name": "b"})
    with pytest.raises(ApiException) as err:
        taskjobs.patch_spec("fixed", {"tasks": changed})
    assert err.value.status == 422
    assert "spec.tasks cannot change after creation" in str(err.value.body)
    taskjobs.patch_spec("fixed", {"parallelism": 3})  # other fields may change


def test_metrics_count_what_happened(operator: OperatorProcess, taskjobs: TaskJobs) -> None:
    flaky = task("flaky", podTemplate={"metadata": {"annotations": pod_outcomes({1: 1, 2: 0})}})
    taskjobs.create(taskjob("counted", [task("a"), flaky, task("b", ["a", "flaky"])]))
    taskjobs.wait_phase("counted", "Succeeded")

    def sample(name: str, labels: str = "") -> float:
        line = next(ln for ln in operator.metrics().splitlines() if ln.startswith(name + labels + " "))
        return float(line.split()[-1])

    poll(lambda: sample("taskjob_tasks_succeeded_total") == 3, 10, "3 succeeded tasks counted")
    assert sample("taskjob_tasks_started_total") == 4  # a, flaky twice, b
    assert sample("taskjob_tasks_retried_total") == 1
    assert sample("taskjob_tasks_failed_total") == 0
    assert sample("taskjob_taskjobs", '{phase="Succeeded"}') == 1
    assert sample("taskjob_scheduling_latency_seconds_count") == 1  # b, after its last dependency
    assert sample("taskjob_task_duration_seconds_count") == 3
    assert sample("taskjob_reconcile_duration_seconds_count") >= 4


def test_ttl_deletes_a_finished_taskjob_and_what_it_owns(operator: OperatorProcess, taskjobs: TaskJobs) -> None:
    taskjobs.create(taskjob("brief", [task("a")], ttlSecondsAfterFinished=2))
    taskjobs.wait_phase("brief", "Succeeded")

    def gone() -> bool:
        try:
            taskjobs.get("brief")
        except ApiException as e:
            return e.status == 404
        return False

    poll(gone, 30, "the TaskJob to be deleted after its TTL")
    poll(lambda: not taskjobs.jobs("brief"), 60, "its Jobs to be garbage collected")


def test_active_deadline_fails_the_taskjob_and_stops_running_jobs(
    operator: OperatorProcess, taskjobs: TaskJobs
) -> None:
    long = {"metadata": {"annotations": pod_outcomes(0, duration_ms=120000)}}
    taskjobs.create(taskjob("late", [task("slow", podTemplate=long), task("after", ["slow"])],
                           activeDeadlineSeconds=4))
    status = taskjobs.wait_phase("late", "Failed", timeout=60)
    assert "activeDeadlineSeconds" in status["message"]
    assert status["tasks"]["slow"]["reason"] == "DeadlineExceeded"
    assert status["tasks"]["after"]["phase"] == "Skipped"

    def job_failed() -> bool:
        job = taskjobs.jobs("late")[0]
        return any(c.type == "Failed" and c.status == "True" for c in job.status.conditions or [])

    poll(job_failed, 30, "the running Job to be stopped (Failed) rather than left running")


def test_a_succeeded_pod_starts_its_dependents_without_the_jobs_complete(
    kubeconfig: str, namespace: str, taskjob_crd: None, taskjobs: TaskJobs, tmp_path: Path
) -> None:
    # The Job controller marks a Job Complete a batch period (1 s) after its pod: on a real cluster every
    # step of a DAG would wait for it. Here `a`'s Job is managed by another controller (spec.managedBy),
    # so no Complete ever comes: only its pod's success can start `b`.
    created = taskjobs.create(taskjob("early", [task("a"), task("b", ["a"])]))
    meta = TaskJobMeta(name="early", namespace=namespace, uid=created["metadata"]["uid"])
    rendered = render_job(meta, resolve_task(TaskSpec(name="a", image="busybox:1.36"), None), 1, {})
    rendered["spec"]["managedBy"] = "taskjob.dev/test-nobody"
    job = taskjobs.batch.create_namespaced_job(namespace, rendered)
    template = job.spec.template
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "early-a-1-by-hand",
            "labels": {**template.metadata.labels, "batch.kubernetes.io/job-name": job.metadata.name,
                       "job-name": job.metadata.name},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job.metadata.name,
                                 "uid": job.metadata.uid, "controller": True}],
        },
        "spec": taskjobs.batch.api_client.sanitize_for_serialization(template.spec),
    }
    taskjobs.core.create_namespaced_pod(namespace, pod)
    poll(lambda: taskjobs.core.read_namespaced_pod("early-a-1-by-hand", namespace).status.phase == "Succeeded",
         60, "kwok to run a's pod to success")

    op = OperatorProcess(kubeconfig, [namespace], tmp_path)
    try:
        op.start()
        status = taskjobs.wait_phase("early", ("Succeeded", "Failed"))
    finally:
        op.stop()
    assert "Traceback" not in op.logs()
    assert status["phase"] == "Succeeded", status.get("message")
    assert {n: s["phase"] for n, s in status["tasks"].items()} == {"a": "Succeeded", "b": "Succeeded"}
    assert attempts_by_task(taskjobs, "early") == Counter({("a", "1"): 1, ("b", "1"): 1})
    still = taskjobs.batch.read_namespaced_job(job.metadata.name, namespace)
    assert not [c.type for c in still.status.conditions or ()], "nobody was to finish a's Job"
