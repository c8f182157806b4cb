"""R4: a flood of generated bad manifests; each is refused by the API server or ends Invalid naming the field.

Manifests come from hypothesis: random mutations of a rich valid TaskJob (wrong types, missing fields,
unknown fields, out-of-range numbers), and constructed defects (cycles, self and unknown dependencies,
duplicate names, huge and unicode names, output references to unknown tasks, deep nesting, DAGs of
thousands of tasks). Every manifest is created through the API. Then:

- refused at apply: the API server's message names the field;
- accepted: the operator marks it Invalid with a Valid=False condition and a message naming the field of
  the first problem, unless what the server stored is a valid TaskJob (a mutation can be harmless, and the
  server prunes unknown fields), which then must not be Invalid (the base manifest is suspended);
- the operator logs no traceback, and valid TaskJobs created meanwhile succeed.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from kubernetes.client.exceptions import ApiException
from operator_harness import OperatorProcess, TaskJobs, poll
from reliability import SEED, SOAK

from taskjobs.core.validation import validate_taskjob

pytestmark = pytest.mark.cluster

MANIFESTS = 5000 if SOAK else 1000
BIG = (2000, 10_000)  # tasks in the big DAGs
FIELD = re.compile(r"\b(spec|metadata)(\.[A-Za-z]|\[|\b)|\bapiVersion\b|\bkind\b")

BASE: dict[str, Any] = {
    "apiVersion": "taskjob.dev/v1alpha1",
    "kind": "TaskJob",
    "metadata": {"name": "base"},
    "spec": {
        "suspend": True,
        "parallelism": 2,
        "failurePolicy": "FailFast",
        "activeDeadlineSeconds": 600,
        "ttlSecondsAfterFinished": 600,
        "defaults": {
            "image": "busybox:1.36",
            "retry": {"limit": 2, "backoff": {"delaySeconds": 1, "factor": 2, "maxDelaySeconds": 10}},
            "timeoutSeconds": 60,
        },
        "tasks": [
            {
                "name": "a",
                "command": ["sh", "-c"],
                "args": ["echo a"],
                "env": [{"name": "MODE", "value": "full"}],
                "resources": {"requests": {"cpu": "100m"}},
                "priority": 1,
                "podTemplate": {"metadata": {"labels": {"x": "y"}}},
            },
            {
                "name": "b",
                "dependsOn": ["a"],
                "args": ["{{tasks.a.output}}"],
                "retry": {"limit": 1, "nonRetriableExitCodes": [2]},
                "timeoutSeconds": 30,
                "startupTimeoutSeconds": 10,
            },
            {"name": "c", "dependsOn": ["a", "b"]},
        ],
    },
}

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20), st.text(alphabet="ünïcødé→☃𝔘", max_size=10),
)
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=8), inner, max_size=3), max_leaves=8)
task_name = st.from_regex(r"[a-z]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


def paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Return the path of every value inside obj (dict keys and list indexes), except spec.suspend."""
    found = []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        path = (*prefix, k)
        if path != ("spec", "suspend"):  # suspended: a mutation that happens to be valid launches nothing
            found.append(path)
            found.extend(paths(v, path))
    return found


def at(obj: Any, path: tuple[Any, ...]) -> Any:
    for k in path:
        obj = obj[k]
    return obj


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """Return a copy of BASE with 1-3 random changes: a value replaced, a key removed, an unknown key added."""
    doc = copy.deepcopy(BASE)
    kinds = []
    for _ in range(draw(st.integers(1, 3))):
        targets = [p for p in paths(doc) if p[0] != "metadata"]
        path = draw(st.sampled_from(targets))
        parent, last = at(doc, path[:-1]), path[-1]
        op = draw(st.sampled_from(("replace", "remove", "unknown")))
        kinds.append(op)
        if op == "replace":
            parent[last] = draw(json_value)
        elif op == "remove":
            del parent[last]
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=12))] = draw(json_value)
    return "mutation", doc


