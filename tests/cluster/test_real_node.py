"""The testenv's real node runs real containers: what a user's pod relies on, as on kind.

Pods here use the probe image (tests/testenv/node/probe: a static binary, since no registry is reachable).
"""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

pytestmark = [pytest.mark.cluster, pytest.mark.realnode]
WaitFor = Callable[..., Any]
REAL_NODE_NAME = "taskjob-real-node"
NODE_TAINT_KEY = "taskjob.dev/testenv-node"  # label of the real node, taint of kwok's nodes


def probe_pod(name: str, image: str, args: list[str], labels: dict[str, str] | None = None) -> client.V1Pod:
    """Return a pod running the probe once, as non-root with a read-only root filesystem."""
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1PodSpec(
            restart_policy="Never",
            containers=[
                client.V1Container(
                    name="main",
                    image=image,
                    args=args,
                    security_context=client.V1SecurityContext(
                        run_as_non_root=True, read_only_root_filesystem=True, allow_privilege_escalation=False
                    ),
                )
            ],
        ),
    )


def finished(api_client: ApiClient, namespace: str, name: str) -> client.V1Pod | None:
    """Return the pod once it has ended (Succeeded or Failed), else None."""
    pod = client.CoreV1Api(api_client).read_namespaced_pod(name, namespace)
    return pod if pod.status and pod.status.phase in ("Succeeded", "Failed") else None


def terminated(pod: client.V1Pod) -> client.V1ContainerStateTerminated:
    """Return the first container's terminated state (which must be set)."""
    assert pod.status is not None and pod.status.container_statuses, pod.status
    state = pod.status.container_statuses[0].state
    assert state is not None and state.terminated is not None, state
    return state.terminated


def run_to_end(api_client: ApiClient, namespace: str, pod: client.V1Pod, wait_for: WaitFor) -> client.V1Pod:
    """Create the pod and return it once it has ended."""
    client.CoreV1Api(api_client).create_namespaced_pod(namespace, pod)
    assert pod.metadata is not None
    name = str(pod.metadata.name)
    ended: client.V1Pod = wait_for(lambda: finished(api_client, namespace, name), 90, f"pod {name} to end")
    return ended


def test_the_real_node_is_ready_and_kwok_nodes_are_reserved_for_tolerating_pods(
    api_client: ApiClient, real_node: Any
) -> None:
    core = client.CoreV1Api(api_client)
    node = core.read_node(REAL_NODE_NAME)
    assert node.metadata is not None and node.status is not None
    assert (node.metadata.labels or {}).get(NODE_TAINT_KEY) == "real"
    assert not (node.spec and node.spec.taints)
    addresses = {a.type: a.address for a in node.status.addresses or []}
    assert addresses["InternalIP"] == "198.18.0.1"
    assert node.status.node_info is not None and node.status.node_info.container_runtime_version.startswith(
        "containerd://2."
    )

    kwok = core.list_node(label_selector="type=kwok").items
    assert kwok
    for n in kwok:
        taints = [(t.key, t.value, t.effect) for t in (n.spec.taints if n.spec else None) or []]
        assert (NODE_TAINT_KEY, "kwok", "NoSchedule") in taints, (n.metadata and n.metadata.name, taints)


def test_pods_of_a_plain_namespace_run_on_the_real_node_and_of_the_test_namespace_on_kwok(
    api_client: ApiClient, real_namespace: str, namespace: str, probe_image: str, wait_for: WaitFor
) -> None:
    real = run_to_end(api_client, real_namespace, probe_pod("where", probe_image, ["exit", "0", "ok"]), wait_for)
    # kwok plays the pod: the image is never pulled, so any name does.
    fake = run_to_end(api_client, namespace, probe_pod("where", "busybox:1.36", ["true"]), wait_for)

    assert real.spec is not None and real.spec.node_name == REAL_NODE_NAME
    assert real.spec.node_selector is None and not [t for t in real.spec.tolerations or [] if t.key == NODE_TAINT_KEY]
    assert fake.spec is not None and fake.spec.node_name and fake.spec.node_name.startswith("kwok-node-")
    assert (fake.spec.node_selector or {}).get("type") == "kwok"


