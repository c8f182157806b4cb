"""Fan-out (forEach): expansion, instances' Jobs, the join's phase and list, validation; exactly once under replays."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plansim import T0, Outcome, Run, scripted, simulate
from replancheck import Incremental
from test_plan_properties import scenarios as plain_dags

from taskjobs.core import fanout
from taskjobs.core.actions import Plan
from taskjobs.core.facts import AttemptFact
from taskjobs.core.models import TERMINAL_PHASES, TaskJobMeta, TaskJobSpec, TaskJobStatus
from taskjobs.core.naming import job_name
from taskjobs.core.plan import plan
from taskjobs.core.resolve import resolve_task
from taskjobs.core.validation import validate_spec

META = TaskJobMeta(name="tj", uid="uid-1", creation_timestamp=T0)


def spec_of(*tasks: dict[str, Any], **fields: Any) -> TaskJobSpec:
    return TaskJobSpec.model_validate({"tasks": list(tasks), **fields})


def ok(task: str, attempt: int = 1, output: str | None = "", at: float = 5) -> AttemptFact:
    return AttemptFact(
        task=task,
        attempt=attempt,
        job_name=job_name("tj", task, attempt),
        phase="Succeeded",
        created=T0,
        start_time=T0,
        finish_time=T0 + timedelta(seconds=at),
        exit_code=0,
        output=output,
    )


def failed(task: str, attempt: int = 1, code: int = 1) -> AttemptFact:
    return AttemptFact(
        task=task,
        attempt=attempt,
        job_name=job_name("tj", task, attempt),
        phase="Failed",
        created=T0,
        start_time=T0,
        finish_time=T0 + timedelta(seconds=5),
        exit_code=code,
        reason="Error",
    )


# ---------------------------------------------------------------- expansion


def test_a_literal_list_expands_into_one_instance_per_item_named_task_dash_index() -> None:
    spec = spec_of({"name": "sq", "forEach": {"items": [1, 2, 3]}}, parallelism=2)
    p = plan(META, spec, None, [], T0)
    # parallelism binds instances like tasks; each instance is the Job <taskjob>-<task>-<index>-<attempt>.
    assert [(c.task, c.attempt) for c in p.create] == [("sq-0", 1), ("sq-1", 1)]
    tasks = p.status.tasks or {}
    assert tasks["sq"].phase == "Running" and tasks["sq"].items == 3
    assert tasks["sq-2"].phase == "Ready"
    assert p.status.total == 3  # a fan-out task counts as its instances


def test_expand_reads_a_dependency_output_as_a_json_list_and_reports_bad_ones_with_a_reason() -> None:
    spec = spec_of(
        {"name": "gen"},
        {"name": "f", "dependsOn": ["gen"], "forEach": {"fromOutput": "gen", "maxItems": 3}, "args": ["{{item.n}}"]},
    )
    task = spec.tasks[1]
    assert fanout.expand(task, None) is None  # not known yet
    good = fanout.expand(task, '[{"n": 1}, {"n": 2}]\n', [".n"])
    assert good is not None and good.items == ({"n": 1}, {"n": 2})
    for output, reason, words in [
        ("not json", "InvalidForEachOutput", "is not JSON"),
        ('{"a": 1}', "InvalidForEachOutput", "is not a JSON list"),
        ("[1,2,3,4]", "TooManyItems", "has 4 items; forEach.maxItems allows 3"),
        ('[{"n": 1}, {"m": 2}]', "InvalidForEachItem", 'item 1 ({"m":2}) has no field "n"'),
    ]:
        bad = fanout.expand(task, output, [".n"])
        assert bad is not None and bad.reason == reason and words in (bad.message or ""), (output, bad)
        assert "forEach.fromOutput" in (bad.message or "")


def test_a_bad_list_fails_the_fan_out_task_with_its_reason_and_skips_its_dependents() -> None:
    spec = spec_of(
        {"name": "gen"},
        {"name": "f", "dependsOn": ["gen"], "forEach": {"fromOutput": "gen"}},
        {"name": "after", "dependsOn": ["f"]},
        failurePolicy="ContinueIndependent",
    )
    p = plan(META, spec, None, [ok("gen", output="42")], T0 + timedelta(seconds=10))
    tasks = p.status.tasks or {}
    assert tasks["f"].phase == "Failed" and tasks["f"].reason == "InvalidForEachOutput"
    assert "the output of task gen (forEach.fromOutput) is not a JSON list: 42" in (tasks["f"].message or "")
    assert tasks["after"].phase == "Skipped"
    assert p.status.phase == "Failed" and p.create == ()


def test_an_output_list_read_from_the_recorded_outputs_once_its_job_is_gone_gives_the_same_instances() -> None:
    spec = spec_of({"name": "gen"}, {"name": "f", "dependsOn": ["gen"], "forEach": {"fromOutput": "gen"}})
    now = T0 + timedelta(seconds=10)
    live = plan(META, spec, None, [ok("gen", output='["a","b"]')], now)
    assert [c.task for c in live.create] == ["f-0", "f-1"]
    # A crash before the status write: the status knows gen succeeded, nothing of f; gen's Job is gone.
    before = live.status.model_copy(update={"tasks": {"gen": (live.status.tasks or {})["gen"]}})
    replayed = plan(META, spec, before, [], now, outputs={"gen": '["a","b"]'})
    assert [c.task for c in replayed.create] == ["f-0", "f-1"]  # the same names: "already exists" is done
    # After the write, with the Jobs not seen yet: nothing is created again.
    again = plan(META, spec, live.status, [], now, outputs={"gen": '["a","b"]'})
    assert again.create == () and (again.status.tasks or {})["f"].items == 2


# ---------------------------------------------------------------- instances and the join


def test_instances_retry_on_their_own_and_the_task_succeeds_when_all_did_handing_on_their_outputs_as_a_list() -> None:
    spec = spec_of(
        {"name": "f", "forEach": {"items": ["x", "y"]}, "retry": {"limit": 1, "backoff": {"delaySeconds": 0}}},
        {"name": "after", "dependsOn": ["f"]},
    )
    now = T0 + timedelta(seconds=10)
    p = plan(META, spec, None, [ok("f-0", output="7\n"), failed("f-1")], now)
    tasks = p.status.tasks or {}
    # f-1's retry is due at once (delay 0): its attempt 2 starts; f-0 keeps its success.
    assert tasks["f-1"].phase == "Running" and tasks["f-1"].attempts == 2 and tasks["f"].phase == "Running"
    assert tasks["f-0"].phase == "Succeeded"
    assert [(c.task, c.attempt) for c in p.create] == [("f-1", 2)]
    p = plan(META, spec, p.status, [ok("f-0", output="7\n"), failed("f-1"), ok("f-1", 2, output="not json")], now)
    tasks = p.status.tasks or {}
    assert tasks["f"].phase == "Succeeded" and tasks["f"].message == "all 2 instances succeeded"
    # Each output is JSON when it parses, else a string; the dependent starts in the same plan.
    assert p.outputs == {"f": '[7,"not json"]'}
    assert [c.task for c in p.create] == ["after"]


@pytest.mark.parametrize(
    ("policy", "creates", "f_phase", "after_phase"),
    [("FailFast", [], "Failed", "Skipped"), ("ContinueIndependent", ["f-2"], "Running", "Waiting")],
)
def test_an_instance_failing_for_good_fails_the_task_under_the_failure_policy(
    policy: str, creates: list[str], f_phase: str, after_phase: str
) -> None:
    spec = spec_of(
        {"name": "f", "forEach": {"items": [1, 2, 3]}, "retry": {"limit": 0}},
        {"name": "after", "dependsOn": ["f"]},
        parallelism=2,
        failurePolicy=policy,
    )
    p = plan(META, spec, None, [ok("f-0"), failed("f-1")], T0 + timedelta(seconds=10))
    tasks = p.status.tasks or {}
    # ContinueIndependent runs the other instances; the task fails, and its dependents are skipped,
    # once every instance ended.
    assert tasks["f-1"].phase == "Failed" and tasks["after"].phase == after_phase
    assert [c.task for c in p.create] == creates
    if policy == "FailFast":  # f-2 never started: skipped, and the task has failed
        assert tasks["f-2"].phase == "Skipped" and tasks["f-2"].reason == "FailFast"
        assert tasks["f"].reason == "InstanceFailed"
        assert (tasks["f"].message or "").startswith("failed: 1 of 3 instances failed; f-1 failed after 1 attempt")
    assert tasks["f"].phase == f_phase


def test_an_empty_output_list_succeeds_at_once_with_an_empty_list() -> None:
    spec = spec_of({"name": "gen"}, {"name": "f", "dependsOn": ["gen"], "forEach": {"fromOutput": "gen"}})
    p = plan(META, spec, None, [ok("gen", output="[]")], T0 + timedelta(seconds=10))
    assert (p.status.tasks or {})["f"].phase == "Succeeded" and p.outputs == {"f": "[]"}
    assert p.status.phase == "Succeeded"


def test_a_list_of_outputs_over_the_limit_fails_the_task_naming_the_limit() -> None:
    spec = spec_of({"name": "f", "forEach": {"items": [1, 2]}})
    big = "x" * (fanout.MAX_FANIN_BYTES // 2 + 10)
    p = plan(META, spec, None, [ok("f-0", output=big), ok("f-1", output=big)], T0 + timedelta(seconds=10))
    state = (p.status.tasks or {})["f"]
    assert state.phase == "Failed" and state.reason == "OutputTooLarge"
    assert f"{fanout.MAX_FANIN_BYTES}-byte limit" in (state.message or "")


# ---------------------------------------------------------------- an instance's Job


def test_an_instance_job_carries_its_item_in_command_args_env_and_labels() -> None:
    spec = spec_of(
        {
            "name": "f",
            "image": "busybox",
            "forEach": {"items": [{"file": "a$1.csv", "n": 2}]},
            "command": ["sh", "-c", "echo {{ item.file }}"],
            "args": ["{{item}}"],
            "env": [{"name": "N", "value": "n={{item.n}}"}],
        }
    )
    item = {"file": "a$1.csv", "n": 2}
    job = fanout.render_unit(META, resolve_task(spec.tasks[0], None), "f-0", 2, {}, (0, item))
    assert job["metadata"]["name"] == "tj-f-0-2"
    labels = job["metadata"]["labels"]
    assert (labels["taskjob.dev/task"], labels["taskjob.dev/fan-out"], labels["taskjob.dev/item"]) == ("f-0", "f", "0")
    assert job["spec"]["template"]["metadata"]["labels"]["taskjob.dev/item"] == "0"
    container = job["spec"]["template"]["spec"]["containers"][0]
    # `$` doubled: the kubelet turns `$$` back into `$`, so the container sees the item as written.
    assert container["command"] == ["sh", "-c", "echo a$$1.csv"]
    assert container["args"] == ['{"file":"a$$1.csv","n":2}']
    env = {v["name"]: v["value"] for v in container["env"]}
    assert env["N"] == "n=2" and env["TASKJOB_ITEM"] == '{"file":"a$$1.csv","n":2}' and env["TASKJOB_ITEM_INDEX"] == "0"


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("tasks", "path", "words"),
    [
        (
            [{"name": "g"}, {"name": "f", "forEach": {"fromOutput": "g"}}],
            "spec.tasks[1].forEach.fromOutput",
            'task "g" must finish first: add it to spec.tasks[1].dependsOn',
        ),
        ([{"name": "f", "forEach": {"fromOutput": "gen"}}], "spec.tasks[0].forEach.fromOutput", "unknown task"),
        ([{"name": "f", "forEach": {}}], "spec.tasks[0].forEach", "set exactly one of items"),
        (
            [{"name": "f", "forEach": {"items": [{"a": 1}, {"b": 1}]}, "args": ["{{item.a}}"]}],
            "spec.tasks[0].forEach.items[1]",
            'has no field "a", used as {{item.a}} in spec.tasks[0].args[0]',
        ),
        (
            [{"name": "f", "forEach": {"items": [1]}}, {"name": "f-0"}],
            "spec.tasks[1].name",
            'is taken by instance 0 of fan-out task "f"',
        ),
        ([{"name": "f", "args": ["{{item}}"]}], "spec.tasks[0].args[0]", "only set in a task with forEach"),
        (
            [{"name": "g"}, {"name": "f", "dependsOn": ["g"], "forEach": {"fromOutput": "g", "maxItems": 10000}}],
            "spec.tasks[1].forEach",
            "up to 10,002 tasks and fan-out instances",
        ),
    ],
)
def test_validation_names_the_field_of_each_fan_out_mistake(tasks: list[dict[str, Any]], path: str, words: str) -> None:
    _, problems = validate_spec({"defaults": {"image": "x"}, "tasks": tasks})
    assert any(p.path == path and words in p.message for p in problems), problems


# ---------------------------------------------------------------- exactly once, under replays


class Recording:
    """A planner for plansim that passes the recorded outputs (the ConfigMap) as the shell does."""

    def __init__(self, incremental: bool) -> None:
        self.incremental = Incremental() if incremental else None
        self.outputs: dict[str, str] = {}

    def __call__(
        self,
        kind: str,
        meta: TaskJobMeta,
        spec: TaskJobSpec,
        status: TaskJobStatus | None,
        facts: tuple[AttemptFact, ...],
        now: Any,
    ) -> Plan:
        # The shell records every succeeded output it sees before it creates a Job.
        for f in facts:
            if f.phase == "Succeeded" and f.output is not None and not f.awaiting_pod:
                self.outputs.setdefault(f.task, f.output)
        if self.incremental is not None:
            self.incremental.outputs = self.outputs
            result = self.incremental(kind, meta, spec, status, facts, now)
        else:
            result = plan(meta, spec, status, facts, now, outputs=self.outputs)
        self.outputs.update(result.outputs)
        return result


@st.composite
def fanouts(draw: st.DrawFn) -> tuple[TaskJobSpec, dict[str, list[Outcome]], int]:
    """Return a chain gen -> f (forEach over gen's output or a literal list) -> sink, with flaky instances."""
    n = draw(st.integers(0, 6))
    literal = draw(st.booleans())
    limit = draw(st.integers(0, 2))
    each = {"items": list(range(max(n, 1)))} if literal else {"fromOutput": "gen"}
    count = max(n, 1) if literal else n
    spec = spec_of(
        {"name": "gen"},
        {"name": "f", "dependsOn": ["gen"], "forEach": each, "retry": {"limit": limit, "backoff": {"delaySeconds": 1}}},
        {"name": "sink", "dependsOn": ["f"]},
        parallelism=draw(st.none() | st.integers(1, 3)),
        failurePolicy=draw(st.sampled_from(["FailFast", "ContinueIndependent"])),
    )
    # Every attempt of gen writes the list (a deleted Job's attempt is retried).
    gen = Outcome(output=json.dumps(list(range(n))), pod_lag=draw(st.sampled_from([0, 2])))
    script = {"gen": [gen] * 4}
    for i in range(count):
        script[f"f-{i}"] = draw(
            st.lists(
                st.builds(
                    Outcome,
                    exit_code=st.sampled_from([0, 0, 1]),
                    duration=st.integers(1, 20),
                    output=st.just(str(i * 2)),
                ),
                min_size=limit + 1,
                max_size=limit + 1,
            )
        )
    return spec, script, count


def check_fanout(run: Run, count: int) -> None:
    assert run.cluster.duplicates == [], "an instance attempt was created twice"
    assert not run.stuck and run.status is not None and run.status.phase in TERMINAL_PHASES
    units = {j.task for j in run.cluster.jobs.values()}
    assert units <= {"gen", "sink", *(f"f-{i}" for i in range(count))}, units
    tasks = run.status.tasks or {}
    instances = [tasks.get(f"f-{i}") for i in range(count)]
    if tasks["gen"].phase == "Succeeded":
        assert tasks["f"].items == count
    if tasks["f"].phase == "Succeeded":
        assert all(s is not None and s.phase == "Succeeded" for s in instances)
        sink = [j for j in run.cluster.jobs.values() if j.task == "sink"]
        assert len(sink) >= 1, "the dependent never ran"
    if any(s is not None and s.phase == "Failed" for s in instances):
        assert tasks["f"].phase == "Failed" and tasks["sink"].phase == "Skipped"


@pytest.mark.parametrize("incremental", [False, True], ids=["full", "incremental"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fanouts(), st.integers(0, 2**16), st.sampled_from(["stale", "lag", "deletions"]))
def test_instances_are_created_exactly_once_under_stale_reads_watch_lag_and_deleted_jobs(
    incremental: bool, scenario: tuple[TaskJobSpec, dict[str, list[Outcome]], int], seed: int, adversity: str
) -> None:
    spec, script, count = scenario
    extra: dict[str, Any] = {
        "stale": {"stale_rate": 0.3},
        "lag": {"lag": 3.0},
        "deletions": {"lag": 1.0, "deletions": [3, 8, 15]},  # live Jobs deleted: their attempts are lost, retried
    }[adversity]
    recording = Recording(incremental)
    run = simulate(spec, scripted(script), seed=seed, planner=recording, **extra)
    check_fanout(run, count)
    if (run.status.tasks or {})["f"].phase == "Succeeded":  # the list handed on: each instance's output, in order
        assert recording.outputs["f"] == json.dumps([i * 2 for i in range(count)], separators=(",", ":"))


# ---------------------------------------------------------------- taskjob get


def test_taskjob_get_shows_a_fan_out_task_as_counts_of_its_instances_and_lists_them_on_request() -> None:
    from taskjobs.cli.views import task_rows

    spec = spec_of(
        {"name": "f", "forEach": {"items": [1, 2, 3]}, "retry": {"limit": 0}}, {"name": "after", "dependsOn": ["f"]}
    )
    p = plan(META, spec, None, [ok("f-0"), failed("f-1")], T0 + timedelta(seconds=10))
    obj = {
        "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True),
        "status": p.status.model_dump(mode="json", by_alias=True, exclude_none=True),
    }
    rows = task_rows(obj, T0 + timedelta(seconds=10))
    assert [r.name for r in rows] == ["f", "after"]
    assert rows[0].message.startswith("3 instances: 1 succeeded, 1 failed, 1 skipped; InstanceFailed: failed: 1 of 3")
    listed = task_rows(obj, T0 + timedelta(seconds=10), instances=True)
    assert [(r.name, r.depth, r.phase) for r in listed][:4] == [
        ("f", 0, "Failed"),
        ("f-0", 1, "Succeeded"),
        ("f-1", 1, "Failed"),
        ("f-2", 1, "Skipped"),
    ]


# ---------------------------------------------------------------- manual retry, and a local run


def test_a_manual_retry_of_a_failed_fan_out_task_reruns_only_its_failed_instances() -> None:
    from taskjobs.core.actions import RetryRequest

    spec = spec_of(
        {"name": "f", "forEach": {"items": [1, 2]}, "retry": {"limit": 0}},
        {"name": "after", "dependsOn": ["f"]},
        failurePolicy="ContinueIndependent",
    )
    now = T0 + timedelta(seconds=10)
    facts = [ok("f-0"), failed("f-1")]
    done = plan(META, spec, None, facts, now)
    assert done.status.phase == "Failed" and (done.status.tasks or {})["f"].phase == "Failed"
    again = plan(META, spec, done.status, facts, now, RetryRequest(nonce="1", tasks=("f",)))
    assert [(c.task, c.attempt) for c in again.create] == [("f-1", 2)]  # f-0 keeps its success
    tasks = again.status.tasks or {}
    assert tasks["f"].phase == "Running" and tasks["after"].phase == "Waiting"


def test_taskjob_run_fans_out_over_a_dependency_output_locally(tmp_path: Any) -> None:
    import sys

    from taskjobs.cli.local import LocalExecutor
    from taskjobs.core.models import TaskJob

    write = "import os,sys; open(os.environ['TASKJOB_OUTPUT_PATH'],'w').write(sys.argv[1])"
    taskjob = TaskJob.model_validate(
        {
            "metadata": {"name": "local-fan"},
            "spec": {
                "tasks": [
                    {"name": "gen", "command": [sys.executable, "-c", write, '[{"n": 2}, {"n": 3}, {"n": 4}]']},
                    {
                        "name": "sq",
                        "dependsOn": ["gen"],
                        "forEach": {"fromOutput": "gen"},
                        "command": [sys.executable, "-c", write, "{{item.n}}{{item.n}}"],
                    },
                    {
                        "name": "all",
                        "dependsOn": ["sq"],
                        "command": [sys.executable, "-c", write, "{{tasks.sq.output}}"],
                    },
                ]
            },
        }
    )
    run = LocalExecutor(taskjob, workdir=tmp_path).run()
    assert (run.status.phase, run.status.progress) == ("Succeeded", "5/5")
    assert run.outputs["all"] == "[22,33,44]"


def test_taskjob_graph_marks_a_fan_out_task_with_its_number_of_instances() -> None:
    from taskjobs.cli.views import dot, fanout_marks, mermaid

    spec = {"tasks": [{"name": "g"}, {"name": "f", "dependsOn": ["g"], "forEach": {"fromOutput": "g"}},
                      {"name": "h", "forEach": {"items": [1, 2]}}]}  # fmt: skip
    assert fanout_marks({"spec": spec}) == {"f": "×n", "h": "×2"}  # ×n: not known before g's output
    status = {"tasks": {"f": {"phase": "Running", "items": 5}}}
    marks = fanout_marks({"spec": spec, "status": status})
    assert marks["f"] == "×5"
    tasks = [("g", []), ("f", ["g"]), ("h", [])]
    assert 't_f["f ×5<br/>Running"]' in mermaid(tasks, {"f": "Running"}, marks=marks)
    assert '"f" [label="f ×5\\nRunning"' in dot("x", tasks, {"f": "Running"}, marks=marks)


def test_the_dashboard_row_of_a_fan_out_task_counts_its_instances() -> None:
    from taskjobs.dashboard.views import task_rows

    spec = spec_of({"name": "f", "forEach": {"items": [1, 2]}})
    p = plan(META, spec, None, [ok("f-0")], T0 + timedelta(seconds=10))
    tj = {
        "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True),
        "status": p.status.model_dump(mode="json", by_alias=True, exclude_none=True),
    }
    (row,) = task_rows(tj)
    assert (row["name"], row["phase"], row["message"]) == ("f", "Running", "2 instances: 1 running, 1 succeeded")


def test_taskjob_logs_of_a_fan_out_task_selects_all_its_instances_and_of_one_instance_that_one(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from urllib.parse import parse_qs, urlparse

    from click.testing import CliRunner
    from test_cli_views import FakeApi, kubeconfig

    from taskjobs.cli.main import cli

    obj = {
        "apiVersion": "taskjob.dev/v1alpha1",
        "kind": "TaskJob",
        "metadata": {"name": "fan", "namespace": "team"},
        "spec": {"tasks": [{"name": "work", "image": "x", "forEach": {"items": [1, 2]}}]},
    }
    labels = {"taskjob.dev/taskjob": "fan", "taskjob.dev/task": "work-1", "taskjob.dev/attempt": "1"}
    with FakeApi(obj) as api:
        api.pods = [{"metadata": {"name": "work-1-1", "labels": labels}, "status": {"phase": "Succeeded"}}]
        api.logs = {"work-1-1": "hello\n"}
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path, api.url)))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        for task, selector in [
            ("work", "taskjob.dev/taskjob=fan,taskjob.dev/fan-out=work"),
            ("work-1", "taskjob.dev/taskjob=fan,taskjob.dev/task=work-1"),
        ]:
            api.requests.clear()
            result = CliRunner().invoke(cli, ["logs", "fan", task])
            assert result.exit_code == 0, result.output
            assert result.stdout.splitlines() == ["work-1: hello"]
            listing = next(path for _, path, _ in api.requests if "/pods?" in path)
            assert parse_qs(urlparse(listing).query)["labelSelector"] == [selector]


