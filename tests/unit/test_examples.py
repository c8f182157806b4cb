"""The examples in examples/: each is a valid TaskJob, and its tasks' commands produce the documented outputs.

The commands run here through a small sequential stand-in for `taskjob run` (topological order, inputs
as env vars and `{{tasks.<name>.output}}` substitution, attempts up to the retry limit, no delays). It
checks the examples' scripts and runner invocations, not the scheduling: the plan and `taskjob run`
have their own tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from taskjobs.cli.cron import template_taskjob
from taskjobs.cli.local import LocalExecutor
from taskjobs.core.cronvalidation import validate_crontaskjob
from taskjobs.core.inputs import OUTPUT_REF
from taskjobs.core.render import input_env_name
from taskjobs.core.resolve import resolve_tasks
from taskjobs.core.validation import validate_taskjob

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ALL_FILES = sorted(EXAMPLES.glob("*.yaml"))
KINDS = {p: yaml.safe_load(p.read_text()).get("kind") for p in ALL_FILES}
FILES = [p for p in ALL_FILES if KINDS[p] == "TaskJob"]
CRON_FILES = [p for p in ALL_FILES if KINDS[p] == "CronTaskJob"]
RUNNER_EXAMPLES = ("etl-pipeline", "wordcount", "etl-fanout")


def load(name: str) -> dict[str, Any]:
    """Return the manifest of examples/<name>.yaml."""
    manifest: dict[str, Any] = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    return manifest


@dataclass
class LocalRun:
    """What happened to each task."""

    outputs: dict[str, str] = field(default_factory=dict)  # succeeded tasks
    attempts: dict[str, int] = field(default_factory=dict)  # tasks that ran
    failed: set[str] = field(default_factory=set)
    skipped: set[str] = field(default_factory=set)


def substitute(text: str, inputs: dict[str, str]) -> str:
    """Return text with {{tasks.<name>.output}} replaced by that task's output, as the container sees it."""
    return OUTPUT_REF.sub(lambda m: inputs[m.group(1)], text)


def run_sequentially(manifest: dict[str, Any], workdir: Path, path_prefix: str = "") -> LocalRun:
    """Return what running the TaskJob's tasks one at a time, in dependency order, on this machine gives."""
    result = validate_taskjob(manifest)
    assert result.ok and result.taskjob and result.graph, result.problems
    tasks = resolve_tasks(result.taskjob.spec)
    run = LocalRun()
    for name in result.graph.order:
        task = tasks[name]
        if not all(d in run.outputs for d in task.depends_on):
            run.skipped.add(name)
            continue
        inputs = {d: run.outputs[d] for d in task.depends_on}
        out = workdir / f"{name}.out"
        for attempt in range(1, task.retry.limit + 2):
            argv = [substitute(s, inputs) for s in (task.command or ()) + (task.args or ())]
            if argv[0] == "python":
                argv[0] = sys.executable
            env = {
                **os.environ,
                "PATH": path_prefix + os.environ.get("PATH", ""),
                "TASKJOB_NAME": manifest["metadata"]["name"],
                "TASKJOB_TASK": name,
                "TASKJOB_ATTEMPT": str(attempt),
                "TASKJOB_OUTPUT_PATH": str(out),
                "TASKJOB_INPUTS": json.dumps(inputs),
                **{input_env_name(d): v for d, v in inputs.items()},
            }
            out.unlink(missing_ok=True)
            proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
            run.attempts[name] = attempt
            if proc.returncode == 0:
                run.outputs[name] = out.read_text() if out.exists() else ""
                break
            if proc.returncode in task.retry.non_retriable_exit_codes:
                break
        if name not in run.outputs:
            run.failed.add(name)
    return run


