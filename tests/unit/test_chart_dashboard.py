"""The chart's `dashboard.enabled`: a Deployment of `taskjob dashboard`, a Service, and read-only RBAC that
stays inside the watched namespaces in namespaced mode."""

from __future__ import annotations

import pytest
from test_chart_render import FULLNAME, HELM, NAMESPACE, grants, of_kind, render, render_error

pytestmark = pytest.mark.skipif(HELM is None, reason="no helm ($HELM, .testenv/bin/helm, PATH): run make testenv")

ON = ("dashboard.enabled=true",)
NAME = f"{FULLNAME}-dashboard"
READ = {"get", "list", "watch"}
DASHBOARD_GRANTS = {
    ("taskjob.dev", "taskjobs"): READ,
    ("batch", "jobs"): READ,
    ("", "pods"): READ,
    ("", "pods/log"): READ,
    ("", "events"): READ,
}


def named(objs: tuple[dict, ...], kind: str, name: str = NAME) -> list[dict]:  # type: ignore[type-arg]
    return [o for o in of_kind(objs, kind) if o["metadata"]["name"] == name]


def test_off_by_default() -> None:
    objs = render()
    assert not [o for o in objs if o["metadata"]["name"].startswith(NAME)]


def test_deployment_runs_the_dashboard_with_the_operators_image_non_root_read_only_with_probes() -> None:
    objs = render(*ON)
    [deployment] = named(objs, "Deployment")
    [operator] = named(objs, "Deployment", FULLNAME)
    pod = deployment["spec"]["template"]["spec"]
    [c] = pod["containers"]
    assert c["image"] == operator["spec"]["template"]["spec"]["containers"][0]["image"]
    assert c["command"] == ["taskjob", "dashboard"] and "--address=0.0.0.0" in c["args"]
    assert not [a for a in c["args"] if a.startswith("--namespace")], "all namespaces by default"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz" and c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["serviceAccountName"] == NAME, "its own identity, not the operator's"


def test_the_operators_deployment_and_service_do_not_select_the_dashboards_pods() -> None:
    objs = render(*ON)
    [deployment] = named(objs, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    for obj in named(objs, "Deployment", FULLNAME):
        selector = obj["spec"]["selector"]["matchLabels"]
        assert not selector.items() <= pod_labels.items()
    for service in of_kind(objs, "Service"):
        matches = service["spec"]["selector"].items() <= pod_labels.items()
        assert matches == (service["metadata"]["name"] == NAME), service["metadata"]["name"]
    [service] = named(objs, "Service")
    assert service["spec"]["type"] == "ClusterIP" and service["spec"]["ports"][0]["targetPort"] == "http"


def test_cluster_wide_rbac_is_read_only() -> None:
    objs = render(*ON)
    [role] = named(objs, "ClusterRole")
    assert grants(role) == DASHBOARD_GRANTS
    [binding] = named(objs, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}]
    assert named(objs, "ServiceAccount")


def test_namespaced_mode_grants_reads_in_the_watched_namespaces_only() -> None:
    objs = render(*ON, "watchNamespaces={team-a,team-b}")
    assert not named(objs, "ClusterRole") and not named(objs, "ClusterRoleBinding"), "nothing cluster-wide"
    roles = named(objs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert all(grants(r) == DASHBOARD_GRANTS for r in roles)
    assert sorted(b["metadata"]["namespace"] for b in named(objs, "RoleBinding")) == ["team-a", "team-b"]
    [deployment] = named(objs, "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [a for a in args if a.startswith("--namespace")] == ["--namespace=team-a", "--namespace=team-b"]


def test_bad_dashboard_values_are_rejected() -> None:
    assert "dashboard" in render_error(*ON, "dashboard.port=80")
    assert "dashboard" in render_error(*ON, "dashboard.colour=blue")


def test_actions_add_the_flag_and_patch_and_delete_on_taskjobs_only() -> None:
    assert (
        "--allow-actions"
        not in named(render(*ON), "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    )
    objs = render(*ON, "dashboard.actions.enabled=true", "watchNamespaces={team-a}")
    [deployment] = named(objs, "Deployment")
    assert "--allow-actions" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    [role] = named(objs, "Role")
    assert grants(role) == DASHBOARD_GRANTS | {("taskjob.dev", "taskjobs"): READ | {"patch", "delete"}}
