"""A task's inputs (its dependencies' outputs, from the environment) and its output (a size-capped file).

Contract with the operator and `taskjob run`:
- TASKJOB_INPUTS is a JSON object {upstream task name: output text}. Its key order is not part of the
  contract, so the runner combines inputs in task-name order unless told otherwise (--order).
- The output is written to the file named by TASKJOB_OUTPUT_PATH (in the cluster /dev/termination-log,
  which Kubernetes caps at 4096 bytes). Unset: /dev/termination-log if it exists and is writable,
  else the output only goes to stdout.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import BadInput, OutputTooLarge, RunnerError, describe

INPUTS_ENV = "TASKJOB_INPUTS"
OUTPUT_PATH_ENV = "TASKJOB_OUTPUT_PATH"
TERMINATION_LOG = "/dev/termination-log"
# Kubernetes keeps at most 4096 bytes of a container's termination message. An output of exactly that size
# cannot be told from a truncated one (the operator reports it as possibly truncated), so outputs stay under it.
TERMINATION_MESSAGE_LIMIT = 4096
MAX_OUTPUT_BYTES = TERMINATION_MESSAGE_LIMIT - 1

Inputs = list[tuple[str, str]]  # (upstream task, output text), in order


def read_inputs(env: Mapping[str, str]) -> Inputs:
    """Return the upstream outputs from TASKJOB_INPUTS, sorted by task name (empty when unset)."""
    raw = env.get(INPUTS_ENV, "").strip()
    if not raw:
        return []
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as e:
        raise BadInput(f"{INPUTS_ENV} is not valid JSON: {e}") from None
    if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
        raise BadInput(f"{INPUTS_ENV} must be a JSON object of task name to output text, got {describe(parsed)}")
    return sorted(parsed.items())


def reorder(inputs: Inputs, order: Sequence[str]) -> Inputs:
    """Return the inputs with the tasks named in `order` first, in that order, then the rest as they were."""
    known = dict(inputs)
    for name in order:
        if name not in known:
            upstream = ", ".join(known) or "none"
            raise BadInput(f"--order names {name!r}, which is not an upstream task (upstream: {upstream})")
    listed = list(dict.fromkeys(order))
    return [(n, known[n]) for n in listed] + [(n, t) for n, t in inputs if n not in listed]


def decode(text: str) -> Any:
    """Return an output text as a JSON value; text that is not JSON is a string (one trailing newline dropped)."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return text[:-1] if text.endswith("\n") else text


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def data_input(inputs: Inputs) -> Any:
    """Return the value a data operation works on: the single upstream output, or several lists concatenated."""
    if not inputs:
        raise BadInput(
            "no input: this operation reads the output of the tasks it depends on, and this task has none "
            f"({INPUTS_ENV} is empty); start the pipeline with 'source'"
        )
    if len(inputs) == 1:
        return decode(inputs[0][1])
    out: list[Any] = []
    for name, text in inputs:
        value = decode(text)
        if not isinstance(value, list):
            raise BadInput(
                f"with several upstream tasks each output must be a list (they are concatenated), but task "
                f"{name!r} gave {describe(value)}; use 'join' to merge objects"
            )
        out.extend(value)
    return out


def flatten(value: Any) -> list[Any]:
    """Return a list of lists (the outputs of a fan-out task's instances, in order) concatenated."""
    if not isinstance(value, list) or not all(isinstance(v, list) for v in value):
        raise BadInput(f"--flatten takes a list of lists (a fan-out task's output), got {describe(value)}")
    return [item for part in value for item in part]


def partition(value: Any, index: int, count: int) -> list[Any]:
    """Return part `index` of `count` of a list: contiguous, in order, sizes differing by at most one."""
    if count < 1 or not 0 <= index < count:
        raise BadInput(f"--partition must be in 0..{count - 1} with --partitions {count}, got {index}")
    if not isinstance(value, list):
        raise BadInput(f"--partition takes a list, got {describe(value)}")
    size, extra = divmod(len(value), count)
    start = index * size + min(index, extra)
    return value[start : start + size + (1 if index < extra else 0)]


def encode(value: Any) -> str:
    """Return the value as compact JSON text."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError as e:
        raise BadInput(f"the result cannot be written as JSON: {e}") from None


def output_path(env: Mapping[str, str]) -> str | None:
    """Return the file the output goes to, or None when there is none (stdout only)."""
    path = env.get(OUTPUT_PATH_ENV)
    if path:
        return path
    if os.path.isfile(TERMINATION_LOG) and os.access(TERMINATION_LOG, os.W_OK):
        return TERMINATION_LOG
    return None


def check_size(text: str) -> bytes:
    """Return the output as UTF-8, or raise OutputTooLarge past the termination-message cap."""
    data = text.encode("utf-8")
    if len(data) > MAX_OUTPUT_BYTES:
        raise OutputTooLarge(
            f"the output is {len(data)} bytes, but a task's output must stay under {TERMINATION_MESSAGE_LIMIT} "
            "bytes (the Kubernetes termination message); pass large data by reference: write it to object "
            "storage or a shared volume and output its location"
        )
    return data


def write_output(text: str, env: Mapping[str, str]) -> str | None:
    """Write the output to the output file and return its path (None: no file); raise if it is too large."""
    data = check_size(text)
    path = output_path(env)
    if path is None:
        return None
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as e:
        raise RunnerError(f"cannot write the output to {path}: {e.strerror or e}") from None
    return path
