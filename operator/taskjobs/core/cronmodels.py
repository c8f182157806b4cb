"""The CronTaskJob API (taskjob.dev/v1alpha1): a TaskJob created on a cron schedule, as pydantic models.

Like `models.py` for TaskJob, these classes generate the CRD (`taskjobs.croncrd`), and their field
descriptions are what `kubectl explain crontaskjob` prints. The semantics follow Kubernetes' CronJob
wherever CronJob has an answer (names, defaults, missed runs), so its users meet no surprises.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from .models import ApiModel, Condition, StatusModel, TaskJobMeta, TaskJobSpec, Timestamp

CRON_KIND = "CronTaskJob"
CRON_PLURAL = "crontaskjobs"
# Child TaskJobs are named `<cron>-<minutes since the epoch>` (9 characters for centuries to come), and a
# TaskJob name is at most 63 characters: CronJob's limit of 52 leaves the same room.
MAX_CRON_NAME = 52
DEFAULT_SUCCESSFUL_HISTORY = 3  # CronJob's defaults
DEFAULT_FAILED_HISTORY = 1

ConcurrencyPolicy = Literal["Allow", "Forbid", "Replace"]

LabelMap = Annotated[
    dict[str, Annotated[str, Field(max_length=63)]],
    Field(max_length=64),
]
AnnotationMap = Annotated[
    dict[str, Annotated[str, Field(max_length=65536)]],
    Field(max_length=64),
]


class TemplateMeta(ApiModel):
    """Labels and annotations every TaskJob created from the template carries."""

    labels: LabelMap | None = Field(None, description="Labels added to each created TaskJob.")
    annotations: AnnotationMap | None = Field(None, description="Annotations added to each created TaskJob.")


class TaskJobTemplate(ApiModel):
    """The TaskJob to create at each scheduled time."""

    metadata: TemplateMeta | None = Field(
        None, description="Labels and annotations of each created TaskJob (its name is chosen by the operator)."
    )
    spec: TaskJobSpec = Field(..., description="The spec of each created TaskJob (the same as a TaskJob's spec).")


class CronTaskJobSpec(ApiModel):
    """When to create TaskJobs, what they look like, and how many to keep."""

    schedule: str = Field(
        ...,
        min_length=1,
        max_length=256,
        description=(
            "Cron schedule: five fields (minute hour day-of-month month day-of-week, as in crontab(5)) or "
            "one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly."
        ),
    )
    time_zone: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description=(
            "IANA time zone the schedule is read in, e.g. Europe/Berlin. Default Etc/UTC. Across daylight "
            "saving changes it behaves like Debian's cron: a time skipped by the clock runs just after the "
            "change, a time that happens twice runs once."
        ),
    )
    concurrency_policy: ConcurrencyPolicy | None = Field(
        None,
        description=(
            "What to do when a scheduled time comes while an earlier TaskJob still runs. Allow (default): "
            "start another. Forbid: do not start it; it starts late, once the earlier one ended, if still "
            "within startingDeadlineSeconds and no later time has come. Replace: delete the running ones "
            "and start the new one."
        ),
    )
    starting_deadline_seconds: int | None = Field(
        None,
        ge=0,
        description=(
            "A scheduled time missed by more than this many seconds (the operator was down, or Forbid held "
            "it back) is skipped, not run late. Unset: no deadline."
        ),
    )
    suspend: bool | None = Field(
        None,
        description="true: create no new TaskJobs (running ones go on). Missed times are judged again on resume.",
    )
    successful_jobs_history_limit: int | None = Field(
        None, ge=0, description="Succeeded TaskJobs to keep; older ones are deleted. Default 3."
    )
    failed_jobs_history_limit: int | None = Field(
        None, ge=0, description="Failed (or Invalid) TaskJobs to keep; older ones are deleted. Default 1."
    )
    task_job_template: TaskJobTemplate = Field(..., description="The TaskJob created at each scheduled time.")


class ActiveRef(StatusModel):
    """A TaskJob created by this CronTaskJob that has not finished."""

    name: str = Field(..., description="Name of the TaskJob.")
    uid: str | None = Field(None, description="UID of the TaskJob.")
    scheduled_time: Timestamp | None = Field(None, description="The scheduled time it was created for.")


class CronTaskJobStatus(StatusModel):
    """What the CronTaskJob has done, written by the operator."""

    active: list[ActiveRef] | None = Field(
        None, max_length=1000, description="TaskJobs created by this CronTaskJob that have not finished."
    )
    active_count: int | None = Field(None, ge=0, description="Number of TaskJobs in active (the ACTIVE column).")
    last_schedule_time: Timestamp | None = Field(
        None, description="The scheduled time of the last TaskJob created (not when it was created)."
    )
    last_successful_time: Timestamp | None = Field(
        None, description="When the last TaskJob created by this CronTaskJob that succeeded finished."
    )
    next_schedule_time: Timestamp | None = Field(
        None, description="The next scheduled time (unset while suspended or when the schedule is invalid)."
    )
    observed_generation: int | None = Field(None, description="The spec generation this status reflects.")
    message: str | None = Field(None, max_length=512, description="One human sentence on the state.")
    conditions: list[Condition] | None = Field(
        None,
        description="Kubernetes-style conditions: Valid, Suspended, MissedSchedules.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class CronTaskJob(ApiModel):
    """A CronTaskJob creates a TaskJob on a cron schedule, like a CronJob creates Jobs."""

    model_config = ConfigDict(extra="ignore")

    api_version: Literal["taskjob.dev/v1alpha1"] = "taskjob.dev/v1alpha1"
    kind: Literal["CronTaskJob"] = "CronTaskJob"
    metadata: TaskJobMeta
    spec: CronTaskJobSpec
    status: CronTaskJobStatus | None = None
