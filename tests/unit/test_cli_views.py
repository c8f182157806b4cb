"""What `taskjob get`/`watch` show, computed from status dicts; the cluster commands against a fake API server;
and the one-sentence errors for humans (no kubeconfig, unreachable server, unknown TaskJob)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from click.testing import CliRunner
from rich.console import Console

from taskjobs.cli import views
from taskjobs.cli.main import cli, retry_targets, select_pods

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def ts(seconds_before_now: float) -> str:
    return (NOW - timedelta(seconds=seconds_before_now)).strftime("%Y-%m-%dT%H:%M:%SZ")


# Spec order differs from DAG order on purpose: `load` is written first.
TASKJOB: dict[str, Any] = {
    "apiVersion": "taskjob.dev/v1alpha1",
    "kind": "TaskJob",
    "metadata": {"name": "etl", "namespace": "team", "resourceVersion": "1"},
    "spec": {
        "tasks": [
            {"name": "load", "image": "x", "dependsOn": ["transform", "audit"]},
            {"name": "transform", "image": "x", "dependsOn": ["extract"]},
            {"name": "extract", "image": "x"},
            {"name": "audit", "image": "x", "dependsOn": ["extract"]},
        ]
    },
    "status": {
        "phase": "Running",
        "progress": "1/4",
        "startTime": ts(120),
        "message": "1 running, 1 retrying, 1 succeeded of 4",
        "tasks": {
            "extract": {"phase": "Succeeded", "attempts": 1, "startTime": ts(120), "finishTime": ts(90)},
            "transform": {
                "phase": "Retrying",
                "attempts": 2,
                "startTime": ts(90),
                "exitCode": 1,
                "reason": "Error",
                "message": "attempt 2 of 4 failed: exit code 1",
                "nextRetryTime": (NOW + timedelta(seconds=10)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            "audit": {
                "phase": "Running",
                "attempts": 1,
                "startTime": ts(30),
                "reason": "ImagePullBackOff",
                "message": 'Back-off pulling image "x"',
            },
            "load": {"phase": "Waiting"},
        },
    },
}


def render(renderable: Any) -> str:
    console = Console(record=True, width=160, color_system=None)
    console.print(renderable)
    return console.export_text()


# ---------------------------------------------------------------- views from status dicts


def test_tasks_are_listed_in_dag_order_with_depth_duration_next_retry_and_exit_code() -> None:
    rows = views.task_rows(TASKJOB, NOW)
    assert [(r.name, r.depth, r.phase) for r in rows] == [
        ("extract", 0, "Succeeded"),
        ("transform", 1, "Retrying"),
        ("audit", 1, "Running"),
        ("load", 2, "Waiting"),
    ]
    extract, transform, audit, _ = rows
    assert extract.duration == timedelta(seconds=30)
    assert audit.duration == timedelta(seconds=30)  # still running: counted up to now
    assert transform.next_retry_in == timedelta(seconds=10)
    assert transform.exit_code == 1 and transform.attempts == 2
    assert transform.message == "attempt 2 of 4 failed: exit code 1"  # the generic reason Error adds nothing
    assert audit.message == 'ImagePullBackOff: Back-off pulling image "x"'


def test_the_view_shows_header_summary_and_table() -> None:
    text = render(views.taskjob_view(TASKJOB, NOW))
    assert "Phase:      Running" in text
    assert "Progress:   1/4" in text
    assert "Started:    2024-05-01 11:58:00 UTC (2m00s ago)" in text
    assert "Duration:   2m00s" in text
    assert "Message:    1 running, 1 retrying, 1 succeeded of 4" in text
    assert "pending 2 · running 1 · succeeded 1 · failed 0 · 0.5 tasks/min" in text
    assert "last failure: transform (attempt 2): attempt 2 of 4 failed: exit code 1" in text
    lines = [line for line in text.splitlines() if line.strip().startswith(("extract", "└─"))]
    assert [line.split()[0] if not line.strip().startswith("└─") else line.split()[1] for line in lines] == [
        "extract",
        "transform",
        "audit",
        "load",
    ]
    transform = next(line for line in lines if "transform" in line)
    assert "Retrying" in transform and "in 10s" in transform


def test_an_invalid_taskjob_still_renders_its_tasks_in_spec_order() -> None:
    obj = {
        "metadata": {"name": "bad"},
        "spec": {"tasks": [{"name": "a", "dependsOn": ["b"]}, {"name": "b", "dependsOn": ["a"]}]},
        "status": {"phase": "Invalid", "message": "invalid TaskJob: spec.tasks[0].dependsOn: cycle a → b → a"},
    }
    text = render(views.taskjob_view(obj, NOW))
    assert "Invalid" in text and "cycle a → b → a" in text
    assert [r.name for r in views.task_rows(obj, NOW)] == ["a", "b"]


def test_the_summary_names_the_most_recent_failure() -> None:
    obj = json.loads(json.dumps(TASKJOB))
    obj["status"]["tasks"]["audit"] = {
        "phase": "Failed",
        "attempts": 4,
        "finishTime": ts(1),
        "exitCode": 3,
        "reason": "Error",
        "message": "failed after 4 attempts: exit code 3",
    }
    # transform's attempt 2 failed 10s ago (its retry is due in 10s after a 20s delay); audit failed 1s ago.
    s = views.summary(obj, NOW)
    assert (s.pending, s.running, s.succeeded, s.failed) == (2, 0, 1, 1)
    assert s.last_failure == "audit (attempt 4): failed after 4 attempts: exit code 3"


def test_the_summary_counts_the_backoff_afresh_after_a_manual_retry_as_the_planner_does() -> None:
    obj = json.loads(json.dumps(TASKJOB))
    # After `taskjob retry`, transform's attempt 4 is the first since the retry (retryBase 3): the planner
    # waited the first delay, 10s, so attempt 4 failed 0s ago. Counted without the base (10·2^3 = 80s)
    # it would seem to have failed 70s ago, before audit.
    obj["status"]["tasks"]["transform"] |= {"attempts": 4, "retryBase": 3}
    obj["status"]["tasks"]["audit"] = {
        "phase": "Failed", "attempts": 4, "finishTime": ts(30), "exitCode": 3, "message": "failed after 4 attempts",
    }  # fmt: skip
    s = views.summary(obj, NOW)
    assert s.last_failure is not None and s.last_failure.startswith("transform (attempt 4)")


# ---------------------------------------------------------------- a fake API server


class FakeApi:
    """Serves one TaskJob, a scripted watch, pods and logs the way the API server does (no TLS)."""

    def __init__(self, obj: dict[str, Any] | None, watch_events: list[dict[str, Any]] | None = None) -> None:
        self.obj = obj
        self.watch_events = watch_events or []
        self.requests: list[tuple[str, str, Any]] = []
        self.pods: list[dict[str, Any]] = []
        self.logs: dict[str, str] = {}
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: Any, content_type: str = "application/json") -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length)) if length else None

            def do_GET(self) -> None:  # noqa: N802
                api.route(self, "GET", None)

            def do_POST(self) -> None:  # noqa: N802
                api.route(self, "POST", self._body())

            def do_PATCH(self) -> None:  # noqa: N802
                api.route(self, "PATCH", self._body())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def not_found(self, handler: Any, name: str) -> None:
        handler._send(
            404,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "message": f'taskjobs.taskjob.dev "{name}" not found',
                "reason": "NotFound",
                "details": {"name": name, "group": "taskjob.dev", "kind": "taskjobs"},
                "code": 404,
            },
        )

    def route(self, handler: Any, method: str, body: Any) -> None:
        url = urlparse(handler.path)
        query = parse_qs(url.query)
        parts = url.path.strip("/").split("/")
        self.requests.append((method, handler.path, body))
        if parts[:3] == ["apis", "taskjob.dev", "v1alpha1"]:
            name = parts[6] if len(parts) > 6 else None
            if method == "GET" and name is None and query.get("watch") == ["true"]:
                stream = b"".join(json.dumps(e).encode() + b"\n" for e in self.watch_events)
                handler._send(200, stream)
                return
            if method == "POST":
                created = {**body, "metadata": {**body["metadata"], "name": body["metadata"]["generateName"] + "abcde"}}
                handler._send(201, created)
                return
            if self.obj is None or name != self.obj["metadata"]["name"]:
                self.not_found(handler, name or "")
                return
            handler._send(200, self.obj)
            return
        if parts[:2] == ["api", "v1"] and parts[4] == "pods":
            if len(parts) == 7 and parts[6] == "log":
                handler._send(200, self.logs.get(parts[5], "").encode(), "text/plain")
                return
            handler._send(200, {"kind": "PodList", "apiVersion": "v1", "items": self.pods})
            return
        handler._send(404, b"404 page not found", "text/plain")

    def __enter__(self) -> FakeApi:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def kubeconfig(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u", "namespace": "team"}}],
                "current-context": "ctx",
            }
        )
    )
    return path


@pytest.fixture
def invoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    def run(api: FakeApi | None, *args: str) -> Any:
        server = api.url if api is not None else "http://127.0.0.1:1"
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path, server)))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        return CliRunner().invoke(cli, list(args))

    yield run


def test_get_shows_the_taskjob_from_the_contexts_namespace(invoke: Any) -> None:
    with FakeApi(TASKJOB) as api:
        result = invoke(api, "get", "etl")
    assert result.exit_code == 0, result.output
    assert api.requests[0][1].startswith("/apis/taskjob.dev/v1alpha1/namespaces/team/taskjobs/etl")
    assert "Phase:      Running" in result.stdout
    table = result.stdout[result.stdout.index("TASK ") :]
    order = [w for w in table.split() if w in ("extract", "transform", "audit", "load")]
    assert order == ["extract", "transform", "audit", "load"]


def test_get_can_print_the_object_as_json(invoke: Any) -> None:
    with FakeApi(TASKJOB) as api:
        result = invoke(api, "get", "etl", "-o", "json")
    assert json.loads(result.stdout) == TASKJOB


def test_watch_follows_the_watch_and_exits_by_the_final_phase(invoke: Any) -> None:
    def phase(p: str, version: str) -> dict[str, Any]:
        obj = json.loads(json.dumps(TASKJOB))
        obj["status"]["phase"] = p
        obj["metadata"]["resourceVersion"] = version
        return obj

    for final, code in (("Succeeded", 0), ("Failed", 1), ("Invalid", 1)):
        events = [
            {"type": "MODIFIED", "object": phase("Running", "2")},
            {"type": "MODIFIED", "object": phase(final, "3")},
        ]
        with FakeApi(phase("Running", "1"), events) as api:
            result = invoke(api, "watch", "etl")
        assert result.exit_code == code, result.output
        watch = next(parse_qs(urlparse(path).query) for _, path, _ in api.requests if "watch=true" in path)
        assert watch["fieldSelector"] == ["metadata.name=etl"] and watch["resourceVersion"] == ["1"]
        assert final in result.stdout


def test_submit_validates_then_creates_with_generate_name(invoke: Any, tmp_path: Path) -> None:
    manifest = tmp_path / "tj.yaml"
    manifest.write_text(
        "apiVersion: taskjob.dev/v1alpha1\nkind: TaskJob\nmetadata: {generateName: etl-}\n"
        "spec: {tasks: [{name: a, image: busybox}]}\n"
    )
    with FakeApi(None) as api:
        result = invoke(api, "submit", str(manifest))
    assert result.exit_code == 0, result.output
    assert result.stdout == "taskjob.dev/v1alpha1/taskjob etl-abcde created in namespace team\n"
    method, path, body = api.requests[0]
    assert (method, path) == ("POST", "/apis/taskjob.dev/v1alpha1/namespaces/team/taskjobs")
    assert body["metadata"] == {"generateName": "etl-"}


def test_submit_refuses_an_invalid_manifest_without_calling_the_cluster(invoke: Any, tmp_path: Path) -> None:
    manifest = tmp_path / "tj.yaml"
    manifest.write_text("apiVersion: taskjob.dev/v1alpha1\nkind: TaskJob\nmetadata: {name: x}\nspec: {tasks: []}\n")
    with FakeApi(None) as api:
        result = invoke(api, "submit", str(manifest))
    assert result.exit_code == 1
    assert "spec.tasks: must have at least 1 item" in result.stderr
    assert api.requests == []


def test_retry_patches_the_retry_annotation_with_the_failed_and_skipped_tasks(invoke: Any) -> None:
    failed = json.loads(json.dumps(TASKJOB))
    failed["status"]["phase"] = "Failed"
    failed["status"]["tasks"]["transform"] = {"phase": "Failed", "attempts": 4}
    failed["status"]["tasks"]["load"] = {"phase": "Skipped"}
    with FakeApi(failed) as api:
        result = invoke(api, "retry", "etl", "--task", "transform")
    assert result.exit_code == 0, result.output
    method, _, body = api.requests[-1]
    annotations = body["metadata"]["annotations"]
    assert method == "PATCH"
    assert annotations["taskjob.dev/retry-tasks"] == "transform"
    assert annotations["taskjob.dev/retry"]
    assert retry_targets(failed, []) == ["transform", "load"]


def test_retry_refuses_a_task_that_did_not_fail(invoke: Any) -> None:
    with FakeApi(TASKJOB) as api:
        result = invoke(api, "retry", "etl", "--task", "extract")
    assert result.exit_code == 1
    assert "task 'extract' is Succeeded: only Failed or Skipped tasks can be retried" in result.stderr


def test_logs_prints_each_tasks_latest_pod_in_dag_order_prefixed_by_task(invoke: Any) -> None:
    def pod(task: str, attempt: int) -> dict[str, Any]:
        labels = {"taskjob.dev/taskjob": "etl", "taskjob.dev/task": task, "taskjob.dev/attempt": str(attempt)}
        return {"metadata": {"name": f"{task}-{attempt}", "labels": labels}, "status": {"phase": "Succeeded"}}

    with FakeApi(TASKJOB) as api:
        api.pods = [pod("transform", 1), pod("transform", 2), pod("extract", 1)]
        api.logs = {"extract-1": "e1\ne2\n", "transform-1": "old\n", "transform-2": "t\n"}
        result = invoke(api, "logs", "etl")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["extract: e1", "extract: e2", "transform#2: t"]
    listing = next(path for _, path, _ in api.requests if "/pods?" in path)
    assert parse_qs(urlparse(listing).query)["labelSelector"] == ["taskjob.dev/taskjob=etl"]


def test_select_pods_keeps_the_requested_attempt() -> None:
    pods = [
        {"metadata": {"name": n, "labels": {"taskjob.dev/task": t, "taskjob.dev/attempt": a}}}
        for n, t, a in (("x1", "x", "1"), ("x2", "x", "2"), ("y1", "y", "1"))
    ]
    assert [p["metadata"]["name"] for p in select_pods(pods, ["y", "x"], 1)] == ["y1", "x1"]


# ---------------------------------------------------------------- errors for humans


def two_context_kubeconfig(tmp_path: Path, server: str) -> Path:
    """A kubeconfig whose current context "ctx" uses namespace team and whose context "other" uses ops."""
    path = kubeconfig(tmp_path, server)
    config = json.loads(path.read_text())
    config["contexts"].append({"name": "other", "context": {"cluster": "c", "user": "u", "namespace": "ops"}})
    path = tmp_path / "two-contexts"
    path.write_text(json.dumps(config))
    return path


def namespace_asked(api: FakeApi) -> str:
    return api.requests[0][1].split("/namespaces/")[1].split("/")[0]


@pytest.mark.parametrize(
    ("args", "expected_ns"),
    [
        (["-n", "demo", "get", "etl"], "demo"),  # kubectl habit: global options before the verb
        (["--namespace=demo", "get", "etl"], "demo"),
        (["get", "etl", "-n", "demo"], "demo"),
        (["-n", "demo", "get", "etl", "-n", "prod"], "prod"),  # the nearer one wins, as in kubectl
        (["--context", "other", "get", "etl"], "ops"),
        (["get", "etl", "--context", "other"], "ops"),
        (["--context", "other", "-n", "demo", "get", "etl"], "demo"),
    ],
)
def test_global_options_work_before_and_after_the_subcommand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], expected_ns: str
) -> None:
    with FakeApi(TASKJOB) as api:
        monkeypatch.setenv("KUBECONFIG", str(two_context_kubeconfig(tmp_path, api.url)))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert namespace_asked(api) == expected_ns


@pytest.mark.parametrize("before", [True, False])
def test_kubeconfig_option_overrides_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, before: bool
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with FakeApi(TASKJOB) as api:
        path = str(kubeconfig(tmp_path, api.url))
        args = ["--kubeconfig", path, "get", "etl"] if before else ["get", "etl", "--kubeconfig", path]
        result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert namespace_asked(api) == "team"


def test_an_unknown_taskjob_is_one_sentence(invoke: Any) -> None:
    with FakeApi(TASKJOB) as api:
        result = invoke(api, "get", "nope")
    assert result.exit_code == 1
    assert result.stderr == "Error: TaskJob team/nope not found\n"


def test_a_missing_crd_says_to_apply_it(invoke: Any) -> None:
    with FakeApi(TASKJOB) as api:
        api.route = lambda handler, method, body: handler._send(404, b"404 page not found", "text/plain")  # type: ignore[method-assign]
        result = invoke(api, "get", "etl")
    assert result.exit_code == 1
    assert "the TaskJob API (taskjob.dev/v1alpha1) is not installed in this cluster" in result.stderr


def test_an_unreachable_api_server_is_one_sentence_without_traceback(invoke: Any) -> None:
    result = invoke(None, "get", "etl")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: cannot reach the Kubernetes API server at http://127.0.0.1:1")
    assert "Connection refused" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_missing_kubeconfig_is_one_sentence_and_debug_adds_the_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    result = CliRunner().invoke(cli, ["get", "etl"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: no kubeconfig found at {tmp_path / 'absent'}")
    assert "Traceback" not in result.stderr

    debug = CliRunner().invoke(cli, ["--debug", "get", "etl"])
    assert debug.exit_code == 1
    assert "Traceback" in debug.stderr and "ConfigException" in debug.stderr


def test_the_operator_command_passes_its_flags_to_the_operator(monkeypatch: pytest.MonkeyPatch) -> None:
    from taskjobs.shell import run as shell_run
    from taskjobs.shell.options import OperatorOptions

    seen: list[OperatorOptions] = []
    monkeypatch.setattr(shell_run, "run_operator", seen.append)
    result = CliRunner().invoke(
        cli,
        ["operator", "--namespace", "a", "--namespace", "b", "--peering", "tj", "--priority", "5",
         "--metrics-port", "0", "--log-format", "json", "--qps", "20"],
    )
    assert result.exit_code == 0, result.output
    assert seen == [
        OperatorOptions(
            namespaces=("a", "b"), peering="tj", priority=5, metrics_port=0, log_format="json", client_qps=20.0
        )
    ]


def test_a_global_namespace_scopes_the_operator_and_other_cluster_options_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from taskjobs.shell import run as shell_run
    from taskjobs.shell.options import OperatorOptions

    seen: list[OperatorOptions] = []
    monkeypatch.setattr(shell_run, "run_operator", seen.append)
    result = CliRunner().invoke(cli, ["-n", "demo", "operator"])
    assert result.exit_code == 0, result.output
    assert [o.namespaces for o in seen] == [("demo",)]
    refused = CliRunner().invoke(cli, ["--context", "other", "operator"])
    assert refused.exit_code == 2 and "--context and --kubeconfig apply to the client commands" in refused.stderr


def test_logs_follow_on_a_finished_taskjob_prints_every_started_pod_and_ends(invoke: Any) -> None:
    done = json.loads(json.dumps(TASKJOB))
    done["status"]["phase"] = "Succeeded"
    pods = []
    for task in ("extract", "transform"):
        labels = {"taskjob.dev/taskjob": "etl", "taskjob.dev/task": task, "taskjob.dev/attempt": "1"}
        pods.append({"metadata": {"name": f"{task}-1", "labels": labels}, "status": {"phase": "Succeeded"}})
    with FakeApi(done) as api:
        api.pods = pods
        api.logs = {"extract-1": "e1\n", "transform-1": "t1\nt2\n"}
        result = invoke(api, "logs", "etl", "-f")
    assert result.exit_code == 0, result.output
    assert sorted(result.stdout.splitlines()) == ["extract: e1", "transform: t1", "transform: t2"]
    logs = [urlparse(path) for _, path, _ in api.requests if path.split("?")[0].endswith("/log")]
    follows = [parse_qs(u.query).get("follow") for u in logs]
    assert follows == [["true"], ["true"]]
