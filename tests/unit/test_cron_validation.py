"""validate_crontaskjob: every problem at once, each naming its field, the template's DAG included."""

from __future__ import annotations

from typing import Any

from taskjobs.core.cronvalidation import validate_crontaskjob


def manifest(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "taskjob.dev/v1alpha1",
        "kind": "CronTaskJob",
        "metadata": {"name": "nightly"},
        "spec": {
            "schedule": "0 2 * * *",
            "taskJobTemplate": {
                "metadata": {"labels": {"team": "data"}},
                "spec": {"tasks": [{"name": "a", "image": "busybox"}, {"name": "b", "image": "busybox",
                                                                      "dependsOn": ["a"]}]},
            },
            **spec,
        },
    }


def problems(obj: dict[str, Any]) -> list[str]:
    return [str(p) for p in validate_crontaskjob(obj).problems]


def test_a_good_manifest_parses() -> None:
    result = validate_crontaskjob(manifest(timeZone="Europe/Berlin", concurrencyPolicy="Forbid"))
    assert result.ok and result.cron is not None
    assert result.cron.spec.task_job_template.spec.tasks[1].depends_on == ["a"]


def test_every_problem_names_its_field() -> None:
    bad = manifest(schedule="61 * * * *", timeZone="Mars/Olympus", concurrencyPolicy="forbid",
                   startingDeadlineSeconds=-1)
    bad["spec"]["taskJobTemplate"]["spec"]["tasks"][0]["dependsOn"] = ["b"]
    assert problems(bad) == [
        'spec.concurrencyPolicy: must be one of Allow, Forbid, Replace (got "forbid") (did you mean "Forbid"?)',
        "spec.schedule: bad minute in '61 * * * *'",
        "spec.startingDeadlineSeconds: must be ≥ 0 (got -1)",
        "spec.taskJobTemplate.spec.tasks[0].dependsOn[0]: dependency cycle a → b → a: "
        "each task depends on the one before it",
        "spec.timeZone: unknown time zone 'Mars/Olympus': use an IANA name such as Europe/Berlin or Etc/UTC",
    ]


def test_template_spec_errors_use_the_template_path() -> None:
    bad = manifest()
    bad["spec"]["taskJobTemplate"]["spec"]["tasks"][1]["retry"] = {"limit": "3"}
    bad["spec"]["taskJobTemplate"]["spec"]["tasks"][0]["image"] = None
    assert problems(bad) == [
        'spec.taskJobTemplate.spec.tasks[0].image: task "a" has no image: set spec.tasks[0].image or '
        "spec.defaults.image",
        'spec.taskJobTemplate.spec.tasks[1].retry.limit: must be an integer (got "3")',
    ]


def test_missing_and_unknown_fields() -> None:
    bad = manifest(scheduel="x")
    del bad["spec"]["schedule"]
    del bad["spec"]["taskJobTemplate"]["spec"]
    assert problems(bad) == [
        'spec.scheduel: unknown field "scheduel" (did you mean "schedule"?)',
        "spec.schedule: is required",
        "spec.taskJobTemplate.spec: is required",
    ]


def test_name_leaves_room_for_the_minute_suffix() -> None:
    bad = manifest()
    bad["metadata"]["name"] = "n" * 53
    assert problems(bad) == [
        "metadata.name: must be at most 52 characters (got 53): each TaskJob it creates is named "
        "<name>-<minutes since 1970>, which must fit in 63"
    ]


def test_kind_and_version_are_checked() -> None:
    bad = manifest()
    bad["kind"], bad["apiVersion"] = "CronJob", "batch/v1"
    assert problems(bad) == ['apiVersion: must be "taskjob.dev/v1alpha1" (got "batch/v1")',
                             'kind: must be "CronTaskJob" (got "CronJob")']


def test_never_raises_on_junk() -> None:
    assert problems([]) == ["a CronTaskJob must be an object (got a list)"]  # type: ignore[arg-type]
    assert problems({"kind": "CronTaskJob", "spec": 3})[-1] == "spec: must be an object (got 3)"
