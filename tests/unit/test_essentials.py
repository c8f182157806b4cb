"""The watch keeps only the essentials of Jobs and pods: the facts read from them must not change."""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_observe import (
    BACKOFF,
    DEADLINE,
    complete,
    evicted,
    failed,
    job,
    pod,
    running,
    stopped_job,
    terminated,
    waiting,
)

from taskjobs.core.observe import attempt_fact
from taskjobs.shell.essentials import decode_event, decode_list, essentials

CASES: list[tuple[str, dict[str, Any], list[dict[str, Any]]]] = [
    ("pending, no pod", job(active=1), []),
    ("image pull back-off", job(active=1), [pod(waiting("ImagePullBackOff", "Back-off pulling"), "Pending")]),
    ("running", job(active=1), [pod(running(), "Running")]),
    ("succeeded with output", job(*complete(), completionTime="2025-03-01T10:00:20Z"),
     [pod(terminated(0, "Completed", '{"rows": 3}'), "Succeeded")]),
    ("output at the cap, 3 containers", job(*complete()),
     [pod(terminated(0, "Completed", "x" * 4096), "Succeeded", containers=3)]),
    ("failed, exit code", job(*failed(*BACKOFF)), [pod(terminated(3, "Error", "bad row"), "Failed")]),
    ("deadline", job(*failed(*DEADLINE)), [pod(running(), "Running")]),
    ("stopped", stopped_job(*failed(*DEADLINE)), [pod(running(), "Running")]),
    ("stopping", stopped_job(active=1), [pod(waiting("ImagePullBackOff"), "Pending")]),
    ("evicted, then replaced", job(active=1), [evicted(), pod(running(9), "Running", name="etl-transform-2-new22",
                                                               created=9)]),
    ("unschedulable", job(active=1), [pod({}, "Pending", conditions=[
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes are available",
         "lastProbeTime": None, "lastTransitionTime": "2025-03-01T10:00:01Z"}])]),
    ("pod succeeded, Job not yet Complete", job(active=1), [pod(terminated(0, "Completed", "7"), "Succeeded")]),
    ("pod succeeded after the Job's deadline", {**job(active=1), "spec": {"activeDeadlineSeconds": 10}},
     [pod(terminated(0, "Completed", "7", finished=18), "Succeeded")]),
    ("init container failed", job(*failed(*BACKOFF)), [pod({}, "Failed", init=[
        {"name": "fetch", "state": {"terminated": {"exitCode": 2, "reason": "Error", "message": "no such bucket"}}}])]),
]  # fmt: skip


@pytest.mark.parametrize(("case", "the_job", "pods"), CASES, ids=[c[0] for c in CASES])
def test_facts_of_the_essentials_equal_the_facts_of_the_full_objects(
    case: str, the_job: dict[str, Any], pods: list[dict[str, Any]]
) -> None:
    full = attempt_fact(the_job, pods)
    lean = attempt_fact(essentials("jobs", the_job), [essentials("pods", p) for p in pods])
    assert full is not None
    assert lean == full


def test_a_watch_line_keeps_the_facts_and_drops_the_rest() -> None:
    the_pod = pod(terminated(0, "Completed", "out"), "Succeeded")
    the_pod["metadata"]["managedFields"] = [{"manager": "kubelet", "fieldsV1": {"f:status": {}}}]
    event = decode_event("pods", json.dumps({"type": "MODIFIED", "object": the_pod}).encode())
    assert event.type == "MODIFIED"
    assert "managedFields" not in event.object["metadata"]
    assert event.object["spec"] == {"containers": [{"name": "task"}]}
    assert attempt_fact(job(*complete()), [event.object]) == attempt_fact(job(*complete()), [the_pod])
    assert "hostIP" not in event.object["status"] and "image" not in event.object["status"]["containerStatuses"][0]


def test_an_expired_watch_says_410() -> None:
    line = b'{"type":"ERROR","object":{"kind":"Status","status":"Failure","reason":"Expired","code":410}}'
    assert decode_event("jobs", line).code == 410


def test_a_list_gives_items_and_its_version() -> None:
    data = json.dumps({"kind": "JobList", "metadata": {"resourceVersion": "42"}, "items": [job(active=1)]}).encode()
    items, version = decode_list("jobs", data)
    assert version == "42"
    assert [i["metadata"]["name"] for i in items] == ["etl-transform-2"]
    assert decode_list("pods", b'{"metadata":{"resourceVersion":"7"},"items":null}') == ([], "7")
