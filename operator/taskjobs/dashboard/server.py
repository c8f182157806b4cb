"""The dashboard's web server (aiohttp): the pages, their JSON, and server-sent events that push changes.

Browsers talk only to this server, never to the API server. Each open page holds one event stream
(`/api/stream`); when the Model changes, the pages it concerns get a fresh snapshot of their view, at
most one every `min_interval` seconds (a burst of watch events makes one snapshot, not hundreds). Views
are computed once per Model version and shared by every page showing the same thing.

Read-only unless started with actions allowed (`--allow-actions`): then, and only then, POST
/api/actions/<namespace>/<name>/<action> retries, suspends, resumes or deletes a TaskJob (actions.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from . import views
from .actions import CONFIRM_HEADER, ActionError, ActionRunner, plan_action
from .logs import LogReader
from .model import ALL, Key, Model
from .watch import Source, Watcher

log = logging.getLogger("taskjob.dashboard")

STATIC = Path(str(resources.files(__package__) / "static"))
KEEPALIVE_SECONDS = 15.0
SECURITY_HEADERS = {
    # Every script and style is ours (no CDN, no inline code): the strictest policy that still works.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """Return the current time (UTC)."""
    return datetime.now(UTC)


@dataclass(eq=False)  # compared by identity: each open page is its own subscriber
class Subscriber:
    """One open page's event stream: what it shows and whether that may have changed."""

    view: str  # overview, taskjob or task
    key: Key | None = None
    task: str | None = None
    dirty: asyncio.Event = field(default_factory=asyncio.Event)

    def concerned(self, touched: set[Key | str]) -> bool:
        """Return whether a change to the touched TaskJobs may change this page."""
        return self.view == "overview" or ALL in touched or self.key in touched


class Dashboard:
    """The Model, the pages subscribed to it, and the views they get."""

    def __init__(
        self,
        model: Model | None = None,
        clock: Clock = utcnow,
        min_interval: float = 0.5,
        actions: ActionRunner | None = None,
    ) -> None:
        self.model = model or Model()
        self.actions = actions  # None: read-only
        self.clock = clock
        self.min_interval = min_interval
        self.subscribers: set[Subscriber] = set()
        self.errors: dict[str, str] = {}  # watch problems by source, shown on every page
        self.expected: set[str] = set()  # "kind/namespace" listings needed before the pages are complete
        self._notify_scheduled = False
        self._cache: dict[tuple[Any, ...], tuple[int, bytes]] = {}

    # ---- fed by the watches (on the event loop)

    def replace(self, kind: str, namespace: str | None, items: list[dict[str, Any]]) -> None:
        """Take a listing."""
        self.model.replace(kind, namespace, items)
        self._changed()

    def event(self, kind: str, event_type: str, obj: dict[str, Any]) -> None:
        """Take a watch event."""
        if self.model.apply(kind, event_type, obj):
            self._changed()

    def watch_error(self, source: Source, message: str | None) -> None:
        """Record (or clear, with None) a watch's problem."""
        name = f"{source.kind}/{source.namespace or '*'}"
        if self.errors.get(name) == message:
            return
        if message is None:
            self.errors.pop(name, None)
        else:
            self.errors[name] = message
        self.model.version += 1  # the pages show the errors: their cached views are stale
        self.model.touched.add(ALL)
        self._changed()

    def _changed(self) -> None:
        # Coalesce: the many events of one burst wake each page once.
        if not self._notify_scheduled:
            self._notify_scheduled = True
            asyncio.get_running_loop().call_soon(self._notify)

    def _notify(self) -> None:
        self._notify_scheduled = False
        touched = self.model.take_touched() or {ALL}
        for sub in self.subscribers:
            if sub.concerned(touched):
                sub.dirty.set()

    # ---- views

    @property
    def ready(self) -> bool:
        """Return whether every watch has delivered its first listing."""
        return self.expected <= self.model.synced

    def view(self, sub: Subscriber) -> bytes | None:
        """Return the JSON of a page's view (cached per Model version), None when its object is gone."""
        cache_key = (sub.view, sub.key, sub.task)
        cached = self._cache.get(cache_key)
        if cached is not None and cached[0] == self.model.version:
            return cached[1]
        now = self.clock()
        data: dict[str, Any] | None
        if sub.view == "overview":
            data = views.overview(self.model, now)
        elif sub.view == "taskjob" and sub.key is not None:
            data = views.taskjob_view(self.model, sub.key, now)
            if data is not None and sub.task is not None:
                # The open task panel rides on the page's one stream: browsers allow only 6 connections
                # to a host over HTTP/1.1, and every stream holds one.
                data["panel"] = views.task_view(self.model, sub.key, sub.task, now) or {"gone": True}
        elif sub.view == "task" and sub.key is not None and sub.task is not None:
            data = views.task_view(self.model, sub.key, sub.task, now)
        else:
            data = None
        if data is None:
            return None
        data["errors"] = sorted(self.errors.values())
        data["actions"] = self.actions is not None
        data["ready"] = self.ready
        body = json.dumps(data, separators=(",", ":")).encode()
        self._cache[cache_key] = (self.model.version, body)
        if len(self._cache) > 256:
            self._cache.clear()
        return body


# ---------------------------------------------------------------- HTTP


def _subscriber(request: web.Request) -> Subscriber:
    q = request.query
    view = q.get("view", "overview")
    if view not in ("overview", "taskjob", "task"):
        raise web.HTTPBadRequest(text=f"view: unknown view {view!r} (overview, taskjob or task)")
    if view == "overview":
        return Subscriber("overview")
    if not q.get("namespace") or not q.get("name"):
        raise web.HTTPBadRequest(text=f"view {view} needs the namespace and name query parameters")
    if view == "task" and not q.get("task"):
        raise web.HTTPBadRequest(text="view task needs the task query parameter")
    return Subscriber(view, (q["namespace"], q["name"]), q.get("task"))


