"""What the CLI shows of a TaskJob: the header, the task table in DAG order, the summary line and graphs.

Everything here works on the TaskJob as a plain dict (what the API server returns, or what `taskjob run`
builds), so it renders the same offline and live.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..core import fanout
from ..core.actions import Plan
from ..core.backoff import retry_delay
from ..core.dag import DagError, build
from ..core.models import TERMINAL_TASK_PHASES, TaskJobStatus, TaskState
from ..core.resolve import ResolvedRetry, resolve_tasks
from ..core.validation import validate_spec

TASK_STYLES: dict[str, str] = {
    "Waiting": "dim",
    "Ready": "cyan",
    "Running": "bold blue",
    "Retrying": "yellow",
    "Succeeded": "green",
    "Failed": "bold red",
    "Skipped": "magenta",
}
TASKJOB_STYLES: dict[str, str] = {
    "Pending": "dim",
    "Running": "bold blue",
    "Succeeded": "bold green",
    "Failed": "bold red",
    "Suspended": "yellow",
    "Invalid": "bold red",
}
# Fill colours for graphs, by task phase.
GRAPH_COLORS: dict[str, str] = {
    "Waiting": "#eeeeee",
    "Ready": "#d0f0f8",
    "Running": "#cfe2ff",
    "Retrying": "#fff3cd",
    "Succeeded": "#d4edda",
    "Failed": "#f8d7da",
    "Skipped": "#e9d8f4",
}
PENDING_PHASES = frozenset({"Waiting", "Ready", "Retrying"})


# ---------------------------------------------------------------- plain data


def spec_tasks(obj: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
    """Return (name, dependsOn) of every task in the object's spec, as written (valid or not).

    spec.finally tasks come last: they run after every other task.
    """
    spec = obj.get("spec") or {}
    tasks, final = spec.get("tasks") or [], spec.get("finally") or []
    listed = [*(tasks if isinstance(tasks, list) else []), *(final if isinstance(final, list) else [])]
    pairs: list[tuple[str, list[str]]] = []
    for t in listed:
        if isinstance(t, Mapping) and isinstance(t.get("name"), str):
            deps = t.get("dependsOn") or []
            pairs.append((t["name"], [d for d in deps if isinstance(d, str)] if isinstance(deps, list) else []))
    return pairs


def spec_notes(obj: Mapping[str, Any]) -> dict[str, str]:
    """Return what `get` and `graph` say of a task beyond its name: "finally", its `when` condition."""
    spec = obj.get("spec") or {}
    notes: dict[str, str] = {}
    for group in ("tasks", "finally"):
        listed = spec.get(group) or []
        for t in listed if isinstance(listed, list) else []:
            if not isinstance(t, Mapping) or not isinstance(t.get("name"), str):
                continue
            parts = ["finally"] if group == "finally" else []
            if isinstance(t.get("when"), str):
                parts.append(f"when {t['when']}")
            if parts:
                notes[t["name"]] = ", ".join(parts)
    return notes


def dag_order(tasks: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    """Return the task names in topological order (spec order when the graph is not a valid DAG)."""
    try:
        return list(build(tasks).order)
    except DagError:
        return list(dict.fromkeys(name for name, _ in tasks))


def depths(tasks: Sequence[tuple[str, Sequence[str]]]) -> dict[str, int]:
    """Return each task's depth: the length of the longest dependency chain above it (0 for roots)."""
    deps = {name: [d for d in ds if d != name] for name, ds in tasks}
    result: dict[str, int] = {}
    for name in deps:
        # Iterative DFS; a cycle (invalid spec) is cut by treating a task on the stack as depth 0.
        stack: list[tuple[str, bool]] = [(name, False)]
        active: set[str] = set()
        while stack:
            node, expanded = stack.pop()
            if node in result:
                continue
            if expanded:
                active.discard(node)
                result[node] = max((result.get(d, 0) + 1 for d in deps.get(node, []) if d in deps), default=0)
                continue
            active.add(node)
            stack.append((node, True))
            stack.extend((d, False) for d in deps.get(node, []) if d in deps and d not in result and d not in active)
    return result


