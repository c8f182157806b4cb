"""CronTaskJobs in the CLI: `taskjob validate` checks them, `taskjob run` runs their template once, and
`taskjob get ctj/NAME` shows one with its runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from .. import API_VERSION, KIND
from ..core.cron import ANNOTATION_SCHEDULED, LABEL_CRON
from ..core.cronmodels import CRON_KIND
from ..core.cronvalidation import validate_crontaskjob
from .kube import UserError


def is_cron(body: Any) -> bool:
    """Return whether a manifest document declares kind CronTaskJob."""
    return isinstance(body, dict) and body.get("kind") == CRON_KIND


def cron_of_template(body: Any) -> str | None:
    """Return the CronTaskJob's name if template_taskjob made this TaskJob manifest, else None."""
    meta = body.get("metadata") if isinstance(body, dict) else None
    labels = meta.get("labels") if isinstance(meta, dict) else None
    cron = labels.get(LABEL_CRON) if isinstance(labels, dict) else None
    return cron if isinstance(cron, str) and meta is not None and meta.get("name") == f"{cron}-local" else None


def template_taskjob(cron: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Return the TaskJob a CronTaskJob would create, named `<cron>-local`; raise UserError if the cron is invalid.

    `taskjob run` runs it once, now: there is no schedule on a laptop. The whole CronTaskJob is validated
    first, so a bad schedule is reported here as it would be at `kubectl apply`.
    """
    result = validate_crontaskjob(cron)
    if not result.ok or result.cron is None:
        lines = "\n".join(f"{where}: {p}" for p in result.problems)
        raise UserError(f"the CronTaskJob is invalid:\n{lines}")
    template = cron["spec"]["taskJobTemplate"]
    meta = template.get("metadata") or {}
    name = result.cron.metadata.name
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": f"{name}-local",
            "labels": {**(meta.get("labels") or {}), LABEL_CRON: name},
            **({"annotations": dict(meta["annotations"])} if meta.get("annotations") else {}),
        },
        "spec": template["spec"],
    }


# ---------------------------------------------------------------- taskjob get ctj/NAME

CRON_PREFIXES = ("crontaskjob/", "crontaskjobs/", "ctj/")


def cron_name(argument: str) -> str | None:
    """Return NAME when `taskjob get` was given crontaskjob/NAME (or ctj/NAME), else None."""
    for prefix in CRON_PREFIXES:
        if argument.startswith(prefix):
            return argument[len(prefix):]
    return None


def cron_view(cron: Mapping[str, Any], runs: Sequence[Mapping[str, Any]]) -> RenderableType:
    """Return the view of a CronTaskJob: its schedule and state, then its runs, newest first."""
    spec, status, meta = cron.get("spec") or {}, cron.get("status") or {}, cron["metadata"]
    lines = [
        f"Name:          {meta.get('namespace', '')}/{meta['name']}",
        f"Schedule:      {spec.get('schedule', '')} ({spec.get('timeZone') or 'Etc/UTC'})"
        + ("  SUSPENDED" if spec.get("suspend") else ""),
        f"Concurrency:   {spec.get('concurrencyPolicy') or 'Allow'}",
        f"Last schedule: {status.get('lastScheduleTime', '-')}",
        f"Last success:  {status.get('lastSuccessfulTime', '-')}",
        f"Next:          {status.get('nextScheduleTime', '-')}",
    ]
    if status.get("message"):
        lines.append(f"Message:       {status['message']}")
    table = Table(box=None, pad_edge=False)
    for column in ("RUN", "SCHEDULED", "PHASE", "PROGRESS"):
        table.add_column(column)
    ordered = sorted(runs, key=lambda r: (r["metadata"].get("annotations") or {}).get(ANNOTATION_SCHEDULED, ""),
                     reverse=True)
    for run in ordered:
        run_status = run.get("status") or {}
        table.add_row(run["metadata"]["name"], (run["metadata"].get("annotations") or {}).get(ANNOTATION_SCHEDULED, ""),
                      run_status.get("phase", "Pending"), run_status.get("progress", ""))
    return Group(Text("\n".join(lines)), Text(""), table if runs else Text("no runs kept"))
