"""What a Job and its pods say about one task attempt, as an AttemptFact.

Pure: reads plain dicts (or kopf bodies) shaped as the API returns them, camelCase; no client, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from . import naming
from .facts import AttemptFact
from .render import ANNOTATION_STOP_MESSAGE, ANNOTATION_STOP_REASON, CONTAINER

Obj = Mapping[str, Any]

JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")
# The kubelet keeps the last 4096 bytes of a container's termination message, and at most 12 KiB per pod
# shared by all its containers (pkg/kubelet/container/runtime.go, pkg/kubelet/status/status_manager.go).
MAX_CONTAINER_MESSAGE = 4096
MAX_POD_MESSAGES = 12 * 1024
# Waiting reasons that are progress, not trouble, in an init container.
_BENIGN_WAITING = frozenset({"ContainerCreating", "PodInitializing"})
# Job Failed reasons meaning the pod itself failed; the container then says why better than the Job does.
_POD_FAILED_REASONS = frozenset({"BackoffLimitExceeded", "PodFailurePolicy"})
# The Job controller's message when a pod failure policy rule fails the Job on an exit code
# (pkg/controller/job/pod_failure_policy.go, unchanged since v1.25); render adds such a rule for `task`.
_RULE_EXIT_CODE = re.compile(r"^Container (\S+) for pod \S+ failed with exit code (\d+) matching FailJob rule")


def parse_time(value: Any) -> datetime | None:
    """Return an RFC 3339 timestamp as an aware datetime (naive ones taken as UTC), or None if absent or bad."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _get(obj: Any, *path: str) -> Any:
    """Return obj[path[0]][path[1]]..., or None where a level is missing or not a mapping."""
    for key in path:
        # A dict first: the ABC check alone is ~3x slower, and this runs ~20 times per Job or pod event (B4).
        if type(obj) is not dict and not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _mapping(value: Any) -> Obj:
    return value if type(value) is dict or isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def job_key(job: Obj) -> tuple[str, str] | None:
    """Return (namespace, TaskJob name) of a Job we created, from its labels; None for any other Job."""
    taskjob = _get(job, "metadata", "labels", naming.LABEL_TASKJOB)
    if not isinstance(taskjob, str) or not taskjob:
        return None
    return _get(job, "metadata", "namespace") or "default", taskjob


def pod_job_name(pod: Obj) -> str | None:
    """Return the name of the Job that owns `pod` (job-name label, else controller ownerReference), or None."""
    labels = _mapping(_get(pod, "metadata", "labels"))
    for label in JOB_NAME_LABELS:
        if isinstance(labels.get(label), str) and labels[label]:
            return str(labels[label])
    for ref in _list(_get(pod, "metadata", "ownerReferences")):
        if _get(ref, "kind") == "Job" and _get(ref, "controller") is True and _get(ref, "name"):
            return str(ref["name"])
    return None


def _attempt(value: Any) -> int | None:
    try:
        attempt = int(value)
    except (TypeError, ValueError):
        return None
    return attempt if attempt >= 1 else None


def _terminal_condition(job: Obj) -> Obj | None:
    """Return the Job's Complete or Failed condition if True; FailureTarget and the like mean still finishing."""
    for cond in _list(_get(job, "status", "conditions")):
        if _get(cond, "type") in ("Complete", "Failed") and _get(cond, "status") == "True":
            return _mapping(cond)
    return None


def _container_status(statuses: Any) -> Obj:
    """Return the status of container `task` (the first one if none has that name), or {}."""
    entries = [_mapping(s) for s in _list(statuses)]
    return next((s for s in entries if s.get("name") == CONTAINER), entries[0] if entries else {})


def _terminated(pod: Obj | None) -> Obj:
    return _mapping(_get(_container_status(_get(pod, "status", "containerStatuses")), "state", "terminated"))


def _pods_of(job_name: str, pods: Sequence[Obj]) -> list[Obj]:
    """Return the pods of the Job named `job_name` (a pod that names no Job is taken as its)."""
    return [p for p in pods if pod_job_name(p) in (None, job_name)]


