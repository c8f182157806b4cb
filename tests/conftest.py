"""Cluster fixtures: the real control plane of `make testenv` (see docs/testing.md).

Nothing here runs unless a test requests a cluster fixture, so unit tests never start the testenv.
Tests that use the cluster must carry `@pytest.mark.cluster`; collection fails when one does not.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

ROOT = Path(__file__).resolve().parent.parent
TESTENV_DIR = Path(os.environ.get("TESTENV_DIR") or ROOT / ".testenv")
# Fixtures that need the cluster; a test using any of them (directly or through another fixture) needs the marker.
CLUSTER_FIXTURES = frozenset(
    {
        "testenv",
        "kubeconfig",
        "api_client",
        "namespace",
        "kubectl",
        "helm",
        "as_service_account",
        "real_node",
        "real_namespace",
        "probe_image",
    }
)
# Which pods land where (docs/testing.md). With the real node up, kwok's nodes carry this NoSchedule taint;
# the `namespace` fixture's annotations make the API server (PodNodeSelector, PodTolerationRestriction)
# give every pod of the namespace a kwok node selector and the toleration, so ordinary tests stay on kwok.
# `real_namespace` has neither: its pods go to the real node, as a user's manifest does.
REAL_NODE_NAME = "taskjob-real-node"
NODE_TAINT_KEY = "taskjob.dev/testenv-node"
KWOK_NAMESPACE_ANNOTATIONS = {
    "scheduler.alpha.kubernetes.io/node-selector": "type=kwok",
    "scheduler.alpha.kubernetes.io/defaultTolerations": json.dumps(
        [{"key": NODE_TAINT_KEY, "operator": "Equal", "value": "kwok", "effect": "NoSchedule"}]
    ),
}
T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.2) -> T:
    """Return the first truthy value of `predicate()`, polled until `timeout` seconds; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {value!r})")
        time.sleep(interval)


