"""The dashboard takes the operator's core through dashboard/coreapi.py only (a move of the core's modules
then changes that file alone)."""

from __future__ import annotations

import ast
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parents[2] / "operator" / "taskjobs" / "dashboard"


def _package_imports(path: Path) -> list[str]:
    """Return the taskjobs modules `path` imports, as absolute names (`from ..core.x` is taskjobs.core.x)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = ["taskjobs", "dashboard"][: max(0, 3 - node.level)]
            names.append(".".join([*base, *([node.module] if node.module else [])]))
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return [n for n in names if n.split(".")[0] == "taskjobs"]


def test_only_coreapi_imports_the_operators_core_or_package_root() -> None:
    modules = sorted(DASHBOARD.glob("*.py"))
    assert {"coreapi", "views", "model"} <= {m.stem for m in modules}
    assert {"taskjobs", "taskjobs.core.observe"} <= set(_package_imports(DASHBOARD / "coreapi.py"))  # it sees them
    bad = {
        f"{m.name}: {name}"
        for m in modules
        if m.stem != "coreapi"
        for name in _package_imports(m)
        if name == "taskjobs" or name.startswith("taskjobs.core")
    }
    assert not bad, f"import these through dashboard/coreapi.py: {sorted(bad)}"
