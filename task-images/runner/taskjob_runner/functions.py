"""The registry of named pure functions that operations apply to JSON values.

Every function takes one JSON value and returns one. Element functions (double, is_even, to_upper ...)
are applied per item by map/filter/flat_map/group_by/sort; aggregate functions (sum, count, max ...)
take a whole list and are what reduce applies. A function given a value of the wrong type raises
BadInput, which the runner reports with exit code 2.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from typing import Any

from .errors import BadInput, describe

Function = Callable[[Any], Any]

REGISTRY: dict[str, Function] = {}
SUMMARY: dict[str, str] = {}  # name -> one line for --help

_WORD = re.compile(r"\w+(?:['’]\w+)*")


def _register(name: str, summary: str) -> Callable[[Function], Function]:
    def add(fn: Function) -> Function:
        REGISTRY[name] = fn
        SUMMARY[name] = summary
        return fn

    return add


def lookup(name: str) -> Function:
    """Return the function registered under `name`, or raise BadInput suggesting the closest name."""
    try:
        return REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(REGISTRY), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise BadInput(f"unknown function {name!r}{hint}; known functions: {', '.join(sorted(REGISTRY))}") from None


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _number(fn: str, x: Any) -> int | float:
    if not _is_number(x):
        raise BadInput(f"{fn} takes a number, got {describe(x)}")
    return x  # type: ignore[no-any-return]


def _integer(fn: str, x: Any) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise BadInput(f"{fn} takes an integer, got {describe(x)}")
    return x


def _string(fn: str, x: Any) -> str:
    if not isinstance(x, str):
        raise BadInput(f"{fn} takes a string, got {describe(x)}")
    return x


def _list(fn: str, x: Any) -> list[Any]:
    if not isinstance(x, list):
        raise BadInput(f"{fn} takes a list, got {describe(x)}")
    return x


def _numbers(fn: str, x: Any) -> list[int | float]:
    items = _list(fn, x)
    for i, item in enumerate(items):
        if not _is_number(item):
            raise BadInput(f"{fn} takes a list of numbers, but item {i} is {describe(item)}")
    return items


def _comparable(fn: str, x: Any) -> list[Any]:
    items = _list(fn, x)
    if not items:
        raise BadInput(f"{fn} of an empty list is undefined")
    if all(_is_number(i) for i in items) or all(isinstance(i, str) for i in items):
        return items
    raise BadInput(f"{fn} takes a list of numbers or a list of strings, got {describe(items)}")


# ---------------------------------------------------------------- element functions


@_register("identity", "any -> the same value")
def identity(x: Any) -> Any:
    return x


@_register("double", "number -> 2*number")
def double(x: Any) -> int | float:
    return 2 * _number("double", x)


@_register("square", "number -> number*number")
def square(x: Any) -> int | float:
    n = _number("square", x)
    return n * n


@_register("negate", "number -> -number")
def negate(x: Any) -> int | float:
    return -_number("negate", x)


@_register("increment", "number -> number+1")
def increment(x: Any) -> int | float:
    return _number("increment", x) + 1


@_register("is_even", "integer -> true if even")
def is_even(x: Any) -> bool:
    return _integer("is_even", x) % 2 == 0


@_register("is_odd", "integer -> true if odd")
def is_odd(x: Any) -> bool:
    return _integer("is_odd", x) % 2 == 1


@_register("is_positive", "number -> true if > 0")
def is_positive(x: Any) -> bool:
    return _number("is_positive", x) > 0


@_register("to_upper", "string -> UPPER CASE")
def to_upper(x: Any) -> str:
    return _string("to_upper", x).upper()


@_register("to_lower", "string -> lower case")
def to_lower(x: Any) -> str:
    return _string("to_lower", x).lower()


@_register("parse_int", 'string such as "42" (or an integer) -> integer')
def parse_int(x: Any) -> int:
    if isinstance(x, int) and not isinstance(x, bool):
        return x
    text = _string("parse_int", x).strip()
    try:
        return int(text, 10)
    except ValueError:
        raise BadInput(f"parse_int cannot read an integer from {describe(x)}") from None


@_register("split_words", "string -> list of its words")
def split_words(x: Any) -> list[str]:
    return _WORD.findall(_string("split_words", x))


@_register("pairs", "string -> [[word, 1], ...] with words lower-cased (the map step of word count)")
def pairs(x: Any) -> list[list[Any]]:
    return [[w.lower(), 1] for w in _WORD.findall(_string("pairs", x))]


@_register("length", "string, list or object -> its length")
def length(x: Any) -> int:
    if not isinstance(x, (str, list, dict)):
        raise BadInput(f"length takes a string, list or object, got {describe(x)}")
    return len(x)


# ---------------------------------------------------------------- aggregate functions (for reduce)


@_register("sum", "list of numbers -> their sum (0 if empty)")
def sum_(x: Any) -> int | float:
    return sum(_numbers("sum", x))


@_register("product", "list of numbers -> their product (1 if empty)")
def product(x: Any) -> int | float:
    result: int | float = 1
    for n in _numbers("product", x):
        result *= n
    return result


@_register("count", "list -> number of items")
def count(x: Any) -> int:
    return len(_list("count", x))


@_register("max", "non-empty list of numbers or strings -> the largest")
def max_(x: Any) -> Any:
    return max(_comparable("max", x))


@_register("min", "non-empty list of numbers or strings -> the smallest")
def min_(x: Any) -> Any:
    return min(_comparable("min", x))


@_register("concat", "list of lists -> one list; list of strings -> one string")
def concat(x: Any) -> Any:
    items = _list("concat", x)
    if all(isinstance(i, list) for i in items):
        return [v for i in items for v in i]
    if all(isinstance(i, str) for i in items):
        return "".join(items)
    raise BadInput(f"concat takes a list of lists or a list of strings, got {describe(items)}")


@_register("word_count", "list of words or [word, n] pairs -> {word: total}, sorted by word (the reduce step)")
def word_count(x: Any) -> dict[str, int | float]:
    totals: dict[str, int | float] = {}
    for i, item in enumerate(_list("word_count", x)):
        if isinstance(item, str):
            word, n = item, 1
        elif isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) and _is_number(item[1]):
            word, n = item[0], item[1]
        else:
            raise BadInput(f"word_count takes words or [word, count] pairs, but item {i} is {describe(item)}")
        totals[word] = totals.get(word, 0) + n
    return dict(sorted(totals.items()))