@dataclass(frozen=True)
class Testenv:
    """A reachable cluster: its kubeconfig and where its kubectl/helm live (None: take them from PATH)."""

    kubeconfig: Path
    bin_dir: Path | None

    def env(self) -> dict[str, str]:
        """Return an environment for subprocesses: testenv binaries first on PATH, KUBECONFIG, private helm dirs."""
        env = dict(os.environ)
        if self.bin_dir is not None:
            env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env["KUBECONFIG"] = str(self.kubeconfig)
        helm_home = Path(os.environ.get("TMPDIR", "/tmp")) / f"taskjob-testenv-helm-{os.getuid()}"
        for name in ("CACHE", "CONFIG", "DATA"):
            env.setdefault(f"HELM_{name}_HOME", str(helm_home / name.lower()))
        return env

    def tool(self, name: str) -> str:
        """Return the path of a CLI (kubectl, helm) matching the cluster."""
        if self.bin_dir is not None and (self.bin_dir / name).exists():
            return str(self.bin_dir / name)
        found = shutil.which(name)
        if found is None:
            pytest.fail(f"{name} is not on PATH and there is no testenv bin dir; run `make testenv`")
        return found

    def run(self, tool: str, *args: str, input: str | None = None, check: bool = True) -> str:
        """Return the stdout of `tool args...` against this cluster; fail the test with stderr when it fails."""
        cmd = [self.tool(tool), *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, env=self.env(), timeout=300)
        if check and proc.returncode != 0:
            pytest.fail(f"`{' '.join(cmd)}` exited {proc.returncode}:\n{proc.stderr}{proc.stdout}")
        return proc.stdout

    def run_script(self, script: str, *args: str) -> str:
        """Return the stdout of tests/testenv/SCRIPT args... for this testenv; fail the test when it fails."""
        env = dict(os.environ, TESTENV_DIR=str(TESTENV_DIR))
        cmd = [str(ROOT / "tests" / "testenv" / script), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        if proc.returncode != 0:
            pytest.fail(f"`{' '.join(cmd)}` exited {proc.returncode}:\n{proc.stderr}{proc.stdout}")
        return proc.stdout

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        """Return the stdout of `kubectl args...` run with the testenv's kubectl and kubeconfig."""
        return self.run("kubectl", "--kubeconfig", str(self.kubeconfig), *args, input=input, check=check)

    def helm(self, *args: str, check: bool = True) -> str:
        """Return the stdout of `helm args...` run with the testenv's helm and kubeconfig."""
        return self.run("helm", "--kubeconfig", str(self.kubeconfig), *args, check=check)


def start_testenv() -> Testenv:
    """Return the testenv to use: an existing cluster named by env, else `make testenv` (a no-op when up)."""
    external = os.environ.get("TESTENV_KUBECONFIG") or os.environ.get("KUBECONFIG_TESTENV")
    if external:
        path = Path(external)
        if not path.is_file():
            pytest.fail(f"TESTENV_KUBECONFIG points at {path}, which is not a file")
        bin_dir = TESTENV_DIR / "bin"
        return Testenv(path, bin_dir if bin_dir.is_dir() else None)
    proc = subprocess.run(["make", "--no-print-directory", "testenv"], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr)[-6000:]
        pytest.fail(f"`make testenv` failed (exit {proc.returncode}); the cluster tests cannot run:\n{output}")
    return Testenv(TESTENV_DIR / "kubeconfig", TESTENV_DIR / "bin")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse cluster fixtures in tests without the cluster marker, so `-m 'not cluster'` never starts a cluster."""
    unmarked = [
        item.nodeid
        for item in items
        if CLUSTER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        and item.get_closest_marker("cluster") is None
    ]
    if unmarked:
        raise pytest.UsageError("tests using cluster fixtures must carry @pytest.mark.cluster: " + ", ".join(unmarked))


@pytest.fixture(scope="session")
def testenv() -> Testenv:
    """The running testenv (started if needed); fails loudly when it cannot start."""
    return start_testenv()


@pytest.fixture(scope="session")
def kubeconfig(testenv: Testenv) -> str:
    """Path of the admin kubeconfig of the testenv."""
    return str(testenv.kubeconfig)


@pytest.fixture(scope="session")
def api_client(testenv: Testenv) -> Iterator[ApiClient]:
    """A kubernetes ApiClient acting as the cluster admin."""
    from kubernetes import config

    client: ApiClient = config.new_client_from_config(config_file=str(testenv.kubeconfig))  # type: ignore[no-untyped-call]
    yield client
    client.close()  # type: ignore[no-untyped-call]


@pytest.fixture(scope="session")
def kubectl(testenv: Testenv) -> Callable[..., str]:
    """`kubectl(*args, input=None, check=True)` with the testenv's kubectl and kubeconfig; returns stdout."""
    return testenv.kubectl


@pytest.fixture(scope="session")
def helm(testenv: Testenv) -> Callable[..., str]:
    """`helm(*args, check=True)` with the testenv's helm and kubeconfig; returns stdout."""
    return testenv.helm


@pytest.fixture(scope="session")
def taskjob_crd(kubectl: Callable[..., str]) -> None:
    """The TaskJob and CronTaskJob CRDs, applied and Established (with the testenv's kubectl, wherever TESTENV_DIR
    puts it)."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/taskjobs.taskjob.dev",
            "crd/crontaskjobs.taskjob.dev")


@pytest.fixture(name="wait_for")
def wait_for_fixture() -> Callable[..., object]:
    """The `wait_for(predicate, timeout, what)` poll helper."""
    return wait_for


def make_namespace(api_client: ApiClient, request: pytest.FixtureRequest, annotations: dict[str, str]) -> str:
    """Create a fresh namespace named after the test, ready for pods (its default ServiceAccount exists)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(api_client)
    stem = "".join(c if c.isalnum() else "-" for c in request.node.name.lower()).strip("-")[:40].rstrip("-")
    name = f"{stem}-{uuid.uuid4().hex[:6]}"
    meta = client.V1ObjectMeta(name=name, labels={"testenv": "test"}, annotations=annotations or None)
    core.create_namespace(client.V1Namespace(metadata=meta))

    def default_sa_exists() -> bool:
        try:
            core.read_namespaced_service_account("default", name)
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        return True

    # Pods are rejected until the ServiceAccount controller has created `default`.
    wait_for(default_sa_exists, 30, f"ServiceAccount default in namespace {name}")
    return name


@pytest.fixture
def namespace(api_client: ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace whose pods run on kwok's fake nodes (scripted outcomes, scale); deleted after."""
    from kubernetes import client

    name = make_namespace(api_client, request, KWOK_NAMESPACE_ANNOTATIONS)
    yield name
    client.CoreV1Api(api_client).delete_namespace(name)


@dataclass(frozen=True)
class RealNode:
    """The testenv's real node (containerd + kubelet + kube-proxy, tests/testenv/node/lib.sh)."""

    name: str
    testenv: Testenv

    def load_image(self, *images: str) -> None:
        """Put images (names in the local Docker engine, or archive files) onto the node."""
        self.testenv.run_script("load-image.sh", *images)


@pytest.fixture(scope="session")
def real_node(testenv: Testenv, api_client: ApiClient) -> RealNode:
    """The real node, Ready; fails when the testenv runs without it (TESTENV_REAL_NODE=0)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        node = client.CoreV1Api(api_client).read_node(REAL_NODE_NAME)
    except ApiException as e:
        if e.status != 404:
            raise
        pytest.fail(
            f"the testenv has no node {REAL_NODE_NAME}: it was started with TESTENV_REAL_NODE=0; "
            "restart it with `make testenv-down testenv`, or deselect these tests with -m 'not realnode'"
        )
    ready = [c.status for c in (node.status.conditions if node.status else None) or [] if c.type == "Ready"]
    assert ready == ["True"], f"node {REAL_NODE_NAME} is not Ready: {node.status}"
    return RealNode(REAL_NODE_NAME, testenv)


@pytest.fixture
def real_namespace(api_client: ApiClient, real_node: RealNode, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh plain namespace (no node selector, no toleration): its pods run on the real node; deleted after."""
    from kubernetes import client

    name = make_namespace(api_client, request, {})
    yield name
    client.CoreV1Api(api_client).delete_namespace(name)


@pytest.fixture(scope="session")
def probe_image(real_node: RealNode) -> str:
    """The name of the test probe image (tests/testenv/node/probe), built and loaded onto the real node."""
    archive = real_node.testenv.run_script("node/probe-image.sh").strip().splitlines()[-1]
    real_node.load_image(archive)
    return "localhost/taskjob-testenv/probe:1"


@pytest.fixture
def as_service_account(api_client: ApiClient) -> Iterator[Callable[[str, str], ApiClient]]:
    """`as_service_account(name, namespace)` returns an ApiClient authenticated as that ServiceAccount.

    The ServiceAccount is created when missing; its token comes from the TokenRequest API.
    """
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(api_client)
    made: list[ApiClient] = []

    def make(name: str, namespace: str) -> ApiClient:
        try:
            core.create_namespaced_service_account(
                namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
            )
        except ApiException as e:
            if e.status != 409:
                raise
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
        )
        status = core.create_namespaced_service_account_token(name, namespace, request).status
        assert status is not None and status.token, f"TokenRequest for {namespace}/{name} returned no token"
        token: str = status.token
        admin = api_client.configuration
        conf = client.Configuration()
        conf.host = admin.host
        conf.ssl_ca_cert = admin.ssl_ca_cert
        conf.verify_ssl = admin.verify_ssl
        conf.api_key = {"authorization": token}
        conf.api_key_prefix = {"authorization": "Bearer"}
        sa_client = client.ApiClient(conf)
        made.append(sa_client)
        return sa_client

    yield make
    for c in made:
        c.close()  # type: ignore[no-untyped-call]
