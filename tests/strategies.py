"""Hypothesis strategies that write valid PatternNet source *text*.

They generate text, not ASTs: the parser gives meaning from context (``x = (a + b)``
with only lower-case names stays arithmetic; ``(CONV + ID)`` is a residual add), so
generating text and parsing it reaches exactly the ASTs the parser can build, and it
exercises the lexer's whitespace, comment and line-continuation rules on the way.

"Valid" means the text parses.  Names are random, so a program need not resolve (an
undefined block, a missing argument); tests that need resolvable networks should build
on ``layer_exprs()`` with their own definitions.

Strategies that write expressions take ``nl``: True inside brackets, where a newline
is whitespace and a comment may sit between any two tokens.  Outside brackets a line
may still break after ``->`` or ``=`` and before a line that starts with ``->``.

Public: ``programs()``, ``statements()``, ``networks()``, ``layer_exprs()``,
``layers()``, ``values()``, ``arith()``, ``counts()``, ``numbers()``, ``names()``,
``comments()``.  Every factory is cached: Hypothesis validates each new strategy
object, which costs far more than drawing from an existing one.
"""

from __future__ import annotations

import re

from functools import lru_cache

from hypothesis import strategies as st

from patternnet.layers import LAYERS

cached = lru_cache(maxsize=None)

RESERVED = frozenset({"true", "false", "same", "valid", "in"})
LAYER_NAMES = tuple(sorted(LAYERS))
COMMON_NAMES = ("n", "m", "k", "c", "s", "width", "depth", "stem", "block", "vgg_block",
                "bottleneck", "stage", "head", "classifier", "_tmp", "c2", "same_c", "in_c")
KEYWORDS = ("s", "p", "stride", "pad", "kernel", "filters", "window", "bias", "ceil",
            "dilation", "groups", "units", "rate", "eps", "momentum", "slope", "alpha",
            "beta", "size", "shape", "k")
WORDS = ("same", "valid", "true", "false")
# typical arguments, so that long realistic lines (and line breaking) come up often
TYPICAL_ARGS = ("(64)", "(64, 3)", "(128, 3, s=2)", "(c, 1, bias=false)", "(4*c, 1)",
                "(64, 7, s=2, p=3, bias=false)", "(c, 3, s=s, p=1, bias=false)",
                "(3, s=2, p=1)", "(4096)", "(rate=0.5)", "(eps=1e-5, momentum=0.1)",
                "(p=(1, 2))", "(p=same)", "(3x3, p=valid)", "(slope=0.2)", "(c // 2)",
                "(224x224x3)", "(size=5, alpha=1e-4, beta=0.75, k=2)")


def weighted(*options: tuple[int, st.SearchStrategy]) -> st.SearchStrategy:
    """Draw from one of ``(weight, strategy)`` pairs, in proportion to the weights.

    The first option is the simplest, so Hypothesis shrinks towards it.
    """
    table = [strategy for weight, strategy in options for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(table.__getitem__)


# --- lexical pieces ------------------------------------------------------------------


@cached
def names() -> st.SearchStrategy[str]:
    """A lower-case identifier: a constant, range, parameter or block name."""
    fresh = st.builds("{}{}".format, st.sampled_from("abcdefghijklmnopqrstuvwxyz_"),
                      st.text("abcdefghijklmnopqrstuvwxyz0123456789_", max_size=7)).filter(
        lambda s: s not in RESERVED)
    return weighted((4, st.sampled_from(COMMON_NAMES)), (1, fresh))


@cached
def comments() -> st.SearchStrategy[str]:
    """A ``#`` comment, without its line break.  Its text may hold anything but a
    newline: ``->``, ``#``, brackets, tabs, carriage returns, any Unicode."""
    odd = st.text(st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)),
                  max_size=12)
    plain = st.sampled_from(["", " note", " INPUT -> CONV -> FC", " x = 2", "# double",
                             " -> leading arrow", " (unclosed [", " \ttab", " ünïcødé ✓",
                             " trailing space  "])
    return st.one_of(plain, odd).map(lambda t: "#" + t)


@cached
def numbers() -> st.SearchStrategy[str]:
    """An integer, a float as written (``0.5``, ``1e-4``) or a size (``3x3``)."""
    ints = st.one_of(st.integers(0, 300).map(str), st.integers(0, 10**12).map(str),
                     st.sampled_from(["007", "1000000000"]))
    floats = st.one_of(
        st.sampled_from(["0.5", "1e-4", "1e-5", "0.75", "2.0", "1E3", "3.25e+2", "10.0e-2"]),
        st.builds("{}.{}".format, st.integers(0, 99), st.integers(0, 999)),
        st.builds("{}e{}{}".format, st.integers(1, 9), st.sampled_from(["", "-", "+"]),
                  st.integers(0, 30)))
    sizes = st.lists(st.integers(1, 512), min_size=2, max_size=3).map(
        lambda d: "x".join(map(str, d)))
    return st.one_of(ints, floats, sizes)


