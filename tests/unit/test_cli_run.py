"""`taskjob run`: the operator's plan executed with local processes.

Most tests run the executor in virtual time (a fake clock that is also the process starter), so they
assert exact orders and gaps without waiting; a few run real processes end to end.
"""

from __future__ import annotations

import heapq
import json
import os
import queue
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from taskjobs.cli.local import (
    Launch,
    LocalExecutor,
    LocalResult,
    LocalRunError,
    Message,
    build_launch,
    kubelet_expand,
)
from taskjobs.core.models import TaskJob
from taskjobs.core.resolve import resolve_tasks
from taskjobs.core.validation import validate_taskjob

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def make_taskjob(tasks: list[dict[str, Any]], **spec: Any) -> TaskJob:
    body = {
        "apiVersion": "taskjob.dev/v1alpha1",
        "kind": "TaskJob",
        "metadata": {"name": "t"},
        "spec": {"defaults": {"image": "busybox", "command": ["work"]}, "tasks": tasks, **spec},
    }
    result = validate_taskjob(body)
    assert result.ok, result.problems
    assert result.taskjob is not None
    return result.taskjob


# ---------------------------------------------------------------- virtual time


@dataclass(frozen=True)
class Behaviour:
    """What one fake process does: run `duration` virtual seconds, then exit with `code` and `output`."""

    duration: float = 1.0
    code: int = 0
    output: str = ""
    ignores_term: bool = False


class FakeProcess:
    def __init__(self, world: FakeWorld, job: str, pid: int) -> None:
        self.world, self.job, self.pid = world, job, pid

    def signal(self, sig: int) -> None:
        self.world.signalled(self.job, sig)


class FakeWorld:
    """The executor's clock and process starter at once: processes end at scheduled virtual times."""

    def __init__(self, script: Callable[[Launch], Behaviour], on_start: Callable[[Launch], None] | None = None) -> None:
        self.script = script
        self.on_start = on_start
        self.t = 0.0
        self.seq = 0
        self.due: list[tuple[float, int, str]] = []  # (at, seq, job) heap
        self.procs: dict[str, tuple[Behaviour, Callable[[int], None]]] = {}
        self.codes: dict[str, int] = {}
        self.launches: list[Launch] = []

    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.t)

    def start(self, launch: Launch, on_line: Callable[[str], None], on_exit: Callable[[int], None]) -> FakeProcess:
        behaviour = self.script(launch)
        self.launches.append(launch)
        launch.output_path.write_text(behaviour.output)
        self.procs[launch.job_name] = (behaviour, on_exit)
        self._schedule(launch.job_name, self.t + behaviour.duration, behaviour.code)
        if self.on_start:
            self.on_start(launch)
        return FakeProcess(self, launch.job_name, 1000 + self.seq)

    def _schedule(self, job: str, at: float, code: int) -> None:
        self.seq += 1
        self.codes[job] = code
        heapq.heappush(self.due, (at, self.seq, job))

    def signalled(self, job: str, sig: int) -> None:
        behaviour, _ = self.procs[job]
        if sig == signal.SIGKILL:
            self._schedule(job, self.t, 137)
        elif sig == signal.SIGTERM and not behaviour.ignores_term:
            self._schedule(job, self.t, 143)

    def wait(self, inbox: queue.SimpleQueue[Message], timeout: float | None) -> Message | None:
        try:
            return inbox.get_nowait()
        except queue.Empty:
            pass
        while self.due:
            at, seq, job = self.due[0]
            if timeout is not None and at > self.t + timeout:
                break
            heapq.heappop(self.due)
            if job not in self.procs:
                continue  # already exited (a later reschedule, e.g. SIGKILL after SIGTERM)
            _, on_exit = self.procs.pop(job)
            self.t = max(self.t, at)
            on_exit(self.codes[job])
            return inbox.get_nowait()
        assert timeout is not None, "the executor waits for ever with nothing running"
        self.t += timeout
        return None


def run_virtual(
    taskjob: TaskJob, script: Callable[[Launch], Behaviour], tmp_path: Path, **options: Any
) -> tuple[LocalResult, FakeWorld]:
    world = FakeWorld(script)
    result = LocalExecutor(taskjob, workdir=tmp_path, starter=world, clock=world, **options).run()
    return result, world


def seconds(at: datetime) -> float:
    return round((at - T0).total_seconds(), 6)


