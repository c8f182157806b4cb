"""Table tests for the task graph: what a failure blocks, and how bad graphs are named (what may run now: test_plan)."""

from __future__ import annotations

import pytest

from taskjobs.core import dag

Tasks = list[tuple[str, list[str]]]

DIAMOND: Tasks = [("extract", []), ("left", ["extract"]), ("right", ["extract"]), ("load", ["left", "right"])]
# Two independent chains and a task depending on both ends.
TWO_CHAINS: Tasks = [("a1", []), ("b1", []), ("a2", ["a1"]), ("b2", ["b1"]), ("join", ["a2", "b2"])]


@pytest.mark.parametrize(
    ("tasks", "task", "expected"),
    [
        pytest.param(DIAMOND, "extract", {"left", "right", "load"}, id="root blocks everything"),
        pytest.param(DIAMOND, "left", {"load"}, id="middle blocks only the sink"),
        pytest.param(DIAMOND, "load", set(), id="sink blocks nothing"),
        pytest.param(TWO_CHAINS, "a1", {"a2", "join"}, id="other chain unaffected"),
    ],
)
def test_descendants_are_every_task_a_failure_blocks(tasks: Tasks, task: str, expected: set[str]) -> None:
    assert dag.build(tasks).descendants(task) == expected


@pytest.mark.parametrize(
    ("tasks", "expected"),
    [
        pytest.param(DIAMOND, ("extract", "left", "right", "load"), id="diamond"),
        pytest.param([("c", []), ("b", []), ("a", [])], ("c", "b", "a"), id="no edges: spec order"),
        pytest.param([("late", ["early"]), ("early", [])], ("early", "late"), id="dependency first"),
        pytest.param(TWO_CHAINS, ("a1", "b1", "a2", "b2", "join"), id="earliest ready in spec order"),
        pytest.param([("z", ["y"]), ("y", ["x"]), ("x", [])], ("x", "y", "z"), id="reversed chain"),
    ],
)
def test_topological_order_is_stable_with_respect_to_spec_order(tasks: Tasks, expected: tuple[str, ...]) -> None:
    assert dag.build(tasks).order == expected


def test_duplicate_dependencies_count_once() -> None:
    graph = dag.build([("a", []), ("b", ["a", "a"])])
    assert graph.deps["b"] == ("a",)
    assert graph.dependents["a"] == ("b",)


def problems(tasks: Tasks) -> list[str]:
    with pytest.raises(dag.DagError) as caught:
        dag.build(tasks)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("tasks", "expected"),
    [
        pytest.param(
            [("a", ["c"]), ("b", ["a"]), ("c", ["b"])],
            ["spec.tasks[0].dependsOn[0]: dependency cycle a → b → c → a: each task depends on the one before it"],
            id="three-cycle named from the first task in spec order",
        ),
        pytest.param(
            [("x", []), ("b", ["a"]), ("a", ["b"])],
            ["spec.tasks[1].dependsOn[0]: dependency cycle b → a → b: each task depends on the one before it"],
            id="two-cycle after an unrelated task",
        ),
        pytest.param(
            [(f"t{i}", [f"t{(i - 1) % 50}"]) for i in range(50)],
            [
                "spec.tasks[0].dependsOn[0]: dependency cycle "
                + " → ".join([f"t{i}" for i in range(50)] + ["t0"])
                + ": each task depends on the one before it"
            ],
            id="long cycle named in full",
        ),
        pytest.param(
            [("a", ["b"]), ("b", ["a"]), ("ok", []), ("c", ["d"]), ("d", ["e"]), ("e", ["c"])],
            [
                "spec.tasks[0].dependsOn[0]: dependency cycle a → b → a: each task depends on the one before it",
                "spec.tasks[3].dependsOn[0]: dependency cycle c → e → d → c: each task depends on the one before it",
            ],
            id="one cycle per strongly connected component",
        ),
        pytest.param(
            [("a", ["b", "c"]), ("b", ["a"]), ("c", ["b"])],
            ["spec.tasks[0].dependsOn[0]: dependency cycle a → b → a: each task depends on the one before it"],
            id="shortest cycle through the first task of a tangled component",
        ),
    ],
)
def test_cycles_are_named(tasks: Tasks, expected: list[str]) -> None:
    assert problems(tasks) == expected


@pytest.mark.parametrize(
    ("tasks", "expected"),
    [
        pytest.param([], ["spec.tasks: at least one task is required"], id="empty"),
        pytest.param([("a", ["a"])], ['spec.tasks[0].dependsOn[0]: task "a" depends on itself'], id="self-dependency"),
        pytest.param(
            [("extract", []), ("load", ["extrct"])],
            ['spec.tasks[1].dependsOn[0]: unknown task "extrct" (did you mean "extract"?)'],
            id="unknown dependency with the closest name",
        ),
        pytest.param(
            [("extract", []), ("load", ["zzz"])],
            ['spec.tasks[1].dependsOn[0]: unknown task "zzz"'],
            id="unknown dependency, nothing close",
        ),
        pytest.param(
            [("a", []), ("b", []), ("a", [])],
            ['spec.tasks[2].name: duplicate task name "a" (also spec.tasks[0])'],
            id="duplicate name points at the first",
        ),
        pytest.param(
            [("a", ["b"]), ("b", ["a", "nope"]), ("c", ["c"]), ("c", [])],
            [
                'spec.tasks[3].name: duplicate task name "c" (also spec.tasks[2])',
                'spec.tasks[1].dependsOn[1]: unknown task "nope"',
                'spec.tasks[2].dependsOn[0]: task "c" depends on itself',
                "spec.tasks[0].dependsOn[0]: dependency cycle a → b → a: each task depends on the one before it",
            ],
            id="every problem at once",
        ),
    ],
)
def test_invalid_graphs_name_every_problem(tasks: Tasks, expected: list[str]) -> None:
    assert problems(tasks) == expected


def test_dag_error_message_joins_all_problems() -> None:
    with pytest.raises(dag.DagError, match=r"depends on itself; .*unknown task"):
        dag.build([("a", ["a"]), ("b", ["x"])])


@pytest.mark.parametrize(
    ("name", "known", "expected"),
    [
        ("lod", ["extract", "load"], ' (did you mean "load"?)'),
        ("transfrom", ["transform", "load"], ' (did you mean "transform"?)'),
        ("qqq", ["extract", "load"], ""),
        ("x", [], ""),
    ],
)
def test_suggest_names_the_closest_known_name(name: str, known: list[str], expected: str) -> None:
    assert dag.suggest(name, known) == expected


def test_large_chain_builds_without_recursion() -> None:
    n = 10_000
    graph = dag.build([(f"t{i}", [f"t{i - 1}"] if i else []) for i in range(n)])
    assert graph.order[0] == "t0" and graph.order[-1] == f"t{n - 1}"
    assert graph.deps[f"t{n - 1}"] == (f"t{n - 2}",) and graph.dependents[f"t{n - 2}"] == (f"t{n - 1}",)
