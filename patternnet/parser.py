"""Parse stage: text -> ``ast.Program`` with a span on every node.

Lark's LALR parser with the contextual lexer reads grammar/patternnet.lark (as a
standalone parser generated from it, see lark_runtime.py).  Three things are ours:

* a postlexer that applies the line rules (newlines are whitespace inside brackets,
  after ``->`` or ``=``, and before a line starting with ``->``) and bounds nesting;
* an inline transformer that builds the AST while parsing (no parse tree), picks the
  meaning of ``*``, ``+`` and parentheses from context, and records misuse;
* error reporting: Lark's terminal names become words a user knows, and after a
  syntax error parsing resumes at the next statement, so every error is reported.
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any, Callable, Optional, cast

from . import ast as A
from . import limits
from .args import as_layer, plus_spine
from .diagnostics import Diagnostic, Fail, ParseError, did_you_mean
from .layers import LAYERS
from .source import Source

# --- grammar -------------------------------------------------------------------------


from .lark_runtime import runtime

if TYPE_CHECKING:  # the class at run time comes from the runtime (lark_runtime.py)
    from lark import Token


class _Postlex:
    """Newline rules and bracket bookkeeping between Lark's lexer and parser.

    It never looks ahead: the contextual lexer picks each token's terminals from the
    parser state, so a held-back token would be lexed in the wrong state.  A line that
    starts with ``->`` is handled by the ``_ARROW`` terminal itself, which may begin
    with newlines (and comment lines).
    """

    always_accept = ("_NL",)
    _OPEN = {"LPAR": "RPAR", "LSQB": "RSQB"}
    _CLOSE = {"RPAR", "RSQB"}
    _JOIN_AFTER = {"_ARROW", "EQUAL"}  # a line ending in these continues

    def __init__(self, ctx: "_Context"):
        self.ctx = ctx

    def process(self, stream):
        ctx = self.ctx
        stack = ctx.brackets = []
        ctx.history = []
        prev = None
        for tok in stream:
            if tok.type == "_NL":
                if stack:
                    ctx.newline_in_brackets = True
                    continue
                if prev is None or prev == "_NL" or prev in self._JOIN_AFTER:
                    continue
            elif tok.type in self._OPEN:
                if len(stack) >= limits.MAX_BRACKET_DEPTH:
                    raise Fail(Diagnostic(
                        "E106", f"brackets nested more than {limits.MAX_BRACKET_DEPTH} deep "
                        "(limit MAX_BRACKET_DEPTH)", ctx.span(tok), label="too deep",
                        help="flatten the expression, or name an inner part as a block"))
                stack.append(tok)
            elif tok.type in self._CLOSE:
                if not stack:
                    raise Fail(Diagnostic(
                        "E104", f'unmatched "{tok.value}": no bracket is open here',
                        ctx.span(tok), label="nothing to close", help="remove it"))
                opener = stack.pop()
                if self._OPEN[opener.type] != tok.type:
                    want = ")" if opener.type == "LPAR" else "]"
                    raise Fail(Diagnostic(
                        "E104", f'"{tok.value}" closes "{opener.value}" opened at '
                        f"{ctx.span(opener)}", ctx.span(tok), label=f'expected "{want}"',
                        help=f'write "{want}" here, or check the brackets in between'))
            ctx.history.append(tok)
            yield tok
            prev = tok.type
        if stack:
            opener = stack[-1]
            raise Fail(Diagnostic(
                "E103", f'this "{opener.value}" is never closed', ctx.span(opener),
                label="opened here",
                help=f'add "{")" if opener.type == "LPAR" else "]"}" where the group ends'))
        if prev is not None and prev != "_NL":
            end = _R.Token("_NL", "\n")
            yield end


# --- the transformer -----------------------------------------------------------------


class _Bar:
    """``a | b`` before its parentheses are seen; left over means they were missing."""

    __slots__ = ("items", "span")

    def __init__(self, items, span):
        self.items, self.span = items, span


def _is_layer(x) -> bool:
    return isinstance(x, A.LAYER_NODES)


def _has_layer_operand(x) -> bool:
    while isinstance(x, A.BinOp) and x.op in "+-":
        if _is_layer(x.right):
            return True
        x = x.left
    return _is_layer(x)


def _gate_operands(x) -> list:
    """``a * b * c`` with layer expressions on both sides as ``[a, b, c]``; anything else
    as ``[x]``.  The grammar gives ``*`` and ``?`` one precedence, left to right, so
    ``a * b?`` came back as ``(a * b)?`` and ``a * b*2`` as ``(a * b)*2``: a postfix
    after a gate belongs to its last operand.  Iterative over the left spine."""
    spine = []
    while isinstance(x, (A.Repeat, A.Optional)):
        spine.append(x)
        x = x.body
    parts = [x]
    for node in reversed(spine):
        if isinstance(node, A.Repeat) and _is_layer(node.count):
            parts.append(node.count)
        elif len(parts) == 1:
            parts = [node]
        else:
            last = parts[-1]
            span = last.span.to(node.span)
            parts[-1] = (A.Optional(last, span) if isinstance(node, A.Optional)
                         else A.Repeat(last, node.count, span))
    return parts


def _binop(op: str) -> Callable[["_Builder", list], A.BinOp]:
    """The builder's method for a binary arithmetic operator."""
    def method(self: "_Builder", c: list) -> A.BinOp:
        left, right = c
        return A.BinOp(op, left, right, self._sp(left, right))
    return method


