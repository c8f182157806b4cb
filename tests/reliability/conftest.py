"""Fixtures of the reliability suite: the operator as a process (from tests/cluster), the fault proxy, figures.

The suite runs bounded in CI; `TASKJOB_SOAK=1` (or `make soak`) runs the long version. Every random choice
comes from one seed, printed with the figures: `TASKJOB_RELIABILITY_SEED=<n>` replays a run's schedule.
"""

from __future__ import annotations

import random
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from faultproxy import FaultProxy, Faults, Upstream  # noqa: E402
from operator_harness import CRD, OperatorProcess, TaskJobs  # noqa: E402
from reliability import SEED, SOAK, tracebacks  # noqa: E402

FIGURES: list[tuple[str, dict[str, Any]]] = []  # (test, figures), printed at the end of the session


@pytest.fixture(scope="session")
def taskjob_crd(kubeconfig: str, testenv: Any) -> None:
    """The TaskJob CRD, applied and Established."""
    testenv.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    testenv.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/taskjobs.taskjob.dev")


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    """A random source seeded from the session seed and the test's name, so a failing schedule can be replayed."""
    return random.Random(f"{SEED}/{request.node.name}")


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """A dict the test fills with what it tried and saw; printed in the session summary."""
    data: dict[str, Any] = {"seed": SEED, "soak": SOAK}
    yield data
    FIGURES.append((request.node.name, data))


@pytest.fixture
def operators(
    kubeconfig: str, namespace: str, taskjob_crd: None, tmp_path: Path
) -> Iterator[Callable[..., OperatorProcess]]:
    """`operators(kubeconfig=None, allowed=())` starts the operator for the test's namespace.

    At teardown it is stopped and its logs must hold no traceback, except those whose exception line
    matches one of the `allowed` regular expressions (the faults a test injects on purpose).
    """
    started: list[tuple[OperatorProcess, tuple[str, ...]]] = []

    def start(
        config: str | None = None, allowed: tuple[str, ...] = (), extra: list[str] | None = None
    ) -> OperatorProcess:
        log_dir = tmp_path / f"operator-{len(started)}"
        log_dir.mkdir()
        op = OperatorProcess(config or kubeconfig, [namespace], log_dir, extra=extra)
        started.append((op, allowed))  # before start(): an operator that never gets healthy is stopped too
        return op.start()

    yield start
    failures = []
    for op, allowed in started:
        op.stop()
        for tb in tracebacks(op.logs()):
            last = tb.rstrip().splitlines()[-1]
            if not any(re.search(pattern, last) for pattern in allowed):
                failures.append(tb)
    assert not failures, f"the operator logged {len(failures)} unexpected traceback(s); the first:\n{failures[0]}"


@pytest.fixture
def taskjobs(api_client: Any, namespace: str) -> TaskJobs:
    return TaskJobs(api_client, namespace)


@pytest.fixture
def fault_proxy(kubeconfig: str, tmp_path: Path) -> Iterator[Callable[[Faults], tuple[FaultProxy, str]]]:
    """`fault_proxy(faults)` starts a proxy to the testenv; returns it and a kubeconfig pointing at it."""
    proxies: list[FaultProxy] = []

    def start(faults: Faults) -> tuple[FaultProxy, str]:
        proxy = FaultProxy(Upstream.from_kubeconfig(kubeconfig), faults).start()
        proxies.append(proxy)
        return proxy, str(proxy.write_kubeconfig(tmp_path / f"proxy-{len(proxies)}.kubeconfig"))

    yield start
    for proxy in proxies:
        proxy.stop()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print what each reliability test tried and saw (the figures docs/reliability.md reports)."""
    if not FIGURES:
        return
    terminalreporter.section("reliability figures")
    for name, data in FIGURES:
        terminalreporter.write_line(f"{name}: " + ", ".join(f"{k}={v}" for k, v in data.items()))


