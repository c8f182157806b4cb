"""R5: kube-apiserver and etcd restart while TaskJobs run: every TaskJob still ends as its script says.

This test starts its own testenv in a private directory (tests/testenv/up.sh with TESTENV_DIR), so the
testenv the other tests share is never restarted under them; tests/testenv/restart.sh restarts the API
server and etcd there: first gracefully (SIGTERM) with a few seconds of outage, then by SIGKILL.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from operator_harness import CRD, ROOT, OperatorProcess, TaskJobs, poll
from reliability import SOAK, tracebacks
from scenarios import check, finished, random_scenario

pytestmark = pytest.mark.cluster

DAGS = 10 if SOAK else 4
# CI: a crash of both, down 3 s. Soak: a graceful restart down for 70 s (longer than kopf's 54 s of watch
# retries, and than its 70 s of watch inactivity), then a crash.
ROUNDS: tuple[tuple[str, ...], ...] = (
    (("--down", "70"), ("--kill", "--down", "3")) if SOAK else (("--kill", "--down", "3"),)
)
# What the operator may log while the API server is away: lost connections and 5xx answers.
OUTAGE = r"(MaxRetryError|NewConnectionError|ProtocolError|ReadTimeoutError|ConnectionRefusedError|" \
         r"RemoteDisconnected|ConnectionResetError|(Api|Service)Exception: \((500|503|504|429)\))"


class PrivateTestenv:
    """A testenv of our own, in a temporary directory, started with up.sh and removed with down.sh."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="taskjob-r5-")) / "testenv"
        self.env = {**os.environ, "TESTENV_DIR": str(self.dir)}
        self.kubeconfig = str(self.dir / "kubeconfig")

    def script(self, name: str, *args: str) -> None:
        proc = subprocess.run([str(ROOT / "tests" / "testenv" / name), *args], env=self.env, capture_output=True,
                              text=True, timeout=600)
        if proc.returncode != 0:
            pytest.fail(f"{name} {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")

    def kubectl(self, *args: str) -> str:
        cmd = [str(self.dir / "bin" / "kubectl"), "--kubeconfig", self.kubeconfig, *args]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120).stdout


@pytest.fixture(scope="module")
def private_testenv() -> Iterator[PrivateTestenv]:
    env = PrivateTestenv()
    env.script("up.sh")
    try:
        yield env
    finally:
        env.script("down.sh")
        shutil.rmtree(env.dir.parent, ignore_errors=True)


def tolerant(predicate: Callable[[], Any]) -> Callable[[], Any]:
    """Return predicate, answering None instead of failing while the API server is away."""

    def call() -> Any:
        try:
            return predicate()
        except (urllib3.exceptions.HTTPError, OSError):
            return None
        except ApiException as e:
            if e.status in (0, 429, 500, 503, 504):
                return None
            raise

    return call


def test_r5_taskjobs_finish_across_apiserver_and_etcd_restarts(
    private_testenv: PrivateTestenv, tmp_path: Path, rng: random.Random, figures: dict[str, Any]
) -> None:
    env = private_testenv
    env.kubectl("apply", "--server-side", "-f", str(CRD))
    env.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/taskjobs.taskjob.dev")
    env.kubectl("create", "namespace", "r5")
    api = config.new_client_from_config(config_file=env.kubeconfig)  # type: ignore[no-untyped-call]
    def default_sa() -> bool:  # made by the ServiceAccount controller shortly after the namespace
        names = client.CoreV1Api(api).list_namespaced_service_account("r5").items
        return any(sa.metadata.name == "default" for sa in names)

    poll(tolerant(default_sa), 60, "the default ServiceAccount")
    taskjobs = TaskJobs(api, "r5")
    op = OperatorProcess(env.kubeconfig, ["r5"], tmp_path).start()
    try:
        scenarios = [random_scenario(rng, f"dag{i}", size=(5, 8)) for i in range(DAGS)]
        for s in scenarios:
            taskjobs.create(s.manifest())
        names = [s.name for s in scenarios]
        outages = []
        for args in ROUNDS:
            poll(tolerant(lambda: sum(taskjobs.status(n).get("running", 0) for n in names)), 60, "tasks running")
            started = time.monotonic()
            env.script("restart.sh", *args, "kube-apiserver", "etcd")
            outages.append(round(time.monotonic() - started, 1))
        poll(tolerant(lambda: finished(taskjobs, names)), 600 if SOAK else 300, "every TaskJob to finish")
        assert op.healthy(), "the operator died while the API server was away"
        problems = [p for s in scenarios for p in check(taskjobs, s)]
    finally:
        op.stop()
        api.close()  # type: ignore[no-untyped-call]
    unexpected = [tb for tb in tracebacks(op.logs()) if not re.search(OUTAGE, tb.splitlines()[-1])]
    figures.update(dags=len(scenarios), restarts=len(ROUNDS), outage_seconds=outages,
                   failed_reconciles=op.logs().count("failed (attempt"), problems=len(problems))
    assert not problems, "\n".join(problems)
    assert not unexpected, f"unexpected traceback:\n{unexpected[0]}"
