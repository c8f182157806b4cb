"""Shared pieces of the benchmarks: the cluster, the operator process, a Job watch, statistics, tables.

Every benchmark measures from outside the operator (watches, /proc, /metrics), against a real control
plane (the testenv), and prints what it measured; nothing here asserts a timing.
"""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CRD = ROOT / "crds" / "taskjob.dev_taskjobs.yaml"
GROUP, VERSION, PLURAL = "taskjob.dev", "v1alpha1", "taskjobs"
LABEL_TASKJOB, LABEL_TASK, LABEL_ATTEMPT = "taskjob.dev/taskjob", "taskjob.dev/task", "taskjob.dev/attempt"
KWOK = "kwok.taskjob.dev/"
PROFILE_DIR: Path | None = None  # set by run.py --profile
CENSUS_DIR: Path | None = None  # set by run.py --census
Samples = dict[str, list[tuple[dict[str, str], float]]]  # Prometheus samples: {sample name: [(labels, value)]}


def log(text: str) -> None:
    """Print a progress line to stderr (figures go to stdout)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def poll(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    """Return the first truthy value of predicate(); raise TimeoutError naming what was awaited."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)  # polling interval; the deadline decides
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last: {str(last)[:200]})")


def free_port() -> int:
    """Return a free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- statistics and tables


def percentile(values: Sequence[float], p: float) -> float:
    """Return the p-th percentile (nearest rank) of values; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    """Return seconds as milliseconds for a table cell."""
    return "n/a" if seconds != seconds else f"{seconds * 1000:.0f} ms"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Return a Markdown table."""
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def verdict(value: float, goal: float, higher_is_better: bool = False) -> str:
    """Return 'met' or 'missed by N%' for a figure against its goal."""
    if value != value:
        return "not measured"
    ok = value >= goal if higher_is_better else value <= goal
    if ok:
        return "met"
    off = (goal - value) / goal if higher_is_better else (value - goal) / goal
    return f"missed by {off * 100:.0f}%"


# ---------------------------------------------------------------- the machine


def machine() -> dict[str, Any]:
    """Return the machine and software versions the figures were measured on."""
    import kopf
    import kubernetes
    import pydantic

    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "load_avg_1m": os.getloadavg()[0],
        "python": platform.python_version(),
        "kopf": kopf.__version__ if hasattr(kopf, "__version__") else _dist_version("kopf"),
        "kubernetes_client": kubernetes.__version__,
        "pydantic": pydantic.VERSION,
        "kernel": platform.release(),
    }


def _dist_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


# ---------------------------------------------------------------- the cluster


class Cluster:
    """Clients for the testenv (or any cluster the kubeconfig names)."""

    def __init__(self, kubeconfig: str, delete_each: bool = False) -> None:
        from kubernetes import client, config

        self.kubeconfig = kubeconfig
        self.delete_each = delete_each
        self.leftover: list[str] = []
        configuration = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        configuration.connection_pool_maxsize = 32
        self.api = client.ApiClient(configuration)
        self.core = client.CoreV1Api(self.api)
        self.batch = client.BatchV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.version = client.VersionApi(self.api)

    def kubectl(self, *args: str) -> str:
        """Run kubectl (the testenv's if there is one) and return its output."""
        testenv_bin = Path(self.kubeconfig).parent / "bin" / "kubectl"
        exe = str(testenv_bin) if testenv_bin.exists() else "kubectl"
        done = subprocess.run([exe, "--kubeconfig", self.kubeconfig, *args], check=True, capture_output=True, text=True)
        return done.stdout

    def server_version(self) -> str:
        """Return the API server's version, e.g. v1.35.4."""
        return str(self.version.get_code().git_version)

    def apply_crd(self) -> None:
        """Apply the TaskJob CRD and wait until it is Established."""
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/taskjobs.taskjob.dev")

    @contextmanager
    def namespace(self, prefix: str) -> Iterator[str]:
        """Yield a fresh namespace (its default ServiceAccount exists).

        With `delete_each`, it is deleted afterwards and waited for. Otherwise it is left for `cleanup`:
        deleting 10,000 Jobs and pods keeps a 2-core control plane busy for many minutes, which would
        slow down the next benchmark, while finished Jobs left in place cost it nothing but memory.
        """
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.core.create_namespace({"metadata": {"name": name, "labels": {"taskjob.dev/benchmark": prefix}}})
        poll(lambda: self._has_sa(name), 60, f"the default ServiceAccount of {name}")
        try:
            yield name
        finally:
            if self.delete_each:
                self.delete_namespace(name)
            else:
                self.leftover.append(name)

    def cleanup(self) -> None:
        """Delete the namespaces left behind (without waiting: the cluster finishes it on its own)."""
        from kubernetes.client.rest import ApiException

        for name in self.leftover:
            try:
                self.core.delete_namespace(name, propagation_policy="Background")
            except ApiException as e:
                if e.status != 404:
                    log(f"warning: deleting namespace {name} failed ({e.status} {e.reason})")
        self.leftover.clear()

    def _has_sa(self, namespace: str) -> bool:
        from kubernetes.client.rest import ApiException

        try:
            self.core.read_namespaced_service_account("default", namespace)
            return True
        except ApiException:
            return False

    def delete_namespace(self, name: str, timeout: float = 900) -> None:
        """Delete a namespace and wait until it is gone, so the next benchmark starts on a quiet cluster."""
        from kubernetes.client.rest import ApiException

        started = time.monotonic()
        try:
            self.core.delete_namespace(name, propagation_policy="Background")
        except ApiException as e:
            if e.status != 404:
                log(f"warning: deleting namespace {name} failed ({e.status} {e.reason}); continuing")
                return

        def gone() -> bool:
            try:
                self.core.read_namespace(name)
                return False
            except ApiException as e:
                return e.status == 404

        try:
            poll(gone, timeout, f"namespace {name} to be deleted", interval=1)
            log(f"namespace {name} deleted in {time.monotonic() - started:.0f}s")
        except (TimeoutError, ApiException) as e:
            log(f"warning: {e}; continuing")

    def create_taskjob(self, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
        """Create a TaskJob; return the created object."""
        return dict(self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest))

    def taskjob_raw(self, namespace: str, name: str) -> bytes:
        """Return the TaskJob as the API server serves it (JSON bytes): its stored size, near enough."""
        resp = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, _preload_content=False)
        return bytes(resp.data)

    def taskjobs(self, namespace: str) -> list[dict[str, Any]]:
        """Return every TaskJob in the namespace (raw JSON)."""
        resp = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, _preload_content=False)
        return list(json.loads(resp.data)["items"])

    def phases(self, namespace: str) -> dict[str, str]:
        """Return {TaskJob name: phase}."""
        return {t["metadata"]["name"]: (t.get("status") or {}).get("phase", "") for t in self.taskjobs(namespace)}

    def wait_finished(self, namespace: str, count: int, timeout: float) -> dict[str, str]:
        """Wait until `count` TaskJobs are Succeeded or Failed; return their phases."""

        def done() -> dict[str, str] | None:
            phases = self.phases(namespace)
            final = [p for p in phases.values() if p in ("Succeeded", "Failed", "Invalid")]
            return phases if len(final) >= count else None

        result: dict[str, str] = poll(done, timeout, f"{count} TaskJobs in {namespace} to finish", interval=1)
        return result