class _Builder:
    """Builds AST nodes while the LALR parser reduces: Lark calls the method named
    after each rule's alias (an inline transformer; no parse tree is built)."""

    def __init__(self, ctx: "_Context"):
        self.ctx = ctx

    # helpers
    def _sp(self, first, last=None) -> A.Span:
        # a child is a token (a str subclass) or a node that carries its span
        a = self.ctx.span(cast("Token", first)) if isinstance(first, str) else first.span
        if last is None:
            return a
        b = self.ctx.span(cast("Token", last)) if isinstance(last, str) else last.span
        return a.to(b)

    def _err(self, code, message, span, help=None, label=""):
        self.ctx.diags.append(Diagnostic(code, message, span, help=help, label=label))

    def as_layer(self, x):
        return as_layer(x)

    # statements
    def start(self, c):
        return c

    def assign(self, c):
        name, value = c
        return A.Assign(str(name), value, self._sp(name, value), self._sp(name))

    def blockdef(self, c):
        call, body = c
        # `args` already reported a positional after a keyword as E112; for parameters
        # the E109 below says it better
        self.ctx.diags[:] = [d for d in self.ctx.diags if not (
            d.code == "E112" and d.span is not None and call.span.start <= d.span.start
            and d.span.end <= call.span.end)]
        params, seen, defaulted = [], set(), False
        for a in call.args or ():
            if a.name is None and not isinstance(a.value, A.Name):
                self._err("E109", "a block parameter must be a name", a.span,
                          help=f"write `{call.name}(c, k=2) = ...`: names, optionally with "
                          "defaults")
                continue
            pname = a.name if a.name is not None else a.value.name
            if pname in seen:
                self._err("E109", f"parameter `{pname}` is declared twice", a.span,
                          help="give each parameter its own name")
            seen.add(pname)
            if a.name is None and defaulted:
                self._err("E109", f"parameter `{pname}` has no default but follows one that does",
                          a.span, help="put parameters with defaults last")
            defaulted = defaulted or a.name is not None
            params.append(A.Param(pname, a.value if a.name is not None else None, a.span))
        return A.BlockDef(call.name, tuple(params), self.as_layer(body), self._sp(call, body),
                          call.name_span)

    def range_def(self, c):
        name, lo, hi = c
        return A.RangeDef(str(name), lo, hi, self._sp(name, hi), self._sp(name))

    def bare(self, c):
        (e,) = c
        e = self.as_layer(e)
        return A.Bare(e, e.span)

    # expressions
    def bar(self, c):
        return _Bar(c, self._sp(c[0], c[-1]))

    def add(self, c):
        left, right = c
        return A.BinOp("+", left, right, self._sp(left, right))

    def sub(self, c):
        left, _, right = c
        return A.BinOp("-", left, right, self._sp(left, right))

    def chain(self, c):
        return A.Chain(tuple(self.as_layer(x) for x in c), self._sp(c[0], c[-1]))

    def mul(self, c):
        left, right = c
        span = self._sp(left, right)
        if _is_layer(left):
            return A.Repeat(left, right, span)
        if _is_layer(right):
            self._err("E108", "the repeat count goes after what it repeats", span,
                      help="write it as `LAYER*n`, e.g. `CONV*2`")
            return A.Repeat(right, left, span)
        return A.BinOp("*", left, right, span)

    floordiv = _binop("//")
    truediv = _binop("/")
    mod = _binop("%")

    def optional(self, c):
        body, q = c
        return A.Optional(self.as_layer(body), self._sp(body, q))

    def neg(self, c):
        minus, x = c
        return A.Neg(x, self._sp(minus, x))

    # atoms
    def _int_text(self, tok, text) -> int:
        if len(text) > limits.MAX_INT_DIGITS:
            self._err("E107", f"number with {len(text)} digits is too large "
                      f"(limit {limits.MAX_INT_DIGITS} digits)", self._sp(tok),
                      help="use a smaller number")
            return 0
        return int(text)

    def int(self, c):
        (t,) = c
        return A.Int(self._int_text(t, str(t)), self._sp(t))

    def float(self, c):
        (t,) = c
        v = float(t)
        if v in (float("inf"), float("-inf")):
            self._err("E107", f"number `{t}` is too large", self._sp(t),
                      help="use a smaller number")
            v = 0.0
        return A.Float(v, str(t), self._sp(t))

    def size(self, c):
        (t,) = c
        return A.Size(tuple(self._int_text(t, d) for d in str(t).split("x")), self._sp(t))

    def true(self, c):
        return A.Bool(True, self._sp(c[0]))

    def false(self, c):
        return A.Bool(False, self._sp(c[0]))

    def same(self, c):
        return A.Word("same", self._sp(c[0]))

    def valid(self, c):
        return A.Word("valid", self._sp(c[0]))

    def name(self, c):
        (t,) = c
        return A.Name(str(t), self._sp(t))

    def call(self, c):
        name, lpar, args, rpar = c
        return A.Call(str(name), tuple(args or ()), self._sp(name, rpar), self._sp(name))

    def _check_layer(self, tok):
        if str(tok) not in LAYERS:
            hint = did_you_mean(str(tok), LAYERS)
            if hint is None and str(tok).lower() == str(tok).lower() and not str(tok).isupper():
                hint = "layer names are upper case; user blocks are lower case"
            self._err("E105", f"unknown layer `{tok}`", self._sp(tok), label="not a layer",
                      help=hint or "the layers are: " + ", ".join(sorted(set(
                          s.name for s in LAYERS.values()))))

    def layer(self, c):
        (t,) = c
        self._check_layer(t)
        return A.Layer(str(t), None, self._sp(t), self._sp(t))

    def layer_call(self, c):
        name, lpar, args, rpar = c
        self._check_layer(name)
        return A.Layer(str(name), tuple(args or ()), self._sp(name, rpar), self._sp(name))

    def group(self, c):
        lsqb, body, rsqb = c
        return A.Group(self.as_layer(body), self._sp(lsqb, rsqb))

    def paren(self, c):
        lpar, inner, rpar = c
        span = self._sp(lpar, rpar)
        if isinstance(inner, _Bar):
            for item in inner.items:  # every `|` item is a layer, so a `+` there is a mix
                if isinstance(item, A.BinOp) and item.op in "+-":
                    self._err("E108", "`|` and `+` cannot be mixed in one pair of parentheses",
                              item.span, help="put the `+` branches in parentheses of their "
                              "own: `(a | (b + c))`")
            items = tuple(self.as_layer(A.Paren(i, i.span) if isinstance(i, A.BinOp) and i.op == "+"
                                        else self._no_gate(i, "|")) for i in inner.items)
            return A.Branches("|", items, span)
        if isinstance(inner, A.BinOp) and inner.op == "+" and _has_layer_operand(inner):
            spine = [self._no_gate(item, "+") for item in plus_spine(inner)]
            return A.Branches("+", tuple(self.as_layer(i) for i in spine), span)
        gated = self._gate_branches(inner)
        if gated is not None:
            return A.Branches("*", gated, span)
        if _is_layer(inner):
            return A.Group(inner, span)
        return A.Paren(inner, span)

    def _gate_branches(self, x) -> Optional[tuple]:
        """The branches of ``(a -> b * c -> d)``: ``*`` between two layer expressions
        gates, and splits the chain around it as ``+`` and ``|`` do.  The grammar gives
        ``*`` its repeat precedence (``CONV -> RELU*2``), above ``->``, so ``b * c`` came
        back as a repeat of ``b`` whose count is the layer ``c``; it is re-associated here,
        where the parentheses show it is a merge.  None when there is no gate."""
        items = x.items if isinstance(x, A.Chain) else (x,)
        segments: list[list] = []
        current: list = []
        for item in items:
            operands = _gate_operands(item)
            if len(operands) == 1:
                current.append(item)
                continue
            current.append(operands[0])
            segments.append(current)
            segments.extend([mid] for mid in operands[1:-1])
            current = [operands[-1]]
        if not segments:
            return None
        segments.append(current)
        return tuple(s[0] if len(s) == 1 else A.Chain(tuple(s), self._sp(s[0], s[-1]))
                     for s in segments)

    def _no_gate(self, item, op: str):
        """``item``, a branch of ``op``; a gate in it is reported, and read as if it
        had the parentheses it needs (so that it is reported once)."""
        chain = item.items if isinstance(item, A.Chain) else (item,)
        gate = next((i for i in chain if len(_gate_operands(i)) > 1), None)
        if gate is None:
            return item
        self._err("E108", f"`{op}` and `*` cannot be mixed in one pair of parentheses",
                  gate.span, help="put the gate in parentheses of its own: "
                  f"`((ID * GAP -> FC(c) -> SIGMOID) {op} b)`")
        return A.Branches("*", self._gate_branches(item) or (), item.span)

    def tuple(self, c):
        return A.Tuple(tuple(c[1:-1]), self._sp(c[0], c[-1]))

    def args(self, c):
        out, seen_kw, seen = [], False, set()
        for a in c:
            if not isinstance(a, A.Arg):
                if seen_kw:
                    self._err("E112", "a positional argument cannot follow a keyword argument",
                              a.span, help="move it before the keyword arguments")
                a = A.Arg(None, a, a.span)
            else:
                seen_kw = True
                if a.name in seen:
                    self._err("E112", f"argument `{a.name}` is given twice", a.name_span,
                              help="keep one of them")
                seen.add(a.name)
            out.append(a)
        return out

    def kwarg(self, c):
        name, value = c
        return A.Arg(str(name), value, self._sp(name, value), self._sp(name))


