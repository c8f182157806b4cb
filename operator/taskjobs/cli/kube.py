"""Cluster access for the CLI: kubeconfig, TaskJobs, pods and logs; failures as one sentence for a human.

Only the commands that talk to a cluster import this module, so `validate`, `graph` and `run` work on a
machine with no kubeconfig at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .. import GROUP, PLURAL, VERSION

REQUEST_TIMEOUT = (10, 60)  # (connect, read) seconds for ordinary calls


class UserError(Exception):
    """A failure the user can act on; the message is one sentence and no traceback is needed."""


def _status_message(body: Any) -> tuple[str | None, Mapping[str, Any]]:
    """Return the message and details of a metav1.Status response body, if it is one."""
    if not isinstance(body, str | bytes):
        return None, {}
    try:
        status = json.loads(body)
    except ValueError:
        return None, {}
    if not isinstance(status, dict):
        return None, {}
    return status.get("message"), status.get("details") or {}


def describe_api_error(exc: Exception, what: str, server: str = "") -> str:
    """Return one sentence saying why a request about `what` (e.g. 'TaskJob default/etl') failed."""
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, ApiException):
        message, details = _status_message(exc.body)
        code = exc.status
        if code == 404:
            if details.get("name"):
                return f"{what} not found"
            at = f" ({server})" if server else ""
            return f"the TaskJob API ({GROUP}/{VERSION}) is not installed in this cluster{at}: apply the CRD from crds/"
        if code == 409:
            return f"{what} already exists: delete it first, or use metadata.generateName for a fresh name each time"
        if code in (401, 403):
            return f"the API server refused access to {what}: {message or exc.reason}"
        if code == 422:
            return f"the API server rejected {what}: {message or exc.reason}"
        if code == 410:
            return f"the watch on {what} expired: {message or exc.reason}"
        return f"request about {what} failed ({code} {exc.reason}): {message or 'no details'}"
    return f"cannot reach the Kubernetes API server{f' at {server}' if server else ''}: {_root_cause(exc)}"


def _root_cause(exc: BaseException) -> str:
    """Return the innermost reason of a connection error, e.g. 'Connection refused'."""
    seen = exc
    for _ in range(10):
        inner = getattr(seen, "reason", None)
        if isinstance(inner, BaseException):
            seen = inner
            continue
        if seen.__cause__ is not None:
            seen = seen.__cause__
            continue
        break
    text = str(seen)
    # urllib3 says "<urllib3.connection.HTTPSConnection object at 0x…>: Failed to establish … [Errno 111] …"
    if "]" in text and "Errno" in text:
        text = text[text.rfind("]") + 1 :].strip() or text
    return text.rstrip(".") or type(seen).__name__


def _connection_errors() -> tuple[type[BaseException], ...]:
    import urllib3

    return (urllib3.exceptions.HTTPError, OSError)


@dataclass
class Cluster:
    """A connection to one cluster: the API clients and the kubeconfig's namespace and server."""

    api_client: Any
    namespace: str  # the current context's namespace (default when unset)
    server: str
    context: str | None

    @contextmanager
    def errors(self, what: str) -> Iterator[None]:
        """Turn API and connection failures inside the block into a UserError about `what`."""
        from kubernetes.client.exceptions import ApiException

        try:
            yield
        except ApiException as exc:
            raise UserError(describe_api_error(exc, what, self.server)) from exc
        except _connection_errors() as exc:
            context = f" (kubeconfig context {self.context!r})" if self.context else ""
            raise UserError(
                f"cannot reach the Kubernetes API server at {self.server}{context}: {_root_cause(exc)}; "
                "check that the cluster is running and the context is right"
            ) from exc

    @property
    def custom(self) -> Any:
        """Return the CustomObjectsApi."""
        from kubernetes import client

        return client.CustomObjectsApi(self.api_client)

    @property
    def core(self) -> Any:
        """Return the CoreV1Api."""
        from kubernetes import client

        return client.CoreV1Api(self.api_client)

    # ------------------------------------------------------------ TaskJobs

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        """Return the TaskJob as a dict."""
        with self.errors(f"TaskJob {namespace}/{name}"):
            obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _request_timeout=REQUEST_TIMEOUT
            )
            return obj

    def get_cron(self, namespace: str, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Return the CronTaskJob and the TaskJobs it created that are kept."""
        with self.errors(f"CronTaskJob {namespace}/{name}"):
            obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, "crontaskjobs", name, _request_timeout=REQUEST_TIMEOUT
            )
            runs = self.custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, label_selector=f"taskjob.dev/crontaskjob={name}",
                _request_timeout=REQUEST_TIMEOUT,
            )["items"]
            return obj, list(runs)

    def create(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Return the TaskJob as created (with its server-generated name)."""
        meta = body.get("metadata") or {}
        what = f"TaskJob {namespace}/{meta.get('name') or str(meta.get('generateName', '')) + '*'}"
        with self.errors(what):
            obj: dict[str, Any] = self.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, dict(body), _request_timeout=REQUEST_TIMEOUT
            )
            return obj

    def patch(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """Return the TaskJob after a JSON merge patch."""
        with self.errors(f"TaskJob {namespace}/{name}"):
            obj: dict[str, Any] = self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, dict(patch), _request_timeout=REQUEST_TIMEOUT
            )
            return obj

    def watch(self, namespace: str, name: str) -> Iterator[dict[str, Any]]:
        """Yield the TaskJob now and after every change, from a watch (re-established when it ends)."""
        from kubernetes import watch as watch_module
        from kubernetes.client.exceptions import ApiException

        watch: Any = watch_module  # untyped library

        obj = self.get(namespace, name)
        yield obj
        version = obj["metadata"].get("resourceVersion")
        what = f"TaskJob {namespace}/{name}"
        while True:
            w = watch.Watch()
            try:
                with self.errors(what):
                    for event in w.stream(
                        self.custom.list_namespaced_custom_object,
                        GROUP,
                        VERSION,
                        namespace,
                        PLURAL,
                        field_selector=f"metadata.name={name}",
                        resource_version=version,
                        timeout_seconds=300,
                        allow_watch_bookmarks=True,
                    ):
                        kind, item = event["type"], event["raw_object"]
                        if kind == "ERROR":
                            code = item.get("code") if isinstance(item, dict) else None
                            if code == 410:
                                raise ApiException(status=410, reason="Gone")
                            raise UserError(f"the watch on {what} failed: {item.get('message', item)}")
                        version = item.get("metadata", {}).get("resourceVersion", version)
                        if kind == "BOOKMARK":
                            continue
                        if kind == "DELETED":
                            raise UserError(f"{what} was deleted")
                        yield item
            except UserError as exc:
                cause = exc.__cause__
                if not (isinstance(cause, ApiException) and cause.status == 410):
                    raise
                # The version we had is too old to resume from: start again from the object as it is now.
                obj = self.get(namespace, name)
                version = obj["metadata"].get("resourceVersion")
                yield obj
            finally:
                w.stop()

    # ------------------------------------------------------------ pods and logs

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        """Return the pods matching the label selector, as dicts shaped like the API's JSON."""
        with self.errors(f"pods in namespace {namespace}"):
            resp = self.core.list_namespaced_pod(
                namespace, label_selector=selector, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
            )
            items: list[dict[str, Any]] = json.loads(resp.data).get("items") or []
            return items

    def watch_pods(self, namespace: str, selector: str) -> Iterator[dict[str, Any] | None]:
        """Yield the matching pods, then None; then each pod as it changes, from a watch, and None whenever
        the watch ends (it is re-established from a fresh list)."""
        from kubernetes import watch as watch_module
        from kubernetes.client.exceptions import ApiException

        watch: Any = watch_module  # untyped library
        what = f"pods in namespace {namespace}"
        while True:
            with self.errors(what):
                resp = self.core.list_namespaced_pod(
                    namespace, label_selector=selector, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
                )
                listing = json.loads(resp.data)
            yield from listing.get("items") or []
            yield None
            w = watch.Watch()
            try:
                with self.errors(what):
                    for event in w.stream(
                        self.core.list_namespaced_pod,
                        namespace,
                        label_selector=selector,
                        resource_version=(listing.get("metadata") or {}).get("resourceVersion"),
                        timeout_seconds=60,
                    ):
                        if event["type"] in ("ADDED", "MODIFIED"):
                            yield event["raw_object"]
                        elif event["type"] == "ERROR":
                            break  # e.g. 410 Gone: list again
            except UserError as exc:
                if not (isinstance(exc.__cause__, ApiException) and exc.__cause__.status == 410):
                    raise
            finally:
                w.stop()

    def log_lines(self, namespace: str, pod: str, *, follow: bool, container: str = "task") -> Iterator[str]:
        """Yield the lines of the pod's container log; with `follow`, until the container ends."""
        with self.errors(f"the log of pod {namespace}/{pod}"):
            resp = self.core.read_namespaced_pod_log(
                pod,
                namespace,
                container=container,
                follow=follow,
                _preload_content=False,
                # A task may print nothing for a long time: a day of silence before giving up on a follow.
                _request_timeout=(10, 86400) if follow else REQUEST_TIMEOUT,
            )
            yield from stream_lines(resp)


