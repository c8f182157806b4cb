"""The chart's RBAC is sufficient and minimal: the operator, authenticated as the chart's ServiceAccount,
completes a DAG, and that identity may not read Secrets."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException
from operator_harness import ROOT, OperatorProcess, TaskJobs

pytestmark = pytest.mark.cluster

CHART = ROOT / "charts" / "taskjob-operator"


@pytest.fixture
def chart_identity(helm: Callable[..., str], namespace: str, api_client: Any, tmp_path: Path) -> Iterator[Path]:
    """Install the chart for `namespace` (namespaced mode, no webhook) and return a kubeconfig for its SA."""
    release = f"tjr-{uuid.uuid4().hex[:6]}"
    helm("install", release, str(CHART), "-n", namespace, "--set", f"watchNamespaces={{{namespace}}}",
         "--set", "webhook.enabled=false", "--set", "serviceAccount.name=taskjob-operator")
    token = client.CoreV1Api(api_client).create_namespaced_service_account_token(
        "taskjob-operator", namespace, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
            audiences=[], expiration_seconds=3600)),
    ).status.token
    admin = api_client.configuration
    ca = Path(admin.ssl_ca_cert).read_bytes()
    kubeconfig = tmp_path / "sa.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "testenv", "cluster": {
            "server": admin.host, "certificate-authority-data": base64.b64encode(ca).decode()}}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "testenv", "user": "sa", "namespace": namespace}}],
    }))
    yield kubeconfig
    helm("uninstall", release, "-n", namespace)


def test_operator_as_the_chart_service_account_completes_the_diamond(
    chart_identity: Path, namespace: str, taskjob_crd: None, taskjobs: TaskJobs, tmp_path: Path
) -> None:
    op = OperatorProcess(str(chart_identity), [namespace], tmp_path)
    try:
        op.start()
        taskjobs.create(ROOT / "examples" / "diamond.yaml")
        status = taskjobs.wait_phase("diamond", ("Succeeded", "Failed"))
        assert status["phase"] == "Succeeded", status.get("message")
        assert any(e.reason == "TaskStarted" for e in taskjobs.events("diamond"))  # events: allowed too
    finally:
        op.stop()
    logs = op.logs()
    denials = [line for line in logs.splitlines() if "Forbidden" in line or "forbidden" in line]
    assert not denials, "\n".join(denials[:10])

    from kubernetes import config

    sa = config.new_client_from_config(str(chart_identity))
    with pytest.raises(ApiException) as denied:
        client.CoreV1Api(sa).list_namespaced_secret(namespace)
    assert denied.value.status == 403