def timeline(result: LocalResult) -> list[tuple[str, str, int, float]]:
    return [(h.kind, h.task, h.attempt, seconds(h.at)) for h in result.history]


# ---------------------------------------------------------------- retries and backoff


def test_a_flaky_task_is_retried_after_the_configured_backoff_and_then_feeds_its_dependent(tmp_path: Path) -> None:
    taskjob = make_taskjob(
        [
            {
                "name": "flaky",
                "retry": {"limit": 3, "backoff": {"delaySeconds": 0.1, "factor": 2, "maxDelaySeconds": 10}},
            },
            {"name": "after", "dependsOn": ["flaky"]},
        ]
    )

    def script(launch: Launch) -> Behaviour:
        if launch.task == "flaky":
            return Behaviour(0.5, code=1) if launch.attempt < 3 else Behaviour(0.5, output="ok")
        return Behaviour(0.5, output="saw " + launch.env["TASKJOB_INPUT_FLAKY"])

    result, _ = run_virtual(taskjob, script, tmp_path)

    assert result.status.phase == "Succeeded"
    assert result.exit_code == 0
    flaky = [(kind, at) for kind, task, _, at in timeline(result) if task == "flaky"]
    assert flaky == [("start", 0.0), ("exit", 0.5), ("start", 0.6), ("exit", 1.1), ("start", 1.3), ("exit", 1.8)]
    assert result.status.tasks is not None and result.status.tasks["flaky"].attempts == 3
    assert result.outputs["after"] == "saw ok"


def test_a_non_retriable_exit_code_fails_the_task_at_once(tmp_path: Path) -> None:
    taskjob = make_taskjob([{"name": "bad", "retry": {"limit": 5, "nonRetriableExitCodes": [2]}}])
    result, _ = run_virtual(taskjob, lambda launch: Behaviour(1, code=2), tmp_path)
    assert result.status.phase == "Failed"
    assert result.exit_code == 1
    assert [h.kind for h in result.history] == ["start", "exit"]
    assert result.status.tasks is not None and result.status.tasks["bad"].exit_code == 2


# ---------------------------------------------------------------- failure policy


FAILING = [
    {"name": "bad", "retry": {"limit": 0}},
    {"name": "slow"},
    {"name": "after-bad", "dependsOn": ["bad"]},
    {"name": "later"},
]


def failing_script(launch: Launch) -> Behaviour:
    return {"bad": Behaviour(1, code=1), "slow": Behaviour(5)}.get(launch.task, Behaviour(1))


def test_fail_fast_lets_running_tasks_finish_and_starts_nothing_new(tmp_path: Path) -> None:
    result, _ = run_virtual(make_taskjob(FAILING, parallelism=2), failing_script, tmp_path)

    tasks = result.status.tasks
    assert tasks is not None
    assert {n: s.phase for n, s in tasks.items()} == {
        "bad": "Failed",
        "slow": "Succeeded",
        "after-bad": "Skipped",
        "later": "Skipped",
    }
    assert {task for kind, task, _, _ in timeline(result) if kind == "start"} == {"bad", "slow"}
    assert result.status.phase == "Failed"
    assert result.exit_code == 1


def test_continue_independent_runs_everything_that_does_not_depend_on_the_failure(tmp_path: Path) -> None:
    taskjob = make_taskjob(FAILING, parallelism=2, failurePolicy="ContinueIndependent")
    result, _ = run_virtual(taskjob, failing_script, tmp_path)

    tasks = result.status.tasks
    assert tasks is not None
    assert {n: s.phase for n, s in tasks.items()} == {
        "bad": "Failed",
        "slow": "Succeeded",
        "after-bad": "Skipped",
        "later": "Succeeded",
    }
    assert result.exit_code == 1


# ---------------------------------------------------------------- parallelism


def test_parallelism_bounds_running_tasks_and_priority_picks_who_starts_first(tmp_path: Path) -> None:
    durations = {"a": 3.0, "b": 1.5, "c": 2.0, "d": 1.0, "e": 1.0}
    taskjob = make_taskjob(
        [{"name": n, **({"priority": 10} if n == "e" else {})} for n in durations], parallelism=2
    )
    result, _ = run_virtual(taskjob, lambda launch: Behaviour(durations[launch.task]), tmp_path)

    order = [(kind, task) for kind, task, _, _ in timeline(result)]
    assert order == [
        ("start", "e"),
        ("start", "a"),
        ("exit", "e"),
        ("start", "b"),
        ("exit", "b"),
        ("start", "c"),
        ("exit", "a"),
        ("start", "d"),
        ("exit", "d"),
        ("exit", "c"),
    ]
    running, peak = 0, 0
    for kind, _ in order:
        running += 1 if kind == "start" else -1
        peak = max(peak, running)
    assert peak == 2


