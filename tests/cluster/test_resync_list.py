"""The resync's LIST against the real API server: paged, names only, and a TaskJob deleted unseen is forgotten."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from operator_harness import TaskJobs

from taskjobs.shell import kube as kube_module
from taskjobs.shell import metrics
from taskjobs.shell.kube import Kube
from taskjobs.shell.resync import resync_once
from taskjobs.shell.store import Store
from taskjobs.shell.workqueue import WorkQueue

pytestmark = pytest.mark.cluster

NAMES = [f"tj-{i}" for i in range(5)]


def manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "taskjob.dev/v1alpha1",
        "kind": "TaskJob",
        "metadata": {"name": name},
        "spec": {"suspend": True, "defaults": {"image": "busybox:1.36"}, "tasks": [{"name": "a"}]},
    }


def pages_asked() -> float:
    return float(metrics.API_REQUESTS.labels(operation="list_taskjobs_metadata")._value.get())


def test_resync_lists_in_pages_and_forgets_a_taskjob_deleted_unseen(
    kubeconfig: str, namespace: str, taskjob_crd: None, api_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    taskjobs = TaskJobs(api_client, namespace)
    bodies = [taskjobs.create(manifest(name)) for name in NAMES]
    monkeypatch.setenv("KUBECONFIG", kubeconfig)
    monkeypatch.setattr(kube_module, "LIST_PAGE", 2)  # 5 TaskJobs: three pages

    store = Store()
    for body in bodies:
        store.on_taskjob(None, body)
    gone = store.on_taskjob(None, {**bodies[0], "metadata": {**bodies[0]["metadata"], "name": "deleted-unseen"}})

    async def scenario() -> tuple[list[dict[str, Any]], int, int]:
        kube = Kube(qps=0)
        queue = WorkQueue(lambda key: asyncio.sleep(0, None))
        try:
            items, version = await kube.list_with_version("taskjobs", namespace)
            touched = await resync_once(kube, store, queue, [namespace])
        finally:
            await kube.http.close()
        return items, version, touched

    before = pages_asked()
    items, version, touched = asyncio.run(scenario())

    assert sorted(i["metadata"]["name"] for i in items) == NAMES
    assert {i["metadata"]["namespace"] for i in items} == {namespace}
    assert pages_asked() - before == 6  # 3 pages for the list, 3 for the resync
    # Every page is of one resourceVersion, at or after each TaskJob's own.
    assert version >= max(int(b["metadata"]["resourceVersion"]) for b in bodies)
    assert touched == 1
    assert gone not in store.taskjobs
    assert sorted(name for _, name in store.taskjobs) == NAMES
