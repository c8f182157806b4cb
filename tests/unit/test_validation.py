"""Table tests for TaskJob validation: each bad input gives the exact field path and a readable reason."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskjobs.core.validation import (
    Problem,
    ValidationResult,
    summarize,
    validate_spec,
    validate_taskjob,
)


def manifest(**spec: Any) -> dict[str, Any]:
    """A valid diamond TaskJob, with spec fields overridden by keyword."""
    body: dict[str, Any] = {
        "apiVersion": "taskjob.dev/v1alpha1",
        "kind": "TaskJob",
        "metadata": {"name": "diamond", "namespace": "default"},
        "spec": {
            "defaults": {"image": "busybox:1.36"},
            "tasks": [
                {"name": "extract", "command": ["sh", "-c"], "args": ["echo extracting"]},
                {"name": "left", "dependsOn": ["extract"]},
                {"name": "right", "dependsOn": ["extract"]},
                {"name": "load", "dependsOn": ["left", "right"]},
            ],
        },
    }
    body["spec"].update(spec)
    return body


def with_task(index: int, **fields: Any) -> dict[str, Any]:
    """The diamond with fields of one task replaced (None deletes a field)."""
    body = manifest()
    task = body["spec"]["tasks"][index]
    for key, value in fields.items():
        if value is None:
            task.pop(key, None)
        else:
            task[key] = value
    return body


def problems_of(obj: Any) -> list[str]:
    result = validate_taskjob(obj)
    assert not result.ok and result.taskjob is None
    return [str(p) for p in result.problems]


# ---------------------------------------------------------------- good manifests


def test_a_valid_manifest_parses_with_its_graph() -> None:
    result = validate_taskjob(manifest())
    assert result.ok and result.problems == ()
    assert result.taskjob is not None and result.taskjob.metadata.name == "diamond"
    assert [t.name for t in result.taskjob.spec.tasks] == ["extract", "left", "right", "load"]
    assert result.graph is not None and result.graph.order == ("extract", "left", "right", "load")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            manifest(
                parallelism=2,
                failurePolicy="ContinueIndependent",
                activeDeadlineSeconds=3600,
                ttlSecondsAfterFinished=0,
                suspend=False,
                defaults={
                    "image": "busybox:1.36",
                    "retry": {"limit": 3, "backoff": {"delaySeconds": 10, "factor": 2, "maxDelaySeconds": 300}},
                    "timeoutSeconds": 600,
                },
            ),
            id="every spec field",
        ),
        pytest.param(
            with_task(
                1,
                image="python:3.12",
                env=[{"name": "IN", "value": "{{tasks.extract.output}}"}, {"name": "S", "valueFrom": {"x": 1}}],
                retry={"limit": 0, "nonRetriableExitCodes": [2, 255], "backoff": {"factor": 1.5}},
                resources={"requests": {"cpu": "100m"}},
                podTemplate={"spec": {"nodeSelector": {"a": "b"}}},
                priority=-5,
                startupTimeoutSeconds=60,
            ),
            id="every task field",
        ),
        pytest.param(with_task(3, args=["{{ tasks.extract.output }}"]), id="transitive upstream reference"),
        pytest.param({**manifest(), "metadata": {"generateName": "diamond-"}}, id="generateName instead of name"),
        pytest.param({**manifest(), "metadata": {"name": "a" * 63}}, id="63-character name"),
        pytest.param(
            {**manifest(), "status": {"phase": "Running", "tasks": {"x": {"phase": "Bogus"}}}},
            id="unreadable status is not the user's problem",
        ),
    ],
)
def test_valid_manifests_have_no_problems(body: dict[str, Any]) -> None:
    result = validate_taskjob(body)
    assert result.problems == ()
    assert result.taskjob is not None


def test_generate_name_manifest_is_known_by_its_prefix() -> None:
    result = validate_taskjob({**manifest(), "metadata": {"generateName": "diamond-"}})
    assert result.taskjob is not None and result.taskjob.metadata.name == "diamond-"


def test_a_readable_status_is_kept() -> None:
    body = {**manifest(), "status": {"phase": "Running", "progress": "1/4", "startTime": "2024-01-02T03:04:05Z"}}
    result = validate_taskjob(body)
    assert result.taskjob is not None and result.taskjob.status is not None
    assert result.taskjob.status.progress == "1/4"


class Body(Mapping[str, Any]):
    """Stands in for kopf's read-only Body view: a Mapping, not a dict."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        value = self._data[key]
        return Body(value) if isinstance(value, dict) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def test_mapping_views_validate_like_dicts() -> None:
    assert validate_taskjob(Body(manifest())).ok
    assert problems_of(Body(with_task(0, name="Extract"))) != []