def parse_status(obj: Mapping[str, Any]) -> TaskJobStatus:
    """Return the object's status as the typed model (an empty status when absent or unreadable)."""
    raw = obj.get("status")
    if not isinstance(raw, Mapping):
        return TaskJobStatus()
    try:
        return TaskJobStatus.model_validate(raw)
    except ValidationError:
        return TaskJobStatus()


@dataclass(frozen=True)
class TaskRow:
    """One line of the task table."""

    name: str
    depth: int
    phase: str
    attempts: int
    duration: timedelta | None
    next_retry_in: timedelta | None
    exit_code: int | None
    message: str


@dataclass(frozen=True)
class Summary:
    """The dashboard line: counts, throughput and the last failure."""

    pending: int
    running: int
    succeeded: int
    failed: int
    skipped: int
    per_minute: float | None
    last_failure: str | None


GENERIC_REASONS = frozenset({"Error", "Completed", "Failed"})


def _task_message(state: TaskState) -> str:
    """Return the task's message, led by its reason when that adds something (ImagePullBackOff, OOMKilled)."""
    message = state.message or ""
    reason = state.reason
    if not reason or reason in GENERIC_REASONS or reason in message:
        return message
    return f"{reason}: {message}" if message else reason


def task_rows(obj: Mapping[str, Any], now: datetime, *, instances: bool = False) -> list[TaskRow]:
    """Return one row per task of the object, in DAG order; with `instances`, a fan-out task's instances follow it."""
    tasks = spec_tasks(obj)
    status = parse_status(obj)
    states = status.tasks or {}
    level = depths(tasks)
    notes = spec_notes(obj)
    rows: list[TaskRow] = []
    order = dag_order(tasks)
    units: list[tuple[str, int]] = []
    for name in order:
        units.append((name, level.get(name, 0)))
        items = (states.get(name) or TaskState()).items
        if instances and items:  # a fan-out task: its instances, one level deeper
            units.extend((fanout.instance_name(name, i), level.get(name, 0) + 1) for i in range(items))
    for name, depth in units:
        state = states.get(name) or TaskState()
        duration = None
        if state.start_time is not None:
            end = state.finish_time if state.phase in TERMINAL_TASK_PHASES and state.finish_time else now
            duration = max(end - state.start_time, timedelta(0))
        next_retry = None
        if state.phase == "Retrying" and state.next_retry_time is not None:
            next_retry = max(state.next_retry_time - now, timedelta(0))
        message = _task_message(state)
        if state.items is not None:  # a fan-out task: its instances in one line
            phases = (states[u].phase for i in range(state.items) if (u := fanout.instance_name(name, i)) in states)
            extra = f"; {message}" if message and state.phase != "Succeeded" else ""  # it says "all succeeded"
            message = fanout.instance_summary(state.items, phases) + extra
        rows.append(
            TaskRow(
                name=name,
                depth=depth,
                phase=state.phase,
                attempts=state.attempts or 0,
                duration=duration,
                next_retry_in=next_retry,
                exit_code=state.exit_code,
                # A task not decided yet shows what it waits on: its condition, or that it is a finally task.
                message=message or (notes.get(name, "") if state.phase in ("Waiting", "Ready") else ""),
            )
        )
    return rows


def _retry_policies(obj: Mapping[str, Any]) -> dict[str, ResolvedRetry]:
    """Return each task's effective retry policy, or {} when the spec does not parse."""
    spec, _ = validate_spec(obj.get("spec") or {})
    return {name: task.retry for name, task in resolve_tasks(spec).items()} if spec is not None else {}


