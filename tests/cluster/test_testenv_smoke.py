"""The testenv is a real control plane: real Job controller, GC, CRD validation, RBAC, and helm."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.cluster
WaitFor = Callable[..., Any]


def make_job(name: str, annotations: dict[str, str] | None = None) -> client.V1Job:
    """Return a one-pod Job that the Job controller never retries."""
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1JobSpec(
            backoff_limit=0,
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(annotations=annotations),
                spec=client.V1PodSpec(
                    restart_policy="Never",
                    containers=[client.V1Container(name="main", image="busybox:1.36", command=["true"])],
                ),
            ),
        ),
    )


def job_condition(api_client: ApiClient, namespace: str, name: str) -> str | None:
    """Return the type of the Job's terminal condition (Complete/Failed) once it is True, else None."""
    status = client.BatchV1Api(api_client).read_namespaced_job(name, namespace).status
    for cond in (status.conditions if status else None) or []:
        if cond.type in ("Complete", "Failed") and cond.status == "True":
            return str(cond.type)
    return None


def job_pod(api_client: ApiClient, namespace: str, job: str) -> client.V1Pod:
    """Return the single pod of a Job."""
    pods = client.CoreV1Api(api_client).list_namespaced_pod(namespace, label_selector=f"job-name={job}").items
    assert len(pods) == 1, [p.metadata.name for p in pods if p.metadata]
    return pods[0]


def phase_and_terminated(pod: client.V1Pod) -> tuple[str | None, client.V1ContainerStateTerminated]:
    """Return the pod's phase and its first container's terminated state (which must be set)."""
    assert pod.status is not None and pod.status.container_statuses, pod.status
    state = pod.status.container_statuses[0].state
    assert state is not None and state.terminated is not None, state
    return pod.status.phase, state.terminated


def test_job_whose_pod_completes_ends_complete(api_client: ApiClient, namespace: str, wait_for: WaitFor) -> None:
    client.BatchV1Api(api_client).create_namespaced_job(namespace, make_job("ok"))

    outcome = wait_for(lambda: job_condition(api_client, namespace, "ok"), 60, "Job ok to finish")

    assert outcome == "Complete"
    phase, terminated = phase_and_terminated(job_pod(api_client, namespace, "ok"))
    assert (phase, terminated.exit_code) == ("Succeeded", 0)


def test_job_whose_pod_fails_ends_failed_with_exit_code_and_message(
    api_client: ApiClient, namespace: str, wait_for: WaitFor
) -> None:
    annotations = {"kwok.taskjob.dev/exit-code": "3", "kwok.taskjob.dev/message": "boom"}
    client.BatchV1Api(api_client).create_namespaced_job(namespace, make_job("bad", annotations))

    outcome = wait_for(lambda: job_condition(api_client, namespace, "bad"), 60, "Job bad to finish")

    assert outcome == "Failed"
    phase, terminated = phase_and_terminated(job_pod(api_client, namespace, "bad"))
    assert (phase, terminated.exit_code, terminated.message) == ("Failed", 3, "boom")


def test_deleting_an_owner_deletes_its_dependents(api_client: ApiClient, namespace: str, wait_for: WaitFor) -> None:
    core = client.CoreV1Api(api_client)
    owner = core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner")))
    assert owner.metadata is not None
    ref = client.V1OwnerReference(api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid)
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="dependent", owner_references=[ref]))
    )

    core.delete_namespaced_config_map("owner", namespace)

    def dependent_gone() -> bool:
        try:
            core.read_namespaced_config_map("dependent", namespace)
        except ApiException as e:
            if e.status == 404:
                return True
            raise
        return False

    wait_for(dependent_gone, 60, "the garbage collector to delete ConfigMap dependent")


