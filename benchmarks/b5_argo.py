"""B5 a peer on the same bed: taskjob's operator and Argo Workflows' workflow-controller side by side.

Both run as processes on this machine against the same control plane and the same REAL node (pods in
plain namespaces, real containers of busybox:1.36 running `true`), one namespace each, in one run: the
same DAG shapes (a chain, a fan-out, a diamond) under taskjob, then under Argo as shipped, then under Argo
with DEFAULT_REQUEUE_TIME=1s (see ARGO_VARIANTS). Measured from outside every controller:

- dependency done -> next pod: a watch on each namespace's pods records, in local receive times, when a
  dependency's task container is first seen terminated and when the dependent task's pod is first seen
  (ADDED); the latency is ADDED minus the last dependency's termination. The same figure from the API
  objects' own timestamps (container finishedAt vs pod creationTimestamp, 1 s resolution) is printed too.
- pods launched per second on the fan-out: children / (last child pod seen - root's container done).
- controller CPU seconds per task (utime + stime from /proc/<pid>/stat over each shape's run) and peak
  RSS (VmHWM from /proc/<pid>/status) of each controller process.

Argo Workflows is a benchmark peer only (benchmarks/argo/build.sh builds it from the Go module proxy;
never part of the product). Its pods have three containers: `init` (argoexec copies itself into a shared
volume), `main` (the task under `argoexec emissary`) and `wait` (argoexec waits for main, then reports the
outcome as a WorkflowTaskResult); the controller moves on when the pod is done and the result is in.
Sizes are modest because the real node runs real containers on 2 shared cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from common import ROOT, Cluster, Operator, log, ms, percentile, poll, table

ARGO_GROUP, ARGO_VERSION, ARGO_PLURAL = "argoproj.io", "v1alpha1", "workflows"
ARGO_NODE_NAME = "workflows.argoproj.io/node-name"
ARGO_WORKFLOW = "workflows.argoproj.io/workflow"
TASKJOB_LABEL, TASK_LABEL = "taskjob.dev/taskjob", "taskjob.dev/task"
IMAGE = "busybox:1.36"
REAL_NODE = "taskjob-real-node"
MIB = 1024 * 1024


def shapes(mode: str) -> dict[str, dict[str, list[str]]]:
    """Return {shape: {task: [dependencies]}}: a chain, a fan-out (one root, N children), a diamond."""
    chain_n, fan_n = {"quick": (3, 10), "default": (5, 20), "full": (10, 40)}[mode]
    chain = {f"t{i}": ([f"t{i - 1}"] if i else []) for i in range(chain_n)}
    fan = {"root": [], **{f"c{i}": ["root"] for i in range(fan_n)}}
    diamond = {"root": [], "left": ["root"], "right": ["root"], "sink": ["left", "right"]}
    return {f"chain-{chain_n}": chain, f"fan-out-{fan_n}": fan, "diamond": diamond}


# ---------------------------------------------------------------- manifests


def taskjob_manifest(name: str, dag: dict[str, list[str]]) -> dict[str, Any]:
    """Return a TaskJob running `true` in busybox for each task."""
    tasks = [{"name": t, **({"dependsOn": deps} if deps else {})} for t, deps in dag.items()]
    return {
        "apiVersion": "taskjob.dev/v1alpha1",
        "kind": "TaskJob",
        "metadata": {"name": name},
        "spec": {"defaults": {"image": IMAGE, "command": ["true"]}, "tasks": tasks},
    }


def workflow_manifest(name: str, dag: dict[str, list[str]]) -> dict[str, Any]:
    """Return an Argo Workflow with the same DAG, each task running `true` in busybox."""
    tasks = [{"name": t, "template": "work", **({"dependencies": deps} if deps else {})} for t, deps in dag.items()]
    return {
        "apiVersion": f"{ARGO_GROUP}/{ARGO_VERSION}",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {
            "entrypoint": "dag",
            "templates": [
                {"name": "dag", "dag": {"tasks": tasks}},
                # An explicit command: without one, Argo would look the image's entrypoint up in a registry.
                {"name": "work", "container": {"image": IMAGE, "command": ["true"], "imagePullPolicy": "IfNotPresent"}},
            ],
        },
    }


# ---------------------------------------------------------------- watching pods from outside


@dataclass
class PodSeen:
    """When this process first saw a task's pod, and its task container terminated (time.perf_counter())."""

    added: float
    created: str = ""  # creationTimestamp
    done: float | None = None
    finished_at: str = ""  # the task container's state.terminated.finishedAt
    exit_code: int | None = None
    pod_done: float | None = None  # phase Succeeded or Failed first seen (Argo: after its wait sidecar)


