"""The shell's defences found necessary by the reliability suite, checked without a cluster.

- Kube retries what a lost request or an overloaded API server answers (429 honouring Retry-After, 5xx,
  a dropped connection), and gives up after a bounded time; an Event is sent once.
- A 409 on a Job create is believed only when the Job is there and belongs to this TaskJob.
- The store ignores Jobs of an earlier TaskJob of the same name (and pods of an earlier Job of the same name).
- The store drops what a fresh LIST no longer shows (kopf's re-list after 410 Gone reports no deletions).
- The work queue starts its workers once, and logs RetryLater without a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import Any

import pytest
from aiohttp import web

from taskjobs.shell import kube as kube_module
from taskjobs.shell.apisession import ApiError, ApiSession
from taskjobs.shell.connection import Connection
from taskjobs.shell.kube import Kube
from taskjobs.shell.store import Store
from taskjobs.shell.workqueue import RetryLater, WorkQueue

OLD, NEW = "uid-old", "uid-new"


def api_error(status: int) -> ApiError:
    return ApiError(status, b'{"kind": "Status", "message": "injected"}')


@contextlib.asynccontextmanager
async def fake_api(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> AsyncIterator[Kube]:
    """Yield a Kube whose session talks to `handler` on a loopback port (plain HTTP)."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    kube = Kube(ApiSession(Connection(server=f"http://127.0.0.1:{port}")), qps=0)
    try:
        yield kube
    finally:
        await kube.http.close()
        await runner.cleanup()


def scripted(*answers: int | tuple[int, dict[str, str]] | str) -> tuple[Callable[..., Any], list[str]]:
    """Return a handler answering each request with the next status (or "drop": close the connection)."""
    queue, seen = list(answers), []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request.method)
        answer = queue.pop(0) if len(queue) > 1 else queue[0]  # the last answer repeats
        if answer == "drop":
            assert request.transport is not None
            request.transport.close()  # a reset connection: the request may or may not have arrived
            return web.Response()
        status, headers = answer if isinstance(answer, tuple) else (int(answer), {})
        body = {"metadata": {"name": "j", "resourceVersion": "9"}} if status < 300 else {"kind": "Status"}
        return web.json_response(body, status=status, headers=headers)

    return handler, seen


