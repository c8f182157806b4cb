"""`taskjob run`: execute a TaskJob on this machine with the operator's own plan and backoff.

The loop is the operator's, with local processes in place of Jobs: observe (process exits become
AttemptFacts), ask `plan()` what to do, do it (CreateJob starts a process, StopJob signals its process
group), then wait for the next exit or until `requeue_after`. Nothing here decides retries, delays,
skips or phases: the plan does, exactly as in the cluster.

The clock and the process starter are injectable so tests can run a DAG in virtual time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Literal, Protocol

from ..core import fanout, naming
from ..core.actions import Plan, StopJob
from ..core.facts import AttemptFact
from ..core.fanout import render_unit
from ..core.inputs import inputs_for
from ..core.models import TERMINAL_PHASES, TaskJob, TaskJobMeta, TaskJobSpec, TaskJobStatus
from ..core.observe import MAX_CONTAINER_MESSAGE
from ..core.plan import SpecShape
from ..core.render import CONTAINER, ENV_OUTPUT_PATH, OUTPUT_PATH
from ..core.resolve import ResolvedTask, resolve_tasks

Runtime = Literal["local", "docker", "podman"]
RUNTIMES: tuple[Runtime, ...] = ("local", "docker", "podman")
DEFAULT_GRACE_SECONDS = 5.0  # between SIGTERM and SIGKILL, like a pod's terminationGracePeriodSeconds (30) but shorter
PYTHON_NAMES = frozenset({"python", "python3"})
EXIT_INTERRUPTED = 130


class LocalRunError(Exception):
    """The TaskJob cannot run on this machine; the message says why, naming the task and field."""


# ---------------------------------------------------------------- what runs


@dataclass(frozen=True)
class Launch:
    """One process to start: one attempt of one task, fully resolved."""

    task: str
    attempt: int
    job_name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]  # the complete environment of the process
    output_path: Path
    stop_argv: tuple[str, ...] | None = None  # run to stop it for good (a container runtime's kill)


class Process(Protocol):
    """A started process, addressed as its whole process group."""

    pid: int

    def signal(self, sig: int) -> None:
        """Send `sig` to the process group (ignored once it is gone)."""


class ProcessStarter(Protocol):
    """Starts launches; reports each output line and the exit code through the callbacks (from any thread)."""

    def start(self, launch: Launch, on_line: Callable[[str], None], on_exit: Callable[[int], None]) -> Process:
        """Return the started process."""


@dataclass(frozen=True)
class Exited:
    """A process ended with this exit code (128+N when killed by signal N, as Kubernetes reports it)."""

    job_name: str
    code: int


@dataclass(frozen=True)
class Line:
    """One line a process printed."""

    task: str
    attempt: int
    text: str


@dataclass(frozen=True)
class Interrupted:
    """The user asked to stop (Ctrl-C or SIGTERM)."""


Message = Exited | Line | Interrupted


class Clock(Protocol):
    """Time for the loop: what time it is, and waiting for a message with a timeout."""

    def now(self) -> datetime:
        """Return the current time (aware, UTC)."""

    def wait(self, inbox: queue.SimpleQueue[Message], timeout: float | None) -> Message | None:
        """Return the next message, or None when `timeout` seconds passed first (None: wait for ever)."""


class RealClock:
    """Wall-clock time; waits on the inbox itself, so any message wakes the loop at once."""

    def now(self) -> datetime:
        """Return the current time."""
        return datetime.now(UTC)

    def wait(self, inbox: queue.SimpleQueue[Message], timeout: float | None) -> Message | None:
        """Return the next message, or None after `timeout` seconds."""
        try:
            return inbox.get(timeout=timeout)
        except queue.Empty:
            return None


class Listener(Protocol):
    """Receives what happens, for display. Called from the loop's thread only."""

    def started(self, launch: Launch, pid: int) -> None:
        """A task attempt's process started."""

    def line(self, task: str, attempt: int, text: str) -> None:
        """A task attempt printed a line."""

    def update(self, taskjob: Mapping[str, Any], plan: Plan, now: datetime) -> None:
        """The plan ran: `taskjob` is the TaskJob with its new status; `plan.events` say what changed."""

    def note(self, text: str) -> None:
        """Something the user should know that is not a status change (a stop, a truncated output)."""


