"""The browser libraries shipped in the package are exactly those web/package-lock.json pins.

`npm ci` installs the lockfile's packages (checked against their integrity hashes) into a temporary
directory; every shipped file must equal its source there byte for byte.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"


def _vendor() -> object:
    spec = importlib.util.spec_from_file_location("dashboard_vendor", WEB / "vendor.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_package_json_pins_exact_versions_that_the_lockfile_holds() -> None:
    wanted = json.loads((WEB / "package.json").read_text())["dependencies"]
    locked = json.loads((WEB / "package-lock.json").read_text())["packages"]
    for name, version in wanted.items():
        assert version[0].isdigit(), f"web/package.json: {name} must be pinned to one version, not {version!r}"
        assert locked[f"node_modules/{name}"]["version"] == version, f"web/package-lock.json: {name} is not {version}"


def test_shipped_assets_equal_the_locked_packages(tmp_path: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not installed: it is needed to check the dashboard's shipped assets (apt-get install npm)")
    for name in ("package.json", "package-lock.json"):
        shutil.copy(WEB / name, tmp_path / name)
    proc = subprocess.run(
        [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=tmp_path, capture_output=True, text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"npm ci failed:\n{proc.stderr[-3000:]}"
    problems = _vendor().differences(tmp_path / "node_modules")  # type: ignore[attr-defined]
    assert problems == []
