"""The TaskJob API (taskjob.dev/v1alpha1) as pydantic models.

These classes are the one source of truth: the CRD schema in crds/ is generated from them
(`taskjobs.crd`), and a test fails if the checked-in CRD drifts. Field descriptions become
`kubectl explain` text, so they are written for users.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema
from pydantic.alias_generators import to_camel

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
MAX_TASKS = 10_000
MAX_MESSAGE = 512  # status messages are cut here so status stays bounded
MAX_UNITS = 10_000  # tasks plus fan-out instances: what keeps status.tasks bounded (see core/fanout.py)
DEFAULT_MAX_ITEMS = 1000  # forEach.fromOutput without maxItems


def _rfc3339(value: datetime) -> str:
    # Formatted by hand: strftime was a third slower, and every task's times are written in each status dump.
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:{value.minute:02d}:{value.second:02d}Z"
    )


# Kubernetes timestamps: RFC 3339, UTC, whole seconds.
Timestamp = Annotated[datetime, PlainSerializer(_rfc3339, return_type=str, when_used="json-unless-none")]

FreeForm = Annotated[
    dict[str, Any],
    Field(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}),
]


class ApiModel(BaseModel):
    """Base for API objects: camelCase on the wire, snake_case in Python, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


# ---------------------------------------------------------------- spec


class Backoff(ApiModel):
    """Exponential backoff: the wait before retry n is min(delaySeconds·factor^(n-1), maxDelaySeconds)."""

    delay_seconds: float | None = Field(
        None, ge=0, le=86400, description="Wait before the first retry, in seconds. Default 10."
    )
    factor: float | None = Field(
        None, ge=1, le=100, description="Multiplier applied to the wait after each failed retry. Default 2."
    )
    max_delay_seconds: float | None = Field(
        None, ge=0, le=86400, description="Upper bound on any single wait, in seconds. Default 300."
    )


class RetryPolicy(ApiModel):
    """How a failed task is retried."""

    limit: int | None = Field(
        None,
        ge=0,
        le=100,
        description="Retries after the first attempt: a task runs at most limit+1 times. Default 3.",
    )
    backoff: Backoff | None = Field(None, description="Wait between attempts. Unset fields inherit.")
    non_retriable_exit_codes: list[Annotated[int, Field(ge=0, le=255)]] | None = Field(
        None,
        max_length=256,
        description="Exit codes that fail the task at once, with no retry (e.g. bad input).",
    )


class EnvVar(ApiModel):
    """An environment variable for the task's container (core/v1 EnvVar)."""

    name: str = Field(..., min_length=1, max_length=256, description="Variable name.")
    value: str | None = Field(
        None, max_length=32768, description="Literal value. May use {{tasks.<name>.output}}."
    )
    value_from: FreeForm | None = Field(
        None, description="Source for the value (core/v1 EnvVarSource: secretKeyRef, fieldRef, ...)."
    )


# Any JSON value, kept as written (a structural schema node without a type).
Item = Annotated[
    Any, WithJsonSchema({"description": "One item: any JSON value.", "x-kubernetes-preserve-unknown-fields": True})
]


class ForEach(ApiModel):
    """Run the task once per item of a list (fan-out): a literal list, or a dependency's output as a JSON list."""

    items: list[Item] | None = Field(
        None,
        min_length=1,
        max_length=MAX_UNITS,
        description=(
            "The items, one instance of the task each: strings, numbers, booleans or objects. Exactly one of "
            "items and fromOutput is set."
        ),
    )
    from_output: str | None = Field(
        None,
        min_length=1,
        max_length=63,
        description=(
            "A task listed in dependsOn whose output is a JSON list: one instance per element. An output "
            "that is not a JSON list, or longer than maxItems, fails this task."
        ),
    )
    max_items: int | None = Field(
        None,
        ge=1,
        le=MAX_UNITS,
        description=(
            "With fromOutput: the most instances the list may give; a longer list fails the task "
            "(TooManyItems). Default 1000. Counts towards the TaskJob's 10,000 tasks and instances."
        ),
    )