# --- statement validation ------------------------------------------------------------

_VALUE_NODES = (A.Int, A.Float, A.Size, A.Bool, A.Word, A.Neg, A.Tuple)


def _validate(stmt, diags: list) -> None:
    """Layers only where layers go, values only where values go; depth within limits.

    Iterative, so a pathological statement cannot exhaust the Python stack.
    """
    if isinstance(stmt, A.Assign):
        ambiguous = not _is_layer(stmt.value) and not isinstance(stmt.value, _Bar)
        roots = [(stmt.value, "either" if ambiguous else "layer", 2)]
    elif isinstance(stmt, A.BlockDef):
        roots = [(p.default, "value", 2) for p in stmt.params if p.default is not None]
        roots.append((stmt.body, "layer", 2))
    elif isinstance(stmt, A.RangeDef):
        roots = [(stmt.lo, "value", 2), (stmt.hi, "value", 2)]
    else:
        roots = [(stmt.expr, "layer", 2)]
    stack = list(reversed(roots))
    while stack:
        node, want, d = stack.pop()
        if d > limits.MAX_EXPR_DEPTH:
            diags.append(Diagnostic(
                "E106", f"expression nested more than {limits.MAX_EXPR_DEPTH} levels deep "
                "(limit MAX_EXPR_DEPTH)", node.span, label="too deep",
                help="split it up, or name a part as a block"))
            return
        if isinstance(node, _Bar):
            diags.append(Diagnostic(
                "E108", "`|` branches must be in parentheses", node.span,
                help="write `(a | b)`: the branches' outputs are concatenated on channels"))
            continue
        if isinstance(node, A.BinOp) and node.op in "+-" and _has_layer_operand(node):
            diags.append(Diagnostic(
                "E108", f"`{node.op}` between layers must be in parentheses", node.span,
                label="not parenthesised", help="put the branches in parentheses: `(a + b)`"
                if node.op == "+" else "to repeat n - 1 times write `*(n - 1)`"))
            continue
        if isinstance(node, A.Repeat) and _is_layer(node.count):
            diags.append(Diagnostic(
                "E108", "`*` between layers gates one branch by another, and must be in "
                "parentheses", node.span, label="not parenthesised",
                help="write the gate as `(ID * GAP -> FC(c) -> SIGMOID)`: everything from `*` "
                "to the closing parenthesis is the gate; to repeat, the count goes after "
                "`*` as a number: `CONV*2`"))
            continue
        if want == "layer" and isinstance(node, _VALUE_NODES + (A.BinOp, A.Paren)):
            what = _describe(node)
            helptext = ("to add branches, put them in parentheses: `(a + b)`"
                        if isinstance(node, A.BinOp) and node.op in "+-" else
                        "a chain is made of layers (`CONV`), blocks (`name(...)`), "
                        "`[...]` groups and `(a | b)` / `(a + b)` branches")
            diags.append(Diagnostic("E108", f"expected a layer here, found {what}", node.span,
                                    help=helptext, label="not a layer"))
            continue
        if want == "value" and _is_layer(node):
            diags.append(Diagnostic(
                "E108", f"expected a value here, found {_describe(node)}", node.span,
                label="not a value", help="arguments, repeat counts and range bounds are "
                "numbers, sizes, names of constants or arithmetic on them"))
            continue
        # a leaf value (a number, a name...) where a value goes is always fine: skip it
        stack.extend(sub for sub in reversed(_subpositions(node, want, d + 1))
                     if not (sub[1] == "value" and type(sub[0]) in _LEAVES))


