"""CronTaskJobs on the real control plane: runs on schedule, history limits, Forbid, missed runs, cascade, webhook.

The schedules are real (`* * * * *`, so a test waits for at most about two minute boundaries); no clock
is faked. Missed runs are set up honestly: the CronTaskJob is created while the operator is down, with
the lastScheduleTime an operator would have written long ago (the status subresource, as the operator
writes it), and the operator then starts.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from operator_harness import ROOT, OperatorProcess, poll, rejection
from outcomes import pod_outcomes

pytestmark = pytest.mark.cluster

GROUP, VERSION, CRONS, TASKJOBS = "taskjob.dev", "v1alpha1", "crontaskjobs", "taskjobs"
LABEL_CRON = "taskjob.dev/crontaskjob"
MINUTE_BOUNDARIES = 2 * 60 + 30  # seconds: a run on the next minute, then one more, with room to finish


def cron_manifest(
    name: str, schedule: str = "* * * * *", duration_ms: int | None = None, **spec: Any
) -> dict[str, Any]:
    pod = {"metadata": {"annotations": pod_outcomes(0, duration_ms=duration_ms)}}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "CronTaskJob",
        "metadata": {"name": name},
        "spec": {
            "schedule": schedule,
            "taskJobTemplate": {
                "metadata": {"labels": {"team": "data"}},
                "spec": {"defaults": {"image": "busybox:1.36", "podTemplate": pod},
                         "tasks": [{"name": "extract"}, {"name": "report", "dependsOn": ["extract"]}]},
            },
            **spec,
        },
    }


class Crons:
    """CronTaskJobs and the TaskJobs they create in one namespace."""

    def __init__(self, api_client: Any, namespace: str) -> None:
        from kubernetes import client

        self.api = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.namespace = namespace

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = self.api.create_namespaced_custom_object(GROUP, VERSION, self.namespace, CRONS, body)
        return created

    def get(self, name: str) -> dict[str, Any]:
        body: dict[str, Any] = self.api.get_namespaced_custom_object(GROUP, VERSION, self.namespace, CRONS, name)
        return body

    def set_status(self, name: str, status: dict[str, Any]) -> None:
        self.api.patch_namespaced_custom_object_status(GROUP, VERSION, self.namespace, CRONS, name, {"status": status})

    def delete(self, name: str) -> None:
        self.api.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, CRONS, name,
                                                 propagation_policy="Foreground")

    def children(self, name: str) -> list[dict[str, Any]]:
        items = self.api.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, TASKJOBS, label_selector=f"{LABEL_CRON}={name}")["items"]
        return sorted(items, key=lambda b: b["metadata"]["name"])

    def phases(self, name: str) -> dict[str, str]:
        return {c["metadata"]["name"]: (c.get("status") or {}).get("phase", "") for c in self.children(name)}

    def events(self, name: str) -> list[str]:
        items = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.kind=CronTaskJob,involvedObject.name={name}").items
        return [e.reason for e in items]


@pytest.fixture
def crons(api_client: Any, namespace: str, taskjob_crd: None) -> Crons:
    return Crons(api_client, namespace)


def scheduled(child: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(child["metadata"]["annotations"]["taskjob.dev/scheduled-time"].replace("Z", "+00:00"))


def test_runs_on_schedule_keeps_history_forbid_holds_back_replace_replaces(
    operator: OperatorProcess, crons: Crons, namespace: str, kubectl: Callable[..., str]
) -> None:
    # Three at once, to wait for the minute boundaries once: one keeps 1 success; two run 100 s, under
    # Forbid and under Replace.
    keeper = crons.create(cron_manifest("keeper", successfulJobsHistoryLimit=1))
    crons.create(cron_manifest("forbid", duration_ms=100_000, concurrencyPolicy="Forbid"))
    crons.create(cron_manifest("replace", duration_ms=100_000, concurrencyPolicy="Replace"))

    first = poll(lambda: [n for n, p in crons.phases("keeper").items() if p == "Succeeded"], 75,
                 "keeper's first TaskJob to succeed")[0]
    child = crons.children("keeper")[0]
    assert child["metadata"]["labels"] == {"team": "data", LABEL_CRON: "keeper"}
    [owner] = child["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "CronTaskJob", "keeper", keeper["metadata"]["uid"], True)
    when = scheduled(child)
    assert when.second == 0 and first == f"keeper-{int(when.timestamp()) // 60}"
    status = poll(lambda: (s := crons.get("keeper").get("status") or {}).get("lastSuccessfulTime") and s, 30,
                  "keeper's lastSuccessfulTime")
    assert status["lastScheduleTime"] == when.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert datetime.fromisoformat(status["nextScheduleTime"].replace("Z", "+00:00")) > when

    table = kubectl("get", "crontaskjobs", "-n", namespace)
    header = table.splitlines()[0].split()
    assert header == ["NAME", "SCHEDULE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "NEXT", "AGE"]
    assert re.search(r"^keeper\s+\* \* \* \* \*\s+\d+\s+\d+s\s+\d{4}-\d\d-\d\dT", table, re.M), table

    # The next minute: a second success, and the history limit deletes the first.
    poll(lambda: list(crons.phases("keeper").values()) == ["Succeeded"] and first not in crons.phases("keeper"),
         75, "keeper's second run to succeed and the first to be deleted")

    # Meanwhile forbid's first run still runs, so its second scheduled time was held back.
    poll(lambda: "JobAlreadyActive" in crons.events("forbid"), 30, "forbid's JobAlreadyActive event")
    runs = crons.children("forbid")
    assert len(runs) == 1 and (runs[0].get("status") or {}).get("phase") == "Running"
    assert crons.get("forbid")["status"]["activeCount"] == 1

    # Replace: the still-running first run was deleted for the second.
    poll(lambda: "Replaced" in crons.events("replace"), 30, "replace's Replaced event")
    poll(lambda: len(crons.children("replace")) == 1, 60, "the replaced run to be gone")
    [second] = crons.children("replace")
    assert scheduled(second) > when
    [active] = crons.get("replace")["status"]["active"]
    assert (active["name"], active["uid"]) == (second["metadata"]["name"], second["metadata"]["uid"])

    # Deleting a CronTaskJob deletes its TaskJobs (ownerReferences, the garbage collector).
    crons.delete("forbid")
    poll(lambda: not crons.children("forbid"), 60, "forbid's TaskJobs to be garbage-collected")


def test_an_operator_down_during_scheduled_times_starts_only_the_latest_missed_run(
    kubeconfig: str, namespace: str, crons: Crons, tmp_path: Path
) -> None:
    # Created while no operator runs, with the lastScheduleTime an operator would have written years ago.
    crons.create(cron_manifest("yearly", schedule="0 0 1 1 *"))
    crons.set_status("yearly", {"lastScheduleTime": "2020-01-01T00:00:00Z"})
    crons.create(cron_manifest("hourly", schedule="0 * * * *"))
    crons.set_status("hourly", {"lastScheduleTime": "2026-01-01T00:00:00Z"})  # thousands of hours ago
    op = OperatorProcess(kubeconfig, [namespace], tmp_path)
    try:
        op.start()
        [yearly] = poll(lambda: crons.children("yearly"), 30, "the missed yearly run")
        this_year = datetime(datetime.now(UTC).year, 1, 1, tzinfo=UTC)
        assert scheduled(yearly) == this_year  # 2021 ... last year were dropped, as CronJob drops them
        [hourly] = poll(lambda: crons.children("hourly"), 30, "the missed hourly run")
        created = datetime.fromisoformat(hourly["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
        assert scheduled(hourly) == created.replace(minute=0, second=0)
        poll(lambda: "TooManyMissedTimes" in crons.events("hourly"), 30, "the TooManyMissedTimes warning")
        conditions = poll(lambda: (crons.get("hourly").get("status") or {}).get("conditions"), 30, "conditions")
        assert {"type": "MissedSchedules", "status": "True"}.items() <= next(
            c for c in conditions if c["type"] == "MissedSchedules").items()
        assert "TooManyMissedTimes" not in crons.events("yearly")  # 6 missed is not "too many"

        # Killed and started again: the run it already started is not started twice.
        op.kill()
        op.start()
        poll(lambda: f"reconciled CronTaskJob {namespace}/yearly" in op.log_path.read_text(), 30,
             "the restarted operator to reconcile yearly")
        assert [c["metadata"]["name"] for c in crons.children("yearly")] == [yearly["metadata"]["name"]]
        assert crons.events("yearly").count("SuccessfulCreate") == 1
    finally:
        op.stop()


def test_the_nightly_report_example_runs_its_missed_night_to_success(
    kubeconfig: str, namespace: str, crons: Crons, tmp_path: Path
) -> None:
    # The example, unmodified; as if the operator had last run it three nights ago, so last night is due.
    manifest = yaml.safe_load((ROOT / "examples" / "nightly-report.yaml").read_text())
    crons.create(manifest)
    three_nights = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    crons.set_status("nightly-report", {"lastScheduleTime": three_nights})
    op = OperatorProcess(kubeconfig, [namespace], tmp_path)
    try:
        op.start()
        [run] = poll(lambda: crons.children("nightly-report"), 30, "the missed night's TaskJob")
        berlin = scheduled(run).astimezone(ZoneInfo("Europe/Berlin"))
        assert (berlin.hour, berlin.minute) == (2, 0)
        assert datetime.now(UTC) - scheduled(run) < timedelta(days=1)  # last night, not the two before
        assert run["metadata"]["labels"]["app"] == "nightly-report"
        name = run["metadata"]["name"]
        poll(lambda: crons.phases("nightly-report")[name] == "Succeeded", 60, f"{name} to succeed")
        taskjob = crons.api.get_namespaced_custom_object(GROUP, VERSION, namespace, TASKJOBS, name)
        assert taskjob["status"]["progress"] == "3/3"

        # `taskjob get ctj/NAME`, as a user types it.
        view = subprocess.run(
            [sys.executable, "-m", "taskjobs.cli.main", "get", "ctj/nightly-report", "-n", namespace],
            capture_output=True, text=True, timeout=60, env={**os.environ, "KUBECONFIG": kubeconfig, "COLUMNS": "200"},
        )
        assert view.returncode == 0, view.stderr
        assert "0 2 * * * (Europe/Berlin)" in view.stdout
        assert re.search(rf"^{name}\s+\S+Z\s+Succeeded\s+3/3", view.stdout, re.M), view.stdout
    finally:
        op.stop()


def test_without_the_webhook_an_invalid_crontaskjob_says_why_and_creates_nothing(
    operator: OperatorProcess, crons: Crons
) -> None:
    crons.create(cron_manifest("broken", timeZone="Mars/Olympus"))  # the CRD schema cannot know time zones
    status = poll(lambda: crons.get("broken").get("status"), 30, "the operator to judge it")
    assert status["message"] == ("invalid CronTaskJob: spec.timeZone: unknown time zone 'Mars/Olympus': use an "
                                 "IANA name such as Europe/Berlin or Etc/UTC")
    assert [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == [("Valid", "False", "InvalidSpec")]
    poll(lambda: "Invalid" in crons.events("broken"), 30, "the Invalid event")
    assert crons.children("broken") == [] and "nextScheduleTime" not in status


BAD_SCHEDULE = """
apiVersion: taskjob.dev/v1alpha1
kind: CronTaskJob
metadata: {name: bad}
spec:
  schedule: "61 * * * *"
  timeZone: Europe/Berlin
  taskJobTemplate:
    spec:
      defaults: {image: busybox:1.36}
      tasks:
      - {name: a, dependsOn: [b]}
      - {name: b, dependsOn: [a]}