def test_validate_spec_returns_the_spec_or_its_problems() -> None:
    spec, problems = validate_spec(manifest()["spec"])
    assert spec is not None and problems == ()
    spec, problems = validate_spec({"tasks": [{"name": "a", "image": "x", "retry": {"limit": 101}}]})
    assert spec is None
    assert [str(p) for p in problems] == ["spec.tasks[0].retry.limit: must be ≤ 100 (got 101)"]


# ---------------------------------------------------------------- one problem each: exact path, readable reason


CASES: list[Any] = [
    # manifest envelope
    pytest.param(
        {**manifest(), "apiVersion": "v1"}, "apiVersion", 'must be "taskjob.dev/v1alpha1" (got "v1")', id="apiVersion"
    ),
    pytest.param({**manifest(), "kind": "Job"}, "kind", 'must be "TaskJob" (got "Job")', id="kind"),
    pytest.param(
        {**manifest(), "metadata": {"namespace": "x"}},
        "metadata.name",
        "is required (or set metadata.generateName)",
        id="no name",
    ),
    pytest.param(
        {**manifest(), "metadata": {"name": "a" * 64}},
        "metadata.name",
        "must be a DNS-1123 label of at most 63 characters",
        id="name too long",
    ),
    pytest.param(
        {**manifest(), "metadata": {"name": "my.job"}}, "metadata.name", '(got "my.job")', id="name with a dot"
    ),
    pytest.param(
        {**manifest(), "metadata": {"name": "etl\n"}}, "metadata.name", '(got "etl\\n")', id="name with a newline"
    ),
    pytest.param({**manifest(), "metadata": {"name": "ETL"}}, "metadata.name", "DNS-1123 label", id="name uppercase"),
    pytest.param(
        {**manifest(), "metadata": {"generateName": "Bad_"}},
        "metadata.generateName",
        "lowercase letters, digits and '-'",
        id="bad generateName",
    ),
    pytest.param(
        {**manifest(), "metadata": "diamond"},
        "metadata",
        'must be an object (got "diamond")',
        id="metadata not an object",
    ),
    pytest.param(
        {**manifest(), "metdata": {}},
        "metdata",
        'unknown field "metdata" (did you mean "metadata"?)',
        id="unknown top-level field",
    ),
    pytest.param({k: v for k, v in manifest().items() if k != "spec"}, "spec", "is required", id="no spec"),
    pytest.param({**manifest(), "spec": ["x"]}, "spec", "must be an object (got a list)", id="spec a list"),
    # spec fields
    pytest.param(manifest(parallelism=0), "spec.parallelism", "must be ≥ 1 (got 0)", id="parallelism 0"),
    pytest.param(manifest(parallelism="2"), "spec.parallelism", 'must be an integer (got "2")', id="string int"),
    pytest.param(manifest(parallelism=2.5), "spec.parallelism", "must be an integer (got 2.5)", id="float int"),
    pytest.param(manifest(suspend="yes"), "spec.suspend", 'must be true or false (got "yes")', id="suspend"),
    pytest.param(
        manifest(failurePolicy="failfast"),
        "spec.failurePolicy",
        'must be one of FailFast, ContinueIndependent (got "failfast") (did you mean "FailFast"?)',
        id="failurePolicy",
    ),
    pytest.param(
        manifest(activeDeadlineSeconds=True),
        "spec.activeDeadlineSeconds",
        "must be an integer (got true)",
        id="bool is not an integer",
    ),
    pytest.param(
        manifest(ttlSecondsAfterFinished=-1), "spec.ttlSecondsAfterFinished", "must be ≥ 0 (got -1)", id="negative ttl"
    ),
    pytest.param(manifest(tasks=[]), "spec.tasks", "must have at least 1 item (got 0)", id="empty tasks"),
    pytest.param(manifest(tasks="a"), "spec.tasks", 'must be a list (got "a")', id="tasks not a list"),
    pytest.param(
        manifest(defaults={"image": "x", "retry": {"limit": "3"}}),
        "spec.defaults.retry.limit",
        'must be an integer (got "3")',
        id="defaults retry",
    ),
    pytest.param(
        manifest(defaults={"image": "x", "timeout_seconds": 3}),
        "spec.defaults.timeout_seconds",
        'unknown field "timeout_seconds" (did you mean "timeoutSeconds"?)',
        id="snake_case field",
    ),
    pytest.param(manifest(extra=1), "spec.extra", 'unknown field "extra"', id="unknown spec field"),
    # task fields
    pytest.param(
        with_task(1, dependson=["extract"]),
        "spec.tasks[1].dependson",
        'unknown field "dependson" (did you mean "dependsOn"?)',
        id="misspelt dependsOn",
    ),
    pytest.param(
        with_task(1, retry={"limit": -1}), "spec.tasks[1].retry.limit", "must be ≥ 0 (got -1)", id="retry limit"
    ),
    pytest.param(
        with_task(1, retry={"backoff": {"factor": 0}}),
        "spec.tasks[1].retry.backoff.factor",
        "must be ≥ 1 (got 0)",
        id="backoff factor",
    ),
    pytest.param(
        with_task(1, retry={"backoff": {"delaySeconds": 86401}}),
        "spec.tasks[1].retry.backoff.delaySeconds",
        "must be ≤ 86400 (got 86401)",
        id="backoff delay",
    ),
    pytest.param(
        with_task(1, retry={"nonRetriableExitCodes": [1, 256]}),
        "spec.tasks[1].retry.nonRetriableExitCodes[1]",
        "must be ≤ 255 (got 256)",
        id="exit code",
    ),
    pytest.param(
        with_task(0, name="Extract"),
        "spec.tasks[0].name",
        "must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or "
        'digit (got "Extract")',
        id="task name pattern",
    ),
    pytest.param(
        with_task(0, name="a" * 64),
        "spec.tasks[0].name",
        "must be at most 63 characters (got 64)",
        id="task name length",
    ),
    pytest.param(with_task(0, image=""), "spec.tasks[0].image", 'must not be empty (got "")', id="empty image"),
    pytest.param(with_task(0, timeoutSeconds=0), "spec.tasks[0].timeoutSeconds", "must be ≥ 1 (got 0)", id="timeout"),
    pytest.param(
        with_task(0, env=[{"name": "X", "value": 1}]),
        "spec.tasks[0].env[0].value",
        "must be a string (got 1)",
        id="env value int",
    ),
    pytest.param(with_task(0, env=[{"value": "x"}]), "spec.tasks[0].env[0].name", "is required", id="env no name"),
    pytest.param(
        with_task(0, args="echo hi"), "spec.tasks[0].args", 'must be a list (got "echo hi")', id="args a string"
    ),
    pytest.param(
        with_task(0, resources=["cpu"]),
        "spec.tasks[0].resources",
        "must be an object (got a list)",
        id="resources a list",
    ),
    pytest.param(
        with_task(0, args=["x" * 40000]), "spec.tasks[0].args[0]", "must be at most 32768 characters", id="huge arg"
    ),
    pytest.param(manifest(tasks=[None]), "spec.tasks[0]", "must be an object (got null)", id="null task"),
    pytest.param(manifest(tasks=[{"image": "x"}]), "spec.tasks[0].name", "is required", id="task without name"),
    # graph
    pytest.param(
        with_task(0, dependsOn=["load"]),
        "spec.tasks[0].dependsOn[0]",
        "dependency cycle extract → left → load → extract",
        id="cycle",
    ),
    pytest.param(
        with_task(1, dependsOn=["left"]),
        "spec.tasks[1].dependsOn[0]",
        'task "left" depends on itself',
        id="self-dependency",
    ),
    pytest.param(
        with_task(1, dependsOn=["extrct"]),
        "spec.tasks[1].dependsOn[0]",
        'unknown task "extrct" (did you mean "extract"?)',
        id="unknown dependency",
    ),
    pytest.param(
        with_task(2, name="left"),
        "spec.tasks[2].name",
        'duplicate task name "left" (also spec.tasks[1])',
        id="duplicate name",
    ),
    pytest.param(
        with_task(3, dependsOn=["left", "right", "left"]),
        "spec.tasks[3].dependsOn[2]",
        '"left" is listed twice',
        id="repeated dependency",
    ),
    # effective image
    pytest.param(
        manifest(defaults={}),
        "spec.tasks[0].image",
        'task "extract" has no image: set spec.tasks[0].image or spec.defaults.image',
        id="no image",
    ),
    # output references
    pytest.param(
        with_task(3, args=["{{tasks.lod.output}}"]),
        "spec.tasks[3].args[0]",
        '{{tasks.lod.output}} names an unknown task (did you mean "load"?)',
        id="reference unknown",
    ),
    pytest.param(
        with_task(1, command=["{{tasks.right.output}}"]),
        "spec.tasks[1].command[0]",
        '{{tasks.right.output}} needs task "right" to finish before task "left": add "right" to '
        "spec.tasks[1].dependsOn",
        id="reference not upstream",
    ),
    pytest.param(
        with_task(0, env=[{"name": "X", "value": "{{tasks.load.output}}"}]),
        "spec.tasks[0].env[0].value",
        'needs task "load" to finish before task "extract"',
        id="reference downstream in env",
    ),
    pytest.param(
        with_task(3, args=["{{tasks.load.output}}"]),
        "spec.tasks[3].args[0]",
        "a task cannot use its own output",
        id="reference to itself",
    ),
    pytest.param(
        with_task(3, args=["{{tasks.left.outputs}}"]),
        "spec.tasks[3].args[0]",
        'malformed output reference "{{tasks.left.outputs}}": write {{tasks.<name>.output}}',
        id="malformed reference",
    ),
    pytest.param(
        manifest(defaults={"image": "x", "args": ["{{tasks.left.output}}"]}),
        "spec.defaults.args[0]",
        '{{tasks.left.output}} (inherited by task "right") needs task "left" to finish before task "right"',
        id="inherited reference",
    ),
]


