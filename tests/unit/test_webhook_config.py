"""The webhook's client configuration as the API server receives it in the chart (a Service reference)."""

from __future__ import annotations

import pytest
from kopf._core.engines import admission

from taskjobs.shell.webhook import service_client_config

SERVICE = {"name": "taskjob-operator", "namespace": "taskjob-system", "port": 443}


@pytest.mark.parametrize("url", ["https://taskjob-operator.taskjob-system.svc:9443", "https://host:9443/"])
def test_the_service_path_kopf_builds_is_one_slash_and_the_handler_id(url: str) -> None:
    config = service_client_config({"url": url, "caBundle": "Q0E="}, SERVICE)
    assert "url" not in config and config["caBundle"] == "Q0E="
    # kopf appends the handler id when it writes the configuration (the API server rejected "//validate").
    built = admission._inject_handler_id(config, "validate")  # type: ignore[arg-type]
    assert built["service"] == {**SERVICE, "path": "/validate"}


def test_a_root_path_below_the_host_is_kept() -> None:
    config = service_client_config({"url": "https://host:9443/hooks/"}, SERVICE)
    assert admission._inject_handler_id(config, "validate")["service"]["path"] == "/hooks/validate"  # type: ignore[arg-type]
