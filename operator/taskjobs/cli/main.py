"""The `taskjob` console script: one click group, a command per verb.

Errors a user can act on (a missing kubeconfig, an unknown TaskJob, an unreachable API server, a YAML
syntax error) end the command with one sentence and exit code 1; `--debug` adds the traceback.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import string
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, cast

import click
import yaml
from rich.console import Console
from rich.live import Live
from rich.text import Text

from .. import API_VERSION, KIND
from ..core import fanout
from ..core.cronvalidation import validate_crontaskjob
from ..core.models import TERMINAL_PHASES
from ..core.naming import ANNOTATION_RETRY, ANNOTATION_RETRY_TASKS, LABEL_ATTEMPT, LABEL_TASK, LABEL_TASKJOB
from ..core.validation import Problem, validate_taskjob
from ..dashboard.command import dashboard as dashboard_command
from . import views
from .cron import cron_name, cron_of_template, cron_view, is_cron, template_taskjob
from .kube import UserError
from .local import RUNTIMES, LocalExecutor, LocalResult, LocalRunError, Runtime

# ---------------------------------------------------------------- errors


class TaskjobGroup(click.Group):
    """A click group that turns failures into one sentence (exit 1), with the traceback under --debug."""

    def invoke(self, ctx: click.Context) -> Any:
        """Return the command's result; failures become a ClickException with one clear sentence."""
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except (UserError, LocalRunError) as exc:
            if _debug(ctx):
                traceback.print_exc()
            raise click.ClickException(str(exc)) from exc
        except Exception as exc:
            if _debug(ctx):
                traceback.print_exc()
                raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc
            raise click.ClickException(
                f"unexpected error: {type(exc).__name__}: {exc} (run with --debug to see the traceback)"
            ) from exc


def _debug(ctx: click.Context) -> bool:
    root = ctx.find_root()
    return bool(root.params.get("debug"))


@dataclass(frozen=True)
class Settings:
    """Global options (kubectl's: given before the verb, or after it, where the nearer one wins)."""

    debug: bool
    context: str | None = None
    namespace: str | None = None
    kubeconfig: str | None = None


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


# ---------------------------------------------------------------- manifests


@dataclass(frozen=True)
class Document:
    """One YAML document of a manifest file."""

    file: str
    index: int  # 1-based
    body: Any

    @property
    def label(self) -> str:
        """Return 'doc N (name)' for messages."""
        meta = self.body.get("metadata") if isinstance(self.body, dict) else None
        name = None
        if isinstance(meta, dict):
            name = meta.get("name") or (f"{meta['generateName']}*" if meta.get("generateName") else None)
        return f"doc {self.index} ({name})" if name else f"doc {self.index}"

    @property
    def is_taskjob(self) -> bool:
        """Return whether the document declares kind TaskJob (whatever else is wrong with it)."""
        return isinstance(self.body, dict) and self.body.get("kind") == KIND


class ManifestError(Exception):
    """A manifest file cannot be read or parsed; the message names the file (and line and column)."""


