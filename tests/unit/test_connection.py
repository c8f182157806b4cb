"""The operator's credentials, without the official client: kubeconfigs as kubectl reads them, a pod's service
account with its rotating token, and one loader for our session and for kopf."""

from __future__ import annotations

import asyncio
import base64
import ssl
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from taskjobs.shell.apisession import ApiSession
from taskjobs.shell.connection import ConfigError, Connection, TokenFile, kopf_login, load_connection
from taskjobs.shell.webhook import self_signed


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubeconfig(path: Path, user: dict[str, Any], cluster: dict[str, Any] | None = None, **context: Any) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "here",
        "clusters": [{"name": "c", "cluster": cluster or {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "here", "context": {"cluster": "c", "user": "u", **context}}],
    }))  # fmt: skip
    return path


def test_a_kubeconfig_token_and_namespace(tmp_path: Path) -> None:
    conn = load_connection({"KUBECONFIG": str(kubeconfig(tmp_path / "kc", {"token": "t0k"}, namespace="team-a"))})
    assert (conn.server, conn.namespace, conn.headers()) == (
        "https://127.0.0.1:6443", "team-a", {"Authorization": "Bearer t0k"}
    )


def test_the_first_kubeconfig_of_a_list_wins_and_relative_files_are_beside_it(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    cluster = {"server": "https://a", "certificate-authority": "ca.crt"}
    first = kubeconfig(tmp_path / "a" / "kc", {"tokenFile": "token"}, cluster)
    (tmp_path / "a" / "token").write_text("from-a\n")
    second = kubeconfig(tmp_path / "kc2", {"token": "from-b"}, {"server": "https://b"})
    conn = load_connection({"KUBECONFIG": f"{first}:{second}"})
    assert (conn.server, conn.ca_file, conn.headers()) == (
        "https://a", str(tmp_path / "a" / "ca.crt"), {"Authorization": "Bearer from-a"}
    )


def test_a_token_file_is_read_again_as_it_rotates(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first")
    source = TokenFile(token, reread=0)  # the operator's: every minute
    assert source.token() == "first"
    token.write_text("second")
    assert source.token() == "second"
    token.unlink()  # mid-rotation: the token we have is still the best one
    assert source.token() == "second"


def test_in_a_pod_the_service_account_is_used(tmp_path: Path) -> None:
    for name, text in {"token": "sa-token", "ca.crt": "", "namespace": "taskjob-system"}.items():
        (tmp_path / name).write_text(text)
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443", "KUBECONFIG": "/nonexistent"}
    conn = load_connection(env, service_account=tmp_path)
    assert (conn.server, conn.ca_file, conn.namespace) == ("https://[fd00::1]:443", str(tmp_path / "ca.crt"),
                                                           "taskjob-system")
    assert conn.headers() == {"Authorization": "Bearer sa-token"}
    (tmp_path / "token").write_text("rotated")
    conn.expire()  # what a 401 does
    assert conn.headers() == {"Authorization": "Bearer rotated"}


@pytest.mark.parametrize(
    ("environ", "config", "message"),
    [
        ({"HOME": "/nonexistent"}, None, "no Kubernetes credentials"),
        ({}, {"current-context": "gone", "contexts": []}, "current-context names 'gone'"),
        ({}, {"current-context": "x", "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
              "clusters": [{"name": "c", "cluster": {}}], "users": [{"name": "u", "user": {}}]},
         r"clusters\[c\].server is not set"),
        ({}, {"current-context": "x", "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
              "clusters": [{"name": "c", "cluster": {"server": "https://a", "certificate-authority-data": "%%"}}],
              "users": [{"name": "u", "user": {}}]},
         r"clusters\[c\].certificate-authority-data: not the base64"),
    ],
)
def test_unusable_configurations_say_what_is_wrong(
    tmp_path: Path, environ: dict[str, str], config: dict[str, Any] | None, message: str
) -> None:
    if config is not None:
        (tmp_path / "kc").write_text(yaml.safe_dump(config))
        environ = {**environ, "KUBECONFIG": str(tmp_path / "kc")}
    with pytest.raises(ConfigError, match=message):
        load_connection(environ)


def test_session_and_kopf_reach_a_tls_server_with_the_kubeconfigs_ca_and_client_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The testenv's kind of kubeconfig: inline CA, client certificate and key; the server checks all three."""
    (tmp_path / "server").mkdir()
    (tmp_path / "client").mkdir()
    server_cert, server_key, server_pem = self_signed(["127.0.0.1"], tmp_path / "server")
    client_cert, client_key, client_pem = self_signed(["operator"], tmp_path / "client")
    seen: list[str | None] = []

    async def handler(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        seen.append(str(peer["subject"]) if peer else None)
        return web.json_response({"kind": "Status", "status": "Success"})

    async def scenario(conn: Connection) -> bytes:
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cadata=client_pem.decode())
        server_tls.load_cert_chain(server_cert, server_key)
        server_tls.verify_mode = ssl.CERT_REQUIRED
        app = web.Application()
        app.router.add_get("/version", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        session = ApiSession(Connection(**{**conn.__dict__, "server": f"https://127.0.0.1:{port}"}))
        try:
            return await session.request("GET", "/version")
        finally:
            await session.close()
            await runner.cleanup()

    path = kubeconfig(
        tmp_path / "kc",
        {"client-certificate-data": b64(client_pem), "client-key-data": b64(client_key.read_bytes())},
        {"server": "https://127.0.0.1:6443", "certificate-authority-data": b64(server_pem)},
    )
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert b"Success" in asyncio.run(scenario(load_connection()))
    assert seen and "operator" in str(seen[0])  # the server saw our client certificate

    info = kopf_login()  # kopf's credentials: the same server, CA and certificate
    assert (info.server, info.ca_data, info.certificate_data) == (
        "https://127.0.0.1:6443", server_pem.decode(), client_pem.decode()
    )
    assert info.as_ssl_context().verify_mode == ssl.CERT_REQUIRED


def test_kopf_logs_in_with_the_token_of_the_same_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "kc", {"token": "t0k"}, namespace="team-a")))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    info = kopf_login()
    assert (info.server, info.scheme, info.token, info.default_namespace) == (
        "https://127.0.0.1:6443", "Bearer", "t0k", "team-a"
    )
    assert info.as_http_headers() == {"Authorization": "Bearer t0k"}


