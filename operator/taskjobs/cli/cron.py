"""CronTaskJob manifests in the CLI: `taskjob validate` checks them, `taskjob run` runs their template once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import API_VERSION, KIND
from ..core.cron import LABEL_CRON
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
