"""cel-python's side of `when` conditions (conditions.py): parse, walk and run CEL expressions.

Imported by conditions.py the first time an expression is compiled, not with the operator: cel-python,
its parser (lark) and what it brings (pendulum, re2) are about 16 MiB of RSS, which TaskJobs without
`when` never need (B4, docs/performance.md).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError
from lark import Token, Tree

from .conditions import ConditionError

# cel-python logs every evaluation at INFO/DEBUG; an evaluation error is reported in the task's status.
logging.getLogger("celpy").setLevel(logging.WARNING)

_ENV = celpy.Environment()


def parse(source: str) -> Tree[Token]:
    """Return the expression's parse tree; raise ConditionError on a syntax error."""
    try:
        tree: Tree[Token] = _ENV.compile(source)
    except CELParseError as err:
        where = f" at column {err.column}" if getattr(err, "column", None) else ""
        raise ConditionError(f"not a valid CEL expression: syntax error{where} of {source!r}") from None
    return tree


def program(tree: Tree[Token]) -> Any:
    """Return the runner of a parsed expression."""
    return _ENV.program(tree)


def run(runner: Any, source: str, activation: Mapping[str, Any]) -> bool:
    """Return the expression's value; raise ConditionError when it cannot be evaluated or is not a bool."""
    try:
        value = runner.evaluate(json_to_cel(dict(activation)))
    except CELEvalError as err:
        raise ConditionError(f"cannot evaluate {source!r}: {_eval_reason(err)}") from None
    except Exception as err:  # cel-python raises plain errors for some type mismatches
        raise ConditionError(f"cannot evaluate {source!r}: {err}") from None
    if not isinstance(value, celtypes.BoolType):
        raise ConditionError(f"{source!r} must be true or false, not {_show(value)}")
    return bool(value)


def _eval_reason(err: CELEvalError) -> str:
    """Return cel-python's reason in a user's words: no activation dump, values as CEL writes them."""
    args = err.args
    text = str(args[0]) if args else "error"
    if len(args) > 2 and args[2]:
        detail = args[2][0] if isinstance(args[2], tuple) else args[2]
        text = str(detail) if text == "return error for overflow" else f"{text} ({detail})"
    text = text.split(" (in activation", 1)[0]
    return re.sub(r"\b[A-Z][a-z]+Type\(('[^']*'|\"[^\"]*\"|[^()]*)\)", r"\1", text)


def _show(value: Any) -> str:
    if isinstance(value, celtypes.StringType):
        return f"the string {str(value)!r}"
    return f"{type(value).__name__.removesuffix('Type').lower()} {value}"


MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})


def references(tree: Tree[Token]) -> Iterator[tuple[str, Sequence[str | None]]]:
    """Yield each variable the expression reads: (root name, the member names after it; None: computed).

    Walks cel-python's parse tree: a `member` node chains `member_dot` (a.b) and `member_index` (a['b'])
    down to a `primary` that is an `ident`. A method call (`member_dot_arg`, e.g. x.startsWith('a'))
    ends a chain: the member it is called on is visited on its own. The loop variables of macros
    (`t` in list.exists(t, ...)) are not variables of ours and are left out.
    """
    bound = _macro_variables(tree)
    inner: set[int] = set()  # members that are links of a chain already reported
    for node in tree.iter_subtrees_topdown():  # type: ignore[no-untyped-call]
        if node.data != "member" or id(node) in inner:
            continue
        chain: list[str | None] = []
        cur: Tree[Token] = node
        while True:
            child = cur.children[0]
            if not isinstance(child, Tree):
                break
            if child.data in ("member_dot", "member_index"):
                link, key = child.children[0], child.children[1]
                chain.append(str(key) if child.data == "member_dot" else _string_literal(key))
                assert isinstance(link, Tree)
                inner.add(id(link))
                cur = link
                continue
            if child.data == "primary":
                ident = child.children[0]
                if isinstance(ident, Tree) and ident.data == "ident" and str(ident.children[0]) not in bound:
                    yield str(ident.children[0]), list(reversed(chain))
            break


def _macro_variables(tree: Tree[Token]) -> set[str]:
    """Return the loop variables that macros such as exists(t, ...) bind."""
    names: set[str] = set()
    for node in tree.find_data("member_dot_arg"):
        method, args = node.children[1], node.children[2] if len(node.children) > 2 else None
        if str(method) in MACROS and isinstance(args, Tree) and args.children:
            leaves = list(args.children[0].scan_values(lambda _: True)) if isinstance(args.children[0], Tree) else []
            if len(leaves) == 1 and isinstance(leaves[0], Token) and leaves[0].type == "IDENT":
                names.add(str(leaves[0]))
    return names


def _string_literal(node: Any) -> str | None:
    """Return the text of a string literal index (tasks['a']), or None when it is computed."""
    leaves = list(node.scan_values(lambda _: True)) if isinstance(node, Tree) else [node]
    if len(leaves) == 1 and isinstance(leaves[0], Token) and leaves[0].type == "STRING_LIT":
        text = str(leaves[0])
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
            return text[1:-1]
    return None