def _newest_pod(job_name: str, pods: Sequence[Obj], succeeded: bool) -> Obj | None:
    """Return the pod that speaks for the attempt: the newest of this Job's pods.

    A disruption makes the Job replace its pod within the attempt, so there may be several. For a
    succeeded Job the pod that succeeded is preferred; at equal creation times, a live pod wins.
    """
    mine = _pods_of(job_name, pods)
    if succeeded:
        mine = [p for p in mine if _get(p, "status", "phase") == "Succeeded"] or mine
    if not mine:
        return None

    def key(pod: Obj) -> tuple[datetime, bool, bool, str]:
        created = parse_time(_get(pod, "metadata", "creationTimestamp")) or datetime.min.replace(tzinfo=UTC)
        live = _get(pod, "metadata", "deletionTimestamp") is None
        running = _get(pod, "status", "phase") not in ("Succeeded", "Failed")
        return created, live, running, str(_get(pod, "metadata", "name") or "")

    return max(mine, key=key)


def pod_success(pod: Obj) -> tuple[bool, datetime | None]:
    """Return whether every container of the pod exited 0, and when the last one ended (if recorded).

    The kubelet reports a container's exit at once but the pod's Succeeded phase only after it has torn
    the pod down (about a second on a real node): with restartPolicy Never, every container having
    exited 0 already decides that phase. Native sidecars (init containers that always restart) do not.
    """
    phase = _get(pod, "status", "phase")
    if phase == "Failed":
        return False, None
    ended: dict[Any, datetime | None] = {}
    for status in _list(_get(pod, "status", "containerStatuses")):
        terminated = _mapping(_get(status, "state", "terminated"))
        if terminated and (phase == "Succeeded" or terminated.get("exitCode") == 0):
            ended[_get(status, "name")] = parse_time(terminated.get("finishedAt"))
    names = {_get(c, "name") for c in _list(_get(pod, "spec", "containers"))}
    if phase != "Succeeded" and (not names or not names <= ended.keys()):
        return False, None
    times = [t for t in ended.values() if t is not None]
    return True, max(times) if times else None


def pod_verdict(job: Obj, pods: Sequence[Obj]) -> tuple[Obj, datetime | None] | None:
    """Return a pod of the Job that succeeded in time, and when it ended: the attempt's verdict and finish.

    The Job controller batches a pod's updates for a second (`SyncJobBatchPeriod`) before it marks the Job
    Complete, and the kubelet reports the pod's phase a second after its containers' exits; a dependent
    waiting for both would start two seconds late at every step of a DAG on a real cluster. The pod's own
    verdict is the task's: with one completion, no retry in the Job (`backoffLimit: 0`) and restartPolicy
    Never, a pod whose containers all exited 0 is one the Job will count. Not when the operator is
    stopping the Job (its verdict is the stop's), nor when the containers ended after the Job's deadline
    (the Job may yet end DeadlineExceeded: its verdict is awaited). Once the Job is Complete the pod still
    decides when the attempt ended: the Job's completionTime is the controller's later sync.
    """
    if _get(job, "metadata", "annotations", ANNOTATION_STOP_REASON):
        return None
    job_name = str(_get(job, "metadata", "name") or "")
    deadline = _get(job, "spec", "activeDeadlineSeconds")
    began = parse_time(_get(job, "status", "startTime"))
    for pod in _pods_of(job_name, pods):
        succeeded, ended = pod_success(pod)
        if not succeeded:
            continue
        if not isinstance(deadline, int):
            return pod, ended
        if began is not None and ended is not None and ended <= began + timedelta(seconds=deadline):
            return pod, ended
    return None