def test_the_parallelism_option_overrides_the_spec(tmp_path: Path) -> None:
    taskjob = make_taskjob([{"name": n} for n in "abc"], parallelism=3)
    result, _ = run_virtual(taskjob, lambda launch: Behaviour(1), tmp_path, parallelism=1)
    kinds = [kind for kind, _, _, _ in timeline(result)]
    assert kinds == ["start", "exit"] * 3


def test_dependencies_start_only_after_their_upstream_succeeded(tmp_path: Path) -> None:
    taskjob = make_taskjob(
        [{"name": "a"}, {"name": "b", "dependsOn": ["a"]}, {"name": "c", "dependsOn": ["a"]},
         {"name": "d", "dependsOn": ["b", "c"]}]
    )
    result, _ = run_virtual(taskjob, lambda launch: Behaviour({"b": 1.0, "c": 2.0}.get(launch.task, 1.0)), tmp_path)
    events = timeline(result)
    exits = {task: at for kind, task, _, at in events if kind == "exit"}
    starts = {task: at for kind, task, _, at in events if kind == "start"}
    assert starts["b"] == starts["c"] == exits["a"]
    assert starts["d"] == max(exits["b"], exits["c"])


# ---------------------------------------------------------------- timeouts and stopping


def test_a_task_over_its_timeout_is_stopped_and_counts_as_a_failed_attempt(tmp_path: Path) -> None:
    taskjob = make_taskjob([{"name": "slow", "timeoutSeconds": 2, "retry": {"limit": 0}}])
    result, _ = run_virtual(taskjob, lambda launch: Behaviour(100), tmp_path)

    assert timeline(result) == [("start", "slow", 1, 0.0), ("term", "slow", 1, 2.0), ("exit", "slow", 1, 2.0)]
    state = result.status.tasks["slow"] if result.status.tasks else None
    assert state is not None and state.phase == "Failed"
    assert state.reason == "DeadlineExceeded"
    assert state.exit_code is None  # the kill's exit code is not the task's verdict
    assert result.exit_code == 1


def test_a_task_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    taskjob = make_taskjob([{"name": "stubborn", "timeoutSeconds": 2, "retry": {"limit": 0}}])
    result, _ = run_virtual(taskjob, lambda launch: Behaviour(100, ignores_term=True), tmp_path, grace_seconds=1.5)
    assert timeline(result) == [
        ("start", "stubborn", 1, 0.0),
        ("term", "stubborn", 1, 2.0),
        ("kill", "stubborn", 1, 3.5),
        ("exit", "stubborn", 1, 3.5),
    ]


def test_the_taskjob_deadline_stops_running_tasks_and_skips_the_rest(tmp_path: Path) -> None:
    taskjob = make_taskjob([{"name": "slow"}, {"name": "next", "dependsOn": ["slow"]}], activeDeadlineSeconds=5)
    result, _ = run_virtual(taskjob, lambda launch: Behaviour(100), tmp_path)

    assert timeline(result) == [("start", "slow", 1, 0.0), ("term", "slow", 1, 5.0), ("exit", "slow", 1, 5.0)]
    assert result.status.phase == "Failed"
    assert result.status.message is not None and "activeDeadlineSeconds" in result.status.message
    tasks = result.status.tasks or {}
    assert (tasks["slow"].phase, tasks["next"].phase) == ("Failed", "Skipped")


def test_an_interrupt_stops_every_running_task_and_exits_130(tmp_path: Path) -> None:
    taskjob = make_taskjob([{"name": "a"}, {"name": "b"}, {"name": "c", "dependsOn": ["a"]}])

    def script(launch: Launch) -> Behaviour:
        return Behaviour(100, ignores_term=launch.task == "b")

    world = FakeWorld(script)
    executor = LocalExecutor(taskjob, workdir=tmp_path, starter=world, clock=world, grace_seconds=1)
    world.on_start = lambda launch: executor.interrupt() if launch.task == "b" else None
    result = executor.run()

    assert result.interrupted and result.exit_code == 130
    assert timeline(result) == [
        ("start", "a", 1, 0.0),
        ("start", "b", 1, 0.0),
        ("term", "a", 1, 0.0),
        ("term", "b", 1, 0.0),
        ("exit", "a", 1, 0.0),
        ("kill", "b", 1, 1.0),
        ("exit", "b", 1, 1.0),
    ]


