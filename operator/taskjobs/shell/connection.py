"""Where the API server is and how the operator proves who it is: the pod's service account, else a kubeconfig.

One loader for both clients of the operator process: our aiohttp session (`apisession.py`) and kopf (its
login handler, `kopf_login`). Neither needs the official client, whose import alone costs about 33 MB of
RSS, a third of the idle operator (docs/performance.md). Only a kubeconfig user with `exec` or
`auth-provider` (EKS, GKE, AKS logins) is handed to the official client's loader, imported then: running
credential plugins is its job, not ours. In a pod (the chart) and with certificate or token kubeconfigs
(the testenv) the client is never imported.

Like client-go, a token file (the service account's, or a kubeconfig's `tokenFile`) is read again every
minute: the kubelet rotates bound service account tokens in place.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kopf
import yaml

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REREAD_SECONDS = 60.0  # client-go's cachingTokenSource re-reads its token file about as often


class ConfigError(Exception):
    """No usable credentials: what is missing or wrong, and where."""


class TokenFile:
    """A bearer token kept in a file that may be replaced at any time; read again every `reread` seconds."""

    def __init__(self, path: Path, reread: float = TOKEN_REREAD_SECONDS) -> None:
        self.path, self.reread = path, reread
        self._token: str | None = None
        self._read_at = 0.0

    def token(self) -> str:
        """Return the token: the file's content, at most `reread` seconds old."""
        now = time.monotonic()
        if self._token is None or now - self._read_at >= self.reread:
            try:
                self._token = self.path.read_text(encoding="utf-8").strip()
            except OSError as e:
                if self._token is None:
                    raise ConfigError(f"cannot read the token file {self.path}: {e.strerror}") from e
                # Mid-rotation (the kubelet swaps a symlink): keep the token we have, try again next time.
            self._read_at = now
        return self._token

    def expire(self) -> None:
        """Read the file again on the next request (the server refused the token)."""
        self._token = None


@dataclass(frozen=True)
class Connection:
    """The API server's address, how to trust it, and the operator's credentials."""

    server: str
    ca_file: str | None = None
    ca_data: str | None = None  # PEM
    insecure: bool = False
    cert_file: str | None = None
    cert_data: str | None = None  # PEM
    key_file: str | None = None
    key_data: str | None = None  # PEM
    token: str | None = None
    token_file: TokenFile | None = None
    username: str | None = None
    password: str | None = None
    namespace: str | None = None
    # The official client's credentials (exec, auth-provider): asked on every request, as it refreshes them.
    client_headers: Callable[[], dict[str, str]] | None = field(default=None, compare=False)

    def headers(self) -> dict[str, str]:
        """Return the authentication headers of a request (none for client certificates)."""
        if self.client_headers is not None:
            return self.client_headers()
        token = self.token_file.token() if self.token_file is not None else self.token
        if token:
            return {"Authorization": f"Bearer {token}"}
        if self.username and self.password:
            basic = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            return {"Authorization": f"Basic {basic}"}
        return {}

    def expire(self) -> None:
        """Forget a cached token: the server answered 401."""
        if self.token_file is not None:
            self.token_file.expire()

    def ssl_context(self) -> ssl.SSLContext | bool:
        """Return the TLS settings for aiohttp (False for a plain-HTTP server)."""
        if not self.server.startswith("https:"):
            return False
        if self.insecure and not (self.ca_file or self.ca_data):
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies nothing: no system CAs to load
        else:
            context = ssl.create_default_context(cafile=self.ca_file, cadata=self.ca_data)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        with _pem_file(self.cert_file, self.cert_data) as cert, _pem_file(self.key_file, self.key_data) as key:
            if cert:
                context.load_cert_chain(cert, key)
        return context


def load_connection(environ: Mapping[str, str] = os.environ, service_account: Path = SERVICE_ACCOUNT) -> Connection:
    """Return the connection of a pod's service account when in a pod, else of the current kubeconfig context."""
    host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
    if host and port and (service_account / "token").exists():
        return in_cluster(host, port, service_account)
    kubeconfig = environ.get("KUBECONFIG") or ""
    paths = [Path(p).expanduser() for p in kubeconfig.split(os.pathsep) if p.strip()]
    if not paths:
        default = Path(environ.get("HOME") or Path.home()) / ".kube" / "config"
        if not default.exists():
            raise ConfigError(
                "no Kubernetes credentials: not in a pod (KUBERNETES_SERVICE_HOST unset or no service account "
                f"token), KUBECONFIG unset and no {default}"
            )
        paths = [default]
    return from_kubeconfig(paths)


def in_cluster(host: str, port: str, service_account: Path = SERVICE_ACCOUNT) -> Connection:
    """Return the connection of the pod's service account (the API server's Service, its CA, the token)."""
    ca = service_account / "ca.crt"
    if not ca.exists():
        raise ConfigError(f"in a pod, but the service account's CA certificate {ca} is missing")
    namespace = service_account / "namespace"
    return Connection(
        server=f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}",
        ca_file=str(ca),
        token_file=TokenFile(service_account / "token"),
        namespace=namespace.read_text(encoding="utf-8").strip() if namespace.exists() else None,
    )


