"""The SDK creates a TaskJob in the cluster that the operator runs to completion."""

from __future__ import annotations

from typing import Any

import pytest
from operator_harness import OperatorProcess, TaskJobs

from taskjobs.sdk import Pipeline

pytestmark = pytest.mark.cluster


def test_a_pipeline_built_in_python_runs_on_the_cluster(
    operator: OperatorProcess, taskjobs: TaskJobs, api_client: Any, namespace: str
) -> None:
    pipeline = Pipeline("etl-sdk").source(list(range(1, 11))).map("double").filter("is_even").reduce("sum")
    created = pipeline.create(namespace, api_client)
    assert created["metadata"]["namespace"] == namespace
    status = taskjobs.wait_phase("etl-sdk", ("Succeeded", "Failed"))
    assert (status["phase"], status["progress"]) == ("Succeeded", "4/4")
    assert [j.metadata.labels["taskjob.dev/task"] for j in taskjobs.jobs("etl-sdk")] == [
        "source", "map-double", "filter-is-even", "reduce-sum"
    ]