class _Quiet:
    def started(self, launch: Launch, pid: int) -> None:
        pass

    def line(self, task: str, attempt: int, text: str) -> None:
        pass

    def update(self, taskjob: Mapping[str, Any], plan: Plan, now: datetime) -> None:
        pass

    def note(self, text: str) -> None:
        pass


@dataclass(frozen=True)
class Happening:
    """One entry of the run's history: a process started, exited, or was signalled."""

    kind: Literal["start", "exit", "term", "kill"]
    task: str
    attempt: int
    at: datetime
    code: int | None = None


@dataclass
class LocalResult:
    """How a local run ended."""

    taskjob: dict[str, Any]  # the TaskJob with its final status (times as datetimes)
    status: TaskJobStatus
    outputs: dict[str, str]  # output of every succeeded task
    sinks: tuple[str, ...]  # tasks nothing depends on, in DAG order
    interrupted: bool = False
    stuck: str | None = None  # why the run stopped before a final phase (e.g. suspended)
    history: list[Happening] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """Return 0 when the TaskJob succeeded, 130 when interrupted, 1 otherwise."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        return 0 if self.status.phase == "Succeeded" else 1


# ---------------------------------------------------------------- from task to process


def kubelet_expand(text: str, env: Mapping[str, str]) -> str:
    """Return `text` with `$(VAR)` replaced from `env` and `$$` turned into `$`, as the kubelet does.

    An unknown `$(VAR)` stays as written, like in a pod, so manifests behave the same here and there.
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "$" and i + 1 < n:
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2 : end]
                    out.append(env.get(name, text[i : end + 1]))
                    i = end + 1
                    continue
        out.append(c)
        i += 1
    return "".join(out)


