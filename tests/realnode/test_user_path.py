"""A user's first hour, with real containers: the chart's operator image, the webhook behind its Service, every
example unmodified, `taskjob logs` / `taskjob get`, and the failure modes only a real kubelet produces.

Nothing here scripts an outcome with annotations: exit codes, termination messages, OOM kills, deadlines and
pull errors all come from containerd and the kubelet of the testenv's real node.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from realnode_harness import ROOT, Release, get_json, manifest, outputs, pods_of, wait_finished

pytestmark = [pytest.mark.cluster, pytest.mark.realnode]

EXAMPLES = ROOT / "examples"
Kubectl = Callable[..., str]

# example -> (phase, progress, {task: phase}, {task: output}, {task: a line its real container printed})
CASES: dict[str, tuple[str, str, dict[str, str], dict[str, str], dict[str, str]]] = {
    "hello": ("Succeeded", "1/1", {}, {"hello": "hello, world"}, {"hello": "hello from task hello, attempt 1"}),
    "diamond": ("Succeeded", "4/4", {}, {"sink": "root/left + root/right"}, {"left": "left: after root"}),
    "fan-out-fan-in": ("Succeeded", "6/6", {}, {"merge": "30"}, {"worker-3": "shard 3 of 4"}),
    "retry-backoff": (
        "Succeeded", "3/3", {"flaky": "Succeeded"}, {"report": "flaky succeeded on attempt 3"},
        {"flaky": "attempt 3"},
    ),
    "failure-policy": (
        "Failed", "3/5",
        {"broken": "Failed", "after-broken": "Skipped", "healthy": "Succeeded", "after-healthy": "Succeeded"},
        {"after-healthy": "healthy said ok"}, {"healthy": "healthy"},
    ),
    "etl-pipeline": ("Succeeded", "4/4", {}, {"reduce-sum": "110"}, {}),
    "conditions": (
        "Succeeded", "4/6",
        {"small": "Skipped", "report": "Succeeded", "deploy": "Failed", "rollback": "Succeeded"},
        {"rollback": "rolled back after deploy failed"}, {"big": "big batch of 7"},
    ),
    "notify-on-failure": (
        "Failed", "3/4", {"load": "Failed", "notify": "Succeeded", "cleanup": "Succeeded"},
        {"notify": "notify-on-failure Failed: load failed"}, {"cleanup": "cleanup after a Failed run"},
    ),
    "etl-fanout": (
        "Succeeded", "7/7", {"map-double": "Succeeded", "map-double-3": "Succeeded"},
        {"map-double": "[[2,4,6],[8,10,12],[14,16],[18,20]]", "reduce-sum": "110"}, {},
    ),
    "wordcount": (
        "Succeeded", "7/7", {},
        {"reduce": '{"a":2,"and":1,"brown":1,"dog":3,"fox":3,"jumps":1,"lazy":2,"over":1,"quick":2,"runs":1,'
                   '"sleeps":1,"the":4}'},
        {},
    ),
}


def taskjob_cli(kubeconfig: str, *args: str) -> str:
    """Run the `taskjob` CLI as a user would, against the testenv; return its stdout."""
    proc = subprocess.run(
        [sys.executable, "-m", "taskjobs.cli.main", *args], capture_output=True, text=True, timeout=120,
        env={**os.environ, "KUBECONFIG": kubeconfig, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, f"taskjob {' '.join(args)} exited {proc.returncode}: {proc.stderr}"
    return proc.stdout


# ---- the operator as the chart installs it ----


def test_the_chart_runs_the_operator_image_non_root_with_a_read_only_root(
    chart_operator: Release, kubectl: Kubectl, real_node: Any
) -> None:
    pods = get_json(kubectl, "pods", "-n", chart_operator.namespace, "-l",
                    f"app.kubernetes.io/instance={chart_operator.name}")["items"]
    assert len(pods) == 1
    pod = pods[0]
    assert pod["spec"]["nodeName"] == real_node.name
    ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert ready["Ready"] == "True", pod["status"]
    name = pod["metadata"]["name"]
    # The real process: its uid, and a root filesystem it cannot write.
    uid = kubectl("exec", "-n", chart_operator.namespace, name, "--", "id", "-u").strip()
    assert uid == "10001"
    touch = kubectl("exec", "-n", chart_operator.namespace, name, "--", "sh", "-c", "touch /opt/taskjob/x 2>&1; true")
    assert "Read-only file system" in touch, touch


def test_the_webhook_behind_its_service_rejects_a_cycle_at_apply(
    chart_operator: Release, kubectl: Kubectl, testenv: Any, tmp_path: Any
) -> None:
    cyclic = manifest("loop", [{"name": "a", "dependsOn": ["c"]}, {"name": "b", "dependsOn": ["a"]},
                               {"name": "c", "dependsOn": ["b"]}], defaults={"image": "busybox:1.36"})
    path = tmp_path / "loop.yaml"
    path.write_text(cyclic)
    proc = subprocess.run(
        [testenv.tool("kubectl"), "--kubeconfig", str(testenv.kubeconfig), "apply", "-n", chart_operator.watches,
         "-f", str(path)], capture_output=True, text=True, env=testenv.env(), timeout=60,
    )
    assert proc.returncode != 0, "the cyclic TaskJob was admitted"
    assert "a → b → c → a" in proc.stderr, proc.stderr
    assert "denied the request" in proc.stderr, proc.stderr


# ---- every example, unmodified ----


def test_every_example_has_a_case() -> None:
    # Only TaskJobs: CronTaskJob examples run in tests/cluster/test_cron.py.
    taskjobs = {p.stem for p in EXAMPLES.glob("*.yaml") if yaml.safe_load(p.read_text()).get("kind") == "TaskJob"}
    assert taskjobs == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_runs_in_real_containers_to_its_documented_end(
    name: str, chart_operator: Release, kubectl: Kubectl, kubeconfig: str, wait_for: Callable[..., Any],
    real_node: Any,
) -> None:
    phase, progress, task_phases, expected_outputs, log_lines = CASES[name]
    ns = chart_operator.watches
    kubectl("apply", "-n", ns, "-f", str(EXAMPLES / f"{name}.yaml"))
    status = wait_finished(kubectl, wait_for, ns, name)
    assert (status["phase"], status["progress"]) == (phase, progress), status.get("message")
    for task, expected in task_phases.items():
        assert status["tasks"][task]["phase"] == expected, (task, status["tasks"][task])
    got = outputs(kubectl, ns, name)
    for task, value in expected_outputs.items():
        assert got.get(task) == value, (task, got)
    assert {p["spec"]["nodeName"] for p in pods_of(kubectl, ns, name)} == {real_node.name}

    # What a user types next: the per-task view and the real containers' output.
    view = taskjob_cli(kubeconfig, "get", name, "-n", ns)
    assert phase in view and progress in view, view
    printed = taskjob_cli(kubeconfig, "logs", name, "-n", ns)
    for task, line in log_lines.items():
        assert any(ln.startswith(task) and line in ln for ln in printed.splitlines()), (task, line, printed)
    if name == "retry-backoff":
        assert status["tasks"]["flaky"]["attempts"] == 3
        first = taskjob_cli(kubeconfig, "logs", name, "flaky", "--attempt", "1", "-n", ns)
        assert "simulated failure on attempt 1" in first, first
    if name == "failure-policy":
        broken = status["tasks"]["broken"]
        assert (broken["attempts"], broken.get("exitCode")) == (2, 1), broken


def test_an_echoed_output_reaches_the_dependent_without_its_newline(
    chart_operator: Release, kubectl: Kubectl, wait_for: Callable[..., Any]
) -> None:
    ns = chart_operator.watches
    kubectl("apply", "-n", ns, "-f", "-", input=manifest("echoed", [
        {"name": "calc", "command": ["sh", "-c", 'echo $((6*7)) > "$TASKJOB_OUTPUT_PATH"']},
        {"name": "use", "dependsOn": ["calc"], "command": ["echo"], "args": ["got {{tasks.calc.output}}"]},
    ], defaults={"image": "busybox:1.36"}))
    status = wait_finished(kubectl, wait_for, ns, "echoed")
    assert status["phase"] == "Succeeded", status.get("message")
    job = next(j for j in get_json(kubectl, "jobs", "-n", ns, "-l", "taskjob.dev/taskjob=echoed")["items"]
               if j["metadata"]["labels"]["taskjob.dev/task"] == "use")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["got 42"]
    assert {e["name"]: e.get("value") for e in container["env"]}["TASKJOB_INPUT_CALC"] == "42"
    pod = next(p for p in pods_of(kubectl, ns, "echoed") if p["metadata"]["labels"]["taskjob.dev/task"] == "use")
    assert kubectl("logs", "-n", ns, pod["metadata"]["name"]) == "got 42\n"


# ---- failure modes of real containers ----


def test_a_container_over_its_memory_limit_is_oomkilled(
    chart_operator: Release, kubectl: Kubectl, wait_for: Callable[..., Any]
) -> None:
    ns = chart_operator.watches
    hog = {"name": "hog", "image": "taskjob-runner:0.1.0", "command": ["python", "-c"],
           "args": ["b = bytearray(512 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])"],
           "resources": {"limits": {"memory": "64Mi"}}, "retry": {"limit": 0}}
    kubectl("apply", "-n", ns, "-f", "-", input=manifest("oom", [hog]))
    status = wait_finished(kubectl, wait_for, ns, "oom")
    task = status["tasks"]["hog"]
    assert (status["phase"], task["phase"], task.get("reason"), task.get("exitCode")) == (
        "Failed", "Failed", "OOMKilled", 137), task


def test_timeout_seconds_stops_a_real_sleep(
    chart_operator: Release, kubectl: Kubectl, wait_for: Callable[..., Any]
) -> None:
    ns = chart_operator.watches
    sleeper = {"name": "sleeper", "command": ["sleep", "600"], "timeoutSeconds": 5, "retry": {"limit": 0}}
    kubectl("apply", "-n", ns, "-f", "-", input=manifest("timeout", [sleeper], defaults={"image": "busybox:1.36"}))
    status = wait_finished(kubectl, wait_for, ns, "timeout", timeout=120)
    task = status["tasks"]["sleeper"]
    assert (status["phase"], task["phase"], task.get("reason")) == ("Failed", "Failed", "DeadlineExceeded"), task
    # The container was really stopped: no pod of the TaskJob is still running.
    wait_for(lambda: all(p["status"]["phase"] != "Running" for p in pods_of(kubectl, ns, "timeout")), 60,
             "the sleep's pod to stop")


def test_a_pod_deleted_by_hand_is_retried_and_the_taskjob_ends_right(
    chart_operator: Release, kubectl: Kubectl, wait_for: Callable[..., Any]
) -> None:
    ns = chart_operator.watches
    # The first attempt sleeps until someone deletes its pod; the second finishes at once.
    script = 'if [ "$TASKJOB_ATTEMPT" = 1 ]; then sleep 600; fi; printf "done on %s" "$TASKJOB_ATTEMPT" ' \
             '> "$TASKJOB_OUTPUT_PATH"'
    tasks = [{"name": "victim", "command": ["sh", "-c", script], "retry": {"limit": 2, "backoff": {"delaySeconds": 1}}},
             {"name": "after", "dependsOn": ["victim"], "command": ["echo", "{{tasks.victim.output}}"]}]
    kubectl("apply", "-n", ns, "-f", "-", input=manifest("deleted", tasks, defaults={"image": "busybox:1.36"}))

    def running_pod() -> str | None:
        for pod in pods_of(kubectl, ns, "deleted"):
            if pod["status"].get("phase") == "Running":
                return str(pod["metadata"]["name"])
        return None

    pod = wait_for(running_pod, 120, "the first attempt's container to run")
    kubectl("delete", "pod", "-n", ns, pod, "--wait=false")
    status = wait_finished(kubectl, wait_for, ns, "deleted")
    assert status["phase"] == "Succeeded", status.get("message")
    assert status["tasks"]["victim"]["attempts"] == 2, status["tasks"]["victim"]
    assert outputs(kubectl, ns, "deleted")["victim"] == "done on 2"


def test_an_image_that_cannot_be_pulled_ends_the_attempt_at_the_startup_timeout(
    chart_operator: Release, kubectl: Kubectl, wait_for: Callable[..., Any]
) -> None:
    ns = chart_operator.watches
    # A registry on a closed loopback port: the pull fails at once and no traffic leaves the machine.
    task = {"name": "missing", "image": "127.0.0.1:9/taskjob/no-such-image:1", "command": ["true"],
            "startupTimeoutSeconds": 15, "retry": {"limit": 0}}
    kubectl("apply", "-n", ns, "-f", "-", input=manifest("unpullable", [task]))
    status = wait_finished(kubectl, wait_for, ns, "unpullable", timeout=120)
    state = status["tasks"]["missing"]
    assert (status["phase"], state["phase"], state.get("reason")) == ("Failed", "Failed", "StartupTimeout"), state
    assert "127.0.0.1:9/taskjob/no-such-image:1" in (state.get("message") or ""), state