@pytest.mark.parametrize(("body", "path", "fragment"), CASES)
def test_each_problem_names_its_field_and_reason(body: Any, path: str, fragment: str) -> None:
    result = validate_taskjob(body)
    assert not result.ok and result.taskjob is None
    at_path = [p.message for p in result.problems if p.path == path]
    assert at_path, f"no problem at {path}; got {[str(p) for p in result.problems]}"
    assert any(fragment in m for m in at_path), f"{fragment!r} not in {at_path}"


def test_all_problems_are_reported_in_field_order() -> None:
    body = manifest(parallelism=0, defaults={})
    body["kind"] = "Job"
    body["spec"]["tasks"][1]["dependsOn"] = ["left"]
    body["spec"]["tasks"][3]["retry"] = {"limit": -1}
    assert [p.path for p in validate_taskjob(body).problems] == [
        "kind",
        "spec.parallelism",
        "spec.tasks[0].image",
        "spec.tasks[1].dependsOn[0]",
        "spec.tasks[1].image",
        "spec.tasks[2].image",
        "spec.tasks[3].image",
        "spec.tasks[3].retry.limit",
    ]


def test_inherited_problems_are_not_repeated() -> None:
    body = manifest(defaults={"image": "x", "args": ["{{tasks.nope.output}}", "{{tasks.x.outputs}}"]})
    assert problems_of(body) == [
        "spec.defaults.args[0]: {{tasks.nope.output}} names an unknown task",
        'spec.defaults.args[1]: malformed output reference "{{tasks.x.outputs}}": write {{tasks.<name>.output}}',
    ]


