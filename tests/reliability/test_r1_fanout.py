"""R1 with fan-out: SIGKILL the operator at random moments while fan-out TaskJobs expand and run.

Each TaskJob is gen → work (forEach over gen's output, every instance failing its first attempt) → sum.
Every one must succeed with exactly the instances gen's list gives, one Job per (instance, attempt),
two attempts per instance, and sum receiving the instances' outputs as one list: the expansion is
derived again after each kill, never twice and never differently.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from operator_harness import OperatorProcess, TaskJobs, poll
from outcomes import pod_outcomes
from reliability import SOAK
from scenarios import finished
from test_r1_crashes import kill_at_random_moment

pytestmark = pytest.mark.cluster

DAGS, KILLS = (6, 30) if SOAK else (3, 8)


def fanout_manifest(name: str, items: int) -> dict[str, Any]:
    gen = pod_outcomes(0, message=json.dumps([{"n": i} for i in range(items)]), duration_ms=500)
    work = pod_outcomes({1: 1, 2: 0}, message="1", duration_ms=1500)  # each instance: fail once, then "1"
    tasks = [
        {"name": "gen", "podTemplate": {"metadata": {"annotations": gen}}},
        {
            "name": "work",
            "dependsOn": ["gen"],
            "forEach": {"fromOutput": "gen"},
            "args": ["{{item.n}}"],
            "retry": {"limit": 2},
            "podTemplate": {"metadata": {"annotations": work}},
        },
        {"name": "sum", "dependsOn": ["work"], "args": ["{{tasks.work.output}}"]},
    ]
    spec = {
        "parallelism": 3,
        "defaults": {"image": "busybox:1.36", "retry": {"backoff": {"delaySeconds": 1, "factor": 1.5}}},
        "tasks": tasks,
    }
    return {"apiVersion": "taskjob.dev/v1alpha1", "kind": "TaskJob", "metadata": {"name": name}, "spec": spec}


def problems_of(taskjobs: TaskJobs, name: str, items: int) -> list[str]:
    found: list[str] = []
    status = taskjobs.status(name)
    if (status.get("phase"), status.get("progress")) != ("Succeeded", f"{items + 2}/{items + 2}"):
        found.append(f"{name}: {status.get('phase')} {status.get('progress')} ({status.get('message')})")
    jobs = taskjobs.jobs(name)
    per_attempt = Counter(
        (j.metadata.labels["taskjob.dev/task"], j.metadata.labels["taskjob.dev/attempt"]) for j in jobs
    )
    twice = sorted(k for k, v in per_attempt.items() if v > 1)
    if twice:
        found.append(f"{name}: (unit, attempt) with two Jobs: {twice}")
    want = {("gen", "1"), ("sum", "1"), *((f"work-{i}", a) for i in range(items) for a in ("1", "2"))}
    if set(per_attempt) != want:
        found.append(f"{name}: Jobs for {sorted(set(per_attempt) ^ want)} differ from the expansion")
    sink = [j for j in jobs if j.metadata.labels["taskjob.dev/task"] == "sum"]
    if sink and sink[0].spec.template.spec.containers[0].args != [json.dumps([1] * items, separators=(",", ":"))]:
        found.append(f"{name}: sum got {sink[0].spec.template.spec.containers[0].args}")
    return found


def test_r1_operator_killed_while_fan_outs_expand_and_run_finishes_each_exactly_once(
    operators: Callable[..., OperatorProcess], taskjobs: TaskJobs, rng: random.Random, figures: dict[str, Any]
) -> None:
    op = operators()
    sizes = {f"fan{i}": rng.randint(2, 6) for i in range(DAGS)}
    for name, items in sizes.items():
        taskjobs.create(fanout_manifest(name, items))
    kills: dict[str, int] = {}
    names = list(sizes)
    while sum(kills.values()) < KILLS and not finished(taskjobs, names):
        strategy = kill_at_random_moment(op, rng)
        kills[strategy] = kills.get(strategy, 0) + 1
        op.start()
    poll(lambda: finished(taskjobs, names), 300, "the fan-out TaskJobs to finish")
    problems = [p for name, items in sizes.items() for p in problems_of(taskjobs, name, items)]
    figures.update(
        dags=len(sizes),
        instances=sum(sizes.values()),
        jobs=sum(len(taskjobs.jobs(n)) for n in names),
        kills=sum(kills.values()),
        by_strategy=kills,
        problems=len(problems),
    )
    assert not problems, "\n".join(problems)