def read_documents(path: str) -> tuple[list[Document], ManifestError | None]:
    """Return the documents of a YAML file, and the error that stopped reading it early (if any)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        return [], ManifestError(f"{path}: cannot read the file: {exc.strerror or exc}")
    except UnicodeDecodeError:
        return [], ManifestError(f"{path}: is not UTF-8 text")
    docs: list[Document] = []
    try:
        for body in yaml.safe_load_all(text):
            index = len(docs) + 1
            docs.append(Document(path, index, body))
    except yaml.YAMLError as exc:
        return [d for d in docs if d.body is not None], ManifestError(_yaml_problem(path, exc))
    return [d for d in docs if d.body is not None], None


def _yaml_problem(path: str, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    context_mark = getattr(exc, "context_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    if context and context_mark is not None and (mark is None or context_mark.line != mark.line):
        context += f" started at line {context_mark.line + 1}, column {context_mark.column + 1}"
    detail = f"{problem} ({context})" if context else problem
    return f"{path}: {where}YAML syntax error: {detail}"


def load_taskjobs(paths: Sequence[str], *, templates: bool = False) -> list[Document]:
    """Return the TaskJob documents of the files; raise UserError on unreadable or invalid YAML.

    With `templates`, a CronTaskJob stands for the TaskJob it creates (`taskjob run` runs it once, now).
    """
    found: list[Document] = []
    for path in paths:
        docs, error = read_documents(path)
        if error:
            raise UserError(str(error))
        these = [d for d in docs if d.is_taskjob]
        if templates:
            these += [replace(d, body=template_taskjob(d.body, f"{path}: {d.label}")) for d in docs if is_cron(d.body)]
        if not these:
            raise UserError(f"{path}: no TaskJob in this file (a document with kind: {KIND})")
        found.extend(sorted(these, key=lambda d: d.index))
    return found


def problem_line(doc: Document, problem: Problem) -> str:
    """Return 'FILE: doc N (name): path: message'."""
    return f"{doc.file}: {doc.label}: {problem}"


def _validated(doc: Document) -> Any:
    """Return the TaskJob model of a document, or raise UserError listing every problem."""
    result = validate_taskjob(doc.body)
    if not result.ok or result.taskjob is None:
        lines = "\n".join(problem_line(doc, p) for p in result.problems)
        raise UserError(f"the TaskJob is invalid:\n{lines}")
    return result.taskjob


# ---------------------------------------------------------------- the group


_NAMESPACE_HELP = "Namespace (default: the kubeconfig context's)."
_CONTEXT_HELP = "kubeconfig context (default: current)."
_KUBECONFIG_HELP = "kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)."


@click.group(cls=TaskjobGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, envvar="TASKJOB_DEBUG", help="Show the traceback of errors.")
@click.option("-n", "--namespace", default=None, metavar="NS", help=_NAMESPACE_HELP)
@click.option("--context", "kube_context", default=None, metavar="NAME", help=_CONTEXT_HELP)
@click.option("--kubeconfig", default=None, metavar="FILE", help=_KUBECONFIG_HELP)
@click.version_option(package_name="taskjob", prog_name="taskjob")
@click.pass_context
def cli(
    ctx: click.Context, debug: bool, namespace: str | None, kube_context: str | None, kubeconfig: str | None
) -> None:
    """Run DAGs of tasks as Kubernetes Jobs, or on this machine with `taskjob run`."""
    ctx.obj = Settings(debug=debug, context=kube_context, namespace=namespace, kubeconfig=kubeconfig)


def _settings(ctx: click.Context) -> Settings:
    return ctx.find_object(Settings) or Settings(False)


def _cluster(ctx: click.Context) -> Any:
    from .kube import connect

    settings = _settings(ctx)
    return connect(settings.context, settings.kubeconfig)


def _override(field: str) -> Any:
    """Return a callback that lets a subcommand's option replace the global one of the same name."""

    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
        if value is not None:
            settings = _settings(ctx)
            ctx.obj = replace(settings, context=value) if field == "context" else replace(settings, kubeconfig=value)

    return callback


