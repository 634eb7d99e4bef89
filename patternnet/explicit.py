"""``patternnet fmt --explicit``: every default argument written out.

A layer written once may stand for many checked layers: the copies of a repeat, the
calls of a block, the networks of the file, the members of a family and the on/off
choices of each ``?``.  A bare ``CONV`` in ``[CONV -> POOL]*3`` has 32, 64 and 128
filters, and no single ``CONV(n)`` says that.  So the rule is:

    an argument the file leaves out is written in only when every instantiation of
    that layer, in every network of the file (every member that ``patternnet expand``
    lists), resolves it to the same value; otherwise it stays implicit.

The instantiations are found by checking the file as ``patternnet check`` would (no
``-D``, ``--input`` or ``--classes``): the checked layers carry the span of the layer
written in the source, so they are grouped by that span.  A layer no network reaches
(an unused block, a ``*0`` repeat) is left as written.  Written arguments are never
touched, so ``CONV(c*2)`` keeps its expression.

Why the result checks to the very same networks: each value written in is the value
that layer had in every instantiation; the defaults that depend on the network read
only resolved values (the previous convolution's filters, whether a pool shrank the
image), never whether a value was written; and the one that does read it, the bare
classifier ``FC``, is written in only when every instantiation is the classifier.

Pure Python, no jax or numpy: ``fmt`` never imports them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from . import ast as A
from .layers import LAYERS, ArgSpec

if TYPE_CHECKING:  # for annotations: the checker is imported only by the function that runs it
    from .checker import CLayer

# The argument people write by position (`CONV(64)`, `FC(10)`, `INPUT(32x32x3)`); it
# is written in that way when the layer has no positional argument yet.  The others are
# written as keywords, which read without knowing the table's order.
LEADING = frozenset({"filters", "units", "shape"})

Key = tuple[int, int]  # a layer's place in the file: (start, end) character offsets


def make_explicit(program: A.Program) -> A.Program:
    """``program`` with every argument that all its instantiations agree on written in.

    Raises ``PatternNetError`` (the diagnostics ``patternnet check`` reports) when some
    network of the file does not check: its layers have no values to write.
    """
    return rewrite(program, agreed_values(checked_layers(program)))


def checked_layers(program: A.Program) -> list:
    """Every ``CLayer`` of every member of every network of ``program``."""
    from .pipeline import check, expand, members_failed
    from .resolver import select_all

    layers: list = []
    for name in select_all(program):
        family = expand(program, net=name)
        if family.failures:
            # the same report as `patternnet check`; expand also tries `?` choices that
            # check does not, and a failing one has no values to agree on either
            check(program, net=name)
            raise members_failed(family, program)
        for member in family.members:
            assert member.net is not None  # no failures: every member checked
            layers.extend(member.net.layers)
    return layers


def agreed_values(layers: Iterable[CLayer]) -> dict[Key, dict[str, Any]]:
    """For each written layer (by span), the arguments whose value every instantiation
    shares."""
    first: dict[tuple[Key, str], Any] = {}
    differ: set[tuple[Key, str]] = set()
    for layer in layers:
        key = (layer.span.start, layer.span.end)
        for name, value in layer.args:
            slot = (key, name)
            if slot not in first:
                first[slot] = value
            elif first[slot] != value:
                differ.add(slot)
    agreed: dict[Key, dict[str, Any]] = {}
    for (key, name), value in first.items():
        if (key, name) not in differ:
            agreed.setdefault(key, {})[name] = value
    return agreed



def _arg(spec, name: str):
    """The argument ``name`` (or an alias) of a layer: the file checked, so it exists."""
    arg = spec.arg(name)
    assert arg is not None, name
    return arg

def rewrite(program: A.Program, agreed: dict[Key, dict[str, Any]]) -> A.Program:
    """``program`` with each layer's agreed, unwritten arguments written in."""
    short = prefers_short(program)
    statements = tuple(_rebuild(s, agreed, short) for s in program.statements)
    return A.Program(statements, program.comments, program.file, program.text)


