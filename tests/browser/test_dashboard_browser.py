"""The dashboard in headless Chromium, against the testenv with the operator running.

One diamond TaskJob plays every case: `left` runs for a while (running, then finishing while the page
is open), `right` fails its first attempt with exit code 1 and retries after a 40 s backoff (exit code,
reason and countdown), `root` writes an output. Screenshots go to SCREENSHOTS (docs/dashboard.md).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from dashboard_harness import DashboardProcess
from operator_harness import ROOT, OperatorProcess, TaskJobs, poll

pytestmark = [pytest.mark.cluster, pytest.mark.browser]
PREFIX = "kwok.taskjob.dev/"


def diamond_manifest() -> dict[str, Any]:
    """examples/diamond.yaml with kwok's scripted outcomes per task."""
    manifest: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "diamond.yaml").read_text())
    manifest["spec"]["defaults"]["retry"] = {"limit": 2, "backoff": {"delaySeconds": 2}}
    outcomes = {
        "root": {"duration": "2s", "message": "root"},
        "left": {"duration": "12s", "message": "root/left"},
        "right": {"exit-code": "1", "message": "connection refused", "exit-code-attempt-2": "0", "duration": "1s"},
    }
    for task in manifest["spec"]["tasks"]:
        notes = outcomes.get(task["name"])
        if notes:
            task["podTemplate"] = {"metadata": {"annotations": {PREFIX + k: v for k, v in notes.items()}}}
        if task["name"] == "right":  # still waiting to retry when the test looks, even on a slow machine
            task["retry"] = {"backoff": {"delaySeconds": 40}}
    return manifest


def graph_phases(browser: Any) -> dict[str, str]:
    """Return {task: phase} as the graph on the page draws it."""
    nodes = browser.execute_script(
        "return graphView ? graphView.cy.nodes().map(n => [n.data('task'), n.data('phase')]) : []"
    )
    return {task: phase for task, phase in nodes if task}


def api_phases(taskjobs: TaskJobs, name: str) -> dict[str, str]:
    tasks = taskjobs.status(name).get("tasks") or {}
    return {t: tasks.get(t, {}).get("phase", "Waiting") for t in ("root", "left", "right", "sink")}


def text(browser: Any, css: str) -> str:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        return str(browser.find_element("css selector", css).text)
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


