"""taskjobs.cronsdk: a CronTaskJob built in Python around a DAG or a Pipeline, valid as the operator sees it."""

from __future__ import annotations

import pytest
import yaml

from taskjobs.cronsdk import Cron, InvalidCronTaskJob
from taskjobs.sdk import DAG, Pipeline, Task


def test_a_dag_on_a_schedule_is_the_nightly_report_example_shape() -> None:
    with DAG("ignored", labels={"app": "nightly-report"}, defaults={"image": "busybox:1.36"}) as dag:
        [Task("orders"), Task("refunds")] >> Task("report")
    cron = Cron("nightly-report", dag, schedule="0 2 * * *", time_zone="Europe/Berlin", concurrency_policy="Forbid",
                successful_jobs_history_limit=3, failed_jobs_history_limit=1)
    manifest = cron.check()
    assert manifest["kind"] == "CronTaskJob" and manifest["metadata"] == {"name": "nightly-report"}
    assert manifest["spec"]["timeZone"] == "Europe/Berlin"
    template = manifest["spec"]["taskJobTemplate"]
    assert template["metadata"] == {"labels": {"app": "nightly-report"}}
    assert [t["name"] for t in template["spec"]["tasks"]] == ["orders", "refunds", "report"]
    assert template["spec"]["tasks"][2]["dependsOn"] == ["orders", "refunds"]
    assert yaml.safe_load(cron.to_yaml()) == manifest


def test_a_pipeline_on_a_schedule() -> None:
    cron = Cron("hourly-etl", Pipeline("etl").source([1, 2, 3]).map("double").reduce("sum"), schedule="@hourly")
    assert cron.validate().ok
    assert len(cron.to_manifest()["spec"]["taskJobTemplate"]["spec"]["tasks"]) == 3


def test_problems_name_their_fields() -> None:
    with DAG("x", defaults={"image": "busybox:1.36"}) as dag:
        Task("a")
    with pytest.raises(InvalidCronTaskJob) as err:
        Cron("nightly", dag, schedule="0 2 * *", time_zone="Berlin").check()
    assert "spec.schedule: must have five fields" in str(err.value)
    assert "spec.timeZone: unknown time zone 'Berlin'" in str(err.value)
