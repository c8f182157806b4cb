"""Actions from the dashboard (retry, suspend, resume, delete): off unless `taskjob dashboard --allow-actions`.

Each action is decided here as a plain request (`plan_action`, no I/O) and executed by `ActionRunner`
with the dashboard's own identity (the kubeconfig's user, or the chart's ServiceAccount). Every one is
what the CLI and kubectl already do: retry sets the operator's retry annotation to a fresh value (as
`taskjob retry`), suspend and resume set spec.suspend, delete deletes the TaskJob (its Jobs and pods
follow by garbage collection).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .coreapi import ANNOTATION_RETRY, ANNOTATION_RETRY_TASKS, GROUP, PLURAL, VERSION

ACTIONS = ("retry", "suspend", "resume", "delete")
CONFIRM_HEADER = "X-Taskjob-Confirm"  # must carry the TaskJob's name: a typed confirmation, and no form can send it


class ActionError(Exception):
    """An action that cannot be done; the message says why, for the user."""


@dataclass(frozen=True)
class ActionRequest:
    """What to send to the API server: a merge patch of the TaskJob, or its deletion."""

    verb: str  # patch or delete
    body: dict[str, Any]
    summary: str


def plan_action(action: str, taskjob: Mapping[str, Any] | None, now: datetime) -> ActionRequest:
    """Return the request that carries out `action` on the TaskJob; raise ActionError when it does not apply."""
    if action not in ACTIONS:
        raise ActionError(f"unknown action {action!r} (one of {', '.join(ACTIONS)})")
    if taskjob is None:
        raise ActionError("no such TaskJob")
    status = taskjob.get("status") or {}
    suspended = bool((taskjob.get("spec") or {}).get("suspend"))
    if action == "retry":
        tasks = status.get("tasks") or {}
        again = sorted(t for t, s in tasks.items() if (s or {}).get("phase") in ("Failed", "Skipped"))
        if not again:
            raise ActionError("nothing to retry: no task failed or was skipped")
        nonce = f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
        body = {"metadata": {"annotations": {ANNOTATION_RETRY: nonce, ANNOTATION_RETRY_TASKS: None}}}
        return ActionRequest("patch", body, f"retry requested: {', '.join(again)}")
    if action in ("suspend", "resume"):
        if status.get("phase") in ("Succeeded", "Failed", "Invalid"):
            raise ActionError(f"the TaskJob has finished ({status.get('phase')}): there is nothing to {action}")
        if suspended == (action == "suspend"):
            raise ActionError(f"the TaskJob is already {'suspended' if suspended else 'running'}")
        return ActionRequest("patch", {"spec": {"suspend": action == "suspend"}}, f"{action} requested")
    return ActionRequest("delete", {"propagationPolicy": "Background"}, "deleted")


class ActionRunner:
    """Sends action requests to the API server (the official client, in a thread)."""

    def __init__(self, api_client: Any) -> None:
        self.api_client = api_client

    async def run(self, namespace: str, name: str, request: ActionRequest) -> None:
        """Send the request; raise ActionError with the API server's answer when it refuses."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        custom = client.CustomObjectsApi(self.api_client)

        def send() -> None:
            if request.verb == "patch":
                custom.patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, name, request.body,
                    _content_type="application/merge-patch+json", _request_timeout=(10, 30),
                )
            else:
                custom.delete_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, name,
                    body=client.V1DeleteOptions(propagation_policy=request.body["propagationPolicy"]),
                    _request_timeout=(10, 30),
                )

        try:
            await asyncio.to_thread(send)
        except ApiException as exc:
            raise ActionError(f"the API server refused: {exc.status} {exc.reason}") from exc
