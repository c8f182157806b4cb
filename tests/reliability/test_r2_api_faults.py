"""R2: the operator talks to the API server through a proxy that injects faults (see faultproxy.py).

Injected: 429 with Retry-After, 500 (before and after the write), 409 conflicts, dropped connections,
and on watches 410 Gone, cut and stalled streams. The same invariants as R1 must hold. A watch that
goes silent (no event, no bookmark, connection open) must be noticed and re-established without
losing the events it held back.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import pytest
from faultproxy import FaultProxy, Faults
from operator_harness import OperatorProcess, TaskJobs, poll
from outcomes import pod_outcomes
from reliability import SOAK
from scenarios import check, finished, random_scenario

pytestmark = pytest.mark.cluster

DAGS = 20 if SOAK else 6
RATE = 0.15  # the fraction of requests that get a fault
WATCH_RATE = 0.8  # the fraction of watches that break (410, cut, stall) within seconds of opening
# Tracebacks the operator may log under injected faults: a failed reconcile is logged with its exception
# and retried. Anything else (a TypeError, a KeyError ...) is a bug.
INJECTED = (
    r"(ApiException|ServiceException|ConflictException|TooManyRequestsException): \((409|429|500)\)",
    r"ApiError: HTTP (409|429|500)\b",  # the operator's own error type (shell/apisession.py)
    r"(ProtocolError|RemoteDisconnected|ConnectionResetError|MaxRetryError|IncompleteRead|ConnectionError)",
    # the same faults met by the lean aiohttp client (Job creates, status patches, the Job and pod watches)
    r"(ServerDisconnectedError|ClientOSError|ClientConnectionError|ClientPayloadError)",
)
# kopf (TaskJobs) and the lean watch (Jobs, pods: ownedwatch.INACTIVITY_SECONDS) stop waiting on a watch
# that sends nothing, not even a bookmark, after this long, and reconnect.
KOPF_INACTIVITY_TIMEOUT = 70


def one_task(name: str, duration_ms: int = 500, **fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": "taskjob.dev/v1alpha1",
        "kind": "TaskJob",
        "metadata": {"name": name},
        "spec": {
            "defaults": {"image": "busybox:1.36", "retry": {"backoff": {"delaySeconds": 1}}},
            "tasks": [{
                "name": "only",
                "podTemplate": {"metadata": {"annotations": pod_outcomes(0, duration_ms=duration_ms)}},
                **fields,
            }],
        },
    }


def test_r2_operator_through_faulty_api_finishes_every_taskjob(
    operators: Callable[..., OperatorProcess],
    fault_proxy: Callable[[Faults], tuple[FaultProxy, str]],
    taskjobs: TaskJobs,
    rng: random.Random,
    figures: dict[str, Any],
) -> None:
    faults = Faults(rate=RATE, watch_rate=WATCH_RATE, seed=rng.randrange(1 << 30), stall_seconds=None if SOAK else 8)
    proxy, config = fault_proxy(faults)
    op = operators(config, allowed=INJECTED)
    scenarios = [random_scenario(rng, f"dag{i}") for i in range(DAGS)]
    for s in scenarios:
        taskjobs.create(s.manifest())
    names = [s.name for s in scenarios]
    started = time.monotonic()
    poll(lambda: finished(taskjobs, names), 900 if SOAK else 300, "every TaskJob to finish")
    assert op.healthy(), "the operator died under API faults"
    problems = [p for s in scenarios for p in check(taskjobs, s)]
    figures.update(
        dags=len(scenarios),
        tasks=sum(len(s.tasks) for s in scenarios),
        seconds=round(time.monotonic() - started),
        rate=RATE,
        watch_rate=WATCH_RATE,
        proxy=proxy.summary(),
        failed_reconciles=op.logs().count("failed (attempt"),
        problems=len(problems),
    )
    assert not problems, "\n".join(problems)


def test_r2_operator_starts_while_the_api_fails(
    operators: Callable[..., OperatorProcess],
    fault_proxy: Callable[[Faults], tuple[FaultProxy, str]],
    taskjobs: TaskJobs,
    rng: random.Random,
    figures: dict[str, Any],
) -> None:
    """Faults during the startup listing must not delay the operator by kopf's 60 s handler retry."""
    proxy, config = fault_proxy(Faults(rate=0.3, seed=rng.randrange(1 << 30), request_kinds=("429", "500", "drop")))
    scenario = random_scenario(rng, "early")
    taskjobs.create(scenario.manifest())
    started = time.monotonic()
    op = operators(config, allowed=INJECTED)
    poll(lambda: finished(taskjobs, [scenario.name]), 150, "the TaskJob to finish")
    figures.update(seconds=round(time.monotonic() - started), proxy=proxy.summary())
    assert op.healthy()
    assert not check(taskjobs, scenario)