@cached
def _ws(nl: bool) -> st.SearchStrategy[str]:
    """Whitespace between two tokens: inside brackets it may break lines and hold comments."""
    flat = st.sampled_from(["", " ", " ", " ", "  ", "\t"])
    if not nl:
        return flat
    return weighted((8, flat), (2, st.sampled_from(["\n", "\n    ", " \n  ", "\r\n ", "\n\n"])),
                    (1, comments().map(lambda c: f"  {c}\n    ")))


@cached
def _arrow(nl: bool) -> st.SearchStrategy[str]:
    """A ``->`` with the line breaks the language allows around it."""
    plain = st.sampled_from([" -> ", " -> ", " -> ", "->", " ->", "-> "])
    broken = st.one_of(
        st.sampled_from([" ->\n  ", "\n  -> ", "\n-> ", " ->\n\n", "\n\n  -> ", "\r\n  -> "]),
        comments().map(lambda c: f" -> {c}\n  "),
        comments().map(lambda c: f"  {c}\n  -> "),
        comments().map(lambda c: f"\n  {c}\n  -> "))
    if nl:
        broken = st.one_of(broken, st.builds("{0}->{1}".format, _ws(True), _ws(True)))
    return weighted((4, plain), (1, broken))


# --- values --------------------------------------------------------------------------


@cached
def arith(depth: int = 2, nl: bool = False) -> st.SearchStrategy[str]:
    """Integer-style arithmetic over numbers and names: ``4*c``, ``(n - 1)``, ``-1``."""
    atom = st.one_of(numbers(), names())
    if depth <= 0:
        return atom
    inner, ws = arith(depth - 1, nl), _ws(nl)
    neg = st.builds("-{}{}".format, st.sampled_from(["", " "]), st.one_of(
        atom, arith(depth - 1, True).map("({})".format)))
    paren = st.builds("({}{}{})".format, _ws(True), arith(depth - 1, True), _ws(True))
    binop = st.builds("{}{}{}{}{}".format, inner, ws,
                      st.sampled_from(["+", "-", "*", "//", "/", "%"]), ws, inner)
    return st.one_of(atom, neg, paren, binop)


@cached
def values(nl: bool = True) -> st.SearchStrategy[str]:
    """An argument value: a number, size, word, name, arithmetic or a pair ``(1, 2)``."""
    pair = st.builds("({},{}{})".format, arith(1, True), st.sampled_from(["", " ", "\n "]),
                     arith(1, True))
    return st.one_of(numbers(), st.sampled_from(WORDS), names(), arith(1, nl), pair)


@cached
def counts() -> st.SearchStrategy[str]:
    """A repeat count: ``2``, ``n`` or a parenthesised expression such as ``(n - 1)``."""
    return st.one_of(st.integers(0, 5).map(str), names(),
                     st.sampled_from(["(n - 1)", "(2*k)", "(n//2)", "( m + 1 )"]),
                     arith(1, True).map("({})".format))


# --- layer expressions ---------------------------------------------------------------


@cached
def _args() -> st.SearchStrategy[str]:
    """``(64, 3, s=2, p=same)``: positional values first, then distinct keywords."""

    @st.composite
    def build(draw):
        parts = draw(st.lists(values(), max_size=2))
        keys = draw(st.lists(st.one_of(st.sampled_from(KEYWORDS), names()), max_size=2,
                             unique=True))
        parts += [k + draw(st.sampled_from(["=", "=", " = "])) + draw(values()) for k in keys]
        ws = _ws(True)
        inner = "".join(("," + draw(ws) if i else draw(ws)) + p for i, p in enumerate(parts))
        trailing = draw(st.sampled_from(["", "", "", ","])) if parts else ""
        return "(" + inner + trailing + draw(ws) + ")"

    return weighted((2, st.sampled_from(TYPICAL_ARGS)), (1, build()))


@cached
def layers() -> st.SearchStrategy[str]:
    """A built-in layer: ``CONV``, ``CONV()`` or ``CONV(64, s=2)``."""
    return st.builds("{}{}".format, st.sampled_from(LAYER_NAMES),
                     weighted((3, st.just("")), (1, st.just("()")), (3, _args())))


_BARE_FIRST = re.compile(r"[\s(]*[a-z_][A-Za-z0-9_]*(?![A-Za-z0-9_(])")  # `n`, `(n)`


def _no_bare_ends(item: str) -> bool:
    """Whether the chain ``item`` starts and ends with something other than a bare name
    (its last stage starts after its last ``->`` outside brackets)."""
    item = re.sub(r"#[^\n]*", "", item)
    depth, last = 0, 0
    for i, ch in enumerate(item):
        depth += ch in "([" and 1 or ch in ")]" and -1 or 0
        if depth == 0 and item.startswith("->", i):
            last = i + 2
    return not _BARE_FIRST.match(item) and not _BARE_FIRST.match(item[last:])


