"""The task graph: built and checked once, then asked what may run.

Pure: no I/O, no clock. Modelled on Tekton's pkg/reconciler/pipeline/dag.
"""

from __future__ import annotations

import difflib
import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class DagProblem:
    """One thing wrong with the graph, at a field path such as spec.tasks[2].dependsOn[0]."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class DagError(ValueError):
    """The graph is not a valid DAG; `problems` lists every reason."""

    def __init__(self, problems: Sequence[DagProblem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = tuple(problems)


@dataclass(frozen=True)
class Graph:
    """A validated DAG: task names in spec order, with edges both ways."""

    names: tuple[str, ...]
    deps: Mapping[str, tuple[str, ...]]  # task -> tasks it depends on
    dependents: Mapping[str, tuple[str, ...]]  # task -> tasks that depend on it
    order: tuple[str, ...]  # a topological order, stable w.r.t. spec order

    def candidates(self, succeeded: Iterable[str]) -> list[str]:
        """Return the tasks, in topological order, whose dependencies all succeeded and that have not."""
        done = set(succeeded)
        return [t for t in self.order if t not in done and all(d in done for d in self.deps[t])]

    def descendants(self, task: str) -> set[str]:
        """Return every task that depends on `task`, directly or transitively."""
        seen: set[str] = set()
        stack = list(self.dependents[task])
        while stack:
            t = stack.pop()
            if t not in seen:
                seen.add(t)
                stack.extend(self.dependents[t])
        return seen


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _find_cycle(deps: Mapping[str, Sequence[str]], names: Sequence[str]) -> list[str] | None:
    """Return one cycle as [a, b, ..., a] following dependsOn edges in reverse (a runs before b), or None."""
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(names, white)
    for root in names:
        if color[root] != white:
            continue
        # Iterative DFS along "runs before" edges: dependency -> dependent.
        path: list[str] = []
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            node, i = stack.pop()
            if i == 0:
                color[node] = grey
                path.append(node)
            nexts = deps[node]
            if i < len(nexts):
                stack.append((node, i + 1))
                nxt = nexts[i]
                if color[nxt] == grey:
                    cycle = path[path.index(nxt) :] + [nxt]
                    return list(reversed(cycle))
                if color[nxt] == white:
                    stack.append((nxt, 0))
            else:
                color[node] = black
                path.pop()
    return None


def build(tasks: Sequence[tuple[str, Sequence[str]]]) -> Graph:
    """Return the Graph of (name, dependsOn) pairs, or raise DagError naming every problem found."""
    problems: list[DagProblem] = []
    index: dict[str, int] = {}
    for i, (name, _) in enumerate(tasks):
        if name in index:
            problems.append(
                DagProblem(f"spec.tasks[{i}].name", f"duplicate task name {name!r} (also spec.tasks[{index[name]}])")
            )
        else:
            index[name] = i
    if not tasks:
        problems.append(DagProblem("spec.tasks", "at least one task is required"))
    for i, (name, dep_list) in enumerate(tasks):
        for j, dep in enumerate(dep_list):
            path = f"spec.tasks[{i}].dependsOn[{j}]"
            if dep == name:
                problems.append(DagProblem(path, f"task {name!r} depends on itself"))
            elif dep not in index:
                problems.append(DagProblem(path, f"unknown task {dep!r}{_suggest(dep, index)}"))
    if problems:
        raise DagError(problems)

    names = tuple(name for name, _ in tasks)
    deps = {name: tuple(dict.fromkeys(d)) for name, d in tasks}
    cycle = _find_cycle(deps, names)
    if cycle:
        first = cycle[0]
        raise DagError([DagProblem(f"spec.tasks[{index[first]}].dependsOn", "cycle: " + " → ".join(cycle))])

    dependents: dict[str, list[str]] = {n: [] for n in names}
    for name in names:
        for d in deps[name]:
            dependents[d].append(name)

    # Kahn's algorithm, picking the earliest task in spec order among those ready: stable and predictable.


    indegree = {n: len(deps[n]) for n in names}
    heap = [index[n] for n in names if indegree[n] == 0]
    heapq.heapify(heap)
    order: list[str] = []
    while heap:
        n = names[heapq.heappop(heap)]
        order.append(n)
        for m in dependents[n]:
            indegree[m] -= 1
            if indegree[m] == 0:
                heapq.heappush(heap, index[m])

    return Graph(
        names=names,
        deps=deps,
        dependents={n: tuple(v) for n, v in dependents.items()},
        order=tuple(order),
    )