# ---------------------------------------------------------------- inputs and outputs


def test_tasks_get_their_inputs_in_env_and_substituted_into_args_as_in_the_cluster(tmp_path: Path) -> None:
    taskjob = make_taskjob(
        [
            {"name": "a"},
            {"name": "price"},
            {
                "name": "use",
                "dependsOn": ["a", "price"],
                "args": ["{{tasks.a.output}}", "$(TASKJOB_TASK)", "{{ tasks.price.output }}"],
                "env": [{"name": "GREETING", "value": "hello {{tasks.a.output}}"}],
            },
        ]
    )
    outputs = {"a": "5", "price": "$(HOME) costs $3"}
    seen: dict[str, Launch] = {}

    def script(launch: Launch) -> Behaviour:
        seen[launch.task] = launch
        return Behaviour(1, output=outputs.get(launch.task, "done"))

    result, _ = run_virtual(taskjob, script, tmp_path)
    use = seen["use"]
    # An output reaches the task exactly as written: no $(VAR) expansion of its text, no $$ left over.
    assert use.argv == ("work", "5", "use", "$(HOME) costs $3")
    assert use.env["TASKJOB_INPUT_A"] == "5"
    assert use.env["TASKJOB_INPUT_PRICE"] == "$(HOME) costs $3"
    assert json.loads(use.env["TASKJOB_INPUTS"]) == outputs
    assert use.env["GREETING"] == "hello 5"
    assert use.env["TASKJOB_TASK"] == "use" and use.env["TASKJOB_ATTEMPT"] == "1"
    # The same run, another task: "local-<run>-a" -> "local-<run>-use" (the run id is hex and may hold "-a").
    assert use.env["TASKJOB_RUN_ID"] == seen["a"].env["TASKJOB_RUN_ID"].removesuffix("-a") + "-use"
    assert Path(use.env["TASKJOB_OUTPUT_PATH"]).parent == tmp_path
    assert result.outputs["use"] == "done"


def test_a_task_gets_the_output_of_a_task_it_references_but_does_not_depend_on_directly(tmp_path: Path) -> None:
    # a -> b -> c, and c reads a's output: as on the cluster, the reference alone makes a an input of c.
    taskjob = make_taskjob(
        [
            {"name": "a"},
            {"name": "b", "dependsOn": ["a"]},
            {"name": "c", "dependsOn": ["b"], "args": ["a={{tasks.a.output}} b={{tasks.b.output}}"]},
        ]
    )
    seen: dict[str, Launch] = {}

    def script(launch: Launch) -> Behaviour:
        seen[launch.task] = launch
        return Behaviour(1, output={"a": "AAA", "b": "BBB"}.get(launch.task, "done"))

    run_virtual(taskjob, script, tmp_path)
    c = seen["c"]
    assert c.argv == ("work", "a=AAA b=BBB")
    assert c.env["TASKJOB_INPUT_A"] == "AAA" and c.env["TASKJOB_INPUT_B"] == "BBB"
    assert json.loads(c.env["TASKJOB_INPUTS"]) == {"a": "AAA", "b": "BBB"}


def test_an_output_written_with_echo_reaches_dependents_without_its_trailing_newlines(tmp_path: Path) -> None:
    taskjob = make_taskjob(
        [{"name": "calc"}, {"name": "use", "dependsOn": ["calc"], "args": ["got {{tasks.calc.output}}"]}]
    )
    seen: dict[str, Launch] = {}

    def script(launch: Launch) -> Behaviour:
        seen[launch.task] = launch
        return Behaviour(1, output="42\n\n" if launch.task == "calc" else "done")

    result, _ = run_virtual(taskjob, script, tmp_path)
    use = seen["use"]
    assert use.argv == ("work", "got 42")
    assert use.env["TASKJOB_INPUT_CALC"] == "42"
    assert json.loads(use.env["TASKJOB_INPUTS"]) == {"calc": "42"}
    assert result.outputs["calc"] == "42\n\n"  # what the task wrote is kept as written


