"""The CronTaskJob CRD generated from its models: no drift, documented, structural, the columns kubectl shows."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from test_crd import properties, structural_problems

from taskjobs import crd, croncrd
from taskjobs.crd import CRD_PATH as TASKJOB_CRD_PATH

REGENERATE = "python -m taskjobs.croncrd --write"
CHART_COPY = TASKJOB_CRD_PATH.parents[1] / "charts" / "taskjob-operator" / "crds" / croncrd.CRD_PATH.name


def root() -> dict[str, Any]:
    schema: dict[str, Any] = croncrd.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def test_checked_in_crd_and_chart_copy_match_the_models() -> None:
    assert croncrd.CRD_PATH.read_text(encoding="utf-8") == croncrd.render(), f"out of date: run `{REGENERATE}`"
    assert CHART_COPY.read_text(encoding="utf-8") == croncrd.render(), "chart copy out of date: run `make crd`"
    assert yaml.safe_load(croncrd.render()) == croncrd.build_crd()


def test_identity_and_status_subresource() -> None:
    spec = croncrd.build_crd()["spec"]
    assert croncrd.build_crd()["metadata"]["name"] == "crontaskjobs.taskjob.dev"
    assert spec["names"]["kind"] == "CronTaskJob" and spec["names"]["shortNames"] == ["ctj"]
    assert spec["scope"] == "Namespaced"
    [version] = spec["versions"]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}


def test_printer_columns() -> None:
    columns = croncrd.build_crd()["spec"]["versions"][0]["additionalPrinterColumns"]
    shown = [(c["name"].upper(), c["type"], c["jsonPath"]) for c in columns if not c.get("priority")]
    assert shown == [
        ("SCHEDULE", "string", ".spec.schedule"),
        ("SUSPEND", "boolean", ".spec.suspend"),
        ("ACTIVE", "integer", ".status.activeCount"),
        ("LAST SCHEDULE", "date", ".status.lastScheduleTime"),
        ("NEXT", "string", ".status.nextScheduleTime"),  # a future "date" prints as <invalid>
        ("AGE", "date", ".metadata.creationTimestamp"),
    ]


@pytest.mark.parametrize("part", ["spec", "status"])
def test_every_property_has_a_description(part: str) -> None:
    node = root()["properties"][part]
    missing = [p for p, n in properties(node, part) if not str(n.get("description", "")).strip()]
    assert not missing


def test_schema_is_structural() -> None:
    assert structural_problems(root()) == []


def test_the_template_embeds_the_taskjob_spec_but_may_change() -> None:
    template = root()["properties"]["spec"]["properties"]["taskJobTemplate"]
    tasks = template["properties"]["spec"]["properties"]["tasks"]
    assert tasks["items"]["properties"]["name"]["pattern"] == "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    assert "x-kubernetes-validations" not in tasks  # a TaskJob's tasks are immutable; the template's are not
    assert root()["properties"]["spec"]["required"] == ["schedule", "taskJobTemplate"]
    policy = root()["properties"]["spec"]["properties"]["concurrencyPolicy"]
    assert policy["enum"] == ["Allow", "Forbid", "Replace"]


def test_root_rules_limit_the_name_to_52() -> None:
    rules = root()["x-kubernetes-validations"]
    assert "self.metadata.name.size() <= 52" in [r["rule"] for r in rules]


def test_no_category_is_named_like_a_resource_so_kubectl_get_taskjob_name_names_one_kind() -> None:
    # Found on the real node: with both CRDs in a category "taskjob", `kubectl get taskjob hello` expanded
    # the category to TaskJobs and CronTaskJobs and failed with "you must specify only one resource".
    crds = [crd.build_crd(), croncrd.build_crd()]
    names = {
        n.lower()
        for c in crds
        for n in (c["spec"]["names"]["kind"], c["spec"]["names"]["plural"], c["spec"]["names"]["singular"],
                  *c["spec"]["names"]["shortNames"])
    }  # fmt: skip
    categories = {cat for c in crds for cat in c["spec"]["names"]["categories"]}
    assert categories == {"taskjob-all"}
    assert not categories & names
