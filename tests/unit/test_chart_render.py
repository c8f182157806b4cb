"""The Helm chart as rendered by `helm lint` / `helm template`: what a platform team gets for each set of values.

Needs a helm binary: $HELM, else .testenv/bin/helm, else PATH, else the testenv's build cache.
"""

from __future__ import annotations

import base64
import functools
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "taskjob-operator"
DOCKERFILE = ROOT / "operator" / "Dockerfile"
RELEASE, NAMESPACE = "tj", "taskjob-system"
FULLNAME = "tj-taskjob-operator"
WEBHOOK_CONFIG = "taskjob.dev"  # the operator's default managed ValidatingWebhookConfiguration

Obj = dict[str, Any]

# The values of each install mode the tests compare.
DEFAULT: tuple[str, ...] = ()
NAMESPACED = ("watchNamespaces={team-a,team-b}",)
HA = ("replicaCount=2",)
HA_NAMESPACED = ("replicaCount=2", "watchNamespaces={team-a,team-b}")
WEBHOOK_OFF = ("webhook.enabled=false",)
MODES = {"default": DEFAULT, "namespaced": NAMESPACED, "ha": HA, "ha-namespaced": HA_NAMESPACED,
         "webhook-off": WEBHOOK_OFF}


def find_helm() -> str | None:
    """Return the path of a helm binary, or None when there is none."""
    candidates = [os.environ.get("HELM"), str(ROOT / ".testenv" / "bin" / "helm"), shutil.which("helm")]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "taskjob-testenv"
    candidates += [str(p) for p in sorted(cache.glob("*/helm"))]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


HELM = find_helm()
pytestmark = pytest.mark.skipif(HELM is None, reason="no helm ($HELM, .testenv/bin/helm, PATH): run make testenv")


def kube_version() -> str:
    """Return the Kubernetes version of the testenv (helm built from source defaults to v1.20)."""
    text = (ROOT / "tests" / "testenv" / "versions.env").read_text()
    found = re.search(r"^KUBERNETES_VERSION=(\S+)", text, re.MULTILINE)
    assert found, "tests/testenv/versions.env has no KUBERNETES_VERSION"
    return found.group(1)


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    """Return the finished `helm args...` process (not checked)."""
    assert HELM is not None
    return subprocess.run([HELM, *args], capture_output=True, text=True, timeout=120)


@functools.cache
def render(*sets: str, api_versions: tuple[str, ...] = ()) -> tuple[Obj, ...]:
    """Return the objects `helm template` renders with these --set values."""
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--kube-version", kube_version()]
    for s in sets:
        args += ["--set", s]
    for a in api_versions:
        args += ["--api-versions", a]
    proc = helm(*args)
    assert proc.returncode == 0, f"helm template {' '.join(sets)} failed:\n{proc.stderr}"
    return tuple(o for o in yaml.safe_load_all(proc.stdout) if o)


def test_helm_template_without_kube_version_assumes_the_testenvs_kubernetes() -> None:
    # The testenv's helm is built from source: without its Makefile's ldflags it assumed v1.20 and refused the chart.
    proc = helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE)
    assert proc.returncode == 0, proc.stderr
    assert "kind: Deployment" in proc.stdout


def render_error(*sets: str) -> str:
    """Return helm's error output for values it must reject."""
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--kube-version", kube_version()]
    for s in sets:
        args += ["--set", s]
    proc = helm(*args)
    assert proc.returncode != 0, f"helm accepted {sets}"
    return proc.stderr


def of_kind(objs: tuple[Obj, ...], kind: str) -> list[Obj]:
    """Return the rendered objects of one kind."""
    return [o for o in objs if o["kind"] == kind]


