"""The CronTaskJob CustomResourceDefinition, generated from the models in core/cronmodels.py.

`python -m taskjobs.croncrd` prints it; `--write` rewrites crds/taskjob.dev_crontaskjobs.yaml. The schema
generator is the TaskJob CRD's (`taskjobs.crd`); a unit test fails when the checked-in file drifts.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .core.cronmodels import CRON_KIND, CRON_PLURAL, MAX_CRON_NAME, CronTaskJob, CronTaskJobSpec, CronTaskJobStatus
from .crd import GROUP, crd_document, openapi_schema, render_yaml, root_schema, write_or_print

SINGULAR = "crontaskjob"
CRD_NAME = f"{CRON_PLURAL}.{GROUP}"
CRD_PATH = Path(__file__).resolve().parents[2] / "crds" / f"{GROUP}_{CRON_PLURAL}.yaml"
HEADER = (
    "# Generated from operator/taskjobs/core/cronmodels.py by operator/taskjobs/croncrd.py. Do not edit by hand:\n"
    "# change the models, then regenerate with `python -m taskjobs.croncrd --write`.\n"
)

ROOT_RULES: list[dict[str, str]] = [
    {
        "rule": f"self.metadata.name.size() <= {MAX_CRON_NAME}",
        "message": f"must be at most {MAX_CRON_NAME} characters: each TaskJob it creates is named "
        "<name>-<minutes since 1970>, which must fit in 63",
        "fieldPath": ".metadata.name",
    },
    {
        "rule": "!self.metadata.name.contains('.')",
        "message": "must be a DNS-1123 label (no '.'): it is used in TaskJob names and label values",
        "fieldPath": ".metadata.name",
    },
]

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Schedule", "type": "string", "jsonPath": ".spec.schedule", "description": "The cron schedule."},
    {"name": "Timezone", "type": "string", "jsonPath": ".spec.timeZone", "priority": 1,
     "description": "The time zone of the schedule (unset: UTC)."},
    {"name": "Suspend", "type": "boolean", "jsonPath": ".spec.suspend", "description": "Whether scheduling is paused."},
    {"name": "Active", "type": "integer", "jsonPath": ".status.activeCount",
     "description": "TaskJobs created by it that have not finished."},
    {"name": "Last Schedule", "type": "date", "jsonPath": ".status.lastScheduleTime",
     "description": "How long ago the last TaskJob was scheduled."},
    # A string, not a date: kubectl shows a future date as "<invalid>".
    {"name": "Next", "type": "string", "jsonPath": ".status.nextScheduleTime",
     "description": "The next scheduled time (UTC)."},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _spec_schema() -> dict[str, Any]:
    """Return the spec's schema; the template's tasks may change (only a created TaskJob's tasks may not)."""
    spec = openapi_schema(CronTaskJobSpec)
    tasks = spec["properties"]["taskJobTemplate"]["properties"]["spec"]["properties"]["tasks"]
    tasks.pop("x-kubernetes-validations", None)
    return spec


def _root_schema() -> dict[str, Any]:
    return root_schema(CronTaskJob.__doc__, _spec_schema(), openapi_schema(CronTaskJobStatus), ROOT_RULES)


def build_crd() -> dict[str, Any]:
    """Return the CustomResourceDefinition for CronTaskJob as a dict."""
    return crd_document(CRON_KIND, CRON_PLURAL, SINGULAR, "ctj", PRINTER_COLUMNS, _root_schema())


def render() -> str:
    """Return the CRD as the YAML text checked in under crds/, header comment included."""
    return render_yaml(build_crd(), HEADER)


def main(argv: list[str] | None = None) -> int:
    """Print the CRD, or write it to crds/ with --write; return the exit status."""
    return write_or_print("python -m taskjobs.croncrd", __doc__.splitlines()[0], CRD_PATH, render(), argv)


if __name__ == "__main__":
    sys.exit(main())