def test_references_are_checked_even_when_the_graph_is_broken() -> None:
    body = manifest()
    tasks = body["spec"]["tasks"]
    tasks[1]["dependsOn"] = ["nope"]  # unknown dependency: no valid graph
    tasks[2]["args"] = ["{{tasks.left.output}}"]  # right does not run after left
    tasks.extend([{"name": "x", "dependsOn": ["y"]}, {"name": "y", "dependsOn": ["x"], "args": ["{{tasks.x.output}}"]}])
    assert problems_of(body) == [
        'spec.tasks[1].dependsOn[0]: unknown task "nope"',
        'spec.tasks[2].args[0]: {{tasks.left.output}} needs task "left" to finish before task "right": '
        'add "left" to spec.tasks[2].dependsOn',
        "spec.tasks[4].dependsOn[0]: dependency cycle x → y → x: each task depends on the one before it",
    ]


def test_too_many_tasks_is_one_problem() -> None:
    tasks = [{"name": f"t{i}"} for i in range(10_001)]
    assert problems_of(manifest(tasks=tasks)) == ["spec.tasks: must have at most 10000 items (got 10001)"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (None, "a TaskJob must be an object (got null)"),
        ([], "a TaskJob must be an object (got a list)"),
        ("apiVersion: v1", 'a TaskJob must be an object (got "apiVersion: v1")'),
        (42, "a TaskJob must be an object (got 42)"),
    ],
)
def test_non_objects_are_one_problem(body: Any, expected: str) -> None:
    assert problems_of(body) == [expected]


