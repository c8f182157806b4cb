"""Helpers for the real-node tests: JSON reads, plain namespaces, the chart installed as a user installs it."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "taskjob-operator"
# What `make images` puts on the node: the two images the README and the chart name, and the examples' busybox.
IMAGES = ("taskjob-operator:0.1.0", "taskjob-runner:0.1.0", "busybox:1.36")
CONTAINERD_SOCKET = "unix:///run/taskjob-testenv/containerd.sock"  # tests/testenv/node/lib.sh

Kubectl = Callable[..., str]


def get_json(kubectl: Kubectl, *args: str) -> Any:
    """Return the object(s) as JSON, or None when not found."""
    out = kubectl("get", *args, "-o", "json", "--ignore-not-found")
    return json.loads(out) if out.strip() else None


def create_namespace(kubectl: Kubectl, stem: str, labels: dict[str, str] | None = None) -> str:
    """Create a namespace ready for pods (its default ServiceAccount exists) and return its name."""
    name = f"{stem}-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    for key, value in (labels or {}).items():
        kubectl("label", "namespace", name, f"{key}={value}")
    deadline = time.monotonic() + 60
    while not get_json(kubectl, "serviceaccount", "default", "-n", name):
        assert time.monotonic() < deadline, f"no default ServiceAccount in {name} after 60 s"
        time.sleep(0.2)  # polling interval; the deadline decides
    return name


@dataclass
class Release:
    name: str
    namespace: str  # where the operator runs (restricted Pod Security)
    watches: str  # the namespace the operator watches, where the tests' TaskJobs go

    @property
    def fullname(self) -> str:
        return f"{self.name}-taskjob-operator"


def install(helm: Callable[..., str], kubectl: Kubectl, watches: str, *values: str) -> Release:
    """`helm install` of the chart with the built image into a restricted namespace; waits for Ready pods."""
    system = create_namespace(kubectl, "taskjob-system", {"pod-security.kubernetes.io/enforce": "restricted"})
    release = Release(f"tj-{uuid.uuid4().hex[:5]}", system, watches)
    args = ["install", release.name, str(CHART), "-n", system, "--set", f"watchNamespaces={{{watches}}}"]
    for value in values:
        args += ["--set", value]
    helm(*args, "--wait", "--timeout", "180s")
    kubectl("rollout", "status", f"deployment/{release.fullname}", "-n", system, "--timeout=180s")
    return release


def uninstall(helm: Callable[..., str], kubectl: Kubectl, release: Release) -> None:
    """`helm uninstall`, then the release's namespace goes."""
    helm("uninstall", release.name, "-n", release.namespace, "--wait", "--timeout", "120s")
    kubectl("delete", "namespace", release.namespace, "--wait=false")


def operator_restarts(kubectl: Kubectl, release: Release) -> list[str]:
    """Return, for each operator container that restarted, its restart count, last state and last log lines."""
    pods = get_json(kubectl, "pods", "-n", release.namespace, "-l", f"app.kubernetes.io/instance={release.name}")
    found = []
    for pod in (pods or {}).get("items", []):
        for status in pod["status"].get("containerStatuses") or []:
            if status.get("restartCount"):
                name = pod["metadata"]["name"]
                previous = kubectl("logs", "-n", release.namespace, name, "--previous", check=False)
                found.append(f"{name}: {status['restartCount']} restarts, last {status.get('lastState')}\n"
                             f"{previous[-3000:]}")
    return found


def status_of(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    obj = get_json(kubectl, "taskjob", name, "-n", namespace)
    return dict((obj or {}).get("status") or {})


def wait_finished(kubectl: Kubectl, wait_for: Callable[..., Any], namespace: str, name: str,
                  timeout: float = 180) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        status = status_of(kubectl, namespace, name)
        return status if status.get("phase") in ("Succeeded", "Failed", "Invalid") else None

    result: dict[str, Any] = wait_for(finished, timeout, f"TaskJob {namespace}/{name} to finish")
    return result


def outputs(kubectl: Kubectl, namespace: str, name: str) -> dict[str, str]:
    cm = get_json(kubectl, "configmap", f"{name}-outputs", "-n", namespace)
    return dict((cm or {}).get("data") or {})


def pods_of(kubectl: Kubectl, namespace: str, name: str) -> list[dict[str, Any]]:
    found = get_json(kubectl, "pods", "-n", namespace, "-l", f"taskjob.dev/taskjob={name}")
    return list((found or {}).get("items", []))


def manifest(name: str, tasks: list[dict[str, Any]], **spec: Any) -> str:
    return yaml.safe_dump({"apiVersion": "taskjob.dev/v1alpha1", "kind": "TaskJob", "metadata": {"name": name},
                           "spec": {**spec, "tasks": tasks}})