def from_kubeconfig(paths: list[Path]) -> Connection:
    """Return the connection of the current context of kubeconfig files merged as kubectl does (first wins)."""
    current: str | None = None
    entries: dict[str, dict[str, tuple[dict[str, Any], Path]]] = {"clusters": {}, "users": {}, "contexts": {}}
    for path in paths:
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as e:
            raise ConfigError(f"cannot read the kubeconfig {path}: {e.strerror}") from e
        except yaml.YAMLError as e:
            raise ConfigError(f"kubeconfig {path} is not valid YAML: {e}") from e
        if not isinstance(config, dict):
            raise ConfigError(f"kubeconfig {path}: not a mapping")
        current = current or config.get("current-context") or None
        for section, key in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
            for item in config.get(section) or ():
                if isinstance(item, dict) and item.get("name") not in entries[section]:
                    entries[section][str(item.get("name"))] = (item.get(key) or {}, path.parent)
    where = os.pathsep.join(map(str, paths))

    def entry(section: str, name: str | None, field_path: str) -> tuple[dict[str, Any], Path]:
        if not name:
            raise ConfigError(f"kubeconfig {where}: {field_path} is not set")
        if name not in entries[section]:
            raise ConfigError(f"kubeconfig {where}: {field_path} names {name!r}, but {section} has no such entry")
        return entries[section][name]

    context, _ = entry("contexts", current, "current-context")
    cluster, cluster_dir = entry("clusters", context.get("cluster"), f"contexts[{current}].cluster")
    user, user_dir = entry("users", context.get("user"), f"contexts[{current}].user")
    namespace = context.get("namespace") or None
    if user.get("exec") or user.get("auth-provider"):
        return _via_official_client(paths, str(current), namespace)
    if not cluster.get("server"):
        raise ConfigError(f"kubeconfig {where}: clusters[{context.get('cluster')}].server is not set")

    def file(value: Any, base: Path) -> str | None:
        return str(base / Path(str(value)).expanduser()) if value else None  # relative to its kubeconfig

    token_file = file(user.get("tokenFile"), user_dir)
    return Connection(
        server=str(cluster["server"]),
        ca_file=file(cluster.get("certificate-authority"), cluster_dir),
        ca_data=_pem(cluster, "certificate-authority-data", f"clusters[{context.get('cluster')}]"),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        cert_file=file(user.get("client-certificate"), user_dir),
        cert_data=_pem(user, "client-certificate-data", f"users[{context.get('user')}]"),
        key_file=file(user.get("client-key"), user_dir),
        key_data=_pem(user, "client-key-data", f"users[{context.get('user')}]"),
        token=user.get("token") or None,
        token_file=TokenFile(Path(token_file)) if token_file else None,  # client-go: it wins over `token`
        username=user.get("username") or None,
        password=user.get("password") or None,
        namespace=namespace,
    )


def _via_official_client(paths: list[Path], context: str, namespace: str | None) -> Connection:
    """Return a connection whose credentials the official client's kubeconfig loader provides (exec, auth-provider).

    This imports the client (about 33 MB of RSS); the other ways of logging in never do.
    """
    from kubernetes import client, config

    conf = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(paths[0]) if len(paths) == 1 else None,  # several: it merges $KUBECONFIG itself
        context=context,
        client_configuration=conf,
        persist_config=False,
    )

    def client_headers() -> dict[str, str]:
        # Reading the settings runs the client's refresh hook: an expired exec token is fetched again.
        headers: dict[str, str] = {}
        settings: dict[str, dict[str, Any]] = dict(conf.auth_settings())  # type: ignore[arg-type]
        for setting in settings.values():
            if setting.get("in") == "header" and setting.get("value"):
                key = str(setting["key"])
                headers["Authorization" if key.lower() == "authorization" else key] = str(setting["value"])
        return headers

    return Connection(
        server=conf.host,
        ca_file=conf.ssl_ca_cert,
        insecure=not conf.verify_ssl,
        cert_file=conf.cert_file,
        key_file=conf.key_file,
        username=conf.username or None,
        password=conf.password or None,
        namespace=namespace,
        client_headers=client_headers,
    )


def kopf_login(**_: Any) -> kopf.ConnectionInfo:
    """Return kopf's credentials from the same loader, loaded afresh: kopf logs in again after a 401."""
    conn = load_connection()
    scheme, _sep, token = conn.headers().get("Authorization", "").partition(" ")
    if scheme == "Basic":  # kopf builds it from the user name and password
        scheme = token = ""
    return kopf.ConnectionInfo(
        server=conn.server,
        ca_path=conn.ca_file,
        ca_data=conn.ca_data,
        insecure=conn.insecure,
        certificate_path=conn.cert_file,
        certificate_data=conn.cert_data,
        private_key_path=conn.key_file,
        private_key_data=conn.key_data,
        scheme=scheme or None,
        token=token or None,
        username=conn.username,
        password=conn.password,
        default_namespace=conn.namespace,
    )


def _pem(entry: Mapping[str, Any], name: str, where: str) -> str | None:
    """Return the PEM text of a kubeconfig entry's base64 `*-data` field."""
    if not entry.get(name):
        return None
    try:
        return base64.b64decode(str(entry[name]), validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError) as e:
        raise ConfigError(f"kubeconfig {where}.{name}: not the base64 of a PEM text") from e


@contextlib.contextmanager
def _pem_file(path: str | None, data: str | None) -> Iterator[str | None]:
    """Yield a file name for a certificate or key given inline: Python's ssl loads them only from files."""
    if path or not data:
        yield path
        return
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as f:  # private (0600), gone once loaded
        f.write(data)
        f.flush()
        yield f.name