@cached
def _atom(depth: int) -> st.SearchStrategy[str]:
    block = st.builds("{}{}".format, names(), st.one_of(st.just(""), st.just("()"), _args()))
    if depth <= 0:
        return weighted((2, layers()), (1, block))
    body, ws = layer_exprs(depth - 1, True), _ws(True)
    group = st.builds("[{}{}{}]".format, ws, body, ws)
    paren = body.map("({})".format)  # parentheses around one chain are a group too

    @st.composite
    def branches(draw):
        op = draw(st.sampled_from(["|", "+", "*"]))
        # beside a gating `*` a bare block name reads as a repeat count (`ID * se`), so
        # a gate's branches neither start nor end with one
        items = draw(st.lists(body.filter(_no_bare_ends) if op == "*" else body,
                              min_size=2, max_size=3))
        return "(" + "".join((draw(ws) + op + draw(ws) if i else "") + item
                             for i, item in enumerate(items)) + ")"

    return weighted((4, layers()), (2, block), (2, group), (1, paren), (2, branches()))


@cached
def _postfixed(depth: int, nl: bool) -> st.SearchStrategy[str]:
    """An atom with ``*n`` and ``?`` postfixes, maybe nested: ``[CONV]*2?``, ``X?*n*2``."""
    ws = _ws(nl)
    postfix = weighted((6, st.just("")), (2, st.builds("{}*{}{}".format, ws, ws, counts())),
                       (1, ws.map("{}?".format)))
    return st.builds("{}{}{}".format, _atom(depth), postfix, postfix)


@cached
def layer_exprs(depth: int = 2, nl: bool = False, min_size: int = 1,
                max_size: int | None = None) -> st.SearchStrategy[str]:
    """A chain ``a -> b -> c`` of layers, blocks, groups, branches, repeats, optionals.

    ``depth`` bounds the nesting of brackets; chains shrink as they nest.
    """
    if max_size is None:
        max_size = 5 if depth >= 2 else 3

    @st.composite
    def build(draw):
        items = draw(st.lists(_postfixed(depth, nl), min_size=min_size, max_size=max_size))
        return "".join((draw(_arrow(nl)) if i else "") + item for i, item in enumerate(items))

    return build()


@cached
def networks() -> st.SearchStrategy[str]:
    """A layer expression starting with ``INPUT``."""
    start = st.sampled_from(["INPUT", "INPUT()", "INPUT(32x32x3)", "INPUT(224x224x3)",
                             "INPUT(784)", "INPUT(shape=28x28x1)"])
    rest = layer_exprs(2, False, 1, 8)
    return st.one_of(start, st.builds("{}{}{}".format, start, _arrow(False), rest))


# --- statements and programs ---------------------------------------------------------

_EQ = st.sampled_from([" = ", " = ", " = ", "=", " =", "= ", " =\n  ", " =  # why\n    "])


@cached
def _params() -> st.SearchStrategy[str]:
    """``(c, k=2)``: distinct names, those with defaults last."""

    @st.composite
    def build(draw):
        ps = draw(st.lists(names(), max_size=3, unique=True))
        first_default = draw(st.integers(0, len(ps)))
        parts = [p if i < first_default else p + draw(st.sampled_from(["=", " = "]))
                 + draw(values()) for i, p in enumerate(ps)]
        return "(" + ", ".join(parts) + ")"

    return build()


@cached
def statements() -> st.SearchStrategy[str]:
    """One statement, without its line break."""
    bound = st.one_of(st.integers(0, 3).map(str), names(), st.just("-1"),
                      arith(1, True).map("({})".format))
    return st.one_of(
        st.builds("{}{}{}".format, names(), _EQ, arith(2)),                      # constant
        st.builds("{} in {}{}{}".format, names(), bound,                         # range
                  st.sampled_from(["..", " .. "]), bound),
        st.builds("{}{}{}{}".format, names(), _params(), _EQ, layer_exprs()),    # block
        st.builds("{}{}{}".format, names(), _EQ, layer_exprs()),                 # block, no params
        st.builds("{}{}{}".format, names(), _EQ, networks()),                    # named network
        layer_exprs(),                                                           # bare chain
        networks())                                                              # default network


@cached
def _between() -> st.SearchStrategy[str]:
    """What separates two statements: line breaks, blank lines, comments."""
    part = weighted(
        (6, st.sampled_from(["\n", "\n", "\n", "\n\n", "\n\n\n", "\r\n", "\n   \n", "\n\t\n"])),
        (1, comments().map("\n{}\n".format)), (1, comments().map("  {}\n".format)),
        (1, comments().map("\n   {}\n".format)))
    return st.lists(part, min_size=1, max_size=3).map("".join)


@cached
def programs(max_statements: int = 5) -> st.SearchStrategy[str]:
    """A whole file: statements, blank lines, comments, maybe no final newline."""
    head = st.sampled_from(["", "", "", "\n", "# header\n", "\n\n# header\n\n"])
    indent = st.sampled_from(["", "", "", "", " ", "\t"])
    end = st.one_of(st.sampled_from(["", "\n", "\n", "\n\n", "  \n"]),
                    comments().map("  {}".format), comments().map("\n{}\n".format))

    @st.composite
    def build(draw):
        stmts = draw(st.lists(st.builds("{}{}".format, indent, statements()),
                              max_size=max_statements))
        body = "".join((draw(_between()) if i else "") + s for i, s in enumerate(stmts))
        return draw(head) + body + draw(end)

    return build()