def one(objs: tuple[Obj, ...], kind: str) -> Obj:
    """Return the single rendered object of a kind."""
    found = of_kind(objs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def container(objs: tuple[Obj, ...]) -> Obj:
    """Return the operator container of the Deployment."""
    containers = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    only: Obj = containers[0]
    return only


def flags(objs: tuple[Obj, ...]) -> dict[str, list[str]]:
    """Return the operator's `--flag=value` arguments, grouped by flag."""
    out: dict[str, list[str]] = {}
    for arg in container(objs)["args"]:
        name, _, value = arg.partition("=")
        out.setdefault(name, []).append(value)
    return out


def rules(obj: Obj) -> Iterator[tuple[str, str, Obj]]:
    """Yield (apiGroup, resource, rule) for every resource a (Cluster)Role grants."""
    for rule in obj.get("rules", []):
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                yield group, resource, rule


def grants(obj: Obj) -> dict[tuple[str, str], set[str]]:
    """Return the verbs a (Cluster)Role grants per (apiGroup, resource)."""
    out: dict[tuple[str, str], set[str]] = {}
    for group, resource, rule in rules(obj):
        out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


# Exactly what the operator does to the objects it runs (per watched namespace, or cluster-wide).
WORKLOAD_GRANTS = {
    ("taskjob.dev", "taskjobs"): {"get", "list", "watch", "create", "patch", "delete"},  # create: CronTaskJobs
    ("taskjob.dev", "taskjobs/status"): {"get", "patch", "update"},
    ("taskjob.dev", "crontaskjobs"): {"get", "list", "watch"},
    ("taskjob.dev", "crontaskjobs/status"): {"get", "patch"},
    ("batch", "jobs"): {"get", "list", "watch", "create", "patch", "delete"},
    ("", "pods"): {"get", "list", "watch"},
    ("", "configmaps"): {"get", "list", "watch", "create", "patch", "update", "delete"},
    ("", "events"): {"create", "patch"},
    ("events.k8s.io", "events"): {"create", "patch"},
}
CRD_GRANTS = {("apiextensions.k8s.io", "customresourcedefinitions"): {"get", "list", "watch"}}
WEBHOOK_GRANTS = {("admissionregistration.k8s.io", "validatingwebhookconfigurations"): {"create", "get", "patch"}}


def test_helm_lint_passes_in_every_mode() -> None:
    for mode, sets in MODES.items():
        args = ["lint", str(CHART), "--strict", "--kube-version", kube_version()]
        for s in sets:
            args += ["--set", s]
        proc = helm(*args)
        assert proc.returncode == 0, f"helm lint ({mode}) failed:\n{proc.stdout}{proc.stderr}"


def test_default_install_watches_all_namespaces_with_one_cluster_role() -> None:
    objs = render()
    assert of_kind(objs, "Role") == [] and of_kind(objs, "RoleBinding") == []
    role = one(objs, "ClusterRole")
    assert grants(role) == WORKLOAD_GRANTS | CRD_GRANTS | WEBHOOK_GRANTS
    binding = one(objs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    account = one(objs, "ServiceAccount")["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}]
    assert one(objs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == account
    assert "--namespace" not in flags(objs)


def test_namespaced_mode_grants_the_workload_only_in_the_watched_namespaces() -> None:
    objs = render(*NAMESPACED)
    roles = {r["metadata"]["namespace"]: r for r in of_kind(objs, "Role")}
    assert set(roles) == {"team-a", "team-b"}
    for role in roles.values():
        assert grants(role) == WORKLOAD_GRANTS
    bindings = {b["metadata"]["namespace"]: b for b in of_kind(objs, "RoleBinding")}
    assert set(bindings) == {"team-a", "team-b"}
    for ns, binding in bindings.items():
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": roles[ns]["metadata"]["name"]}
        assert binding["subjects"][0]["namespace"] == NAMESPACE
    # Cluster-wide: only what kopf itself needs; nothing about TaskJobs, Jobs, pods, ConfigMaps or events.
    cluster_role = one(objs, "ClusterRole")
    assert grants(cluster_role) == CRD_GRANTS | WEBHOOK_GRANTS | {("", "namespaces"): {"get", "list", "watch"}}
    assert flags(objs)["--namespace"] == ["team-a", "team-b"]


@pytest.mark.parametrize("mode", MODES)
def test_no_rule_grants_secrets_or_wildcards(mode: str) -> None:
    for role in [o for o in render(*MODES[mode]) if o["kind"] in ("Role", "ClusterRole")]:
        for rule in role["rules"]:
            for key in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(key, []), f"{role['kind']} {role['metadata']['name']}: {rule}"
            assert not rule.get("nonResourceURLs"), rule
        assert not any(resource.startswith("secrets") for _, resource, _ in rules(role)), role["metadata"]


def test_webhook_configuration_access_is_limited_to_the_managed_object() -> None:
    role = one(render(), "ClusterRole")
    webhook_rules = [r for g, res, r in rules(role) if res == "validatingwebhookconfigurations"]
    by_name = [r for r in webhook_rules if r.get("resourceNames")]
    unnamed = [r for r in webhook_rules if not r.get("resourceNames")]
    assert [r["resourceNames"] for r in by_name] == [[WEBHOOK_CONFIG]]
    # create cannot be limited by name; it is the only verb granted on other objects.
    assert [set(r["verbs"]) for r in unnamed] == [{"create"}]


@pytest.mark.parametrize("sets", [DEFAULT, NAMESPACED], ids=["all-namespaces", "namespaced"])
def test_single_replica_runs_standalone_and_is_replaced_not_rolled(sets: tuple[str, ...]) -> None:
    objs = render(*sets)
    deployment = one(objs, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    # Without peering, two pods must never act at once: Recreate, not RollingUpdate.
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert "--peering" not in flags(objs) and container(objs)["command"] == ["taskjob", "operator"]
    assert not [o for o in objs if o["kind"] in ("ClusterKopfPeering", "KopfPeering")]
    assert not [r for o in objs if o["kind"] in ("Role", "ClusterRole") for _, res, r in rules(o) if "peering" in res]


def test_ha_runs_cluster_wide_peers_in_a_cluster_peering_object() -> None:
    objs = render(*HA)
    deployment = one(objs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    peering = one(objs, "ClusterKopfPeering")
    assert peering["apiVersion"] == "kopf.dev/v1"
    assert flags(objs)["--peering"] == [peering["metadata"]["name"]]
    assert grants(one(objs, "ClusterRole"))[("kopf.dev", "clusterkopfpeerings")] == {"get", "list", "watch", "patch"}
    # kopf names each peer by POD_ID; the pod name makes the peering object readable.
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in container(objs)["env"]}
    assert env["POD_ID"] == "metadata.name" and env["POD_NAME"] == "metadata.name"


def test_ha_in_namespaced_mode_peers_in_each_watched_namespace() -> None:
    objs = render(*HA_NAMESPACED)
    peerings = of_kind(objs, "KopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["team-a", "team-b"]
    assert {p["metadata"]["name"] for p in peerings} == set(flags(objs)["--peering"])
    assert of_kind(objs, "ClusterKopfPeering") == []
    for role in of_kind(objs, "Role"):
        assert grants(role)[("kopf.dev", "kopfpeerings")] == {"get", "list", "watch", "patch"}
    assert ("kopf.dev", "clusterkopfpeerings") not in grants(one(objs, "ClusterRole"))


def run_ha_entrypoint(tmp_path: Path, pod_name: str) -> list[str]:
    """Return the argv `taskjob` receives when the HA container command starts in a pod with this name."""
    objs = render(*HA)
    command, args = container(objs)["command"], container(objs)["args"]
    fake = tmp_path / "bin" / "taskjob"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    env = dict(os.environ, POD_NAME=pod_name, PATH=f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    argv = [sys.executable if command[0] == "python3" else command[0], *command[1:], *args]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return list(yaml.safe_load(proc.stdout))


def test_ha_pods_get_distinct_stable_priorities_and_keep_every_argument(tmp_path: Path) -> None:
    first = run_ha_entrypoint(tmp_path, "tj-taskjob-operator-7d9f8c6b5-abcde")
    second = run_ha_entrypoint(tmp_path, "tj-taskjob-operator-7d9f8c6b5-fghij")
    again = run_ha_entrypoint(tmp_path, "tj-taskjob-operator-7d9f8c6b5-abcde")
    args = container(render(*HA))["args"]
    for argv in (first, second):
        assert argv[0] == "operator" and argv[1].startswith("--priority=") and argv[2:] == args
    priorities = [int(argv[1].removeprefix("--priority=")) for argv in (first, second, again)]
    assert priorities[0] != priorities[1], "two pods got the same priority: kopf would pause both"
    assert priorities[0] == priorities[2]
    # JSON numbers beyond 2**53 lose precision in some clients; peers compare priorities read back from status.
    assert all(0 <= p < 2**53 for p in priorities)


@pytest.mark.parametrize("mode", MODES)
def test_pods_meet_the_restricted_pod_security_standard(mode: str) -> None:
    objs = render(*MODES[mode])
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    sc = container(objs)["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["readOnlyRootFilesystem"] is True
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    # The only writable path: /tmp (HOME and TMPDIR of the image) is an emptyDir.
    mounts = {m["mountPath"]: m["name"] for m in container(objs)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert all(m.get("readOnly") for m in container(objs)["volumeMounts"] if m["mountPath"] != "/tmp")


def test_probes_check_healthz_on_the_port_the_operator_serves_it() -> None:
    objs = render("health.port=8181")
    c = container(objs)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert flags(objs)["--health-port"] == ["8181"] and ports["health"] == 8181
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "health"}, probe


def test_metrics_port_is_served_and_scraped_by_the_optional_service_monitor() -> None:
    objs = render("metrics.serviceMonitor.enabled=true", "metrics.port=9100",
                  api_versions=("monitoring.coreos.com/v1/ServiceMonitor",))
    service = one(objs, "Service")
    metrics = next(p for p in service["spec"]["ports"] if p["name"] == "metrics")
    assert metrics == {"name": "metrics", "port": 9100, "targetPort": "metrics", "protocol": "TCP"}
    assert flags(objs)["--metrics-port"] == ["9100"]
    monitor = one(objs, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert of_kind(render(), "ServiceMonitor") == []
    assert flags(render("metrics.enabled=false"))["--metrics-port"] == ["0"]


def test_service_monitor_without_the_prometheus_operator_fails_with_a_reason() -> None:
    message = render_error("metrics.serviceMonitor.enabled=true")
    assert "monitoring.coreos.com/v1" in message and "metrics.serviceMonitor.enabled" in message


def test_webhook_is_served_through_the_service_with_a_certificate_for_its_host() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    objs = render()
    f = flags(objs)
    ports = {p["name"]: p for p in one(objs, "Service")["spec"]["ports"]}
    assert ports["webhook"]["port"] == 443 and ports["webhook"]["targetPort"] == "webhook"
    assert {p["name"]: p["containerPort"] for p in container(objs)["ports"]}["webhook"] == int(f["--webhook-port"][0])
    service = one(objs, "Service")["metadata"]["name"]
    assert f["--webhook-service"] == [service] and f["--webhook-service-namespace"] == [NAMESPACE]
    host = f"{service}.{NAMESPACE}.svc"
    assert f["--webhook-host"] == [host]
    assert f["--webhook-failure-policy"] == ["Fail"]

    # The certificate every replica serves: mounted from the Secret, valid for the host, signed by ca.crt.
    secret = one(objs, "Secret")
    mount = next(m for m in container(objs)["volumeMounts"] if m["mountPath"] == f["--webhook-cert-dir"][0])
    volumes = one(objs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    volume = next(v for v in volumes if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    cert, ca = x509.load_pem_x509_certificate(data["tls.crt"]), x509.load_pem_x509_certificate(data["ca.crt"])
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert host in names
    ca_key, algorithm = ca.public_key(), cert.signature_hash_algorithm
    assert isinstance(ca_key, rsa.RSAPublicKey) and algorithm is not None
    # Raises unless ca.crt signed the serving certificate.
    ca_key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), algorithm)
    assert cert.not_valid_after_utc > datetime.now(UTC) + timedelta(days=365)

    # The chart owns the configuration kopf fills in, so `helm uninstall` removes it.
    config = one(objs, "ValidatingWebhookConfiguration")
    assert config["metadata"]["name"] == WEBHOOK_CONFIG and not config.get("webhooks")


def test_webhook_off_renders_no_webhook_objects_and_tells_the_operator() -> None:
    objs = render(*WEBHOOK_OFF)
    assert of_kind(objs, "ValidatingWebhookConfiguration") == [] and of_kind(objs, "Secret") == []
    assert flags(objs)["--webhook-port"] == ["0"]
    assert not [k for k in flags(objs) if k.startswith("--webhook-") and k != "--webhook-port"]
    assert [p["name"] for p in one(objs, "Service")["spec"]["ports"]] == ["metrics"]
    assert "webhook" not in {p["name"] for p in container(objs)["ports"]}
    assert ("admissionregistration.k8s.io", "validatingwebhookconfigurations") not in grants(one(objs, "ClusterRole"))


def test_webhook_can_use_an_existing_certificate_secret() -> None:
    objs = render("webhook.tls.existingSecret=my-cert")
    assert of_kind(objs, "Secret") == []
    volumes = one(objs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"secretName": "my-cert", "defaultMode": 0o444} in [v.get("secret") for v in volumes]


def test_values_flow_into_the_deployment() -> None:
    objs = render("image.repository=registry.example/taskjob", "image.tag=1.2.3", "logLevel=debug",
                  "logFormat=text", "nodeSelector.pool=ops", "serviceAccount.name=robot")
    c = container(objs)
    assert c["image"] == "registry.example/taskjob:1.2.3"
    assert flags(objs)["--log-level"] == ["debug"] and flags(objs)["--log-format"] == ["text"]
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "ops"} and pod["serviceAccountName"] == "robot"
    assert container(render())["image"].endswith(":" + yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"])


def test_existing_service_account_and_no_rbac_render_neither() -> None:
    objs = render("serviceAccount.create=false", "serviceAccount.name=ops-robot", "rbac.create=false")
    assert [o["kind"] for o in objs if "Role" in o["kind"] or o["kind"] == "ServiceAccount"] == []
    assert one(objs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "ops-robot"


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        (("replicaCount=0",), ["/replicaCount", "minimum"]),
        (("replicaCount=two",), ["/replicaCount", "integer"]),
        (("logFormat=xml",), ["/logFormat", "json", "text"]),
        (("logLevel=verbose",), ["/logLevel", "debug"]),
        (("watchNamespaces={Team_A}",), ["/watchNamespaces/0", "Team_A"]),
        (("watchNamespaces={a,a}",), ["/watchNamespaces", "equal"]),
        (("webhook.failurePolicy=Sometimes",), ["/webhook/failurePolicy", "Fail", "Ignore"]),
        (("webhook.port=443",), ["/webhook/port", "minimum"]),
        (("image.pullPolicy=Sometimes",), ["/image/pullPolicy"]),
        (("replicas=2",), ["additional properties", "replicas"]),
        (("webhook.enable=false",), ["additional properties", "enable"]),
        (("metrics.port=8080",), ["metrics.port 8080 is already used by health.port"]),
        (("serviceAccount.create=false",), ["serviceAccount.name", "serviceAccount.create is false"]),
    ],
    ids=lambda v: ",".join(v) if isinstance(v, tuple) else None,
)
def test_bad_values_are_rejected_with_a_message_naming_the_value(sets: tuple[str, ...], expected: list[str]) -> None:
    message = render_error(*sets)
    for fragment in expected:
        assert fragment in message, f"{fragment!r} missing from:\n{message}"


def test_chart_taskjob_crd_is_identical_to_the_generated_one() -> None:
    generated = ROOT / "crds" / "taskjob.dev_taskjobs.yaml"
    copy = CHART / "crds" / "taskjob.dev_taskjobs.yaml"
    assert generated.is_file(), f"{generated.relative_to(ROOT)} is missing"
    assert copy.read_bytes() == generated.read_bytes(), (
        f"{copy.relative_to(ROOT)} differs from {generated.relative_to(ROOT)}: "
        f"cp {generated.relative_to(ROOT)} {copy.relative_to(ROOT)}"
    )


def test_chart_ships_the_peering_crds_kopf_looks_for() -> None:
    from kopf._cogs.structs import references  # the selectors kopf's peering resolves

    docs = [d for d in yaml.safe_load_all((CHART / "crds" / "kopf.dev_peerings.yaml").read_text()) if d]
    served = {(d["spec"]["group"], v["name"], d["spec"]["names"]["plural"], d["spec"]["scope"])
              for d in docs for v in d["spec"]["versions"] if v["served"]}
    expected = ((references.CLUSTER_PEERINGS_K, "Cluster"), (references.NAMESPACED_PEERINGS_K, "Namespaced"))
    for selector, scope in expected:
        assert (selector.group, selector.version, selector.any_name, scope) in served


def dockerfile_instructions() -> list[tuple[str, str]]:
    """Return the Dockerfile's (INSTRUCTION, arguments) pairs, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def test_image_installs_every_source_the_package_builds_from() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    sources = pyproject["tool"]["setuptools"]["packages"]["find"]["where"]
    needed = {"pyproject.toml", pyproject["project"]["readme"], *sources}
    copied: set[str] = set()
    for instruction, args in dockerfile_instructions():
        if instruction == "COPY" and not args.startswith("--from"):
            copied.update(p.rstrip("/") for p in args.split()[:-1])
    assert needed <= copied, f"operator/Dockerfile does not copy {sorted(needed - copied)}"
    ignored = {ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()}
    assert not needed & ignored, f".dockerignore drops {sorted(needed & ignored)}"
    assert any(i == "RUN" and "pip install ." in a for i, a in dockerfile_instructions())


def test_image_runs_as_the_numeric_user_the_chart_expects() -> None:
    final_stage = [(i, a) for i, a in dockerfile_instructions()]
    final_stage = final_stage[max(n for n, (i, _) in enumerate(final_stage) if i == "FROM"):]
    user = [a for i, a in final_stage if i == "USER"][-1]
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), "USER must be numeric so the kubelet can check runAsNonRoot"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    pod = values["podSecurityContext"]
    assert int(uid) == pod["runAsUser"] and int(gid) == pod["runAsGroup"]
    assert int(uid) != 0
    env = " ".join(a for i, a in final_stage if i == "ENV")
    assert "HOME=/tmp" in env and "TMPDIR=/tmp" in env
    assert [a for i, a in final_stage if i == "ENTRYPOINT"] == ['["taskjob", "operator"]']


@pytest.mark.parametrize("mode", MODES)
def test_every_flag_the_chart_passes_is_an_option_of_taskjob_operator(mode: str) -> None:
    probe = "import taskjobs.cli.main"
    missing = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    if "No module named 'taskjobs.cli" in missing.stderr:
        pytest.skip("the taskjob CLI (taskjobs.cli.main) is not written yet")
    proc = subprocess.run(
        [sys.executable, "-c", "from taskjobs.cli.main import main; main()", "operator", "--help"],
        capture_output=True, text=True, timeout=60, env=dict(os.environ, COLUMNS="200"),
    )
    assert proc.returncode == 0, proc.stderr
    options = set(re.findall(r"--[a-z][a-z0-9-]*", proc.stdout))
    passed = set(flags(render(*MODES[mode])))
    if mode.startswith("ha"):
        passed.add("--priority")  # added by the HA entrypoint
    assert passed <= options, f"`taskjob operator` has no {sorted(passed - options)}"
