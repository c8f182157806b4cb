"""The taskjob CLI against the real control plane: submit, get, watch, retry, logs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from operator_harness import OperatorProcess, TaskJobs
from outcomes import pod_outcomes

pytestmark = pytest.mark.cluster


def taskjob_cli(kubeconfig: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": kubeconfig}
    return subprocess.run([sys.executable, "-m", "taskjobs.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def manifest(tmp_path: Path, name: str, flaky_annotations: dict[str, str]) -> Path:
    doc = {
        "apiVersion": "taskjob.dev/v1alpha1",
        "kind": "TaskJob",
        "metadata": {"generateName": f"{name}-"},
        "spec": {
            "defaults": {"image": "busybox:1.36"},
            "tasks": [
                {"name": "prepare"},
                {"name": "flaky", "dependsOn": ["prepare"], "retry": {"limit": 0},
                 "podTemplate": {"metadata": {"annotations": flaky_annotations}}},
                {"name": "report", "dependsOn": ["flaky"]},
            ],
        },
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def submitted_name(out: str) -> str:
    # `taskjob submit` says which object it created, e.g. "created TaskJob ns/cli-abcde"
    return next(w for w in out.replace("/", " ").split() if w.startswith("cli-")).strip(".:")


def test_submit_watch_get_and_logs(operator: OperatorProcess, taskjobs: TaskJobs, kubeconfig: str,
                                   namespace: str, tmp_path: Path) -> None:
    path = manifest(tmp_path, "cli", pod_outcomes(0))
    sub = taskjob_cli(kubeconfig, "submit", str(path), "-n", namespace)
    assert sub.returncode == 0, sub.stderr
    name = submitted_name(sub.stdout + sub.stderr)
    watch = taskjob_cli(kubeconfig, "watch", name, "-n", namespace)
    assert watch.returncode == 0, watch.stdout + watch.stderr
    assert taskjobs.status(name)["phase"] == "Succeeded"
    get = taskjob_cli(kubeconfig, "get", name, "-n", namespace)
    assert get.returncode == 0, get.stderr
    out = get.stdout
    assert "Succeeded" in out and "3/3" in out
    assert out.index("prepare") < out.index("flaky") < out.index("report")  # ordered by the DAG
    logs = taskjob_cli(kubeconfig, "logs", name, "flaky", "-n", namespace)
    assert logs.returncode == 0, logs.stderr
    assert "flaky" in logs.stdout  # lines are prefixed by task; kwok pods have no log content


def test_watch_fails_then_retry_completes_it(operator: OperatorProcess, taskjobs: TaskJobs, kubeconfig: str,
                                             namespace: str, tmp_path: Path) -> None:
    # Attempt 1 of flaky fails (limit 0: no automatic retry); a manual retry runs attempt 2, which succeeds.
    path = manifest(tmp_path, "cli", pod_outcomes({1: 4, 2: 0}))
    sub = taskjob_cli(kubeconfig, "submit", str(path), "-n", namespace)
    name = submitted_name(sub.stdout + sub.stderr)
    watch = taskjob_cli(kubeconfig, "watch", name, "-n", namespace)
    assert watch.returncode == 1, watch.stdout + watch.stderr
    status = taskjobs.status(name)
    assert status["phase"] == "Failed" and status["tasks"]["report"]["phase"] == "Skipped"

    retry = taskjob_cli(kubeconfig, "retry", name, "-n", namespace)
    assert retry.returncode == 0, retry.stderr
    assert "flaky" in retry.stdout and "report" in retry.stdout
    status = taskjobs.wait_phase(name, "Succeeded")
    assert status["tasks"]["flaky"]["attempts"] == 2
    assert status["tasks"]["prepare"]["attempts"] == 1  # succeeded tasks are not re-run
    attempts = sorted((j.metadata.labels["taskjob.dev/task"], j.metadata.labels["taskjob.dev/attempt"])
                      for j in taskjobs.jobs(name))
    assert attempts == [("flaky", "1"), ("flaky", "2"), ("prepare", "1"), ("report", "1")]


def test_unknown_taskjob_is_one_clear_sentence(operator: OperatorProcess, kubeconfig: str, namespace: str) -> None:
    result = taskjob_cli(kubeconfig, "get", "nope", "-n", namespace)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "nope" in result.stderr
