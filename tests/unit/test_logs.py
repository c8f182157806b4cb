"""JSON logs: one object per line, with the TaskJob and task when the line is about one."""

from __future__ import annotations

import json
import logging

from taskjobs.shell.logs import JsonFormatter


def record(msg: str, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("taskjob.reconciler", logging.INFO, __file__, 1, msg, (), None)
    for k, v in extra.items():
        setattr(rec, k, v)
    return rec


def test_a_line_about_a_task_names_the_taskjob_and_the_task() -> None:
    line = json.loads(JsonFormatter().format(record("created Job", namespace="ns", taskjob="etl", task="load")))
    assert line["message"] == "created Job"
    assert (line["namespace"], line["taskjob"], line["task"]) == ("ns", "etl", "load")
    assert line["level"] == "info" and line["logger"] == "taskjob.reconciler"


def test_kopf_object_lines_carry_the_object_reference() -> None:
    rec = record("Handler succeeded", k8s_ref={"name": "etl", "namespace": "ns"})
    line = json.loads(JsonFormatter().format(rec))
    assert (line["taskjob"], line["namespace"]) == ("etl", "ns")


def test_an_exception_is_kept_in_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    text = JsonFormatter().format(rec)
    assert "\n" not in text
    assert "ValueError: boom" in json.loads(text)["error"]
