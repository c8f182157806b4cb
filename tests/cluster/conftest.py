"""Fixtures for tests that run the operator as a real process against the testenv."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from operator_harness import OperatorProcess, TaskJobs, free_port, poll


@pytest.fixture
def operator(kubeconfig: str, namespace: str, taskjob_crd: None, tmp_path: Path) -> Iterator[OperatorProcess]:
    """The operator running against the test's namespace; its log must show no traceback."""
    op = OperatorProcess(kubeconfig, [namespace], tmp_path)
    try:
        yield op.start()
    finally:
        op.stop()  # also when it never became healthy: no orphan process
    logs = op.logs()
    tracebacks = [m.start() for m in re.finditer("Traceback", logs)]
    assert not tracebacks, f"operator logged a traceback:\n{logs[tracebacks[0] - 2000 : tracebacks[0] + 3000]}"


@pytest.fixture
def taskjobs(api_client: Any, namespace: str) -> TaskJobs:
    return TaskJobs(api_client, namespace)


@pytest.fixture
def webhook_operator(
    kubeconfig: str, namespace: str, taskjob_crd: None, tmp_path: Path, kubectl: Callable[..., str]
) -> Iterator[OperatorProcess]:
    """The operator serving its admission webhook on loopback, once kopf registered it for both kinds."""
    port = free_port()
    op = OperatorProcess(
        kubeconfig, [namespace], tmp_path, extra=["--webhook-port", str(port), "--webhook-host", "127.0.0.1"]
    )
    try:
        op.start()
        poll(lambda: "crontaskjobs" in kubectl("get", "validatingwebhookconfiguration", "taskjob.dev", "-o", "yaml",
                                               check=False), 30, "kopf to register the webhook configuration")
        yield op
    finally:
        op.stop()
    # The configuration outlives the process (failurePolicy Ignore keeps that harmless); tidy it anyway.
    kubectl("delete", "validatingwebhookconfiguration", "taskjob.dev", "--ignore-not-found")
