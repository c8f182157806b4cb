"""Build CronTaskJobs in Python around a TaskJob built with `taskjobs.sdk`.

    from taskjobs.cronsdk import Cron
    from taskjobs.sdk import DAG, Task

    with DAG("report", defaults={"image": "busybox:1.36"}) as dag:
        Task("orders") >> Task("report")
    nightly = Cron("nightly-report", dag, schedule="0 2 * * *", time_zone="Europe/Berlin",
                   concurrency_policy="Forbid")
    print(nightly.to_yaml())

The TaskJob's name is ignored (each run is named by the operator); its labels and annotations become the
template's. Manifests are plain dicts; `validate()` runs the operator's own validation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, cast

import yaml

from . import API_VERSION, GROUP, VERSION
from .core.cronmodels import CRON_KIND, CRON_PLURAL
from .core.cronvalidation import CronValidationResult, validate_crontaskjob
from .sdk import Pipeline, TaskJobBuilder, _compact, _Dumper

ConcurrencyPolicy = Literal["Allow", "Forbid", "Replace"]


class InvalidCronTaskJob(ValueError):
    """The CronTaskJob has problems; the message lists each with its field path."""

    def __init__(self, name: str, result: CronValidationResult) -> None:
        self.result = result
        listed = "\n".join(f"  {p}" for p in result.problems)
        super().__init__(f"CronTaskJob {name!r} is invalid:\n{listed}")


class Cron:
    """A CronTaskJob under construction: a schedule and the TaskJob (builder or pipeline) it creates."""

    def __init__(
        self,
        name: str,
        taskjob: TaskJobBuilder | Pipeline,
        *,
        schedule: str,
        time_zone: str | None = None,
        concurrency_policy: ConcurrencyPolicy | None = None,
        starting_deadline_seconds: int | None = None,
        successful_jobs_history_limit: int | None = None,
        failed_jobs_history_limit: int | None = None,
        suspend: bool | None = None,
        namespace: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.name, self.taskjob, self.schedule = name, taskjob, schedule
        self.time_zone, self.concurrency_policy = time_zone, concurrency_policy
        self.starting_deadline_seconds = starting_deadline_seconds
        self.successful_jobs_history_limit = successful_jobs_history_limit
        self.failed_jobs_history_limit = failed_jobs_history_limit
        self.suspend, self.namespace, self.labels = suspend, namespace, dict(labels or {})

    def to_manifest(self) -> dict[str, Any]:
        """Return the CronTaskJob manifest as a plain dict (not validated: see validate())."""
        taskjob = self.taskjob.to_manifest()
        template_meta = _compact({k: taskjob["metadata"].get(k) or None for k in ("labels", "annotations")})
        template: dict[str, Any] = {"spec": taskjob["spec"]}
        if template_meta:
            template = {"metadata": template_meta, **template}
        spec = _compact({
            "schedule": self.schedule,
            "timeZone": self.time_zone,
            "concurrencyPolicy": self.concurrency_policy,
            "startingDeadlineSeconds": self.starting_deadline_seconds,
            "successfulJobsHistoryLimit": self.successful_jobs_history_limit,
            "failedJobsHistoryLimit": self.failed_jobs_history_limit,
            "suspend": self.suspend,
        })
        spec["taskJobTemplate"] = template
        metadata = _compact({"name": self.name, "namespace": self.namespace, "labels": self.labels or None})
        return {"apiVersion": API_VERSION, "kind": CRON_KIND, "metadata": metadata, "spec": spec}

    def to_yaml(self) -> str:
        """Return the manifest as YAML text, ready for `kubectl apply -f -`."""
        return yaml.dump(self.to_manifest(), Dumper=_Dumper, sort_keys=False, allow_unicode=True)

    def validate(self) -> CronValidationResult:
        """Return the operator's own validation of the manifest."""
        return validate_crontaskjob(self.to_manifest())

    def check(self) -> dict[str, Any]:
        """Return the manifest, or raise InvalidCronTaskJob listing every problem."""
        manifest = self.to_manifest()
        result = validate_crontaskjob(manifest)
        if not result.ok:
            raise InvalidCronTaskJob(self.name, result)
        return manifest

    def create(self, namespace: str | None = None, api_client: Any = None) -> dict[str, Any]:
        """Return the CronTaskJob as created in the cluster, after validating it."""
        from kubernetes import client, config

        manifest = self.check()
        ns = namespace or self.namespace or "default"
        manifest["metadata"]["namespace"] = ns
        if api_client is None:
            try:
                config.load_kube_config()  # type: ignore[no-untyped-call]
            except config.ConfigException:
                config.load_incluster_config()  # type: ignore[no-untyped-call]
        api = client.CustomObjectsApi(api_client)
        return cast(dict[str, Any], api.create_namespaced_custom_object(GROUP, VERSION, ns, CRON_PLURAL, manifest))