_LEAVES = frozenset((A.Int, A.Float, A.Size, A.Bool, A.Word, A.Name))


def _subpositions(node, want, d):
    if isinstance(node, (A.Chain, A.Branches)):
        return [(i, "layer", d) for i in node.items]
    if isinstance(node, (A.Group, A.Optional)):
        return [(node.body, "layer", d)]
    if isinstance(node, A.Repeat):
        return [(node.body, "layer", d), (node.count, "value", d)]
    if isinstance(node, (A.Layer, A.Call)):
        return [(a.value, "value", d) for a in node.args or ()]
    if isinstance(node, A.BinOp):
        # only the left of `*` may still be a block (`x = b*2`); an unparenthesised `+` is
        # arithmetic, so a layer there is an error
        left = "either" if want == "either" and node.op == "*" else "value"
        return [(node.left, left, d), (node.right, "value", d)]
    if isinstance(node, A.Paren):
        return [(node.inner, "either" if want == "either" else "value", d)]
    if isinstance(node, (A.Neg,)):
        return [(node.operand, "value", d)]
    if isinstance(node, A.Tuple):
        return [(i, "value", d) for i in node.items]
    return []


def _describe(node) -> str:
    if isinstance(node, (A.Int, A.Float)):
        return f"the number `{getattr(node, 'text', '') or node.value}`"
    if isinstance(node, A.Size):
        return "the size `" + "x".join(map(str, node.dims)) + "`"
    if isinstance(node, A.Bool):
        return "`true`" if node.value else "`false`"
    if isinstance(node, A.Word):
        return f"`{node.value}`"
    if isinstance(node, A.BinOp):
        return f"arithmetic (`{node.op}`)"
    if isinstance(node, A.Layer):
        return f"the layer `{node.name}`"
    if isinstance(node, A.Call):
        return f"the block `{node.name}`"
    return "a layer expression"