def summary(obj: Mapping[str, Any], now: datetime) -> Summary:
    """Return the counts by phase, succeeded tasks per minute since the start, and the last failure."""
    rows = task_rows(obj, now)
    status = parse_status(obj)
    count = {p: sum(1 for r in rows if r.phase == p) for p in TASK_STYLES}
    per_minute = None
    if status.start_time is not None:
        end = status.completion_time or now
        minutes = (end - status.start_time).total_seconds() / 60
        if minutes > 0:
            per_minute = count["Succeeded"] / minutes
    states = status.tasks or {}
    retries = _retry_policies(obj)
    failures: list[tuple[datetime, str, TaskState]] = []
    for name, st in states.items():
        if st.phase == "Failed" and st.finish_time is not None:
            failures.append((st.finish_time, name, st))
        elif st.phase == "Retrying" and st.next_retry_time is not None:
            # The status keeps when the retry starts, not when the attempt failed: take the planner's delay off.
            delay = retry_delay(retries[name], st.attempts or 1, st.retry_base or 0) if name in retries else 0.0
            failures.append((st.next_retry_time - timedelta(seconds=delay), name, st))
        elif st.phase == "Failed":
            failures.append((datetime.min.replace(tzinfo=UTC), name, st))
    last = None
    if failures:
        _, name, st = max(failures, key=lambda f: (f[0], f[1]))
        detail = _task_message(st) or (f"exit code {st.exit_code}" if st.exit_code is not None else st.phase)
        last = f"{name} (attempt {st.attempts or 0}): {detail}"
    return Summary(
        pending=sum(count[p] for p in PENDING_PHASES),
        running=count["Running"],
        succeeded=count["Succeeded"],
        failed=count["Failed"],
        skipped=count["Skipped"],
        per_minute=per_minute,
        last_failure=last,
    )


# ---------------------------------------------------------------- text helpers


def human_duration(value: timedelta | None) -> str:
    """Return a short duration such as 4s, 2m05s or 1h02m ('' for None)."""
    if value is None:
        return ""
    seconds_f = value.total_seconds()
    if 0 < seconds_f < 0.05:
        return "<0.1s"
    if seconds_f < 10 and seconds_f % 1:
        return f"{seconds_f:.1f}s"
    total = int(seconds_f)
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}s"


def _phase(phase: str, styles: Mapping[str, str]) -> Text:
    return Text(phase, style=styles.get(phase, ""))


def summary_line(s: Summary) -> Text:
    """Return the dashboard line: pending/running/succeeded/failed, tasks per minute, last failure."""
    line = Text()
    line.append(f"pending {s.pending}", style="dim")
    line.append(" · ")
    line.append(f"running {s.running}", style="blue")
    line.append(" · ")
    line.append(f"succeeded {s.succeeded}", style="green")
    line.append(" · ")
    line.append(f"failed {s.failed}", style="red" if s.failed else "")
    if s.skipped:
        line.append(" · ")
        line.append(f"skipped {s.skipped}", style="magenta")
    if s.per_minute is not None:
        line.append(f" · {s.per_minute:.1f} tasks/min")
    if s.last_failure:
        line.append(" · last failure: ")
        line.append(s.last_failure, style="red")
    return line


def header(obj: Mapping[str, Any], now: datetime) -> Table:
    """Return the header block: name, namespace, phase, progress, started, duration, message."""
    meta = obj.get("metadata") or {}
    status = parse_status(obj)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("Name:", str(meta.get("name") or meta.get("generateName") or ""))
    if meta.get("namespace"):
        grid.add_row("Namespace:", str(meta["namespace"]))
    grid.add_row("Phase:", _phase(status.phase, TASKJOB_STYLES))
    total = len(spec_tasks(obj))
    grid.add_row("Progress:", status.progress or f"{status.succeeded or 0}/{status.total or total}")
    if status.start_time is not None:
        ago = human_duration(max(now - status.start_time, timedelta(0)))
        grid.add_row("Started:", f"{status.start_time.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC ({ago} ago)")
        end = status.completion_time or now
        grid.add_row("Duration:", human_duration(max(end - status.start_time, timedelta(0))))
    if status.message:
        grid.add_row("Message:", status.message)
    return grid