def test_r2_silent_watch_is_noticed_and_its_events_are_not_lost(
    operators: Callable[..., OperatorProcess],
    fault_proxy: Callable[[Faults], tuple[FaultProxy, str]],
    taskjobs: TaskJobs,
    figures: dict[str, Any],
) -> None:
    proxy, config = fault_proxy(Faults(rate=0.0))
    operators(config)
    poll(lambda: proxy.open_watches("/jobs") and proxy.open_watches("/pods"), 30, "the operator's Job and pod watches")
    silenced_at = time.monotonic()
    # Both: the pod's success alone would end the attempt (observe.py), so the Job's watch is not the only way.
    assert proxy.silence("/jobs") >= 1 and proxy.silence("/pods") >= 1
    taskjobs.create(one_task("quiet"))
    # The Job completes while the operator hears nothing of it: the TaskJob stays Running meanwhile.
    poll(lambda: any(c.type == "Complete" for j in taskjobs.jobs("quiet") for c in j.status.conditions or ()),
         30, "the Job to complete")
    assert taskjobs.status("quiet").get("phase") == "Running"
    # The watch notices the silence (its inactivity timeout) and watches again from the last resourceVersion.
    status = taskjobs.wait_phase("quiet", ("Succeeded", "Failed"), timeout=KOPF_INACTIVITY_TIMEOUT + 60)
    figures.update(recovered_after_seconds=round(time.monotonic() - silenced_at))
    assert status["phase"] == "Succeeded", status.get("message")
    assert [j.metadata.labels["taskjob.dev/attempt"] for j in taskjobs.jobs("quiet")] == ["1"]


def test_r2_job_deleted_while_the_watch_is_away_is_noticed_after_410(
    operators: Callable[..., OperatorProcess],
    fault_proxy: Callable[[Faults], tuple[FaultProxy, str]],
    taskjobs: TaskJobs,
    figures: dict[str, Any],
) -> None:
    """A 410 Gone makes kopf list again; a Job deleted during the gap sends no DELETED event then.

    The operator must still learn that the attempt's Job is gone (and count the attempt as lost).
    """
    proxy, config = fault_proxy(Faults(rate=0.0))
    operators(config)
    annotations = pod_outcomes({1: 0, 2: 0}, duration_ms=600_000)
    annotations["kwok.taskjob.dev/duration-attempt-2"] = "500ms"
    manifest = one_task("gap", retry={"limit": 1})
    manifest["spec"]["tasks"][0]["podTemplate"]["metadata"]["annotations"] = annotations
    taskjobs.create(manifest)
    poll(lambda: taskjobs.status("gap").get("running"), 30, "the task to run")
    poll(lambda: proxy.open_watches("/jobs"), 30, "the operator's Job watch")
    assert proxy.silence("/jobs") >= 1
    taskjobs.batch.delete_namespaced_job("gap-only-1", taskjobs.ns, propagation_policy="Background")
    poll(lambda: not taskjobs.jobs("gap"), 30, "the Job to be gone")
    proxy.end_silenced("/jobs", "410")  # as the API server answers a watch resumed too late
    status = taskjobs.wait_phase("gap", ("Succeeded", "Failed"), timeout=150)
    figures.update(attempts=status["tasks"]["only"]["attempts"])
    assert status["phase"] == "Succeeded", status.get("message")
    assert status["tasks"]["only"]["attempts"] == 2
