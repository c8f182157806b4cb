"""The chart's RBAC covers CronTaskJobs: as the chart's ServiceAccount the operator creates a scheduled
TaskJob, writes the CronTaskJob's status and Events, with no request denied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from operator_harness import OperatorProcess, poll
from test_cron import Crons, cron_manifest
from test_rbac import chart_identity  # noqa: F401 - the fixture: the chart installed, a kubeconfig for its SA

pytestmark = pytest.mark.cluster


def test_operator_as_the_chart_service_account_runs_a_missed_scheduled_time(
    chart_identity: Path, namespace: str, taskjob_crd: None, api_client: Any, tmp_path: Path  # noqa: F811
) -> None:
    crons = Crons(api_client, namespace)
    crons.create(cron_manifest("hourly", schedule="0 * * * *"))
    crons.set_status("hourly", {"lastScheduleTime": "2026-01-01T00:00:00Z"})  # the latest hour is due now
    op = OperatorProcess(str(chart_identity), [namespace], tmp_path)
    try:
        op.start()
        [run] = poll(lambda: crons.children("hourly"), 30, "the scheduled TaskJob")
        poll(lambda: crons.phases("hourly")[run["metadata"]["name"]] == "Succeeded", 60, "the run to succeed")
        poll(lambda: (crons.get("hourly").get("status") or {}).get("lastSuccessfulTime"), 30, "the status write")
        assert "SuccessfulCreate" in crons.events("hourly")
    finally:
        op.stop()
    denials = [line for line in op.logs().splitlines() if "Forbidden" in line or "forbidden" in line]
    assert not denials, "\n".join(denials[:10])