@st.composite
def constructed(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """Return a manifest with one known defect, named as the category."""
    doc = copy.deepcopy(BASE)
    tasks: list[dict[str, Any]] = doc["spec"]["tasks"]
    category = draw(st.sampled_from((
        "cycle", "self-dependency", "unknown-dependency", "duplicate-names", "huge-task-name", "huge-taskjob-name",
        "unicode-name", "unknown-output", "deep-nesting", "empty-tasks", "out-of-range", "missing-name",
    )))
    if category == "cycle":
        names = draw(st.lists(task_name, min_size=2, max_size=30, unique=True))
        doc["spec"]["tasks"] = [{"name": n, "dependsOn": [names[i - 1]]} for i, n in enumerate(names)]
    elif category == "self-dependency":
        victim = draw(st.sampled_from(tasks))
        victim["dependsOn"] = sorted({*victim.get("dependsOn", []), victim["name"]})
    elif category == "unknown-dependency":
        draw(st.sampled_from(tasks))["dependsOn"] = [draw(task_name.filter(lambda n: n not in "abc"))]
    elif category == "duplicate-names":
        tasks.append({"name": draw(st.sampled_from(["a", "b", "c"]))})
    elif category == "huge-task-name":
        tasks[0]["name"] = "t" * draw(st.integers(64, 2000))
    elif category == "huge-taskjob-name":
        doc["metadata"]["name"] = "n" * draw(st.integers(64, 240))
    elif category == "unicode-name":
        draw(st.sampled_from(tasks))["name"] = draw(st.text(alphabet="äöü→☃𝔘ßЖ", min_size=1, max_size=20))
    elif category == "unknown-output":
        tasks[2]["args"] = [f"{{{{tasks.{draw(task_name.filter(lambda n: n not in 'abc'))}.output}}}}"]
    elif category == "deep-nesting":
        depth = draw(st.integers(100, 400))
        nested: dict[str, Any] = {"leaf": 1}
        for _ in range(depth):
            nested = {"n": nested}
        tasks[0]["podTemplate"] = {"metadata": {"labels": {"x": "y"}}, "spec": {"affinity": nested}}
    elif category == "empty-tasks":
        doc["spec"]["tasks"] = []
    elif category == "out-of-range":
        field, value = draw(st.sampled_from((
            ("parallelism", 0), ("activeDeadlineSeconds", -5), ("ttlSecondsAfterFinished", -1),
        )))
        doc["spec"][field] = value
    elif category == "missing-name":
        del draw(st.sampled_from(tasks))["name"]
    return category, doc


def big_dag(size: int, defect: str) -> dict[str, Any]:
    """Return a layered DAG of `size` tasks whose last task has the defect (a cycle back, or an unknown dependency)."""
    doc = copy.deepcopy(BASE)
    tasks = [{"name": f"t{i}", **({"dependsOn": [f"t{i // 2}"]} if i else {})} for i in range(size)]
    tasks[0]["dependsOn"] = [f"t{size - 1}"] if defect == "cycle" else ["nowhere"]
    doc["spec"]["tasks"] = tasks
    return doc


def generate(count: int) -> list[tuple[str, dict[str, Any]]]:
    """Return `count` (category, manifest) pairs drawn by hypothesis, plus the big DAGs."""
    drawn: list[tuple[str, dict[str, Any]]] = []

    @settings(max_examples=count, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), derandomize=False)
    @given(st.one_of(mutated(), constructed()))
    def draw(example: tuple[str, dict[str, Any]]) -> None:
        drawn.append(example)

    draw()
    drawn += [(f"big-{defect}", big_dag(size, defect)) for size in BIG for defect in ("cycle", "unknown")]
    return drawn


def expected_path(category: str) -> str | None:
    """Return the field path the message must name for a constructed defect (None: whatever the validator says)."""
    return {
        "cycle": "spec.tasks[", "self-dependency": "dependsOn", "unknown-dependency": "dependsOn",
        "huge-taskjob-name": "metadata.name", "unknown-output": "spec.tasks[2].args[0]",
        "big-cycle": "spec.tasks[", "big-unknown": "spec.tasks[0].dependsOn",
    }.get(category)