def test_deeply_nested_input_is_refused_without_recursion_errors() -> None:
    deep: Any = "x"
    for _ in range(5000):
        deep = [deep]
    body = with_task(0, podTemplate={"a": deep})
    assert problems_of(body) == ["spec.tasks[0].podTemplate.a[0]…: is nested more than 100 levels deep"]


def test_deep_nesting_is_reported_where_the_user_wrote_it_not_in_managed_fields() -> None:
    deep: Any = "x"
    for _ in range(150):
        deep = {"n": deep}
    body = with_task(0, podTemplate={"spec": {"affinity": deep}})
    # The API server mirrors the spec's shape in metadata.managedFields (fieldsV1): as deep, and not user input.
    body["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:spec": {"f:tasks": deep}}}]
    assert problems_of(body) == ["spec.tasks[0].podTemplate.spec.affinity…: is nested more than 100 levels deep"]


def test_problem_prints_path_then_message() -> None:
    assert str(Problem("spec.tasks[0].name", "is required")) == "spec.tasks[0].name: is required"
    assert str(Problem("", "a TaskJob must be an object")) == "a TaskJob must be an object"


def test_summarize_counts_what_it_leaves_out() -> None:
    problems = [Problem(f"p{i}", "bad") for i in range(5)]
    assert summarize(problems, limit=2) == "p0: bad; p1: bad (and 3 more)"
    assert summarize(problems[:1]) == "p0: bad"


# ---------------------------------------------------------------- never raises

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
FIELDS = [
    "name",
    "image",
    "dependsOn",
    "args",
    "command",
    "env",
    "retry",
    "backoff",
    "limit",
    "factor",
    "value",
    "tasks",
    "defaults",
    "spec",
    "metadata",
    "apiVersion",
    "kind",
    "parallelism",
    "podTemplate",
    "status",
]


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _nodes(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _nodes(v, (*path, i))


@st.composite
def mutated_manifests(draw: st.DrawFn) -> Any:
    """A valid manifest with a few nodes replaced by arbitrary JSON or renamed: errors deep inside."""
    body: Any = copy.deepcopy(
        with_task(
            3,
            args=["{{tasks.left.output}}"],
            retry={"limit": 2, "backoff": {"factor": 2}},
            env=[{"name": "A", "value": "{{tasks.extract.output}}"}],
        )
    )
    for _ in range(draw(st.integers(1, 4))):
        paths = list(_nodes(body))
        path = draw(st.sampled_from(paths))
        if not path:
            body = draw(JSON)
            continue
        parent = body
        for part in path[:-1]:
            parent = parent[part]
        if isinstance(parent, dict) and draw(st.booleans()):
            parent[draw(st.sampled_from(FIELDS) | st.text(max_size=8))] = parent.pop(path[-1])
        else:
            parent[path[-1]] = draw(JSON | st.sampled_from(FIELDS))
    return body


def check_result(result: ValidationResult) -> None:
    assert isinstance(result, ValidationResult)
    assert result.ok == (result.taskjob is not None) == (result.problems == ())
    for p in result.problems:
        assert isinstance(p.path, str) and isinstance(p.message, str) and p.message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON)
def test_never_raises_on_arbitrary_json(value: Any) -> None:
    check_result(validate_taskjob(value))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_manifests())
def test_never_raises_on_damaged_manifests(body: Any) -> None:
    check_result(validate_taskjob(body))
