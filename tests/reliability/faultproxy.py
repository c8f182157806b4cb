"""A fault-injecting HTTP proxy in front of the Kubernetes API server, for the reliability suite.

The operator's kubeconfig points at the proxy (plain HTTP on 127.0.0.1); the proxy forwards every
request to the real API server with the credentials of another kubeconfig (the testenv admin's client
certificate), and injects faults into a chosen fraction of requests:

- 429 Too Many Requests with Retry-After, and 500 Internal Error, instead of forwarding;
- 500 after forwarding (the write happened, its response is lost);
- 409 Conflict on PATCH/PUT/DELETE instead of forwarding; on POST after forwarding, as AlreadyExists
  (what a client sees when it retries a create whose first response was lost);
- the connection dropped before or after forwarding, with no response;
- on watches: a 410 Gone ERROR event (the API server's "too old resource version"), the stream cut,
  or the stream stalled (kept open, nothing forwarded: a silent watch).

`silence(pattern)` stalls the watches open now whose path contains `pattern`, forever: the client
must notice the silence by itself (kopf's watching.inactivity_timeout).

Run standalone for manual chaos: `python tests/reliability/faultproxy.py --kubeconfig K --rate 0.1`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import random
import shutil
import ssl
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

REQUEST_FAULTS = ("429", "500", "500-after", "409", "drop", "drop-after")
WATCH_FAULTS = ("410", "cut", "stall", "429", "500")
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailers",
        "Transfer-Encoding", "Upgrade", "Content-Length", "Content-Encoding", "Host", "Accept-Encoding",
    )
)


@dataclass
class Faults:
    """What to inject: `rate` is the probability that one request (or one watch) gets a fault."""

    rate: float = 0.0
    watch_rate: float | None = None  # the probability that one watch breaks (soon after it opens); None: rate
    request_kinds: tuple[str, ...] = REQUEST_FAULTS
    watch_kinds: tuple[str, ...] = WATCH_FAULTS
    retry_after: int = 1  # seconds, in the Retry-After header of a 429
    stall_seconds: float | None = 5.0  # how long a stalled watch stays silent before it is cut; None: forever
    seed: int = 0


@dataclass
class Upstream:
    """Where the real API server is and how to authenticate to it, read from a kubeconfig."""

    server: str
    ssl_context: ssl.SSLContext | bool
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_kubeconfig(cls, path: str | Path) -> Upstream:
        """Return the current context's server and credentials (client certificate or bearer token)."""
        conf = yaml.safe_load(Path(path).read_text())
        ctx_name = conf.get("current-context")
        ctx = next(c["context"] for c in conf["contexts"] if c["name"] == ctx_name or ctx_name is None)
        cluster = next(c["cluster"] for c in conf["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in conf["users"] if u["name"] == ctx["user"])
        server = cluster["server"].rstrip("/")
        if not server.startswith("https"):
            return cls(server, False)
        tmp = Path(tempfile.mkdtemp(prefix="faultproxy-"))

        def material(key: str, name: str) -> str | None:
            if f"{key}-data" in user or f"{key}-data" in cluster:
                data = user.get(f"{key}-data") or cluster.get(f"{key}-data")
                (tmp / name).write_bytes(base64.b64decode(data))
                return str(tmp / name)
            return user.get(key) or cluster.get(key)

        try:
            context = ssl.create_default_context(cafile=material("certificate-authority", "ca.crt"))
            cert, key = material("client-certificate", "client.crt"), material("client-key", "client.key")
            if cert and key:
                context.load_cert_chain(cert, key)
        finally:  # the context holds them now; the key must not stay on disk
            shutil.rmtree(tmp, ignore_errors=True)
        headers = {"Authorization": f"Bearer {user['token']}"} if user.get("token") else {}
        return cls(server, context, headers)


def _status(code: int, reason: str, message: str, **details: Any) -> bytes:
    return json.dumps(
        {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
         "reason": reason, "code": code, **({"details": details} if details else {})}
    ).encode()


def _is_watch(request: web.Request) -> bool:
    return request.query.get("watch") in ("true", "1")


class FaultProxy:
    """The proxy, served from its own thread and event loop; `start()` returns once it listens."""

    def __init__(self, upstream: Upstream, faults: Faults | None = None, port: int = 0) -> None:
        self.upstream = upstream
        self.faults = faults or Faults()
        self.port = port
        self.counts: Counter[str] = Counter()  # requests by class, faults by kind
        self._rng = random.Random(self.faults.seed)
        self._lock = threading.Lock()
        self._watches: list[_Watch] = []  # open watches
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # ---- control, from any thread

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_rate(self, rate: float, watch_rate: float | None = None) -> None:
        """Change the fault rates from now on (0 turns faults off)."""
        self.faults.rate, self.faults.watch_rate = rate, watch_rate

    def silence(self, pattern: str) -> int:
        """Stall every open watch whose path contains `pattern`, forever; return how many were silenced."""
        return self._command(pattern, "silence")

    def end_silenced(self, pattern: str, how: str = "410") -> int:
        """End the silenced watches matching `pattern`: "410" sends a 410 Gone ERROR event, "cut" drops them."""
        return self._command(pattern, how)

    def _command(self, pattern: str, command: str) -> int:
        assert self._loop is not None
        hits = [w for w in list(self._watches) if pattern in w.path]
        for w in hits:
            self._loop.call_soon_threadsafe(w.order, command)
        return len(hits)

    def open_watches(self, pattern: str = "") -> int:
        """Return how many watches whose path contains `pattern` are open now."""
        return sum(1 for w in list(self._watches) if pattern in w.path)

    def write_kubeconfig(self, path: Path) -> Path:
        """Write a kubeconfig that points at the proxy, without credentials (the proxy adds them)."""
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "proxy", "cluster": {"server": self.url}}],
                    "users": [{"name": "proxy", "user": {}}],
                    "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "proxy"}}],
                    "current-context": "proxy",
                }
            )
        )
        return path

    def start(self) -> FaultProxy:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name="faultproxy", daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError("the fault proxy did not start within 30s")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._runner is not None:
            future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
            future.result(30)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(30)

    def summary(self) -> str:
        """Return the request and fault counts, e.g. for a test report."""
        return ", ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))

    # ---- the server

    def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._setup())
        ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _setup(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.upstream.ssl_context, limit=0),
            auto_decompress=False,
        )
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _shutdown(self) -> None:
        for w in self._watches:
            w.order("cut")
        assert self._runner is not None and self._session is not None
        await self._runner.cleanup()
        await self._session.close()

    def _pick(self, kinds: Iterable[str], rate: float | None = None) -> str | None:
        rate = self.faults.rate if rate is None else rate
        with self._lock:
            if rate <= 0 or self._rng.random() >= rate:
                return None
            options = list(kinds)
            return self._rng.choice(options) if options else None

    def _count(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1

    async def _forward(self, request: web.Request, body: bytes) -> aiohttp.ClientResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers.update(self.upstream.headers)
        # aiohttp would ask for gzip by itself; bodies are relayed as they come and Content-Encoding is not,
        # so a large gzipped LIST would reach the operator as bytes it cannot read.
        headers["Accept-Encoding"] = "identity"
        return await self._session.request(
            request.method,
            self.upstream.server + request.path_qs,
            headers=headers,
            data=body if body else None,
            # The Python client sends creates without a Content-Type (the API server takes JSON then):
            # aiohttp must not add application/octet-stream, which the API server refuses (415).
            skip_auto_headers=("Content-Type",),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )

    @staticmethod
    def _headers(resp: aiohttp.ClientResponse) -> dict[str, str]:
        return {k: v for k, v in resp.headers.items() if k.lower() not in HOP_BY_HOP}

    @staticmethod
    def _drop(request: web.Request) -> web.StreamResponse:
        # Close the socket under the client: no status line, no body, as when a connection is reset.
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError  # aiohttp ends the handler without writing a response

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if _is_watch(request):
            self._count("watches")
            return await self._watch(request, body)
        write = request.method in ("POST", "PUT", "PATCH", "DELETE")
        self._count("writes" if write else "reads")
        kinds = [k for k in self.faults.request_kinds if write or k != "409"]
        fault = self._pick(kinds)
        if fault is not None:
            self._count(f"fault:{fault}")
        if fault == "429":
            return web.Response(
                status=429,
                headers={"Retry-After": str(self.faults.retry_after), "Content-Type": "application/json"},
                body=_status(429, "TooManyRequests", "injected: too many requests, please try again later",
                             retryAfterSeconds=self.faults.retry_after),
            )
        if fault == "500":
            return web.json_response(status=500, body=_status(500, "InternalError", "injected: internal error"))
        if fault == "drop":
            return self._drop(request)
        if fault == "409" and request.method != "POST":
            return web.Response(
                status=409, content_type="application/json",
                body=_status(409, "Conflict", "injected: Operation cannot be fulfilled: the object has been "
                             "modified; please apply your changes to the latest version and try again"),
            )
        async with await self._forward(request, body) as resp:
            data = await resp.read()
            if fault == "500-after":
                return web.Response(status=500, content_type="application/json",
                                    body=_status(500, "InternalError", "injected: response lost after the write"))
            if fault == "drop-after":
                return self._drop(request)
            if fault == "409" and resp.status == 201:  # the create happened; the client sees its retry's answer
                return web.Response(status=409, content_type="application/json",
                                    body=_status(409, "AlreadyExists", "injected: already exists"))
            return web.Response(status=resp.status, headers=self._headers(resp), body=data)

    async def _watch(self, request: web.Request, body: bytes) -> web.StreamResponse:
        fault = self._pick(self.faults.watch_kinds, self.faults.watch_rate)
        if fault is not None:
            self._count(f"fault:watch-{fault}")
        if fault == "429":
            return web.Response(
                status=429, headers={"Retry-After": str(self.faults.retry_after), "Content-Type": "application/json"},
                body=_status(429, "TooManyRequests", "injected", retryAfterSeconds=self.faults.retry_after),
            )
        if fault == "500":
            return web.Response(status=500, content_type="application/json",
                                body=_status(500, "InternalError", "injected"))
        watch = _Watch(request.path_qs)
        self._watches.append(watch)
        try:
            async with await self._forward(request, body) as resp:
                out = web.StreamResponse(status=resp.status, headers=self._headers(resp))
                await out.prepare(request)
                # The fault strikes after a few events or seconds, so a watch does some good before it breaks.
                budget = self._rng.randint(0, 5) if fault else -1
                deadline = time.monotonic() + self._rng.uniform(0.5, 10) if fault else None
                while True:
                    wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                    line = await watch.next_line(resp.content, wait)
                    if line is None:  # silenced: forward nothing more, then end as ordered
                        ending = await watch.stall(request)
                        return await self._break_watch(request, out, ending or "cut")
                    if line == b"" and not (fault and deadline is not None and time.monotonic() >= deadline):
                        return out  # the API server ended the watch
                    if fault and (budget == 0 or (deadline is not None and time.monotonic() >= deadline)):
                        if fault == "stall":
                            await watch.stall(request, self.faults.stall_seconds)
                            return self._drop(request)
                        return await self._break_watch(request, out, fault)
                    budget -= 1
                    await out.write(line)
        finally:
            self._watches.remove(watch)
            watch.close()

    async def _break_watch(self, request: web.Request, out: web.StreamResponse, how: str) -> web.StreamResponse:
        if how == "410":
            gone = json.loads(_status(410, "Expired", "injected: too old resource version"))
            await out.write(json.dumps({"type": "ERROR", "object": gone}).encode() + b"\n")
            return out
        return self._drop(request)


class _Watch:
    """One open watch: its path, and the orders the test gives it (silence, then how to end)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.silenced = asyncio.Event()
        self.ending: str | None = None
        self._wake = asyncio.Event()
        self._pending: asyncio.Future[bytes] | None = None

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()

    def order(self, command: str) -> None:
        if command == "silence":
            self.silenced.set()
        else:
            self.ending = command
            self.silenced.set()
        self._wake.set()

    async def next_line(self, stream: aiohttp.StreamReader, timeout: float | None) -> bytes | None:
        """Return the next line from upstream; b"" at its end or after `timeout` seconds; None once silenced."""
        if self.silenced.is_set():
            return None
        if self._pending is None:
            self._pending = asyncio.ensure_future(stream.readline())
        silenced = asyncio.ensure_future(self.silenced.wait())
        await asyncio.wait({self._pending, silenced}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        silenced.cancel()
        if self.silenced.is_set():
            self._pending.cancel()
            return None
        if not self._pending.done():
            return b""  # timed out; the read stays pending for the next call
        read, self._pending = self._pending, None
        return read.result()

    async def stall(self, request: web.Request, seconds: float | None = None) -> str | None:
        """Send nothing until the client leaves, `seconds` pass or an ending is ordered; return the ending."""
        end = None if seconds is None else time.monotonic() + seconds
        while request.transport is not None and not request.transport.is_closing() and self.ending is None:
            if end is not None and time.monotonic() >= end:
                break
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.2)
        return self.ending


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True, help="kubeconfig of the real API server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write-kubeconfig", type=Path, help="write a kubeconfig pointing at the proxy here")
    args = parser.parse_args()
    proxy = FaultProxy(Upstream.from_kubeconfig(args.kubeconfig), Faults(rate=args.rate, seed=args.seed), args.port)
    proxy.start()
    if args.write_kubeconfig:
        proxy.write_kubeconfig(args.write_kubeconfig)
    print(f"fault proxy on {proxy.url} (rate {args.rate}); Ctrl-C stops", flush=True)
    try:
        while True:
            time.sleep(10)
            print(proxy.summary(), flush=True)
    except KeyboardInterrupt:
        proxy.stop()


if __name__ == "__main__":
    main()
