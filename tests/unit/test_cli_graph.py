"""`taskjob graph`: the DAG as mermaid or dot, from a file or (coloured by phase) from a live TaskJob."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from taskjobs.cli import main as cli_main
from taskjobs.cli import views
from taskjobs.cli.main import cli

MANIFEST = """\
apiVersion: taskjob.dev/v1alpha1
kind: TaskJob
metadata: {name: diamond}
spec:
  defaults: {image: busybox:1.36, command: [sh, -c, "true"]}
  tasks:
  - {name: end, dependsOn: [left-side, right]}
  - {name: left-side, dependsOn: [root]}
  - {name: right, dependsOn: [root]}
  - {name: root}
"""


def graph(tmp_path: Path, *args: str, text: str = MANIFEST) -> Any:
    path = tmp_path / "diamond.yaml"
    path.write_text(text)
    return CliRunner().invoke(cli, ["graph", str(path), *args])


def test_mermaid_draws_every_edge_with_safe_node_ids(tmp_path: Path) -> None:
    result = graph(tmp_path)
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "%% TaskJob diamond\n"
        "flowchart TD\n"
        '  t_end["end"]\n'
        '  t_left_side["left-side"]\n'
        '  t_right["right"]\n'
        '  t_root["root"]\n'
        "  t_left_side --> t_end\n"
        "  t_right --> t_end\n"
        "  t_root --> t_left_side\n"
        "  t_root --> t_right\n"
    )


def test_dot_draws_the_same_graph(tmp_path: Path) -> None:
    result = graph(tmp_path, "--format", "dot")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == 'digraph "diamond" {'
    assert lines[-1] == "}"
    edges = sorted(line.strip() for line in lines if "->" in line)
    assert edges == [
        '"left-side" -> "end";',
        '"right" -> "end";',
        '"root" -> "left-side";',
        '"root" -> "right";',
    ]


def test_an_invalid_manifest_is_not_drawn_and_its_problems_are_listed(tmp_path: Path) -> None:
    cyclic = MANIFEST.replace("{name: left-side, dependsOn: [root]}", "{name: left-side, dependsOn: [end]}")
    result = graph(tmp_path, text=cyclic)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "the TaskJob is invalid" in result.stderr and "cycle" in result.stderr


def test_with_phases_nodes_are_labelled_and_classed_by_phase() -> None:
    tasks = [("a", []), ("b", ["a"]), ("c", ["a"])]
    phases = {"a": "Succeeded", "b": "Failed"}
    text = views.mermaid(tasks, phases)
    assert '  t_a["a<br/>Succeeded"]' in text
    assert '  t_c["c<br/>Waiting"]' in text
    assert "  class t_a Succeeded" in text and "  class t_b Failed" in text and "  class t_c Waiting" in text
    assert f"  classDef Failed fill:{views.GRAPH_COLORS['Failed']}" in text

    dot = views.dot("x", tasks, phases)
    assert f'"b" [label="b\\nFailed", fillcolor="{views.GRAPH_COLORS["Failed"]}"];' in dot


class FakeCluster:
    namespace = "team"

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        self.asked: list[tuple[str, str]] = []

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        self.asked.append((namespace, name))
        return self.obj


def test_a_live_taskjob_is_drawn_coloured_by_its_task_phases(monkeypatch: pytest.MonkeyPatch) -> None:
    obj = {
        "metadata": {"name": "live"},
        "spec": {"tasks": [{"name": "a"}, {"name": "b", "dependsOn": ["a"]}]},
        "status": {"phase": "Running", "tasks": {"a": {"phase": "Succeeded"}, "b": {"phase": "Running"}}},
    }
    cluster = FakeCluster(obj)
    monkeypatch.setattr(cli_main, "_cluster", lambda ctx: cluster)
    result = CliRunner().invoke(cli, ["graph", "live"])
    assert result.exit_code == 0, result.output
    assert cluster.asked == [("team", "live")]
    assert '  t_b["b<br/>Running"]' in result.stdout
    assert "  class t_b Running" in result.stdout


def test_a_path_that_does_not_exist_is_reported_as_a_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["graph", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1
    assert f"{tmp_path / 'nope.yaml'}: no such file" in result.stderr


def test_conditions_and_finally_tasks_are_drawn_and_listed(tmp_path: Path) -> None:
    example = (Path(__file__).resolve().parents[2] / "examples" / "notify-on-failure.yaml").read_text()
    drawn = graph(tmp_path, text=example)
    assert drawn.exit_code == 0, drawn.output
    assert "t_notify[\"notify<br/><i>finally, when taskjob.outcome == 'Failed'</i>\"]" in drawn.output
    assert 't_cleanup["cleanup<br/><i>finally</i>"]' in drawn.output
    cond = (Path(__file__).resolve().parents[2] / "examples" / "conditions.yaml").read_text()
    assert "when int(tasks.count.output) #lt;= 5" in graph(tmp_path, text=cond).output
    obj = {"spec": {"tasks": [{"name": "a"}, {"name": "b", "dependsOn": ["a"], "when": "tasks.a.phase == 'Failed'"}],
                    "finally": [{"name": "n"}]}, "status": {"phase": "Running", "tasks": {"a": {"phase": "Running"}}}}
    rows = {r.name: r.message for r in views.task_rows(obj, datetime.now(UTC))}
    assert rows == {"a": "", "b": "when tasks.a.phase == 'Failed'", "n": "finally"}