def test_an_output_over_4096_bytes_keeps_its_last_bytes_and_is_reported(tmp_path: Path) -> None:
    taskjob = make_taskjob([{"name": "big"}, {"name": "next", "dependsOn": ["big"]}])
    got: dict[str, str] = {}

    def script(launch: Launch) -> Behaviour:
        if launch.task == "big":
            return Behaviour(1, output="x" * 5000 + "END")
        got["input"] = launch.env["TASKJOB_INPUT_BIG"]
        return Behaviour(1)

    result, _ = run_virtual(taskjob, script, tmp_path)
    assert len(got["input"].encode()) == 4096 and got["input"].endswith("END")
    state = result.status.tasks["big"] if result.status.tasks else None
    assert state is not None and state.phase == "Succeeded" and state.reason == "OutputTruncated"


def test_a_task_without_command_cannot_run_locally_and_says_which(tmp_path: Path) -> None:
    body = {
        "apiVersion": "taskjob.dev/v1alpha1",
        "kind": "TaskJob",
        "metadata": {"name": "t"},
        "spec": {"tasks": [{"name": "ok", "image": "x", "command": ["true"]}, {"name": "imageonly", "image": "x"}]},
    }
    taskjob = validate_taskjob(body).taskjob
    assert taskjob is not None
    with pytest.raises(LocalRunError, match=r"task 'imageonly' has no command.*spec.tasks\[1\].command.*--runtime"):
        LocalExecutor(taskjob, workdir=tmp_path)


def test_kubelet_expansion_replaces_known_variables_and_unescapes_double_dollars() -> None:
    env = {"A": "1", "B": "x"}
    assert kubelet_expand("$(A)-$(B)-$(C)", env) == "1-x-$(C)"
    assert kubelet_expand("$$(A) $$ $5 $(", env) == "$(A) $ $5 $("


def test_with_a_container_runtime_each_attempt_is_a_docker_run_of_the_task_image(tmp_path: Path) -> None:
    taskjob = make_taskjob(
        [
            {
                "name": "a",
                "image": "alpine:3",
                "command": ["sh", "-c"],
                "args": ["echo hi"],
                "env": [{"name": "X", "value": "1"}],
            }
        ]
    )
    meta = LocalExecutor(taskjob, workdir=tmp_path, runtime="docker").meta
    task = resolve_tasks(taskjob.spec)["a"]
    launch = build_launch(meta, task, 2, {}, output_path=tmp_path / "out", runtime="docker")
    argv = list(launch.argv)
    assert argv[:3] == ["docker", "run", "--rm"]
    assert argv[argv.index("--volume") + 1] == f"{tmp_path / 'out'}:/dev/termination-log"
    envs = [argv[i + 1] for i, a in enumerate(argv) if a == "--env"]
    assert "X=1" in envs and "TASKJOB_ATTEMPT=2" in envs and "TASKJOB_OUTPUT_PATH=/dev/termination-log" in envs
    assert argv[-5:] == ["--entrypoint", "sh", "alpine:3", "-c", "echo hi"]
    assert launch.stop_argv == ("docker", "kill", argv[argv.index("--name") + 1])


# ---------------------------------------------------------------- real processes


def taskjob_cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskjobs.cli.main", *args], capture_output=True, text=True, timeout=120, **kwargs
    )


