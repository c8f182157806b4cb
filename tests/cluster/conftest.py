"""Fixtures for tests that run the operator as a real process against the testenv."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from operator_harness import OperatorProcess, TaskJobs


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
