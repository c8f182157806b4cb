"""The operator process never loads the official Kubernetes client (about 33 MB of RSS, a third of the idle
operator: docs/performance.md); only a kubeconfig user with `exec` or `auth-provider` brings it in."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

# What `taskjob operator` loads before kopf runs: the command, the shell, its credentials, its handlers.
OPERATOR = """
import json, sys
import taskjobs.cli.main
from taskjobs.shell.run import serve
from taskjobs.shell.connection import kopf_login
from taskjobs.shell.handlers import build_registry
from taskjobs.shell.kube import Kube
from taskjobs.shell.options import OperatorOptions
from taskjobs.shell.store import Store
from taskjobs.shell.workqueue import WorkQueue

async def reconcile(key):
    return None

kube = Kube(qps=1)
build_registry(OperatorOptions(webhook_port=8443, peering="p"), Store(), WorkQueue(reconcile), kube, "me")
headers = kube.http.headers()
kopf_login()
print(json.dumps({"headers": headers,
                  "loaded": sorted(m for m in sys.modules if m.partition(".")[0] == "kubernetes")}))
"""


def operator_modules(tmp_path: Path, user: dict[str, Any]) -> dict[str, Any]:
    config = tmp_path / "kubeconfig"
    config.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "here",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "here", "context": {"cluster": "c", "user": "u"}}],
    }))  # fmt: skip
    env = {"KUBECONFIG": str(config), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", OPERATOR], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    result: dict[str, Any] = json.loads(run.stdout.splitlines()[-1])
    return result


def test_the_operator_process_does_not_import_the_kubernetes_client(tmp_path: Path) -> None:
    result = operator_modules(tmp_path, {"token": "t0k"})
    assert result["headers"]["Authorization"] == "Bearer t0k"
    assert result["loaded"] == []


def test_an_exec_credential_plugin_is_run_by_the_official_client_loaded_then(tmp_path: Path) -> None:
    credential = {"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
                  "status": {"token": "from-plugin"}}
    plugin = {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": sys.executable,
              "args": ["-c", f"print({json.dumps(json.dumps(credential))})"]}
    result = operator_modules(tmp_path, {"exec": plugin})
    assert result["headers"]["Authorization"] == "Bearer from-plugin"
    assert "kubernetes.config" in result["loaded"]  # the documented exception (shell/connection.py)
