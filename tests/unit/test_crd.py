"""The CRD generated from the models: checked in without drift, documented, structural, and usable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from taskjobs import crd

REGENERATE = "python -m taskjobs.crd --write"


def root_schema() -> dict[str, Any]:
    schema: dict[str, Any] = crd.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def at(path: str) -> dict[str, Any]:
    """The schema node at a dotted path; `[]` steps into list items, `{}` into map values."""
    node = root_schema()
    for part in path.split("."):
        if part == "[]":
            node = node["items"]
        elif part == "{}":
            node = node["additionalProperties"]
        else:
            node = node["properties"][part]
    return node


def nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node under `node`, with its path."""
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from nodes(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from nodes(node["additionalProperties"], f"{path}{{}}")


def properties(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every named property under `node` (what `kubectl explain` lists), with its path."""
    for p, n in nodes(node, path):
        for name, child in n.get("properties", {}).items():
            yield f"{p}.{name}", child


def test_checked_in_crd_matches_the_models() -> None:
    assert crd.CRD_PATH.exists(), f"{crd.CRD_PATH} is missing: run `{REGENERATE}`"
    checked_in = crd.CRD_PATH.read_text(encoding="utf-8")
    assert checked_in == crd.render(), (
        f"{crd.CRD_PATH.name} is out of date with operator/taskjobs/models.py: run `{REGENERATE}` and commit the result"
    )


def test_checked_in_crd_is_the_generated_object() -> None:
    assert yaml.safe_load(crd.render()) == crd.build_crd()


def test_crd_identity() -> None:
    spec = crd.build_crd()["spec"]
    assert crd.build_crd()["metadata"]["name"] == "taskjobs.taskjob.dev"
    assert spec["group"] == "taskjob.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "TaskJob",
        "listKind": "TaskJobList",
        "plural": "taskjobs",
        "singular": "taskjob",
        "shortNames": ["tj"],
        "categories": ["taskjob-all"],
    }
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


def test_printer_columns() -> None:
    columns = crd.build_crd()["spec"]["versions"][0]["additionalPrinterColumns"]
    got = [(c["name"].upper(), c["type"], c["jsonPath"], c.get("priority", 0)) for c in columns]
    assert got == [
        ("PHASE", "string", ".status.phase", 0),
        ("PROGRESS", "string", ".status.progress", 0),
        ("RUNNING", "integer", ".status.running", 0),
        ("AGE", "date", ".metadata.creationTimestamp", 0),
        ("MESSAGE", "string", ".status.message", 1),
    ]


@pytest.mark.parametrize("part", ["spec", "status"])
def test_every_property_has_a_description(part: str) -> None:
    missing = [p for p, node in properties(at(part), part) if not str(node.get("description", "")).strip()]
    assert not missing, f"no description (kubectl explain shows nothing) for: {missing}"


def structural_problems(schema: dict[str, Any]) -> list[str]:
    """Return why `schema` is not a structural schema the API server accepts (empty when it is)."""
    problems = []
    for path, node in nodes(schema, "<root>"):
        # Kubernetes lets one kind of node go without a type: any JSON value, kept as is (forEach.items[]).
        any_value = node.get("x-kubernetes-preserve-unknown-fields") and set(node) <= {
            "description", "x-kubernetes-preserve-unknown-fields"
        }
        if "type" not in node and not any_value:
            problems.append(f"{path}: no type")
        for key in ("$ref", "$defs", "anyOf", "oneOf", "allOf", "title", "default"):
            if key in node:
                problems.append(f"{path}: has {key}")
        if "additionalProperties" in node and (
            "properties" in node or not isinstance(node["additionalProperties"], dict)
        ):
            problems.append(f"{path}: additionalProperties must be a schema, without properties")
        if not any_value and node.get("x-kubernetes-preserve-unknown-fields") and (
            node["type"] != "object" or "properties" in node
        ):
            problems.append(f"{path}: free-form fields must be plain objects")
    return problems


def test_schema_is_structural() -> None:
    assert structural_problems(root_schema()) == []


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("spec", {"required": ["tasks"]}),
        ("spec.parallelism", {"type": "integer", "minimum": 1}),
        ("spec.failurePolicy", {"type": "string", "enum": ["FailFast", "ContinueIndependent"]}),
        ("spec.tasks", {"type": "array", "minItems": 1, "maxItems": 10_000, "x-kubernetes-list-type": "map"}),
        ("spec.tasks", {"x-kubernetes-list-map-keys": ["name"]}),
        ("spec.tasks.[]", {"required": ["name"]}),
        ("spec.tasks.[].name", {"maxLength": 63, "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}),
        ("spec.tasks.[].dependsOn", {"maxItems": 10_000, "x-kubernetes-list-type": "set"}),
        ("spec.tasks.[].dependsOn.[]", {"type": "string", "maxLength": 63}),
        ("spec.tasks.[].retry.limit", {"type": "integer", "minimum": 0, "maximum": 100}),
        ("spec.tasks.[].retry.backoff.factor", {"type": "number", "minimum": 1, "maximum": 100}),
        ("spec.tasks.[].retry.nonRetriableExitCodes.[]", {"minimum": 0, "maximum": 255}),
        ("spec.tasks.[].args", {"type": "array", "maxItems": 256}),
        ("spec.tasks.[].args.[]", {"type": "string", "maxLength": 32768}),
        ("spec.tasks.[].podTemplate", {"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
        ("spec.tasks.[].env.[].valueFrom", {"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
        ("spec.defaults.resources", {"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
        ("status.phase", {"enum": ["Pending", "Running", "Succeeded", "Failed", "Suspended", "Invalid"]}),
        ("status.startTime", {"type": "string", "format": "date-time"}),
        ("status.message", {"maxLength": 512}),
        ("status.conditions", {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}),
        ("status.tasks", {"type": "object"}),
        ("status.tasks.{}.phase", {"type": "string"}),
    ],
)
def test_model_constraints_reach_the_schema(path: str, expected: dict[str, Any]) -> None:
    node = at(path)
    assert {k: node.get(k) for k in expected} == expected


def test_nested_model_fields_carry_their_descriptions() -> None:
    assert at("spec.tasks.[].retry")["description"] == "Retry policy. Unset fields inherit from defaults."
    assert at("spec.tasks.[]")["description"].startswith("One task of the DAG")


def test_tasks_cannot_change_after_creation() -> None:
    rules = at("spec.tasks")["x-kubernetes-validations"]
    assert [r["rule"] for r in rules] == ["self == oldSelf"]
    assert "cannot change after creation" in rules[0]["message"]


def test_root_rules_limit_the_name() -> None:
    rules = root_schema()["x-kubernetes-validations"]
    assert "self.metadata.name.size() <= 63" in [r["rule"] for r in rules]
    assert all(r["fieldPath"] == ".metadata.name" and r["message"] for r in rules)


def test_main_prints_the_crd(capsys: pytest.CaptureFixture[str]) -> None:
    assert crd.main([]) == 0
    out = capsys.readouterr().out
    assert out == crd.render()
    assert out.startswith("# Generated") and REGENERATE in out.splitlines()[1]


def test_main_writes_the_crd(tmp_path: Path) -> None:
    target = tmp_path / "crds" / "taskjob.yaml"
    assert crd.main(["--write", "--output", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == crd.render()


def test_unions_other_than_optional_are_refused() -> None:
    from pydantic import BaseModel

    class Odd(BaseModel):
        """Has a field the CRD cannot express."""

        value: int | str

    with pytest.raises(crd.SchemaError, match="only `X | None` unions"):
        crd.openapi_schema(Odd)