def task_table(rows: Sequence[TaskRow]) -> Table:
    """Return the task table: task (indented by DAG depth), phase, attempts, duration, next retry, exit, message."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("TASK", no_wrap=True)
    table.add_column("PHASE", no_wrap=True)
    table.add_column("ATTEMPTS", justify="right")
    table.add_column("DURATION", justify="right")
    table.add_column("NEXT RETRY", justify="right")
    table.add_column("EXIT", justify="right")
    table.add_column("MESSAGE", overflow="fold")
    for r in rows:
        name = r.name if r.depth == 0 else "  " * (r.depth - 1) + "└─ " + r.name
        table.add_row(
            name,
            _phase(r.phase, TASK_STYLES),
            str(r.attempts) if r.attempts else "",
            human_duration(r.duration),
            _next_retry(r.next_retry_in),
            "" if r.exit_code is None else str(r.exit_code),
            r.message,
        )
    return table


def _next_retry(wait: timedelta | None) -> str:
    if wait is None:
        return ""
    return f"in {human_duration(wait)}" if wait > timedelta(0) else "due"


def taskjob_view(
    obj: Mapping[str, Any], now: datetime, *, with_summary: bool = True, instances: bool = False
) -> RenderableType:
    """Return the whole view of a TaskJob (like `argo get`): header, summary line, task table."""
    parts: list[RenderableType] = [header(obj, now)]
    if with_summary:
        parts.append(summary_line(summary(obj, now)))
    parts.append(Text(""))
    parts.append(task_table(task_rows(obj, now, instances=instances)))
    return Group(*parts)


# ---------------------------------------------------------------- graphs


def _mermaid_id(name: str) -> str:
    # Task names are DNS labels; '_' never occurs in them, and the prefix avoids mermaid keywords (`end`).
    return "t_" + name.replace("-", "_")


def mermaid(
    tasks: Sequence[tuple[str, Sequence[str]]],
    phases: Mapping[str, str] | None = None,
    notes: Mapping[str, str] | None = None,
    marks: Mapping[str, str] | None = None,
) -> str:
    """Return the DAG as a mermaid flowchart; with `phases`, nodes are classed (and coloured) by task phase.

    `marks` follow a task's name in its node (a fan-out task's instances: "×4"); `notes` (spec_notes:
    finally, conditions) are added under the names.
    """
    lines = ["flowchart TD"]
    names = {name for name, _ in tasks}
    marks = marks or {}
    for name, _ in tasks:
        shown = f"{name} {marks[name]}" if name in marks else name
        label = f"{shown}<br/>{phases.get(name, 'Waiting')}" if phases is not None else shown
        if notes and name in notes:
            text = notes[name].replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")  # mermaid entities
            label += f"<br/><i>{text}</i>"
        lines.append(f'  {_mermaid_id(name)}["{label}"]')
    for name, deps in tasks:
        lines.extend(f"  {_mermaid_id(d)} --> {_mermaid_id(name)}" for d in deps if d in names)
    if phases is not None:
        used = sorted({phases.get(name, "Waiting") for name, _ in tasks})
        for phase in used:
            lines.append(f"  classDef {phase} fill:{GRAPH_COLORS.get(phase, '#ffffff')}")
        for phase in used:
            members = [_mermaid_id(n) for n, _ in tasks if phases.get(n, "Waiting") == phase]
            lines.append(f"  class {','.join(members)} {phase}")
    return "\n".join(lines) + "\n"


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dot(
    name: str,
    tasks: Sequence[tuple[str, Sequence[str]]],
    phases: Mapping[str, str] | None = None,
    notes: Mapping[str, str] | None = None,
    marks: Mapping[str, str] | None = None,
) -> str:
    """Return the DAG in Graphviz dot; with `phases`, nodes are filled by task phase and labelled with it.

    `marks` follow a task's name in its label (a fan-out task's instances: "×4"); `notes` (spec_notes:
    finally, conditions) are added under the names.
    """
    marks = marks or {}
    lines = [
        f"digraph {_dot_quote(name)} {{",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fillcolor="#ffffff"];',
    ]
    names = {n for n, _ in tasks}
    for task, _ in tasks:
        note = "\\n" + _dot_quote(notes[task])[1:-1] if notes and task in notes else ""
        shown = f"{task} {marks[task]}" if task in marks else task
        if phases is None:
            label = _dot_quote(shown)[:-1] + note + '"'
            plain = label == _dot_quote(task)
            lines.append(f"  {_dot_quote(task)};" if plain else f"  {_dot_quote(task)} [label={label}];")
        else:
            phase = phases.get(task, "Waiting")
            label = _dot_quote(shown)[:-1] + "\\n" + phase + note + '"'  # dot's own line break inside the label
            lines.append(f'  {_dot_quote(task)} [label={label}, fillcolor="{GRAPH_COLORS.get(phase, "#ffffff")}"];')
    for task, deps in tasks:
        lines.extend(f"  {_dot_quote(d)} -> {_dot_quote(task)};" for d in deps if d in names)
    lines.append("}")
    return "\n".join(lines) + "\n"


def fanout_marks(obj: Mapping[str, Any]) -> dict[str, str]:
    """Return "×n" for each fan-out task: n instances (from the status, else a literal list), "×n" while unknown."""
    states = parse_status(obj).tasks or {}
    marks: dict[str, str] = {}
    for task in (obj.get("spec") or {}).get("tasks") or []:
        each = task.get("forEach") if isinstance(task, dict) else None
        if not isinstance(each, dict):
            continue
        state = states.get(task.get("name", ""))
        items = state.items if state is not None else None
        if items is None and isinstance(each.get("items"), list):
            items = len(each["items"])
        marks[task["name"]] = f"×{items}" if items is not None else "×n"
    return marks


def task_phases(obj: Mapping[str, Any]) -> dict[str, str]:
    """Return each task's phase from the object's status (Waiting when it has none)."""
    states = parse_status(obj).tasks or {}
    return {name: (states[name].phase if name in states else "Waiting") for name, _ in spec_tasks(obj)}


# ---------------------------------------------------------------- progress of `taskjob run`


def _clock(now: datetime) -> str:
    return now.astimezone().strftime("%H:%M:%S")


class PlainRunReporter:
    """Progress as plain lines (no TTY, or --quiet): the operator's Events, and the tasks' output unless quiet."""

    def __init__(self, console: Console, *, show_output: bool) -> None:
        self.console = console
        self.show_output = show_output

    def _print(self, text: Text | str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def started(self, launch: Any, pid: int) -> None:
        """Print nothing: the plan's Event says the task started; the pid is for the debug log only."""

    def line(self, task: str, attempt: int, text: str) -> None:
        """Print a task's output line, prefixed by the task."""
        if self.show_output:
            self._print(Text(f"{task}: ", style=_task_color(task)) + Text(text))

    def update(self, taskjob: Mapping[str, Any], plan: Plan, now: datetime) -> None:
        """Print the plan's Events about tasks, one line each (the run's end is reported once, by the caller)."""
        for event in plan.events:
            if event.reason in TASKJOB_STYLES:
                continue
            style = "yellow" if event.type == "Warning" else ""
            self._print(Text(f"{_clock(now)} ", style="dim") + Text(event.message, style=style))

    def note(self, text: str) -> None:
        """Print a note."""
        self._print(Text(text, style="yellow"))


