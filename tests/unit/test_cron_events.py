"""Which watch events wake a CronTaskJob: spec changes and child phase changes, never its own status echoes."""

from __future__ import annotations

from typing import Any

from taskjobs.shell.cron import CronController, CronKey


def cron(generation: int, status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": "nightly", "generation": generation}, "status": status or {}}


def child(name: str, phase: str | None, cron_name: str | None = "nightly") -> dict[str, Any]:
    labels = {"taskjob.dev/crontaskjob": cron_name} if cron_name else {}
    return {"metadata": {"namespace": "ns", "name": name, "labels": labels},
            "status": {"phase": phase} if phase else {}}


def controller() -> CronController:
    return CronController(kube=None)  # type: ignore[arg-type]  # the filters never call the API


def test_a_cron_is_woken_by_its_listing_and_by_spec_changes_only() -> None:
    c, key = controller(), CronKey("ns", "nightly")
    assert c.on_cron(None, cron(1)) == key  # the initial listing
    assert c.on_cron("MODIFIED", cron(1, {"activeCount": 1})) is None  # our own status write
    assert c.on_cron("MODIFIED", cron(2)) == key  # the user changed the spec
    assert c.on_cron("DELETED", cron(2)) is None
    assert c.on_cron("ADDED", cron(1)) == key  # recreated with the same name


def test_a_child_wakes_its_cron_when_it_appears_changes_phase_or_goes() -> None:
    c, key = controller(), CronKey("ns", "nightly")
    assert c.on_child("ADDED", child("nightly-1", None)) == key
    assert c.on_child("MODIFIED", child("nightly-1", "Pending")) is None  # no status yet == Pending
    assert c.on_child("MODIFIED", child("nightly-1", "Running")) == key
    assert c.on_child("MODIFIED", child("nightly-1", "Running")) is None  # progress only
    assert c.on_child("MODIFIED", child("nightly-1", "Succeeded")) == key  # may free Forbid, trim history
    assert c.on_child("DELETED", child("nightly-1", "Succeeded")) == key
    assert c.on_child("ADDED", child("other", "Running", cron_name=None)) is None


def test_cron_keys_never_collide_with_taskjob_keys() -> None:
    assert CronKey("ns", "nightly") != ("ns", "nightly")
    assert len({CronKey("ns", "nightly"), ("ns", "nightly")}) == 2