@pytest.fixture
def widget_crd(api_client: ApiClient, wait_for: WaitFor) -> Iterator[tuple[str, str]]:
    """A throwaway namespaced CRD (group, plural) with a structural schema and a status subresource."""
    ext = client.ApiextensionsV1Api(api_client)
    group = f"smoke{uuid.uuid4().hex[:8]}.testenv.dev"
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["size"],
                "properties": {"size": {"type": "integer", "minimum": 1, "maximum": 10}},
            },
            "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
        },
    }
    crd: Any = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {"status": {}},
                }
            ],
        },
    }
    ext.create_custom_resource_definition(crd)

    def established() -> bool:
        status = ext.read_custom_resource_definition(f"widgets.{group}").status
        conditions = (status.conditions if status else None) or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    wait_for(established, 30, f"CRD widgets.{group} to be established")
    yield group, "widgets"
    ext.delete_custom_resource_definition(f"widgets.{group}")


def test_crd_schema_rejects_invalid_objects_and_prunes_unknown_status_fields(
    api_client: ApiClient, namespace: str, widget_crd: tuple[str, str]
) -> None:
    group, plural = widget_crd
    custom = client.CustomObjectsApi(api_client)

    def widget(name: str, size: int) -> dict[str, Any]:
        return {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": name}, "spec": {"size": size}}

    with pytest.raises(ApiException) as rejected:
        custom.create_namespaced_custom_object(group, "v1", namespace, plural, widget("huge", 99))
    assert rejected.value.status == 422
    assert "spec.size" in str(rejected.value.body)

    custom.create_namespaced_custom_object(group, "v1", namespace, plural, widget("small", 2))
    custom.patch_namespaced_custom_object_status(
        group, "v1", namespace, plural, "small", {"status": {"phase": "Ready", "bogus": "dropped"}}
    )

    stored = cast(dict[str, Any], custom.get_namespaced_custom_object(group, "v1", namespace, plural, "small"))
    assert stored["status"] == {"phase": "Ready"}


def test_service_account_is_forbidden_without_a_grant_and_allowed_with_one(
    api_client: ApiClient,
    namespace: str,
    as_service_account: Callable[[str, str], ApiClient],
    wait_for: WaitFor,
) -> None:
    as_reader = client.CoreV1Api(as_service_account("reader", namespace))

    with pytest.raises(ApiException) as forbidden:
        as_reader.list_namespaced_config_map(namespace)
    assert forbidden.value.status == 403

    rbac = client.RbacAuthorizationV1Api(api_client)
    rule = client.V1PolicyRule(api_groups=[""], resources=["configmaps"], verbs=["get", "list"])
    rbac.create_namespaced_role(namespace, client.V1Role(metadata=client.V1ObjectMeta(name="read-cm"), rules=[rule]))
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="reader-read-cm"),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="read-cm"),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="reader", namespace=namespace)],
        ),
    )

    def allowed() -> bool:
        try:
            as_reader.list_namespaced_config_map(namespace)
        except ApiException as e:
            if e.status == 403:
                return False
            raise
        return True

    wait_for(allowed, 30, "the RoleBinding to grant the ServiceAccount access")


def test_helm_installs_and_uninstalls_a_chart(
    api_client: ApiClient, namespace: str, helm: Callable[..., str], tmp_path: Path
) -> None:
    chart = tmp_path / "smoke"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: smoke\nversion: 0.1.0\n")
    (chart / "templates" / "configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config\ndata:\n  greeting: hello\n"
    )
    core = client.CoreV1Api(api_client)

    helm("install", "smoke", str(chart), "--namespace", namespace, "--wait", "--timeout", "60s")

    assert core.read_namespaced_config_map("smoke-config", namespace).data == {"greeting": "hello"}
    assert "smoke" in helm("list", "--namespace", namespace, "--short").split()

    helm("uninstall", "smoke", "--namespace", namespace, "--wait", "--timeout", "60s")

    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("smoke-config", namespace)
    assert gone.value.status == 404
    assert helm("list", "--namespace", namespace, "--short").split() == []
