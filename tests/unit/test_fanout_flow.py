"""Fan-out together with `when` and `finally`: a condition per item filters instances, a handled instance
failure does not stop the TaskJob, and a finally task cannot fan out."""

from __future__ import annotations

from typing import Any

from test_fanout import META, failed, ok, spec_of

from taskjobs.core.plan import plan
from taskjobs.core.validation import validate_spec

IMAGE = {"image": "busybox:1.36"}


def phases(p: Any, *names: str) -> list[tuple[str, str | None]]:
    tasks = p.status.tasks or {}
    return [(tasks[n].phase, tasks[n].reason) for n in names]


def test_a_condition_on_the_item_skips_those_instances_and_leaves_them_out_of_the_list() -> None:
    spec = spec_of(
        {"name": "even", "forEach": {"items": [1, 2, 3, 4]}, "when": "item % 2 == 0", **IMAGE},
        {"name": "sum", "dependsOn": ["even"], "args": ["{{tasks.even.output}}"], **IMAGE},
    )
    first = plan(META, spec, None, [], META.creation_timestamp)
    assert sorted(c.task for c in first.create) == ["even-1", "even-3"]
    assert phases(first, "even-0", "even-2") == [("Skipped", "ConditionFalse")] * 2

    done = plan(META, spec, first.status, [ok("even-1", output="2"), ok("even-3", output="4")], META.creation_timestamp)
    assert phases(done, "even") == [("Succeeded", None)]
    assert (done.status.tasks or {})["even"].message == "2 of 4 instances succeeded, 2 skipped by their condition"
    assert done.outputs["even"] == "[2,4]"  # only the kept items' outputs, in item order
    assert [c.task for c in done.create] == ["sum"]


def test_a_condition_false_for_every_item_skips_the_fan_out_task_and_its_dependents_still_run() -> None:
    spec = spec_of(
        {"name": "gen", **IMAGE},
        {"name": "each", "dependsOn": ["gen"], "forEach": {"items": ["a", "b"]}, "when": "tasks.gen.output == 'go'",
         **IMAGE},
        {"name": "after", "dependsOn": ["each"], **IMAGE},
    )  # fmt: skip
    p = plan(META, spec, None, [ok("gen", output="stop")], META.creation_timestamp)
    assert phases(p, "each-0", "each-1", "each") == [("Skipped", "ConditionFalse")] * 3
    assert [c.task for c in p.create] == ["after"]  # it does not read each's output


def test_a_failed_instance_whose_task_is_handled_does_not_stop_the_taskjob_under_failfast() -> None:
    spec = spec_of(
        {"name": "work", "forEach": {"items": [1, 2]}, "retry": {"limit": 0}, **IMAGE},
        {"name": "alert", "dependsOn": ["work"], "when": "tasks.work.phase == 'Failed'", **IMAGE},
    )
    first = plan(META, spec, None, [], META.creation_timestamp)
    mid = plan(META, spec, first.status, [failed("work-0")], META.creation_timestamp)
    assert phases(mid, "work-0", "work-1") == [("Failed", "Error"), ("Running", None)]  # work-1 is not skipped
    ended = plan(META, spec, mid.status, [failed("work-0"), ok("work-1")], META.creation_timestamp)
    assert phases(ended, "work") == [("Failed", "InstanceFailed")]
    assert [c.task for c in ended.create] == ["alert"]
    final = plan(META, spec, ended.status, [failed("work-0"), ok("work-1"), ok("alert")], META.creation_timestamp)
    assert final.status.phase == "Succeeded"  # the failure was handled by alert


def test_a_finally_task_cannot_fan_out() -> None:
    _, problems = validate_spec(
        {"tasks": [{"name": "a", **IMAGE}], "finally": [{"name": "f", "forEach": {"items": [1]}, **IMAGE}]}
    )
    assert [(p.path, p.message) for p in problems if p.path.startswith("spec.finally")] == [
        ("spec.finally[0].forEach",
         "a finally task cannot fan out: fan out in spec.tasks and let a finally task read the outcome"),
    ]  # fmt: skip
