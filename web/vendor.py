#!/usr/bin/env python3
"""Copy the dashboard's browser libraries from web/node_modules into the Python package, or check them.

    cd web && npm ci --ignore-scripts && python3 vendor.py          # copy (after changing package.json)
    python3 web/vendor.py --check DIR                              # compare with DIR/node_modules

The versions are pinned by web/package-lock.json; `npm ci` installs exactly those. The copies are
committed, so `pip install taskjob` needs no Node.js and the dashboard fetches nothing at run time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENDOR = HERE.parent / "operator" / "taskjobs" / "dashboard" / "static" / "vendor"
# node_modules path -> file name in static/vendor
FILES = {
    "cytoscape/dist/cytoscape.min.js": "cytoscape.min.js",
    "cytoscape/LICENSE": "cytoscape.LICENSE",
    "cytoscape-dagre/dist/cytoscape-dagre.min.js": "cytoscape-dagre.min.js",
    "cytoscape-dagre/LICENSE": "cytoscape-dagre.LICENSE",
}


def differences(node_modules: Path) -> list[str]:
    """Return a line per shipped file that differs from (or is missing in) node_modules."""
    problems = []
    for source, name in FILES.items():
        shipped, built = VENDOR / name, node_modules / source
        if not built.is_file():
            problems.append(f"{built}: missing (run npm ci in web/)")
        elif not shipped.is_file():
            problems.append(f"{shipped}: missing (run web/vendor.py)")
        elif shipped.read_bytes() != built.read_bytes():
            problems.append(f"{shipped}: differs from {built} (run web/vendor.py after npm ci)")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", metavar="DIR", type=Path, help="compare with DIR/node_modules instead of copying")
    args = parser.parse_args()
    if args.check:
        problems = differences(args.check / "node_modules")
        print("\n".join(problems) or "the shipped assets equal the lockfile's packages")
        return 1 if problems else 0
    VENDOR.mkdir(parents=True, exist_ok=True)
    for source, name in FILES.items():
        (VENDOR / name).write_bytes((HERE / "node_modules" / source).read_bytes())
        print(f"{name} <- node_modules/{source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