def _namespace(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    return value if value is not None else _settings(ctx).namespace


def cluster_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add kubectl's -n/--namespace, --context and --kubeconfig after the verb (the command gets `namespace`)."""
    command = click.option(
        "--kubeconfig", default=None, metavar="FILE", help=_KUBECONFIG_HELP,
        expose_value=False, is_eager=True, callback=_override("kubeconfig"),
    )(command)  # fmt: skip
    command = click.option(
        "--context", default=None, metavar="NAME", help=_CONTEXT_HELP,
        expose_value=False, is_eager=True, callback=_override("context"),
    )(command)  # fmt: skip
    return click.option("-n", "--namespace", default=None, metavar="NS", help=_NAMESPACE_HELP, callback=_namespace)(
        command
    )


# ---------------------------------------------------------------- validate


@cli.command(short_help="Check manifests offline; list every problem.")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
def validate(files: tuple[str, ...]) -> None:
    """Check TaskJob and CronTaskJob manifests offline, with the operator's own validation; list every problem.

    Exit code 1 when any document has a problem. Documents of other kinds are skipped.
    """
    problems = 0
    valid = 0
    crons = 0
    for path in files:
        docs, error = read_documents(path)
        taskjobs: list[Document] = []
        for doc in docs:
            kind = doc.body.get("kind") if isinstance(doc.body, dict) else None
            kindless = isinstance(doc.body, dict) and kind is None and "spec" in doc.body
            if doc.is_taskjob or is_cron(doc.body) or kindless:
                taskjobs.append(doc)  # a TaskJob missing its kind is still checked: validation says so
            else:
                click.echo(f"{path}: {doc.label}: skipped (kind {kind or 'unknown'} is not a {KIND})", err=True)
        for doc in sorted(taskjobs, key=lambda d: d.index):
            result = validate_crontaskjob(doc.body) if is_cron(doc.body) else validate_taskjob(doc.body)
            crons += is_cron(doc.body) and result.ok
            if result.ok:
                valid += 1
            for p in result.problems:
                problems += 1
                click.echo(problem_line(doc, p))
        if error:
            problems += 1
            click.echo(str(error))
        elif not taskjobs:
            problems += 1
            click.echo(f"{path}: no TaskJob in this file (a document with kind: {KIND})")
    if problems:
        click.echo(f"{problems} problem{'s' if problems != 1 else ''} found", err=True)
        sys.exit(1)
    valid -= crons
    counted = f"{valid} TaskJob{'s' if valid != 1 else ''}"
    if crons:
        counted += f" and {crons} CronTaskJob{'s' if crons != 1 else ''}"
    click.echo(f"OK: {counted} valid in {len(files)} file{'s' if len(files) != 1 else ''}")


# ---------------------------------------------------------------- graph


@cli.command(short_help="Print the DAG as mermaid or Graphviz dot.")
@click.argument("source", metavar="FILE|NAME")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True)
@cluster_options
@click.pass_context
def graph(ctx: click.Context, source: str, fmt: str, namespace: str | None) -> None:
    """Print the DAG as a mermaid flowchart or Graphviz dot.

    FILE is a manifest (every TaskJob in it is drawn); NAME is a TaskJob in the cluster, drawn with each
    task coloured by its phase.
    """
    if os.path.exists(source) or source == "-":
        drawings = []
        for doc in load_taskjobs([source], templates=True):
            tj = _validated(doc)
            plain = doc.body if isinstance(doc.body, Mapping) else {}
            marks = views.fanout_marks({"spec": plain.get("spec") or {}})
            drawings.append(
                _draw(fmt, tj.metadata.name, views.spec_tasks(plain), None, views.spec_notes(plain), marks)
            )
        click.echo("\n".join(drawings), nl=False)
        return
    if "/" in source or source.endswith((".yaml", ".yml", ".json")):
        raise UserError(f"{source}: no such file")
    cluster = _cluster(ctx)
    ns = namespace or cluster.namespace
    obj = cluster.get(ns, source)
    marks = views.fanout_marks(obj)
    click.echo(
        _draw(fmt, source, views.spec_tasks(obj), views.task_phases(obj), views.spec_notes(obj), marks), nl=False
    )


def _draw(
    fmt: str,
    name: str,
    tasks: list[tuple[str, list[str]]],
    phases: Mapping[str, str] | None,
    notes: Mapping[str, str] | None = None,
    marks: Mapping[str, str] | None = None,
) -> str:
    if fmt == "dot":
        return views.dot(name, tasks, phases, notes, marks)
    return f"%% TaskJob {name}\n" + views.mermaid(tasks, phases, notes, marks)


# ---------------------------------------------------------------- run


def _local_name(body: Mapping[str, Any]) -> str | None:
    """Return a name for a generateName manifest, as the API server would make one."""
    meta = body.get("metadata") or {}
    if meta.get("name") or not meta.get("generateName"):
        return None
    alphabet = string.ascii_lowercase + string.digits
    return str(meta["generateName"]) + "".join(secrets.choice(alphabet) for _ in range(5))


