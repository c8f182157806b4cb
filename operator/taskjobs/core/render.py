"""One task attempt as a batch/v1 Job, and the patch that stops a running Job: plain dicts for the API.

Pure: no client, no clock. The shell sends what these functions return.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from .. import API_VERSION, KIND
from . import naming
from .inputs import OUTPUT_REF
from .models import TaskJobMeta
from .resolve import ResolvedTask

CONTAINER = "task"
OUTPUT_PATH = "/dev/termination-log"

ANNOTATION_RUN_ID = "taskjob.dev/run-id"
ANNOTATION_STOP_REASON = "taskjob.dev/stop-reason"
ANNOTATION_STOP_MESSAGE = "taskjob.dev/stop-message"

ENV_NAME = "TASKJOB_NAME"
ENV_TASK = "TASKJOB_TASK"
ENV_ATTEMPT = "TASKJOB_ATTEMPT"
ENV_RUN_ID = "TASKJOB_RUN_ID"
ENV_OUTPUT_PATH = "TASKJOB_OUTPUT_PATH"
ENV_INPUTS = "TASKJOB_INPUTS"
ENV_INPUT_PREFIX = "TASKJOB_INPUT_"

def input_env_name(task: str) -> str:
    """Return the env var that carries `task`'s output: TASKJOB_INPUT_<TASK> (upper case, '-' as '_')."""
    return ENV_INPUT_PREFIX + task.upper().replace("-", "_")


def substitute(text: str, inputs: Mapping[str, str]) -> str:
    """Return `text` with every `{{tasks.<name>.output}}` replaced by that output ('' when unknown).

    Each `$` of an output is doubled: the kubelet expands `$(VAR)` in command, args and env values and
    turns `$$` into `$`, so the container sees the output exactly as the upstream task wrote it.
    """
    return OUTPUT_REF.sub(lambda m: inputs.get(m.group(1), "").replace("$", "$$"), text)


def _deep_merge(base: Any, over: Any) -> Any:
    """Return `over` merged onto `base`: dicts merge key by key, anything else (lists too) is replaced.

    Both are the caller's own fresh objects, so the result shares their parts: copying them again was half
    of a Job's rendering.
    """
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            merged[key] = _deep_merge(base[key], value) if key in base else value
        return merged
    return over


def _split_containers(entries: Any) -> tuple[dict[str, Any], list[Any]]:
    """Return (extra fields for container `task`, other containers) from podTemplate spec.containers.

    The entry named `task` is ours; failing that, a first entry without a name is. Every other entry is an
    additional container (a sidecar) kept as written.
    """
    if not isinstance(entries, list):
        return {}, []
    ours = next((i for i, c in enumerate(entries) if isinstance(c, dict) and c.get("name") == CONTAINER), None)
    if ours is None and entries and isinstance(entries[0], dict) and "name" not in entries[0]:
        ours = 0
    if ours is None:
        return {}, copy.deepcopy(entries)
    rest = [copy.deepcopy(c) for i, c in enumerate(entries) if i != ours]
    return copy.deepcopy(entries[ours]), rest


def _env(
    meta: TaskJobMeta, task: ResolvedTask, attempt: int, inputs: Mapping[str, str], extra: Any
) -> list[dict[str, Any]]:
    """Return the container env: ours first, then the task's, then podTemplate's; a name appears once.

    Ours come first so the user's values can refer to them as $(TASKJOB_RUN_ID). Our TASKJOB_* names are
    reserved: a user variable of the same name is dropped, as is a podTemplate variable the task also sets.
    """
    ordered = dict(sorted(inputs.items()))
    env: list[dict[str, Any]] = [
        {"name": ENV_NAME, "value": meta.name},
        {"name": ENV_TASK, "value": task.name},
        {"name": ENV_ATTEMPT, "value": str(attempt)},
        {"name": ENV_RUN_ID, "value": naming.run_id(meta.uid, task.name)},
        {"name": ENV_OUTPUT_PATH, "value": OUTPUT_PATH},
        *({"name": input_env_name(name), "value": value.replace("$", "$$")} for name, value in ordered.items()),
        {"name": ENV_INPUTS, "value": json.dumps(ordered, separators=(",", ":")).replace("$", "$$")},
    ]
    seen = {e["name"] for e in env}
    for var in task.env:
        if var.name in seen:
            continue
        seen.add(var.name)
        entry: dict[str, Any] = {"name": var.name}
        if var.value is not None:
            entry["value"] = substitute(var.value, inputs)
        if var.value_from is not None:
            entry["valueFrom"] = copy.deepcopy(var.value_from)
        env.append(entry)
    for var in extra if isinstance(extra, list) else []:
        if isinstance(var, dict) and var.get("name") not in seen:
            seen.add(var.get("name"))
            env.append(copy.deepcopy(var))
    return env