class TaskTemplate(ApiModel):
    """Fields a task may set, and spec.defaults may set for every task."""

    image: str | None = Field(None, min_length=1, max_length=1024, description="Container image.")
    command: list[Annotated[str, Field(max_length=32768)]] | None = Field(
        None, max_length=256, description="Entrypoint (replaces the image's ENTRYPOINT)."
    )
    args: list[Annotated[str, Field(max_length=32768)]] | None = Field(
        None,
        max_length=256,
        description="Arguments to the entrypoint. May use {{tasks.<name>.output}} for an upstream task's output.",
    )
    env: list[EnvVar] | None = Field(None, max_length=256, description="Environment variables.")
    resources: FreeForm | None = Field(
        None, description="Compute resources for the container (core/v1 ResourceRequirements)."
    )
    retry: RetryPolicy | None = Field(None, description="Retry policy. Unset fields inherit from defaults.")
    timeout_seconds: int | None = Field(
        None,
        ge=1,
        description="Per-attempt time limit (the Job's activeDeadlineSeconds). Unset: no limit.",
    )
    startup_timeout_seconds: int | None = Field(
        None,
        ge=1,
        description=(
            "How long an attempt's pod may stay unstarted (image pull errors, unschedulable, bad config) "
            "before the attempt fails. Default 300."
        ),
    )
    pod_template: FreeForm | None = Field(
        None,
        description=(
            "Escape hatch merged into the Job's pod template: metadata.labels/annotations and pod spec "
            "fields such as nodeSelector, tolerations, volumes, serviceAccountName."
        ),
    )


class TaskSpec(TaskTemplate):
    """One task of the DAG: a container run as a Kubernetes Job, once per attempt."""

    name: str = Field(
        ...,
        min_length=1,
        max_length=63,
        pattern=DNS_LABEL,
        description="Task name: a DNS-1123 label (lowercase letters, digits, '-'), unique in the TaskJob.",
    )
    depends_on: list[Annotated[str, Field(max_length=63)]] | None = Field(
        None,
        max_length=MAX_TASKS,
        description="Names of the other tasks that must succeed before this one starts.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    priority: int | None = Field(
        None,
        ge=-1000000,
        le=1000000,
        description="Among ready tasks, higher starts first when parallelism binds. Default 0.",
    )

    when: str | None = Field(
        None,
        min_length=1,
        max_length=4096,
        description=(
            "A CEL condition; the task runs only when it is true, else it ends Skipped (reason "
            "ConditionFalse) and its dependents still run unless they read its output. It may read "
            "tasks.<dependency>.phase, .reason and .output (e.g. int(tasks.count.output) > 3), and in a "
            "finally task taskjob.outcome and taskjob.failedTasks; in a task with forEach, item (each "
            "instance decides for its own item). Reading a dependency's phase or "
            "reason handles its outcome: its failure does not skip this task (e.g. "
            "tasks.build.phase == 'Failed' runs a task when build failed)."
        ),
    )
    for_each: ForEach | None = Field(
        None,
        description=(
            "Fan-out: run this task once per item, as instances <task>-0, <task>-1, ... that each retry on "
            "their own. {{item}} (and {{item.<field>}} for objects) in command, args and env values is the "
            "item (a string as is, any other value as JSON), as is TASKJOB_ITEM; TASKJOB_ITEM_INDEX is its "
            "index. The task succeeds when every instance succeeded, and its "
            "output, handed to dependents, is the JSON list of the instances' outputs in item order."
        ),
        # "Exactly one of items and fromOutput" is checked by validation (webhook, operator, CLI): CEL cannot
        # see `items`, whose elements have no type (any JSON value).
    )

    # No CEL rule for self-dependency: with tasks and dependsOn both capped at 10,000 its estimated
    # cost (10,000 x 10,007) is 10x the API server's per-rule budget. dag.build reports it instead.


FailurePolicy = Literal["FailFast", "ContinueIndependent"]


