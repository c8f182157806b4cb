"""Deterministic names and labels: the same (TaskJob, task, attempt) always gives the same Job name."""

from __future__ import annotations

import hashlib

MAX_NAME = 63  # the Job controller copies the Job name into a label value, which is capped at 63

LABEL_TASKJOB = "taskjob.dev/taskjob"
LABEL_TASK = "taskjob.dev/task"
LABEL_ATTEMPT = "taskjob.dev/attempt"

ANNOTATION_RETRY = "taskjob.dev/retry"  # a new value asks the operator for a manual retry
ANNOTATION_RETRY_TASKS = "taskjob.dev/retry-tasks"  # optional: comma-separated tasks to retry


def job_name(taskjob: str, task: str, attempt: int) -> str:
    """Return the Job name for one attempt of one task: `<taskjob>-<task>-<attempt>`, hashed past 63 chars."""
    plain = f"{taskjob}-{task}-{attempt}"
    if len(plain) <= MAX_NAME:
        return plain
    digest = hashlib.sha256(f"{taskjob}/{task}".encode()).hexdigest()[:10]
    suffix = f"-{digest}-{attempt}"
    prefix = f"{taskjob}-{task}"[: MAX_NAME - len(suffix)].rstrip("-")
    return prefix + suffix


def attempt_labels(taskjob: str, task: str, attempt: int) -> dict[str, str]:
    """Return the labels every Job and pod of this attempt carries."""
    return {LABEL_TASKJOB: taskjob, LABEL_TASK: task, LABEL_ATTEMPT: str(attempt)}


def run_id(taskjob_uid: str, task: str) -> str:
    """Return the idempotency key of a task's work: the same for every attempt of the task."""
    return f"{taskjob_uid}-{task}" if taskjob_uid else task