# --- syntax error messages -----------------------------------------------------------

_WORDS = {
    "LAYER": "a layer", "NAME": "a name", "INT": "a number", "FLOAT": "a number",
    "SIZE": "a size", "TRUE": "true", "FALSE": "false", "SAME": "same", "VALID": "valid",
    "LPAR": '"("', "RPAR": '")"', "LSQB": '"["', "RSQB": '"]"', "_ARROW": '"->"',
    "EQUAL": '"="', "COMMA": '","', "STAR": '"*"', "QMARK": '"?"', "VBAR": '"|"',
    "PLUS": '"+"', "MINUS": '"-"', "SLASH": '"/"', "_FLOORDIV": '"//"', "PERCENT": '"%"',
    "_DOTDOT": '".."', "IN": '"in"', "_NL": "the end of the line", "$END": "the end of the file",
}
_OPERAND = {"LAYER", "NAME", "INT", "FLOAT", "SIZE", "TRUE", "FALSE", "SAME", "VALID",
            "LPAR", "LSQB", "MINUS"}


def _found(tok: Token) -> str:
    if tok.type in ("_NL", "$END"):
        return _WORDS[tok.type]
    return f'{_WORDS.get(tok.type, "token")} `{tok.value}`' if tok.type in (
        "LAYER", "NAME", "INT", "FLOAT", "SIZE") else f'"{tok.value}"'


