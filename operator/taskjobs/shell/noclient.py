"""Import kopf without the official Kubernetes client.

kopf imports `kubernetes.client` whenever it is installed, only to recognise its model objects
(`kopf._cogs.helpers.thirdparty`, which tolerates its absence); the operator passes kopf none and talks to
the API server through its own session (`apisession.py`). That import alone costs about 33 MB of RSS,
a third of the idle operator (docs/performance.md), so kopf is imported here with the package hidden.
The CLI and the dashboard run in their own processes and use the client freely.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

HIDDEN = ("kubernetes",)


class _Hide(importlib.abc.MetaPathFinder):
    """Answers 'no such module' for the hidden packages."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.partition(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"{fullname} is kept out of the operator process", name=fullname)
        return None


def import_kopf() -> None:
    """Import kopf (once) while the official client cannot be imported; afterwards it can be again."""
    if "kopf" in sys.modules:
        return
    hide = _Hide()
    sys.meta_path.insert(0, hide)
    try:
        import kopf  # noqa: F401
    finally:
        sys.meta_path.remove(hide)