def test_a_containers_exit_code_and_termination_message_reach_the_api(
    api_client: ApiClient, real_namespace: str, probe_image: str, wait_for: WaitFor
) -> None:
    pod = run_to_end(api_client, real_namespace, probe_pod("fails", probe_image, ["exit", "3", "hello\n"]), wait_for)

    assert pod.status is not None and pod.status.phase == "Failed"
    state = terminated(pod)
    # The kubelet keeps the message byte for byte, trailing newline included (kwok's scripted messages cannot
    # show that).
    assert (state.exit_code, state.reason, state.message) == (3, "Error", "hello\n")


def test_kubectl_logs_reads_both_streams_of_a_real_container(
    api_client: ApiClient,
    real_namespace: str,
    probe_image: str,
    kubectl: Callable[..., str],
    wait_for: WaitFor,
) -> None:
    run_to_end(api_client, real_namespace, probe_pod("talks", probe_image, ["exit", "0", "line one"]), wait_for)

    # kubectl → API server → the kubelet on the node's address → containerd's log file.
    logs = kubectl("logs", "-n", real_namespace, "talks")

    assert sorted(logs.splitlines()) == ["stderr: line one", "stdout: line one"]


def test_a_pod_reaches_the_api_server_through_the_kubernetes_service_with_its_token(
    api_client: ApiClient, real_namespace: str, probe_image: str, wait_for: WaitFor
) -> None:
    pod = run_to_end(api_client, real_namespace, probe_pod("whoami", probe_image, ["whoami"]), wait_for)

    state = terminated(pod)
    assert state.exit_code == 0, state.message
    assert state.message == f"system:serviceaccount:{real_namespace}:default via 10.96.0.1:443"


def test_a_service_cluster_ip_reaches_its_pod_from_a_pod_and_from_this_machine(
    api_client: ApiClient, real_namespace: str, probe_image: str, wait_for: WaitFor
) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_pod(
        real_namespace, probe_pod("server", probe_image, ["serve", "8080"], labels={"app": "server"})
    )
    service = core.create_namespaced_service(
        real_namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="server"),
            spec=client.V1ServiceSpec(
                selector={"app": "server"}, ports=[client.V1ServicePort(port=80, target_port=8080)]
            ),
        ),
    )
    assert service.spec is not None
    cluster_ip = str(service.spec.cluster_ip)

    def server_ready() -> bool:
        pod = core.read_namespaced_pod("server", real_namespace)
        return bool(pod.status and pod.status.container_statuses and pod.status.container_statuses[0].ready)

    wait_for(server_ready, 90, "the server pod to be ready")

    # From this machine, as the API server calls a webhook behind its Service. kube-proxy programs the Service
    # a moment after the pod is ready: poll, and only then start the client pod.
    def get() -> str | None:
        try:
            with urllib.request.urlopen(f"http://{cluster_ip}/", timeout=2) as r:
                return str(r.read().decode())
        except OSError:
            return None

    assert wait_for(get, 30, f"GET http://{cluster_ip}/ from this machine") == "hello from server\n"

    # From a pod on the same bridge: DNAT and its reply through the node's iptables (hairpin on the bridge).
    client_pod = probe_pod("client", probe_image, ["get", f"http://{cluster_ip}/"])
    ended = run_to_end(api_client, real_namespace, client_pod, wait_for)
    assert (terminated(ended).exit_code, terminated(ended).message) == (0, "hello from server\n")


def test_a_job_on_the_real_node_is_completed_by_the_job_controller(
    api_client: ApiClient, real_namespace: str, probe_image: str, wait_for: WaitFor
) -> None:
    template = probe_pod("unused", probe_image, ["exit", "0", "done"])
    assert template.spec is not None
    job = client.V1Job(
        metadata=client.V1ObjectMeta(name="once"),
        spec=client.V1JobSpec(backoff_limit=0, template=client.V1PodTemplateSpec(spec=template.spec)),
    )
    batch = client.BatchV1Api(api_client)
    batch.create_namespaced_job(real_namespace, job)

    def complete() -> bool:
        status = batch.read_namespaced_job("once", real_namespace).status
        return any(c.type == "Complete" and c.status == "True" for c in (status and status.conditions) or [])

    wait_for(complete, 90, "Job once to complete")