# ---------------------------------------------------------------- manifests


def outcome(duration: str = "0s") -> dict[str, Any]:
    """Return a podTemplate that makes kwok run each pod for `duration` and exit 0."""
    return {"metadata": {"annotations": {KWOK + "duration": duration}}}


def taskjob(name: str, tasks: list[dict[str, Any]], duration: str = "0s", **spec: Any) -> dict[str, Any]:
    """Return a TaskJob manifest whose pods each "run" for `duration`."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TaskJob",
        "metadata": {"name": name},
        "spec": {
            "defaults": {"image": "busybox:1.36", "podTemplate": outcome(duration)},
            "tasks": tasks,
            **spec,
        },
    }


def chain(n: int, prefix: str = "t") -> list[dict[str, Any]]:
    """Return n tasks, each depending on the one before."""
    return [{"name": f"{prefix}{i}", **({"dependsOn": [f"{prefix}{i - 1}"]} if i else {})} for i in range(n)]


def independent(n: int, prefix: str = "t") -> list[dict[str, Any]]:
    """Return n tasks with no dependencies."""
    return [{"name": f"{prefix}{i}"} for i in range(n)]


def layered(layers: int, width: int, fan_in: int = 2) -> list[dict[str, Any]]:
    """Return layers x width tasks; each task after the first layer depends on `fan_in` tasks of the layer before."""
    tasks: list[dict[str, Any]] = []
    for layer in range(layers):
        for i in range(width):
            task: dict[str, Any] = {"name": f"l{layer}-{i}"}
            if layer:
                task["dependsOn"] = sorted({f"l{layer - 1}-{(i + k) % width}" for k in range(fan_in)})
            tasks.append(task)
    return tasks


# ---------------------------------------------------------------- the operator as a process


class Operator:
    """`taskjob operator` as a child process: its pid for /proc, its /metrics, its log."""

    def __init__(
        self,
        kubeconfig: str,
        namespaces: Sequence[str],
        qps: float,
        log_dir: Path | None = None,
        label: str = "operator",
    ) -> None:
        self.kubeconfig = kubeconfig
        self.namespaces = list(namespaces)
        self.qps = qps
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="taskjob-bench-"))
        self.log_path = self.log_dir / f"operator-{uuid.uuid4().hex[:6]}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.health_port = free_port()
        self.metrics_port = free_port()
        # With --profile, py-spy samples the whole run; its collapsed stacks go here.
        self.profile = PROFILE_DIR / f"{label}.pyspy.txt" if PROFILE_DIR else None
        self.label = label
        self.census: Path | None = None
        self._spy: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Operator:
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.stop()

    def start(self) -> Operator:
        """Start the operator and wait until /healthz answers."""
        args = [
            sys.executable, "-m", "taskjobs.cli.main", "operator",
            "--health-port", str(self.health_port), "--metrics-port", str(self.metrics_port),
            "--log-level", "info", "--qps", str(self.qps),
        ]  # fmt: skip
        for ns in self.namespaces:
            args += ["--namespace", ns]
        env = {**os.environ, "KUBECONFIG": self.kubeconfig, "PYTHONUNBUFFERED": "1"}
        if CENSUS_DIR is not None:  # a heap census on SIGUSR2 (taskjobs.shell.heapcensus): slows the operator
            self.census = CENSUS_DIR / self.label
            env["TASKJOB_TRACEMALLOC"] = str(self.census)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        poll(self._healthy, 60, "the operator's /healthz")
        if self.profile is not None:
            self._spy = subprocess.Popen(
                [_py_spy(), "record", "--pid", str(self.pid), "--format", "raw", "--rate", "50", "--nonblocking",
                 "-o", str(self.profile)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        return self

    def take_census(self) -> None:
        """Ask the operator for a heap census (only when run with --census)."""
        if self.census is not None:
            os.kill(self.pid, signal.SIGUSR2)

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"the operator exited: {self.log()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    @property
    def pid(self) -> int:
        """Return the operator's process id."""
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """Return user + system CPU seconds the operator used so far (/proc/<pid>/stat utime + stime)."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks  # fields 14 and 15 of stat(5), after "pid (comm)"

    def memory(self) -> dict[str, int]:
        """Return VmRSS and VmHWM (peak RSS) in bytes, from /proc/<pid>/status."""
        result: dict[str, int] = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    result[key] = int(value.split()[0]) * 1024
        return result

    def threads(self) -> int:
        """Return the operator's thread count."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
        return 0

    def metrics(self) -> Samples:
        """Return the operator's Prometheus samples: {sample name: [(labels, value)]}."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return parse_metrics(r.read().decode())

    def log(self) -> str:
        """Return the operator's log so far."""
        return self.log_path.read_text(errors="replace")

    def problems(self) -> list[str]:
        """Return tracebacks and ERROR lines of the log (a benchmark reports them, it does not hide them)."""
        text = self.log()
        found = [m.group(0)[:300] for m in re.finditer(r"(?m)^.*(?:Traceback|ERROR).*$", text)]
        return found

    def stop(self) -> None:
        """Stop the operator (SIGTERM, then SIGKILL)."""
        if self._spy is not None and self._spy.poll() is None:
            self._spy.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
            try:
                self._spy.wait(30)
            except subprocess.TimeoutExpired:
                self._spy.kill()
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if hasattr(self, "_log") and not self._log.closed:
            self._log.close()


