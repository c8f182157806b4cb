"""The admission webhook rejects invalid TaskJobs at `kubectl apply`, naming the field and the cycle."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_harness import OperatorProcess, rejection

pytestmark = pytest.mark.cluster

CYCLIC = """
apiVersion: taskjob.dev/v1alpha1
kind: TaskJob
metadata: {name: loop}
spec:
  defaults: {image: busybox:1.36}
  tasks:
  - {name: a, dependsOn: [c]}
  - {name: b, dependsOn: [a]}
  - {name: c, dependsOn: [b]}
"""


def test_apply_of_a_cyclic_taskjob_fails_with_the_cycle(
    webhook_operator: OperatorProcess, namespace: str, kubectl: Callable[..., str], testenv: Any, tmp_path: Path
) -> None:
    manifest = tmp_path / "loop.yaml"
    manifest.write_text(CYCLIC)
    error = rejection(testenv, kubectl, namespace, manifest, "the cyclic TaskJob")
    assert "a → b → c → a" in error
    assert "spec.tasks[0].dependsOn" in error

    valid = yaml.safe_load(CYCLIC)
    valid["metadata"]["name"] = "fine"
    valid["spec"]["tasks"][0].pop("dependsOn")
    manifest.write_text(yaml.safe_dump(valid, allow_unicode=True))
    kubectl("apply", "-n", namespace, "-f", str(manifest))


BAD_WHEN = """
apiVersion: taskjob.dev/v1alpha1
kind: TaskJob
metadata: {name: bad-when}
spec:
  defaults: {image: busybox:1.36}
  tasks:
  - {name: a}
  - {name: b}
  - {name: c, dependsOn: [a], when: "tasks.b.phase == 'Failed'"}
"""


def test_apply_of_a_condition_on_a_task_that_is_not_a_dependency_fails_naming_the_field(
    webhook_operator: OperatorProcess, namespace: str, kubectl: Callable[..., str], testenv: Any, tmp_path: Path
) -> None:
    manifest = tmp_path / "bad-when.yaml"
    manifest.write_text(BAD_WHEN)
    error = rejection(testenv, kubectl, namespace, manifest, "the condition")
    assert 'spec.tasks[2].when: tasks.b is not a dependency of task "c"' in error


FANOUT_WITHOUT_DEPENDENCY = """
apiVersion: taskjob.dev/v1alpha1
kind: TaskJob
metadata: {name: fan}
spec:
  defaults: {image: busybox:1.36}
  tasks:
  - {name: gen}
  - {name: work, forEach: {fromOutput: gen}}
"""


def test_apply_of_a_fan_out_over_a_task_it_does_not_depend_on_fails_naming_the_field(
    webhook_operator: OperatorProcess, namespace: str, kubectl: Callable[..., str], testenv: Any, tmp_path: Path
) -> None:
    manifest = tmp_path / "fan.yaml"
    manifest.write_text(FANOUT_WITHOUT_DEPENDENCY)
    error = rejection(testenv, kubectl, namespace, manifest, "the fan-out")
    assert "spec.tasks[1].forEach.fromOutput" in error
    assert 'task "gen" must finish first: add it to spec.tasks[1].dependsOn' in error
