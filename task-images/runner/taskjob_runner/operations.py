"""The seed pipeline operations as pure functions over JSON values.

Each takes its input value (and a registry function where it needs one) and returns the output value;
ill-typed input raises BadInput naming the operation and the offending item.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .errors import BadInput, describe
from .functions import Function


def _items(op: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise BadInput(f"{op} takes a list as input, got {describe(value)}")
    return value


def _call(op: str, name: str, fn: Function, item: Any, index: int) -> Any:
    try:
        return fn(item)
    except BadInput as e:
        raise BadInput(f"{op} {name}: item {index}: {e}") from None


def map_(name: str, fn: Function, value: Any) -> list[Any]:
    """Return fn applied to every item."""
    return [_call("map", name, fn, x, i) for i, x in enumerate(_items("map", value))]


def filter_(name: str, fn: Function, value: Any) -> list[Any]:
    """Return the items for which the predicate fn returns true."""
    kept = []
    for i, x in enumerate(_items("filter", value)):
        verdict = _call("filter", name, fn, x, i)
        if not isinstance(verdict, bool):
            raise BadInput(f"filter {name}: {name} is not a predicate: it returned {describe(verdict)} for item {i}")
        if verdict:
            kept.append(x)
    return kept


def flat_map(name: str, fn: Function, value: Any) -> list[Any]:
    """Return the concatenation of the lists fn returns for every item."""
    out: list[Any] = []
    for i, x in enumerate(_items("flat_map", value)):
        result = _call("flat_map", name, fn, x, i)
        if not isinstance(result, list):
            raise BadInput(f"flat_map {name}: {name} must return a list, but returned {describe(result)} for item {i}")
        out.extend(result)
    return out


def reduce(name: str, fn: Function, value: Any) -> Any:
    """Return the aggregate function fn applied to the whole list (sum, count, max ...)."""
    items = _items("reduce", value)
    try:
        return fn(items)
    except BadInput as e:
        raise BadInput(f"reduce {name}: {e}") from None


def _key_text(key: Any) -> str:
    # JSON object keys are strings; other keys (true, 3, null) are written as their JSON text.
    return key if isinstance(key, str) else json.dumps(key, sort_keys=True)


def group_by(name: str, fn: Function, value: Any) -> dict[str, list[Any]]:
    """Return {key: items with that key}, keys in order of first appearance (non-string keys as JSON text)."""
    groups: dict[str, list[Any]] = {}
    for i, x in enumerate(_items("group_by", value)):
        groups.setdefault(_key_text(_call("group_by", name, fn, x, i)), []).append(x)
    return groups


def unique(value: Any) -> list[Any]:
    """Return the items without repeats, keeping the first occurrence of each."""
    seen: set[str] = set()
    out = []
    for x in _items("unique", value):
        key = json.dumps(x, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(x)
    return out


def sort(value: Any, key_name: str | None = None, key: Function | None = None, reverse: bool = False) -> list[Any]:
    """Return the items sorted (by key(item) when a key function is given); mixed types are bad input."""
    items = _items("sort", value)
    keys = [_call("sort --key", key_name or "", key, x, i) if key else x for i, x in enumerate(items)]
    numbers = all(isinstance(k, (int, float)) and not isinstance(k, bool) for k in keys)
    strings = all(isinstance(k, str) for k in keys)
    if not (numbers or strings):
        what = "keys" if key else "items"
        raise BadInput(f"sort can order numbers or strings, but the {what} are {describe(keys)}")
    order = sorted(range(len(items)), key=lambda i: keys[i], reverse=reverse)
    return [items[i] for i in order]


def take(n: int, value: Any) -> list[Any]:
    """Return the first n items."""
    if n < 0:
        raise BadInput(f"take needs a count of 0 or more, got {n}")
    return _items("take", value)[:n]


def join(values: Sequence[tuple[str, Any]]) -> Any:
    """Return the inputs merged: lists concatenated, objects merged (later wins), strings concatenated."""
    if not values:
        raise BadInput("join has nothing to join: the task has no upstream task with an output")
    data = [v for _, v in values]
    if all(isinstance(v, list) for v in data):
        return [x for v in data for x in v]
    if all(isinstance(v, dict) for v in data):
        merged: dict[str, Any] = {}
        for v in data:
            merged.update(v)
        return merged
    if all(isinstance(v, str) for v in data):
        return "".join(data)
    kinds = ", ".join(f"{name}: {describe(v)}" for name, v in values)
    raise BadInput(f"join merges lists, objects or strings, not a mix of them ({kinds})")


def count_primes(n: int) -> int:
    """Return how many primes are <= n, by trial division (deliberately CPU-bound)."""
    if n < 0:
        raise BadInput(f"compute needs a number of 0 or more, got {n}")
    found = 0
    for k in range(2, n + 1):
        d = 2
        while d * d <= k:
            if k % d == 0:
                break
            d += 1
        else:
            found += 1
    return found
