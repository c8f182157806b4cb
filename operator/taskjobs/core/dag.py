"""The task graph: built and checked once, then asked what may run.

Pure: no I/O, no clock. Modelled on Tekton's pkg/reconciler/pipeline/dag.
"""

from __future__ import annotations

import difflib
import heapq
import json
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


def quote(text: str) -> str:
    """Return text in double quotes, as Kubernetes messages quote names."""
    return json.dumps(text, ensure_ascii=False)


def closest(name: str, known: Iterable[str]) -> str | None:
    """Return the known name most like `name`, or None when none is close."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def suggest(name: str, known: Iterable[str]) -> str:
    """Return ' (did you mean "x"?)' for the closest known name, or "" when none is close."""
    match = closest(name, known)
    return f" (did you mean {quote(match)}?)" if match is not None else ""


def _strongly_connected(names: Sequence[str], edges: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Return the strongly connected components with more than one task (Tarjan's, iterative: no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for root in names:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            nexts = edges[node]
            if i < len(nexts):
                work.append((node, i + 1))
                nxt = nexts[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found


def _cycle_through(first: str, component: set[str], dependents: Mapping[str, Sequence[str]]) -> list[str]:
    """Return the shortest cycle [first, ..., first] inside one component, following "runs before" edges."""
    came_from: dict[str, str] = {}
    queue = [first]
    for node in queue:  # breadth-first: the list grows while we walk it
        for nxt in dependents[node]:
            if nxt == first:
                cycle = [node]
                while cycle[-1] != first:
                    cycle.append(came_from[cycle[-1]])
                return [*reversed(cycle), first]
            if nxt in component and nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    raise AssertionError("a strongly connected component always has a cycle through each member")


def build(tasks: Sequence[tuple[str, Sequence[str]]]) -> Graph:
    """Return the Graph of (name, dependsOn) pairs, or raise DagError naming every problem found."""
    problems: list[DagProblem] = []
    index: dict[str, int] = {}
    for i, (name, _) in enumerate(tasks):
        if name in index:
            problems.append(
                DagProblem(
                    f"spec.tasks[{i}].name", f"duplicate task name {quote(name)} (also spec.tasks[{index[name]}])"
                )
            )
        else:
            index[name] = i
    if not tasks:
        problems.append(DagProblem("spec.tasks", "at least one task is required"))
    # Edges between known tasks, from each name's first occurrence, so cycles are found even when
    # other problems exist: the user sees everything in one go.
    deps: dict[str, tuple[str, ...]] = {}
    for i, (name, dep_list) in enumerate(tasks):
        for j, dep in enumerate(dep_list):
            path = f"spec.tasks[{i}].dependsOn[{j}]"
            if dep == name:
                problems.append(DagProblem(path, f"task {quote(name)} depends on itself"))
            elif dep not in index:
                problems.append(DagProblem(path, f"unknown task {quote(dep)}{suggest(dep, index)}"))
        if index[name] == i:
            deps[name] = tuple(dict.fromkeys(d for d in dep_list if d in index and d != name))

    names = tuple(index)
    dependents: dict[str, list[str]] = {n: [] for n in names}
    for name in names:
        for d in deps[name]:
            dependents[d].append(name)

    cycles = []
    for component in _strongly_connected(names, deps):
        first = min(component, key=index.__getitem__)
        cycle = _cycle_through(first, set(component), dependents)
        # The edge that closes the cycle: `first` depends on the task printed just before it.
        j = list(tasks[index[first]][1]).index(cycle[-2])
        cycles.append(
            (
                index[first],
                DagProblem(
                    f"spec.tasks[{index[first]}].dependsOn[{j}]",
                    "dependency cycle " + " → ".join(cycle) + ": each task depends on the one before it",
                ),
            )
        )
    problems.extend(p for _, p in sorted(cycles, key=lambda c: c[0]))
    if problems:
        raise DagError(problems)

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