def test_requests_beyond_the_connections_wait_for_one_and_the_wait_is_reported() -> None:
    """At most `connections` requests reach the API server at once; the others wait for one, and
    taskjob_api_connection_wait_seconds says how long (else it reads as the API server's answer time)."""
    from prometheus_client import REGISTRY

    from taskjobs.shell.kube import Kube

    answer = 0.05  # the server's answer time
    in_flight, most = 0, 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(answer)  # the answer time, not a synchronisation
        in_flight -= 1
        return web.json_response({"kind": "Status", "status": "Success"})

    async def scenario() -> None:
        app = web.Application()
        app.router.add_post("/jobs", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        session = ApiSession(Connection(server=f"http://127.0.0.1:{port}"))
        kube = Kube(session, qps=0, connections=2)
        try:
            await asyncio.gather(*(kube._request("create_namespaced_job", "POST", "/jobs", {}) for _ in range(6)))
        finally:
            await session.close()
            await runner.cleanup()

    def waited() -> tuple[float, float]:
        name = "taskjob_api_connection_wait_seconds"
        return REGISTRY.get_sample_value(f"{name}_count") or 0.0, REGISTRY.get_sample_value(f"{name}_sum") or 0.0

    count0, sum0 = waited()
    asyncio.run(scenario())
    count, total = waited()
    assert most == 2
    assert count - count0 == 6
    # Two went at once, two waited for one answer, two for two answers.
    assert total - sum0 >= 2 * answer + 2 * 2 * answer
