"""HA: two operators with kopf peering; only the higher priority acts; when it dies the other finishes."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from operator_harness import ROOT, OperatorProcess, TaskJobs, poll
from outcomes import pod_outcomes

pytestmark = pytest.mark.cluster

PEERING_CRDS = ROOT / "charts" / "taskjob-operator" / "crds" / "kopf.dev_peerings.yaml"


@pytest.fixture
def peering(kubectl: Callable[..., str], namespace: str) -> str:
    kubectl("apply", "--server-side", "-f", str(PEERING_CRDS))
    kubectl("wait", "--for=condition=Established", "crd/kopfpeerings.kopf.dev", "--timeout=60s")
    kubectl("apply", "-n", namespace, "-f", "-",
            input="apiVersion: kopf.dev/v1\nkind: KopfPeering\nmetadata: {name: taskjob}\n")
    return "taskjob"


@pytest.fixture
def replicas(
    kubeconfig: str, namespace: str, taskjob_crd: None, peering: str, tmp_path: Path
) -> Iterator[tuple[OperatorProcess, OperatorProcess]]:
    ops: list[OperatorProcess] = []
    try:
        for name, priority in (("leader", 100), ("standby", 50)):
            (tmp_path / name).mkdir()
            ops.append(OperatorProcess(kubeconfig, [namespace], tmp_path / name,
                                       extra=["--peering", peering, "--priority", str(priority)]))
            ops[-1].start()
        yield ops[0], ops[1]
    finally:
        for op in ops:
            op.stop()
    for op in ops:
        assert "Traceback" not in op.logs()


def test_standby_takes_over_when_the_leader_dies(
    replicas: tuple[OperatorProcess, OperatorProcess], taskjobs: TaskJobs
) -> None:
    leader, standby = replicas
    poll(lambda: "now acts" in leader.logs(), 30, "the leader to act")
    slow = {"metadata": {"annotations": pod_outcomes(0, duration_ms=2000)}}
    flaky = {"metadata": {"annotations": pod_outcomes({1: 1, 2: 0}, duration_ms=1000)}}
    tasks = [{"name": "a", "podTemplate": slow}]
    tasks += [{"name": f"m{i}", "dependsOn": ["a"], "podTemplate": flaky if i % 2 else slow} for i in range(4)]
    tasks += [{"name": "z", "dependsOn": [f"m{i}" for i in range(4)], "podTemplate": slow}]
    taskjobs.create({
        "apiVersion": "taskjob.dev/v1alpha1", "kind": "TaskJob", "metadata": {"name": "ha"},
        "spec": {"defaults": {"image": "busybox:1.36", "retry": {"backoff": {"delaySeconds": 1}}}, "tasks": tasks},
    })
    poll(lambda: taskjobs.status("ha").get("running"), 30, "a running task")
    assert not re.search(r"created Job", standby.logs()), "the standby acted while the leader was alive"
    leader.kill()
    status = taskjobs.wait_phase("ha", ("Succeeded", "Failed"), timeout=120)
    assert status["phase"] == "Succeeded", status.get("message")
    assert "now acts" in standby.logs()
    per_attempt = Counter(
        (j.metadata.labels["taskjob.dev/task"], j.metadata.labels["taskjob.dev/attempt"]) for j in taskjobs.jobs("ha")
    )
    assert max(per_attempt.values()) == 1, per_attempt
    assert sum(1 for t, _ in per_attempt if t in ("m1", "m3")) == 4  # flaky ones: exactly two attempts each
