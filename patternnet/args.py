"""What is written means one thing in every stage: a layer argument's value and an
expression in a layer position.

The parser, the resolver and the checker each meet these; they live here, below all
three, so that no stage reaches into another for them:

* ``normalize_arg`` checks one layer argument against its kind in the layer table
  (layers.py lists the kinds) and gives it its one normal form, ``3`` -> ``(3, 3)``
  for a size: the resolver for what is written, layers.py for the table's defaults;
* ``show`` writes a value back as source text, for the messages about it;
* ``as_layer`` reads an expression where a layer expression goes: ``b*2`` is a repeat
  of block ``b``, ``(a + b)`` a residual add.
"""

from __future__ import annotations

from typing import Any, Optional

from . import ast as A
from .diagnostics import Diagnostic, Fail


def normalize_arg(v: Any, spec: Any, layer: str, span: Optional[A.Span] = None,
                  trace: tuple = ()) -> Any:
    """Validate and normalise one layer argument (see the kinds in layers.py): a written
    one in the resolver, and each of the table's defaults once, in layers.py (``None``
    stays ``None``).  Raises ``Fail`` with an E206."""
    if v is None:
        return None
    kind, name = spec.kind, spec.name

    def bad(expected: str, help=None):
        return Fail(Diagnostic("E206", f"`{name}` of {layer} must be {expected}, got `{show(v)}`",
                               span, help=help, trace=tuple(trace), label="bad value"))

    is_int = isinstance(v, int) and not isinstance(v, bool)
    if kind in ("int", "nat"):
        least = 1 if kind == "int" else 0
        if not is_int or v < least:
            raise bad("a positive integer" if least else "a non-negative integer")
        return v
    if kind == "size2":
        if is_int and v >= 1:
            return (v, v)
        if isinstance(v, tuple) and len(v) == 2 and all(
                isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in v):
            return tuple(v)
        raise bad("a positive integer or a size like 3x3")
    if kind == "nat2":
        if is_int and v >= 0:
            return (v, v)
        if isinstance(v, tuple) and len(v) == 2 and all(
                isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v):
            return tuple(v)
        raise bad("an integer >= 0 or a pair (h, w)")
    if kind == "pad":
        if v in ("same", "valid"):
            return v
        if is_int and v >= 0:
            return (v, v)
        if isinstance(v, tuple) and len(v) == 2 and all(
                isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v):
            return tuple(v)
        raise bad("`same`, `valid`, an integer >= 0 or a pair (ph, pw)")
    if kind == "shape":
        if is_int and v >= 1:
            return (v,)
        if isinstance(v, tuple) and len(v) == 3 and all(
                isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in v):
            return tuple(v)
        raise bad("HxWxC (an image, e.g. 224x224x3) or D (a vector length)")
    if kind == "bool":
        if not isinstance(v, bool):
            raise bad("`true` or `false`")
        return v
    if kind in ("float", "rate"):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise bad("a number")
        if kind == "rate" and not 0 <= v < 1:
            raise bad("a number in [0, 1)")
        return float(v)
    raise AssertionError(f"unknown argument kind {kind!r}")


def show(v: Any) -> str:
    """``v`` as the source text that writes it."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, tuple):
        return "(" + ", ".join(map(show, v)) + ")"
    return str(v)


# --- layer expressions ---------------------------------------------------------------


def plus_spine(x: Any) -> list:
    """The operands of ``a + b + c`` (left-nested BinOps), iteratively."""
    items = []
    while isinstance(x, A.BinOp) and x.op == "+":
        items.append(x.right)
        x = x.left
    items.append(x)
    items.reverse()
    return items


def as_layer(x: Any) -> Any:
    """``x`` read in a position that must be a layer expression.

    ``b*2`` becomes a repeat of block ``b``, ``(a + b)`` a residual add, a bare name a
    block reference.  The parser reads every layer position with it, and the resolver
    reads ``name = b*2`` with it once it knows ``b`` is a block.  Loops over ``*``
    spines; recursion only through parentheses (bounded).
    """
    counts = []
    while isinstance(x, A.BinOp) and x.op == "*":
        counts.append((x.right, x.span))
        x = x.left
    if isinstance(x, A.Name):
        x = A.Call(x.name, None, x.span, x.span)
    elif isinstance(x, A.Paren):
        inner = x.inner
        if isinstance(inner, A.BinOp) and inner.op == "+":
            x = A.Branches("+", tuple(as_layer(i) for i in plus_spine(inner)), x.span)
        else:
            x = A.Group(as_layer(inner), x.span)
    for count, span in reversed(counts):
        x = A.Repeat(x, count, span)
    return x
