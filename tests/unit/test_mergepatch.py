"""Status writes are merge patches of only what changed; removed fields must be nulled, not left behind."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskjobs.core.mergepatch import apply, diff

CASES = [
    ("equal", {"a": 1}, {"a": 1}, {}),
    ("changed scalar", {"phase": "Running"}, {"phase": "Succeeded"}, {"phase": "Succeeded"}),
    ("removed key is nulled", {"t": {"x": {"next": "T"}}}, {"t": {"x": {}}}, {"t": {"x": {"next": None}}}),
    ("one task of many", {"t": {"a": {"p": "R"}, "b": {"p": "W"}}}, {"t": {"a": {"p": "S"}, "b": {"p": "W"}}},
     {"t": {"a": {"p": "S"}}}),
    ("list replaced whole", {"c": [1, 2]}, {"c": [2]}, {"c": [2]}),
    ("new nested", {}, {"t": {"a": {"p": "R"}}}, {"t": {"a": {"p": "R"}}}),
    ("list becomes empty object", {"x": []}, {"x": {}}, {"x": {}}),
]


@pytest.mark.parametrize(("name", "old", "new", "patch"), CASES, ids=[c[0] for c in CASES])
def test_diff_carries_only_the_change(name: str, old: Any, new: Any, patch: Any) -> None:
    assert diff(old, new) == patch
    assert apply(old, diff(old, new)) == new


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=10,
)
# Merge patches cannot express null values inside objects, and status never holds any: exclude them.
docs = st.dictionaries(st.text(max_size=3), json_values.filter(lambda v: v is not None), max_size=4)


def _no_nulls(v: Any) -> bool:
    if isinstance(v, dict):
        return all(x is not None and _no_nulls(x) for x in v.values())
    return True


@given(docs.filter(_no_nulls), docs.filter(_no_nulls))
def test_applying_the_diff_reproduces_the_new_document(old: dict[str, Any], new: dict[str, Any]) -> None:
    assert apply(old, diff(old, new)) == new