def _expected_words(expected) -> str:
    words = list(dict.fromkeys(_WORDS.get(e, e) for e in sorted(expected, key=_order)))
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _order(t: str) -> int:
    order = ["LAYER", "NAME", "INT", "FLOAT", "SIZE", "LSQB", "LPAR", "_ARROW", "RPAR", "RSQB",
             "COMMA", "EQUAL", "STAR", "QMARK", "VBAR", "PLUS", "MINUS", "_NL", "$END"]
    return order.index(t) if t in order else len(order)


def _syntax_message(tok: Token, expected: set,
                    prev: Optional[Token]) -> tuple[str, Optional[str]]:
    """(message, help) for an unexpected token, in the language's own words."""
    after = f' after "{prev.value}"' if prev is not None and prev.type not in ("_NL",) else ""
    found = _found(tok)
    if _OPERAND & expected and "_ARROW" not in expected:
        if prev is not None and prev.type in ("_ARROW", "LSQB", "VBAR", "PLUS"):
            return (f'expected a layer, a block, "[" or "("{after}, found {found}',
                    "a chain continues with a layer such as `CONV`, a block name, "
                    "`[...]` or `(a | b)`")
        if prev is not None and prev.type == "STAR":
            return (f'expected a repeat count after "*", found {found}',
                    "write a number, a constant, or arithmetic in parentheses: `*(n - 1)`")
        if prev is not None and prev.type in ("MINUS", "SLASH", "_FLOORDIV", "PERCENT"):
            return (f'expected a value after "{prev.value}", found {found}',
                    "arithmetic needs a value after each operator: `n - 1`, `size // 2`, "
                    "`-n`")
        if prev is not None and prev.type == "EQUAL":
            return f'expected a value or a layer expression after "=", found {found}', None
        return (f"expected a layer or a value{after}, found {found}", None)
    if tok.type in _OPERAND and "_ARROW" in expected and prev is not None:
        return (f'expected "->" between `{prev.value}` and `{tok.value}`',
                'layers in a chain are joined with "->"')
    return (f"expected {_expected_words(expected)}{after}, found {found}", None)