"""


def test_apply_of_a_bad_schedule_is_rejected_naming_the_fields(
    webhook_operator: OperatorProcess, namespace: str, kubectl: Callable[..., str], testenv: Any, tmp_path: Path
) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(BAD_SCHEDULE)
    error = rejection(testenv, kubectl, namespace, manifest, "the CronTaskJob")
    assert "spec.schedule: bad minute in '61 * * * *'" in error
    assert "spec.taskJobTemplate.spec.tasks[0].dependsOn[0]: dependency cycle a → b → a" in error

    manifest.write_text(BAD_SCHEDULE.replace("61 * * * *", "0 3 * * *").replace("dependsOn: [b]", "dependsOn: []"))
    kubectl("apply", "-n", namespace, "-f", str(manifest))
    status = poll(lambda: kubectl("get", "crontaskjob", "bad", "-n", namespace, "-o",
                                  "jsonpath={.status.nextScheduleTime}"), 30, "the operator to schedule it")
    # 03:00 in Berlin is 01:00 or 02:00 UTC, depending on daylight saving time.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT0[12]:00:00Z", status), status
    assert datetime.fromisoformat(status.replace("Z", "+00:00")) - datetime.now(UTC) < timedelta(days=1)


def test_the_sdk_creates_a_crontaskjob_the_api_server_accepts(crons: Crons, namespace: str, api_client: Any) -> None:
    from taskjobs.cronsdk import Cron
    from taskjobs.sdk import DAG, Task

    with DAG("ignored", defaults={"image": "busybox:1.36"}) as dag:
        Task("a") >> Task("b")
    created = Cron("from-python", dag, schedule="@daily", time_zone="Asia/Tokyo").create(namespace, api_client)
    assert created["metadata"]["uid"]
    stored = crons.get("from-python")
    assert stored["spec"]["schedule"] == "@daily" and stored["spec"]["timeZone"] == "Asia/Tokyo"
    assert [t["name"] for t in stored["spec"]["taskJobTemplate"]["spec"]["tasks"]] == ["a", "b"]
