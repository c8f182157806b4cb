"""Prometheus metrics of the operator (served on /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TASKJOBS = Gauge("taskjob_taskjobs", "TaskJobs known to the operator, by phase.", ["phase"])
TASKS_STARTED = Counter("taskjob_tasks_started_total", "Task attempts launched (Jobs created).")
TASKS_SUCCEEDED = Counter("taskjob_tasks_succeeded_total", "Tasks that succeeded.")
TASKS_FAILED = Counter("taskjob_tasks_failed_total", "Tasks that failed for good.")
TASKS_RETRIED = Counter("taskjob_tasks_retried_total", "Failed attempts that will be retried.")
TASK_DURATION = Histogram(
    "taskjob_task_duration_seconds",
    "Duration of finished tasks, first attempt start to final phase.",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200),
)
SCHEDULING_LATENCY = Histogram(
    "taskjob_scheduling_latency_seconds",
    "Last dependency observed finished -> dependent's Job created.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RECONCILE_SECONDS = Histogram(
    "taskjob_reconcile_duration_seconds",
    "Time spent in one reconcile of one TaskJob.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
API_REQUESTS = Counter(
    "taskjob_api_requests_total", "Kubernetes API requests sent (retries included), by operation.", ["operation"]
)
API_SECONDS = Histogram(
    "taskjob_api_request_duration_seconds",
    "Time from sending an API request to its answer (the rate limit's wait not included), by operation.",
    ["operation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
RATE_LIMIT_SECONDS = Histogram(
    "taskjob_api_rate_limit_wait_seconds",
    "Time an API request waited for the client's rate limit (--qps).",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
CONNECTION_WAIT_SECONDS = Histogram(
    "taskjob_api_connection_wait_seconds",
    "Time an API request, past the rate limit, waited for one of the connections in flight (part of"
    " taskjob_api_request_duration_seconds).",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
API_ERRORS = Counter("taskjob_api_errors_total", "Kubernetes API calls that failed.", ["operation"])
EVENTS_DROPPED = Counter("taskjob_events_dropped_total", "Events not sent because too many were queued.")
