"""Every example runs to its documented phase on the real control plane, and outputs reach dependents.

kwok runs no containers, so each test says how a task's container would end (exit code, termination
message) through pod annotations; everything else — Jobs, retries, skips, outputs — is the real thing.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from operator_harness import ROOT, OperatorProcess, TaskJobs
from outcomes import pod_outcomes

pytestmark = pytest.mark.cluster

EXAMPLES = ROOT / "examples"

# example -> (how its tasks' containers end, expected phase, expected progress, expected task phases)
CASES: dict[str, tuple[dict[str, dict[str, str]], str, str, dict[str, str]]] = {
    "hello": ({}, "Succeeded", "1/1", {}),
    "diamond": ({}, "Succeeded", "4/4", {}),
    "fan-out-fan-in": ({}, "Succeeded", "6/6", {}),
    "retry-backoff": ({"flaky": pod_outcomes({1: 1, 2: 1, 3: 0})}, "Succeeded", "3/3", {"flaky": "Succeeded"}),
    "failure-policy": (
        {"broken": pod_outcomes(1)},
        "Failed",
        "3/5",
        {"broken": "Failed", "after-broken": "Skipped", "healthy": "Succeeded", "after-healthy": "Succeeded"},
    ),
    "etl-pipeline": ({"reduce-sum": pod_outcomes(0, message="110")}, "Succeeded", "4/4", {}),
    "conditions": (
        {"count": pod_outcomes(0, message="7"), "deploy": pod_outcomes(3)},
        "Succeeded",
        "4/6",
        {"big": "Succeeded", "small": "Skipped", "report": "Succeeded", "deploy": "Failed", "rollback": "Succeeded"},
    ),
    "notify-on-failure": (
        {"load": pod_outcomes(1)},
        "Failed",
        "3/4",
        {"extract": "Succeeded", "load": "Failed", "notify": "Succeeded", "cleanup": "Succeeded"},
    ),
    "wordcount": ({}, "Succeeded", "7/7", {}),
    # 3 tasks + 4 instances of map-double (forEach over 4 partitions)
    "etl-fanout": (
        {"reduce-sum": pod_outcomes(0, message="110")},
        "Succeeded",
        "7/7",
        {"map-double": "Succeeded", "map-double-0": "Succeeded", "map-double-3": "Succeeded"},
    ),
}


def with_outcomes(manifest: dict[str, Any], outcomes: dict[str, dict[str, str]]) -> dict[str, Any]:
    manifest = copy.deepcopy(manifest)
    for task in [*manifest["spec"]["tasks"], *manifest["spec"].get("finally", [])]:
        if task["name"] in outcomes:
            meta = task.setdefault("podTemplate", {}).setdefault("metadata", {})
            meta.setdefault("annotations", {}).update(outcomes[task["name"]])
    return manifest


def test_every_example_has_a_case() -> None:
    # Only TaskJobs: tests/cluster/test_cron.py runs the CronTaskJob examples.
    taskjobs = {p.stem for p in EXAMPLES.glob("*.yaml") if yaml.safe_load(p.read_text()).get("kind") == "TaskJob"}
    assert taskjobs == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_reaches_its_documented_phase(operator: OperatorProcess, taskjobs: TaskJobs, name: str) -> None:
    outcomes, phase, progress, task_phases = CASES[name]
    manifest = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    taskjobs.create(with_outcomes(manifest, outcomes))
    status = taskjobs.wait_phase(manifest["metadata"]["name"], ("Succeeded", "Failed", "Invalid"), timeout=120)
    assert (status["phase"], status["progress"]) == (phase, progress), status.get("message")
    for task, expected in task_phases.items():
        assert status["tasks"][task]["phase"] == expected, task
    if name == "retry-backoff":
        assert status["tasks"]["flaky"]["attempts"] == 3
    if name == "conditions":
        assert status["tasks"]["small"]["reason"] == "ConditionFalse"
    if name == "notify-on-failure":  # the finally task got the outcome in its environment
        job = taskjobs.batch.read_namespaced_job("notify-on-failure-notify-1", taskjobs.ns)
        env = {e.name: e.value for e in job.spec.template.spec.containers[0].env}
        assert (env["TASKJOB_OUTCOME"], env["TASKJOB_FAILED_TASKS"]) == ("Failed", "load")
    if name == "etl-pipeline":
        outputs = taskjobs.core.read_namespaced_config_map("etl-pipeline-outputs", taskjobs.ns)
        assert outputs.data["reduce-sum"] == "110"


def test_an_output_reaches_the_dependent_as_env_and_in_its_args(
    operator: OperatorProcess, taskjobs: TaskJobs
) -> None:
    manifest = {
        "apiVersion": "taskjob.dev/v1alpha1",
        "kind": "TaskJob",
        "metadata": {"name": "handoff"},
        "spec": {
            "defaults": {"image": "busybox:1.36"},
            "tasks": [
                {"name": "first", "podTemplate": {"metadata": {"annotations": pod_outcomes(0, message="hello")}}},
                {"name": "second", "dependsOn": ["first"], "command": ["echo"],
                 "args": ["got {{tasks.first.output}}"]},
            ],
        },
    }
    taskjobs.create(manifest)
    taskjobs.wait_phase("handoff", "Succeeded")
    second = next(j for j in taskjobs.jobs("handoff") if j.metadata.labels["taskjob.dev/task"] == "second")
    container = second.spec.template.spec.containers[0]
    env = {e.name: e.value for e in container.env}
    assert env["TASKJOB_INPUT_FIRST"] == "hello"
    assert yaml.safe_load(env["TASKJOB_INPUTS"]) == {"first": "hello"}
    assert container.args == ["got hello"]
    outputs = taskjobs.core.read_namespaced_config_map("handoff-outputs", taskjobs.ns)
    assert outputs.data["first"] == "hello"


def test_an_output_ending_in_newlines_reaches_dependents_as_the_shell_would_substitute_it(
    operator: OperatorProcess, taskjobs: TaskJobs
) -> None:
    # calc -> mid -> use, and use reads calc's output: a reference alone makes a task an input.
    manifest = {
        "apiVersion": "taskjob.dev/v1alpha1",
        "kind": "TaskJob",
        "metadata": {"name": "echoed"},
        "spec": {
            "defaults": {"image": "busybox:1.36"},
            "tasks": [
                {"name": "calc", "podTemplate": {"metadata": {"annotations": pod_outcomes(0, message="42\n")}}},
                {"name": "mid", "dependsOn": ["calc"]},
                {"name": "use", "dependsOn": ["mid"], "command": ["echo"], "args": ["got {{tasks.calc.output}}"]},
            ],
        },
    }
    taskjobs.create(manifest)
    taskjobs.wait_phase("echoed", "Succeeded")
    use = next(j for j in taskjobs.jobs("echoed") if j.metadata.labels["taskjob.dev/task"] == "use")
    container = use.spec.template.spec.containers[0]
    env = {e.name: e.value for e in container.env}
    assert container.args == ["got 42"]
    assert env["TASKJOB_INPUT_CALC"] == "42"
    assert yaml.safe_load(env["TASKJOB_INPUTS"]) == {"calc": "42", "mid": ""}  # mid wrote nothing
    # The ConfigMap keeps what the task wrote, byte for byte.
    outputs = taskjobs.core.read_namespaced_config_map("echoed-outputs", taskjobs.ns)
    assert outputs.data["calc"] == "42\n"
