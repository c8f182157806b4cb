"""How `taskjob operator` is configured: one place for the CLI flags, the chart and the tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class OperatorOptions:
    """Settings of one operator process."""

    namespaces: tuple[str, ...] = ()  # empty: all namespaces (cluster-wide)
    peering: str | None = None  # kopf peering object name for HA; None: standalone (no peering)
    priority: int = 0  # peering priority: the highest live priority acts, others wait
    health_host: str = "0.0.0.0"
    health_port: int = 8080  # GET /healthz (liveness); 0 disables
    metrics_port: int = 9090  # GET /metrics (Prometheus); 0 disables
    webhook_port: int = 0  # admission webhook (validating) on HTTPS; 0 disables
    webhook_host: str | None = None  # DNS name clients use (the Service), for the self-signed certificate
    webhook_service: str | None = None  # Service name/namespace the webhook configuration points to
    webhook_service_namespace: str | None = None
    webhook_config_name: str = "taskjob.dev"  # the ValidatingWebhookConfiguration kopf manages
    webhook_cert_dir: str | None = None  # tls.crt, tls.key, ca.crt shared by all replicas; None: self-signed
    webhook_failure_policy: Literal["Fail", "Ignore"] = "Ignore"  # Ignore: admit while the operator is down
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    client_qps: float = 200.0  # Kubernetes API requests per second (bursts of 2x); why 200: docs/performance.md B1
    extra: dict[str, str] = field(default_factory=dict)
