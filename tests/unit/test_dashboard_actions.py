"""Actions from the dashboard: what each one sends, and that the server takes none unless allowed and confirmed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from test_dashboard_model import NOW, diamond

from taskjobs.dashboard.actions import ActionError, ActionRequest, ActionRunner, plan_action
from taskjobs.dashboard.model import Model
from taskjobs.dashboard.server import Dashboard, make_app


def finished(phase: str, **tasks: str) -> dict[str, Any]:
    tj = diamond({t: {"phase": p} for t, p in tasks.items()}, phase=phase)
    return tj


def test_retry_sets_a_fresh_retry_annotation_when_a_task_failed_or_was_skipped() -> None:
    tj = finished("Failed", root="Succeeded", left="Failed", right="Succeeded", sink="Skipped")
    first, second = plan_action("retry", tj, NOW), plan_action("retry", tj, NOW)
    annotations = first.body["metadata"]["annotations"]
    assert first.verb == "patch" and annotations["taskjob.dev/retry"].startswith("20261129T120000Z-")
    assert annotations["taskjob.dev/retry-tasks"] is None, "every failed and skipped task"
    assert annotations["taskjob.dev/retry"] != second.body["metadata"]["annotations"]["taskjob.dev/retry"]
    assert first.summary == "retry requested: left, sink"
    with pytest.raises(ActionError, match="nothing to retry"):
        plan_action("retry", finished("Succeeded", root="Succeeded"), NOW)


def test_suspend_resume_and_delete() -> None:
    running = diamond()
    assert plan_action("suspend", running, NOW).body == {"spec": {"suspend": True}}
    with pytest.raises(ActionError, match="already running"):
        plan_action("resume", running, NOW)
    running["spec"]["suspend"] = True
    assert plan_action("resume", running, NOW).body == {"spec": {"suspend": False}}
    with pytest.raises(ActionError, match="has finished"):
        plan_action("suspend", finished("Succeeded"), NOW)
    assert plan_action("delete", running, NOW) == ActionRequest(
        "delete", {"propagationPolicy": "Background"}, "deleted"
    )
    with pytest.raises(ActionError, match="unknown action"):
        plan_action("scale", running, NOW)
    with pytest.raises(ActionError, match="no such TaskJob"):
        plan_action("delete", None, NOW)


class Recorder(ActionRunner):
    def __init__(self) -> None:
        super().__init__(None)
        self.sent: list[tuple[str, str, ActionRequest]] = []

    async def run(self, namespace: str, name: str, request: ActionRequest) -> None:
        self.sent.append((namespace, name, request))


def serve(actions: ActionRunner | None, check: Any) -> None:
    async def main() -> None:
        dashboard = Dashboard(Model(), clock=lambda: NOW, actions=actions)
        dashboard.replace("taskjobs", None, [diamond()])
        async with TestClient(TestServer(make_app(dashboard))) as client:
            await check(client)

    asyncio.run(main())


URL = "/api/actions/team-a/diamond/suspend"


def test_read_only_by_default() -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        resp = await client.post(URL, headers={"X-Taskjob-Confirm": "diamond"})
        assert resp.status == 405
        assert (await (await client.get("/api/view?view=overview")).json())["actions"] is False

    serve(None, check)


def test_an_allowed_action_needs_the_typed_name_and_the_dashboards_own_origin() -> None:
    recorder = Recorder()

    async def check(client: TestClient[Any, Any]) -> None:
        assert (await (await client.get("/api/view?view=overview")).json())["actions"] is True
        assert (await client.post(URL)).status == 403
        assert (await client.post(URL, headers={"X-Taskjob-Confirm": "other"})).status == 403
        evil = {"X-Taskjob-Confirm": "diamond", "Origin": "http://elsewhere.example"}
        assert (await client.post(URL, headers=evil)).status == 403
        assert recorder.sent == []
        resp = await client.post(URL, headers={"X-Taskjob-Confirm": "diamond"})
        assert resp.status == 200 and (await resp.json())["message"] == "TaskJob team-a/diamond: suspend requested"
        assert recorder.sent == [
            ("team-a", "diamond", ActionRequest("patch", {"spec": {"suspend": True}}, "suspend requested"))
        ]
        resp = await client.post("/api/actions/team-a/diamond/resume", headers={"X-Taskjob-Confirm": "diamond"})
        assert resp.status == 409 and "already running" in await resp.text()
        assert (await client.delete("/api/manifest/team-a/diamond")).status == 405, "only actions are writes"

    serve(recorder, check)
