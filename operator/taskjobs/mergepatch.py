"""JSON merge patches (RFC 7386) computed from two documents, so a status write carries only the change."""

from __future__ import annotations

from typing import Any


def diff(old: Any, new: Any) -> Any:
    """Return the merge patch that turns `old` into `new` ({} when they are equal)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch: dict[str, Any] = {}
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            if isinstance(old[key], dict) and isinstance(value, dict):
                sub = diff(old[key], value)
                if sub:  # an empty patch of an object means "no change"
                    patch[key] = sub
            else:
                patch[key] = value  # a whole new value; applied to a non-object, {} replaces it too
    for key in old:
        if key not in new:
            patch[key] = None
    return patch


def apply(doc: Any, patch: Any) -> Any:
    """Return `doc` with the merge patch applied (RFC 7386), without changing `doc`."""
    if not isinstance(patch, dict):
        return patch
    result = dict(doc) if isinstance(doc, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply(result.get(key), value)
    return result