def parse_metrics(text: str) -> Samples:
    """Return Prometheus exposition text as samples: {sample name: [(labels, value)]}."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
    return samples


def local_metrics() -> Samples:
    """Return this process's own Prometheus samples (the operator's metrics, when its `Kube` runs in here)."""
    from prometheus_client import REGISTRY, generate_latest

    return parse_metrics(generate_latest(REGISTRY).decode())


def metrics_delta(before: Samples, after: Samples) -> Samples:
    """Return after - before, sample by sample (counters and histograms over a window of time)."""
    old = {(name, tuple(sorted(labels.items()))): value for name, rows in before.items() for labels, value in rows}
    return {
        name: [(labels, value - old.get((name, tuple(sorted(labels.items()))), 0.0)) for labels, value in rows]
        for name, rows in after.items()
    }


def _py_spy() -> str:
    """Return the py-spy of this venv (the bench extra installs it), else the one on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else "py-spy"


def histogram(samples: Samples, name: str, **where: str) -> dict[str, Any] | None:
    """Return count, sum and the approximate p50/p95/p99 (bucket upper bounds) of a Prometheus histogram.

    `where`: the labels of the one series wanted (e.g. operation="create_namespaced_job").
    """

    def chosen(labels: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in where.items())

    counts = [value for labels, value in samples.get(f"{name}_count", []) if chosen(labels)]
    if not counts or counts[0] == 0:
        return None
    total = counts[0]
    buckets = sorted(
        (float(labels["le"]), value)
        for labels, value in samples.get(f"{name}_bucket", [])
        if "le" in labels and chosen(labels)
    )

    def quantile(q: float) -> float:
        for bound, cumulative in buckets:
            if cumulative >= q * total:
                return bound
        return float("inf")

    return {
        "count": int(total),
        "mean": next(value for labels, value in samples[f"{name}_sum"] if chosen(labels)) / total,
        "p50_le": quantile(0.5),
        "p95_le": quantile(0.95),
        "p99_le": quantile(0.99),
    }


