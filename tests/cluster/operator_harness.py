"""Running the operator as a process and inspecting TaskJobs, for the cluster tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "taskjob.dev_taskjobs.yaml"
GROUP, VERSION, PLURAL = "taskjob.dev", "v1alpha1", "taskjobs"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def poll(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Return the first truthy value of predicate(), or fail naming what was awaited."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)  # polling interval, not synchronisation: the deadline decides
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")


def rejection(testenv: Any, kubectl: Callable[..., str], namespace: str, manifest: Path, what: str) -> str:
    """Return the error of `kubectl apply -f manifest` once the webhook rejects it (polled: it may not serve yet).

    A manifest admitted before the webhook served is deleted again and the apply retried.
    """
    apply = [testenv.tool("kubectl"), "--kubeconfig", str(testenv.kubeconfig), "apply", "-n", namespace, "-f",
             str(manifest)]  # fmt: skip

    def rejected() -> str | None:
        proc = subprocess.run(apply, capture_output=True, text=True, env=testenv.env(), timeout=60)
        if proc.returncode != 0:
            return proc.stderr
        kubectl("delete", "-n", namespace, "-f", str(manifest), "--ignore-not-found")
        return None

    error: str = poll(rejected, 30, f"the webhook to reject {what}")
    return error


class OperatorProcess:
    """`taskjob operator` as a child process, with its log captured to a file."""

    def __init__(self, kubeconfig: str, namespaces: list[str], log_dir: Path, extra: list[str] | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.namespaces = namespaces
        self.log_dir = log_dir
        self.extra = extra or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.health_port = 0
        self.metrics_port = 0

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"operator-{self.runs}.log"

    def start(self) -> OperatorProcess:
        self.runs += 1
        self.health_port, self.metrics_port = free_port(), free_port()
        args = [
            sys.executable,
            "-m",
            "taskjobs.cli.main",
            "operator",
            "--health-port",
            str(self.health_port),
            "--metrics-port",
            str(self.metrics_port),
            "--log-level",
            "debug",
            *self.extra,
        ]
        for ns in self.namespaces:
            args += ["--namespace", ns]
        env = {**os.environ, "KUBECONFIG": self.kubeconfig, "PYTHONUNBUFFERED": "1"}
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        poll(self.healthy, 60, "the operator's /healthz")
        return self

    def healthy(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"operator exited: {self.logs()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: no cleanup, as when a node dies."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if not self._log.closed:
            self._log.close()

    def logs(self) -> str:
        return "\n".join(
            (self.log_dir / f"operator-{i}.log").read_text(errors="replace") for i in range(1, self.runs + 1)
        )

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return str(r.read().decode())


class TaskJobs:
    """Create and inspect TaskJobs and their Jobs in one namespace."""

    def __init__(self, api_client: Any, namespace: str) -> None:
        from kubernetes import client

        self.ns = namespace
        self.custom = client.CustomObjectsApi(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.core = client.CoreV1Api(api_client)

    def create(self, manifest: dict[str, Any] | str | Path) -> dict[str, Any]:
        if isinstance(manifest, Path):
            manifest = manifest.read_text()
        if isinstance(manifest, str):
            manifest = yaml.safe_load(manifest)
        assert isinstance(manifest, dict)
        return dict(self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, manifest))

    def get(self, name: str) -> dict[str, Any]:
        return dict(self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name))

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name, {"spec": spec})

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name)

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.get(name).get("status") or {})

    def wait_phase(self, name: str, phases: str | tuple[str, ...], timeout: float = 90) -> dict[str, Any]:
        wanted = (phases,) if isinstance(phases, str) else phases
        result: dict[str, Any] = poll(
            lambda: (s := self.status(name)).get("phase") in wanted and s, timeout, f"{name} to reach {wanted}"
        )
        return result

    def jobs(self, name: str) -> list[Any]:
        items = self.batch.list_namespaced_job(self.ns, label_selector=f"taskjob.dev/taskjob={name}").items
        return sorted(items, key=lambda j: j.metadata.creation_timestamp)

    def ended(self, job: Any) -> Any:
        """Return when `job`'s attempt ended for the operator: its pod's success, else the Job's verdict.

        A succeeded pod ends the attempt at once (core/observe.py); the Job's completionTime comes a
        batch period of the Job controller later. Both have 1 s resolution.
        """
        pods = self.core.list_namespaced_pod(self.ns, label_selector=f"job-name={job.metadata.name}").items
        done = [
            c.state.terminated.finished_at
            for p in pods
            if p.status.phase == "Succeeded"
            for c in p.status.container_statuses or ()
            if c.name == "task" and c.state.terminated and c.state.terminated.finished_at
        ]
        return min(done) if done else job.status.completion_time or job.status.conditions[-1].last_transition_time

    def events(self, name: str) -> list[Any]:
        items = self.core.list_namespaced_event(self.ns, field_selector=f"involvedObject.name={name}").items
        return list(items)
