"""The chart's dashboard RBAC is enough and no more: `taskjob dashboard`, authenticated as the chart's
dashboard ServiceAccount in namespaced mode, serves its namespace, and may not list other namespaces."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from dashboard_harness import DashboardProcess
from kubernetes import client
from operator_harness import ROOT, TaskJobs, poll

pytestmark = pytest.mark.cluster

CHART = ROOT / "charts" / "taskjob-operator"


@pytest.fixture
def dashboard_identity(helm: Callable[..., str], namespace: str, api_client: Any, tmp_path: Path) -> Iterator[Path]:
    """Install the chart for `namespace` with the dashboard on; return a kubeconfig for the dashboard's SA."""
    release = f"tjd-{uuid.uuid4().hex[:6]}"
    helm(
        "install",
        release,
        str(CHART),
        "-n",
        namespace,
        "--set",
        f"watchNamespaces={{{namespace}}}",
        "--set",
        "webhook.enabled=false",
        "--set",
        "dashboard.enabled=true",
    )
    account = f"{release}-taskjob-operator-dashboard"
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))
    token = (
        client.CoreV1Api(api_client).create_namespaced_service_account_token(account, namespace, request).status.token
    )
    admin = api_client.configuration
    ca = Path(admin.ssl_ca_cert).read_bytes()
    kubeconfig = tmp_path / "dashboard-sa.kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "sa",
                "clusters": [
                    {
                        "name": "testenv",
                        "cluster": {"server": admin.host, "certificate-authority-data": base64.b64encode(ca).decode()},
                    }
                ],
                "users": [{"name": "sa", "user": {"token": token}}],
                "contexts": [{"name": "sa", "context": {"cluster": "testenv", "user": "sa", "namespace": namespace}}],
            }
        )
    )
    yield kubeconfig
    helm("uninstall", release, "-n", namespace)


def test_the_dashboard_serves_its_namespace_with_the_charts_read_only_identity(
    dashboard_identity: Path, namespace: str, taskjob_crd: None, taskjobs: TaskJobs, tmp_path: Path
) -> None:
    taskjobs.create(ROOT / "examples" / "diamond.yaml")
    served = DashboardProcess(str(dashboard_identity), [namespace], tmp_path / "namespaced.log")
    try:
        poll(served.ready, 60, "the dashboard's /readyz")
        view = served.view(view="overview")
        assert view["errors"] == [], "every watch (TaskJobs, Jobs, pods, Events) is allowed"
        assert [(r["namespace"], r["name"]) for r in view["taskjobs"]] == [(namespace, "diamond")]
    finally:
        served.stop()
    assert "Traceback" not in served.logs()


def test_the_same_identity_may_not_watch_all_namespaces_and_the_page_says_so(
    dashboard_identity: Path, namespace: str, taskjob_crd: None, tmp_path: Path
) -> None:
    served = DashboardProcess(str(dashboard_identity), [], tmp_path / "cluster-wide.log")
    try:
        poll(lambda: served.ready("/healthz"), 60, "the dashboard to listen")
        errors = poll(lambda: served.view(view="overview")["errors"], 30, "the watches' errors")
        assert (
            "not allowed to watch taskjobs in all namespaces (use -n NAMESPACE to watch one namespace you may read)"
            in errors
        )
        assert not served.ready(), "not ready while it cannot list"
    finally:
        served.stop()