@cli.command(short_help="Run a TaskJob here, without a cluster.")
@click.argument("file", metavar="FILE")
@click.option("--parallelism", type=click.IntRange(min=1), default=None, help="Override spec.parallelism.")
@click.option(
    "--runtime",
    type=click.Choice(RUNTIMES),
    default="local",
    show_default=True,
    help="local: each task's command as a process; docker/podman: each task's image.",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep each attempt's output and log files here (default: a temporary directory, removed at the end).",
)
@click.option("-q", "--quiet", is_flag=True, help="Plain progress lines only, without the tasks' own output.")
@click.option(
    "--grace", type=click.FloatRange(min=0), default=5.0, show_default=True, help="Seconds between SIGTERM and SIGKILL."
)
def run(
    file: str, parallelism: int | None, runtime: str, workdir: Path | None, quiet: bool, grace: float
) -> None:
    """Run a TaskJob on this machine, no cluster needed: the operator's plan, retries and backoff, with
    each task a local process (or a container with --runtime docker|podman). A CronTaskJob's template
    runs once, now.

    Progress goes to stderr; the outputs of the final tasks go to stdout. Exit code 0 when the TaskJob
    succeeds, 1 when it fails, 130 when interrupted (Ctrl-C stops the running tasks first).
    """
    docs = load_taskjobs([file], templates=True)
    if len(docs) > 1:
        raise UserError(f"{file}: holds {len(docs)} TaskJobs; `taskjob run` runs one at a time")
    cron = cron_of_template(docs[0].body)
    if cron:
        click.echo(f"{file}: running the taskJobTemplate of CronTaskJob {cron} once, now (the schedule is for "
                   "the operator)", err=True)
    taskjob = _validated(docs[0])
    name = _local_name(docs[0].body)
    if name:
        taskjob = taskjob.model_copy(update={"metadata": taskjob.metadata.model_copy(update={"name": name})})
    if runtime != "local" and shutil.which(runtime) is None:
        raise UserError(f"--runtime {runtime}: {runtime} is not installed (not found on PATH)")

    console = _stderr()
    interactive = console.is_terminal and not quiet
    reporter: Any = (
        views.LiveRunReporter(console) if interactive else views.PlainRunReporter(console, show_output=not quiet)
    )
    temporary = workdir is None
    directory = Path(tempfile.mkdtemp(prefix="taskjob-")) if workdir is None else workdir
    try:
        executor = LocalExecutor(
            taskjob,
            workdir=directory,
            runtime=cast(Runtime, runtime),
            parallelism=parallelism,
            listener=reporter,
            grace_seconds=grace,
        )
        with _signals_to(executor.interrupt):
            if interactive:
                with reporter:
                    result = executor.run()
            else:
                result = executor.run()
    finally:
        if temporary:
            shutil.rmtree(directory, ignore_errors=True)
    _report(console, result, quiet=quiet, shown_live=interactive)
    sys.exit(result.exit_code)


class _signals_to:
    """Route SIGINT and SIGTERM to `handler` inside the block (main thread only); restore them after."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.saved: dict[int, Any] = {}

    def __enter__(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def on_signal(signum: int, frame: FrameType | None) -> None:
            self.handler()

        for sig in (signal.SIGINT, signal.SIGTERM):
            self.saved[sig] = signal.signal(sig, on_signal)

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self.saved.items():
            signal.signal(sig, previous)


def _report(console: Console, result: LocalResult, *, quiet: bool, shown_live: bool) -> None:
    """Print how the run ended (stderr) and the final tasks' outputs (stdout)."""
    status = result.status
    name = result.taskjob["metadata"]["name"]
    if not shown_live and not quiet:
        console.print(views.task_table(views.task_rows(result.taskjob, datetime.now(UTC))))
    if result.interrupted:
        console.print(Text(f"{name}: interrupted; running tasks were stopped", style="yellow"))
    elif result.stuck:
        console.print(Text(f"{name}: {result.stuck}", style="yellow"))
    else:
        style = views.TASKJOB_STYLES.get(status.phase, "")
        detail = f": {status.message}" if status.message else ""
        console.print(Text(f"{name} {status.phase} ({status.progress or ''}){detail}", style=style))
    # An output is kept byte for byte for downstream tasks; shown here without its trailing newline.
    outputs = {s: result.outputs[s].rstrip("\n") for s in result.sinks if s in result.outputs}
    if len(result.sinks) == 1:
        for output in outputs.values():
            click.echo(output)
    else:
        for sink, output in outputs.items():
            click.echo(f"{sink}: {output}")


# ---------------------------------------------------------------- submit, get, watch


