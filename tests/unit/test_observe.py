"""attempt_fact and friends over Job and pod objects shaped as a v1.35 API server returns them."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from taskjobs.core.models import TaskJobMeta, TaskSpec
from taskjobs.core.observe import attempt_fact, job_key, parse_time, pod_job_name
from taskjobs.core.render import render_job, stop_job_patch
from taskjobs.core.resolve import resolve_task

JOB_NAME = "etl-transform-2"
JOB_UID = "0b6d5f0e-2c3a-4d43-9a53-6f1f2c7b8e11"
LABELS = {"taskjob.dev/taskjob": "etl", "taskjob.dev/task": "transform", "taskjob.dev/attempt": "2"}


def at(second: int) -> datetime:
    return datetime(2025, 3, 1, 10, 0, second, tzinfo=UTC)


def ts(second: int) -> str:
    return f"2025-03-01T10:00:{second:02d}Z"


def job(*conditions: dict[str, Any], annotations: dict[str, str] | None = None, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": JOB_NAME,
            "namespace": "data",
            "uid": JOB_UID,
            "creationTimestamp": ts(0),
            "generation": 1,
            "labels": dict(LABELS),
            "annotations": {"taskjob.dev/run-id": "u-transform", **(annotations or {})},
            "ownerReferences": [
                {
                    "apiVersion": "taskjob.dev/v1alpha1",
                    "kind": "TaskJob",
                    "name": "etl",
                    "uid": "u",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "backoffLimit": 0,
            "completionMode": "NonIndexed",
            "completions": 1,
            "parallelism": 1,
            "podReplacementPolicy": "Failed",
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": JOB_UID}},
            "suspend": False,
            "template": {"metadata": {"labels": dict(LABELS)}, "spec": {"containers": [{"name": "task"}]}},
        },
        "status": {
            "startTime": ts(1),
            "terminating": 0,
            "uncountedTerminatedPods": {},
            **({"conditions": list(conditions)} if conditions else {}),
            **status,
        },
    }


def cond(type_: str, reason: str, message: str, second: int) -> dict[str, Any]:
    return {
        "type": type_,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastProbeTime": ts(second),
        "lastTransitionTime": ts(second),
    }


def complete(second: int = 20) -> list[dict[str, Any]]:
    msg = "Reached expected number of succeeded pods"
    return [
        cond("SuccessCriteriaMet", "CompletionsReached", msg, second),
        cond("Complete", "CompletionsReached", msg, second),
    ]


def failed(reason: str, message: str, second: int = 20) -> list[dict[str, Any]]:
    return [cond("FailureTarget", reason, message, second - 1), cond("Failed", reason, message, second)]


BACKOFF = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE = ("DeadlineExceeded", "Job was active longer than specified deadline")


def pod(
    state: dict[str, Any],
    phase: str,
    *,
    name: str = f"{JOB_NAME}-x7k2p",
    created: int = 1,
    job_name: str = JOB_NAME,
    conditions: list[dict[str, Any]] | None = None,
    init: list[dict[str, Any]] | None = None,
    containers: int = 1,
) -> dict[str, Any]:
    scheduled = {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": ts(created)}
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions if conditions is not None else [scheduled],
        "hostIP": "10.0.0.4",
        "qosClass": "BestEffort",
        "startTime": ts(created),
    }
    if state:
        status["containerStatuses"] = [
            {
                "name": "task",
                "image": "docker.io/library/busybox:1.36",
                "imageID": "",
                "ready": "running" in state,
                "restartCount": 0,
                "started": "running" in state,
                "state": state,
                "lastState": {},
            }
        ]
    if init is not None:
        status["initContainerStatuses"] = init
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "data",
            "creationTimestamp": ts(created),
            "finalizers": ["batch.kubernetes.io/job-tracking"],
            "labels": {
                **LABELS,
                "batch.kubernetes.io/controller-uid": JOB_UID,
                "batch.kubernetes.io/job-name": job_name,
                "controller-uid": JOB_UID,
                "job-name": job_name,
            },
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": job_name,
                    "uid": JOB_UID,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "containers": [{"name": "task", "image": "busybox:1.36"}]
            + [{"name": f"side{i}", "image": "busybox:1.36"} for i in range(1, containers)],
            "restartPolicy": "Never",
        },
        "status": status,
    }


def running(started: int = 5) -> dict[str, Any]:
    return {"running": {"startedAt": ts(started)}}


def terminated(
    code: int, reason: str, message: str | None = None, started: int = 5, finished: int = 18
) -> dict[str, Any]:
    t: dict[str, Any] = {
        "exitCode": code,
        "reason": reason,
        "startedAt": ts(started),
        "finishedAt": ts(finished),
        "containerID": "containerd://3f1e",
    }
    if message is not None:
        t["message"] = message
    return {"terminated": t}


def waiting(reason: str, message: str | None = None) -> dict[str, Any]:
    return {"waiting": {"reason": reason, **({"message": message} if message else {})}}


# ---------------------------------------------------------------- identity


def test_jobs_without_our_labels_are_not_attempts() -> None:
    stranger = job()
    stranger["metadata"]["labels"] = {"app": "backup"}
    assert attempt_fact(stranger, []) is None
    assert job_key(stranger) is None
    bad_attempt = job()
    bad_attempt["metadata"]["labels"]["taskjob.dev/attempt"] = "first"
    assert attempt_fact(bad_attempt, []) is None


def test_job_key_names_the_owning_taskjob() -> None:
    assert job_key(job()) == ("data", "etl")


def test_pod_job_name_reads_labels_then_owner() -> None:
    p = pod(running(), "Running")
    assert pod_job_name(p) == JOB_NAME
    del p["metadata"]["labels"]["batch.kubernetes.io/job-name"]
    p["metadata"]["labels"]["job-name"] = "legacy"
    assert pod_job_name(p) == "legacy"
    p["metadata"]["labels"] = {}
    assert pod_job_name(p) == JOB_NAME
    p["metadata"]["ownerReferences"] = []
    assert pod_job_name(p) is None


def test_rendered_job_and_its_pod_are_recognised() -> None:
    meta = TaskJobMeta(name="etl", namespace="data", uid="u")
    rendered = render_job(meta, resolve_task(TaskSpec(name="transform", image="busybox"), None), 2, {})
    p = pod(running(), "Running")
    p["metadata"]["labels"] = rendered["spec"]["template"]["metadata"]["labels"]
    fact = attempt_fact(rendered, [p])
    assert fact is not None
    assert (fact.task, fact.attempt, fact.job_name, fact.phase) == ("transform", 2, JOB_NAME, "Running")
    assert job_key(rendered) == ("data", "etl")


# ---------------------------------------------------------------- phases


def test_no_pod_yet_is_pending() -> None:
    fact = attempt_fact(job(active=1), [])
    assert fact is not None
    assert (fact.phase, fact.reason, fact.message) == ("Pending", None, None)
    assert fact.created == at(0)
    assert fact.start_time == at(1)  # the Job's startTime until a container starts


def test_running_container_is_running_with_its_start_time() -> None:
    fact = attempt_fact(job(active=1, ready=1), [pod(running(started=6), "Running")])
    assert fact is not None
    assert (fact.phase, fact.start_time, fact.finish_time, fact.stopping) == ("Running", at(6), None, False)


def test_complete_job_succeeds_with_the_termination_message_as_output() -> None:
    p = pod(terminated(0, "Completed", "hello"), "Succeeded")
    fact = attempt_fact(job(*complete(20), succeeded=1, completionTime=ts(20)), [p])
    assert fact is not None
    assert (fact.phase, fact.exit_code, fact.output) == ("Succeeded", 0, "hello")
    assert (fact.reason, fact.message) == (None, None)
    assert (fact.start_time, fact.finish_time) == (at(5), at(18))  # the pod's end, not the Job's completionTime


def test_a_complete_job_whose_pod_is_gone_ends_at_its_completion_time() -> None:
    # The pod was garbage-collected (or not seen yet): the Job's completionTime is all that is known.
    fact = attempt_fact(job(*complete(20), succeeded=1, completionTime=ts(20)), [])
    assert fact is not None and (fact.phase, fact.finish_time) == ("Succeeded", at(20))


def test_succeeded_task_that_wrote_nothing_has_empty_output() -> None:
    fact = attempt_fact(job(*complete(), succeeded=1), [pod(terminated(0, "Completed"), "Succeeded")])
    assert fact is not None and fact.output == ""


def test_failure_target_alone_means_still_finishing_not_failed() -> None:
    p = pod(terminated(1, "Error", started=5, finished=9), "Failed")
    fact = attempt_fact(job(cond("FailureTarget", *BACKOFF, 10), failed=1, terminating=0), [p])
    assert fact is not None
    assert fact.phase == "Running"
    assert fact.finish_time is None


def test_success_criteria_met_with_the_pod_in_sight_is_success() -> None:
    p = pod(terminated(0, "Completed", "ok"), "Succeeded")
    fact = attempt_fact(job(complete()[0], succeeded=1), [p])
    assert fact is not None and (fact.phase, fact.output) == ("Succeeded", "ok")


# ---------------------------------------------------------------- the pod's verdict, before the Job's


def test_a_succeeded_pod_ends_the_attempt_before_the_job_is_complete() -> None:
    # The Job controller marks the Job Complete a batch period (1 s) after the pod: a dependent starts now.
    p = pod(terminated(0, "Completed", "42", started=5, finished=18), "Succeeded")
    fact = attempt_fact(job(active=1), [p])
    assert fact is not None
    assert (fact.phase, fact.exit_code, fact.output, fact.awaiting_pod) == ("Succeeded", 0, "42", False)
    assert (fact.start_time, fact.finish_time) == (at(5), at(18))


def test_the_pods_end_seen_within_its_second_is_the_finish_time() -> None:
    p = pod(terminated(0, "Completed", finished=18), "Succeeded")
    seen = at(18).replace(microsecond=350_000)
    fact = attempt_fact(job(active=1), [p], seen_finished=seen)
    assert fact is not None and fact.finish_time == seen


def test_the_pods_verdict_and_the_jobs_complete_agree() -> None:
    # The same fact before and after the Job's Complete arrives: nothing flips, nothing is planned twice.
    p = pod(terminated(0, "Completed", "hello", finished=18), "Succeeded")
    before = attempt_fact(job(active=1), [p])
    after = attempt_fact(job(*complete(20), succeeded=1, completionTime=ts(20)), [p])
    assert before is not None and after is not None
    assert (before.phase, before.output, before.exit_code) == (after.phase, after.output, after.exit_code)


def test_an_attempt_ends_when_its_pod_did_before_and_after_the_jobs_complete() -> None:
    # The live operator keeps the time it saw first; one restarted after the Complete must compute the same,
    # whether it saw the end live (within its second) or not at all (a restart lists it).
    p = pod(terminated(0, "Completed", "hello", finished=18), "Succeeded")
    done = job(*complete(20), succeeded=1, completionTime=ts(20))
    for seen in (None, at(18).replace(microsecond=350_000)):
        before = attempt_fact(job(active=1), [p], seen_finished=seen)
        after = attempt_fact(done, [p], seen_finished=seen)
        assert before is not None and after is not None
        assert before.finish_time == after.finish_time == (seen or at(18))
        assert after.awaiting_pod is False


def test_the_pod_that_decided_a_complete_job_gives_its_end_output_and_exit_code() -> None:
    # A disruption left a newer pod beside the one that succeeded: the deciding pod speaks for the attempt.
    decided = pod(terminated(0, "Completed", "42", started=5, finished=15), "Succeeded", name="a", created=1)
    newer = pod(terminated(0, "Completed", "other", started=12, finished=17), "Running", name="b", created=10)
    newer["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] = 1
    fact = attempt_fact(job(*complete(20), succeeded=1, completionTime=ts(20)), [newer, decided])
    assert fact is not None
    assert (fact.start_time, fact.finish_time, fact.output, fact.exit_code) == (at(5), at(15), "42", 0)


def test_every_container_exited_0_is_success_before_the_pod_is_succeeded() -> None:
    # The kubelet reports the exits at once and the pod's phase after tearing the pod down, ~1 s later.
    p = pod(terminated(0, "Completed", "42", finished=18), "Running")
    fact = attempt_fact(job(active=1), [p])
    assert fact is not None
    assert (fact.phase, fact.output, fact.finish_time) == ("Succeeded", "42", at(18))


def test_a_container_still_running_beside_the_task_holds_the_verdict() -> None:
    p = pod(terminated(0, "Completed", "42"), "Running", containers=2)  # side1 has no status yet
    fact = attempt_fact(job(active=1), [p])
    assert fact is not None and fact.phase == "Running"
    p["status"]["containerStatuses"].append({"name": "side1", "state": terminated(0, "Completed", finished=19)})
    fact = attempt_fact(job(active=1), [p])
    assert fact is not None and (fact.phase, fact.output) == ("Succeeded", "42")


def test_a_container_that_exited_non_zero_leaves_the_verdict_to_the_job() -> None:
    p = pod(terminated(3, "Error", "bad row"), "Running")
    fact = attempt_fact(job(active=1), [p])
    assert fact is not None and fact.phase == "Running"


def test_a_failed_pod_alone_does_not_fail_the_attempt() -> None:
    # A disruption's replacement pod may still come (podFailurePolicy): failure stays the Job's verdict.
    fact = attempt_fact(job(active=0, failed=1), [pod(terminated(1, "Error"), "Failed")])
    assert fact is not None and fact.phase == "Running"


def test_a_stopped_jobs_succeeded_pod_waits_for_the_jobs_verdict() -> None:
    fact = attempt_fact(stopped_job(active=1), [pod(terminated(0, "Completed"), "Succeeded")])
    assert fact is not None and (fact.phase, fact.stopping) == ("Running", True)


def test_a_pod_that_finished_after_the_jobs_deadline_waits_for_the_jobs_verdict() -> None:
    late = job(active=1)
    late["spec"]["activeDeadlineSeconds"] = 10  # startTime 10:00:01, so the deadline is 10:00:11
    fact = attempt_fact(late, [pod(terminated(0, "Completed", finished=18), "Succeeded")])
    assert fact is not None and fact.phase == "Running"
    fact = attempt_fact(late, [pod(terminated(0, "Completed", finished=11), "Succeeded")])
    assert fact is not None and fact.phase == "Succeeded"


def test_a_pod_that_succeeded_in_time_stays_succeeded_if_the_job_is_failed_late() -> None:
    # The controller applied the deadline in the sync that would have counted the pod: the task's own
    # verdict, success within its time, is the one the operator already acted on.
    timed = job(*failed(*DEADLINE), failed=0)
    timed["spec"]["activeDeadlineSeconds"] = 10
    fact = attempt_fact(timed, [pod(terminated(0, "Completed", "ok", finished=9), "Succeeded")])
    assert fact is not None and (fact.phase, fact.output) == ("Succeeded", "ok")


def test_failed_job_reports_the_container_exit_code_reason_and_message() -> None:
    p = pod(terminated(2, "Error", "bad input: line 3"), "Failed")
    fact = attempt_fact(job(*failed(*BACKOFF, second=20), failed=1), [p])
    assert fact is not None
    assert (fact.phase, fact.exit_code, fact.reason, fact.message) == ("Failed", 2, "Error", "bad input: line 3")
    assert fact.finish_time == at(20)  # no completionTime on failure: the Failed transition
    assert fact.output is None


def test_failed_job_whose_pod_is_gone_says_the_pod_failed() -> None:
    fact = attempt_fact(job(*failed(*BACKOFF), failed=1), [])
    assert fact is not None
    assert (fact.phase, fact.reason, fact.exit_code) == ("Failed", "PodFailed", None)
    assert fact.message is not None and "backoff limit" not in fact.message


def test_oom_killed_container_says_so() -> None:
    fact = attempt_fact(job(*failed(*BACKOFF), failed=1), [pod(terminated(137, "OOMKilled"), "Failed")])
    assert fact is not None
    assert (fact.phase, fact.exit_code, fact.reason, fact.message) == ("Failed", 137, "OOMKilled", None)


def test_timed_out_job_reports_the_deadline_not_the_kill_signal() -> None:
    killed = pod(terminated(137, "Error"), "Failed")
    for pods in ([], [killed]):
        fact = attempt_fact(job(*failed(*DEADLINE), failed=1), pods)
        assert fact is not None
        assert (fact.phase, fact.reason, fact.message) == ("Failed", *DEADLINE)
        assert fact.exit_code is None


def test_failed_init_container_is_named() -> None:
    init = [{"name": "fetch", "state": terminated(1, "Error", "403 Forbidden")}]
    p = pod(waiting("PodInitializing"), "Failed", init=init)
    fact = attempt_fact(job(*failed(*BACKOFF), failed=1), [p])
    assert fact is not None
    assert (fact.phase, fact.reason, fact.message) == ("Failed", "Error", "init container fetch failed: 403 Forbidden")


# ---------------------------------------------------------------- stopping


def stopped_job(*conditions: dict[str, Any], **status: Any) -> dict[str, Any]:
    j = job(*conditions, **status)
    j["metadata"]["annotations"].update(
        stop_job_patch("StartupTimeout", "the pod did not start within 300s")["metadata"]["annotations"]
    )
    j["spec"]["activeDeadlineSeconds"] = 1
    return j


def test_a_job_being_stopped_is_flagged_until_it_fails() -> None:
    fact = attempt_fact(stopped_job(active=1), [pod(waiting("ImagePullBackOff", "Back-off"), "Pending")])
    assert fact is not None
    assert (fact.phase, fact.stopping) == ("Pending", True)


def test_a_stopped_job_fails_with_the_operators_reason() -> None:
    fact = attempt_fact(stopped_job(*failed(*DEADLINE), failed=1), [])
    assert fact is not None
    assert (fact.phase, fact.reason, fact.message) == ("Failed", "StartupTimeout", "the pod did not start within 300s")
    assert fact.stopping is True


# ---------------------------------------------------------------- why a pod has not started


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("ImagePullBackOff", 'Back-off pulling image "registry.example/nope:1"'),
        ("ErrImagePull", 'failed to pull and unpack image "registry.example/nope:1": not found'),
        ("CreateContainerConfigError", 'secret "db-creds" not found'),
        ("InvalidImageName", 'Failed to apply default image tag "Bad Image": invalid reference format'),
        ("ContainerCreating", None),
    ],
)
def test_pending_pod_shows_why_its_container_is_waiting(reason: str, message: str | None) -> None:
    fact = attempt_fact(job(active=1), [pod(waiting(reason, message), "Pending")])
    assert fact is not None
    assert (fact.phase, fact.reason, fact.message) == ("Pending", reason, message)


def test_unschedulable_pod_shows_the_scheduler_message() -> None:
    msg = "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims."
    unscheduled = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": msg,
        "lastProbeTime": None,
        "lastTransitionTime": ts(2),
    }
    p = pod({}, "Pending", conditions=[unscheduled])
    del p["status"]["hostIP"]
    fact = attempt_fact(job(active=1), [p])
    assert fact is not None
    assert (fact.phase, fact.reason, fact.message) == ("Pending", "Unschedulable", msg)


def test_init_container_pull_error_beats_the_task_containers_pod_initializing() -> None:
    init = [{"name": "fetch", "state": waiting("ImagePullBackOff", 'Back-off pulling image "nope"')}]
    fact = attempt_fact(job(active=1), [pod(waiting("PodInitializing"), "Pending", init=init)])
    assert fact is not None
    assert (fact.reason, fact.message) == ("ImagePullBackOff", 'init container fetch: Back-off pulling image "nope"')


# ---------------------------------------------------------------- replaced pods


def evicted(created: int = 1) -> dict[str, Any]:
    disruption = {
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "EvictionByEvictionAPI",
        "message": "Eviction API: evicting",
        "lastProbeTime": None,
        "lastTransitionTime": ts(8),
    }
    return pod(
        terminated(137, "Error", started=3, finished=9),
        "Failed",
        name=f"{JOB_NAME}-old11",
        created=created,
        conditions=[disruption],
    )


def test_the_newest_pod_speaks_after_a_disruption() -> None:
    replacement = pod(waiting("ContainerCreating"), "Pending", name=f"{JOB_NAME}-new22", created=10)
    fact = attempt_fact(job(active=1), [replacement, evicted()])
    assert fact is not None
    assert (fact.phase, fact.reason) == ("Pending", "ContainerCreating")
    replacement = pod(running(started=12), "Running", name=f"{JOB_NAME}-new22", created=10)
    fact = attempt_fact(job(active=1), [evicted(), replacement])
    assert fact is not None
    assert (fact.phase, fact.start_time) == ("Running", at(12))


def test_output_comes_from_the_pod_that_succeeded() -> None:
    done = pod(terminated(0, "Completed", "42", started=12, finished=15), "Succeeded", name="b", created=10)
    fact = attempt_fact(job(*complete(), succeeded=1), [done, evicted(created=10)])
    assert fact is not None and fact.output == "42"


def test_pods_of_other_jobs_are_ignored() -> None:
    other = pod(terminated(0, "Completed", "not mine"), "Succeeded", job_name="etl-transform-1", created=30)
    fact = attempt_fact(job(active=1), [other, pod(running(), "Running")])
    assert fact is not None and fact.phase == "Running"


# ---------------------------------------------------------------- output size


def test_output_at_the_termination_message_cap_is_reported_not_silently_truncated() -> None:
    full = "x" * 4096
    fact = attempt_fact(job(*complete(), succeeded=1), [pod(terminated(0, "Completed", full), "Succeeded")])
    assert fact is not None
    assert fact.output == full
    assert fact.reason == "OutputTruncated"
    assert fact.message is not None and "4096-byte" in fact.message


def test_output_below_the_cap_is_not_flagged() -> None:
    fact = attempt_fact(job(*complete(), succeeded=1), [pod(terminated(0, "Completed", "é" * 2047), "Succeeded")])
    assert fact is not None and fact.reason is None  # 4094 bytes


def test_cap_shrinks_when_many_containers_share_the_pods_budget() -> None:
    p = pod(terminated(0, "Completed", "x" * 3072), "Succeeded", containers=4)
    fact = attempt_fact(job(*complete(), succeeded=1), [p])
    assert fact is not None and fact.reason == "OutputTruncated"
    assert fact.message is not None and "3072-byte" in fact.message


# ---------------------------------------------------------------- timestamps


def test_timestamps_parse_to_aware_datetimes() -> None:
    assert parse_time("2025-03-01T10:00:05Z") == at(5)
    assert parse_time("2025-03-01T10:00:05.123456Z") == at(5).replace(microsecond=123456)
    assert parse_time("2025-03-01T11:00:05+01:00") == at(5)
    assert parse_time("2025-03-01T10:00:05") == at(5)
    assert parse_time("yesterday") is None
    assert parse_time(None) is None


def test_inputs_are_not_modified() -> None:
    j, p = job(*complete(), succeeded=1), pod(terminated(0, "Completed", "hi"), "Succeeded")
    before = copy.deepcopy((j, p))
    attempt_fact(j, [p])
    assert (j, p) == before


def test_failed_job_whose_pod_still_shows_running_awaits_the_pods_exit_code() -> None:
    # The pod watch lags the Job watch: deciding now would retry a non-retriable exit code.
    stale = pod(running(), "Running")
    fact = attempt_fact(job(*failed(*BACKOFF), failed=1), [stale])
    assert fact is not None and fact.awaiting_pod and fact.exit_code is None
    fresh = pod(terminated(2, "Error", "bad input"), "Failed")
    fact = attempt_fact(job(*failed(*BACKOFF), failed=1), [fresh])
    assert fact is not None and (fact.phase, fact.exit_code, fact.awaiting_pod) == ("Failed", 2, False)


def test_failed_job_whose_pod_was_never_seen_awaits_it() -> None:
    # The pod LIST failed at startup, or the pod watch is away: the pod has the exit code.
    fact = attempt_fact(job(*failed(*BACKOFF), failed=1), [])
    assert fact is not None and fact.awaiting_pod and fact.finish_time == at(20)


def test_complete_job_whose_pod_still_shows_running_awaits_the_output() -> None:
    stale = pod(running(), "Running")
    fact = attempt_fact(job(*complete(), succeeded=1), [stale])
    assert fact is not None and fact.awaiting_pod and fact.output is None
    fresh = pod(terminated(0, "Completed", "42"), "Succeeded")
    fact = attempt_fact(job(*complete(), succeeded=1), [fresh])
    assert fact is not None and (fact.phase, fact.output, fact.awaiting_pod) == ("Succeeded", "42", False)


def test_complete_job_whose_pod_was_never_seen_awaits_the_output() -> None:
    fact = attempt_fact(job(*complete(), succeeded=1), [])
    assert fact is not None and fact.awaiting_pod and fact.phase == "Succeeded"


RULED = (
    "PodFailurePolicy",
    f"Container task for pod data/{JOB_NAME}-x7k2p failed with exit code 3 matching FailJob rule at index 1",
)


def test_exit_code_comes_from_the_jobs_failure_policy_message_when_the_pod_is_not_in_sight() -> None:
    # render_job's FailJob rule makes the Job record the task's exit code, so a pod deleted for good
    # (or never seen) still leaves the code that decides whether the task is retried.
    fact = attempt_fact(job(*failed(*RULED), failed=1), [])
    assert fact is not None
    assert (fact.phase, fact.reason, fact.exit_code, fact.awaiting_pod) == ("Failed", "Error", 3, True)


def test_the_pods_own_verdict_wins_over_the_jobs_message() -> None:
    fact = attempt_fact(job(*failed(*RULED), failed=1), [pod(terminated(3, "Error", "no such table"), "Failed")])
    assert fact is not None
    assert (fact.exit_code, fact.message, fact.awaiting_pod) == (3, "no such table", False)


def test_a_failure_policy_message_about_another_container_gives_no_exit_code() -> None:
    message = "Container sidecar for pod data/p failed with exit code 7 matching FailJob rule at index 2"
    other = ("PodFailurePolicy", message)
    fact = attempt_fact(job(*failed(*other), failed=1), [])
    assert fact is not None and fact.exit_code is None


def test_a_stopped_job_does_not_await_its_pod() -> None:
    stop = stop_job_patch("DeadlineExceeded", "the TaskJob's deadline passed")["metadata"]["annotations"]
    fact = attempt_fact(job(*failed(*DEADLINE), annotations=stop, failed=1), [])
    assert fact is not None and not fact.awaiting_pod and fact.reason == "DeadlineExceeded"


def test_a_job_deadline_is_not_held_up_by_a_running_pod() -> None:
    fact = attempt_fact(job(*failed("DeadlineExceeded", "Job was active longer than specified"), failed=1),
                        [pod(running(), "Running")])
    assert fact is not None and (fact.phase, fact.reason, fact.awaiting_pod) == ("Failed", "DeadlineExceeded", False)
