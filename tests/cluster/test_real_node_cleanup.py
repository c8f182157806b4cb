"""Stopping the real node leaves the machine as it was: no process, mount, link, iptables rule, sysctl,
cgroup or host file of it is left behind.

`make test` runs with the testenv (and its real node) up, and a second real node cannot run beside it
(fixed interface names and paths). So this test stops the testenv's own node (tests/testenv/node.sh stop:
the node part of down.sh), takes a snapshot of the machine, starts the node, runs pods that make every
kind of change (a Service's iptables rules, a pod's veth, netns, volume mounts, cgroups, the kubelet's
sysctls), stops the node again and compares. It starts the node once more for the tests after it.
The rest of down.sh stops the control plane's processes and removes the node's interface, which the API
server is bound to; tests/testenv/check-down.sh proves the whole `make testenv` / `make testenv-down`
cycle on a machine where no testenv is up.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient

pytestmark = [pytest.mark.cluster, pytest.mark.realnode]
WaitFor = Callable[..., Any]
ROOT = Path(__file__).resolve().parents[2]
# The snapshot code is shared with tests/testenv/check-down.sh.
_spec = importlib.util.spec_from_file_location(
    "machine_state", ROOT / "tests" / "testenv" / "node" / "machine_state.py"
)
assert _spec is not None and _spec.loader is not None
_machine_state_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_machine_state_module)
machine_state = _machine_state_module.machine_state
processes = _machine_state_module.processes


def node_script(action: str, state_dir: Path) -> None:
    proc = subprocess.run(
        [str(ROOT / "tests" / "testenv" / "node.sh"), action],
        capture_output=True,
        text=True,
        env={**os.environ, "TESTENV_DIR": str(state_dir)},
        timeout=300,
    )
    assert proc.returncode == 0, f"node.sh {action} exited {proc.returncode}:\n{proc.stderr}{proc.stdout}"


@pytest.fixture
def stopped_node(real_node: Any) -> Iterator[Path]:
    """The testenv's real node, stopped; started again afterwards whatever happened."""
    state_dir = Path(real_node.testenv.kubeconfig).parent
    node_script("stop", state_dir)
    try:
        yield state_dir
    finally:
        if not any("kubelet" in p for p in processes(state_dir)):
            node_script("start", state_dir)


def test_stopping_the_real_node_leaves_the_machine_as_it_was(
    api_client: ApiClient, real_namespace: str, probe_image: str, stopped_node: Path, wait_for: WaitFor
) -> None:
    before = machine_state(stopped_node)
    node_script("start", stopped_node)
    core = client.CoreV1Api(api_client)
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="server", labels={"app": "server"}),
        spec=client.V1PodSpec(containers=[client.V1Container(name="main", image=probe_image, args=["serve", "8080"])]),
    )
    core.create_namespaced_pod(real_namespace, pod)
    core.create_namespaced_service(
        real_namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="server"),
            spec=client.V1ServiceSpec(
                selector={"app": "server"}, ports=[client.V1ServicePort(port=80, target_port=8080)]
            ),
        ),
    )

    def running() -> bool:
        status = core.read_namespaced_pod("server", real_namespace).status
        return bool(status and status.container_statuses and status.container_statuses[0].ready)

    wait_for(running, 90, "the server pod to run")
    wait_for(
        lambda: any("server" in r and "KUBE-SVC" in r for r in machine_state(stopped_node)["iptables"]),
        30,
        "kube-proxy to program the Service",
    )
    during = machine_state(stopped_node)
    # The snapshot sees the node's changes, so their absence afterwards means something.
    assert during["processes"] - before["processes"]
    assert any(m.startswith(f"{stopped_node}/node/kubelet/pods/") for m in during["mounts"] - before["mounts"])
    assert "taskjob-cni0" in during["links"] - before["links"]
    assert any("KUBE-SERVICES" in r for r in during["iptables"] - before["iptables"])
    assert "kernel.panic = 10" in during["sysctls"] - before["sysctls"] or "kernel.panic = 10" in before["sysctls"]
    assert during["cgroups"] - before["cgroups"]

    node_script("stop", stopped_node)

    after = machine_state(stopped_node)
    left = {k: sorted(after[k] - before[k]) for k in before if after[k] - before[k]}
    gone = {k: sorted(before[k] - after[k]) for k in before if before[k] - after[k]}
    assert (left, gone) == ({}, {})
