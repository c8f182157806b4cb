"""`taskjob validate`: offline, every problem with its file, document and field path; exit 1 on any."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from taskjobs.cli.main import cli

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
apiVersion: taskjob.dev/v1alpha1
kind: TaskJob
metadata: {name: diamond}
spec:
  defaults: {image: busybox:1.36, command: [sh, -c]}
  tasks:
  - {name: a, args: ["echo a"]}
  - {name: b, dependsOn: [a], args: ["echo {{tasks.a.output}}"]}
  - {name: c, dependsOn: [a], args: ["echo c"]}
  - {name: d, dependsOn: [b, c], args: ["echo d"]}
"""


def validate(tmp_path: Path, *texts: str) -> tuple[int, list[str], str]:
    paths = []
    for i, text in enumerate(texts):
        path = tmp_path / f"m{i}.yaml"
        path.write_text(text)
        paths.append(str(path))
    result = CliRunner().invoke(cli, ["validate", *paths])
    return result.exit_code, result.stdout.splitlines(), result.stderr


def test_a_valid_manifest_passes_with_one_ok_line(tmp_path: Path) -> None:
    code, lines, _ = validate(tmp_path, GOOD)
    assert code == 0
    assert lines == ["OK: 1 TaskJob valid in 1 file"]


def test_every_example_in_the_repository_is_valid() -> None:
    examples = sorted(str(p) for p in (REPO / "examples").glob("*.yaml"))
    assert examples
    result = CliRunner().invoke(cli, ["validate", *examples])
    assert result.exit_code == 0, result.stdout
    crons = [p for p in examples if "kind: CronTaskJob" in Path(p).read_text()]
    counted = f"{len(examples) - len(crons)} TaskJobs and {len(crons)} CronTaskJob{'s' if len(crons) != 1 else ''}"
    assert result.stdout.startswith(f"OK: {counted} valid in {len(examples)} files")


def test_each_kind_of_problem_is_listed_with_file_document_and_field_path(tmp_path: Path) -> None:
    bad = """\
apiVersion: taskjob.dev/v1alpha1
kind: TaskJob
metadata: {name: cyclic}
spec:
  failurePolicy: failfast
  tasks:
  - {name: a, image: x, dependsOn: [c]}
  - {name: b, image: x, dependsOn: [a], retry: {limit: -1}}
  - {name: c, image: x, dependsOn: [b]}
---
apiVersion: taskjob.dev/v1alpha1
kind: TaskJob
metadata: {name: refs}
spec:
  tasks:
  - {name: a, image: x, dependsOn: [aa]}
  - {name: b, image: x, args: ["{{tasks.zz.output}}"]}
  - {name: c, image: x, args: ["{{tasks.a.output}}"]}
  - {name: a, image: x}
  - {name: d}
---
apiVersion: taskjob.dev/v1alpha1
kind: TaskJob
metadata: {generateName: gen-}
spec:
  tasks: []
  paralelism: 2
"""
    code, lines, stderr = validate(tmp_path, bad)
    f = str(tmp_path / "m0.yaml")
    assert code == 1
    expected_prefixes = [
        f"{f}: doc 1 (cyclic): spec.failurePolicy: must be one of FailFast, ContinueIndependent",
        f"{f}: doc 1 (cyclic): spec.tasks[0].dependsOn",  # the cycle
        f"{f}: doc 1 (cyclic): spec.tasks[1].retry.limit: must be ≥ 0",
        f"{f}: doc 2 (refs): ",
        f"{f}: doc 3 (gen-*): ",
    ]
    for prefix in expected_prefixes:
        assert any(line.startswith(prefix) for line in lines), (prefix, lines)
    text = "\n".join(lines)
    assert "a → b → c → a" in text
    assert 'unknown task "aa" (did you mean "a"?)' in text
    assert "spec.tasks[1].args[0]: {{tasks.zz.output}} names an unknown task" in text
    assert "spec.tasks[2].args[0]: {{tasks.a.output}} needs task" in text
    assert "spec.tasks[3].name: duplicate task name" in text
    assert "spec.tasks[4].image" in text
    assert "spec.paralelism: unknown field" in text and 'did you mean "parallelism"' in text
    assert "spec.tasks: must have at least 1 item" in text
    assert "problems found" in stderr


def test_documents_of_other_kinds_are_skipped_and_a_file_without_taskjob_is_a_problem(tmp_path: Path) -> None:
    config_map = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n"
    code, lines, stderr = validate(tmp_path, GOOD + "---\n" + config_map)
    assert code == 0
    assert "doc 2 (settings): skipped (kind ConfigMap is not a TaskJob)" in stderr

    code, lines, _ = validate(tmp_path, config_map)
    assert code == 1
    assert lines == [f"{tmp_path / 'm0.yaml'}: no TaskJob in this file (a document with kind: TaskJob)"]


def test_a_yaml_syntax_error_names_its_line_and_column_after_the_documents_before_it(tmp_path: Path) -> None:
    broken = GOOD + "---\nkind: TaskJob\nmetadata:\n  name: x\n    spec: 1\n"
    code, lines, _ = validate(tmp_path, broken)
    assert code == 1
    where = f"{tmp_path / 'm0.yaml'}: line 15, column 9"
    assert lines == [f"{where}: YAML syntax error: mapping values are not allowed here"]


def test_an_unclosed_bracket_points_at_where_it_was_opened(tmp_path: Path) -> None:
    code, lines, _ = validate(tmp_path, "kind: TaskJob\nspec:\n  tasks: [{name: a\n")
    assert code == 1
    assert "YAML syntax error" in lines[0] and "(while parsing a flow mapping started at line 3, column 11)" in lines[0]


def test_several_files_are_all_checked_and_a_missing_file_is_reported(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    result = CliRunner().invoke(cli, ["validate", str(good), str(tmp_path / "absent.yaml")])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{tmp_path / 'absent.yaml'}: cannot read the file: No such file or directory"
    ]


def test_a_taskjob_missing_its_kind_is_reported_not_skipped(tmp_path: Path) -> None:
    code, lines, _ = validate(tmp_path, GOOD.replace("kind: TaskJob\n", ""))
    assert code == 1
    assert lines == [f'{tmp_path / "m0.yaml"}: doc 1 (diamond): kind: must be "TaskJob" (got null)']
