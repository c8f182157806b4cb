"""Random TaskJobs with scripted pod outcomes, the outcome each must reach, and the invariants to check.

A scenario fixes, for every task, the exit code of each attempt (through the kwok annotations of
tests/cluster/outcomes.py), its retry limit and non-retriable codes. From that script alone the end of
the run follows, whatever the operator went through on the way (kills, API faults, restarts):

- under ContinueIndependent every task's final phase and attempt count are exact;
- under FailFast the TaskJob's phase is exact; a task that finished on its own (Succeeded, Failed) has
  exactly its scripted attempts; a task stopped early (Skipped) has at most that many.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from operator_harness import TaskJobs
from outcomes import pod_outcomes

NON_RETRIABLE = 2
BACKOFF = {"delaySeconds": 1, "factor": 1.5, "maxDelaySeconds": 3}


@dataclass(frozen=True)
class TaskScript:
    """One task: its dependencies, exit code per attempt (unlisted attempts exit 0), retry limit."""

    name: str
    deps: tuple[str, ...]
    codes: dict[int, int]
    limit: int
    duration_ms: int

    def verdict(self) -> tuple[str, int]:
        """Return (phase, attempts) of this task once it runs: the first exit 0, a non-retriable code, or the limit."""
        for attempt in range(1, self.limit + 2):
            code = self.codes.get(attempt, 0)
            if code == 0:
                return "Succeeded", attempt
            if code == NON_RETRIABLE:
                return "Failed", attempt
        return "Failed", self.limit + 1


@dataclass(frozen=True)
class Scenario:
    """A TaskJob whose every pod outcome is scripted."""

    name: str
    tasks: tuple[TaskScript, ...]
    policy: str
    parallelism: int | None = None
    expected: dict[str, tuple[str, int]] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        """Return the TaskJob manifest."""
        tasks = []
        for t in self.tasks:
            annotations = pod_outcomes(dict(t.codes) if t.codes else 0, duration_ms=t.duration_ms)
            entry: dict[str, Any] = {
                "name": t.name,
                "retry": {"limit": t.limit, "nonRetriableExitCodes": [NON_RETRIABLE]},
                "podTemplate": {"metadata": {"annotations": annotations}},
            }
            if t.deps:
                entry["dependsOn"] = list(t.deps)
            tasks.append(entry)
        spec: dict[str, Any] = {
            "failurePolicy": self.policy,
            "defaults": {"image": "busybox:1.36", "retry": {"backoff": BACKOFF}},
            "tasks": tasks,
        }
        if self.parallelism:
            spec["parallelism"] = self.parallelism
        return {"apiVersion": "taskjob.dev/v1alpha1", "kind": "TaskJob", "metadata": {"name": self.name}, "spec": spec}

    def expected_tasks(self) -> dict[str, tuple[str, int]]:
        """Return each task's (phase, attempts) when every task not behind a failure runs (ContinueIndependent)."""
        result: dict[str, tuple[str, int]] = {}
        for t in self.tasks:  # tasks are generated in topological order
            if any(result[d][0] != "Succeeded" for d in t.deps):
                result[t.name] = ("Skipped", 0)
            else:
                result[t.name] = t.verdict()
        return result

    def expected_phase(self) -> str:
        """Return the TaskJob's final phase: Failed exactly when some task fails for good."""
        return "Failed" if any(p == "Failed" for p, _ in self.expected_tasks().values()) else "Succeeded"


def random_scenario(rng: random.Random, name: str, size: tuple[int, int] = (4, 8)) -> Scenario:
    """Return a random DAG with steady, flaky, doomed and non-retriable tasks."""
    n = rng.randint(*size)
    tasks = []
    for i in range(n):
        earlier = [t.name for t in tasks]
        deps = tuple(sorted(rng.sample(earlier, k=min(len(earlier), rng.choice((0, 1, 1, 2, 2, 3))))))
        limit = rng.choice((0, 1, 2, 3))
        kind = rng.choices(("steady", "flaky", "doomed", "fatal"), weights=(55, 35, 5, 5))[0]
        codes: dict[int, int] = {}
        if kind == "flaky" and limit:
            codes = {a: 1 for a in range(1, rng.randint(1, limit) + 1)}
        elif kind == "doomed":
            codes = {a: 1 for a in range(1, limit + 2)}
        elif kind == "fatal":
            codes = {a: 1 for a in range(1, rng.randint(1, limit + 1))}
            codes[len(codes) + 1] = NON_RETRIABLE
        tasks.append(TaskScript(f"t{i}", deps, codes, limit, rng.randint(300, 2500)))
    policy = rng.choice(("ContinueIndependent", "ContinueIndependent", "FailFast"))
    parallelism = rng.choice((None, None, 2, 3))
    return Scenario(name, tuple(tasks), policy, parallelism)


def check(taskjobs: TaskJobs, scenario: Scenario) -> list[str]:
    """Return every invariant the finished TaskJob breaks (empty when all hold)."""
    problems: list[str] = []
    status = taskjobs.status(scenario.name)
    phase, want_phase = status.get("phase"), scenario.expected_phase()
    if phase != want_phase:
        problems.append(f"{scenario.name}: phase {phase}, expected {want_phase} ({status.get('message')})")
    per_attempt = Counter(
        (j.metadata.labels["taskjob.dev/task"], int(j.metadata.labels["taskjob.dev/attempt"]))
        for j in taskjobs.jobs(scenario.name)
    )
    twice = sorted(k for k, v in per_attempt.items() if v > 1)
    if twice:
        problems.append(f"{scenario.name}: (task, attempt) with two Jobs: {twice}")
    states = status.get("tasks") or {}
    expected = scenario.expected_tasks()
    for t in scenario.tasks:
        state = states.get(t.name)
        if state is None:
            problems.append(f"{scenario.name}/{t.name}: lost (no status)")
            continue
        got = (state.get("phase"), state.get("attempts") or 0)
        jobs = sorted(a for (task, a) in per_attempt if task == t.name)
        if jobs != list(range(1, got[1] + 1)):
            problems.append(f"{scenario.name}/{t.name}: status says {got[1]} attempts, Jobs exist for attempts {jobs}")
        want = expected[t.name]
        if scenario.policy == "ContinueIndependent" or got[0] in ("Succeeded", "Failed"):
            if got != want:
                problems.append(f"{scenario.name}/{t.name}: {got}, expected {want} ({state.get('message')})")
        elif got[0] != "Skipped" or got[1] > t.verdict()[1]:
            problems.append(f"{scenario.name}/{t.name}: {got}, expected Skipped with at most {t.verdict()[1]} attempts")
    return problems


def finished(taskjobs: TaskJobs, names: list[str]) -> bool:
    """Return True when every named TaskJob is in a final phase."""
    return all(taskjobs.status(n).get("phase") in ("Succeeded", "Failed", "Invalid") for n in names)