@st.composite
def dags_with_fanouts(draw: st.DrawFn) -> tuple[TaskJobSpec, dict[str, list[Outcome]], list[tuple[float, Any]]]:
    """Return test_plan_properties' random DAGs (deadlines, suspend, FailFast...) with some tasks fanned out."""
    spec, script, changes = draw(plain_dags())
    tasks = []
    for task in spec.tasks:
        raw = task.model_dump(by_alias=True, exclude_none=True)
        if draw(st.integers(0, 3)) == 0:
            count = draw(st.integers(1, 3))
            raw["forEach"] = {"items": list(range(count))}
            # The task's scripted attempts now play for each instance.
            for i in range(count):
                script[f"{task.name}-{i}"] = (
                    script.pop(task.name, []) if i == count - 1 else list(script.get(task.name, []))
                )
        tasks.append(raw)
    spec = TaskJobSpec.model_validate({**spec.model_dump(by_alias=True, exclude_none=True), "tasks": tasks})
    return spec, script, changes


@pytest.mark.parametrize("incremental", [False, True], ids=["full", "incremental"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags_with_fanouts(), st.integers(0, 2**16), st.sampled_from([{"lag": 2.0}, {"stale_rate": 0.3}]))
def test_random_dags_with_fan_outs_end_and_never_create_an_attempt_twice(
    incremental: bool,
    scenario: tuple[TaskJobSpec, dict[str, list[Outcome]], list[tuple[float, Any]]],
    seed: int,
    adversity: dict[str, float],
) -> None:
    spec, script, changes = scenario
    run = simulate(spec, scripted(script), spec_changes=changes, seed=seed, planner=Recording(incremental), **adversity)
    assert run.cluster.duplicates == [], "an attempt was created twice"
    assert not run.stuck and run.status is not None and run.status.phase in TERMINAL_PHASES
    states = run.status.tasks or {}
    fanned = {t.name: len(t.for_each.items or ()) for t in spec.tasks if t.for_each is not None}
    units = [n for n in states if n not in fanned]
    # Succeeded exactly when every unit (task or instance) succeeded; a fan-out task agrees with its instances.
    assert (run.status.phase == "Succeeded") == all(states[n].phase == "Succeeded" for n in units)
    for name, count in fanned.items():
        phases = {states[f"{name}-{i}"].phase for i in range(count)}
        if states[name].phase == "Succeeded":
            assert phases == {"Succeeded"}
        if "Failed" in phases:
            assert states[name].phase == "Failed"


def test_the_status_of_a_fan_out_of_9997_instances_all_running_stays_under_1_mib() -> None:
    from taskjobs.core.models import dump_status

    items = 10_000 - 3  # gen, f and sink plus the instances: the most a TaskJob holds
    spec = spec_of({"name": "gen"}, {"name": "f", "dependsOn": ["gen"], "forEach": {"items": list(range(items))}},
                   {"name": "sink", "dependsOn": ["f"]}, defaults={"image": "x"})  # fmt: skip
    assert validate_spec(spec.model_dump(mode="json", by_alias=True, exclude_none=True))[1] == ()
    running = [
        AttemptFact(task=f"f-{i}", attempt=1, job_name=job_name("tj", f"f-{i}", 1), phase="Running", created=T0,
                    start_time=T0)
        for i in range(items)
    ]  # fmt: skip
    p = plan(META, spec, None, [ok("gen"), *running], T0 + timedelta(seconds=10))
    assert p.status.running == items
    size = len(json.dumps(dump_status(p.status), separators=(",", ":")))
    assert size < 1024 * 1024, size