def make_app(dashboard: Dashboard, logs: LogReader | None = None) -> web.Application:
    """Return the aiohttp application serving the dashboard."""
    app = web.Application(middlewares=[_headers(dashboard)])

    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def ready(request: web.Request) -> web.Response:
        if not dashboard.ready:
            raise web.HTTPServiceUnavailable(text="waiting for the first listings")
        return web.Response(text="ok")

    async def snapshot(request: web.Request) -> web.Response:
        sub = _subscriber(request)
        body = dashboard.view(sub)
        if body is None:
            raise web.HTTPNotFound(text=f"no {sub.view} {'/'.join(sub.key or ())} {sub.task or ''}".strip())
        return web.Response(body=body, content_type="application/json")

    async def manifest(request: web.Request) -> web.Response:
        text = views.manifest(dashboard.model, (request.match_info["namespace"], request.match_info["name"]))
        if text is None:
            raise web.HTTPNotFound(text="no such TaskJob")
        return web.Response(text=text, content_type="text/plain")

    async def stream(request: web.Request) -> web.StreamResponse:
        sub = _subscriber(request)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        dashboard.subscribers.add(sub)
        try:
            last: bytes | None = None
            while True:
                started = time.monotonic()
                body = dashboard.view(sub)
                cost = time.monotonic() - started
                if body != last:
                    payload = body if body is not None else b'{"gone":true}'
                    await resp.write(b"data: " + payload + b"\n\n")
                    last = body
                    # Rate limit: at most one snapshot per interval, and a view that is costly to compute
                    # (a 10,000-task TaskJob: about 0.5 s) takes at most a fifth of the server's time.
                    await asyncio.sleep(max(dashboard.min_interval, 4 * cost))
                try:
                    await asyncio.wait_for(sub.dirty.wait(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    await resp.write(b": keepalive\n\n")  # proxies close silent connections
                sub.dirty.clear()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            dashboard.subscribers.discard(sub)
        return resp

    async def action(request: web.Request) -> web.Response:
        if dashboard.actions is None:
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        if request.headers.get(CONFIRM_HEADER) != name:
            raise web.HTTPForbidden(text=f"confirm the action: send the TaskJob's name in the {CONFIRM_HEADER} header")
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            raise web.HTTPForbidden(text="actions are taken only from the dashboard's own pages")
        try:
            planned = plan_action(request.match_info["action"], dashboard.model.taskjobs.get((namespace, name)),
                                  dashboard.clock())
            await dashboard.actions.run(namespace, name, planned)
        except ActionError as exc:
            raise web.HTTPConflict(text=str(exc)) from exc
        log.info("action %s on TaskJob %s/%s: %s", request.match_info["action"], namespace, name, planned.summary)
        return web.json_response({"message": f"TaskJob {namespace}/{name}: {planned.summary}"})

    async def pod_log(request: web.Request) -> web.StreamResponse:
        if logs is None:
            raise web.HTTPNotFound(text="logs are not available")
        return await logs.serve(request)

    app.router.add_get("/", page)
    app.router.add_get("/taskjobs/{namespace}/{name}", page)
    app.router.add_get("/healthz", health)
    app.router.add_get("/readyz", ready)
    app.router.add_get("/api/view", snapshot)
    app.router.add_get("/api/stream", stream)
    app.router.add_get("/api/manifest/{namespace}/{name}", manifest)
    app.router.add_get("/api/logs/{namespace}/{pod}", pod_log)
    app.router.add_post("/api/actions/{namespace}/{name}/{action}", action)
    app.router.add_static("/static", STATIC, append_version=False)
    return app


def _headers(dashboard: Dashboard) -> Any:
    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        allowed = request.method in ("GET", "HEAD") or (
            request.method == "POST" and dashboard.actions is not None and request.path.startswith("/api/actions/")
        )
        if not allowed:
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])  # read-only
        resp = await handler(request)
        for name, value in SECURITY_HEADERS.items():
            resp.headers.setdefault(name, value)
        return resp

    return middleware


# ---------------------------------------------------------------- running


def sources_for(namespaces: list[str]) -> list[Source]:
    """Return the watches to hold: every kind, in each namespace (or in all when none is given)."""
    scopes: list[str | None] = list(namespaces) or [None]
    return [Source(kind, ns) for ns in scopes for kind in ("taskjobs", "jobs", "pods", "events")]


async def serve(
    api_client: Any,
    namespaces: list[str],
    address: str,
    port: int,
    announce: Callable[[str], None],
    allow_actions: bool = False,
) -> None:
    """Run the dashboard until cancelled: start the watches, serve HTTP, announce the URL."""
    loop = asyncio.get_running_loop()
    dashboard = Dashboard(actions=ActionRunner(api_client) if allow_actions else None)
    sources = sources_for(namespaces)
    dashboard.expected = {f"{s.kind}/{s.namespace or '*'}" for s in sources}
    watcher = Watcher(api_client, sources, loop, dashboard.replace, dashboard.event, dashboard.watch_error)
    watcher.start()
    # Open event streams never finish by themselves: give them a second, not the default minute, at Ctrl-C.
    runner = web.AppRunner(make_app(dashboard, LogReader(api_client)), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, address, port)
    await site.start()
    bound = runner.addresses[0] if runner.addresses else (address, port)
    host = bound[0] if ":" not in str(bound[0]) else f"[{bound[0]}]"
    announce(f"http://{host}:{bound[1]}/")
    try:
        await asyncio.Event().wait()  # until cancelled (Ctrl-C)
    finally:
        watcher.stop()
        await runner.cleanup()