class LiveRunReporter:
    """Progress as a live table (TTY): the `taskjob get` view, refreshed; output lines and warnings above it."""

    def __init__(self, console: Console, *, show_output: bool = True) -> None:
        self.console = console
        self.show_output = show_output
        self.obj: Mapping[str, Any] = {}
        self.live = Live(get_renderable=self._render, console=console, refresh_per_second=4, transient=False)

    def _render(self) -> RenderableType:
        if not self.obj:
            return Text("")
        return taskjob_view(self.obj, datetime.now(UTC))

    def __enter__(self) -> LiveRunReporter:
        self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.refresh()
        self.live.stop()

    def started(self, launch: Any, pid: int) -> None:
        """Nothing to print: the table shows the task running."""

    def line(self, task: str, attempt: int, text: str) -> None:
        """Print a task's output line above the table, prefixed by the task."""
        if self.show_output:
            self.live.console.print(
                Text(f"{task}: ", style=_task_color(task)) + Text(text), markup=False, highlight=False, soft_wrap=True
            )

    def update(self, taskjob: Mapping[str, Any], plan: Plan, now: datetime) -> None:
        """Show the new status; print Warning Events (failures, retries) above the table."""
        self.obj = taskjob
        for event in plan.events:
            if event.type == "Warning":
                self.live.console.print(
                    Text(f"{_clock(now)} ", style="dim") + Text(event.message, style="yellow"),
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
        self.live.refresh()

    def note(self, text: str) -> None:
        """Print a note above the table."""
        self.live.console.print(Text(text, style="yellow"), markup=False, highlight=False, soft_wrap=True)


_TASK_COLORS = ("cyan", "magenta", "green", "blue", "yellow", "bright_cyan", "bright_magenta", "bright_green")


def _task_color(task: str) -> str:
    """Return a stable colour for a task's prefix."""
    return _TASK_COLORS[sum(task.encode()) % len(_TASK_COLORS)]
