"""The dashboard's HTTP API: the JSON the pages get, the pushed snapshots, read-only routes, shipped assets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from test_dashboard_model import NOW, diamond, pod

from taskjobs.dashboard.model import Model
from taskjobs.dashboard.server import Dashboard, Subscriber, make_app, sources_for
from taskjobs.dashboard.watch import Source


def run(test: Callable[[TestClient[Any, Any], Dashboard], Awaitable[None]]) -> None:
    async def main() -> None:
        dashboard = Dashboard(Model(), clock=lambda: NOW, min_interval=0.01)
        dashboard.expected = {"taskjobs/*"}
        async with TestClient(TestServer(make_app(dashboard))) as client:
            await test(client, dashboard)

    asyncio.run(main())


async def events(resp: Any) -> AsyncIterator[dict[str, Any]]:
    """Yield each `data:` message of a server-sent event stream."""
    while True:
        line = await asyncio.wait_for(resp.content.readline(), 5)
        if line.startswith(b"data: "):
            yield json.loads(line[6:])


def test_view_json_for_the_overview_and_a_taskjob() -> None:
    async def check(client: TestClient[Any, Any], dashboard: Dashboard) -> None:
        dashboard.replace("taskjobs", None, [diamond()])
        resp = await client.get("/api/view?view=overview")
        assert resp.status == 200
        data = await resp.json()
        assert [r["name"] for r in data["taskjobs"]] == ["diamond"]
        assert data["ready"] is True and data["errors"] == []
        resp = await client.get("/api/view", params={"view": "taskjob", "namespace": "team-a", "name": "diamond"})
        assert [t["name"] for t in (await resp.json())["tasks"]] == ["root", "left", "right", "sink"]
        params = {"view": "taskjob", "namespace": "team-a", "name": "diamond", "task": "right"}
        panel = (await (await client.get("/api/view", params=params)).json())["panel"]
        assert panel["task"]["name"] == "right", "the open task's panel rides on the page's one stream"
        resp = await client.get("/api/view", params={"view": "taskjob", "namespace": "team-a", "name": "gone"})
        assert resp.status == 404
        resp = await client.get("/api/view", params={"view": "taskjob"})
        assert resp.status == 400 and "namespace and name" in await resp.text()
        resp = await client.get("/api/manifest/team-a/diamond")
        assert "kind: TaskJob" in await resp.text()

    run(check)


def test_watch_problems_and_readiness_reach_the_pages() -> None:
    async def check(client: TestClient[Any, Any], dashboard: Dashboard) -> None:
        assert (await client.get("/readyz")).status == 503
        assert (await (await client.get("/api/view?view=overview")).json())["errors"] == []
        dashboard.watch_error(Source("taskjobs", None), "not allowed to watch taskjobs in all namespaces")
        data = await (await client.get("/api/view?view=overview")).json()
        assert data["ready"] is False and data["errors"] == ["not allowed to watch taskjobs in all namespaces"]
        dashboard.watch_error(Source("taskjobs", None), None)
        dashboard.replace("taskjobs", None, [])
        assert (await client.get("/readyz")).status == 200

    run(check)


def test_the_stream_pushes_a_new_snapshot_when_a_watch_event_changes_the_page() -> None:
    async def check(client: TestClient[Any, Any], dashboard: Dashboard) -> None:
        dashboard.replace("taskjobs", None, [diamond()])
        resp = await client.get("/api/stream", params={"view": "taskjob", "namespace": "team-a", "name": "diamond"})
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        stream = events(resp)
        first = await anext(stream)
        assert {t["name"]: t["phase"] for t in first["tasks"]}["left"] == "Running"
        done = diamond()
        done["status"]["tasks"]["left"] = {"phase": "Succeeded", "attempts": 1}
        dashboard.event("taskjobs", "MODIFIED", done)
        second = await anext(stream)
        assert {t["name"]: t["phase"] for t in second["tasks"]}["left"] == "Succeeded"
        resp.close()

    run(check)


def test_a_page_is_woken_by_changes_to_its_taskjob_only() -> None:
    async def check(client: TestClient[Any, Any], dashboard: Dashboard) -> None:
        dashboard.replace("taskjobs", None, [diamond(), diamond(ns="other")])
        mine, overview = Subscriber("taskjob", ("team-a", "diamond")), Subscriber("overview")
        dashboard.subscribers |= {mine, overview}
        dashboard._notify()  # what the event loop runs after a burst of changes
        mine.dirty.clear()
        overview.dirty.clear()
        dashboard.event("pods", "ADDED", pod("left", 1, ns="other"))
        dashboard._notify()
        assert overview.dirty.is_set() and not mine.dirty.is_set()
        dashboard.event("pods", "ADDED", pod("left", 1))
        dashboard._notify()
        assert mine.dirty.is_set()

    run(check)


def test_read_only_and_strict_headers() -> None:
    async def check(client: TestClient[Any, Any], dashboard: Dashboard) -> None:
        assert (await client.post("/api/view?view=overview")).status == 405
        assert (await client.delete("/api/manifest/team-a/diamond")).status == 405
        resp = await client.get("/")
        assert resp.status == 200 and "<title>taskjob dashboard</title>" in await resp.text()
        assert resp.headers["Content-Security-Policy"].startswith("default-src 'self'")
        page = await client.get("/taskjobs/team-a/diamond")
        assert page.status == 200

    run(check)


def test_every_script_and_style_the_page_names_is_served_from_the_package() -> None:
    async def check(client: TestClient[Any, Any], dashboard: Dashboard) -> None:
        html = await (await client.get("/")).text()
        import re

        script = await (await client.get("/static/app.js")).text()
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html) + re.findall(r'"(/static/vendor/[^"]+)"', script)
        assert len(assets) == 4
        for path in assets:
            resp = await client.get(path)
            assert resp.status == 200, path
            assert len(await resp.read()) > 1000, path
        assert "http" not in re.sub(r"https?://(127\.0\.0\.1|localhost)", "", html), "nothing from another host"

    run(check)


def test_sources_are_every_kind_in_each_namespace_or_all() -> None:
    assert [s.kind for s in sources_for([])] == ["taskjobs", "jobs", "pods", "events"]
    assert {s.namespace for s in sources_for([])} == {None}
    assert {s.namespace for s in sources_for(["a", "b"])} == {"a", "b"} and len(sources_for(["a", "b"])) == 8