def serving_certificate(tmp_path: Path, dns_name: str) -> tuple[bytes, bytes, bytes]:
    """Return (CA certificate, server certificate, server key), PEM, for a server named dns_name."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp_path)

    subj = "/CN=probe-webhook-ca"
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        subj,
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={dns_name}", "-keyout", "tls.key", "-out", "tls.csr")
    (tmp_path / "ext").write_text(f"subjectAltName=DNS:{dns_name}\nextendedKeyUsage=serverAuth\n")
    openssl(
        "x509",
        "-req",
        "-days",
        "1",
        "-in",
        "tls.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-extfile",
        "ext",
        "-out",
        "tls.crt",
    )
    ca, crt, key = ((tmp_path / f).read_bytes() for f in ("ca.crt", "tls.crt", "tls.key"))
    return ca, crt, key


def test_the_api_server_calls_an_admission_webhook_through_its_service(
    api_client: ApiClient, real_namespace: str, probe_image: str, tmp_path: Path, wait_for: WaitFor
) -> None:
    core = client.CoreV1Api(api_client)
    ca, crt, key = serving_certificate(tmp_path, f"deny.{real_namespace}.svc")
    core.create_namespaced_secret(
        real_namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="deny-tls"),
            type="kubernetes.io/tls",
            data={"tls.crt": base64.b64encode(crt).decode(), "tls.key": base64.b64encode(key).decode()},
        ),
    )
    pod = probe_pod("deny", probe_image, ["deny", "8443", "/tls"], labels={"app": "deny"})
    assert pod.spec is not None
    pod.spec.volumes = [client.V1Volume(name="tls", secret=client.V1SecretVolumeSource(secret_name="deny-tls"))]
    pod.spec.containers[0].volume_mounts = [client.V1VolumeMount(name="tls", mount_path="/tls", read_only=True)]
    core.create_namespaced_pod(real_namespace, pod)
    core.create_namespaced_service(
        real_namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="deny"),
            spec=client.V1ServiceSpec(
                selector={"app": "deny"}, ports=[client.V1ServicePort(port=443, target_port=8443)]
            ),
        ),
    )
    admission = client.AdmissionregistrationV1Api(api_client)
    name = f"probe-deny-{real_namespace}"
    webhook = client.V1ValidatingWebhookConfiguration(
        metadata=client.V1ObjectMeta(name=name),
        webhooks=[
            client.V1ValidatingWebhook(
                name="deny.probe.testenv.dev",
                admission_review_versions=["v1"],
                side_effects="None",
                failure_policy="Fail",
                timeout_seconds=5,
                client_config=client.AdmissionregistrationV1WebhookClientConfig(
                    service=client.AdmissionregistrationV1ServiceReference(name="deny", namespace=real_namespace),
                    ca_bundle=base64.b64encode(ca).decode(),
                ),
                # Only ConfigMaps of this test's namespace: nothing else in the cluster is affected.
                namespace_selector=client.V1LabelSelector(match_labels={"kubernetes.io/metadata.name": real_namespace}),
                rules=[
                    client.V1RuleWithOperations(
                        api_groups=[""], api_versions=["v1"], operations=["CREATE"], resources=["configmaps"]
                    )
                ],
            )
        ],
    )
    admission.create_validating_webhook_configuration(webhook)
    try:
        # The API server dials the Service's ClusterIP. Until it has seen the configuration, the pod serves and
        # kube-proxy has programmed the Service, a ConfigMap is admitted or the call fails (failurePolicy
        # Fail) with an error that is not the webhook's answer.
        def denial() -> str | None:
            cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(generate_name="probe-"))
            try:
                core.create_namespaced_config_map(real_namespace, cm)
            except ApiException as e:
                status = json.loads(e.body or "{}")
                return str(status.get("message")) if "denied by the probe webhook" in str(e.body) else None
            return None  # admitted: the API server has not seen the webhook configuration yet

        message = wait_for(denial, 90, "the API server to call the webhook through its Service")
        assert message == 'admission webhook "deny.probe.testenv.dev" denied the request: denied by the probe webhook'
    finally:
        admission.delete_validating_webhook_configuration(name)
