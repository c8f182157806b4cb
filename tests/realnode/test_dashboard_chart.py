"""The chart's dashboard as a user reaches it: `helm install --set dashboard.enabled=true`, then
`kubectl port-forward` to its Service; it shows a TaskJob that ran in real containers, with the real log."""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from realnode_harness import ROOT, Release, install, pods_of, uninstall, wait_finished

pytestmark = [pytest.mark.cluster, pytest.mark.realnode]
Kubectl = Callable[..., str]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(url: str) -> str | None:
    """Return the body of a GET, or None while nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return str(r.read().decode())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


@pytest.fixture
def dashboard_release(
    helm: Callable[..., str], kubectl: Kubectl, node_images: None, real_namespace: str
) -> Iterator[Release]:
    release = install(helm, kubectl, real_namespace, "dashboard.enabled=true")
    kubectl("rollout", "status", f"deployment/{release.fullname}-dashboard", "-n", release.namespace,
            "--timeout=180s")
    yield release
    uninstall(helm, kubectl, release)


@pytest.fixture
def port_forward(dashboard_release: Release, testenv: Any, wait_for: Callable[..., Any]) -> Iterator[str]:
    """`kubectl port-forward svc/<release>-taskjob-operator-dashboard PORT:80`; yields the base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [testenv.tool("kubectl"), "--kubeconfig", str(testenv.kubeconfig), "port-forward", "-n",
         dashboard_release.namespace, f"svc/{dashboard_release.fullname}-dashboard", f"{port}:80"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=testenv.env(),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: fetch(f"{base}/readyz") == "ok", 60, "the dashboard to answer /readyz through port-forward")
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_charts_dashboard_shows_a_real_run_and_its_log(
    dashboard_release: Release, port_forward: str, kubectl: Kubectl, wait_for: Callable[..., Any]
) -> None:
    ns = dashboard_release.watches
    kubectl("apply", "-n", ns, "-f", str(ROOT / "examples" / "hello.yaml"))
    status = wait_finished(kubectl, wait_for, ns, "hello")
    assert status["phase"] == "Succeeded", status.get("message")

    page = fetch(port_forward + "/")
    assert page and "<html" in page.lower()

    def shown() -> dict[str, Any] | None:
        body = fetch(f"{port_forward}/api/view?view=taskjob&namespace={ns}&name=hello")
        return json.loads(body) if body and "Succeeded" in body else None

    view = wait_for(shown, 30, "the dashboard's view of hello, Succeeded")
    assert "hello" in json.dumps(view)

    pod = pods_of(kubectl, ns, "hello")[0]["metadata"]["name"]
    log = fetch(f"{port_forward}/api/logs/{ns}/{pod}")
    assert log and "hello from task hello, attempt 1" in log, log
