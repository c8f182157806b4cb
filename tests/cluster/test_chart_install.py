"""`helm install` of the chart into the testenv: what lands in the cluster, what the operator may do, what uninstall
leaves. kwok fakes the pods, so the image is never pulled; the operator process itself is tested elsewhere."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "taskjob-operator"
WEBHOOK_CONFIG = "taskjob.dev"
CRDS = ("taskjobs.taskjob.dev", "crontaskjobs.taskjob.dev", "clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev")

pytestmark = pytest.mark.cluster

Kubectl = Callable[..., str]
Helm = Callable[..., str]
WaitFor = Callable[..., Any]


def get(kubectl: Kubectl, *args: str) -> dict[str, Any] | None:
    """Return the object as JSON, or None when it does not exist."""
    out = kubectl("get", *args, "-o", "json", "--ignore-not-found")
    return json.loads(out) if out.strip() else None


def can_i(
    kubectl: Kubectl, account: str, verb: str, resource: str, namespace: str | None = None, subresource: str = ""
) -> bool:
    """Return whether the ServiceAccount `namespace:name` may do `verb` on `resource` (`kind/name` for one object)."""
    args = ["auth", "can-i", verb, resource, f"--as=system:serviceaccount:{account}"]
    args += ["-n", namespace] if namespace else []
    args += [f"--subresource={subresource}"] if subresource else []
    return kubectl(*args, check=False).strip() == "yes"


@pytest.fixture
def release(namespace: str, kubectl: Kubectl, helm: Helm) -> Iterator[str]:
    """A release name for the chart in `namespace`; uninstalled after the test if still there."""
    name = f"tjo-{uuid.uuid4().hex[:6]}"
    # Restricted Pod Security in the release's namespace: a pod the chart renders outside the profile is
    # rejected, so its ReplicaSet creates none.
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    # An operator run outside the chart (kopf creates its webhook configuration when missing, and never deletes
    # it) leaves an object Helm would refuse to adopt.
    leftover = get(kubectl, "validatingwebhookconfiguration", WEBHOOK_CONFIG)
    if leftover and "meta.helm.sh/release-name" not in leftover["metadata"].get("annotations", {}):
        kubectl("delete", "validatingwebhookconfiguration", WEBHOOK_CONFIG)
    yield name
    if name in helm("list", "-n", namespace, "-q"):
        helm("uninstall", name, "-n", namespace)


def pods_of(kubectl: Kubectl, namespace: str, release: str) -> list[dict[str, Any]]:
    """Return the operator pods of the release."""
    found = get(kubectl, "pods", "-n", namespace, "-l", f"app.kubernetes.io/instance={release}")
    return list(found["items"]) if found else []


def replica_set_events(kubectl: Kubectl, namespace: str) -> str:
    """Return the namespace's events, to explain pods that were not created."""
    return kubectl("get", "events", "-n", namespace, "--field-selector", "involvedObject.kind=ReplicaSet")


def test_install_creates_the_operator_and_uninstall_removes_it(
    namespace: str, release: str, kubectl: Kubectl, helm: Helm, wait_for: WaitFor
) -> None:
    helm("install", release, str(CHART), "-n", namespace)
    fullname = f"{release}-taskjob-operator"
    account = f"{namespace}:{fullname}"

    for crd in CRDS:
        kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    for kind, name in [("deployment", fullname), ("serviceaccount", fullname), ("service", fullname),
                       ("secret", f"{fullname}-webhook-tls")]:
        assert get(kubectl, kind, name, "-n", namespace), f"{kind} {name} was not created"
    for kind in ("clusterrole", "clusterrolebinding"):
        assert get(kubectl, kind, fullname), f"{kind} {fullname} was not created"
    config = get(kubectl, "validatingwebhookconfiguration", WEBHOOK_CONFIG)
    assert config and config["metadata"]["annotations"]["meta.helm.sh/release-name"] == release

    # The Deployment's pod passes the restricted Pod Security admission of its namespace.
    try:
        wait_for(lambda: pods_of(kubectl, namespace, release), 60, "the operator pod")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{replica_set_events(kubectl, namespace)}") from e

    # What the operator's ServiceAccount may do, anywhere in the cluster: its work, and nothing of Secrets.
    assert can_i(kubectl, account, "create", "jobs.batch", "default")
    assert can_i(kubectl, account, "patch", "taskjobs.taskjob.dev", "default", subresource="status")
    assert can_i(kubectl, account, "create", "taskjobs.taskjob.dev", "default")  # CronTaskJobs' runs
    assert can_i(kubectl, account, "patch", "crontaskjobs.taskjob.dev", "default", subresource="status")
    assert not can_i(kubectl, account, "patch", "crontaskjobs.taskjob.dev", "default")  # only their status
    assert can_i(kubectl, account, "watch", "pods", "default")
    assert not can_i(kubectl, account, "create", "pods", "default")
    assert not can_i(kubectl, account, "get", "secrets", namespace)
    assert not can_i(kubectl, account, "list", "secrets", "default")
    assert can_i(kubectl, account, "patch", f"validatingwebhookconfigurations/{WEBHOOK_CONFIG}")
    assert not can_i(kubectl, account, "patch", "validatingwebhookconfigurations/someone-elses")

    helm("uninstall", release, "-n", namespace)

    def removed() -> bool:
        return not any([
            get(kubectl, "deployment", fullname, "-n", namespace),
            get(kubectl, "serviceaccount", fullname, "-n", namespace),
            get(kubectl, "secret", fullname + "-webhook-tls", "-n", namespace),
            get(kubectl, "clusterrole", fullname),
            get(kubectl, "clusterrolebinding", fullname),
            get(kubectl, "validatingwebhookconfiguration", WEBHOOK_CONFIG),
        ])

    wait_for(removed, 60, f"helm uninstall {release} to remove the operator's objects")
    # Helm never deletes CRDs from crds/ (that would delete every TaskJob): they stay for the next install.
    for crd in CRDS:
        assert get(kubectl, "crd", crd), f"{crd} was deleted"