@cli.command(short_help="Create TaskJobs in the cluster.")
@click.argument("file", metavar="FILE")
@cluster_options
@click.option("-w", "--watch", "follow", is_flag=True, help="Then watch it until it finishes.")
@click.pass_context
def submit(ctx: click.Context, file: str, namespace: str | None, follow: bool) -> None:
    """Create the TaskJobs of a manifest in the cluster (metadata.generateName supported), after validating them."""
    docs = load_taskjobs([file])
    for doc in docs:
        _validated(doc)
    if follow and len(docs) > 1:
        raise UserError(f"{file}: holds {len(docs)} TaskJobs; --watch follows one")
    cluster = _cluster(ctx)
    created = []
    for doc in docs:
        body = {k: v for k, v in doc.body.items() if k != "status"}
        declared = (body.get("metadata") or {}).get("namespace")
        if namespace and declared and declared != namespace:
            raise UserError(
                f"{file}: {doc.label}: metadata.namespace is {declared!r} but --namespace is {namespace!r}"
            )
        ns = namespace or declared or cluster.namespace
        obj = cluster.create(ns, body)
        created.append((ns, obj["metadata"]["name"]))
        click.echo(f"{API_VERSION}/{KIND.lower()} {obj['metadata']['name']} created in namespace {ns}")
    if follow:
        ns, name = created[0]
        sys.exit(_watch(cluster, ns, name))


@cli.command(short_help="Show a TaskJob and its tasks in DAG order.")
@click.argument("name")
@cluster_options
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default=None, help="Print the object instead.")
@click.option("--instances", is_flag=True, help="List every instance of a fan-out task (forEach), not only a count.")
@click.pass_context
def get(ctx: click.Context, name: str, namespace: str | None, output: str | None, instances: bool) -> None:
    """Show a TaskJob: phase, progress, times, message, and its tasks in DAG order (like `argo get`).

    `ctj/NAME` (or `crontaskjob/NAME`) shows a CronTaskJob: its schedule, last and next times, and its runs.
    """
    cluster = _cluster(ctx)
    cron = cron_name(name)
    runs: list[dict[str, Any]] = []
    if cron is not None:
        obj, runs = cluster.get_cron(namespace or cluster.namespace, cron)
    else:
        obj = cluster.get(namespace or cluster.namespace, name)
    if output == "json":
        click.echo(json.dumps(obj, indent=2))
    elif output == "yaml":
        click.echo(yaml.safe_dump(obj, sort_keys=False), nl=False)
    elif cron is not None:
        Console(highlight=False).print(cron_view(obj, runs))
    else:
        Console(highlight=False).print(views.taskjob_view(obj, datetime.now(UTC), instances=instances))


@cli.command(short_help="Show a TaskJob live until it finishes.")
@click.argument("name")
@cluster_options
@click.pass_context
def watch(ctx: click.Context, name: str, namespace: str | None) -> None:
    """Show a TaskJob live (from a watch) until it finishes: exit 0 when it succeeds, 1 when it fails."""
    cluster = _cluster(ctx)
    sys.exit(_watch(cluster, namespace or cluster.namespace, name))


def finished_code(obj: Mapping[str, Any]) -> int | None:
    """Return the exit code for a finished TaskJob (0 Succeeded, 1 Failed or Invalid), None while it runs."""
    phase = views.parse_status(obj).phase
    if phase not in TERMINAL_PHASES:
        return None
    return 0 if phase == "Succeeded" else 1


def _watch(cluster: Any, namespace: str, name: str) -> int:
    """Follow the TaskJob's watch with the live view; return its exit code (130 on Ctrl-C)."""
    console = Console(highlight=False)
    latest: dict[str, Any] = {}

    def render() -> Any:
        return views.taskjob_view(latest, datetime.now(UTC)) if latest else Text("")

    try:
        if console.is_terminal:
            with Live(get_renderable=render, console=console, refresh_per_second=2):
                code = _follow(cluster.watch(namespace, name), latest, None)
        else:
            code = _follow(cluster.watch(namespace, name), latest, console)
            console.print(render())
    except KeyboardInterrupt:
        return 130
    return code