def test_the_etl_example_runs_locally_and_prints_110() -> None:
    done = taskjob_cli("run", str(REPO / "examples" / "etl-pipeline.yaml"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "110\n"
    assert "etl-pipeline Succeeded (4/4)" in done.stderr


def test_the_conditions_example_runs_locally_skips_small_and_handles_deploys_failure() -> None:
    done = taskjob_cli("run", str(REPO / "examples" / "conditions.yaml"))
    assert done.returncode == 0, done.stderr
    assert "conditions Succeeded (4/6)" in done.stderr
    assert "rollback: rolled back after deploy failed" in done.stdout
    assert "big batch of 7" in done.stderr and "small batch" not in done.stderr


def test_the_notify_example_runs_its_finally_tasks_locally_with_the_outcome() -> None:
    done = taskjob_cli("run", str(REPO / "examples" / "notify-on-failure.yaml"))
    assert done.returncode == 1, done.stderr
    assert "notify-on-failure Failed (3/4)" in done.stderr
    assert "notify: notify-on-failure Failed: load failed" in done.stdout
    assert "cleanup: cleanup after a Failed run" in done.stderr


def test_a_real_echo_output_gives_its_dependent_one_line(tmp_path: Path) -> None:
    taskjob = make_taskjob(
        [
            {"name": "calc", "command": ["sh", "-c", 'echo $((6*7)) > "$TASKJOB_OUTPUT_PATH"']},
            {"name": "use", "dependsOn": ["calc"], "command": ["echo"], "args": ["got {{tasks.calc.output}}"]},
        ]
    )
    result = LocalExecutor(taskjob, workdir=tmp_path / "work").run()
    assert result.exit_code == 0
    assert (tmp_path / "work" / "t-use-1.log").read_text() == "got 42\n"


def test_a_real_flaky_task_is_retried_and_each_retry_waits_at_least_its_delay(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    script = (
        f'n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; '
        'echo "attempt $n"; [ $n -ge 3 ] && printf done > "$TASKJOB_OUTPUT_PATH"; [ $n -ge 3 ]'
    )
    taskjob = make_taskjob(
        [{"name": "flaky", "command": ["sh", "-c", script],
          "retry": {"limit": 3, "backoff": {"delaySeconds": 0.1, "factor": 2}}}]
    )
    result = LocalExecutor(taskjob, workdir=tmp_path / "work").run()

    assert result.exit_code == 0 and result.outputs == {"flaky": "done"}
    events = [(h.kind, h.at) for h in result.history]
    assert [k for k, _ in events] == ["start", "exit"] * 3
    gaps = [(events[i + 1][1] - events[i][1]).total_seconds() for i in (1, 3)]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2
    # Each attempt's output is kept in the workdir.
    assert (tmp_path / "work" / "t-flaky-2.log").read_text() == "attempt 2\n"


def test_a_command_that_cannot_start_is_a_failed_attempt_retried_like_any_other(tmp_path: Path) -> None:
    taskjob = make_taskjob(
        [{"name": "typo", "command": ["no-such-command-xyz"], "retry": {"limit": 1, "backoff": {"delaySeconds": 0.1}}}]
    )
    result = LocalExecutor(taskjob, workdir=tmp_path).run()
    assert result.exit_code == 1
    assert [h.kind for h in result.history] == ["exit", "exit"]
    state = result.status.tasks["typo"] if result.status.tasks else None
    assert state is not None and state.attempts == 2
    assert state.message is not None and "StartError" in state.message and "no-such-command-xyz" in state.message


def test_a_failing_run_exits_1_and_prints_why(tmp_path: Path) -> None:
    manifest = tmp_path / "fail.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "taskjob.dev/v1alpha1",
                "kind": "TaskJob",
                "metadata": {"name": "oops"},
                "spec": {
                    "defaults": {"image": "x", "retry": {"limit": 0}},
                    "tasks": [
                        {"name": "boom", "command": ["sh", "-c", "echo broken >&2; exit 4"]},
                        {"name": "never", "dependsOn": ["boom"], "command": ["true"]},
                    ],
                },
            }
        )
    )
    done = taskjob_cli("run", str(manifest))
    assert done.returncode == 1
    assert done.stdout == ""
    assert "boom: broken" in done.stderr
    assert "oops Failed (0/2): task boom failed after 1 attempt: exit code 4" in done.stderr


def _pids_in(path: Path) -> list[int]:
    try:
        return [int(x) for x in path.read_text().split()]
    except (OSError, ValueError):
        return []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ctrl_c_stops_every_task_process_and_leaves_no_child(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    manifest = tmp_path / "sleepy.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "taskjob.dev/v1alpha1",
                "kind": "TaskJob",
                "metadata": {"name": "sleepy"},
                "spec": {
                    "defaults": {"image": "x", "command": ["sh", "-c"]},
                    "tasks": [
                        # $$$$ is the shell's $$: as in a pod, $$ in args is an escaped $.
                        {"name": "plain", "args": [f"echo $$$$ >> {pids}; exec sleep 30"]},
                        # A task that ignores SIGTERM and leaves a grandchild: SIGKILL on the group gets both.
                        {
                            "name": "stubborn",
                            "args": [f"trap '' TERM; sleep 30 & echo $! >> {pids}; echo $$$$ >> {pids}; wait"],
                        },
                    ],
                },
            }
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "taskjobs.cli.main", "run", "--grace", "0.5", str(manifest)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while len(_pids_in(pids)) < 3:
            assert time.monotonic() < deadline, "the tasks did not start"
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        started = _pids_in(pids)
        assert all(_alive(p) for p in started)

        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 130, stderr
        assert "interrupted" in stderr

        deadline = time.monotonic() + 10
        while any(_alive(p) for p in started):
            assert time.monotonic() < deadline, f"still running: {[p for p in started if _alive(p)]}"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
