"""The Python SDK (taskjobs.sdk): builds manifests that validate, round-trip through YAML, and run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from taskjobs.sdk import DAG, Defaults, InvalidTaskJob, Pipeline, Retry, Task, TaskJobBuilder

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def deps(builder: TaskJobBuilder) -> dict[str, list[str]]:
    return {t["name"]: t.get("dependsOn", []) for t in builder.to_manifest()["spec"]["tasks"]}


def run_pipeline(manifest: dict[str, Any], tmp_path: Path) -> str:
    """Return the last task's output after running a linear TaskJob's commands one after another."""
    output: str | None = None
    previous: str | None = None
    for task in manifest["spec"]["tasks"]:
        out = tmp_path / f"{task['name']}.out"
        env = {**os.environ, "TASKJOB_OUTPUT_PATH": str(out)}
        if previous is not None and output is not None:
            env["TASKJOB_INPUTS"] = json.dumps({previous: output})
        argv = [sys.executable if task["command"][0] == "python" else task["command"][0], *task["command"][1:]]
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        output, previous = out.read_text(), task["name"]
    assert output is not None
    return output


# ---------------------------------------------------------------- dependencies


def test_rshift_sets_dependencies_for_chains_fan_out_and_fan_in() -> None:
    with DAG("d", defaults=Defaults(image="busybox:1.36")) as dag:
        a, b, c, d, e = (Task(n) for n in "abcde")
        a >> [b, c] >> d
        [a, d] >> e
        a >> b  # already there: not repeated
    assert deps(dag) == {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": ["a", "d"]}


def test_rshift_returns_its_right_side_so_chains_read_left_to_right() -> None:
    a, b, c = Task("a"), Task("b"), Task("c")
    assert (a >> b >> c) is c
    assert c.depends_on == ["b"] and b.depends_on == ["a"]


def test_depends_on_accepts_tasks_and_names() -> None:
    a = Task("a")
    assert Task("b", depends_on=[a, "x", a]).depends_on == ["a", "x"]
    assert Task("c").after("a", a).depends_on == ["a"]


def test_tasks_join_the_innermost_dag_they_are_created_in() -> None:
    outside = Task("outside")
    with DAG("outer") as outer:
        a = Task("a")
        with DAG("inner") as inner:
            b = Task("b")
        c = Task("c")
    assert outer.tasks == (a, c)
    assert inner.tasks == (b,)
    assert outside not in outer.tasks
    assert outer["c"] is c
    with pytest.raises(KeyError):
        outer["b"]


# ---------------------------------------------------------------- manifests


def full_builder() -> TaskJobBuilder:
    with DAG(
        "etl",
        namespace="data",
        labels={"team": "data"},
        parallelism=2,
        failure_policy="ContinueIndependent",
        active_deadline_seconds=3600,
        ttl_seconds_after_finished=600,
        suspend=False,
        defaults=Defaults(
            image="busybox:1.36",
            command=["sh", "-c"],
            retry=Retry(limit=3, delay_seconds=10, factor=2, max_delay_seconds=300),
            timeout_seconds=600,
        ),
    ) as dag:
        extract = Task(
            "extract",
            args=["echo extracting; printf rows > $TASKJOB_OUTPUT_PATH"],
            env={"MODE": "full"},
            resources={"requests": {"cpu": "100m"}},
        )
        transform = Task(
            "transform",
            args=[f"echo got {extract.output()}"],
            retry=Retry(limit=3, non_retriable_exit_codes=[2]),
            timeout_seconds=120,
            priority=10,
        )
        load = Task("load", args=["echo loading"], retry=0, pod_template={"spec": {"nodeSelector": {"disk": "ssd"}}})
        extract >> transform >> load
    return dag


def test_manifest_has_the_api_shape() -> None:
    assert full_builder().to_manifest() == {
        "apiVersion": "taskjob.dev/v1alpha1",
        "kind": "TaskJob",
        "metadata": {"name": "etl", "namespace": "data", "labels": {"team": "data"}},
        "spec": {
            "parallelism": 2,
            "failurePolicy": "ContinueIndependent",
            "activeDeadlineSeconds": 3600,
            "ttlSecondsAfterFinished": 600,
            "suspend": False,
            "defaults": {
                "image": "busybox:1.36",
                "command": ["sh", "-c"],
                "retry": {"limit": 3, "backoff": {"delaySeconds": 10, "factor": 2, "maxDelaySeconds": 300}},
                "timeoutSeconds": 600,
            },
            "tasks": [
                {
                    "name": "extract",
                    "args": ["echo extracting; printf rows > $TASKJOB_OUTPUT_PATH"],
                    "env": [{"name": "MODE", "value": "full"}],
                    "resources": {"requests": {"cpu": "100m"}},
                },
                {
                    "name": "transform",
                    "dependsOn": ["extract"],
                    "args": ["echo got {{tasks.extract.output}}"],
                    "retry": {"limit": 3, "nonRetriableExitCodes": [2]},
                    "timeoutSeconds": 120,
                    "priority": 10,
                },
                {
                    "name": "load",
                    "dependsOn": ["transform"],
                    "args": ["echo loading"],
                    "retry": {"limit": 0},
                    "podTemplate": {"spec": {"nodeSelector": {"disk": "ssd"}}},
                },
            ],
        },
    }


def test_generated_manifest_validates() -> None:
    result = full_builder().validate()
    assert result.ok, [str(p) for p in result.problems]


def test_validation_reports_problems_with_field_paths_and_check_raises() -> None:
    with DAG("bad", defaults=Defaults(image="busybox:1.36")) as dag:
        a, b = Task("a"), Task("b")
        a >> b >> a
        Task("c", depends_on=["bb"], args=["{{tasks.a.output}}"])
    result = dag.validate()
    assert not result.ok
    text = [str(p) for p in result.problems]
    assert any("cycle" in t for t in text)
    assert 'spec.tasks[2].dependsOn[0]: unknown task "bb" (did you mean "b"?)' in text
    assert any(t.startswith("spec.tasks[2].args[0]: {{tasks.a.output}} needs task") for t in text)
    with pytest.raises(InvalidTaskJob) as info:
        dag.check()
    assert "spec.tasks[2].dependsOn[0]" in str(info.value)
    assert info.value.problems == result.problems


def test_an_output_reference_must_name_an_upstream_task() -> None:
    with DAG("refs", defaults=Defaults(image="busybox:1.36")) as dag:
        a = Task("a")
        Task("b", args=[a.output()])  # no dependency on a
    assert [str(p) for p in dag.validate().problems] == [
        'spec.tasks[1].args[0]: {{tasks.a.output}} needs task "a" to finish before task "b": '
        'add "a" to spec.tasks[1].dependsOn'
    ]


@pytest.mark.parametrize(
    "builder",
    [
        full_builder(),
        TaskJobBuilder(generate_name="gen-", tasks=[Task("t", image="busybox:1.36")]),
        TaskJobBuilder(
            "tricky",
            tasks=[
                Task(
                    "t",
                    image="busybox:1.36",
                    command=["sh", "-c"],
                    args=["yes", "1", "on", "null", "a: b", "- x", "multi\nline\n", "é ✓", "'quoted'", ""],
                    env=[{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                )
            ],
        ),
    ],
    ids=["full", "generate-name", "tricky-strings"],
)
def test_to_yaml_round_trips(builder: TaskJobBuilder) -> None:
    text = builder.to_yaml()
    assert isinstance(text, str)
    assert yaml.safe_load(text) == builder.to_manifest()


def test_generate_name_is_used_only_without_a_name() -> None:
    assert TaskJobBuilder(generate_name="gen-").to_manifest()["metadata"] == {"generateName": "gen-"}
    assert TaskJobBuilder("n", generate_name="gen-").to_manifest()["metadata"] == {"name": "n"}


# ---------------------------------------------------------------- create


class FakeCustomObjectsApi:
    calls: list[tuple[Any, ...]] = []

    def __init__(self, api_client: Any = None) -> None:
        self.api_client = api_client

    def create_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
        FakeCustomObjectsApi.calls.append((self.api_client, *args))
        body: dict[str, Any] = args[-1]
        return {**body, "metadata": {**body["metadata"], "uid": "u-1"}}


@pytest.fixture
def fake_api(monkeypatch: pytest.MonkeyPatch) -> type[FakeCustomObjectsApi]:
    from kubernetes import client

    FakeCustomObjectsApi.calls = []
    monkeypatch.setattr(client, "CustomObjectsApi", FakeCustomObjectsApi)
    return FakeCustomObjectsApi


def test_create_sends_the_manifest_to_the_namespace(fake_api: type[FakeCustomObjectsApi]) -> None:
    api_client = object()
    created = full_builder().create("team-a", api_client=api_client)
    ((used_client, group, version, namespace, plural, body),) = fake_api.calls
    assert (used_client, group, version, namespace, plural) == (
        api_client,
        "taskjob.dev",
        "v1alpha1",
        "team-a",
        "taskjobs",
    )
    assert body["metadata"]["namespace"] == "team-a"
    assert body["spec"] == full_builder().to_manifest()["spec"]
    assert created["metadata"]["uid"] == "u-1"


def test_create_defaults_to_the_builder_namespace(fake_api: type[FakeCustomObjectsApi]) -> None:
    full_builder().create(api_client=object())
    assert fake_api.calls[0][3] == "data"


def test_create_refuses_an_invalid_taskjob_before_calling_the_api(fake_api: type[FakeCustomObjectsApi]) -> None:
    with pytest.raises(InvalidTaskJob):
        TaskJobBuilder("no-tasks").create("default", api_client=object())
    assert fake_api.calls == []


# ---------------------------------------------------------------- the pipeline helper


def etl() -> Pipeline:
    return Pipeline("etl-pipeline").source(list(range(1, 11))).map("double").filter("is_even").reduce("sum")


def test_pipeline_builds_the_etl_example() -> None:
    expected = yaml.safe_load((EXAMPLES / "etl-pipeline.yaml").read_text())
    assert etl().to_manifest() == expected


def test_a_partitioned_map_builds_the_etl_fanout_example() -> None:
    p = Pipeline("etl-fanout").source(list(range(1, 11))).map("double", partitions=4).filter("is_even").reduce("sum")
    expected = yaml.safe_load((EXAMPLES / "etl-fanout.yaml").read_text())
    assert p.to_manifest() == expected  # map-double fans out over 4 partitions; filter-is-even flattens


def test_a_task_fans_out_over_a_list_or_another_task_s_output() -> None:
    with TaskJobBuilder("fan", defaults=Defaults(image="busybox")) as dag:
        gen = Task("gen")
        Task("each", for_each=gen, max_items=50, args=["{{item}}"])
        Task("lit", for_each=["a", {"b": 1}], args=["{{item}}"])
    tasks = {t["name"]: t for t in dag.to_manifest()["spec"]["tasks"]}
    assert tasks["each"]["forEach"] == {"fromOutput": "gen", "maxItems": 50}
    assert tasks["each"]["dependsOn"] == ["gen"]  # its list comes from gen: gen runs first
    assert tasks["lit"]["forEach"] == {"items": ["a", {"b": 1}]}
    assert dag.validate().ok
    with pytest.raises(ValueError, match="partitions must be between 1 and 1000"):
        Pipeline("p").source([1]).map("double", partitions=0)


def test_pipeline_steps_are_named_after_their_operation_and_function() -> None:
    p = (
        Pipeline("p")
        .source(["b a", "c"])
        .flat_map("split_words")
        .map("to_upper")
        .map("to_upper")
        .unique()
        .sort(key="length", reverse=True)
        .sort()
        .take(2)
        .group_by("length")
    )
    assert deps(p.to_taskjob()) == {
        "source": [],
        "flat-map-split-words": ["source"],
        "map-to-upper": ["flat-map-split-words"],
        "map-to-upper-2": ["map-to-upper"],
        "unique": ["map-to-upper-2"],
        "sort-by-length": ["unique"],
        "sort": ["sort-by-length"],
        "take-2": ["sort"],
        "group-by-length": ["take-2"],
    }
    assert p.last == "group-by-length"
    assert p.validate().ok


def test_pipeline_tasks_run_the_runner_and_never_retry_its_bad_input_code() -> None:
    manifest = etl().to_manifest()
    assert manifest["spec"]["defaults"]["image"] == "taskjob-runner:0.1.0"
    assert manifest["spec"]["defaults"]["retry"]["nonRetriableExitCodes"] == [2]
    assert [t["command"][3:] for t in manifest["spec"]["tasks"]] == [
        ["source", "[1,2,3,4,5,6,7,8,9,10]"],
        ["map", "double"],
        ["filter", "is_even"],
        ["reduce", "sum"],
    ]


def test_pipeline_runs_through_the_runner_to_110(tmp_path: Path) -> None:
    assert run_pipeline(etl().to_manifest(), tmp_path) == "110"


def test_pipeline_with_sort_and_take_runs_through_the_runner(tmp_path: Path) -> None:
    p = Pipeline("words").source(["b", "a", "c", "a"]).map("to_upper").unique().sort(reverse=True).take(2)
    assert run_pipeline(p.to_manifest(), tmp_path) == '["C","B"]'


def test_pipeline_rejects_unknown_functions_and_a_missing_source() -> None:
    with pytest.raises(ValueError, match=r"unknown function 'dubble' \(did you mean 'double'\?\)"):
        Pipeline("p").source([1]).map("dubble")
    with pytest.raises(ValueError, match=r"must start with \.source"):
        Pipeline("p").map("double")
    with pytest.raises(ValueError, match="already has a source"):
        Pipeline("p").source([1]).source([2])
    with pytest.raises(ValueError, match="no steps"):
        Pipeline("p").to_manifest()


def test_pipeline_inside_a_dag_block_does_not_leak_its_tasks() -> None:
    with DAG("outer") as outer:
        etl().to_taskjob()
    assert outer.tasks == ()


def test_the_sdk_builds_conditions_and_finally_tasks_that_match_the_notify_example() -> None:
    defaults = Defaults(image="busybox:1.36", command=["sh", "-c"], retry={"limit": 0})
    with DAG("notify-on-failure", defaults=defaults) as dag:
        extract = Task("extract", args=['printf "3 rows" > "$TASKJOB_OUTPUT_PATH"'])
        load = Task("load", args=['echo "load: the database refused {{tasks.extract.output}}" >&2; exit 1'])
        extract >> load
        notify = Task(
            "notify",
            when="taskjob.outcome == 'Failed'",
            args=['printf "%s %s: %s failed" "$TASKJOB_NAME" "$TASKJOB_OUTCOME" "$TASKJOB_FAILED_TASKS" '
                  '| tee "$TASKJOB_OUTPUT_PATH"'],
        )
        cleanup = Task("cleanup", args=['echo "cleanup after a $TASKJOB_OUTCOME run"'])
    dag.add_finally(notify, cleanup)
    example = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "notify-on-failure.yaml").read_text())
    assert dag.to_manifest()["spec"] == example["spec"]
    assert dag.validate().ok


def test_a_task_phase_reads_in_a_when_and_a_bad_condition_is_refused_with_its_field() -> None:
    build = Task("build", image="busybox")
    rollback = Task("rollback", image="busybox", depends_on=[build], when=f"{build.phase} == 'Failed'")
    assert rollback.to_manifest()["when"] == "tasks.build.phase == 'Failed'"
    bad = TaskJobBuilder("bad", [build, Task("x", image="busybox", when="tasks.build.phase == 'Failed'")])
    with pytest.raises(InvalidTaskJob, match=r"spec.tasks\[1\].when: tasks.build is not a dependency"):
        bad.check()