@pytest.fixture
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the backoff sleeps of Kube instead of sleeping them."""
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(kube_module.asyncio, "sleep", sleep)
    return waits


def test_transient_errors_are_retried_and_retry_after_is_honoured(no_waiting: list[float]) -> None:
    handler, seen = scripted((429, {"Retry-After": "3"}), 500, "drop", 201)

    async def scenario() -> bytes:
        async with fake_api(handler) as kube:
            return await kube._request("create_namespaced_job", "POST", "/apis/batch/v1/namespaces/ns/jobs", {})

    assert json.loads(asyncio.run(scenario()))["metadata"]["name"] == "j"
    assert seen == ["POST"] * 4
    assert no_waiting[0] == 3.0  # the server's Retry-After, longer than our first backoff step


def test_retries_end_and_the_error_goes_to_the_caller(no_waiting: list[float]) -> None:
    handler, seen = scripted(503)

    async def scenario() -> None:
        async with fake_api(handler) as kube:
            await kube.list_taskjobs("ns")

    with pytest.raises(ApiError) as failed:
        asyncio.run(scenario())
    assert failed.value.status == 503
    assert len(seen) == len(kube_module.RETRY_DELAYS) + 1


def test_a_request_that_may_not_be_repeated_is_sent_once(no_waiting: list[float]) -> None:
    handler, seen = scripted(500)

    async def scenario() -> None:
        async with fake_api(handler) as kube:
            await kube.event(taskjob(NEW), "Normal", "TaskStarted", "an Event is sent once")

    with pytest.raises(ApiError):
        asyncio.run(scenario())
    assert seen == ["POST"]


def test_client_errors_are_not_retried_and_carry_the_servers_message(no_waiting: list[float]) -> None:
    async def handler(request: web.Request) -> web.Response:
        seen.append(request.method)
        return web.json_response({"kind": "Status", "message": "spec.tasks: Required value"}, status=422)

    seen: list[str] = []

    async def scenario() -> None:
        async with fake_api(handler) as kube:
            await kube.create_taskjob("ns", {"metadata": {"name": "tj"}})

    with pytest.raises(ApiError) as refused:
        asyncio.run(scenario())
    assert (refused.value.status, refused.value.reason) == (422, "spec.tasks: Required value")
    assert seen == ["POST"]


def job_manifest(name: str, owner: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"job-{owner}",
            "resourceVersion": "5",
            "labels": {"taskjob.dev/taskjob": "tj", "taskjob.dev/task": "a", "taskjob.dev/attempt": "1"},
            "ownerReferences": [{"kind": "TaskJob", "name": "tj", "uid": owner, "controller": True}],
        },
        "status": {"conditions": [{"type": "Complete", "status": "True"}]},
    }


def conflicting_kube(existing: dict[str, Any] | None) -> Kube:
    kube = Kube(ApiSession(Connection(server="http://127.0.0.1:9")), qps=0)  # never called

    async def request(operation: str, method: str, *args: Any, **kwargs: Any) -> bytes:
        if method == "POST":
            assert operation == "create_namespaced_job"
            raise api_error(409)
        if existing is None:
            raise api_error(404)
        return json.dumps(existing).encode()

    kube._request = request  # type: ignore[method-assign]
    return kube


def test_a_conflicting_create_is_done_when_our_job_is_there() -> None:
    kube = conflicting_kube(job_manifest("tj-a-1", NEW))
    assert asyncio.run(kube.create_job("ns", job_manifest("tj-a-1", NEW))) is None


def test_a_conflicting_create_waits_while_an_old_taskjobs_job_is_in_the_way() -> None:
    kube = conflicting_kube(job_manifest("tj-a-1", OLD))
    with pytest.raises(RetryLater, match="earlier TaskJob of the same name"):
        asyncio.run(kube.create_job("ns", job_manifest("tj-a-1", NEW)))


def test_a_conflicting_create_with_no_job_there_is_tried_again() -> None:
    kube = conflicting_kube(None)
    with pytest.raises(RetryLater, match="no such Job"):
        asyncio.run(kube.create_job("ns", job_manifest("tj-a-1", NEW)))


def taskjob(uid: str, rv: int = 1) -> dict[str, Any]:
    return {"metadata": {"name": "tj", "namespace": "ns", "uid": uid, "resourceVersion": str(rv)}}


def pod(name: str, job_uid: str, rv: int = 5) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "resourceVersion": str(rv),
            "labels": {"taskjob.dev/taskjob": "tj", "batch.kubernetes.io/job-name": "tj-a-1"},
            "ownerReferences": [{"kind": "Job", "name": "tj-a-1", "uid": job_uid, "controller": True}],
        },
        "status": {
            "phase": "Running",
            "containerStatuses": [{"name": "task", "state": {"running": {"startedAt": "2026-11-23T12:00:00Z"}}}],
        },
    }


def test_jobs_of_an_earlier_taskjob_of_the_same_name_are_not_facts() -> None:
    store = Store()
    store.on_taskjob(None, taskjob(OLD))
    store.on_job(None, job_manifest("tj-a-1", OLD))
    store.on_taskjob("DELETED", taskjob(OLD))
    key = store.on_taskjob("ADDED", taskjob(NEW))
    store.on_job("MODIFIED", job_manifest("tj-a-1", OLD))  # the old Job, being garbage-collected, still reports
    assert store.facts(key) == []
    store.on_job("MODIFIED", job_manifest("tj-a-1", NEW))  # now ours, of the same name
    assert [(f.task, f.phase) for f in store.facts(key)] == [("a", "Succeeded")]


def test_pods_of_an_earlier_job_of_the_same_name_are_ignored() -> None:
    store = Store()
    key = store.on_taskjob(None, taskjob(NEW))
    running = job_manifest("tj-a-1", NEW)
    running["status"] = {}
    store.on_job(None, running)
    store.on_pod(None, pod("tj-a-1-old", "job-uid-old"))
    assert [f.phase for f in store.facts(key)] == ["Pending"]  # the old pod's Running does not speak for ours
    store.on_pod(None, pod("tj-a-1-new", f"job-{NEW}"))
    assert [f.phase for f in store.facts(key)] == ["Running"]  # ours has


def test_prune_drops_what_a_later_list_no_longer_shows() -> None:
    store = Store()
    key = store.on_taskjob(None, taskjob(NEW))
    store.on_job(None, job_manifest("tj-a-1", NEW))  # resourceVersion 5
    assert store.prune("jobs", "ns", [], list_rv=4) == set()  # the LIST predates the Job: keep it
    assert store.facts(key)
    assert store.prune("jobs", "ns", [], list_rv=9) == {key}  # deleted while the watch was away
    assert store.facts(key) == []


def test_prune_forgets_a_taskjob_deleted_unseen() -> None:
    store = Store()
    key = store.on_taskjob(None, taskjob(NEW, rv=3))
    assert store.prune("taskjobs", "ns", [taskjob(NEW, rv=3)], list_rv=9) == set()
    assert store.prune("taskjobs", "other-namespace", [], list_rv=9) == set()
    assert store.prune("taskjobs", None, [], list_rv=9) == {key}
    assert key not in store.taskjobs


def test_workers_start_once_even_if_startup_runs_again() -> None:
    async def scenario() -> int:
        async def reconcile(key: Hashable) -> float | None:
            return None

        q = WorkQueue(reconcile, workers=3)
        q.start()
        q.start()  # kopf retries a failed startup handler, which calls start() again
        count = len([t for t in asyncio.all_tasks() if t.get_name().startswith("taskjob-worker")])
        await q.stop()
        return count

    assert asyncio.run(scenario()) == 3


def test_retry_later_is_logged_as_a_warning_without_traceback(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        seen = asyncio.Event()

        async def reconcile(key: Hashable) -> float | None:
            seen.set()
            raise RetryLater("Job ns/tj-a-1 still exists from an earlier TaskJob")

        q = WorkQueue(reconcile, error_backoff=60)
        q.start()
        q.add("k")
        await seen.wait()
        await asyncio.sleep(0.01)
        await q.stop()

    with caplog.at_level(logging.WARNING, logger="taskjob.workqueue"):
        asyncio.run(scenario())
    [record] = caplog.records
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert "still exists from an earlier TaskJob" in record.getMessage()


def test_a_request_that_never_answers_is_abandoned(monkeypatch: pytest.MonkeyPatch, no_waiting: list[float]) -> None:
    """A silent connection must not hold a worker (and its TaskJob) forever: every request has a timeout."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:  # accept connections, read nothing, answer nothing
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    monkeypatch.setattr(kube_module, "REQUEST_TIMEOUT", (1.0, 1.0))
    monkeypatch.setattr(kube_module, "RETRY_DELAYS", (0.0,))
    kube = Kube(ApiSession(Connection(server=f"http://127.0.0.1:{listener.getsockname()[1]}")), qps=0)

    async def scenario() -> None:
        try:
            await asyncio.wait_for(kube.list_with_version("jobs", "ns"), timeout=30)
        finally:
            await kube.http.close()

    try:
        with pytest.raises(TimeoutError):  # aiohttp's read timeout, not wait_for's (it would say 30 s)
            asyncio.run(scenario())
    finally:
        stop.set()
        acceptor.join(5)
        for conn in held:
            conn.close()
        listener.close()
    assert len(no_waiting) == 1  # timed out, retried once, timed out again, and gave up