def _container(
    meta: TaskJobMeta, task: ResolvedTask, attempt: int, inputs: Mapping[str, str], extra: dict[str, Any]
) -> dict[str, Any]:
    """Return container `task`: podTemplate's extra fields under ours."""
    container = dict(extra)
    container["name"] = CONTAINER
    image = task.image or extra.get("image")
    if not image:
        raise ValueError(f"task {task.name!r} has no image: set spec.tasks[].image or spec.defaults.image")
    container["image"] = image
    if task.command is not None:
        container["command"] = [substitute(s, inputs) for s in task.command]
    if task.args is not None:
        container["args"] = [substitute(s, inputs) for s in task.args]
    container["env"] = _env(meta, task, attempt, inputs, extra.get("env"))
    if task.resources is not None:
        container["resources"] = copy.deepcopy(task.resources)
    # The output travels in the termination message: path and policy are not the user's to change.
    container["terminationMessagePath"] = OUTPUT_PATH
    container["terminationMessagePolicy"] = "File"
    return container


def render_job(meta: TaskJobMeta, task: ResolvedTask, attempt: int, inputs: Mapping[str, str]) -> dict[str, Any]:
    """Return the batch/v1 Job for one attempt of `task`, with `inputs` (upstream task -> output) handed in.

    `task.pod_template` is deep-merged under ours (dicts merge, lists replace); our labels, restartPolicy
    and the `task` container's name, image, command, args, env and termination message settings win.
    """
    labels = naming.attempt_labels(meta.name, task.name, attempt)
    run_id = naming.run_id(meta.uid, task.name)
    template: dict[str, Any] = copy.deepcopy(task.pod_template or {})
    tmeta: dict[str, Any] = template.get("metadata") or {}
    spec: dict[str, Any] = template.get("spec") or {}

    extra, others = _split_containers(spec.get("containers"))
    # Only labels and annotations of podTemplate.metadata apply: the Job controller names the pods.
    pod_meta = {
        "labels": {**(tmeta.get("labels") or {}), **labels},
        "annotations": {**(tmeta.get("annotations") or {}), ANNOTATION_RUN_ID: run_id},
    }
    pod_spec = _deep_merge(
        spec,
        {
            "restartPolicy": "Never",
            "containers": [_container(meta, task, attempt, inputs, extra), *others],
        },
    )

    job_spec: dict[str, Any] = {
        # The operator owns retries: one pod failure fails the attempt.
        "backoffLimit": 0,
        # A disruption (eviction, preemption, node drain) is not the task's fault: replace the pod within
        # the same attempt instead of counting a failure. A task's non-zero exit then fails the Job by rule,
        # so the Job's condition message records the exit code even when its pod is never seen (observe).
        "podFailurePolicy": {
            "rules": [
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                {"action": "FailJob", "onExitCodes": {"containerName": CONTAINER, "operator": "NotIn", "values": [0]}},
            ]
        },
        "template": {"metadata": pod_meta, "spec": pod_spec},
    }
    if task.timeout_seconds is not None:
        job_spec["activeDeadlineSeconds"] = task.timeout_seconds

    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": naming.job_name(meta.name, task.name, attempt),
            "namespace": meta.namespace,
            "labels": dict(labels),
            "annotations": {ANNOTATION_RUN_ID: run_id},
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": KIND,
                    "name": meta.name,
                    "uid": meta.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": job_spec,
    }


def stop_job_patch(reason: str, message: str) -> dict[str, Any]:
    """Return the merge patch that makes a running Job fail now (DeadlineExceeded) and keeps it as the record.

    Job spec.activeDeadlineSeconds is mutable and counts from the Job's status.startTime, so 1 makes the
    Job controller fail the Job and kill its pod at once. The annotations tell observers why.
    """
    return {
        "metadata": {"annotations": {ANNOTATION_STOP_REASON: reason, ANNOTATION_STOP_MESSAGE: message}},
        "spec": {"activeDeadlineSeconds": 1},
    }