# ---------------------------------------------------------------- watching Jobs from outside


@dataclass
class JobSeen:
    """What the watch showed of one Job, in local receive times (time.perf_counter())."""

    taskjob: str
    task: str
    attempt: int
    added: float
    finished: float | None = None
    outcome: str | None = None  # Complete or Failed


@dataclass
class _Watch:
    """A label-selected watch of one kind in one namespace, recording when each event reached this process.

    Kubernetes timestamps have 1 s precision, so latencies are measured here: the receive time of an
    event includes its watch delivery from the API server (a few ms on loopback).
    """

    cluster: Cluster
    namespace: str
    events: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._resp: Any = None
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"watch-{self.namespace}", daemon=True)

    def __enter__(self) -> Any:
        self._thread.start()
        if not self._ready.wait(30):
            raise TimeoutError(f"the watch of {self.namespace} did not start")
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        resp = self._resp
        if resp is not None:
            try:
                resp.shutdown()
            except Exception:  # noqa: BLE001 - urllib3 1.x has no shutdown; closing is enough
                resp.close()
        self._thread.join(10)

    def _list(self, **kwargs: Any) -> Any:
        raise NotImplementedError

    def _record(self, obj: dict[str, Any], now: float) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        rv = self._list(label_selector=LABEL_TASKJOB).metadata.resource_version
        while not self._stop.is_set():
            try:
                self._resp = self._list(
                    label_selector=LABEL_TASKJOB,
                    watch=True,
                    resource_version=rv,
                    allow_watch_bookmarks=True,
                    timeout_seconds=3600,
                    _preload_content=False,
                )
                self._ready.set()
                buffer = b""
                for chunk in self._resp.stream(65536, decode_content=False):
                    now = time.perf_counter()
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if line.strip():
                            rv = self._on_event(json.loads(line), now) or rv
            except Exception as e:  # noqa: BLE001 - reconnect unless stopping
                if self._stop.is_set():
                    return
                log(f"watch of {self.namespace} reconnecting after {type(e).__name__}: {e}")
                time.sleep(0.2)

    def _on_event(self, event: dict[str, Any], now: float) -> str | None:
        obj = event.get("object") or {}
        meta = obj.get("metadata") or {}
        if event.get("type") == "ERROR":
            raise RuntimeError(f"watch error: {obj.get('message')}")
        if event.get("type") != "BOOKMARK":
            with self._lock:
                self.events += 1
                self._record(obj, now)
        return meta.get("resourceVersion")


