"""render_job / stop_job_patch: the Job a task attempt runs as, checked field by field and against the
Kubernetes schema of the official client."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client import ApiClient

from taskjobs.core import naming
from taskjobs.core.models import TaskJobMeta, TaskSpec, TaskTemplate
from taskjobs.core.render import render_job, stop_job_patch, substitute
from taskjobs.core.resolve import ResolvedTask, resolve_task

META = TaskJobMeta(name="etl", namespace="data", uid="6f0c2a4e-9d1b-4c1e-8f57-3a2b1c0d9e8f")


def task(defaults: dict[str, Any] | None = None, **fields: Any) -> ResolvedTask:
    spec = TaskSpec.model_validate({"name": "transform", "image": "busybox:1.36", **fields})
    return resolve_task(spec, TaskTemplate.model_validate(defaults) if defaults else None)


def pod_spec(job: dict[str, Any]) -> dict[str, Any]:
    return job["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def container(job: dict[str, Any]) -> dict[str, Any]:
    (ours,) = [c for c in pod_spec(job)["containers"] if c["name"] == "task"]
    return ours  # type: ignore[no-any-return]


def env(job: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container(job)["env"]}


def through_client(obj: dict[str, Any]) -> dict[str, Any]:
    """Deserialize into the official client's V1Job and back: misspelled or misplaced keys are dropped."""
    with ApiClient() as api:
        model = api._ApiClient__deserialize(obj, "V1Job")
        return api.sanitize_for_serialization(model)  # type: ignore[no-any-return]


# ---------------------------------------------------------------- identity, ownership, Job policy


def test_job_is_named_and_labelled_for_its_attempt() -> None:
    job = render_job(META, task(), 2, {})
    labels = {"taskjob.dev/taskjob": "etl", "taskjob.dev/task": "transform", "taskjob.dev/attempt": "2"}
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    assert job["metadata"]["name"] == "etl-transform-2"
    assert job["metadata"]["namespace"] == "data"
    assert job["metadata"]["labels"] == labels
    assert job["spec"]["template"]["metadata"]["labels"] == labels


def test_long_names_are_hashed_to_a_valid_length_and_stay_distinct_per_attempt() -> None:
    meta = TaskJobMeta(name="a-very-long-taskjob-name-that-goes-on-and-on", namespace="data", uid="u")
    t = resolve_task(TaskSpec(name="an-equally-long-task-name-for-good-measure", image="busybox"), None)
    names = {render_job(meta, t, n, {})["metadata"]["name"] for n in (1, 2, 10)}
    assert len(names) == 3
    assert all(len(n) <= 63 and not n.startswith("-") for n in names)
    assert render_job(meta, t, 1, {})["metadata"]["name"] == naming.job_name(meta.name, t.name, 1)


def test_job_is_owned_by_the_taskjob_so_deleting_it_deletes_the_job() -> None:
    job = render_job(META, task(), 1, {})
    assert job["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "taskjob.dev/v1alpha1",
            "kind": "TaskJob",
            "name": "etl",
            "uid": META.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def test_the_operator_owns_retries_and_disruptions_do_not_burn_an_attempt() -> None:
    job = render_job(META, task(), 1, {})
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["podFailurePolicy"] == {
        "rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            # The Job's Failed condition then names the task's exit code (observe reads it).
            {"action": "FailJob", "onExitCodes": {"containerName": "task", "operator": "NotIn", "values": [0]}},
        ]
    }
    assert pod_spec(job)["restartPolicy"] == "Never"


def test_task_timeout_becomes_the_job_deadline() -> None:
    assert render_job(META, task(timeoutSeconds=120), 1, {})["spec"]["activeDeadlineSeconds"] == 120
    assert render_job(META, task(defaults={"timeoutSeconds": 600}), 1, {})["spec"]["activeDeadlineSeconds"] == 600
    assert "activeDeadlineSeconds" not in render_job(META, task(), 1, {})["spec"]


# ---------------------------------------------------------------- the container


def test_container_runs_the_task_and_reports_its_output_in_the_termination_message() -> None:
    t = task(command=["sh", "-c"], args=["echo hi"], resources={"requests": {"cpu": "100m"}})
    c = container(render_job(META, t, 1, {}))
    assert pod_spec(render_job(META, t, 1, {}))["containers"] == [c]
    assert c["image"] == "busybox:1.36"
    assert c["command"] == ["sh", "-c"]
    assert c["args"] == ["echo hi"]
    assert c["resources"] == {"requests": {"cpu": "100m"}}
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "File"