@pytest.fixture
def no_sleep(tmp_path: Path) -> str:
    """Return a PATH prefix whose `sleep` returns at once: the examples sleep to be watchable, tests need not."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sleep = bin_dir / "sleep"
    sleep.write_text("#!/bin/sh\nexit 0\n")
    sleep.chmod(0o755)
    return f"{bin_dir}{os.pathsep}"


needs_sh = pytest.mark.skipif(shutil.which("sh") is None, reason="the busybox examples' scripts need sh")


# ---------------------------------------------------------------- every example


def test_the_issue_s_examples_are_all_there() -> None:
    assert {f.stem for f in FILES} >= {
        "hello",
        "diamond",
        "fan-out-fan-in",
        "retry-backoff",
        "failure-policy",
        "etl-pipeline",
        "wordcount",
        "conditions",
        "notify-on-failure",
        "etl-fanout",
    }


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_example_is_a_valid_taskjob_named_after_its_file(path: Path) -> None:
    manifest = yaml.safe_load(path.read_text())
    result = validate_taskjob(manifest)
    assert result.ok, [str(p) for p in result.problems]
    assert manifest["metadata"]["name"] == path.stem


def test_every_example_is_a_taskjob_or_a_crontaskjob() -> None:
    assert set(KINDS.values()) <= {"TaskJob", "CronTaskJob"}, KINDS
    assert CRON_FILES, "examples/ should show a CronTaskJob"


@pytest.mark.parametrize("path", CRON_FILES, ids=[f.stem for f in CRON_FILES])
def test_cron_example_is_a_valid_crontaskjob_named_after_its_file(path: Path) -> None:
    manifest = yaml.safe_load(path.read_text())
    result = validate_crontaskjob(manifest)
    assert result.ok, [str(p) for p in result.problems]
    assert manifest["metadata"]["name"] == path.stem


@needs_sh
def test_nightly_report_template_outputs_the_report(tmp_path: Path) -> None:
    taskjob = template_taskjob(load("nightly-report"), "nightly-report.yaml")
    assert run_sequentially(taskjob, tmp_path).outputs["report"] == "orders=42 refunds=3"


@pytest.mark.parametrize("path", ALL_FILES, ids=[f.stem for f in ALL_FILES])
def test_example_is_explained_in_the_readme(path: Path) -> None:
    readme = (EXAMPLES / "README.md").read_text()
    assert f"`{path.name}`" in readme


@pytest.mark.parametrize("name", RUNNER_EXAMPLES)
def test_runner_examples_use_the_runner_image_and_never_retry_bad_input(name: str) -> None:
    manifest = load(name)
    result = validate_taskjob(manifest)
    assert result.taskjob
    for task in resolve_tasks(result.taskjob.spec).values():
        assert task.image == "taskjob-runner:0.1.0"
        assert task.command and task.command[:3] == ("python", "-m", "taskjob_runner")
        assert 2 in task.retry.non_retriable_exit_codes


def test_diamond_has_one_root_two_middle_tasks_and_one_sink() -> None:
    result = validate_taskjob(load("diamond"))
    assert result.graph
    deps = result.graph.deps
    roots = [t for t, d in deps.items() if not d]
    sinks = [t for t, d in result.graph.dependents.items() if not d]
    assert len(deps) == 4 and len(roots) == 1 and len(sinks) == 1
    middle = set(deps) - {roots[0], sinks[0]}
    assert all(deps[m] == (roots[0],) for m in middle)
    assert set(deps[sinks[0]]) == middle


# ---------------------------------------------------------------- documented outputs


def test_etl_pipeline_outputs_110(tmp_path: Path) -> None:
    run = run_sequentially(load("etl-pipeline"), tmp_path)
    assert run.outputs["reduce-sum"] == "110"
    assert run.outputs["filter-is-even"] == "[2,4,6,8,10,12,14,16,18,20]"


def test_etl_fanout_maps_four_partitions_in_parallel_instances_and_outputs_110(tmp_path: Path) -> None:
    # The sequential stand-in knows no forEach: this one runs with `taskjob run`'s executor (real processes).
    result = validate_taskjob(load("etl-fanout"))
    assert result.taskjob is not None
    run = LocalExecutor(result.taskjob, workdir=tmp_path).run()
    assert (run.status.phase, run.status.progress) == ("Succeeded", "7/7")
    assert run.outputs["map-double"] == "[[2,4,6],[8,10,12],[14,16],[18,20]]"
    assert run.outputs["reduce-sum"] == "110"
    starts = [h.task for h in run.history if h.kind == "start"]
    assert sorted(t for t in starts if t.startswith("map-double-")) == [f"map-double-{i}" for i in range(4)]


def test_wordcount_reducer_totals_the_mappers_pairs(tmp_path: Path) -> None:
    run = run_sequentially(load("wordcount"), tmp_path)
    assert json.loads(run.outputs["reduce"]) == {
        "a": 2,
        "and": 1,
        "brown": 1,
        "dog": 3,
        "fox": 3,
        "jumps": 1,
        "lazy": 2,
        "over": 1,
        "quick": 2,
        "runs": 1,
        "sleeps": 1,
        "the": 4,
    }


@needs_sh
@pytest.mark.parametrize(
    ("name", "task", "output"),
    [
        ("hello", "hello", "hello, world"),
        ("diamond", "sink", "root/left + root/right"),
        ("fan-out-fan-in", "merge", "30"),
        ("retry-backoff", "report", "flaky succeeded on attempt 3"),
        ("failure-policy", "after-healthy", "healthy said ok"),
    ],
)
def test_shell_example_outputs(name: str, task: str, output: str, tmp_path: Path, no_sleep: str) -> None:
    run = run_sequentially(load(name), tmp_path, no_sleep)
    assert run.outputs[task] == output


@needs_sh
def test_retry_backoff_flaky_task_succeeds_on_its_third_attempt(tmp_path: Path, no_sleep: str) -> None:
    run = run_sequentially(load("retry-backoff"), tmp_path, no_sleep)
    assert run.attempts["flaky"] == 3
    assert not run.failed


@needs_sh
def test_failure_policy_broken_branch_fails_after_two_attempts_and_its_dependent_is_skipped(
    tmp_path: Path, no_sleep: str
) -> None:
    manifest = load("failure-policy")
    assert manifest["spec"]["failurePolicy"] == "ContinueIndependent"
    run = run_sequentially(manifest, tmp_path, no_sleep)
    assert run.failed == {"broken"} and run.attempts["broken"] == 2
    assert run.skipped == {"after-broken"}
    assert set(run.outputs) == {"start", "healthy", "after-healthy"}
