"""`python -m taskjob_runner <operation> [args]`: run one operation as a task and write its output.

Exit codes: 0 success; 1 unexpected failure or a `fail` task (a retry may help); 2 bad arguments,
unknown function or ill-typed input (retrying cannot help: list 2 in retry.nonRetriableExitCodes);
3 output of 4096 bytes or more (the termination message cap).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn, TextIO

from . import dataflow, operations
from .errors import EXIT_BAD_INPUT, BadInput, RunnerError
from .functions import SUMMARY, Function, lookup

PROG = "taskjob-runner"

EPILOG = (
    "Input: the output of the single upstream task, as JSON; with several upstream tasks their lists,\n"
    "concatenated in order of task name (or --order). Output: compact JSON, to TASKJOB_OUTPUT_PATH and stdout.\n"
    "Exit codes: 1 failure (retriable), 2 bad input or arguments (not retriable), 3 output of 4096 bytes or more.\n\n"
    "Functions:\n" + "\n".join(f"  {name:<12} {text}" for name, text in sorted(SUMMARY.items()))
)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise BadInput(f"{message} (see '{self.prog} --help')")


def _parser() -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = _Parser(
        prog=PROG,
        description="Run one pipeline operation over JSON values as a TaskJob task.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ops = p.add_subparsers(dest="op", metavar="operation", required=True, parser_class=_Parser)

    def data_op(name: str, help: str, aliases: Sequence[str] = ()) -> argparse.ArgumentParser:
        sp = ops.add_parser(name, help=help, aliases=list(aliases))
        sp.add_argument(
            "--order",
            default="",
            metavar="A,B",
            help="upstream tasks in the order their outputs are combined (default: by task name)",
        )
        sp.add_argument(
            "--flatten",
            action="store_true",
            help="the input is a list of lists (a fan-out task's output): concatenate them first",
        )
        sp.add_argument("--partition", type=int, default=None, metavar="I", help="work on part I of the list only")
        sp.add_argument(
            "--partitions", type=int, default=1, metavar="N", help="with --partition: the list's number of parts"
        )
        return sp

    sp: argparse.ArgumentParser = ops.add_parser("source", help="emit a JSON value")
    sp.add_argument("value", help="the value, as JSON text (e.g. '[1,2,3]')")
    for name, help_, aliases in [
        ("map", "apply a function to every item", ()),
        ("filter", "keep the items for which a predicate is true", ()),
        ("flat_map", "apply a list-returning function to every item and concatenate", ("flat-map",)),
        ("reduce", "apply an aggregate function (sum, count, max ...) to the list", ()),
        ("group_by", "group the items by a key function into an object", ("group-by",)),
    ]:
        data_op(name, help_, aliases).add_argument("function", help="a function name (see below)")
    data_op("join", "merge the inputs: lists concatenated, objects merged, strings concatenated")
    data_op("unique", "drop repeated items, keeping the first of each")
    sp = data_op("sort", "sort numbers or strings")
    sp.add_argument("--key", help="a function computing each item's sort key")
    sp.add_argument("--reverse", action="store_true", help="largest first")
    data_op("take", "keep the first N items").add_argument("n", type=int, help="how many")

    sp = ops.add_parser("sleep", help="sleep, then pass the single upstream output on unchanged")
    sp.add_argument("seconds", type=float)
    sp = ops.add_parser("compute", help="CPU-bound work: count the primes <= N (a deterministic result)")
    sp.add_argument("n", type=int)
    sp = ops.add_parser("fail", help="exit non-zero (optionally only sometimes), else pass the input on")
    sp.add_argument("--exit-code", type=int, default=1, help="exit code when failing (default 1)")
    sp.add_argument("--probability", type=float, default=1.0, help="chance of failing, 0..1 (default 1)")
    sp.add_argument(
        "--until-attempt",
        type=int,
        default=None,
        metavar="N",
        help="fail only while TASKJOB_ATTEMPT < N: a deterministic flaky task that succeeds on attempt N",
    )
    sp = ops.add_parser("echo", help="output the text as given (not JSON-encoded)")
    sp.add_argument("text", nargs="*")
    return p


_WITH_FUNCTION: dict[str, Callable[[str, Function, Any], Any]] = {
    "map": operations.map_,
    "filter": operations.filter_,
    "flat_map": operations.flat_map,
    "reduce": operations.reduce,
    "group_by": operations.group_by,
}


def _order(arg: str) -> list[str]:
    return [n.strip() for n in arg.split(",") if n.strip()]


def _passthrough(inputs: dataflow.Inputs) -> str | None:
    # Demo kinds stay transparent in a pipeline: one upstream output goes on unchanged.
    return inputs[0][1] if len(inputs) == 1 else None


class _Failure(RunnerError):
    """A `fail` task failing on purpose, with the exit code it was asked for."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _fail(args: argparse.Namespace, env: Mapping[str, str]) -> None:
    if not 1 <= args.exit_code <= 255:
        raise BadInput(f"fail --exit-code must be between 1 and 255, got {args.exit_code}")
    if not 0.0 <= args.probability <= 1.0:
        raise BadInput(f"fail --probability must be between 0 and 1, got {args.probability}")
    attempt_text = env.get("TASKJOB_ATTEMPT", "1")
    try:
        attempt = int(attempt_text)
    except ValueError:
        raise BadInput(f"TASKJOB_ATTEMPT must be an integer, got {attempt_text!r}") from None
    if args.until_attempt is not None and attempt >= args.until_attempt:
        return
    if random.random() < args.probability:
        raise _Failure(f"failing on purpose (attempt {attempt}, exit code {args.exit_code})", args.exit_code)