def test_without_command_or_args_the_image_defaults_apply() -> None:
    c = container(render_job(META, task(), 1, {}))
    assert "command" not in c and "args" not in c and "resources" not in c


def test_image_comes_from_defaults_and_is_required() -> None:
    t = resolve_task(TaskSpec(name="x"), TaskTemplate(image="alpine:3.20"))
    assert container(render_job(META, t, 1, {}))["image"] == "alpine:3.20"
    with pytest.raises(ValueError, match="task 'x' has no image"):
        render_job(META, resolve_task(TaskSpec(name="x"), None), 1, {})


def test_env_identifies_the_attempt_and_run_id_is_stable_across_attempts() -> None:
    first, third = env(render_job(META, task(), 1, {})), env(render_job(META, task(), 3, {}))
    assert first["TASKJOB_NAME"] == "etl"
    assert first["TASKJOB_TASK"] == "transform"
    assert (first["TASKJOB_ATTEMPT"], third["TASKJOB_ATTEMPT"]) == ("1", "3")
    assert first["TASKJOB_RUN_ID"] == third["TASKJOB_RUN_ID"] == f"{META.uid}-transform"
    assert first["TASKJOB_OUTPUT_PATH"] == "/dev/termination-log"
    job = render_job(META, task(), 1, {})
    assert job["metadata"]["annotations"]["taskjob.dev/run-id"] == first["TASKJOB_RUN_ID"]
    assert job["spec"]["template"]["metadata"]["annotations"]["taskjob.dev/run-id"] == first["TASKJOB_RUN_ID"]


def test_upstream_outputs_arrive_as_env_vars_and_one_json_map() -> None:
    values = env(render_job(META, task(), 1, {"extract": "hello", "load-raw": "[1,2]"}))
    assert values["TASKJOB_INPUT_EXTRACT"] == "hello"
    assert values["TASKJOB_INPUT_LOAD_RAW"] == "[1,2]"
    assert json.loads(values["TASKJOB_INPUTS"]) == {"extract": "hello", "load-raw": "[1,2]"}
    assert json.loads(env(render_job(META, task(), 1, {}))["TASKJOB_INPUTS"]) == {}


def test_output_references_are_substituted_in_command_args_and_env_values() -> None:
    t = task(
        command=["sh", "-c", "echo {{tasks.extract.output}}"],
        args=["--in={{ tasks.extract.output }}", "{{tasks.gone.output}}|"],
        env=[{"name": "IN", "value": "got {{tasks.extract.output}}"}, {"name": "PLAIN", "value": "x"}],
    )
    job = render_job(META, t, 1, {"extract": "hello"})
    assert container(job)["command"] == ["sh", "-c", "echo hello"]
    assert container(job)["args"] == ["--in=hello", "|"]
    assert env(job)["IN"] == "got hello"
    assert env(job)["PLAIN"] == "x"


def test_substituted_outputs_survive_kubelet_variable_expansion() -> None:
    # The kubelet turns $$ into $ and $(VAR) into VAR's value in args and env: outputs are escaped.
    assert substitute("{{tasks.a.output}}", {"a": "cost $(PRICE) $5"}) == "cost $$(PRICE) $$5"
    assert env(render_job(META, task(), 1, {"a": "$(HOME)"}))["TASKJOB_INPUT_A"] == "$$(HOME)"


