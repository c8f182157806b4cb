"""The images of `make images` as containers: what the chart and the examples ask of them.

The operator image must start as the chart runs it (uid 10001, read-only root filesystem, /tmp its only
writable path, no capabilities) and accept every flag the chart passes; the runner image must run the
runner examples and leave each output where the kubelet reads the termination message; busybox:1.36 (CI's
stand-in) must run the busybox examples unchanged. Containers get no network (--network none) or, through
`taskjob run --runtime docker`, the engine's default, which has no bridge.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from docker_engine import Engine

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENT = ROOT / "charts" / "taskjob-operator" / "templates" / "deployment.yaml"
OPERATOR = "taskjob-operator:0.1.0"
RUNNER = "taskjob-runner:0.1.0"
# What the chart's securityContext and its /tmp emptyDir amount to under `docker run`.
AS_THE_CHART_RUNS_IT = (
    "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp",
    "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
)  # fmt: skip


def taskjob_run(engine: Engine, example: str) -> subprocess.CompletedProcess[str]:
    """Return the finished `taskjob run --runtime docker examples/<example>.yaml`: each task a container."""
    taskjob = Path(sys.executable).parent / "taskjob"
    cmd = [str(taskjob), "run", "--runtime", "docker", str(ROOT / "examples" / f"{example}.yaml")]
    return subprocess.run(cmd, capture_output=True, text=True, env=engine.env(), timeout=180)


def test_the_operator_image_runs_as_uid_10001_on_a_read_only_root(engine: Engine) -> None:
    proc = engine.run(["run", *AS_THE_CHART_RUNS_IT, "--entrypoint", "id", OPERATOR])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("uid=10001(taskjob) gid=10001(taskjob)"), proc.stdout


def test_the_operator_image_accepts_every_flag_the_chart_passes(engine: Engine) -> None:
    proc = engine.run(["run", *AS_THE_CHART_RUNS_IT, OPERATOR, "--help"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: taskjob operator"), proc.stdout
    chart_flags = set(re.findall(r"^\s+- (--[a-z-]+)=", DEPLOYMENT.read_text(), re.MULTILINE)) | {"--priority"}
    assert len(chart_flags) > 10, chart_flags  # the pattern still finds the chart's args
    missing = sorted(flag for flag in chart_flags if flag not in proc.stdout)
    assert not missing, f"flags the chart passes that `taskjob operator` in the image lacks: {missing}"


def test_the_charts_ha_command_starts_the_operator_in_the_image(engine: Engine) -> None:
    # With replicaCount > 1 the chart runs a python3 script that derives a priority from the pod name and
    # execs `taskjob operator --priority=N ...`: it needs python3 in the image and the flag in the CLI.
    template = DEPLOYMENT.read_text()
    found = re.search(r"- python3\n\s+- -c\n\s+- \|\n(.*?)\n\s+\{\{- else \}\}", template, re.DOTALL)
    assert found, "the chart's HA command is not where this test looks for it"
    lines = found.group(1).splitlines()
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    script = "\n".join(line[indent:] for line in lines)
    proc = engine.run(
        ["run", *AS_THE_CHART_RUNS_IT, "--env", "POD_NAME=taskjob-operator-7d4f9-x2k8p",
         "--entrypoint", "python3", OPERATOR, "-c", script, "--help"]
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: taskjob operator"), proc.stdout


def test_the_runner_image_runs_the_etl_pipeline_to_110(engine: Engine) -> None:
    proc = taskjob_run(engine, "etl-pipeline")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "110", proc.stdout + proc.stderr


def test_the_runner_image_runs_wordcount(engine: Engine) -> None:
    proc = taskjob_run(engine, "wordcount")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "a": 2, "and": 1, "brown": 1, "dog": 3, "fox": 3, "jumps": 1,
        "lazy": 2, "over": 1, "quick": 2, "runs": 1, "sleeps": 1, "the": 4,
    }  # fmt: skip


def test_the_runner_writes_the_termination_message_as_non_root_on_a_read_only_root(
    engine: Engine, tmp_path: Path
) -> None:
    # As the kubelet does: a world-writable file mounted at /dev/termination-log, the inputs in the env.
    message = tmp_path / "termination-log"
    message.touch(mode=0o666)
    message.chmod(0o666)
    proc = engine.run(
        ["run", *AS_THE_CHART_RUNS_IT, "--volume", f"{message}:/dev/termination-log",
         "--env", 'TASKJOB_INPUTS={"filter-is-even": "[2,4,6]"}', RUNNER, "reduce", "sum"]
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert message.read_text() == "12"
    assert proc.stdout.strip() == "12"


def test_the_runner_image_exits_2_on_bad_input_so_it_is_not_retried(engine: Engine) -> None:
    proc = engine.run(["run", *AS_THE_CHART_RUNS_IT, "--env", "TASKJOB_INPUTS=not json", RUNNER, "reduce", "sum"])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "TASKJOB_INPUTS is not valid JSON" in proc.stderr


def test_the_busybox_stand_in_runs_a_shell(engine: Engine) -> None:
    proc = engine.run(["run", "--rm", "--network", "none", "busybox:1.36", "sh", "-c", "echo hi"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hi\n"


@pytest.mark.parametrize(
    ("example", "output"),
    [("hello", "hello, world"), ("diamond", "root/left + root/right"), ("fan-out-fan-in", "30")],
)
def test_the_busybox_examples_run_unchanged(engine: Engine, example: str, output: str) -> None:
    proc = taskjob_run(engine, example)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == output, proc.stdout + proc.stderr
