"""A lean asynchronous HTTP session to the API server, with the credentials the official client loaded.

The official client is synchronous (a thread per call, urllib3, its own serialisation); for the watch
streams of Jobs and pods and for the hot writes, an aiohttp session on the event loop costs a fraction
of that (docs/performance.md, B4). Credentials come from the client's configuration (kubeconfig or
in-cluster), so there is one source of truth; a token with a refresh hook (in-cluster, rotated) is
asked for on every request.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

import aiohttp
from kubernetes import client


class ApiError(Exception):
    """An API answer other than 2xx: its HTTP status, Retry-After, and the server's message."""

    def __init__(self, status: int, body: bytes, retry_after: float = 0.0) -> None:
        self.status, self.body, self.retry_after = status, body, retry_after
        super().__init__(f"HTTP {status}: {body[:300].decode(errors='replace')}")


def ssl_context(conf: client.Configuration) -> ssl.SSLContext | bool:
    """Return the TLS settings of the client configuration for aiohttp (False: no verification)."""
    if not conf.host.startswith("https"):
        return False
    context = ssl.create_default_context(cafile=conf.ssl_ca_cert) if conf.verify_ssl else ssl.SSLContext()
    if not conf.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if conf.cert_file:
        context.load_cert_chain(conf.cert_file, conf.key_file)
    return context


class ApiSession:
    """GET, POST, PATCH and streaming GET against the API server of a client configuration."""

    def __init__(self, conf: client.Configuration | None = None, connections: int = 16) -> None:
        self.conf = conf or client.Configuration.get_default_copy()
        self.base = self.conf.host.rstrip("/")
        self._ssl = ssl_context(self.conf)
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        """Return the shared session (made on first use, inside the running event loop)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl, limit=self._connections + 8)
            self._session = aiohttp.ClientSession(connector=connector, read_bufsize=2**20)  # a watch line: 1 object
        return self._session

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Return the request headers: the credentials (a refreshed token when there is one) and `extra`."""
        headers = {"Accept": "application/json", **(extra or {})}
        # The client's own auth settings: a kubeconfig token is kept as "BearerToken", an in-cluster one as
        # "authorization"; reading it runs the refresh hook (rotated service account tokens), if any.
        settings: dict[str, dict[str, Any]] = dict(self.conf.auth_settings())  # type: ignore[arg-type]
        for setting in settings.values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[str(setting["key"])] = str(setting["value"])
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> bytes:
        """Send one request; return the response body, or raise ApiError for a status other than 2xx."""
        headers = self.headers({"Content-Type": content_type} if body is not None else None)
        async with self.session().request(
            method, self.base + path, data=body, headers=headers, params=params, timeout=timeout
        ) as resp:
            data = await resp.read()
            if resp.status >= 300:
                raise ApiError(resp.status, data, _retry_after(resp.headers.get("Retry-After")))
            return data

    def stream(
        self, path: str, params: Mapping[str, str], timeout: aiohttp.ClientTimeout
    ) -> Any:  # an async context manager of aiohttp.ClientResponse
        """Return a streaming GET (a watch): `async with api.stream(...) as resp` and read resp.content."""
        return self.session().get(self.base + path, params=params, headers=self.headers(), timeout=timeout)

    async def close(self) -> None:
        """Close the session's connections."""
        if self._session is not None:
            await self._session.close()


def _retry_after(value: str | None) -> float:
    try:
        return float(value or 0)
    except ValueError:
        return 0.0