def test_namespaced_ha_install_grants_only_the_watched_namespace(
    namespace: str, release: str, kubectl: Kubectl, helm: Helm, wait_for: WaitFor
) -> None:
    helm(
        "install", release, str(CHART), "-n", namespace,
        "--set", f"watchNamespaces={{{namespace}}}", "--set", "replicaCount=2", "--set", "webhook.enabled=false",
    )
    fullname = f"{release}-taskjob-operator"
    account = f"{namespace}:{fullname}"

    # Both peers run, sharing the peering object kopf needs to exist in the watched namespace.
    assert get(kubectl, "kopfpeering", fullname, "-n", namespace), "the KopfPeering was not created"
    try:
        wait_for(lambda: len(pods_of(kubectl, namespace, release)) == 2, 60, "two operator pods")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{replica_set_events(kubectl, namespace)}") from e

    assert can_i(kubectl, account, "create", "jobs.batch", namespace)
    assert can_i(kubectl, account, "patch", "kopfpeerings.kopf.dev", namespace)
    assert not can_i(kubectl, account, "create", "jobs.batch", "default")
    assert not can_i(kubectl, account, "list", "taskjobs.taskjob.dev", "default")
    assert not can_i(kubectl, account, "get", "secrets", namespace)
    assert can_i(kubectl, account, "list", "customresourcedefinitions.apiextensions.k8s.io")
    assert not get(kubectl, "validatingwebhookconfiguration", WEBHOOK_CONFIG)

    helm("uninstall", release, "-n", namespace)
    wait_for(lambda: not get(kubectl, "role", fullname, "-n", namespace), 60, "the Role to be removed")
    wait_for(lambda: not get(kubectl, "clusterrole", fullname + "-cluster"), 60, "the ClusterRole to be removed")


def test_upgrade_keeps_the_webhook_certificate_and_the_webhooks_the_operator_wrote(
    namespace: str, release: str, kubectl: Kubectl, helm: Helm
) -> None:
    helm("install", release, str(CHART), "-n", namespace)
    secret = f"{release}-taskjob-operator-webhook-tls"
    ca_before = kubectl("get", "secret", secret, "-n", namespace, "-o", "jsonpath={.data.ca\\.crt}")
    # What the operator (kopf) writes into the configuration the chart owns.
    webhook = {
        "name": "validate.taskjob.dev",
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "failurePolicy": "Ignore",
        # Only this test's namespace: other tests share the cluster.
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
        "clientConfig": {"service": {"name": f"{release}-taskjob-operator", "namespace": namespace}},
        "rules": [{"apiGroups": ["taskjob.dev"], "apiVersions": ["v1alpha1"], "resources": ["taskjobs"],
                   "operations": ["CREATE"]}],
    }
    kubectl("patch", "validatingwebhookconfiguration", WEBHOOK_CONFIG, "--type=merge",
            "-p", json.dumps({"webhooks": [webhook]}))

    # Scaling to peers and back switches the rollout strategy both ways.
    helm("upgrade", release, str(CHART), "-n", namespace, "--set", "replicaCount=2")
    helm("upgrade", release, str(CHART), "-n", namespace, "--set", "replicaCount=1", "--set", "logLevel=debug")

    deployment = get(kubectl, "deployment", f"{release}-taskjob-operator", "-n", namespace)
    assert deployment and deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert kubectl("get", "secret", secret, "-n", namespace, "-o", "jsonpath={.data.ca\\.crt}") == ca_before
    config = get(kubectl, "validatingwebhookconfiguration", WEBHOOK_CONFIG)
    assert config and [w["name"] for w in config.get("webhooks", [])] == ["validate.taskjob.dev"]
