"""The validating admission webhook: kopf serves it and manages its configuration; we bring the certificate.

The certificate is self-signed and made at startup (no cert-manager needed); kopf writes its CA into
the ValidatingWebhookConfiguration it manages. In a cluster the API server reaches the webhook through
its Service; outside one (the testenv) through a URL on the host.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import tempfile
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import kopf
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .options import OperatorOptions


def self_signed(names: Sequence[str], directory: Path) -> tuple[Path, Path, bytes]:
    """Write a self-signed certificate and key for `names`; return (certfile, keyfile, cert PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    certfile, keyfile = directory / "tls.crt", directory / "tls.key"
    certfile.write_bytes(pem)
    keyfile.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    keyfile.chmod(0o600)
    return certfile, keyfile, pem


class ServiceWebhookServer(kopf.WebhookServer):
    """kopf's server, but the webhook configuration points at a Service instead of a URL."""

    def __init__(self, *, service: str, service_namespace: str, service_port: int = 443, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service = {"name": service, "namespace": service_namespace, "port": service_port}

    async def __call__(self, fn: kopf.WebhookFn) -> AsyncIterator[kopf.WebhookClientConfig]:
        async for config in super().__call__(fn):
            yield service_client_config(config, self.service)


def service_client_config(config: kopf.WebhookClientConfig, service: dict[str, Any]) -> kopf.WebhookClientConfig:
    """Return kopf's URL client config as a Service reference, with the URL's root path (no trailing slash).

    kopf appends `/<handler id>` to the path: a root path of "/" gave "//validate", which the API server
    rejects in a Service reference (seen when the chart first ran the operator as a pod).
    """
    config = dict(config)  # type: ignore[assignment]
    url = config.pop("url", None) or ""
    config["service"] = {**service, "path": urllib.parse.urlparse(url).path.rstrip("/")}  # type: ignore[typeddict-item]
    return config


def skip_mutating_configuration() -> None:
    """Keep kopf from creating a MutatingWebhookConfiguration that taskjob never uses.

    kopf manages a mutating configuration beside the validating one under `settings.admission.managed`, and
    creates it even when no mutating handler exists. Creating one needs cluster-wide `create` on
    MutatingWebhookConfigurations (a way to rewrite any request in the cluster), which the chart rightly does
    not grant: kopf then failed the operator pod at startup (403, then exit). taskjob has no mutating
    handler, so its manager just idles. Remove this if kopf learns to skip configurations without handlers.
    Call it before `kopf.operator()`: kopf creates the manager's coroutine when it spawns its tasks, before
    any startup handler runs.
    """
    from kopf._core.engines import admission

    async def idle(**_: Any) -> None:
        await asyncio.Event().wait()

    admission.mutating_configuration_manager = idle


def configure_webhook(settings: kopf.OperatorSettings, options: OperatorOptions) -> None:
    """Serve the validating webhook on options.webhook_port and let kopf manage its configuration."""
    host = options.webhook_host or "127.0.0.1"
    names = [host, "localhost", "127.0.0.1"]
    if options.webhook_service and options.webhook_service_namespace:
        svc, ns = options.webhook_service, options.webhook_service_namespace
        names = [f"{svc}.{ns}.svc", f"{svc}.{ns}.svc.cluster.local", svc, *names]
    common: dict[str, Any] = {"addr": "0.0.0.0", "port": options.webhook_port, "host": host}
    if options.webhook_cert_dir:
        # Every replica serves the same certificate (from a mounted Secret), so the one CA in the
        # webhook configuration is right whichever replica the Service picks.
        cert_dir = Path(options.webhook_cert_dir)
        common |= {"certfile": str(cert_dir / "tls.crt"), "pkeyfile": str(cert_dir / "tls.key"),
                   "cafile": str(cert_dir / "ca.crt")}
    else:
        certfile, keyfile, pem = self_signed(names, Path(tempfile.mkdtemp(prefix="taskjob-webhook-")))
        common |= {"certfile": str(certfile), "pkeyfile": str(keyfile), "cadata": pem}
    if options.webhook_service and options.webhook_service_namespace:
        settings.admission.server = ServiceWebhookServer(
            service=options.webhook_service, service_namespace=options.webhook_service_namespace, **common
        )
    else:
        settings.admission.server = kopf.WebhookServer(**common)
    settings.admission.managed = options.webhook_config_name