@dataclass
class PodWatch:
    """A watch on one namespace's pods; `key` maps a pod to (run, task) or None, `container` names the task's."""

    cluster: Cluster
    namespace: str
    key: Any
    container: str
    pods: dict[tuple[str, str], PodSeen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._resp: Any = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PodWatch:
        self._thread.start()
        if not self._ready.wait(30):
            raise TimeoutError(f"the pod watch of {self.namespace} did not start")
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        if self._resp is not None:
            self._resp.close()
        self._thread.join(10)

    def _run(self) -> None:
        rv = self.cluster.core.list_namespaced_pod(self.namespace).metadata.resource_version
        while not self._stop.is_set():
            try:
                self._resp = self.cluster.core.list_namespaced_pod(
                    self.namespace, watch=True, resource_version=rv, allow_watch_bookmarks=True,
                    timeout_seconds=3600, _preload_content=False,
                )  # fmt: skip
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
                log(f"pod watch of {self.namespace} reconnecting after {type(e).__name__}: {e}")
                time.sleep(0.2)

    def _on_event(self, event: dict[str, Any], now: float) -> str | None:
        obj = event.get("object") or {}
        meta = obj.get("metadata") or {}
        if event.get("type") == "BOOKMARK":
            return meta.get("resourceVersion")
        key = self.key(meta)
        if key is None:
            return meta.get("resourceVersion")
        with self._lock:
            seen = self.pods.get(key)
            if seen is None:
                seen = self.pods[key] = PodSeen(added=now, created=meta.get("creationTimestamp", ""))
            if seen.done is None:
                for status in (obj.get("status") or {}).get("containerStatuses") or ():
                    terminated = (status.get("state") or {}).get("terminated")
                    if status.get("name") == self.container and terminated:
                        seen.done, seen.finished_at = now, terminated.get("finishedAt", "")
                        seen.exit_code = terminated.get("exitCode")
            if seen.pod_done is None and (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                seen.pod_done = now
        return meta.get("resourceVersion")

    def run_pods(self, run: str) -> dict[str, PodSeen]:
        """Return {task: PodSeen} of one TaskJob or Workflow."""
        with self._lock:
            return {task: seen for (r, task), seen in self.pods.items() if r == run}


def taskjob_key(meta: dict[str, Any]) -> tuple[str, str] | None:
    labels = meta.get("labels") or {}
    return (labels[TASKJOB_LABEL], labels[TASK_LABEL]) if TASKJOB_LABEL in labels and TASK_LABEL in labels else None


def argo_key(meta: dict[str, Any]) -> tuple[str, str] | None:
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    node = annotations.get(ARGO_NODE_NAME, "")
    if ARGO_WORKFLOW not in labels or not node:
        return None
    return labels[ARGO_WORKFLOW], node.rsplit(".", 1)[-1]  # node name "<workflow>.<task>"


# ---------------------------------------------------------------- Argo's controller as a process


def build_argo() -> Path:
    """Build (or reuse) Argo's binaries, CRDs and executor image; return the cache dir."""
    done = subprocess.run([str(ROOT / "benchmarks" / "argo" / "build.sh")], check=True, capture_output=True, text=True)
    return Path(done.stdout.strip().splitlines()[-1])


def argo_version(bed: Path) -> str:
    """Return the Argo version of the bed (its directory is named argo-<version>)."""
    return bed.name.removeprefix("argo-")


class ArgoController:
    """Argo's workflow-controller as a child process, namespaced to one namespace, leader election off."""

    def __init__(self, cluster: Cluster, bed: Path, namespace: str, log_dir: Path, env: dict[str, str]) -> None:
        self.cluster, self.bed, self.namespace, self.env = cluster, bed, namespace, env
        self.image = f"localhost/taskjob-bench/argoexec:{argo_version(bed)}"
        self.log_path = log_dir / f"workflow-controller-{uuid.uuid4().hex[:6]}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def install(self, load_image: bool = True) -> None:
        """Apply Argo's CRDs, the controller's configmap and the executor's RBAC; load the executor image."""
        for crd in sorted((self.bed / "crds").glob("*.yaml")):
            self.cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
        self.cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/workflows.argoproj.io")
        config = {
            # Pods use the image loaded onto the node; nothing is pulled.
            "executor": json.dumps({"imagePullPolicy": "IfNotPresent"}),
            # Its Prometheus server (port 9090) is not needed; the controller is measured from /proc.
            "metricsConfig": json.dumps({"enabled": False}),
            "telemetryConfig": json.dumps({"enabled": False}),
        }
        self.cluster.core.create_namespaced_config_map(
            self.namespace, {"metadata": {"name": "workflow-controller-configmap"}, "data": config}
        )
        # The executor's minimum permissions (manifests/quick-start/base/executor/emissary): its wait
        # container creates and patches the pod's WorkflowTaskResult, as the pod's ServiceAccount.
        rbac = self.cluster.api
        from kubernetes import client

        client.RbacAuthorizationV1Api(rbac).create_namespaced_role(self.namespace, {
            "metadata": {"name": "executor"},
            "rules": [
                {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]}
            ],
        })  # fmt: skip
        client.RbacAuthorizationV1Api(rbac).create_namespaced_role_binding(self.namespace, {
            "metadata": {"name": "executor-default"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "executor"},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": self.namespace}],
        })  # fmt: skip
        if load_image:
            archive = self.bed / "argoexec-image.tar"
            subprocess.run([str(ROOT / "tests" / "testenv" / "load-image.sh"), str(archive)], check=True)

    def start(self) -> ArgoController:
        """Start the controller (the bench's admin kubeconfig) and wait until /healthz answers."""
        args = [
            str(self.bed / "bin" / "workflow-controller"),
            "--kubeconfig", self.cluster.kubeconfig, "--namespace", self.namespace,
            "--namespaced", "--managed-namespace", self.namespace,
            "--executor-image", self.image, "--executor-image-pull-policy", "IfNotPresent",
            "--loglevel", "info",
        ]  # fmt: skip
        env = {**os.environ, "LEADER_ELECTION_DISABLE": "true", **self.env}
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        poll(self._healthy, 60, "the workflow-controller's /healthz (:6060)")
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"the workflow-controller exited: {self.log()[-3000:]}")
        try:
            with urllib.request.urlopen("http://127.0.0.1:6060/healthz", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Stop the controller (SIGTERM, then SIGKILL)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if hasattr(self, "_log") and not self._log.closed:
            self._log.close()


def cpu_seconds(pid: int) -> float:
    """Return utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory(pid: int) -> dict[str, int]:
    """Return VmRSS and VmHWM (peak RSS) in bytes."""
    result: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                result[key] = int(value.split()[0]) * 1024
    return result


# ---------------------------------------------------------------- one shape, one controller


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def figures(pods: dict[str, PodSeen], dag: dict[str, list[str]]) -> dict[str, Any]:
    """Return the latencies (watch and timestamp) and the fan-out launch rate of one finished run."""
    watch, stamps = [], []
    for task, deps in dag.items():
        if not deps or task not in pods or any(d not in pods or pods[d].done is None for d in deps):
            continue
        watch.append(pods[task].added - max(pods[d].done for d in deps))  # type: ignore[type-var]
        if pods[task].created and all(pods[d].finished_at for d in deps):
            stamps.append(_ts(pods[task].created) - max(_ts(pods[d].finished_at) for d in deps))
    children = [t for t, deps in dag.items() if deps == ["root"]]
    rate = spread = float("nan")
    if len(children) > 2 and "root" in pods and pods["root"].done is not None and all(c in pods for c in children):
        added = sorted(pods[c].added for c in children)
        rate = len(children) / (added[-1] - pods["root"].done)
        spread = (len(children) - 1) / (added[-1] - added[0]) if added[-1] > added[0] else float("nan")
    # The task container done -> the pod done: Argo's wait sidecar reporting the outcome; ~0 for taskjob.
    pod_done = [p.pod_done - p.done for p in pods.values() if p.done is not None and p.pod_done is not None]
    return {"watch": watch, "timestamps": stamps, "fan_out_rate": rate, "fan_out_spread": spread, "pod_done": pod_done}


def run_shape(kind: str, cluster: Cluster, ns: str, pid: int, watch: PodWatch, shape: str,
              dag: dict[str, list[str]], timeout: float, label: str = "") -> dict[str, Any]:  # fmt: skip
    """Run one DAG under one controller; return its figures."""
    name = f"{shape}-{uuid.uuid4().hex[:4]}"
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    if kind == "taskjob":
        cluster.create_taskjob(ns, taskjob_manifest(name, dag))

        def phase() -> str:
            return str(cluster.phases(ns).get(name, ""))
    else:
        cluster.custom.create_namespaced_custom_object(
            ARGO_GROUP, ARGO_VERSION, ns, ARGO_PLURAL, workflow_manifest(name, dag)
        )

        def phase() -> str:
            wf = cluster.custom.get_namespaced_custom_object(ARGO_GROUP, ARGO_VERSION, ns, ARGO_PLURAL, name)
            return str((wf.get("status") or {}).get("phase", ""))

    final = poll(lambda: (p := phase()) in ("Succeeded", "Failed", "Error", "Invalid") and p, timeout,
                 f"{kind} {name} to finish", interval=0.2)  # fmt: skip
    wall = time.perf_counter() - t0
    cpu = cpu_seconds(pid) - cpu0
    pods = watch.run_pods(name)
    result = {"phase": final, "wall": wall, "cpu": cpu, "tasks": len(dag), "pods": len(pods), **figures(pods, dag)}
    log(f"B5 {label or kind} {shape}: {final} in {wall:.1f}s, {cpu:.2f} CPU-s, {len(pods)} pods, "
        f"latency p50 {ms(percentile(result['watch'], 50))}")  # fmt: skip
    return result


@contextmanager
def _namespace(cluster: Cluster, prefix: str) -> Iterator[str]:
    # Plain namespaces (no kwok node selector): pods go to the real node. Deleted at the end.
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    cluster.core.create_namespace({"metadata": {"name": name, "labels": {"taskjob.dev/benchmark": prefix}}})
    poll(lambda: cluster._has_sa(name), 60, f"the default ServiceAccount of {name}")
    try:
        yield name
    finally:
        cluster.delete_namespace(name, timeout=300)


def check_real_node(cluster: Cluster) -> None:
    """Fail with a clear message unless the testenv's real node is Ready."""
    from kubernetes.client.rest import ApiException

    try:
        node = cluster.core.read_node(REAL_NODE)
    except ApiException as e:
        raise RuntimeError(f"B5 needs the real node {REAL_NODE} (`make testenv`): {e.status} {e.reason}") from e
    ready = [c for c in node.status.conditions or () if c.type == "Ready" and c.status == "True"]
    if not ready:
        raise RuntimeError(f"B5 needs the real node {REAL_NODE} Ready")


# Argo's two settings: as shipped, and with the workflow queue's per-workflow rate limit lowered. The
# controller reconciles one Workflow at most once per DEFAULT_REQUEUE_TIME (10 s; rate_limiters.go says
# "some users may wish to have this as low as 2s" and never goes below 1 s), whatever pod events arrive.
ARGO_VARIANTS = {"argo": {}, "argo-requeue-1s": {"DEFAULT_REQUEUE_TIME": "1s"}}


def run(cluster: Cluster, mode: str, qps: float) -> dict[str, Any]:
    """Run B5 and print its side-by-side table; return the figures."""
    check_real_node(cluster)
    started = time.perf_counter()
    bed = build_argo()
    log(f"B5: Argo bed ready in {time.perf_counter() - started:.0f}s ({bed})")
    dags = shapes(mode)
    log_dir = Path(tempfile.mkdtemp(prefix="taskjob-b5-"))
    results: dict[str, Any] = {"argo_version": argo_version(bed), "shapes": {s: {} for s in dags}, "logs": str(log_dir)}
    results["idle_rss"], results["peak_rss"] = {}, {}
    with (
        _namespace(cluster, "bench-b5-taskjob") as ns,
        Operator(cluster.kubeconfig, [ns], qps, log_dir=log_dir, label="b5") as op,
    ):
        with PodWatch(cluster, ns, taskjob_key, "task") as watch:
            results["idle_rss"]["taskjob"] = memory(op.pid)["VmRSS"]
            for shape, dag in dags.items():
                results["shapes"][shape]["taskjob"] = run_shape(
                    "taskjob", cluster, ns, op.pid, watch, shape, dag, 120 + 10 * len(dag)
                )
            results["peak_rss"]["taskjob"] = memory(op.pid)["VmHWM"]
        results["operator_problems"] = op.problems()
    loaded = False
    for variant, env in ARGO_VARIANTS.items():
        with _namespace(cluster, "bench-b5-argo") as ns:
            argo = ArgoController(cluster, bed, ns, log_dir, env)
            argo.install(load_image=not loaded)
            loaded = True
            argo.start()
            try:
                with PodWatch(cluster, ns, argo_key, "main") as watch:
                    results["idle_rss"][variant] = memory(argo.pid)["VmRSS"]
                    for shape, dag in dags.items():
                        results["shapes"][shape][variant] = run_shape(
                            "argo", cluster, ns, argo.pid, watch, shape, dag, 120 + 10 * len(dag), variant
                        )
                    results["peak_rss"][variant] = memory(argo.pid)["VmHWM"]
            finally:
                argo.stop()
    _print(results, mode, qps)
    return results


def _ratio(a: float, b: float) -> str:
    return "n/a" if a != a or b != b or b == 0 else f"{a / b:.2f}"


def _print(results: dict[str, Any], mode: str, qps: float) -> None:
    print(
        f"\n### B5 taskjob vs Argo Workflows {results['argo_version']} on the real node (same control plane, one run)\n"
    )
    print(
        f"mode {mode}; each task is busybox:1.36 running `true` on the real node; taskjob operator --qps {qps:g};"
        " Argo's workflow-controller at its defaults (--qps 20 --burst 30), then with DEFAULT_REQUEUE_TIME=1s;"
        " taskjob's shapes first, then each Argo setting's\n"
    )
    kinds = ["taskjob", *ARGO_VARIANTS]

    def row(shape: str, label: str, values: list[float], cell: Any) -> list[str]:
        return [shape, label, *[cell(v) for v in values], _ratio(values[1], values[0]), _ratio(values[2], values[0])]

    rows = []
    for shape, by_kind in results["shapes"].items():
        runs = [by_kind[k] for k in kinds]
        for label, p in (("dep done -> next pod, p50 (watch)", 50), ("dep done -> next pod, max (watch)", 100)):
            rows.append(row(shape, label, [percentile(r["watch"], p) for r in runs], ms))
        secs = [percentile(r["timestamps"], 50) for r in runs]
        rows.append(row(shape, "same, p50 from finishedAt/creationTimestamp (1 s)", secs, lambda v: f"{v:.0f} s"))
        rows.append(
            row(shape, "task container done -> pod done, p50", [percentile(r["pod_done"], 50) for r in runs], ms)
        )
        if any(r["fan_out_rate"] == r["fan_out_rate"] for r in runs):
            rows.append(row(shape, "fan-out pods/s (root done -> last child)", [r["fan_out_rate"] for r in runs], _f1))
            rows.append(row(shape, "fan-out pods/s (first -> last child)", [r["fan_out_spread"] for r in runs], _f1))
        rows.append(row(shape, "controller CPU per task", [r["cpu"] / r["tasks"] for r in runs], ms))
        rows.append(row(shape, "wall time (create -> finished)", [r["wall"] for r in runs], lambda v: f"{v:.1f} s"))
        rows.append([shape, "phase / pods", *[f"{r['phase']} / {r['pods']}" for r in runs], "-", "-"])
    for label, key in (("idle RSS", "idle_rss"), ("peak RSS (VmHWM)", "peak_rss")):
        rows.append(row("all", label, [results[key][k] for k in kinds], lambda v: f"{v / MIB:.0f} MiB"))
    headers = ["shape", "figure", "taskjob", "Argo", "Argo requeue 1s", "Argo / taskjob", "Argo 1s / taskjob"]
    print(table(headers, rows))
    if results.get("operator_problems"):
        print(f"\noperator log problems: {results['operator_problems']}")


def _f1(v: float) -> str:
    return "n/a" if v != v else f"{v:.1f}"