class TaskJobSpec(ApiModel):
    """A DAG of tasks, each run as Kubernetes Jobs; what to run and how."""

    # spec.finally's own rule keeps it unchanged; this one keeps it from being added or removed later,
    # which would start tasks in (or drop them from) a TaskJob that may already be final.
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.finally) == has(oldSelf.finally)",
                    "message": "spec.finally cannot be added or removed after creation; create a new TaskJob",
                }
            ]
        }
    )

    parallelism: int | None = Field(
        None, ge=1, description="At most this many tasks run at once. Unset: no limit."
    )
    failure_policy: FailurePolicy | None = Field(
        None,
        description=(
            "FailFast (default): after a task fails for good, launch nothing new, let running tasks "
            "finish, then fail. ContinueIndependent: keep running every task that does not depend on a "
            "failed one."
        ),
    )
    active_deadline_seconds: int | None = Field(
        None, ge=1, description="The whole TaskJob fails after running this long; running tasks are stopped."
    )
    ttl_seconds_after_finished: int | None = Field(
        None,
        ge=0,
        description="Delete the TaskJob (and so its Jobs and pods) this long after it finishes.",
    )
    suspend: bool | None = Field(
        None, description="true: launch nothing new (running tasks finish). false resumes."
    )
    defaults: TaskTemplate | None = Field(
        None, description="Values every task inherits for the fields it does not set."
    )
    tasks: list[TaskSpec] = Field(
        ...,
        min_length=1,
        max_length=MAX_TASKS,
        description="The tasks. Cannot change after creation.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "x-kubernetes-validations": [
                {"rule": "self == oldSelf", "message": "spec.tasks cannot change after creation; create a new TaskJob"}
            ],
        },
    )
    finally_: list[TaskSpec] | None = Field(
        None,
        alias="finally",
        max_length=100,
        description=(
            "Tasks that run after every task of spec.tasks has ended, whatever the outcome (not after "
            "activeDeadlineSeconds, which stops them too; not while suspended). They may depend on each "
            "other, get TASKJOB_OUTCOME (Succeeded or Failed) and TASKJOB_FAILED_TASKS (comma-separated) "
            "in their environment, and their failure fails the TaskJob. Cannot change after creation."
        ),
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "x-kubernetes-validations": [
                {"rule": "self == oldSelf", "message": "spec.finally cannot change after creation; create a new one"}
            ],
        },
    )


# ---------------------------------------------------------------- status

TaskPhase = Literal["Waiting", "Ready", "Running", "Retrying", "Succeeded", "Failed", "Skipped"]
TaskJobPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Suspended", "Invalid"]
TERMINAL_TASK_PHASES: frozenset[str] = frozenset({"Succeeded", "Failed", "Skipped"})
TERMINAL_PHASES: frozenset[str] = frozenset({"Succeeded", "Failed", "Invalid"})


class StatusModel(ApiModel):
    """Status models drop empty fields when written, to keep status small."""

    model_config = ConfigDict(extra="ignore")


class TaskState(StatusModel):
    """What a user needs to know about one task. Empty fields are omitted to keep status small."""

    phase: TaskPhase = Field(
        "Waiting",
        description=(
            "Waiting (dependencies not done), Ready (may start), Running, Retrying (waiting for "
            "nextRetryTime), Succeeded, Failed (for good), Skipped (its condition was false, a dependency "
            "failed or the TaskJob stopped; the reason says which)."
        ),
    )
    attempts: int | None = Field(None, ge=0, description="Attempts started so far (Jobs created).")
    job: str | None = Field(
        None,
        description=(
            "Name of the current or last Job. Omitted once the task succeeded, and for running tasks of "
            "TaskJobs of more than 1,000 tasks, to keep status small: it is then the Job labelled "
            "taskjob.dev/task=<task>,taskjob.dev/attempt=<attempts>."
        ),
    )
    start_time: Timestamp | None = Field(None, description="When the first attempt started.")
    attempt_start_time: Timestamp | None = Field(
        None,
        description=(
            "When the current attempt started, while a retry runs (the first attempt's is startTime). "
            "Lets the operator tell a Job it has not seen yet from a lost one."
        ),
    )
    finish_time: Timestamp | None = Field(None, description="When the task reached a final phase.")
    exit_code: int | None = Field(None, description="Exit code of the last finished attempt.")
    reason: str | None = Field(
        None, description="Machine-readable reason of the last failure or wait (e.g. ImagePullBackOff)."
    )
    message: str | None = Field(None, max_length=MAX_MESSAGE, description="Human-readable detail.")
    next_retry_time: Timestamp | None = Field(None, description="When the next attempt starts (Retrying).")
    retry_base: int | None = Field(
        None,
        ge=0,
        description=(
            "Attempts made before the last manual retry (taskjob retry); the retry limit counts the "
            "attempts after these."
        ),
    )
    items: int | None = Field(
        None,
        ge=0,
        description=(
            "A fan-out task (forEach): its number of instances, once known. Each instance has its own entry, "
            "<task>-<index>, with the fields of a task."
        ),
    )


