"""Fan-out on the real control plane: a task expands over a real dependency's output, instances retry on
their own, the dependent receives the instances' outputs as one JSON list; a bad list fails the task."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from operator_harness import OperatorProcess, TaskJobs
from outcomes import pod_outcomes

pytestmark = pytest.mark.cluster


def taskjob(name: str, tasks: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    spec.setdefault("defaults", {"image": "busybox:1.36", "retry": {"limit": 2, "backoff": {"delaySeconds": 1}}})
    return {
        "apiVersion": "taskjob.dev/v1alpha1",
        "kind": "TaskJob",
        "metadata": {"name": name},
        "spec": {**spec, "tasks": tasks},
    }


def annotated(name: str, annotations: dict[str, str], **fields: Any) -> dict[str, Any]:
    return {"name": name, "podTemplate": {"metadata": {"annotations": annotations}}, **fields}


def test_a_task_fans_out_over_a_dependency_output_and_its_dependent_gets_the_list(
    operator: OperatorProcess, taskjobs: TaskJobs
) -> None:
    items = [{"shard": "a"}, {"shard": "b"}, {"shard": "c"}]
    taskjobs.create(
        taskjob(
            "fan",
            [
                annotated("gen", pod_outcomes(0, message=json.dumps(items))),
                # Every instance fails its first attempt (exit 1), then succeeds writing "9".
                annotated(
                    "work",
                    pod_outcomes({1: 1, 2: 0}, message="9"),
                    dependsOn=["gen"],
                    forEach={"fromOutput": "gen"},
                    command=["echo"],
                    args=["shard {{item.shard}}"],
                ),
                {"name": "sum", "dependsOn": ["work"], "command": ["echo"], "args": ["{{tasks.work.output}}"]},
            ],
            parallelism=2,
        )
    )
    status = taskjobs.wait_phase("fan", "Succeeded", timeout=120)
    assert status["progress"] == "5/5"  # gen, sum and 3 instances
    assert status["tasks"]["work"]["items"] == 3
    assert all(status["tasks"][f"work-{i}"]["attempts"] == 2 for i in range(3))
    jobs = taskjobs.jobs("fan")
    # Exactly once: one Job per (instance, attempt), named <taskjob>-<task>-<index>-<attempt>.
    names = Counter(j.metadata.name for j in jobs)
    assert {n for n in names if n.startswith("fan-work-")} == {f"fan-work-{i}-{a}" for i in range(3) for a in (1, 2)}
    assert set(names.values()) == {1}
    first = next(j for j in jobs if j.metadata.name == "fan-work-1-1")
    assert first.metadata.labels["taskjob.dev/fan-out"] == "work" and first.metadata.labels["taskjob.dev/item"] == "1"
    container = first.spec.template.spec.containers[0]
    env = {e.name: e.value for e in container.env}
    assert container.args == ["shard b"] and env["TASKJOB_ITEM"] == '{"shard":"b"}' and env["TASKJOB_ITEM_INDEX"] == "1"
    sink = next(j for j in jobs if j.metadata.labels["taskjob.dev/task"] == "sum")
    sink_env = {e.name: e.value for e in sink.spec.template.spec.containers[0].env}
    assert sink_env["TASKJOB_INPUT_WORK"] == "[9,9,9]"
    assert sink.spec.template.spec.containers[0].args == ["[9,9,9]"]
    outputs = taskjobs.core.read_namespaced_config_map("fan-outputs", taskjobs.ns)
    assert outputs.data["work"] == "[9,9,9]"


def test_an_output_that_is_not_a_list_fails_the_fan_out_task_with_the_reason(
    operator: OperatorProcess, taskjobs: TaskJobs
) -> None:
    taskjobs.create(
        taskjob(
            "badlist",
            [
                annotated("gen", pod_outcomes(0, message="not a list")),
                {"name": "work", "dependsOn": ["gen"], "forEach": {"fromOutput": "gen"}},
                {"name": "after", "dependsOn": ["work"]},
            ],
        )
    )
    status = taskjobs.wait_phase("badlist", "Failed", timeout=60)
    work = status["tasks"]["work"]
    assert work["reason"] == "InvalidForEachOutput"
    assert "the output of task gen (forEach.fromOutput) is not JSON" in work["message"]
    assert status["tasks"]["after"]["phase"] == "Skipped"
    assert [j.metadata.labels["taskjob.dev/task"] for j in taskjobs.jobs("badlist")] == ["gen"]


def test_a_for_each_with_both_items_and_from_output_ends_invalid_naming_the_field(
    operator: OperatorProcess, taskjobs: TaskJobs
) -> None:
    # Without the webhook (this fixture runs none) the operator's validation reports it.
    tasks = [{"name": "g"}, {"name": "f", "dependsOn": ["g"], "forEach": {"items": [1], "fromOutput": "g"}}]
    taskjobs.create(taskjob("both", tasks))
    status = taskjobs.wait_phase("both", "Invalid", timeout=60)
    assert "spec.tasks[1].forEach: set exactly one of items" in status["message"]
