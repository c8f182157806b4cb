"""The operator's one asynchronous HTTP session to the API server: every call of the operator process.

The official client is synchronous (a thread per call, urllib3, its own serialisation) and its import
alone costs about 33 MB of RSS; an aiohttp session on the event loop costs a fraction of that
(docs/performance.md, B4). The address and credentials come from `connection.py`, the same loader kopf
logs in with; a token read from a file is re-read as it rotates.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aiohttp

from .connection import Connection


class ApiError(Exception):
    """An API answer other than 2xx: its HTTP status, Retry-After, and the server's message."""

    def __init__(self, status: int, body: bytes, retry_after: float = 0.0) -> None:
        self.status, self.body, self.retry_after = status, body, retry_after
        super().__init__(f"HTTP {status}: {self.reason}")

    @property
    def reason(self) -> str:
        """Return the server's message (a Status object's `message`), else the start of the answer."""
        try:
            status = json.loads(self.body)
        except ValueError:
            status = None
        if isinstance(status, dict) and status.get("message"):
            return str(status["message"])
        return self.body[:300].decode(errors="replace")


# Requests in flight at once (held by `kube.Slots`). A launch of many Jobs is bound by this over the API
# server's answer time, not by --qps, once an answer takes longer than CONNECTIONS / (2 x QPS): a 1,000-Job
# fan-out at --qps 200 answered in ~120-300 ms on a busy 2-core bed (B2, docs/performance.md), so 24 capped
# it below its QPS. Each TLS connection costs ~256 KiB of read buffer while open (uvloop), so not unbounded.
CONNECTIONS = 48


class ApiSession:
    """Requests and watch streams to the API server of a connection.

    How many requests are in flight at once is the caller's to limit (`kube.Slots`, by priority).
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.base = connection.server.rstrip("/")
        self._ssl = connection.ssl_context()
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        """Return the shared session (made on first use, inside the running event loop)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl, limit=0)  # requests are limited by the caller
            self._session = aiohttp.ClientSession(connector=connector, read_bufsize=2**20)  # a watch line: 1 object
        return self._session

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Return the request headers: the credentials (a token re-read as it rotates) and `extra`."""
        return {"Accept": "application/json", **self.connection.headers(), **(extra or {})}

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> bytes:
        """Send one request; return the response body, or raise ApiError for a status other than 2xx."""
        extra = {**(headers or {}), **({"Content-Type": content_type} if body is not None else {})}
        async with self.session().request(
            method, self.base + path, data=body, headers=self.headers(extra), params=params, timeout=timeout
        ) as resp:
            data = await resp.read()
            if resp.status >= 300:
                if resp.status == 401:  # perhaps a rotated token: read it again for the next request
                    self.connection.expire()
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