def test_reserved_names_win_over_user_env_and_value_from_is_kept() -> None:
    t = task(
        env=[
            {"name": "TASKJOB_ATTEMPT", "value": "99"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ]
    )
    entries = container(render_job(META, t, 1, {}))["env"]
    assert [e["value"] for e in entries if e["name"] == "TASKJOB_ATTEMPT"] == ["1"]
    assert {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in entries
    # Ours come first so user values may refer to them as $(TASKJOB_RUN_ID).
    assert entries[0]["name"] == "TASKJOB_NAME" and entries[-1]["name"] == "POD"


# ---------------------------------------------------------------- podTemplate

POD_TEMPLATE = {
    "metadata": {
        "labels": {"team": "data", "taskjob.dev/attempt": "7"},
        "annotations": {"prometheus.io/scrape": "false"},
    },
    "spec": {
        "restartPolicy": "OnFailure",
        "serviceAccountName": "etl-runner",
        "nodeSelector": {"kubernetes.io/arch": "arm64"},
        "tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000},
        "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}],
        "containers": [
            {
                "name": "task",
                "image": "evil:latest",
                "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
                "env": [{"name": "FROM_TEMPLATE", "value": "1"}, {"name": "MODE", "value": "template"}],
                "terminationMessagePolicy": "FallbackToLogsOnError",
            },
            {"name": "proxy", "image": "envoyproxy/envoy:v1.31"},
        ],
    },
}


def templated_job() -> dict[str, Any]:
    t = task(
        command=["run"],
        env=[{"name": "MODE", "value": "task"}],
        podTemplate=POD_TEMPLATE,
        resources={"limits": {"memory": "64Mi"}},
    )
    return render_job(META, t, 2, {"extract": "hello"})


def test_pod_template_fields_reach_the_pod() -> None:
    job = templated_job()
    spec = pod_spec(job)
    assert spec["serviceAccountName"] == "etl-runner"
    assert spec["nodeSelector"] == {"kubernetes.io/arch": "arm64"}
    assert spec["tolerations"] == [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["securityContext"] == {"runAsNonRoot": True, "runAsUser": 1000}
    assert spec["volumes"] == [{"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}]
    assert container(job)["volumeMounts"] == [{"name": "scratch", "mountPath": "/scratch"}]
    assert [c["name"] for c in spec["containers"]] == ["task", "proxy"]
    meta = job["spec"]["template"]["metadata"]
    assert meta["labels"]["team"] == "data"
    assert meta["annotations"]["prometheus.io/scrape"] == "false"


def test_pod_template_cannot_override_what_the_operator_relies_on() -> None:
    job = templated_job()
    c = container(job)
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert job["spec"]["template"]["metadata"]["labels"]["taskjob.dev/attempt"] == "2"
    assert c["image"] == "busybox:1.36"
    assert c["command"] == ["run"]
    assert c["terminationMessagePolicy"] == "File"
    assert c["resources"] == {"limits": {"memory": "64Mi"}}
    values = env(job)
    assert values["MODE"] == "task"  # the task's own env beats the template's
    assert values["FROM_TEMPLATE"] == "1"
    assert values["TASKJOB_INPUT_EXTRACT"] == "hello"
    assert [e["name"] for e in c["env"]].count("MODE") == 1


def test_an_unnamed_first_container_entry_extends_the_task_container() -> None:
    t = task(podTemplate={"spec": {"containers": [{"workingDir": "/work"}]}})
    job = render_job(META, t, 1, {})
    assert [c["name"] for c in pod_spec(job)["containers"]] == ["task"]
    assert container(job)["workingDir"] == "/work"


def test_rendering_does_not_mutate_the_task() -> None:
    t = task(podTemplate=POD_TEMPLATE)
    before = json.dumps(t.pod_template, sort_keys=True)
    job = render_job(META, t, 1, {})
    job["spec"]["template"]["spec"]["volumes"].append({"name": "extra"})
    container(job)["volumeMounts"].clear()
    assert json.dumps(t.pod_template, sort_keys=True) == before


def test_a_rendered_job_shares_nothing_with_the_task() -> None:
    t = task(
        podTemplate=POD_TEMPLATE,
        command=["run"],
        args=["--x"],
        resources={"limits": {"cpu": "1"}},
        env=[{"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
    )
    first = render_job(META, t, 1, {})
    expected = json.dumps(first, sort_keys=True)

    def wreck(value: Any) -> None:  # what a caller may do to a Job it was given: change any part of it
        children = list(value.values()) if isinstance(value, dict) else value if isinstance(value, list) else []
        for child in children:
            wreck(child)
        if isinstance(value, dict | list):
            value.clear()

    wreck(first)
    assert json.dumps(render_job(META, t, 1, {}), sort_keys=True) == expected


# ---------------------------------------------------------------- against the Kubernetes schema


@pytest.mark.parametrize(
    "job",
    [
        pytest.param(render_job(META, task(timeoutSeconds=60, args=["a"]), 1, {"x": "1"}), id="plain"),
        pytest.param(templated_job(), id="pod-template"),
    ],
)
def test_rendered_job_is_a_valid_v1_job_with_no_unknown_fields(job: dict[str, Any]) -> None:
    assert through_client(job) == job


def test_stop_patch_sets_a_one_second_deadline_and_says_why() -> None:
    patch = stop_job_patch("StartupTimeout", "the pod did not start within 300s: ImagePullBackOff")
    assert patch == {
        "metadata": {
            "annotations": {
                "taskjob.dev/stop-reason": "StartupTimeout",
                "taskjob.dev/stop-message": "the pod did not start within 300s: ImagePullBackOff",
            }
        },
        "spec": {"activeDeadlineSeconds": 1},
    }
    job = render_job(META, task(), 1, {})
    patched = {**job, "metadata": {**job["metadata"], **patch["metadata"]}, "spec": {**job["spec"], **patch["spec"]}}
    assert through_client(patched) == patched
