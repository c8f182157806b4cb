"""The dashboard's pages in headless Chromium over a model built in memory (no cluster): the overview's
filters, and a 10,000-task TaskJob drawn as groups whose tasks can be listed and opened."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from dashboard_harness import free_port, poll

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_dashboard_model import diamond, job, pod  # noqa: E402

from taskjobs.dashboard.logs import LogReader  # noqa: E402
from taskjobs.dashboard.model import Model  # noqa: E402
from taskjobs.dashboard.server import Dashboard, make_app  # noqa: E402

pytestmark = pytest.mark.browser


def big(name: str = "big", layers: int = 10, width: int = 1000) -> dict[str, Any]:
    tj = diamond({}, ns="team-big")
    tj["metadata"]["name"] = name
    tasks = [
        {"name": f"t{layer}-{i}", **({"dependsOn": [f"t{layer - 1}-{i}"]} if layer else {})}
        for layer in range(layers)
        for i in range(width)
    ]
    tj["spec"]["tasks"] = tasks
    tj["status"] = {
        "phase": "Running",
        "total": len(tasks),
        "tasks": {
            t["name"]: {"phase": "Succeeded" if int(t["name"].split("-")[1]) % 3 else "Running", "attempts": 1}
            for t in tasks[:width]
        },
    }
    return tj


class LogLines:
    """What the API server's pods/log would stream: two lines naming the pod and how it was asked."""

    def __init__(self, pod: str, follow: bool) -> None:
        self.body = f"{pod}: starting\n{pod}: {'following' if follow else 'last lines'}\n".encode()

    def stream(self, amt: int, decode_content: bool) -> Iterator[bytes]:
        yield self.body

    def close(self) -> None:
        pass


@pytest.fixture
def served() -> Iterator[str]:
    """A dashboard on a free port serving three small TaskJobs and one of 10,000 tasks."""
    model = Model()
    a, b, c = diamond(ns="team-a"), diamond(ns="team-b", phase="Failed"), diamond(ns="team-b")
    b["metadata"]["name"], c["metadata"]["name"] = "nightly-etl", "reports"
    c["metadata"]["labels"] = {"team": "finance"}
    model.replace("taskjobs", None, [a, b, c, big()])
    model.replace("jobs", None, [job("root", 1, done_ago=120), job("left", 1)])
    model.replace("pods", None, [pod("root", 1, exit_code=0, output="root"), pod("left", 1)])
    model.replace("events", None, [])
    port, started = free_port(), threading.Event()
    running: dict[str, Any] = {}

    async def main() -> None:
        logs = LogReader(None, open_log=lambda ns, name, container, follow: LogLines(name, follow))
        runner = web.AppRunner(make_app(Dashboard(model), logs), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        running["loop"], running["stop"] = asyncio.get_running_loop(), asyncio.Event()
        started.set()
        await running["stop"].wait()
        await runner.cleanup()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    assert started.wait(30)
    yield f"http://127.0.0.1:{port}"
    running["loop"].call_soon_threadsafe(running["stop"].set)
    thread.join(10)


def rows(browser: Any) -> list[str]:
    return [r.get_attribute("data-taskjob") for r in browser.find_elements("css selector", "#list tbody tr")]


def test_overview_filters_by_name_namespace_phase_and_label_and_keeps_them_in_the_url(
    served: str, browser: Any
) -> None:
    browser.get(served + "/")
    poll(lambda: len(rows(browser)) == 4, 10, "4 TaskJobs listed")
    browser.find_element("css selector", "#q").send_keys("etl")
    poll(lambda: rows(browser) == ["team-b/nightly-etl"], 5, "search by name")
    assert browser.current_url.endswith("?q=etl")
    browser.find_element("css selector", "#q").clear()
    browser.execute_script(
        "const s = document.getElementById('ns'); s.value = 'team-b'; s.dispatchEvent(new Event('input'))"
    )
    poll(lambda: sorted(rows(browser)) == ["team-b/nightly-etl", "team-b/reports"], 5, "filter by namespace")
    browser.execute_script(
        "const s = document.getElementById('phase'); s.value = 'Failed'; s.dispatchEvent(new Event('input'))"
    )
    poll(lambda: rows(browser) == ["team-b/nightly-etl"], 5, "filter by phase")
    browser.get(served + "/?label=team%3Dfinance")
    poll(lambda: rows(browser) == ["team-b/reports"], 10, "filter by label from the URL")


def test_a_10000_task_taskjob_is_drawn_as_groups_whose_tasks_can_be_opened(
    served: str, browser: Any, screenshot: Any
) -> None:
    browser.get(served + "/taskjobs/team-big/big")
    ids = lambda: browser.execute_script(  # noqa: E731
        "return graphView ? graphView.cy.nodes().map(n => n.id()) : []"
    )
    poll(lambda: len(ids()) > 0, 20, "the graph")
    assert len(ids()) == 11, ids()  # layer 0: Succeeded and Running; layers 1-9: Waiting
    assert "group:0:Running" in ids() and "group:9:Waiting" in ids()
    browser.execute_script("graphView.cy.getElementById('group:0:Running').emit('tap')")
    poll(lambda: browser.find_elements("css selector", "#glist button"), 5, "the group's task list")
    assert "layer 0: 334 tasks" in browser.find_element("css selector", "#panel h2").text
    browser.find_element("css selector", "#gq").send_keys("t0-999")
    poll(lambda: [b.text for b in browser.find_elements("css selector", "#glist button")] == ["t0-999"], 5, "filter")
    browser.find_element("css selector", "#glist button").click()
    poll(lambda: "t0-999" in browser.find_element("css selector", "#ptitle").text, 5, "the task's panel")
    assert browser.current_url.endswith("?task=t0-999")


def test_a_tasks_panel_shows_its_log_the_last_lines_once_finished_followed_while_running(
    served: str, browser: Any
) -> None:
    browser.get(served + "/taskjobs/team-a/diamond?task=root")
    log = lambda: browser.find_element("css selector", "#log").text  # noqa: E731
    poll(lambda: "diamond-root-1-abcde: last lines" in log(), 10, "root's log (finished: the last lines)")
    assert "(end of log) · 2 lines" in browser.find_element("css selector", "#loginfo").text
    assert "Output\nroot" in browser.find_element("css selector", '.attempt[data-attempt="1"]').text
    browser.find_element("css selector", '#tabs button[data-tab="tasks"]').click()
    browser.find_element("css selector", 'button[data-task="left"]').click()
    poll(lambda: "diamond-left-1-abcde: following" in log(), 10, "left's log (running: followed)")