def _message_limit(pod: Obj) -> int:
    """Return how many bytes of termination message the kubelet keeps for each container of `pod`."""
    spec = _mapping(pod.get("spec"))
    containers = sum(len(_list(spec.get(k))) for k in ("containers", "initContainers", "ephemeralContainers"))
    return min(MAX_CONTAINER_MESSAGE, MAX_POD_MESSAGES // max(containers, 1))


def _waiting(pod: Obj | None) -> tuple[str | None, str | None]:
    """Return (reason, message) saying why the pod has not started its task container, if it says."""
    if pod is None:
        return None, None
    for cond in _list(_get(pod, "status", "conditions")):
        if _get(cond, "type") == "PodScheduled" and _get(cond, "status") == "False":
            return _get(cond, "reason") or "Unschedulable", _get(cond, "message")
    for status in _list(_get(pod, "status", "initContainerStatuses")):
        waiting = _mapping(_get(status, "state", "waiting"))
        if waiting.get("reason") and waiting["reason"] not in _BENIGN_WAITING:
            detail = waiting.get("message")
            name = _get(status, "name")
            return waiting["reason"], f"init container {name}: {detail}" if detail else f"init container {name}"
    waiting = _mapping(_get(_container_status(_get(pod, "status", "containerStatuses")), "state", "waiting"))
    return waiting.get("reason"), waiting.get("message")


def _pods_verdict(job: Obj, cond: Obj) -> bool:
    """Return whether the Job ended by its pod's verdict, not by our stop or its own (a deadline ...)."""
    if _get(job, "metadata", "annotations", ANNOTATION_STOP_REASON):
        return False
    return cond.get("type") == "Complete" or not cond.get("reason") or cond.get("reason") in _POD_FAILED_REASONS


def _awaits_pod(job: Obj, cond: Obj, pod: Obj | None) -> bool:
    """Return whether the Job's end came from its pod's verdict, which no pod we hold shows yet.

    The Job controller ends a Job only after it saw the pod finish, so a running pod is an old view of
    it, and no pod at all means the pod watch lags (or failed to list): the pod's next event brings the
    exit code, termination message and output. A pod that failed without a container verdict (evicted,
    an init container) is not waited for; the plan stops waiting after a while (a pod deleted for good).
    """
    if not _pods_verdict(job, cond):
        return False  # our stop or the Job's deadline: the pod's exit code is not the task's
    if pod is None:
        return True
    if _terminated(pod) or _get(pod, "status", "phase") in ("Succeeded", "Failed") or _get(pod, "status", "reason"):
        return False
    return not any(
        _mapping(_get(status, "state", "terminated")) for status in _list(_get(pod, "status", "initContainerStatuses"))
    )


def _failure(job: Obj, cond: Obj, pod: Obj | None) -> tuple[str | None, str | None, int | None]:
    """Return (reason, message, exit code) of a failed attempt.

    A stop by the operator or a Job deadline killed the container: its exit code is not the task's verdict,
    so none is reported and the Job's reason (or the stop annotation) says why.
    """
    if not _pods_verdict(job, cond):
        annotations = _mapping(_get(job, "metadata", "annotations"))
        if annotations.get(ANNOTATION_STOP_REASON):
            return str(annotations[ANNOTATION_STOP_REASON]), annotations.get(ANNOTATION_STOP_MESSAGE) or None, None
        return str(cond.get("reason")), cond.get("message") or None, None
    terminated = _terminated(pod)
    if terminated:
        return terminated.get("reason") or "Error", terminated.get("message") or None, terminated.get("exitCode")
    ruled = _RULE_EXIT_CODE.match(str(cond.get("message") or "")) if cond.get("reason") == "PodFailurePolicy" else None
    if ruled and ruled.group(1) == CONTAINER:
        # The pod is not in sight, but the Job recorded the exit code; its termination message is lost.
        return "Error", None, int(ruled.group(2))
    for status in _list(_get(pod, "status", "initContainerStatuses")):
        init = _mapping(_get(status, "state", "terminated"))
        if init and init.get("exitCode") != 0:
            detail = init.get("message")
            name = _get(status, "name")
            message = f"init container {name} failed: {detail}" if detail else f"init container {name} failed"
            return init.get("reason") or "Error", message, None
    pod_reason = _get(pod, "status", "reason")
    if pod_reason:
        return str(pod_reason), _get(pod, "status", "message") or None, None
    # The pod is gone: the Job's own words ("reached the specified backoff limit") would mislead.
    return "PodFailed", "the task's pod failed; its exit code is no longer available", None


def finish_time(recorded: datetime | None, seen: datetime | None) -> datetime | None:
    """Return when an attempt ended, as precisely as known.

    Kubernetes records whole seconds, so an end recorded as 12:00:05 happened in [12:00:05, 12:00:06).
    When the operator saw it end within that second, the moment it saw it is the latest the end can have
    been: counting a sub-second backoff from there never starts the retry early. Otherwise (seen late, or
    not seen live: a restart lists it) the recorded second is all that is known.
    """
    if recorded is None or seen is None or not recorded <= seen < recorded + timedelta(seconds=1):
        return recorded
    return seen


def attempt_fact(job: Obj, pods: Sequence[Obj], seen_finished: datetime | None = None) -> AttemptFact | None:
    """Return what `job` and its `pods` say about one task attempt; None if the Job lacks our labels.

    `seen_finished`: when the operator's watch first showed the Job finished (see finish_time).
    """
    observed = observe_attempt(job, pods, seen_finished)
    return observed[0] if observed is not None else None


def observe_attempt(
    job: Obj, pods: Sequence[Obj], seen_finished: datetime | None = None
) -> tuple[AttemptFact, Obj | None] | None:
    """Return the attempt's fact (see attempt_fact) and the pod it was read from: the one that decided it,
    else the newest (None if no pod is in sight), so a view can show that pod's name beside it."""
    labels = _mapping(_get(job, "metadata", "labels"))
    task = labels.get(naming.LABEL_TASK)
    attempt = _attempt(labels.get(naming.LABEL_ATTEMPT))
    if job_key(job) is None or not isinstance(task, str) or not task or attempt is None:
        return None
    job_name = str(_get(job, "metadata", "name") or "")
    annotations = _mapping(_get(job, "metadata", "annotations"))
    cond = _terminal_condition(job)
    # The pod decides a Complete Job's attempt too (when it is in sight): an operator that saw the pod end
    # and one restarted after the Job's Complete must agree on when the attempt ended.
    verdict = pod_verdict(job, pods)
    by_pod = verdict is not None
    succeeded = by_pod or (cond is not None and cond.get("type") == "Complete")
    pod = verdict[0] if verdict is not None else _newest_pod(job_name, pods, succeeded)
    state = _mapping(_get(_container_status(_get(pod, "status", "containerStatuses")), "state"))
    started = _get(state, "running", "startedAt") or _get(state, "terminated", "startedAt")

    fact: dict[str, Any] = {
        "task": task,
        "attempt": attempt,
        "job_name": job_name,
        "created": parse_time(_get(job, "metadata", "creationTimestamp")),
        "start_time": parse_time(started) or parse_time(_get(job, "status", "startTime")),
        "stopping": bool(annotations.get(ANNOTATION_STOP_REASON)),
    }
    if verdict is not None:
        # The pod's end (its containers' last exit): the Job's completionTime is the controller's later sync.
        recorded = verdict[1] or (parse_time(_get(job, "status", "completionTime")) if cond is not None else None)
        fact["finish_time"] = finish_time(recorded, seen_finished)
    elif cond is not None:
        recorded = parse_time(_get(job, "status", "completionTime")) or parse_time(cond.get("lastTransitionTime"))
        fact["finish_time"] = finish_time(recorded, seen_finished)
    if cond is not None and not by_pod and _awaits_pod(job, cond, pod):
        # Deciding now would lose the exit code (non-retriable codes) or the output: the plan waits.
        fact["awaiting_pod"] = True
    if succeeded:
        terminated = _terminated(pod)
        fact["phase"] = "Succeeded"
        fact["exit_code"] = terminated.get("exitCode", 0) if terminated else None
        if terminated and pod is not None:
            output = str(terminated.get("message") or "")
            fact["output"] = output
            limit = _message_limit(pod)
            if len(output.encode()) >= limit:
                fact["reason"] = "OutputTruncated"
                fact["message"] = (
                    f"the output reached Kubernetes' {limit}-byte termination message limit and may be "
                    "truncated (only its last bytes are kept); pass large data by reference (object storage, "
                    "a volume)"
                )
    elif cond is not None:
        fact["phase"] = "Failed"
        fact["reason"], fact["message"], fact["exit_code"] = _failure(job, cond, pod)
    elif state.get("running") or state.get("terminated"):
        fact["phase"] = "Running"
    else:
        fact["phase"] = "Pending"
        fact["reason"], fact["message"] = _waiting(pod)
    return AttemptFact(**fact), pod
