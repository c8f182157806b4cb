"""Validation of a CronTaskJob, shared by the operator, the admission webhook and `taskjob validate`.

The embedded TaskJob spec goes through the TaskJob's own validation (DAG, references, images), with its
field paths moved under `spec.taskJobTemplate.spec`; the schedule and time zone are parsed as the
operator will parse them. Like `validation.py`: every problem at once, never raises. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from .cronmodels import CRON_KIND, MAX_CRON_NAME, CronTaskJob, CronTaskJobSpec, CronTaskJobStatus
from .cronschedule import ScheduleError, parse_schedule, parse_zone

# One way to word problems for both kinds: the TaskJob validation's helpers, reused rather than copied.
from .validation import (
    API_VERSION,
    Problem,
    _got,
    _ordered,
    _plain,
    _problem,
    _quote,
    _TooDeep,
    _unknown_field,
    _validate_metadata,
    validate_spec,
)

TEMPLATE_SPEC = "spec.taskJobTemplate.spec"
TOP_LEVEL_FIELDS = ("apiVersion", "kind", "metadata", "spec", "status")


@dataclass(frozen=True)
class CronValidationResult:
    """The outcome of validating one CronTaskJob manifest."""

    cron: CronTaskJob | None  # the parsed model; set exactly when there are no problems
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        """Return True when the CronTaskJob has no problems."""
        return not self.problems


def validate_crontaskjob(obj: Mapping[str, Any]) -> CronValidationResult:
    """Return the parsed CronTaskJob, or every problem found in the manifest."""
    try:
        return _validate(obj)
    except Exception as exc:  # a bug here must not crash the operator or the webhook
        return CronValidationResult(None, (Problem("", f"could not validate the CronTaskJob: {exc!r}"),))


def _validate(raw: Any) -> CronValidationResult:
    if isinstance(raw, Mapping) and isinstance(raw.get("metadata"), Mapping) and "managedFields" in raw["metadata"]:
        raw = {**raw, "metadata": {k: v for k, v in raw["metadata"].items() if k != "managedFields"}}
    try:
        obj = _plain(raw)
    except _TooDeep as exc:
        return CronValidationResult(None, (Problem(exc.path(), str(exc)),))
    if not isinstance(obj, dict):
        return CronValidationResult(None, (Problem("", f"a CronTaskJob must be an object{_got(obj)}"),))
    problems: list[Problem] = []
    if obj.get("apiVersion") != API_VERSION:
        problems.append(Problem("apiVersion", f"must be {_quote(API_VERSION)}{_got(obj.get('apiVersion'))}"))
    if obj.get("kind") != CRON_KIND:
        problems.append(Problem("kind", f"must be {_quote(CRON_KIND)}{_got(obj.get('kind'))}"))
    problems.extend(_unknown_field(str(k), str(k), TOP_LEVEL_FIELDS) for k in obj if k not in TOP_LEVEL_FIELDS)
    meta, meta_problems = _validate_metadata(obj.get("metadata"))
    problems.extend(meta_problems)
    name = meta.name if meta is not None else None
    if name is not None and len(name) > MAX_CRON_NAME:
        problems.append(Problem(
            "metadata.name",
            f"must be at most {MAX_CRON_NAME} characters (got {len(name)}): each TaskJob it creates is named "
            "<name>-<minutes since 1970>, which must fit in 63",
        ))
    spec: CronTaskJobSpec | None = None
    if "spec" not in obj:
        problems.append(Problem("spec", "is required"))
    else:
        spec, spec_problems = _validate_spec(obj["spec"])
        problems.extend(spec_problems)
    if problems or meta is None or spec is None:
        return CronValidationResult(None, _ordered(problems))
    return CronValidationResult(CronTaskJob(metadata=meta, spec=spec, status=_status(obj.get("status"))), ())


def _validate_spec(spec: Any) -> tuple[CronTaskJobSpec | None, list[Problem]]:
    if not isinstance(spec, dict):
        return None, [Problem("spec", f"must be an object{_got(spec)}")]
    problems: list[Problem] = []
    parsed: CronTaskJobSpec | None = None
    try:
        parsed = CronTaskJobSpec.model_validate(spec, strict=True, by_alias=True, by_name=False)
    except ValidationError as exc:
        for err in exc.errors():
            loc = err.get("loc", ())
            if tuple(loc[:2]) == ("taskJobTemplate", "spec") and len(loc) > 2:
                continue  # the TaskJob validation below says it better (and finds DAG problems too)
            problems.append(_problem("spec", err, CronTaskJobSpec))
    template = spec.get("taskJobTemplate")
    if isinstance(template, dict) and "spec" in template:
        _, template_problems = validate_spec(template["spec"])
        problems.extend(Problem(TEMPLATE_SPEC + p.path[len("spec"):], p.message) for p in template_problems)
    zone = spec.get("timeZone")
    if isinstance(zone, str):
        try:
            parse_zone(zone)
        except ScheduleError as exc:
            problems.append(Problem("spec.timeZone", str(exc)))
            zone = None
    schedule = spec.get("schedule")
    if isinstance(schedule, str) and schedule.strip():
        try:
            parse_schedule(schedule, zone if isinstance(zone, str) else None)
        except ScheduleError as exc:
            problems.append(Problem("spec.schedule", str(exc)))
    return (parsed if not problems else None), problems


def _status(status: Any) -> CronTaskJobStatus | None:
    # Status is the operator's own record, not user input: an unreadable one is rebuilt, not reported.
    if not isinstance(status, dict):
        return None
    try:
        return CronTaskJobStatus.model_validate(status)
    except ValidationError:
        return None