def test_the_dashboard_follows_a_diamond_live(
    operator: OperatorProcess,
    dashboard: DashboardProcess,
    taskjobs: TaskJobs,
    namespace: str,
    browser: Any,
    screenshot: Any,
) -> None:
    taskjobs.create(diamond_manifest())

    # The overview lists the running TaskJob.
    browser.get(dashboard.url + "/")
    row = f'tr[data-taskjob="{namespace}/diamond"]'
    poll(lambda: "Running" in text(browser, row), 30, "the overview to list diamond as Running")
    poll(lambda: "live" in text(browser, "#live"), 10, "the live indicator")

    # Its page draws the diamond's 4 nodes with the phases the API server holds.
    browser.find_element("css selector", f"{row} a").click()
    poll(lambda: len(graph_phases(browser)) == 4, 15, "the graph's 4 nodes")
    poll(lambda: graph_phases(browser) == api_phases(taskjobs, "diamond"), 10, "the graph to show the API's phases")
    browser.execute_script("window.notReloaded = true")

    # A task finishing updates the page, without a reload, within 2 s of the API server saying so.
    poll(lambda: graph_phases(browser).get("left") == "Running", 30, "left running on the page")
    screenshot("dashboard-taskjob-running")
    poll(lambda: api_phases(taskjobs, "diamond")["left"] == "Succeeded", 60, "left to succeed", interval=0.05)
    finished = time.monotonic()
    poll(lambda: graph_phases(browser).get("left") == "Succeeded", 2, "the page to show left Succeeded", interval=0.05)
    assert time.monotonic() - finished <= 2
    assert browser.execute_script("return window.notReloaded === true"), "the page was reloaded"

    # A failing task shows its exit code, reason and retry countdown.
    browser.find_element("css selector", '#tabs button[data-tab="tasks"]').click()
    poll(lambda: browser.find_elements("css selector", 'button[data-task="right"]'), 5, "the task list")
    browser.find_element("css selector", 'button[data-task="right"]').click()
    attempt = '.attempt[data-attempt="1"]'
    poll(lambda: "Exit code\n1" in text(browser, attempt), 30, "attempt 1 of right with exit code 1")
    assert "Reason\nError" in text(browser, attempt)
    assert "connection refused" in text(browser, attempt)
    assert api_phases(taskjobs, "diamond")["right"] == "Retrying", "right waits 40 s for its second attempt"
    poll(lambda: "retry in" in text(browser, "#ptitle"), 5, "the retry countdown in the task panel")
    first = text(browser, "#ptitle .countdown")
    poll(lambda: text(browser, "#ptitle .countdown") not in ("", first), 3, "the countdown to tick")
    browser.find_element("css selector", '#tabs button[data-tab="graph"]').click()
    screenshot("dashboard-taskjob-graph")

    # A task's panel shows its output and what the API answers for its log (kwok keeps no logs).
    browser.find_element("css selector", '#tabs button[data-tab="tasks"]').click()
    browser.find_element("css selector", 'button[data-task="root"]').click()
    poll(lambda: "Output\nroot" in text(browser, '.attempt[data-attempt="1"]'), 10, "root's output")
    poll(lambda: text(browser, "#loginfo").startswith(("(no log:", "(end of log)")), 10, "the log panel's answer")

    # Everything succeeds in the end; the overview and the timeline say so.
    taskjobs.wait_phase("diamond", "Succeeded", timeout=90)
    poll(lambda: set(graph_phases(browser).values()) == {"Succeeded"}, 5, "every node Succeeded")
    browser.find_element("css selector", '#tabs button[data-tab="timeline"]').click()
    poll(lambda: len(browser.find_elements("css selector", ".gantt .bar")) >= 5, 5, "5 attempts in the timeline")
    screenshot("dashboard-timeline")
    browser.get(dashboard.url + "/")
    poll(lambda: "Succeeded" in text(browser, row), 10, "the overview to show diamond Succeeded")
    assert "4/4" in text(browser, row)
    failures = text(browser, "#failures")
    assert "diamond / right" in failures and "Error" in failures, "the retried failure stays in the last failures"
    screenshot("dashboard-overview")


def test_actions_when_allowed_suspend_a_taskjob_after_a_typed_confirmation(
    operator: OperatorProcess,
    taskjobs: TaskJobs,
    namespace: str,
    kubeconfig: str,
    browser: Any,
    screenshot: Any,
    tmp_path: Path,
) -> None:
    manifest = diamond_manifest()
    manifest["spec"]["tasks"][0]["podTemplate"]["metadata"]["annotations"][PREFIX + "duration"] = "60s"
    taskjobs.create(manifest)
    served = DashboardProcess(kubeconfig, [namespace], tmp_path / "actions.log", ("--allow-actions",))
    try:
        poll(served.ready, 60, "the dashboard's /readyz")
        browser.get(f"{served.url}/taskjobs/{namespace}/diamond")
        poll(lambda: browser.find_elements("css selector", 'button.act[data-action="suspend"]'), 30, "the actions")
        browser.find_element("css selector", 'button.act[data-action="suspend"]').click()
        go = browser.find_element("css selector", "#confirmgo")
        assert not go.is_enabled(), "no action before the name is typed"
        browser.find_element("css selector", "#confirmname").send_keys("diamond")
        assert go.is_enabled()
        screenshot("dashboard-action-confirm")
        go.click()
        poll(lambda: "suspend requested" in text(browser, "#confirm"), 10, "the action's answer")
        assert taskjobs.get("diamond")["spec"].get("suspend") is True
        poll(lambda: "Suspended" in text(browser, "#summary"), 30, "the page to show the TaskJob Suspended")
    finally:
        served.stop()
    assert "Traceback" not in served.logs()
