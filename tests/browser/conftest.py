"""Fixtures for the dashboard's browser tests: headless Chromium (Debian's packages), the operator and
`taskjob dashboard` as real processes against the testenv.

Chromium comes from Debian (`make browser` installs chromium and chromium-driver); nothing downloads a
browser. It starts with a fresh profile and without its background services, which would otherwise try
to reach the internet.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))
from dashboard_harness import SCREENSHOTS, DashboardProcess  # noqa: E402
from operator_harness import OperatorProcess, TaskJobs, poll  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM") or "/usr/bin/chromium"
CHROMEDRIVER = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
    "--window-size=1440,1000",
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """A headless Chromium driven by Selenium through Debian's chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not Path(path).exists():
            pytest.fail(f"{path} is missing: install Debian's {package} (`make browser`)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER, log_output=str(tmp_path / "driver.log")))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest, browser: Any) -> Any:
    """`screenshot(name)` saves the page as SCREENSHOTS/<name>.png and returns the path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        browser.save_screenshot(str(path))
        return path

    return take


@pytest.fixture
def operator(kubeconfig: str, namespace: str, taskjob_crd: None, tmp_path: Path) -> Iterator[OperatorProcess]:
    """The operator running against the test's namespace; its log must show no traceback."""
    op = OperatorProcess(kubeconfig, [namespace], tmp_path)
    try:
        yield op.start()
    finally:
        op.stop()
    logs = op.logs()
    assert "Traceback" not in logs, f"operator logged a traceback:\n{logs[-5000:]}"


@pytest.fixture
def taskjobs(api_client: Any, namespace: str) -> TaskJobs:
    return TaskJobs(api_client, namespace)


@pytest.fixture
def dashboard(kubeconfig: str, namespace: str, taskjob_crd: None, tmp_path: Path) -> Iterator[DashboardProcess]:
    """`taskjob dashboard -n <the test's namespace>`, serving once its first listings arrived."""
    process = DashboardProcess(kubeconfig, [namespace], tmp_path / "dashboard.log")
    try:
        poll(process.ready, 60, "the dashboard's /readyz")
        yield process
    finally:
        process.stop()
    logs = process.logs()
    assert re.search(r"taskjob dashboard: http://127\.0\.0\.1:\d+/", logs), f"no URL printed:\n{logs}"
    assert "Traceback" not in logs, f"the dashboard logged a traceback:\n{logs[-5000:]}"
