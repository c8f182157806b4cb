"""The dashboard's model and views: watch events in, the pages' JSON out (no cluster, no clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskjobs.dashboard import views
from taskjobs.dashboard.model import ALL, MAX_EVENTS, Model

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)


def ts(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def diamond(status_tasks: dict[str, Any] | None = None, phase: str = "Running", ns: str = "team-a") -> dict[str, Any]:
    tasks = [
        {"name": "root"},
        {"name": "left", "dependsOn": ["root"]},
        {"name": "right", "dependsOn": ["root"]},
        {"name": "sink", "dependsOn": ["left", "right"]},
    ]
    return {
        "apiVersion": "taskjob.dev/v1alpha1",
        "kind": "TaskJob",
        "metadata": {
            "name": "diamond",
            "namespace": ns,
            "uid": "u1",
            "creationTimestamp": ts(600),
            "labels": {"team": "data"},
            "managedFields": [{"huge": "x" * 1000}],
        },
        "spec": {"tasks": tasks},
        "status": {
            "phase": phase,
            "progress": "1/4",
            "total": 4,
            "succeeded": 1,
            "running": 1,
            "pending": 2,
            "startTime": ts(300),
            "message": "1 of 4 tasks succeeded",
            "tasks": status_tasks
            if status_tasks is not None
            else {
                "root": {"phase": "Succeeded", "attempts": 1, "startTime": ts(290), "finishTime": ts(120)},
                "left": {"phase": "Running", "attempts": 1, "startTime": ts(100)},
                "right": {
                    "phase": "Retrying",
                    "attempts": 1,
                    "exitCode": 3,
                    "reason": "Error",
                    "message": "connection refused",
                    "nextRetryTime": ts(-30),
                },
            },
        },
    }


def job(
    task: str, attempt: int, *, failed: bool = False, done_ago: float | None = None, ns: str = "team-a"
) -> dict[str, Any]:
    status: dict[str, Any] = {"startTime": ts(200)}
    if done_ago is not None:
        status["completionTime" if not failed else "x"] = ts(done_ago)
        status["conditions"] = [
            {
                "type": "Failed" if failed else "Complete",
                "status": "True",
                "lastTransitionTime": ts(done_ago),
                "reason": "BackoffLimitExceeded" if failed else None,
                "message": "Job has reached the specified backoff limit" if failed else None,
            }
        ]
        status["failed" if failed else "succeeded"] = 1
    return {
        "metadata": {
            "name": f"diamond-{task}-{attempt}",
            "namespace": ns,
            "creationTimestamp": ts(200),
            "labels": {"taskjob.dev/taskjob": "diamond", "taskjob.dev/task": task, "taskjob.dev/attempt": str(attempt)},
        },
        "status": status,
    }


def pod(
    task: str, attempt: int, *, exit_code: int | None = None, output: str = "", ns: str = "team-a"
) -> dict[str, Any]:
    state: dict[str, Any] = {"running": {"startedAt": ts(100)}}
    if exit_code is not None:
        state = {
            "terminated": {
                "exitCode": exit_code,
                "reason": "Completed" if exit_code == 0 else "Error",
                "message": output,
                "startedAt": ts(150),
                "finishedAt": ts(90),
            }
        }
    return {
        "metadata": {
            "name": f"diamond-{task}-{attempt}-abcde",
            "namespace": ns,
            "creationTimestamp": ts(160),
            "labels": {"taskjob.dev/taskjob": "diamond", "taskjob.dev/task": task, "taskjob.dev/attempt": str(attempt)},
        },
        "spec": {"nodeName": "kwok-node-0", "containers": [{"name": "task", "image": "busybox", "args": ["x" * 500]}]},
        "status": {
            "phase": "Running" if exit_code is None else ("Succeeded" if exit_code == 0 else "Failed"),
            "containerStatuses": [{"name": "task", "state": state}],
        },
    }


def event(
    kind: str, name: str, reason: str, message: str, seconds_ago: float = 10, ns: str = "team-a"
) -> dict[str, Any]:
    return {
        "metadata": {"name": f"{name}.{reason}.{seconds_ago}", "namespace": ns},
        "involvedObject": {"kind": kind, "name": name, "namespace": ns},
        "reason": reason,
        "message": message,
        "type": "Normal",
        "count": 1,
        "lastTimestamp": ts(seconds_ago),
    }


@pytest.fixture
def model() -> Model:
    m = Model()
    m.replace("taskjobs", None, [diamond()])
    m.replace("jobs", None, [job("root", 1, done_ago=120), job("left", 1), job("right", 1, failed=True, done_ago=60)])
    m.replace("pods", None, [pod("root", 1, exit_code=0, output="root"), pod("left", 1), pod("right", 1, exit_code=3)])
    m.replace("events", None, [event("Pod", "diamond-left-1-abcde", "Scheduled", "assigned to kwok-node-0")])
    return m


def test_trimming_drops_managed_fields_and_pod_specs(model: Model) -> None:
    tj = model.taskjobs[("team-a", "diamond")]
    assert "managedFields" not in tj["metadata"]
    stored_pod = model.pods[("team-a", "diamond-left-1-abcde")]
    assert stored_pod["spec"] == {"nodeName": "kwok-node-0", "containers": [{"name": "task"}]}  # not the args


def test_apply_reports_changes_and_the_touched_taskjob(model: Model) -> None:
    model.take_touched()
    version = model.version
    assert model.apply("pods", "MODIFIED", pod("left", 1, exit_code=0, output="left"))
    assert model.version == version + 1
    assert model.take_touched() == {("team-a", "diamond")}
    assert not model.apply("pods", "BOOKMARK", {"metadata": {"resourceVersion": "9"}})
    assert model.apply("pods", "DELETED", pod("left", 1))
    assert not model.apply("pods", "DELETED", pod("left", 1)), "deleting what is gone changes nothing"


def test_replace_forgets_objects_missing_from_a_relisting_of_that_namespace_only() -> None:
    m = Model()
    m.replace("taskjobs", "a", [diamond(ns="a")])
    m.replace("taskjobs", "b", [diamond(ns="b")])
    m.replace("taskjobs", "a", [])
    assert list(m.taskjobs) == [("b", "diamond")]
    assert m.take_touched() == {ALL}
    assert {"taskjobs/a", "taskjobs/b"} <= m.synced


def test_events_about_unknown_objects_are_ignored_and_the_number_kept_is_bounded(model: Model) -> None:
    assert not model.apply("events", "ADDED", event("Pod", "someone-elses-pod", "Pulled", "x"))
    for i in range(MAX_EVENTS + 10):
        model.apply("events", "ADDED", event("TaskJob", "diamond", "Progress", f"step {i}", seconds_ago=i))
    assert len(model.events) == MAX_EVENTS


def test_overview_counts_throughput_failures_and_rows(model: Model) -> None:
    data = views.overview(model, NOW)
    assert data["taskjobPhases"]["Running"] == 1
    assert data["taskPhases"] == {
        "Waiting": 1,
        "Ready": 0,
        "Running": 1,
        "Retrying": 1,
        "Succeeded": 1,
        "Failed": 0,
        "Skipped": 0,
    }  # sink has no status entry yet: counted as Waiting
    assert data["throughput"] == {"last5": 1 / 5, "last60": 1 / 60}  # root finished 2 minutes ago
    assert data["failureRate"] == 0.0
    [failure] = data["lastFailures"]
    assert failure["task"] == "right" and failure["exitCode"] == 3 and failure["reason"] == "Error"
    assert failure["nextRetryTime"] == ts(-30), "a scheduled retry is shown with its time"
    assert failure["when"] == ts(60), "when: the Job failed, the attempt's end in the operator's status"
    [row] = data["taskjobs"]
    assert row["phase"] == "Running" and row["progress"] == "1/4" and row["running"] == 1
    assert row["age"] == 600 and row["duration"] == 300
    assert row["labels"] == {"team": "data"}
    assert data["namespaces"] == ["team-a"]


def test_failure_rate_counts_failed_among_tasks_finished_in_the_last_hour() -> None:
    m = Model()
    m.replace(
        "taskjobs",
        None,
        [
            diamond(
                {
                    "root": {"phase": "Succeeded", "finishTime": ts(100)},
                    "left": {"phase": "Failed", "finishTime": ts(50), "exitCode": 2, "reason": "Error"},
                    "right": {"phase": "Succeeded", "finishTime": ts(7200)},  # two hours ago: outside the window
                    "sink": {"phase": "Skipped", "finishTime": ts(40)},
                },
                phase="Failed",
            )
        ],
    )
    data = views.overview(m, NOW)
    assert data["failureRate"] == 0.5
    assert [f["task"] for f in data["lastFailures"]] == ["left"]
    assert data["lastFailures"][0]["nextRetryTime"] is None, "failed for good: no retry"


def test_taskjob_view_has_every_task_with_its_phase_layer_and_the_graph(model: Model) -> None:
    data = views.taskjob_view(model, ("team-a", "diamond"), NOW)
    assert data is not None
    phases = {t["name"]: (t["phase"], t["layer"]) for t in data["tasks"]}
    assert phases == {
        "root": ("Succeeded", 0),
        "left": ("Running", 1),
        "right": ("Retrying", 1),
        "sink": ("Waiting", 2),
    }
    graph = data["graph"]
    assert not graph["grouped"]
    assert {n["id"] for n in graph["nodes"]} == {"task:root", "task:left", "task:right", "task:sink"}
    assert {(e["source"], e["target"]) for e in graph["edges"]} == {
        ("task:root", "task:left"),
        ("task:root", "task:right"),
        ("task:left", "task:sink"),
        ("task:right", "task:sink"),
    }
    bars = {(b["task"], b["attempt"]): b["outcome"] for b in data["timeline"]["bars"]}
    assert bars == {("root", 1): "Succeeded", ("left", 1): "Running", ("right", 1): "Failed"}
    assert views.taskjob_view(model, ("team-a", "nope"), NOW) is None


def test_a_bar_ends_when_the_pods_containers_exited_0_not_when_the_job_is_complete() -> None:
    # The operator ends the attempt there (core/observe.py); the Job's Complete comes a second or two later.
    m = Model()
    m.replace("taskjobs", None, [diamond()])
    m.replace("jobs", None, [job("root", 1, done_ago=30), job("left", 1)])
    exited = pod("left", 1, exit_code=0)
    exited["status"]["phase"] = "Running"  # the kubelet reports the phase after tearing the pod down
    m.replace("pods", None, [pod("root", 1, exit_code=0), exited])
    data = views.taskjob_view(m, ("team-a", "diamond"), NOW)
    assert data is not None
    bars = {b["task"]: (b["outcome"], b["finish"]) for b in data["timeline"]["bars"]}
    assert bars == {"root": ("Succeeded", ts(90)), "left": ("Succeeded", ts(90))}  # finishedAt, 90 s ago


def test_a_bar_takes_the_operators_verdict_a_stopped_job_or_one_past_its_deadline_did_not_succeed() -> None:
    # core/observe.py: a pod whose containers exited 0 does not decide an attempt the operator is stopping
    # (the stop's verdict), nor one whose containers ended after the Job's activeDeadlineSeconds.
    m = Model()
    m.replace("taskjobs", None, [diamond()])
    stopped = job("left", 1)
    stopped["metadata"]["annotations"] = {"taskjob.dev/stop-reason": "Stopped", "taskjob.dev/stop-message": "x"}
    late = job("right", 1)
    late["spec"] = {"activeDeadlineSeconds": 60, "template": {"spec": {"containers": [{"name": "task"}]}}}
    m.replace("jobs", None, [stopped, late])  # started 200 s ago; the containers exited 0 90 s ago
    m.replace("pods", None, [pod("left", 1, exit_code=0), pod("right", 1, exit_code=0)])
    data = views.taskjob_view(m, ("team-a", "diamond"), NOW)
    assert data is not None
    bars = {b["task"]: (b["outcome"], b["finish"]) for b in data["timeline"]["bars"]}
    assert bars == {"left": ("Running", None), "right": ("Running", None)}  # the Jobs' verdicts are awaited
    failed = job("left", 1, failed=True, done_ago=30)
    failed["metadata"]["annotations"] = stopped["metadata"]["annotations"]
    m.apply("jobs", "MODIFIED", failed)
    data = views.taskjob_view(m, ("team-a", "diamond"), NOW)
    assert data is not None
    assert {b["task"]: b["outcome"] for b in data["timeline"]["bars"]}["left"] == "Failed"
    assert m.jobs[("team-a", "diamond-right-1")]["spec"] == {"activeDeadlineSeconds": 60}  # not the pod template


def test_big_layers_are_grouped_by_phase_with_deduplicated_edges() -> None:
    tasks = [{"name": "start"}] + [{"name": f"w{i}", "dependsOn": ["start"]} for i in range(10_000)]
    tasks.append({"name": "end", "dependsOn": [f"w{i}" for i in range(10_000)]})
    states = {f"w{i}": {"phase": "Succeeded" if i < 6000 else "Running"} for i in range(10_000)}
    tj = diamond(states)
    tj["spec"]["tasks"] = tasks
    m = Model()
    m.replace("taskjobs", None, [tj])
    data = views.taskjob_view(m, ("team-a", "diamond"), NOW)
    assert data is not None
    graph = data["graph"]
    assert graph["grouped"]
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert set(nodes) == {"task:start", "group:1:Succeeded", "group:1:Running", "task:end"}
    assert nodes["group:1:Succeeded"]["count"] == 6000 and nodes["group:1:Running"]["count"] == 4000
    assert len(graph["edges"]) == 4


def test_depths_survive_a_cycle() -> None:
    assert views.depths([{"name": "a", "dependsOn": ["b"]}, {"name": "b", "dependsOn": ["a"]}]).keys() == {"a", "b"}


def test_task_view_lists_every_attempt_with_exit_code_reason_output_and_events(model: Model) -> None:
    model.apply("jobs", "ADDED", job("right", 2))
    model.apply("pods", "ADDED", pod("right", 2))
    model.apply("events", "ADDED", event("Pod", "diamond-right-2-abcde", "Started", "started container task"))
    data = views.task_view(model, ("team-a", "diamond"), "right", NOW)
    assert data is not None
    first, second = data["attempts"]
    assert first["attempt"] == 1 and first["outcome"] == "Failed" and first["exitCode"] == 3
    assert first["reason"] == "Error" and first["job"] == "diamond-right-1" and first["pod"] == "diamond-right-1-abcde"
    assert first["duration"] == 90 and first["output"] == ""  # the container's start to the Job's Failed
    assert second["outcome"] == "Running" and second["running"]
    assert [e["reason"] for e in data["events"]] == ["Started"]
    root = views.task_view(model, ("team-a", "diamond"), "root", NOW)
    assert root is not None and root["attempts"][0]["output"] == "root" and root["attempts"][0]["reason"] == ""
    assert views.task_view(model, ("team-a", "diamond"), "nope", NOW) is None


def test_a_pod_that_never_starts_shows_its_waiting_reason() -> None:
    stuck = pod("root", 1)
    stuck["status"] = {
        "phase": "Pending",
        "containerStatuses": [
            {"name": "task", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}
        ],
    }
    row = views.attempt_row(None, [stuck], NOW)
    assert row["outcome"] == "Pending" and row["reason"] == "ImagePullBackOff"
    assert row["message"] == "Back-off pulling image"


def test_an_attempt_row_takes_the_operators_verdict_a_stopped_job_whose_pod_exited_0_did_not_succeed() -> None:
    # The task panel's rows follow core/observe.py as the timeline's bars do: a pod whose containers exited 0
    # decides a normal attempt (ended when the container finished), not one the operator is stopping.
    m = Model()
    m.replace("taskjobs", None, [diamond()])
    stopped = job("left", 1)
    stopped["metadata"]["annotations"] = {"taskjob.dev/stop-reason": "Stopped", "taskjob.dev/stop-message": "x"}
    m.replace("jobs", None, [stopped, job("right", 1)])  # neither Job has a verdict yet
    m.replace("pods", None, [pod("left", 1, exit_code=0), pod("right", 1, exit_code=0, output="done")])

    def row(task: str) -> tuple[str, str | None, str]:
        data = views.task_view(m, ("team-a", "diamond"), task, NOW)
        assert data is not None
        [attempt] = data["attempts"]
        return attempt["outcome"], attempt["finish"], attempt["output"]

    assert row("left") == ("Running", None, "")  # the stop's verdict is awaited
    assert row("right") == ("Succeeded", ts(90), "done")  # the container's finishedAt, before the Job's Complete
    failed = job("left", 1, failed=True, done_ago=30)
    failed["metadata"]["annotations"] = stopped["metadata"]["annotations"]
    m.apply("jobs", "MODIFIED", failed)
    assert row("left") == ("Failed", ts(30), "")  # the Job's Failed, as the bar and the operator's status say


def test_a_stopped_attempts_row_shows_the_stop_not_its_containers_exit_0() -> None:
    # The operator's status says Stopped: the row's exit code and reason come from that same fact.
    stopped = job("left", 1, failed=True, done_ago=30)
    stopped["metadata"]["annotations"] = {"taskjob.dev/stop-reason": "Stopped", "taskjob.dev/stop-message": "by x"}
    stopped["status"]["conditions"][0].update(reason="DeadlineExceeded", message="Job was active longer")
    row = views.attempt_row(stopped, [pod("left", 1, exit_code=0, output="half")], NOW)
    assert (row["outcome"], row["exitCode"], row["reason"], row["message"]) == ("Failed", None, "Stopped", "by x")
    assert (row["finish"], row["output"]) == (ts(30), "")


def test_an_attempt_row_is_read_from_the_pod_that_decided_it_not_the_newest() -> None:
    # An evicted pod and its replacement created in the same second: the one that succeeded speaks.
    evicted = pod("root", 1, exit_code=137)
    evicted["metadata"]["name"] = "diamond-root-1-old11"
    evicted["status"]["containerStatuses"][0]["state"]["terminated"].update(startedAt=ts(158), finishedAt=ts(157))
    done = pod("root", 1, exit_code=0, output="42")
    done["metadata"]["name"] = "diamond-root-1-new22"
    done["status"]["containerStatuses"][0]["state"]["terminated"].update(startedAt=ts(120), finishedAt=ts(90))
    row = views.attempt_row(job("root", 1, done_ago=88), [evicted, done], NOW)
    assert (row["outcome"], row["pod"], row["exitCode"]) == ("Succeeded", "diamond-root-1-new22", 0)
    assert row["output"] == "42"
    assert (row["start"], row["finish"], row["duration"]) == (ts(120), ts(90), 30)


def test_without_its_job_an_ended_attempt_row_is_unknown_not_judged_from_the_pod() -> None:
    # The Job holds the operator's stop and the deadline: its pod's exit 0 alone does not make a success.
    row = views.attempt_row(None, [pod("root", 1, exit_code=0, output="root")], NOW)
    assert (row["outcome"], row["finish"], row["output"], row["running"]) == ("Unknown", ts(90), "", False)


def test_manifest_is_yaml_without_status(model: Model) -> None:
    text = views.manifest(model, ("team-a", "diamond"))
    assert text is not None and "kind: TaskJob" in text and "dependsOn" in text and "status" not in text


def test_a_failed_attempt_that_was_retried_stays_among_the_last_failures(model: Model) -> None:
    model.apply("jobs", "ADDED", job("right", 2, done_ago=5))
    model.apply("pods", "ADDED", pod("right", 2, exit_code=0))
    retried = diamond()
    retried["status"]["tasks"]["right"] = {"phase": "Succeeded", "attempts": 2, "finishTime": ts(5)}
    model.apply("taskjobs", "MODIFIED", retried)
    [failure] = views.overview(model, NOW)["lastFailures"]
    assert (failure["task"], failure["attempt"], failure["phase"]) == ("right", 1, "Retried")
    assert failure["exitCode"] == 3 and failure["nextRetryTime"] is None


def test_an_event_about_a_pod_not_seen_yet_is_kept_for_its_taskjob(model: Model) -> None:
    model.take_touched()
    assert model.apply("events", "ADDED", event("Pod", "diamond-sink-1-xyz12", "Scheduled", "assigned"))
    assert model.take_touched() == {("team-a", "diamond")}
    model.apply(
        "pods", "ADDED", pod("sink", 1) | {"metadata": {**pod("sink", 1)["metadata"], "name": "diamond-sink-1-xyz12"}}
    )
    data = views.task_view(model, ("team-a", "diamond"), "sink", NOW)
    assert data is not None and [e["reason"] for e in data["events"]] == ["Scheduled"]


def test_children_follow_adds_deletes_and_relists(model: Model) -> None:
    owner = ("team-a", "diamond")
    assert sorted(j["metadata"]["name"] for j in model.children("jobs", owner)) == [
        "diamond-left-1",
        "diamond-right-1",
        "diamond-root-1",
    ]
    model.apply("jobs", "DELETED", job("left", 1))
    model.apply("jobs", "MODIFIED", job("root", 1, done_ago=5))
    assert sorted(j["metadata"]["name"] for j in model.children("jobs", owner)) == ["diamond-right-1", "diamond-root-1"]
    model.replace("jobs", "team-a", [job("sink", 1)])
    assert [j["metadata"]["name"] for j in model.children("jobs", owner)] == ["diamond-sink-1"]
    model.replace("pods", None, [])
    assert model.children("pods", owner) == [] and model.owned["pods"] == {}


def test_finally_tasks_are_rows_drawn_after_every_other_task() -> None:
    from taskjobs.dashboard.views import task_rows

    tj = {"spec": {"tasks": [{"name": "a"}, {"name": "b", "dependsOn": ["a"]}],
                   "finally": [{"name": "n"}, {"name": "m", "dependsOn": ["n"]}]},
          "status": {"tasks": {"a": {"phase": "Succeeded"}}}}
    rows = {r["name"]: (r["layer"], r["phase"]) for r in task_rows(tj)}
    assert rows == {"a": (0, "Succeeded"), "b": (1, "Waiting"), "n": (2, "Waiting"), "m": (3, "Waiting")}