# --- driver --------------------------------------------------------------------------


class _Context:
    """Per-parse state shared by the postlexer, the transformer and the lexer callback."""

    def __init__(self):
        self.file = "<string>"
        self.text = ""
        self.diags: list[Diagnostic] = []
        self.comments: list[A.Comment] = []
        self.brackets: list[Token] = []
        self.history: list[Token] = []
        self.newline_in_brackets = False

    def span(self, tok: Token) -> A.Span:
        # every token the lexer makes has its positions; only the postlexer's closing
        # _NL has none, and it is never located (the token before it is)
        where = (tok.line, tok.column, tok.end_line, tok.end_column, tok.start_pos, tok.end_pos)
        assert None not in where, tok.type
        return A.Span(self.file, *cast("tuple[int, int, int, int, int, int]", where))

    def comment(self, tok: Token) -> Token:
        self.comments.append(A.Comment(str(tok).rstrip(), self.span(tok)))
        return tok

    def arrow(self, tok: Token) -> Token:
        """An ``->`` that starts a line swallowed the line breaks and comments before it."""
        text = str(tok)
        if "#" not in text:
            return tok
        assert tok.line is not None and tok.start_pos is not None  # a lexer's token
        for m in re.finditer(r"#[^\n]*", text):  # as COMMENT: a lone \r stays in the text
            before = text[: m.start()]
            line = tok.line + before.count("\n")
            col = m.start() - before.rfind("\n")
            start = tok.start_pos + m.start()
            self.comments.append(A.Comment(m.group().rstrip(), A.Span(
                self.file, line, col, line, col + len(m.group()), start, start + len(m.group()))))
        return tok


_lock = threading.Lock()
_ctx = _Context()
_parser = None
_R: Any = None  # the module providing Lark's classes (see lark_runtime.py)


def _get_parser():
    global _parser, _R
    if _parser is None:
        module, make = runtime()
        _parser = make(transformer=_Builder(_ctx), postlex=_Postlex(_ctx),
                       lexer_callbacks={"COMMENT": _ctx.comment, "_ARROW": _ctx.arrow})
        _R = module
    return _parser


_STATEMENT_START = re.compile(r"^[A-Za-z_]", re.M)
_CONTINUES = ("->", "=", ",", "(", "[", "|", "+")


def _resume_offset(text: str, after_line: int) -> Optional[int]:
    """Offset of the first line after ``after_line`` that plausibly starts a statement."""
    lines = text.split("\n")
    offset = sum(len(l) + 1 for l in lines[:after_line])
    last_code = lines[after_line - 1] if 0 < after_line <= len(lines) else ""
    for line in lines[after_line:]:
        code = line.split("#", 1)[0].rstrip()
        if _STATEMENT_START.match(line) and not last_code.endswith(_CONTINUES):
            return offset
        if code:
            last_code = code
        offset += len(line) + 1
    return None


