"""The abstract syntax tree: frozen records (see record.py), each carrying its source span.

Spans are excluded from equality (``compare=False``), so two programs are equal
when they say the same thing, wherever it was written.  That is the property the
formatter promises: ``parse(format(p)) == p``.
"""

from __future__ import annotations

from typing import NamedTuple, Union
from typing import Optional as Opt

from .record import field, record


class Span(NamedTuple):
    """A region of one source file; lines and columns are 1-based, ``end_col`` exclusive.

    A NamedTuple rather than a record: the parser makes one for nearly every token and
    node, and a tuple is the cheapest immutable object to build.
    """

    file: str
    line: int
    col: int
    end_line: int
    end_col: int
    start: int = 0  # character offsets into the source text
    end: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def to(self, other: "Span") -> "Span":
        """The span from the start of ``self`` to the end of ``other``."""
        return Span(self.file, self.line, self.col, other.end_line, other.end_col,
                    self.start, other.end)


NOWHERE = Span("<none>", 1, 1, 1, 1)


def _span():
    return field(default=NOWHERE, compare=False, repr=False)


# --- arithmetic and argument values -------------------------------------------------

@record
class Int:
    value: int
    span: Span = _span()


@record
class Float:
    value: float
    text: str = field(default="", compare=False)
    span: Span = _span()


@record
class Size:
    """``3x3`` or ``224x224x3``."""
    dims: tuple[int, ...]
    span: Span = _span()


@record
class Bool:
    value: bool
    span: Span = _span()


@record
class Word:
    """A keyword value: ``same`` or ``valid``."""
    value: str
    span: Span = _span()


@record
class Name:
    """A lower-case name in value position: a constant, range or parameter.

    A ``name = expr`` statement whose right side is only names, numbers, ``*`` and
    parentheses may turn out to be a block; resolve decides (see ``Assign``).
    """
    name: str
    span: Span = _span()


@record
class Neg:
    operand: "Expr"
    span: Span = _span()


@record
class BinOp:
    op: str  # one of + - * // / %
    left: "Expr"
    right: "Expr"
    span: Span = _span()


@record
class Paren:
    """Parentheses around arithmetic, kept so the formatter writes them back."""
    inner: "Expr"
    span: Span = _span()


@record
class Tuple:
    """``(1, 2)``: a per-axis padding or size."""
    items: tuple["Expr", ...]
    span: Span = _span()


# --- layer expressions ---------------------------------------------------------------

@record
class Arg:
    """One argument of a call: positional when ``name`` is None."""
    name: Opt[str]
    value: "Expr"
    span: Span = _span()
    name_span: Span = _span()


@record
class Layer:
    """A built-in layer: ``CONV``, ``CONV()`` or ``CONV(64, s=2)``.

    ``args`` is None when written without parentheses.
    """
    name: str
    args: Opt[tuple[Arg, ...]] = None
    span: Span = _span()
    name_span: Span = _span()


@record
class Call:
    """A user block: ``stem``, ``stem()`` or ``vgg_block(64, 2)``."""
    name: str
    args: Opt[tuple[Arg, ...]] = None
    span: Span = _span()
    name_span: Span = _span()


@record
class Chain:
    """``a -> b -> c``; never fewer than two items."""
    items: tuple["Expr", ...]
    span: Span = _span()


@record
class Group:
    """``[ body ]``."""
    body: "Expr"
    span: Span = _span()


@record
class Repeat:
    """``body*count``; each copy has its own weights."""
    body: "Expr"
    count: "Expr"
    span: Span = _span()


@record
class Optional:
    """``body?``: kept where it fits, dropped (with a note) where it does not."""
    body: "Expr"
    span: Span = _span()


@record
class Branches:
    """``(a | b)`` concatenates on channels; ``(a + b)`` adds; ``(a * b)`` gates
    (patternnet/merges.py)."""
    op: str  # "|", "+" or "*"
    items: tuple["Expr", ...]
    span: Span = _span()


Expr = Union[Int, Float, Size, Bool, Word, Name, Neg, BinOp, Paren, Tuple,
             Layer, Call, Chain, Group, Repeat, Optional, Branches]

LAYER_NODES = (Layer, Call, Chain, Group, Repeat, Optional, Branches)


# --- statements ----------------------------------------------------------------------

@record
class Param:
    name: str
    default: Opt[Expr] = None
    span: Span = _span()


@record
class Assign:
    """``name = expr``: a constant, a parameterless block or a named network.

    Which one depends on what ``expr`` refers to, so resolve decides.
    """
    name: str
    value: Expr
    span: Span = _span()
    name_span: Span = _span()


@record
class BlockDef:
    """``name(p, q=default) = body``."""
    name: str
    params: tuple[Param, ...]
    body: Expr
    span: Span = _span()
    name_span: Span = _span()


@record
class RangeDef:
    """``name in lo..hi`` (both ends included): the file describes a family."""
    name: str
    lo: Expr
    hi: Expr
    span: Span = _span()
    name_span: Span = _span()


@record
class Bare:
    """An expression statement: the file's default network."""
    expr: Expr
    span: Span = _span()


Statement = Union[Assign, BlockDef, RangeDef, Bare]


@record
class Comment:
    text: str  # including the leading '#'
    span: Span = _span()


@record
class Program:
    statements: tuple[Statement, ...]
    comments: tuple[Comment, ...] = field(default=(), compare=False)
    file: str = field(default="<string>", compare=False)
    text: str = field(default="", compare=False, repr=False)  # for rendering diagnostics


def children(node: object) -> tuple:
    """The direct sub-nodes of ``node``, in source order (for generic walks)."""
    if isinstance(node, (Neg,)):
        return (node.operand,)
    if isinstance(node, BinOp):
        return (node.left, node.right)
    if isinstance(node, Paren):
        return (node.inner,)
    if isinstance(node, (Tuple, Chain, Branches)):
        return node.items
    if isinstance(node, (Layer, Call)):
        return tuple(a.value for a in node.args or ())
    if isinstance(node, (Group, Optional)):
        return (node.body,)
    if isinstance(node, Repeat):
        return (node.body, node.count)
    if isinstance(node, Assign):
        return (node.value,)
    if isinstance(node, BlockDef):
        return tuple(p.default for p in node.params if p.default is not None) + (node.body,)
    if isinstance(node, RangeDef):
        return (node.lo, node.hi)
    if isinstance(node, Bare):
        return (node.expr,)
    return ()


def depth(node: object) -> tuple[int, object]:
    """The nesting depth of ``node`` and its deepest descendant, without recursion."""
    best, deepest = 0, node
    stack = [(node, 1)]
    while stack:
        n, d = stack.pop()
        if d > best:
            best, deepest = d, n
        stack.extend((c, d + 1) for c in children(n))
    return best, deepest
