"""The runner (task-images/runner): functions, operations, and the CLI's input/output/exit-code contract."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from taskjob_runner import dataflow, functions, operations
from taskjob_runner.cli import main
from taskjob_runner.errors import BadInput


def run(argv: list[str], inputs: dict[str, str] | None = None, **env: str) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    environ = dict(env)
    if inputs is not None:
        environ["TASKJOB_INPUTS"] = json.dumps(inputs)
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, environ, out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True)
def no_termination_log(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Never touch a real /dev/termination-log from a test.
    monkeypatch.setattr(dataflow, "TERMINATION_LOG", str(tmp_path / "absent-termination-log"))


# ---------------------------------------------------------------- functions


@pytest.mark.parametrize(
    ("name", "arg", "expected"),
    [
        ("double", 21, 42),
        ("double", 1.5, 3.0),
        ("square", -3, 9),
        ("negate", 4, -4),
        ("increment", 9, 10),
        ("is_even", 4, True),
        ("is_even", 3, False),
        ("is_odd", 3, True),
        ("is_positive", 0, False),
        ("is_positive", 0.1, True),
        ("to_upper", "abc", "ABC"),
        ("to_lower", "AbC", "abc"),
        ("parse_int", " 42 ", 42),
        ("parse_int", "-7", -7),
        ("parse_int", 5, 5),
        ("split_words", "The cat's hat, the mat.", ["The", "cat's", "hat", "the", "mat"]),
        ("pairs", "A a b", [["a", 1], ["a", 1], ["b", 1]]),
        ("length", "abcd", 4),
        ("length", [1, 2], 2),
        ("identity", {"a": [1]}, {"a": [1]}),
        ("sum", [1, 2, 3.5], 6.5),
        ("sum", [], 0),
        ("product", [2, 3, 4], 24),
        ("count", ["a", None, 3], 3),
        ("max", [3, 9, 2], 9),
        ("min", ["b", "a"], "a"),
        ("concat", [[1], [2, 3], []], [1, 2, 3]),
        ("concat", ["ab", "c"], "abc"),
        ("word_count", ["b", "a", "b"], {"a": 1, "b": 2}),
        ("word_count", [["b", 2], ["a", 1], ["b", 1]], {"a": 1, "b": 3}),
    ],
)
def test_function_results(name: str, arg: Any, expected: Any) -> None:
    assert functions.lookup(name)(arg) == expected


@pytest.mark.parametrize(
    ("name", "arg", "says"),
    [
        ("double", "2", 'double takes a number, got "2" (a string)'),
        ("double", True, "double takes a number, got true (a boolean)"),
        ("is_even", 2.5, "is_even takes an integer"),
        ("to_upper", 1, "to_upper takes a string"),
        ("parse_int", "4x", 'parse_int cannot read an integer from "4x"'),
        ("sum", [1, "2"], "item 1 is"),
        ("sum", 3, "sum takes a list"),
        ("max", [], "max of an empty list"),
        ("max", [1, "a"], "list of numbers or a list of strings"),
        ("concat", [[1], "a"], "list of lists or a list of strings"),
        ("word_count", [["a", "x"]], "word_count takes words or [word, count] pairs"),
        ("length", 3, "length takes a string, list or object"),
    ],
)
def test_ill_typed_arguments_are_bad_input(name: str, arg: Any, says: str) -> None:
    with pytest.raises(BadInput) as info:
        functions.lookup(name)(arg)
    assert says in str(info.value)


def test_unknown_function_suggests_the_closest_name() -> None:
    with pytest.raises(BadInput) as info:
        functions.lookup("dubble")
    assert "unknown function 'dubble' (did you mean 'double'?)" in str(info.value)


# ---------------------------------------------------------------- operations


def f(name: str) -> functions.Function:
    return functions.lookup(name)


def test_map_filter_flat_map_reduce() -> None:
    assert operations.map_("double", f("double"), [1, 2, 3]) == [2, 4, 6]
    assert operations.filter_("is_even", f("is_even"), [1, 2, 3, 4]) == [2, 4]
    assert operations.flat_map("split_words", f("split_words"), ["a b", "c"]) == ["a", "b", "c"]
    assert operations.reduce("sum", f("sum"), [2, 4, 6]) == 12


def test_group_by_keeps_first_appearance_order_and_writes_non_string_keys_as_json() -> None:
    assert operations.group_by("is_even", f("is_even"), [1, 2, 3, 4]) == {"false": [1, 3], "true": [2, 4]}
    assert operations.group_by("length", f("length"), ["bb", "a", "cc"]) == {"2": ["bb", "cc"], "1": ["a"]}


def test_unique_sort_take() -> None:
    assert operations.unique([3, 1, 3, {"a": 1}, {"a": 1}, 1]) == [3, 1, {"a": 1}]
    assert operations.sort([3, 1, 2]) == [1, 2, 3]
    assert operations.sort(["bb", "a", "ccc"], "length", f("length"), reverse=True) == ["ccc", "bb", "a"]
    assert operations.take(2, [5, 6, 7]) == [5, 6]
    assert operations.take(5, [5]) == [5]


def test_join_concatenates_lists_and_merges_objects_in_input_order() -> None:
    assert operations.join([("a", [1]), ("b", [2, 3])]) == [1, 2, 3]
    assert operations.join([("a", {"x": 1, "y": 1}), ("b", {"y": 2})]) == {"x": 1, "y": 2}
    assert operations.join([("a", "ab"), ("b", "c")]) == "abc"


@pytest.mark.parametrize(
    ("call", "says"),
    [
        (lambda: operations.map_("double", f("double"), {"a": 1}), "map takes a list as input, got"),
        (lambda: operations.map_("double", f("double"), [1, "x"]), "map double: item 1: double takes a number"),
        (lambda: operations.filter_("double", f("double"), [1]), "double is not a predicate"),
        (lambda: operations.flat_map("double", f("double"), [1]), "double must return a list"),
        (lambda: operations.reduce("sum", f("sum"), [1, "x"]), "reduce sum: sum takes a list of numbers"),
        (lambda: operations.sort([1, "a"]), "sort can order numbers or strings"),
        (lambda: operations.take(-1, [1]), "take needs a count of 0 or more"),
        (lambda: operations.join([("a", [1]), ("b", {"x": 1})]), "not a mix of them (a: [1] (a list), b:"),
        (lambda: operations.join([]), "join has nothing to join"),
    ],
)
def test_operations_reject_ill_typed_input(call: Any, says: str) -> None:
    with pytest.raises(BadInput) as info:
        call()
    assert says in str(info.value)


def test_compute_counts_primes() -> None:
    assert operations.count_primes(1) == 0
    assert operations.count_primes(100) == 25
    assert operations.count_primes(1000) == 168


# ---------------------------------------------------------------- the CLI contract


def test_etl_chain_through_inputs_gives_110(tmp_path: Path) -> None:
    out_file = tmp_path / "out"
    steps = [["source", json.dumps(list(range(1, 11)))], ["map", "double"], ["filter", "is_even"], ["reduce", "sum"]]
    previous: dict[str, str] | None = None
    for i, argv in enumerate(steps):
        code, stdout, stderr = run(argv, previous, TASKJOB_OUTPUT_PATH=str(out_file))
        assert (code, stderr) == (0, "")
        output = out_file.read_text()
        assert stdout == output + "\n"  # the same text goes to the output file and to stdout
        previous = {f"step{i}": output}
    assert out_file.read_text() == "110"


def test_output_is_compact_json() -> None:
    code, stdout, _ = run(["source", '{"a": [1, 2], "b": "é"}'])
    assert (code, stdout) == (0, '{"a":[1,2],"b":"é"}\n')


def test_without_output_path_or_termination_log_the_output_only_goes_to_stdout(tmp_path: Path) -> None:
    code, stdout, _ = run(["source", "[1]"])
    assert (code, stdout) == (0, "[1]\n")
    assert not (tmp_path / "absent-termination-log").exists()


def test_the_termination_log_is_the_default_output_when_it_is_writable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    log = tmp_path / "termination-log"
    log.write_text("")
    monkeypatch.setattr(dataflow, "TERMINATION_LOG", str(log))
    assert run(["echo", "hello"])[0] == 0
    assert log.read_text() == "hello"


def test_unknown_function_exits_2_with_one_line_on_stderr(tmp_path: Path) -> None:
    out_file = tmp_path / "out"
    code, stdout, stderr = run(["map", "dubble"], {"a": "[1]"}, TASKJOB_OUTPUT_PATH=str(out_file))
    assert code == 2
    assert stdout == ""
    assert stderr.count("\n") == 1
    assert stderr.startswith("taskjob-runner: error: unknown function 'dubble' (did you mean 'double'?)")
    assert not out_file.exists()


@pytest.mark.parametrize(
    ("argv", "inputs", "says"),
    [
        (["map", "double"], {"a": '["x"]'}, 'map double: item 0: double takes a number, got "x" (a string)'),
        (["reduce", "sum"], {"a": '{"x": 1}'}, "reduce takes a list as input"),
        (["map", "double"], None, "no input: this operation reads the output of the tasks it depends on"),
        (["map", "double"], {"a": "[1]", "b": '{"x": 1}'}, "each output must be a list"),
        (["source", "[1,"], None, "source takes a JSON value"),
        (["take", "x"], {"a": "[1]"}, "argument n: invalid int value: 'x'"),
        (["frobnicate"], None, "invalid choice: 'frobnicate'"),
        (["join", "--order", "b,zzz"], {"a": "[1]", "b": "[2]"}, "--order names 'zzz', which is not an upstream"),
        (["fail", "--probability", "2"], None, "fail --probability must be between 0 and 1"),
    ],
)
def test_bad_input_exits_2(argv: list[str], inputs: dict[str, str] | None, says: str) -> None:
    code, stdout, stderr = run(argv, inputs)
    assert code == 2
    assert stdout == ""
    assert stderr.count("\n") == 1 and says in stderr


def test_several_upstream_lists_are_concatenated_in_task_name_order_or_as_ordered() -> None:
    inputs = {"b": "[3, 4]", "a": "[1, 2]"}
    assert run(["map", "identity"], inputs)[1] == "[1,2,3,4]\n"
    assert run(["take", "3", "--order", "b,a"], inputs)[1] == "[3,4,1]\n"
    assert run(["join", "--order", "b"], inputs)[1] == "[3,4,1,2]\n"


def test_join_merges_objects_and_an_output_that_is_not_json_is_a_string() -> None:
    assert run(["join"], {"a": '{"x": 1}', "b": '{"y": 2}'})[1] == '{"x":1,"y":2}\n'
    assert run(["map", "to_upper"], {"a": '["hello"]'})[1] == '["HELLO"]\n'
    assert run(["join"], {"a": "hello\n", "b": " world"})[1] == '"hello world"\n'


def test_output_of_4096_bytes_or_more_exits_3_and_writes_nothing(tmp_path: Path) -> None:
    # 4096 bytes is Kubernetes' cap: a message of exactly that size cannot be told from a truncated one.
    out_file = tmp_path / "out"
    big = json.dumps("x" * 4094)  # 4096 bytes with the quotes
    code, stdout, stderr = run(["source", big], TASKJOB_OUTPUT_PATH=str(out_file))
    assert code == 3
    assert stdout == "" and not out_file.exists()
    assert "the output is 4096 bytes, but a task's output must stay under 4096 bytes" in stderr
    assert "by reference" in stderr


def test_output_of_4095_bytes_is_written_whole(tmp_path: Path) -> None:
    out_file = tmp_path / "out"
    text = "é" * 2047 + "x"  # 4095 bytes in UTF-8
    assert run(["echo", text], TASKJOB_OUTPUT_PATH=str(out_file))[0] == 0
    assert out_file.read_bytes() == text.encode()


def test_unwritable_output_path_is_a_retriable_failure(tmp_path: Path) -> None:
    code, _, stderr = run(["echo", "x"], TASKJOB_OUTPUT_PATH=str(tmp_path / "missing-dir" / "out"))
    assert code == 1
    assert "cannot write the output to" in stderr


def test_echo_outputs_its_text_raw() -> None:
    assert run(["echo", "hello", "world"])[1] == "hello world\n"


def test_fail_exits_with_the_requested_code_and_until_attempt_makes_a_flaky_task() -> None:
    assert run(["fail", "--exit-code", "7"])[0] == 7
    assert run(["fail", "--probability", "0"])[0] == 0
    flaky = ["fail", "--until-attempt", "3"]
    assert [run(flaky, TASKJOB_ATTEMPT=str(a))[0] for a in (1, 2, 3, 4)] == [1, 1, 0, 0]


def test_sleep_and_surviving_fail_pass_a_single_input_on_unchanged() -> None:
    assert run(["sleep", "0"], {"a": "[1, 2]"})[1] == "[1, 2]\n"
    assert run(["fail", "--probability", "0"], {"a": "110"})[1] == "110\n"
    assert run(["sleep", "0"]) == (0, "", "")


def test_compute_is_deterministic() -> None:
    assert run(["compute", "1000"])[1] == "168\n"


def test_module_entry_point_exits_2_on_an_unknown_function(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "taskjob_runner", "reduce", "summ"],
        capture_output=True,
        text=True,
        env={"TASKJOB_INPUTS": '{"a": "[1]"}', "TASKJOB_OUTPUT_PATH": str(tmp_path / "out")},
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert "unknown function 'summ' (did you mean 'sum'?)" in proc.stderr