def _rebuild(node, agreed, short: bool):
    """``node`` with its ``Layer`` nodes filled in; the same object where nothing changes.
    Generic over the records' fields, so no kind of node is forgotten."""
    if isinstance(node, A.Layer):
        return fill_layer(node, agreed.get((node.span.start, node.span.end), {}), short)
    if isinstance(node, A.Span):  # a NamedTuple: a leaf, not a tuple of nodes
        return node
    if isinstance(node, tuple):
        items = tuple(_rebuild(x, agreed, short) for x in node)
        return node if all(a is b for a, b in zip(items, node)) else items
    fields = getattr(node, "__record_fields__", None)
    if fields is None:
        return node
    values = [getattr(node, f) for f in fields]
    new = [_rebuild(v, agreed, short) for v in values]
    if all(a is b for a, b in zip(new, values)):
        return node
    return type(node)(*new)


def prefers_short(program: A.Program) -> bool:
    """Whether the file spells `stride`/`pad` mostly as `s=`/`p=`: the arguments written
    in follow the file's habit (a tie, or no habit, is the full name)."""
    short = long = 0
    stack = list(program.statements)
    while stack:
        node = stack.pop()
        stack.extend(A.children(node))
        if isinstance(node, A.Layer):
            for a in node.args or ():
                spec = LAYERS[node.name].arg(a.name) if a.name else None
                if spec is not None and spec.aliases:
                    short += a.name != spec.name
                    long += a.name == spec.name
    return short > long


def fill_layer(node: A.Layer, values: dict[str, Any], short: bool = False) -> A.Layer:
    """``node`` with the arguments in ``values`` that it does not write, in the table's
    order: the leading one by position, the others by keyword.  Written arguments keep
    their spelling, and their place among the keywords is the table's.  Added `stride`
    and `pad` are spelled as the layer spells the other (`s=2` goes with `p=same`), else
    `s=`/`p=` when ``short``."""
    if not values:  # never instantiated: its arguments may not even resolve
        return node
    spec = LAYERS[node.name]
    args = node.args or ()
    positional = [a for a in args if a.name is None]
    keyword = {_arg(spec, a.name).name: a for a in args if a.name is not None}
    written = {s.name for s in spec.args[:len(positional)]} | set(keyword)
    missing = {s.name for s in spec.args if s.name in values and s.name not in written}
    if not missing:
        return node
    spelled = [a.name != _arg(spec, a.name).name for a in args
               if a.name is not None and _arg(spec, a.name).aliases]
    if spelled:
        short = any(spelled)
    out = list(positional)
    rest = spec.args[len(positional):]
    if not positional and rest[0].name in LEADING and rest[0].name in missing:
        out.append(A.Arg(None, literal(rest[0], values[rest[0].name])))
        rest = rest[1:]
    for s in rest:
        if s.name in keyword:
            out.append(keyword[s.name])
        elif s.name in missing:
            name = s.aliases[0] if short and s.aliases else s.name
            out.append(A.Arg(name, literal(s, values[s.name])))
    return A.Layer(node.name, tuple(out), node.span, node.name_span)


def literal(spec: ArgSpec, value: Any) -> A.Expr:
    """A checked argument value (see ``check._norm_default``) as the source text that
    resolves to it: ``(3, 3)`` is ``3``, ``(3, 5)`` a size ``3x5``, a pad pair ``(1, 2)``."""
    if isinstance(value, bool):
        return A.Bool(value)
    if isinstance(value, str):
        return A.Word(value)
    if isinstance(value, float):
        if value < 0:
            return A.Neg(literal(spec, -value))
        return A.Float(value, float_text(value))
    if isinstance(value, int):
        return A.Int(value) if value >= 0 else A.Neg(A.Int(-value))
    if isinstance(value, tuple):
        if len(value) == 1 or (len(value) == 2 and value[0] == value[1]):
            return A.Int(value[0])
        if spec.kind == "pad":  # a size `2x1` is the same pair, but `(2, 1)` reads as one
            return A.Tuple(tuple(A.Int(v) for v in value))
        return A.Size(tuple(value))
    raise TypeError(f"no literal for {value!r}")


def float_text(value: float) -> str:
    """The shortest text that reads back as ``value``, with the exponent as people write
    it: ``1e-5``, not Python's ``1e-05``."""
    text = repr(value)
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text
