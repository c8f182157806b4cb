"""HA through the chart, with real pods: two replicas; the acting one's pod is killed with no grace mid-run, and the
other replica finishes the run with exactly one Job per (task, attempt)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from realnode_harness import Release, get_json, install, manifest, status_of, uninstall, wait_finished

pytestmark = [pytest.mark.cluster, pytest.mark.realnode]
Kubectl = Callable[..., str]


def test_the_standby_replica_finishes_the_run_when_the_leader_pod_is_killed(
    helm: Callable[..., str], kubectl: Kubectl, node_images: None, real_namespace: str,
    wait_for: Callable[..., Any],
) -> None:
    release = install(helm, kubectl, real_namespace, "replicaCount=2")
    try:
        ns = real_namespace
        slow = 'sleep 3; printf "%s" "$TASKJOB_TASK" > "$TASKJOB_OUTPUT_PATH"'
        tasks = [{"name": "a", "args": [slow]}]
        tasks += [{"name": f"m{i}", "dependsOn": ["a"], "args": [slow]} for i in range(4)]
        tasks += [{"name": "z", "dependsOn": [f"m{i}" for i in range(4)], "args": [slow]}]
        kubectl("apply", "-n", ns, "-f", "-", input=manifest(
            "ha", tasks, defaults={"image": "busybox:1.36", "command": ["sh", "-c"]}))
        wait_for(lambda: status_of(kubectl, ns, "ha").get("running"), 120, "a running task")
        leader = wait_for(lambda: leader_pod(kubectl, release), 60, "the replica that acts")
        kubectl("delete", "pod", "-n", release.namespace, leader, "--grace-period=0", "--force")
        status = wait_finished(kubectl, wait_for, ns, "ha", timeout=240)
        assert (status["phase"], status["progress"]) == ("Succeeded", "6/6"), status.get("message")
        jobs = get_json(kubectl, "jobs", "-n", ns, "-l", "taskjob.dev/taskjob=ha")["items"]
        labels = [j["metadata"]["labels"] for j in jobs]
        per_attempt = Counter((lb["taskjob.dev/task"], lb["taskjob.dev/attempt"]) for lb in labels)
        assert max(per_attempt.values()) == 1, per_attempt
    finally:
        uninstall(helm, kubectl, release)


def leader_pod(kubectl: Kubectl, release: Release) -> str | None:
    """Return the operator pod whose log says it acts (kopf peering), if exactly one does."""
    pods = get_json(kubectl, "pods", "-n", release.namespace, "-l", f"app.kubernetes.io/instance={release.name}")
    acting = []
    for pod in pods["items"]:
        log = kubectl("logs", "-n", release.namespace, pod["metadata"]["name"], check=False)
        if "now acts" in log or "created Job" in log:
            acting.append(pod["metadata"]["name"])
    return acting[0] if len(acting) == 1 else None