def _container(
    meta: TaskJobMeta,
    task: ResolvedTask,
    attempt: int,
    inputs: Mapping[str, str],
    unit: str | None = None,
    instance: tuple[int, Any] | None = None,
) -> dict[str, Any]:
    """Return the `task` container exactly as the operator would render it into the Job."""
    # Locally an image is not needed; render_job insists on one, so lend it a placeholder.
    placeholder = dataclasses.replace(task, image=task.image or "local")
    job = render_unit(meta, placeholder, unit or task.name, attempt, inputs, instance)
    containers = job["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c.get("name") == CONTAINER)


def task_problems(meta: TaskJobMeta, tasks: Mapping[str, ResolvedTask], runtime: Runtime) -> list[str]:
    """Return why tasks cannot run on this machine with `runtime` (one sentence each), [] when all can."""
    problems: list[str] = []
    for index, task in enumerate(tasks.values()):
        where = f"spec.tasks[{index}]"
        if runtime == "local" and task.command is None:
            problems.append(
                f"task {task.name!r} has no command, so it would run its image's default entrypoint, which needs "
                f"a container runtime: set {where}.command (or spec.defaults.command), or use --runtime docker"
            )
        if runtime != "local" and not task.image:
            problems.append(f"task {task.name!r} has no image: set {where}.image or spec.defaults.image")
        for var in _container(meta, task, 1, {})["env"]:
            if "valueFrom" in var:
                problems.append(
                    f"task {task.name!r}: env {var['name']} takes its value from the cluster (valueFrom), which "
                    f"a local run cannot provide: give it a value to run it locally"
                )
    return problems


def build_launch(
    meta: TaskJobMeta,
    task: ResolvedTask,
    attempt: int,
    inputs: Mapping[str, str],
    *,
    output_path: Path,
    runtime: Runtime = "local",
    base_env: Mapping[str, str] | None = None,
    unit: str | None = None,
    instance: tuple[int, Any] | None = None,
) -> Launch:
    """Return the process for one attempt: the container's command, args and env as rendered for the cluster.

    Inputs and `{{tasks.<name>.output}}` come from the operator's renderer; `$(VAR)` is expanded as the
    kubelet would; TASKJOB_OUTPUT_PATH points at a local file. With runtime local the process inherits this
    machine's environment and a `python`/`python3` command means the interpreter running taskjob (so the
    runner works wherever taskjob is installed); with docker/podman it runs the task's image instead.
    """
    container = _container(meta, task, attempt, inputs, unit, instance)
    unit = unit or task.name  # an instance of a fan-out task runs as its task, with its item (instance)
    job_name = naming.job_name(meta.name, unit, attempt)
    in_container = runtime != "local"
    declared: dict[str, str] = {}
    for var in container["env"]:
        value = str(var.get("value", ""))
        if var["name"] == ENV_OUTPUT_PATH:
            value = OUTPUT_PATH if in_container else str(output_path)
        declared[var["name"]] = kubelet_expand(value, declared)
    command = [kubelet_expand(s, declared) for s in container.get("command") or []]
    args = [kubelet_expand(s, declared) for s in container.get("args") or []]

    if not in_container:
        if command and command[0] in PYTHON_NAMES:
            command[0] = sys.executable
        env = {**(os.environ if base_env is None else base_env), **declared}
        return Launch(unit, attempt, job_name, tuple(command + args), env, output_path)

    name = f"taskjob-{job_name}-{secrets.token_hex(3)}"
    argv = [runtime, "run", "--rm", "--name", name, "--volume", f"{output_path}:{OUTPUT_PATH}"]
    for key, value in declared.items():
        argv += ["--env", f"{key}={value}"]
    if command:
        argv += ["--entrypoint", command[0]]
    argv.append(str(container["image"]))
    argv += command[1:] + args
    env = dict(os.environ if base_env is None else base_env)
    return Launch(unit, attempt, job_name, tuple(argv), env, output_path, stop_argv=(runtime, "kill", name))


def read_output(path: Path) -> tuple[str, bool]:
    """Return the task's output from its output file and whether it hit the 4096-byte cap.

    Like the kubelet, only the last 4096 bytes are kept.
    """
    try:
        data = path.read_bytes()
    except OSError:
        return "", False
    capped = len(data) >= MAX_CONTAINER_MESSAGE
    return data[-MAX_CONTAINER_MESSAGE:].decode("utf-8", errors="replace"), capped


TRUNCATED_MESSAGE = (
    f"the output reached Kubernetes' {MAX_CONTAINER_MESSAGE}-byte termination message limit and may be "
    "truncated (only its last bytes are kept); pass large data by reference (object storage, a volume)"
)


# ---------------------------------------------------------------- real processes


class _Subprocess:
    def __init__(self, popen: subprocess.Popen[bytes], stop_argv: tuple[str, ...] | None) -> None:
        self.pid = popen.pid
        self._popen = popen
        self._stop_argv = stop_argv
        self.reaped = threading.Event()

    def signal(self, sig: int) -> None:
        if sig == signal.SIGKILL and self._stop_argv:
            # Killing the container CLI does not stop the container; its runtime does.
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(self._stop_argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
        if self.reaped.is_set():
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)


def exit_code(returncode: int) -> int:
    """Return a process's exit code as Kubernetes reports it: 128+N when killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


class SubprocessStarter:
    """Starts each launch as a process in its own process group (its own session), like a container."""

    def __init__(self, cwd: Path | None = None) -> None:
        self.cwd = cwd

    def start(self, launch: Launch, on_line: Callable[[str], None], on_exit: Callable[[int], None]) -> Process:
        """Return the started process; output lines and the exit code arrive through the callbacks."""
        popen = subprocess.Popen(
            launch.argv,
            env=dict(launch.env),
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # A session of its own: Ctrl-C in the terminal reaches taskjob only, which stops tasks in order;
            # and one killpg reaches everything the task started.
            start_new_session=True,
        )
        proc = _Subprocess(popen, launch.stop_argv)
        assert popen.stdout is not None
        stdout = popen.stdout

        def read() -> None:
            with stdout:
                for raw in stdout:
                    on_line(raw.decode("utf-8", errors="replace").rstrip("\r\n"))

        def wait() -> None:
            code = popen.wait()
            proc.reaped.set()
            # The pod's end kills every process of the container: do the same to what the task left behind.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(popen.pid, signal.SIGKILL)
            reader.join(timeout=2.0)  # let its last lines come first; a leftover holding the pipe cannot block us
            on_exit(exit_code(code))

        reader = threading.Thread(target=read, name=f"out-{launch.job_name}", daemon=True)
        waiter = threading.Thread(target=wait, name=f"wait-{launch.job_name}", daemon=True)
        reader.start()
        waiter.start()
        return proc


# ---------------------------------------------------------------- the loop


@dataclass
class _Running:
    launch: Launch
    process: Process
    started: datetime
    deadline: datetime | None  # timeoutSeconds
    stop: StopJob | None = None  # why we are stopping it, once we are
    kill_at: datetime | None = None


def local_meta(obj: TaskJob, now: datetime) -> TaskJobMeta:
    """Return the metadata a local run uses: the manifest's name (generateName gets a suffix) and a fresh uid."""
    return TaskJobMeta(
        name=obj.metadata.name,
        namespace=obj.metadata.namespace,
        uid=f"local-{secrets.token_hex(8)}",
        generation=1,
        creation_timestamp=now,
    )


PlanFn = Callable[[TaskJobMeta, TaskJobSpec, TaskJobStatus | None, Sequence[AttemptFact], datetime], Plan]


def _default_plan() -> PlanFn:
    from ..core.plan import plan

    return plan


class LocalExecutor:
    """Runs one TaskJob to its end on this machine."""

    def __init__(
        self,
        taskjob: TaskJob,
        *,
        workdir: Path,
        runtime: Runtime = "local",
        parallelism: int | None = None,
        starter: ProcessStarter | None = None,
        clock: Clock | None = None,
        listener: Listener | None = None,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        plan_fn: PlanFn | None = None,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        self.clock: Clock = clock or RealClock()
        spec = taskjob.spec
        if parallelism is not None:
            spec = spec.model_copy(update={"parallelism": parallelism})
        self.spec = spec
        self.meta = local_meta(taskjob, self.clock.now())
        self.api_object: dict[str, Any] = {
            "apiVersion": taskjob.api_version,
            "kind": taskjob.kind,
            "metadata": {"name": self.meta.name, "namespace": self.meta.namespace},
            "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True),
        }
        self.tasks = resolve_tasks(spec)
        # Names a fan-out task's instances and their items; its flow gives finally tasks the outcome.
        self.shape = SpecShape(spec)
        self._gathered: dict[str, str] = {}  # outputs of fan-out tasks: their instances' outputs, as a list
        self._expansions: dict[str, fanout.Expansion] = {}  # by fan-out task, once its items are known
        self.runtime = runtime
        self.workdir = workdir
        self.starter: ProcessStarter = starter or SubprocessStarter()
        self.listener: Listener = listener or _Quiet()
        self.grace = timedelta(seconds=grace_seconds)
        self.plan_fn = plan_fn or _default_plan()
        self.base_env = base_env
        self.history: list[Happening] = []
        self._inbox: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self._facts: dict[str, AttemptFact] = {}
        self._running: dict[str, _Running] = {}
        self._status: TaskJobStatus | None = None
        self._logs: dict[tuple[str, int], IO[str]] = {}
        problems = task_problems(self.meta, self.tasks, runtime)
        if problems:
            raise LocalRunError("; ".join(problems))

    # -- called from a signal handler: SimpleQueue.put is reentrant, nothing else is touched
    def interrupt(self) -> None:
        """Ask the run to stop its tasks and end (safe to call from a signal handler)."""
        self._inbox.put(Interrupted())

    def run(self) -> LocalResult:
        """Run the TaskJob until it finishes, is interrupted, or cannot go on; return how it ended."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        stuck: str | None = None
        interrupted = False
        while True:
            now = self.clock.now()
            plan = self._plan(now)
            if plan.status.phase in TERMINAL_PHASES and not self._running:
                break
            if not self._running and plan.requeue_after is None:
                stuck = f"nothing can run: the TaskJob is {plan.status.phase}" + (
                    f" ({plan.status.message})" if plan.status.message else ""
                )
                break
            if self._wait(plan.requeue_after):
                interrupted = True
                self._shutdown()
                break
        for log in self._logs.values():
            log.close()
        final = self._status or TaskJobStatus()
        return LocalResult(
            taskjob=self._object(final),
            status=final,
            outputs=self._outputs(),
            sinks=self._sinks(),
            interrupted=interrupted,
            stuck=stuck,
            history=self.history,
        )

    # -- one reconcile: plan, then do what it says; repeats while it starts something new
    def _plan(self, now: datetime) -> Plan:
        while True:
            plan = self.plan_fn(self.meta, self.spec, self._status, list(self._facts.values()), now)
            self._status = plan.status
            self._gathered.update(plan.outputs)
            self.listener.update(self._object(plan.status), plan, now)
            for stop in plan.stop:
                self._stop(stop, now)
            created = [c for c in plan.create if naming.job_name(self.meta.name, c.task, c.attempt) not in self._facts]
            for create in created:
                self._start(create.task, create.attempt, now)
            if not created:
                return plan

    def _outputs(self) -> dict[str, str]:
        """Return the output of every succeeded task and instance, and the list of every fan-out task."""
        done = {f.task: f.output or "" for f in self._facts.values() if f.phase == "Succeeded"}
        return {**done, **self._gathered}

    def _start(self, task_name: str, attempt: int, now: datetime) -> None:
        outputs = self._outputs()
        split = fanout.split(self.shape.tasks, task_name)
        instance = None
        if split is not None:
            parent, index = split
            expansion = self._expansions.get(parent)
            if expansion is None:  # known once its source succeeded, and final: computed once, not per instance
                expansion = self._expansions[parent] = self.shape.expand(outputs.get)[parent]
            instance = index, expansion.items[index]
            task = self.tasks[parent]
        else:
            states = (self._status.tasks if self._status else None) or {}
            task = self.shape.flow.with_outcome(self.tasks[task_name], states)  # a finally task: the outcome
        inputs = inputs_for(task, outputs)
        job_name = naming.job_name(self.meta.name, task_name, attempt)
        output = self.workdir / f"{job_name}.output"
        output.write_bytes(b"")
        output.chmod(0o666)  # a container may write it as another user
        launch = build_launch(
            self.meta,
            task,
            attempt,
            inputs,
            output_path=output,
            runtime=self.runtime,
            base_env=self.base_env,
            unit=task_name,
            instance=instance,
        )
        inbox = self._inbox

        def on_line(text: str) -> None:
            inbox.put(Line(task_name, attempt, text))

        def on_exit(code: int) -> None:
            inbox.put(Exited(job_name, code))

        try:
            process = self.starter.start(launch, on_line, on_exit)
        except OSError as exc:
            # Like a container that cannot start (StartError): a failed attempt, retried by the usual rules.
            why = f"cannot start {launch.argv[0] if launch.argv else 'the task'}: {exc.strerror or exc}"
            self._facts[job_name] = AttemptFact(
                task=task_name,
                attempt=attempt,
                job_name=job_name,
                phase="Failed",
                created=now,
                finish_time=now,
                reason="StartError",
                message=why,
            )
            self.history.append(Happening("exit", task_name, attempt, now))
            self.listener.note(f"{task_name}: {why}")
            return
        deadline = now + timedelta(seconds=task.timeout_seconds) if task.timeout_seconds else None
        self._running[job_name] = _Running(launch, process, now, deadline)
        self._facts[job_name] = AttemptFact(
            task=task_name, attempt=attempt, job_name=job_name, phase="Running", created=now, start_time=now
        )
        self.history.append(Happening("start", task_name, attempt, now))
        self.listener.started(launch, process.pid)

    def _stop(self, stop: StopJob, now: datetime) -> None:
        running = self._running.get(stop.job_name)
        if running is None or running.stop is not None:
            return
        running.stop = stop
        running.kill_at = now + self.grace
        self._facts[stop.job_name] = dataclasses.replace(self._facts[stop.job_name], stopping=True)
        self.history.append(Happening("term", running.launch.task, running.launch.attempt, now))
        self.listener.note(f"stopping {running.launch.task} (attempt {running.launch.attempt}): {stop.message}")
        running.process.signal(signal.SIGTERM)

    def _kill(self, running: _Running, now: datetime) -> None:
        running.kill_at = None
        self.history.append(Happening("kill", running.launch.task, running.launch.attempt, now))
        running.process.signal(signal.SIGKILL)

    def _exited(self, message: Exited, now: datetime) -> None:
        running = self._running.pop(message.job_name, None)
        if running is None:
            return
        launch = running.launch
        self.history.append(Happening("exit", launch.task, launch.attempt, now, message.code))
        log = self._logs.pop((launch.task, launch.attempt), None)
        if log is not None:
            log.close()
        output, capped = read_output(launch.output_path)
        update: dict[str, Any] = {"finish_time": now}
        if running.stop is not None:
            # Like a stopped Job: the kill's exit code is not the task's verdict.
            update |= {"phase": "Failed", "reason": running.stop.reason, "message": running.stop.message}
        elif message.code == 0:
            update |= {"phase": "Succeeded", "exit_code": 0, "output": output}
            if capped:
                update |= {"reason": "OutputTruncated", "message": TRUNCATED_MESSAGE}
                self.listener.note(f"{launch.task}: {TRUNCATED_MESSAGE}")
        else:
            # As with terminationMessagePolicy File: the failed task's message is what it wrote to its output.
            update |= {"phase": "Failed", "exit_code": message.code, "reason": "Error"}
            update["message"] = output.strip() or None
        self._facts[message.job_name] = dataclasses.replace(self._facts[message.job_name], **update)

    def _deadlines(self, now: datetime) -> datetime | None:
        """Act on timeouts and kill deadlines that have passed; return the next one still ahead."""
        ahead: list[datetime] = []
        for job_name, running in list(self._running.items()):
            if running.kill_at is not None:
                if running.kill_at <= now:
                    self._kill(running, now)
                else:
                    ahead.append(running.kill_at)
            if running.stop is None and running.deadline is not None:
                if running.deadline <= now:
                    timeout = self.shape.task(running.launch.task).timeout_seconds
                    stop = StopJob(
                        job_name=job_name,
                        reason="DeadlineExceeded",
                        message=f"the attempt ran longer than its timeoutSeconds ({timeout}s)",
                    )
                    self._stop(stop, now)
                    if running.kill_at is not None:
                        ahead.append(running.kill_at)
                else:
                    ahead.append(running.deadline)
        return min(ahead, default=None)

    def _wait(self, requeue_after: float | None) -> bool:
        """Wait for the next exit, deadline or requeue time; return True when the user interrupted."""
        start = self.clock.now()
        wake = start + timedelta(seconds=requeue_after) if requeue_after is not None else None
        while True:
            now = self.clock.now()
            nearest = self._deadlines(now)
            if not self._running and wake is None:
                return False  # a stop just ended the last process: re-plan
            candidates = [t for t in (wake, nearest) if t is not None]
            timeout = max((min(candidates) - now).total_seconds(), 0.0) if candidates else None
            message = self.clock.wait(self._inbox, timeout)
            if isinstance(message, Interrupted):
                return True
            if isinstance(message, Line):
                self._line(message)
                continue
            if isinstance(message, Exited):
                self._exited(message, self.clock.now())
                self._drain()
                return False
            if wake is not None and self.clock.now() >= wake:
                return False

    def _line(self, line: Line) -> None:
        """Append a task's output line to its attempt's log file in the workdir, and show it."""
        log = self._logs.get((line.task, line.attempt))
        if log is None:
            job_name = naming.job_name(self.meta.name, line.task, line.attempt)
            log = self._logs[(line.task, line.attempt)] = open(self.workdir / f"{job_name}.log", "a")  # noqa: SIM115
        log.write(line.text + "\n")
        self.listener.line(line.task, line.attempt, line.text)

    def _drain(self) -> None:
        """Handle every message already queued (more exits, lines) without waiting."""
        while True:
            try:
                message = self._inbox.get_nowait()
            except queue.Empty:
                return
            if isinstance(message, Interrupted):
                self._inbox.put(message)  # handled by the next wait
                return
            if isinstance(message, Line):
                self._line(message)
            else:
                self._exited(message, self.clock.now())

    def _shutdown(self) -> None:
        """Stop every running task: SIGTERM to each process group, SIGKILL after the grace period."""
        now = self.clock.now()
        for job_name in list(self._running):
            self._stop(StopJob(job_name=job_name, reason="Interrupted", message="interrupted by the user"), now)
        # The interrupted run ends here: no more plans, only waiting for the processes to go.
        while self._running:
            now = self.clock.now()
            pending = [r.kill_at for r in self._running.values() if r.kill_at is not None]
            timeout = max((min(pending) - now).total_seconds(), 0.0) if pending else self.grace.total_seconds()
            message = self.clock.wait(self._inbox, timeout)
            if isinstance(message, Exited):
                self._exited(message, self.clock.now())
            elif isinstance(message, Line):
                self._line(message)
            elif isinstance(message, Interrupted):
                for running in list(self._running.values()):  # a second Ctrl-C: no more grace
                    self._kill(running, self.clock.now())
            else:
                now = self.clock.now()
                for running in list(self._running.values()):
                    if running.kill_at is not None and running.kill_at <= now:
                        self._kill(running, now)
                    elif running.kill_at is None:
                        # Already killed and still not reported gone after a grace period: give up on it.
                        self._running.pop(running.launch.job_name, None)

    def _object(self, status: TaskJobStatus) -> dict[str, Any]:
        # Python mode keeps sub-second times (JSON would cut them to whole seconds, as the API server does).
        return {**self.api_object, "status": status.model_dump(by_alias=True, exclude_none=True)}

    def _sinks(self) -> tuple[str, ...]:
        from ..core.dag import build

        graph = build([(t.name, t.depends_on) for t in self.tasks.values()])
        return tuple(name for name in graph.order if not graph.dependents[name])