class Condition(StatusModel):
    """A Kubernetes-style condition (metav1.Condition)."""

    type: str = Field(..., description="Condition type: Valid, Suspended, Complete or Failed.")
    status: Literal["True", "False", "Unknown"] = Field(..., description="True, False or Unknown.")
    reason: str = Field(..., description="CamelCase reason for the last transition.")
    message: str = Field("", description="Human-readable detail.")
    last_transition_time: Timestamp = Field(..., description="When the status last changed.")
    observed_generation: int | None = Field(None, description="The spec generation this reflects.")


class TaskJobStatus(StatusModel):
    """Progress of a TaskJob, written by the operator."""

    phase: TaskJobPhase = Field(
        "Pending", description="Pending, Running, Succeeded, Failed, Suspended or Invalid."
    )
    progress: str | None = Field(None, description="Succeeded tasks / total tasks, e.g. 3/5.")
    total: int | None = Field(None, description="Number of tasks.")
    running: int | None = Field(None, description="Tasks with a Job running now.")
    succeeded: int | None = Field(None, description="Tasks that succeeded.")
    failed: int | None = Field(None, description="Tasks that failed for good.")
    pending: int | None = Field(None, description="Tasks not started yet or waiting to retry.")
    skipped: int | None = Field(
        None, description="Tasks skipped: a condition was false, a dependency failed, or the TaskJob stopped."
    )
    start_time: Timestamp | None = Field(None, description="When the operator first acted on the TaskJob.")
    completion_time: Timestamp | None = Field(None, description="When the TaskJob reached a final phase.")
    observed_generation: int | None = Field(None, description="The spec generation this status reflects.")
    observed_retry: str | None = Field(
        None, description="The last manual retry request applied (the taskjob.dev/retry annotation's value)."
    )
    message: str | None = Field(None, max_length=MAX_MESSAGE, description="One human sentence on the state.")
    conditions: list[Condition] | None = Field(
        None,
        description="Kubernetes-style conditions.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    tasks: dict[str, TaskState] | None = Field(None, description="Per-task state, by task name.")


class TaskJobMeta(ApiModel):
    """The metadata the core needs: identity for names, labels and owner references."""

    model_config = ConfigDict(extra="ignore")

    name: str
    namespace: str = "default"
    uid: str = ""
    generation: int = 1
    creation_timestamp: Timestamp | None = None


class TaskJob(ApiModel):
    """A TaskJob runs a DAG of tasks as Kubernetes Jobs, retrying failures with exponential backoff."""

    model_config = ConfigDict(extra="ignore")

    api_version: Literal["taskjob.dev/v1alpha1"] = "taskjob.dev/v1alpha1"
    kind: Literal["TaskJob"] = "TaskJob"
    metadata: TaskJobMeta
    spec: TaskJobSpec
    status: TaskJobStatus | None = None


def dump_status(status: TaskJobStatus) -> dict[str, Any]:
    """Return the status as the JSON the API server stores (camelCase, no empty fields)."""
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)
