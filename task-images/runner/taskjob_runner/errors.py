"""The runner's failures, each with the exit code that tells the operator whether a retry can help."""

from __future__ import annotations

import json

EXIT_FAILED = 1  # unexpected or environmental failure: a retry may help
EXIT_BAD_INPUT = 2  # unknown function, ill-typed input, bad arguments: the same input fails again
EXIT_OUTPUT_TOO_LARGE = 3  # the output does not fit under the 4096-byte termination message


class RunnerError(Exception):
    """A failure reported as one line on stderr and an exit code."""

    exit_code = EXIT_FAILED


class BadInput(RunnerError):
    """The task's arguments or input data are wrong; retrying cannot help (exit code 2)."""

    exit_code = EXIT_BAD_INPUT


class OutputTooLarge(RunnerError):
    """The output exceeds the termination-message budget (exit code 3)."""

    exit_code = EXIT_OUTPUT_TOO_LARGE


def describe(value: object) -> str:
    """Return a short description of a JSON value for error messages, e.g. `"abc" (a string)`."""
    kind = json_type(value)
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} ({kind})"


def json_type(value: object) -> str:
    """Return the JSON type name of a value with its article: 'a number', 'a string', 'null' ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