def run(args: argparse.Namespace, env: Mapping[str, str]) -> str | None:
    """Return the output text of the parsed operation (None: no output), or raise RunnerError."""
    op = args.op.replace("-", "_")
    if op == "source":
        try:
            return dataflow.encode(json.loads(args.value))
        except json.JSONDecodeError as e:
            raise BadInput(f"source takes a JSON value, but {args.value!r} is not JSON: {e}") from None
    if op == "echo":
        return " ".join(args.text)
    if op == "sleep":
        if args.seconds < 0:
            raise BadInput(f"sleep needs 0 or more seconds, got {args.seconds}")
        inputs = dataflow.read_inputs(env)
        time.sleep(args.seconds)
        return _passthrough(inputs)
    if op == "compute":
        return dataflow.encode(operations.count_primes(args.n))
    if op == "fail":
        inputs = dataflow.read_inputs(env)
        _fail(args, env)
        return _passthrough(inputs)

    # Data operations: resolve function names before touching the input, so a typo fails fast.
    fn_name: str | None = getattr(args, "function", None)
    fn = lookup(fn_name) if fn_name else None
    key_fn = lookup(args.key) if op == "sort" and args.key else None
    inputs = dataflow.reorder(dataflow.read_inputs(env), _order(args.order))
    if op == "join":
        return dataflow.encode(operations.join([(n, dataflow.decode(t)) for n, t in inputs]))
    value = dataflow.data_input(inputs)
    if args.flatten:
        value = dataflow.flatten(value)
    if args.partition is not None:  # one instance of a fan-out task: its part of the list (a partitioned map)
        value = dataflow.partition(value, args.partition, args.partitions)
    result: Any
    if fn_name and fn:
        result = _WITH_FUNCTION[op](fn_name, fn, value)
    elif op == "unique":
        result = operations.unique(value)
    elif op == "sort":
        result = operations.sort(value, args.key, key_fn, args.reverse)
    elif op == "take":
        result = operations.take(args.n, value)
    else:  # pragma: no cover - argparse only accepts the operations above
        raise BadInput(f"unknown operation {args.op!r}")
    return dataflow.encode(result)


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the runner CLI and return its exit code."""
    env = os.environ if env is None else env
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        args = _parser().parse_args(argv)
        text = run(args, env)
        if text is not None:
            dataflow.write_output(text, env)
            print(text, file=out)
    except RunnerError as e:
        print(f"{PROG}: error: {e}", file=err)
        return e.exit_code
    except RecursionError:  # deeply nested JSON input
        print(f"{PROG}: error: the input is nested too deeply", file=err)
        return EXIT_BAD_INPUT
    return 0