def test_r4_generated_bad_manifests_are_refused_or_invalid_and_valid_work_goes_on(
    operators: Callable[..., OperatorProcess], taskjobs: TaskJobs, figures: dict[str, Any]
) -> None:
    op = operators()
    manifests = generate(MANIFESTS)
    for i, (category, doc) in enumerate(manifests):  # unique names; a huge one stays huge
        huge = category == "huge-taskjob-name"
        doc["metadata"]["name"] = f"bad-{i}" + (f"-{doc['metadata']['name']}" if huge else "")
    good = [f"good-{i}" for i in range(4)]

    def create(item: tuple[str, dict[str, Any]]) -> tuple[str, str, dict[str, Any] | str]:
        category, doc = item
        try:
            return category, "accepted", taskjobs.create(doc)
        except ApiException as e:
            return category, f"refused {e.status}", str(e.body)

    started = time.monotonic()
    results: list[tuple[str, str, dict[str, Any] | str]] = []
    with ThreadPoolExecutor(8) as pool:
        for n, chunk in enumerate(range(0, len(manifests), 250)):
            if n < len(good):  # valid work arrives in the middle of the flood
                taskjobs.create(valid(good[n]))
            results += pool.map(create, manifests[chunk : chunk + 250])
    stored = [(c, body) for c, outcome, body in results if outcome == "accepted" and isinstance(body, dict)]
    names = [body["metadata"]["name"] for _, body in stored]
    poll(lambda: all(taskjobs.status(n).get("phase") for n in names), 600, "a status on every accepted TaskJob")
    handled_after = round(time.monotonic() - started)

    problems: list[str] = []
    for category, outcome, body in results:
        if outcome.startswith("refused") and not FIELD.search(str(body)):
            problems.append(f"{category}: refused without naming a field: {str(body)[:300]}")
    verdicts: Counter[str] = Counter()
    for category, body in stored:
        name = body["metadata"]["name"]
        status = taskjobs.status(name)
        verdict = validate_taskjob(body)
        if verdict.ok:
            verdicts["valid as stored"] += 1
            if category != "mutation" or status.get("phase") == "Invalid":
                phase = status.get("phase")
                problems.append(f"{category} {name}: stored valid, phase {phase}: {json.dumps(body)[:300]}")
            continue
        verdicts["invalid"] += 1
        message = status.get("message") or ""
        valid_condition = {c["type"]: c["status"] for c in status.get("conditions") or ()}.get("Valid")
        # Deep nesting is checked for naming its field by the test below, so that this one tells the rest.
        want = "" if category == "deep-nesting" else expected_path(category) or verdict.problems[0].path
        if status.get("phase") != "Invalid" or valid_condition != "False" or want not in message:
            problems.append(f"{category} {name}: phase {status.get('phase')}, Valid={valid_condition}, message "
                            f"{message[:200]!r} does not name {want!r}")
    for name in good:
        status = taskjobs.wait_phase(name, ("Succeeded", "Failed"), timeout=120)
        if status["phase"] != "Succeeded":
            problems.append(f"valid TaskJob {name} ended {status['phase']}: {status.get('message')}")
    assert op.healthy()
    outcomes = Counter(outcome for _, outcome, _ in results)
    figures.update(
        manifests=len(manifests), seed=SEED, outcomes=dict(outcomes), accepted=dict(verdicts),
        categories=dict(Counter(c for c, _, _ in results)), seconds_to_handle_all=handled_after, problems=len(problems),
    )
    assert not problems, f"{len(problems)} problems; the first 20:\n" + "\n".join(problems[:20])


def valid(name: str) -> dict[str, Any]:
    """Return a small valid TaskJob that runs (a diamond)."""
    return {
        "apiVersion": "taskjob.dev/v1alpha1",
        "kind": "TaskJob",
        "metadata": {"name": name},
        "spec": {
            "defaults": {"image": "busybox:1.36"},
            "tasks": [{"name": "a"}, {"name": "b", "dependsOn": ["a"]}, {"name": "c", "dependsOn": ["a"]},
                      {"name": "d", "dependsOn": ["b", "c"]}],
        },
    }


def test_r4_deeply_nested_manifest_is_invalid_naming_the_field(
    operators: Callable[..., OperatorProcess], taskjobs: TaskJobs
) -> None:
    operators()
    doc = copy.deepcopy(BASE)
    nested: dict[str, Any] = {"leaf": 1}
    for _ in range(150):
        nested = {"n": nested}
    doc["spec"]["tasks"][1]["podTemplate"] = {"spec": {"affinity": nested}}
    doc["metadata"]["name"] = "deep"
    taskjobs.create(doc)
    status = taskjobs.wait_phase("deep", "Invalid", timeout=30)
    assert "spec.tasks[1].podTemplate" in status["message"], status["message"]
