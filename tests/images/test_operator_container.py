"""The operator image as a container against the real control plane: it serves /healthz (the chart's
probes) and reconciles a TaskJob to Succeeded, running as uid 10001 on a read-only root.

The chart's own path (in-cluster configuration, the webhook behind its Service) needs the real node; here the
container reaches the testenv's API server on loopback (host network) with the admin kubeconfig, and kwok plays
the pods. It watches only the test's namespace, so it never acts on another test's objects.
"""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from docker_engine import Engine

pytestmark = [pytest.mark.docker, pytest.mark.cluster]

ROOT = Path(__file__).resolve().parents[2]
OPERATOR = "taskjob-operator:0.1.0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def healthz(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture
def operator_container(
    engine: Engine, kubeconfig: str, kubectl: Callable[..., str], namespace: str, tmp_path: Path
) -> Iterator[tuple[str, int]]:
    """The operator image running against the testenv, watching `namespace`: (container id, health port)."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    # uid 10001 must read it: the testenv's kubeconfig is root's alone.
    config = tmp_path / "kubeconfig"
    config.write_text(Path(kubeconfig).read_text())
    config.chmod(0o644)
    port = free_port()
    proc = engine.run(
        ["run", "--detach", "--network", "host", "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
         "--security-opt", "no-new-privileges", "--volume", f"{config}:/etc/taskjob/kubeconfig:ro",
         "--env", "KUBECONFIG=/etc/taskjob/kubeconfig", OPERATOR,
         f"--namespace={namespace}", f"--health-port={port}", "--metrics-port=0", "--webhook-port=0"]
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    container = proc.stdout.strip()
    try:
        yield container, port
    finally:
        logs = engine.run(["logs", container])
        engine.run(["rm", "--force", container])
        print(logs.stdout + logs.stderr)  # shown when the test fails


def test_the_operator_image_serves_health_and_runs_a_taskjob(
    engine: Engine,
    operator_container: tuple[str, int],
    kubectl: Callable[..., str],
    namespace: str,
    wait_for: Callable[..., object],
) -> None:
    container, port = operator_container
    wait_for(lambda: healthz(port), 60, "the operator container's /healthz")
    kubectl("apply", "-n", namespace, "-f", str(ROOT / "examples" / "hello.yaml"))

    def phase() -> str:
        return kubectl("get", "taskjob", "hello", "-n", namespace, "-o", "jsonpath={.status.phase}/{.status.progress}")

    def finished() -> str:
        now = phase()
        return now if now.startswith(("Succeeded", "Failed")) else ""

    assert wait_for(finished, 60, "hello to finish") == "Succeeded/1/1"
    state = engine.run(["inspect", "--format", "{{.State.Running}} {{.Config.User}}", container])
    assert state.stdout.split() == ["true", "10001:10001"], state.stdout + state.stderr