def _diag_from_lark(e, ctx: _Context) -> Diagnostic:
    if isinstance(e, _R.UnexpectedCharacters):
        span = A.Span(ctx.file, e.line, e.column, e.line, e.column + 1, e.pos_in_stream,
                      e.pos_in_stream + 1)
        ch = e.char
        helptext = None
        if ch == ">" and e.pos_in_stream > 0 and e.pos_in_stream - 1 < len(ctx.text) \
                and ctx.text[e.pos_in_stream - 1] == "-":
            span = A.Span(ctx.file, e.line, e.column - 1, e.line, e.column + 1,
                          e.pos_in_stream - 1, e.pos_in_stream + 1)
            return Diagnostic("E101", 'expected a layer, a block, "[" or "(", found "->"', span,
                              label="unexpected", help='remove one of the two "->"')
        if ch in "{}":
            helptext = 'group with "[...]" and branch with "(a | b)"'
        elif ch == ":":
            helptext = 'a block is defined with "=": `name(args) = ...`'
        elif ch.isupper() or ch.islower():
            helptext = "names are letters, digits and `_`"
        return Diagnostic("E102", f"unexpected character `{ch}`", span, label="not understood",
                          help=helptext or "remove it")
    tok = e.token if isinstance(e, _R.UnexpectedToken) else None
    hist = ctx.history
    if tok is None or tok.type == "$END":
        last = hist[-1] if hist else None
        if last is None:
            return Diagnostic("E101", "unexpected end of input")
        span = ctx.span(last)
        return Diagnostic("E101", f'unexpected end of the file after "{last.value}"', span,
                          help="finish the statement")
    # the postlexer records the token before yielding it, so the one before ``tok`` is [-2]
    prev = hist[-2] if len(hist) >= 2 and hist[-1] is tok else (hist[-1] if hist else None)
    if ctx.brackets and ctx.newline_in_brackets and tok.type not in ("RPAR", "RSQB"):
        opener = ctx.brackets[-1]
        want = ")" if opener.type == "LPAR" else "]"
        return Diagnostic("E103", f'this "{opener.value}" is never closed', ctx.span(opener),
                          label="opened here",
                          notes=(f"the parser gave up at {ctx.span(tok)}, "
                                 f"still inside the brackets",),
                          help=f'add "{want}" where the group ends')
    message, helptext = _syntax_message(tok, set(e.expected), prev)
    if tok.type == "_NL" and prev is not None:
        span = ctx.span(prev)
        span = A.Span(span.file, span.end_line, span.end_col, span.end_line, span.end_col + 1,
                      span.end, span.end + 1)
    else:
        span = ctx.span(tok)
    code = "E111" if message.startswith('expected "->" between') else "E101"
    return Diagnostic(code, message, span, help=helptext, label="unexpected")


def parse_source(source: Source) -> A.Program:
    """Parse ``source``; raise ParseError carrying every syntax error found."""
    parser = _get_parser()
    text = source.text
    with _lock:
        ctx = _ctx
        ctx.file, ctx.text, ctx.diags, ctx.comments = source.name, text, [], []
        statements: list = []
        masked = text
        while True:
            ctx.brackets, ctx.history, ctx.newline_in_brackets = [], [], False
            try:
                statements = parser.parse(masked)
                break
            except Fail as stop:  # raised from inside the token stream
                ctx.diags.append(stop.diag)
                line = stop.diag.span.line if stop.diag.span else None
            except _R.UnexpectedInput as e:
                d = _diag_from_lark(e, ctx)
                ctx.diags.append(d)
                line = getattr(e, "line", None)
                if isinstance(e, _R.UnexpectedToken) and e.token.type in ("_NL", "$END"):
                    line = d.span.line if d.span else line
            if line is None or line < 1 or len(ctx.diags) >= limits.MAX_ERRORS:
                break
            if ctx.diags[-1].code == "E103":
                break  # everything after an unclosed bracket was read inside it
            resume = _resume_offset(text, line)
            if resume is None:
                break
            masked = re.sub(r"[^\n]", " ", text[:resume]) + text[resume:]
        diags, comments = ctx.diags, ctx.comments
        ctx.diags, ctx.comments = [], []
    for st in statements:
        _validate(st, diags)
    if diags:
        diags = sorted(_dedupe(diags),
                       key=lambda d: (d.span.line, d.span.col) if d.span else (0, 0))
        raise ParseError(diags[: limits.MAX_ERRORS], {source.name: text})
    seen: set[int] = set()
    uniq = []
    for c in comments:  # each comment once, by where it starts
        if c.span.start not in seen:
            seen.add(c.span.start)
            uniq.append(c)
    return A.Program(tuple(statements), tuple(sorted(uniq, key=lambda c: c.span.start)),
                     source.name, text)


def _dedupe(diags):
    seen = set()
    for d in diags:
        key = (d.code, d.message, d.span.start if d.span else None)
        if key not in seen:
            seen.add(key)
            yield d


def parse(text: str, file: str = "<string>") -> A.Program:
    """Parse PatternNet source text into a ``Program``."""
    return parse_source(Source(file, text))
