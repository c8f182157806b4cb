"""`taskjob dashboard`: serve the live dashboard from the user's kubeconfig (or the pod's ServiceAccount)."""

from __future__ import annotations

import asyncio
import logging

import click


@click.command(short_help="Serve a live web dashboard of TaskJobs.")
@click.option(
    "-n", "--namespace", "namespaces", multiple=True, metavar="NS",
    help="Show only this namespace (repeatable; default: all namespaces).",
)
@click.option("--address", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="Port (0: any free port).")
@click.option(
    "--allow-actions", is_flag=True,
    help="Offer retry, suspend, resume and delete on TaskJob pages (with your identity; off: read-only).",
)
@click.pass_context
def dashboard(ctx: click.Context, namespaces: tuple[str, ...], address: str, port: int, allow_actions: bool) -> None:
    """Serve a live web dashboard of the TaskJobs the kubeconfig may read (read-only unless --allow-actions).

    One set of watches feeds every open page; pages get changes pushed, and never call the API server.
    Listens on 127.0.0.1 unless --address says otherwise: anyone who reaches it sees what your
    kubeconfig may read (docs/dashboard.md).
    """
    from kubernetes import client

    from ..cli.kube import connect
    from .server import serve

    settings = ctx.find_root().obj
    cluster = connect(getattr(settings, "context", None), getattr(settings, "kubeconfig", None))
    if not namespaces and getattr(settings, "namespace", None):
        namespaces = (settings.namespace,)  # `taskjob -n NS dashboard`, as kubectl users type it
    configuration = cluster.api_client.configuration
    configuration.connection_pool_maxsize = 64  # a thread per watch and per followed log share the pool
    api_client = client.ApiClient(configuration)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    for noisy in ("aiohttp.access", "urllib3", "kubernetes.client.rest"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    scope = ", ".join(namespaces) if namespaces else "all namespaces"
    if allow_actions:
        scope += "; actions allowed"

    def announce(url: str) -> None:
        click.echo(f"taskjob dashboard: {url} ({scope}, cluster {cluster.server}); Ctrl-C stops it", err=False)

    try:
        asyncio.run(serve(api_client, list(namespaces), address, port, announce, allow_actions))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise click.ClickException(
            f"--address {address} --port {port}: cannot listen there: {exc.strerror or exc}"
        ) from exc