def _follow(updates: Iterator[dict[str, Any]], latest: dict[str, Any], plain: Console | None) -> int:
    """Consume watch updates into `latest` until the TaskJob finishes; print a summary line per change if plain."""
    last_line = ""
    for obj in updates:
        latest.clear()
        latest.update(obj)
        if plain is not None:
            now = datetime.now(UTC)
            status = views.parse_status(obj)
            line = f"{status.phase} {status.progress or ''} · " + views.summary_line(views.summary(obj, now)).plain
            if line != last_line:
                plain.print(Text(f"{now.astimezone():%H:%M:%S} ", style="dim") + Text(line), soft_wrap=True)
                last_line = line
        code = finished_code(obj)
        if code is not None:
            return code
    return 1


# ---------------------------------------------------------------- logs


def _suggest_task(task: str, names: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(task, list(names), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _pod_key(pod: Mapping[str, Any]) -> tuple[str, int, str]:
    labels = pod.get("metadata", {}).get("labels") or {}
    try:
        attempt = int(labels.get(LABEL_ATTEMPT, "0"))
    except ValueError:
        attempt = 0
    return labels.get(LABEL_TASK, ""), attempt, pod.get("metadata", {}).get("creationTimestamp") or ""


def select_pods(
    pods: Sequence[Mapping[str, Any]], order: Sequence[str], attempt: int | None
) -> list[Mapping[str, Any]]:
    """Return the pods to show, in DAG order: each task's latest attempt, or the given attempt."""
    by_task: dict[str, list[Mapping[str, Any]]] = {}
    for pod in pods:
        task, number, _ = _pod_key(pod)
        if attempt is None or number == attempt:
            by_task.setdefault(task, []).append(pod)
    chosen: list[Mapping[str, Any]] = []
    rank = {t: i for i, t in enumerate(order)}
    for task in sorted(by_task, key=lambda t: (rank.get(t, len(rank)), t)):
        group = sorted(by_task[task], key=_pod_key)
        latest = max(_pod_key(p)[1] for p in group)
        chosen.extend(p for p in group if _pod_key(p)[1] == latest)
    return chosen


@cli.command(short_help="Print task pods' logs, prefixed by task.")
@click.argument("name")
@click.argument("task", required=False)
@click.option("--attempt", type=click.IntRange(min=1), default=None, help="This attempt (default: the latest).")
@click.option("-f", "--follow", is_flag=True, help="Keep streaming, including tasks that start later.")
@cluster_options
@click.pass_context
def logs(
    ctx: click.Context, name: str, task: str | None, attempt: int | None, follow: bool, namespace: str | None
) -> None:
    """Print the logs of a TaskJob's task pods, each line prefixed by its task."""
    cluster = _cluster(ctx)
    ns = namespace or cluster.namespace
    obj = cluster.get(ns, name)
    tasks = views.spec_tasks(obj)
    names = [t for t, _ in tasks]
    fanouts = set(views.fanout_marks(obj))
    owner, _, index = (task or "").rpartition("-")
    instance = owner in fanouts and index.isdigit()  # an instance of a fan-out task: <task>-<index>
    if task is not None and task not in names and not instance:
        raise UserError(f"TaskJob {ns}/{name} has no task {task!r}{_suggest_task(task, names)}")
    selector = f"{LABEL_TASKJOB}={name}"
    if task in fanouts:  # a fan-out task: the pods of all its instances
        selector += f",{fanout.LABEL_FANOUT}={task}"
    elif task:
        selector += f",{LABEL_TASK}={task}"
    if attempt:
        selector += f",{LABEL_ATTEMPT}={attempt}"
    order = views.dag_order(tasks)
    console = Console(highlight=False)
    lock = threading.Lock()

    def emit(pod: Mapping[str, Any], line: str) -> None:
        task_name, number, _ = _pod_key(pod)
        prefix = task_name if attempt or number <= 1 else f"{task_name}#{number}"
        with lock:
            console.print(Text(f"{prefix}: ", style=views._task_color(task_name)) + Text(line), soft_wrap=True)

    try:
        if not follow:
            pods = select_pods(cluster.pods(ns, selector), order, attempt)
            if not pods:
                which = f" task {task}" if task else ""
                raise UserError(f"no pods found for TaskJob {ns}/{name}{which} (label selector {selector})")
            for pod in pods:
                for line in _pod_lines(cluster, ns, pod, follow=False):
                    emit(pod, line)
            return
        _follow_logs(cluster, ns, name, selector, emit)
    except KeyboardInterrupt:
        sys.exit(130)


def _pod_lines(cluster: Any, namespace: str, pod: Mapping[str, Any], *, follow: bool) -> Iterator[str]:
    phase = (pod.get("status") or {}).get("phase")
    if phase == "Pending" and not follow:
        reason = _waiting_reason(pod)
        yield f"(pod {pod['metadata']['name']} has not started{f': {reason}' if reason else ''})"
        return
    try:
        yield from cluster.log_lines(namespace, pod["metadata"]["name"], follow=follow)
    except UserError as exc:
        yield f"(no log: {exc})"


def _waiting_reason(pod: Mapping[str, Any]) -> str | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            return str(waiting["reason"])
    return None


def _container_started(pod: Mapping[str, Any]) -> bool:
    """Return whether the pod's task container has started (so it has a log to follow)."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        state = status.get("state") or {}
        if status.get("name") == "task" and (state.get("running") or state.get("terminated")):
            return True
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _follow_logs(cluster: Any, namespace: str, name: str, selector: str, emit: Any) -> None:
    """Stream every matching pod's log once its container starts, until the TaskJob finished and logs end."""
    import time

    followers: dict[str, threading.Thread] = {}
    finished: dict[str, bool] = {}

    def stream(pod: Mapping[str, Any]) -> None:
        try:
            for line in _pod_lines(cluster, namespace, pod, follow=True):
                emit(pod, line)
        except Exception as exc:  # a thread's failure would otherwise vanish
            emit(pod, f"(log stream ended: {type(exc).__name__}: {exc})")

    # Pods come from a watch (not polling); the TaskJob is read only when no pod is left running.
    synced = False  # the first listing is complete
    for pod in cluster.watch_pods(namespace, selector):
        synced = synced or pod is None
        if pod is not None:
            pod_name = pod["metadata"]["name"]
            finished[pod_name] = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
            if pod_name not in followers and _container_started(pod):
                followers[pod_name] = threading.Thread(target=stream, args=(pod,), daemon=True)
                followers[pod_name].start()
        if synced and all(finished.values()) and finished_code(cluster.get(namespace, name)) is not None:
            break
    deadline = time.monotonic() + 30
    for thread in followers.values():
        thread.join(timeout=max(deadline - time.monotonic(), 0.1))


# ---------------------------------------------------------------- retry


def retry_targets(obj: Mapping[str, Any], requested: Sequence[str]) -> list[str]:
    """Return the tasks a retry re-runs: the requested ones (each must be Failed or Skipped), else all such."""
    phases = views.task_phases(obj)
    if requested:
        for task in requested:
            if task not in phases:
                raise UserError(f"no task {task!r} in this TaskJob{_suggest_task(task, list(phases))}")
            if phases[task] not in ("Failed", "Skipped"):
                raise UserError(f"task {task!r} is {phases[task]}: only Failed or Skipped tasks can be retried")
        return list(requested)
    targets = [t for t in views.dag_order(views.spec_tasks(obj)) if phases.get(t) in ("Failed", "Skipped")]
    if not targets:
        phase = views.parse_status(obj).phase
        raise UserError(f"nothing to retry: the TaskJob is {phase} and none of its tasks failed or was skipped")
    return targets


def retry_patch(tasks: Sequence[str], requested: bool, nonce: str) -> dict[str, Any]:
    """Return the merge patch asking the operator for a retry: a fresh nonce, and the task list if one was given."""
    return {
        "metadata": {
            "annotations": {
                ANNOTATION_RETRY: nonce,
                ANNOTATION_RETRY_TASKS: ",".join(tasks) if requested else None,
            }
        }
    }


@cli.command(short_help="Re-run failed and skipped tasks.")
@click.argument("name")
@click.option("--task", "tasks", multiple=True, metavar="T", help="Retry only this task (repeatable).")
@cluster_options
@click.option("-w", "--watch", "follow", is_flag=True, help="Then watch it until it finishes.")
@click.pass_context
def retry(ctx: click.Context, name: str, tasks: tuple[str, ...], namespace: str | None, follow: bool) -> None:
    """Re-run a TaskJob's failed and skipped tasks as new attempts, keeping succeeded tasks and their outputs."""
    cluster = _cluster(ctx)
    ns = namespace or cluster.namespace
    obj = cluster.get(ns, name)
    targets = retry_targets(obj, tasks)
    nonce = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
    cluster.patch(ns, name, retry_patch(targets, bool(tasks), nonce))
    click.echo(f"retry requested for TaskJob {ns}/{name}: {', '.join(targets)}")
    if follow:
        sys.exit(_watch(cluster, ns, name))


# ---------------------------------------------------------------- operator


@cli.command(short_help="Run the operator.")
@click.option("--namespace", "namespaces", multiple=True, metavar="NS", help="Watch only this namespace (repeatable).")
@click.option("--peering", default=None, metavar="NAME", help="kopf peering object for HA (default: standalone).")
@click.option("--priority", type=int, default=0, show_default=True, help="Peering priority.")
@click.option("--health-port", type=int, default=8080, show_default=True, help="/healthz port; 0 disables.")
@click.option("--metrics-port", type=int, default=9090, show_default=True, help="/metrics port; 0 disables.")
@click.option("--webhook-port", type=int, default=0, show_default=True, help="Admission webhook port; 0 disables.")
@click.option("--webhook-host", default=None, help="DNS name of the webhook (for its certificate).")
@click.option("--webhook-service", default=None, help="Service the webhook configuration points to.")
@click.option("--webhook-service-namespace", default=None, help="Namespace of that Service.")
@click.option("--webhook-cert-dir", default=None, metavar="DIR",
              help="tls.crt, tls.key and ca.crt shared by all replicas (default: a self-signed certificate).")
@click.option("--webhook-failure-policy", type=click.Choice(["Fail", "Ignore"]), default="Ignore", show_default=True,
              help="What the API server does when the webhook cannot be reached.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True
)
@click.option("--qps", type=click.FloatRange(min=0.1), default=200.0, show_default=True, help="API requests per second")
@click.pass_context
def operator(
    ctx: click.Context,
    namespaces: tuple[str, ...],
    peering: str | None,
    priority: int,
    health_port: int,
    metrics_port: int,
    webhook_port: int,
    webhook_host: str | None,
    webhook_service: str | None,
    webhook_service_namespace: str | None,
    webhook_cert_dir: str | None,
    webhook_failure_policy: str,
    log_format: str,
    log_level: str,
    qps: float,
) -> None:
    """Run the operator against the current kubeconfig (all namespaces unless --namespace is given)."""
    from ..shell.options import OperatorOptions

    settings = _settings(ctx)
    if settings.context or settings.kubeconfig:
        raise click.UsageError(
            "taskjob operator uses its pod's service account, else the current context of $KUBECONFIG: "
            "--context and --kubeconfig apply to the client commands"
        )
    if not namespaces and settings.namespace:
        namespaces = (settings.namespace,)  # `taskjob -n NS operator`: watch that namespace

    options = OperatorOptions(
        namespaces=namespaces,
        peering=peering,
        priority=priority,
        health_port=health_port,
        metrics_port=metrics_port,
        webhook_port=webhook_port,
        webhook_host=webhook_host,
        webhook_service=webhook_service,
        webhook_service_namespace=webhook_service_namespace,
        webhook_cert_dir=webhook_cert_dir,
        webhook_failure_policy=webhook_failure_policy,  # type: ignore[arg-type]
        log_format=log_format,  # type: ignore[arg-type]
        log_level=log_level,  # type: ignore[arg-type]
        client_qps=qps,
    )
    from ..shell.run import run_operator  # kopf loads only here: the other commands work without it

    run_operator(options)


cli.add_command(dashboard_command)


def main() -> NoReturn:
    """Run the CLI and exit with its exit code."""
    cli.main(prog_name="taskjob")
    raise SystemExit(0)  # cli.main exits itself; this satisfies NoReturn


if __name__ == "__main__":
    main()
