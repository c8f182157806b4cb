"""R1: SIGKILL the operator at random moments while DAGs with retries and failures run; restart it each time.

Every TaskJob must end as its script says it would without kills, with one Job per (task, attempt),
attempt counts equal to the Jobs that exist, and no task lost (see scenarios.py).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import pytest
from operator_harness import OperatorProcess, TaskJobs, poll
from reliability import SOAK
from scenarios import Scenario, check, finished, random_scenario

pytestmark = pytest.mark.cluster

DAGS, KILLS = (20, 50) if SOAK else (5, 10)


def created_jobs(op: OperatorProcess) -> int:
    """Return how many Job creations the current operator process has logged."""
    return op.log_path.read_text(errors="replace").count("created Job")


def kill_at_random_moment(op: OperatorProcess, rng: random.Random) -> str:
    """Wait for a moment chosen by one of three strategies, SIGKILL the operator, and return the strategy."""
    strategy = rng.choice(("at once", "after a random delay", "right after a Job creation"))
    if strategy == "after a random delay":
        time.sleep(rng.uniform(0.1, 4.0))  # the chaos schedule, not synchronisation
    elif strategy == "right after a Job creation":
        # Between a create and the status write that records it is where a crash hurts most.
        seen = created_jobs(op)
        deadline = time.monotonic() + 15
        while created_jobs(op) == seen and time.monotonic() < deadline:
            time.sleep(0.02)
    op.kill()
    return strategy


def test_r1_operator_killed_at_random_moments_finishes_every_taskjob(
    operators: Callable[..., OperatorProcess], taskjobs: TaskJobs, rng: random.Random, figures: dict[str, Any]
) -> None:
    op = operators()
    scenarios: list[Scenario] = []
    kills: dict[str, int] = {}
    wave = 0
    while sum(kills.values()) < KILLS:
        wave += 1
        batch = [random_scenario(rng, f"w{wave}-dag{i}") for i in range(DAGS)]
        for s in batch:
            taskjobs.create(s.manifest())
        scenarios += batch
        names = [s.name for s in batch]
        while sum(kills.values()) < KILLS and not finished(taskjobs, names):
            strategy = kill_at_random_moment(op, rng)
            kills[strategy] = kills.get(strategy, 0) + 1
            op.start()
        poll(lambda names=names: finished(taskjobs, names), 300, f"wave {wave} to finish")
    problems = [p for s in scenarios for p in check(taskjobs, s)]
    figures.update(
        dags=len(scenarios),
        tasks=sum(len(s.tasks) for s in scenarios),
        jobs=sum(len(taskjobs.jobs(s.name)) for s in scenarios),
        kills=sum(kills.values()),
        by_strategy=kills,
        failed_dags=sum(1 for s in scenarios if s.expected_phase() == "Failed"),
        problems=len(problems),
    )
    assert not problems, "\n".join(problems)
