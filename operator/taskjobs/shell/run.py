"""`taskjob operator`: start the kopf operator with the shell's handlers."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import secrets
import socket
from typing import Any

import kopf
import uvloop

from .cron import CronController, CronKey
from .handlers import build_registry
from .heapcensus import install_from_env
from .kube import Kube
from .logs import configure_logging
from .options import OperatorOptions
from .reconciler import Reconciler
from .store import Store
from .workqueue import WorkQueue

log = logging.getLogger("taskjob.operator")


async def serve(options: OperatorOptions, stop_flag: asyncio.Event | None = None) -> None:
    """Run the operator until stopped (SIGINT/SIGTERM, or `stop_flag` set)."""
    kube = Kube(qps=options.client_qps)  # credentials: connection.py, as kopf's (handlers.py)
    store = Store()
    reconciler = Reconciler(store, kube)
    cron = CronController(kube)

    async def reconcile(key: Any) -> float | None:
        return await (cron.reconcile(key) if isinstance(key, CronKey) else reconciler(key))

    queue = WorkQueue(reconcile)
    reconciler.status.wake = queue.add_after
    identity = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"
    registry = build_registry(options, store, queue, kube, identity, on_deleted=reconciler.forget)
    cron.register(registry, options, queue)
    if options.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(options.metrics_port, addr=options.health_host)
    if options.webhook_port:
        from .webhook import skip_mutating_configuration

        skip_mutating_configuration()
    liveness = f"http://{options.health_host}:{options.health_port}/healthz" if options.health_port else None
    await kopf.operator(
        registry=registry,
        clusterwide=not options.namespaces,
        namespaces=list(options.namespaces),
        standalone=options.peering is None,
        peering_name=options.peering,
        priority=options.priority,
        liveness_endpoint=liveness,
        stop_flag=stop_flag,
        identity=kopf_identity(identity),
    )


def kopf_identity(identity: str) -> Any:
    """Return the identity as kopf's type, so kopf's peering entries and our gate name the same replica."""
    from kopf._core.engines.peering import Identity  # not re-exported; a NewType of str

    return Identity(identity)


def run_operator(options: OperatorOptions) -> None:
    """Run the operator in the foreground."""
    configure_logging(options.log_format, options.log_level)
    install_from_env()  # a heap census for the benchmarks, when asked for
    log.info(
        "starting taskjob operator (namespaces: %s, peering: %s)",
        ", ".join(options.namespaces) or "all", options.peering or "standalone",
    )
    # The ~80,000 objects of the imports never die: out of the collector's sight, each full collection is
    # cheaper (B4 quick: time in the garbage collector 0.43 -> 0.31 s of 6.1 s of CPU).
    gc.freeze()
    # uvloop's event loop and TLS are in C: with asyncio's own, the loop and its SSL protocol were about
    # 40 % of the operator's busy CPU (py-spy, B4; docs/performance.md).
    uvloop.run(serve(options))
