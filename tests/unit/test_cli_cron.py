"""The CLI and CronTaskJobs: `taskjob validate` checks them with field paths; `taskjob run` runs the template once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from taskjobs.cli.main import cli

REPO = Path(__file__).resolve().parents[2]
NIGHTLY = REPO / "examples" / "nightly-report.yaml"

BAD = """\
apiVersion: taskjob.dev/v1alpha1
kind: CronTaskJob
metadata: {name: nightly}
spec:
  schedule: "0 25 * * *"
  timeZone: Europe/Paris
  taskJobTemplate:
    spec:
      defaults: {image: busybox:1.36}
      tasks:
      - {name: a, dependsOn: [a]}
"""


def test_validate_accepts_a_crontaskjob_and_counts_it() -> None:
    result = CliRunner().invoke(cli, ["validate", str(NIGHTLY), str(REPO / "examples" / "diamond.yaml")])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["OK: 1 TaskJob and 1 CronTaskJob valid in 2 files"]


def test_validate_names_the_schedule_and_the_template_fields(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{path}: doc 1 (nightly): spec.schedule: bad hour in '0 25 * * *'",
        f"{path}: doc 1 (nightly): spec.taskJobTemplate.spec.tasks[0].dependsOn[0]: task \"a\" depends on itself",
    ]


@pytest.mark.skipif(shutil.which("sh") is None, reason="the example's scripts need sh")
def test_run_runs_the_template_once_and_says_so() -> None:
    result = CliRunner().invoke(cli, ["run", "--quiet", str(NIGHTLY)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "orders=42 refunds=3"
    assert "running the taskJobTemplate of CronTaskJob nightly-report once, now" in result.stderr
    assert "nightly-report-local" in result.stderr


def test_run_of_an_invalid_crontaskjob_lists_its_problems(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    result = CliRunner().invoke(cli, ["run", str(path)])
    assert result.exit_code == 1
    assert "the CronTaskJob is invalid" in result.output
    assert "spec.schedule: bad hour in '0 25 * * *'" in result.output


def test_get_view_shows_the_schedule_and_the_runs_newest_first() -> None:
    from rich.console import Console

    from taskjobs.cli.cron import cron_name, cron_view

    assert (cron_name("ctj/nightly"), cron_name("crontaskjob/nightly"), cron_name("nightly")) == (
        "nightly", "nightly", None)
    cron = {"metadata": {"name": "nightly", "namespace": "team"},
            "spec": {"schedule": "0 2 * * *", "timeZone": "Europe/Berlin", "concurrencyPolicy": "Forbid"},
            "status": {"lastScheduleTime": "2026-11-29T01:00:00Z", "nextScheduleTime": "2026-11-30T01:00:00Z"}}

    def run(minutes: int, when: str, phase: str) -> dict[str, object]:
        return {"metadata": {"name": f"nightly-{minutes}", "annotations": {"taskjob.dev/scheduled-time": when}},
                "status": {"phase": phase, "progress": "3/3"}}

    console = Console(width=120, record=True)
    console.print(cron_view(cron, [run(1, "2026-11-28T01:00:00Z", "Succeeded"),
                                   run(2, "2026-11-29T01:00:00Z", "Running")]))
    text = console.export_text()
    assert "Schedule:      0 2 * * * (Europe/Berlin)" in text and "Next:          2026-11-30T01:00:00Z" in text
    rows = [line.split() for line in text.splitlines() if line.startswith("nightly-")]
    assert rows == [["nightly-2", "2026-11-29T01:00:00Z", "Running", "3/3"],
                    ["nightly-1", "2026-11-28T01:00:00Z", "Succeeded", "3/3"]]
