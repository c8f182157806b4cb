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
import json
import logging
from collections.abc import Hashable
from typing import Any

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from taskjobs.shell import kube as kube_module
from taskjobs.shell.kube import Kube
from taskjobs.shell.store import Store
from taskjobs.shell.workqueue import RetryLater, WorkQueue

OLD, NEW = "uid-old", "uid-new"


def api_error(status: int, headers: dict[str, str] | None = None) -> ApiException:
    e = ApiException(status=status, reason="injected")
    e.headers = headers or {}
    return e


class Flaky:
    """A client method that fails with the given errors, then answers."""

    __name__ = "flaky"

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


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
    fn = Flaky(api_error(429, {"Retry-After": "3"}), api_error(500), urllib3.exceptions.ProtocolError("reset"))
    assert asyncio.run(Kube(qps=0)._call(fn)) == "ok"
    assert fn.calls == 4
    assert no_waiting[0] == 3.0  # the server's Retry-After, longer than our first backoff step


def test_retries_end_and_the_error_goes_to_the_caller(no_waiting: list[float]) -> None:
    fn = Flaky(*[api_error(503)] * 20)
    with pytest.raises(ApiException):
        asyncio.run(Kube(qps=0)._call(fn))
    assert fn.calls == len(kube_module.RETRY_DELAYS) + 1


def test_a_request_that_may_not_be_repeated_is_sent_once(no_waiting: list[float]) -> None:
    fn = Flaky(api_error(500))
    with pytest.raises(ApiException):
        asyncio.run(Kube(qps=0)._call(fn, retry=None))
    assert fn.calls == 1


def test_client_errors_are_not_retried(no_waiting: list[float]) -> None:
    fn = Flaky(api_error(422))
    with pytest.raises(ApiException):
        asyncio.run(Kube(qps=0)._call(fn))
    assert fn.calls == 1


def test_the_lean_session_retries_as_the_client_does_and_honours_retry_after(no_waiting: list[float]) -> None:
    """Job creates and status patches go through aiohttp (Kube._request): same retries, same errors."""
    from aiohttp import web

    answers = [(429, {"Retry-After": "3"}), (500, {}), (201, {}), (422, {})]
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.method)
        status, headers = answers.pop(0)
        body = {"metadata": {"name": "j", "resourceVersion": "9"}} if status == 201 else {"kind": "Status"}
        return web.json_response(body, status=status, headers=headers)

    async def scenario() -> tuple[Any, int | None]:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        conf = client.Configuration()
        conf.host = f"http://127.0.0.1:{port}"
        kube = Kube(client.ApiClient(conf), qps=0)
        try:
            created = await kube._request("create_namespaced_job", "POST", "/apis/batch/v1/namespaces/ns/jobs", {})
            with pytest.raises(ApiException) as refused:
                await kube._request("create_namespaced_job", "POST", "/apis/batch/v1/namespaces/ns/jobs", {})
            return json.loads(created), refused.value.status
        finally:
            await kube.http.close()
            await runner.cleanup()

    created, refused = asyncio.run(scenario())
    assert created["metadata"]["name"] == "j"
    assert refused == 422  # a client error is not retried
    assert seen == ["POST"] * 4
    assert no_waiting[0] == 3.0  # the server's Retry-After, longer than our first backoff step


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
    kube = Kube(qps=0)

    async def request(operation: str, *args: Any, **kwargs: Any) -> bytes:
        assert operation == "create_namespaced_job"
        raise api_error(409)

    async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        if existing is None:
            raise api_error(404)

        class Resp:
            data = json.dumps(existing)

        return Resp()

    kube._call = call  # type: ignore[method-assign]
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
    conf = client.Configuration()
    conf.host = f"http://127.0.0.1:{listener.getsockname()[1]}"
    conf.retries = False
    kube = Kube(client.ApiClient(conf), qps=0)
    try:
        with pytest.raises(urllib3.exceptions.HTTPError):
            asyncio.run(asyncio.wait_for(kube.list_with_version("jobs", "ns"), timeout=30))
    finally:
        stop.set()
        acceptor.join(5)
        for conn in held:
            conn.close()
        listener.close()
    assert len(no_waiting) == 1  # timed out, retried once, timed out again, and gave up


def test_the_lean_session_sends_the_kubeconfigs_token_and_asks_the_refresh_hook() -> None:
    """A token from a kubeconfig (kept as BearerToken) or in-cluster (refreshed) reaches each request."""
    from taskjobs.shell.apisession import ApiSession

    conf = client.Configuration()
    conf.host = "https://127.0.0.1:6443"
    conf.api_key = {"BearerToken": "Bearer from-kubeconfig"}
    assert ApiSession(conf).headers()["authorization"] == "Bearer from-kubeconfig"

    rotated = iter(["Bearer first", "Bearer second"])

    def refresh(configuration: client.Configuration) -> None:
        configuration.api_key = {"authorization": next(rotated)}

    conf.refresh_api_key_hook = refresh
    session = ApiSession(conf)
    assert [session.headers()["authorization"] for _ in range(2)] == ["Bearer first", "Bearer second"]