def stream_lines(resp: Any) -> Iterator[str]:
    """Yield the text lines of a streamed HTTP response (a line split across chunks arrives whole)."""
    pending = b""
    for chunk in resp.stream(4096, decode_content=True):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.decode("utf-8", errors="replace")
    if pending:
        yield pending.decode("utf-8", errors="replace")


def connect(context: str | None = None, kubeconfig: str | None = None) -> Cluster:
    """Return a Cluster for the kubeconfig's current (or given) context, or in-cluster config in a pod."""
    import os

    from kubernetes import client
    from kubernetes import config as config_module

    config: Any = config_module  # untyped library
    try:
        in_pod = os.environ.get("KUBERNETES_SERVICE_HOST") and not (os.environ.get("KUBECONFIG") or kubeconfig)
        if in_pod and context is None:
            config.load_incluster_config()
            cfg = client.Configuration.get_default_copy()
            namespace = _incluster_namespace()
            current = None
        else:
            # Read KUBECONFIG now: the library reads it once, at import.
            path = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
            cfg = client.Configuration()
            config.load_kube_config(config_file=path, context=context, client_configuration=cfg)
            contexts, active = config.list_kube_config_contexts(config_file=path)
            if context is not None:
                active = next((c for c in contexts if c.get("name") == context), active)
            namespace = (active.get("context") or {}).get("namespace") or "default"
            current = active.get("name")
    except config.ConfigException as exc:
        raise UserError(_config_problem(exc, kubeconfig)) from exc
    cfg.retries = 1  # fail fast when the server is down instead of retrying for a minute
    return Cluster(client.ApiClient(cfg), namespace, str(cfg.host), current)


def _config_problem(exc: Exception, kubeconfig: str | None = None) -> str:
    """Return one sentence on why no kubeconfig could be loaded."""
    import os

    given = kubeconfig or os.environ.get("KUBECONFIG") or ""
    paths = [p for p in given.split(os.pathsep) if p] or ["~/.kube/config"]
    shown = os.pathsep.join(paths)
    if not any(os.path.exists(os.path.expanduser(p)) for p in paths):
        return (
            f"no kubeconfig found at {shown}: set KUBECONFIG to your cluster's kubeconfig file "
            "(`taskjob run FILE` runs a TaskJob without any cluster)"
        )
    return f"the kubeconfig {shown} cannot be used: {str(exc).rstrip('.')}"


def _incluster_namespace() -> str:
    try:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
            return f.read().strip() or "default"
    except OSError:
        return "default"