@dataclass
class PodWatch(_Watch):
    """When each task pod was first seen Succeeded: (TaskJob, task, attempt) -> receive time."""

    succeeded: dict[tuple[str, str, int], float] = field(default_factory=dict)

    def _list(self, **kwargs: Any) -> Any:
        return self.cluster.core.list_namespaced_pod(self.namespace, **kwargs)

    def _record(self, obj: dict[str, Any], now: float) -> None:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if (obj.get("status") or {}).get("phase") == "Succeeded":
            key = (labels.get(LABEL_TASKJOB, ""), labels.get(LABEL_TASK, ""), int(labels.get(LABEL_ATTEMPT, "0") or 0))
            self.succeeded.setdefault(key, now)

    def snapshot(self) -> dict[tuple[str, str, int], float]:
        """Return a copy of what was seen so far."""
        with self._lock:
            return dict(self.succeeded)


@dataclass
class JobWatch(_Watch):
    """A watch on the Jobs of one namespace: when each was first seen, and seen finished."""

    jobs: dict[str, JobSeen] = field(default_factory=dict)

    def _list(self, **kwargs: Any) -> Any:
        return self.cluster.batch.list_namespaced_job(self.namespace, **kwargs)

    def _record(self, obj: dict[str, Any], now: float) -> None:
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        name = meta.get("name", "")
        seen = self.jobs.get(name)
        if seen is None:
            seen = self.jobs[name] = JobSeen(
                taskjob=labels.get(LABEL_TASKJOB, ""),
                task=labels.get(LABEL_TASK, ""),
                attempt=int(labels.get(LABEL_ATTEMPT, "0") or 0),
                added=now,
            )
        if seen.finished is None:
            for cond in (obj.get("status") or {}).get("conditions") or ():
                if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
                    seen.finished, seen.outcome = now, cond["type"]

    def snapshot(self) -> dict[str, JobSeen]:
        """Return a copy of what was seen so far."""
        with self._lock:
            return dict(self.jobs)

    def count(self) -> int:
        """Return how many Jobs were seen."""
        with self._lock:
            return len(self.jobs)

    def finished(self) -> int:
        """Return how many Jobs were seen finished."""
        with self._lock:
            return sum(1 for j in self.jobs.values() if j.finished is not None)
