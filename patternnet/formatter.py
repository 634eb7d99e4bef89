"""The canonical layout of a PatternNet file (``patternnet fmt``).

The formatter prints the AST back, so it can only normalise what the AST keeps:
spacing, line breaks and blank lines; parentheses around arithmetic are ``Paren``
nodes and come back exactly as written.  What it promises, for every file that
parses: ``parse(format(s)) == parse(s)``, ``format(format(s)) == format(s)``, and
every comment survives.

Layout, in short: one statement per line; a statement longer than ``WIDTH`` is cut
before ``->`` (continuation lines start with ``  -> ``, packed greedily); an element
that still does not fit, a ``(a + b)`` or ``[...]`` group, is opened up with its
branches aligned under the bracket, as in the ResNet bottleneck of the language
design::

    bottleneck(c, s=1) = (CONV(c, 1, bias=false) -> BN -> RELU
                          -> CONV(c, 3, s=s, p=1, bias=false) -> BN -> RELU
                          -> CONV(4*c, 1, bias=false) -> BN
                        + SKIP) -> RELU

The writer's own layout is kept where it is a choice: a ``->`` that starts a line
still starts one (a chain written one stage per line stays so), and a bracketed
element written over several lines stays open.  Comments stay after the element they
follow, in the innermost chain around them; a comment forces a line break after its
element, because a comment runs to the end of the line.
"""

from __future__ import annotations

import bisect
from typing import Optional, Union

from . import ast as A
from .parser import parse

WIDTH = 88
CONT = 2  # indentation of a statement's continuation lines


def format_source(text: str, file: str = "<string>") -> str:
    """Parse ``text`` and print it in the canonical layout (raises ParseError)."""
    return format_program(parse(text, file))


def format_program(program: A.Program) -> str:
    """The canonical text of ``program``; ``""`` for an empty file."""
    out: list[str] = []
    for blank, lines in _blocks(program):
        if blank and out:
            out.append("")
        out.extend(lines)
    return "\n".join(out) + "\n" if out else ""


# --- statements, comments and blank lines --------------------------------------------


def _blocks(program: A.Program) -> list[tuple[bool, list[str]]]:
    """Statements and full-line comments in source order, each with "blank line before"."""
    stmts = program.statements
    starts = [s.span.start for s in stmts]
    notes: list[list[tuple[int, str]]] = [[] for _ in stmts]
    loose: list[A.Comment] = []
    for c in program.comments:
        i = bisect.bisect_right(starts, c.span.start) - 1
        s = stmts[i] if i >= 0 else None
        if s is not None and (c.span.start < s.span.end or c.span.line == s.span.end_line):
            notes[i].append((c.span.start, c.text))
        else:
            loose.append(c)
    items = [(s.span.line, s.span.end_line, _statement(s, notes[i]))
             for i, s in enumerate(stmts)]
    items += [(c.span.line, c.span.line, [c.text]) for c in loose]
    items.sort(key=lambda item: item[0])
    blocks, prev_end = [], None
    for first, last, lines in items:
        blocks.append((prev_end is not None and first - prev_end > 1, lines))
        prev_end = last
    return blocks


def _parts(stmt) -> tuple[str, list]:
    """A statement as the text before its top-level chain, and that chain's elements."""
    if isinstance(stmt, A.Assign):
        return f"{stmt.name} = ", _elements(stmt.value)
    if isinstance(stmt, A.BlockDef):
        params = ", ".join(p.name if p.default is None else f"{p.name}={_flat(p.default)}"
                           for p in stmt.params)
        return f"{stmt.name}({params}) = ", _elements(stmt.body)
    if isinstance(stmt, A.RangeDef):
        return f"{stmt.name} in {_flat(stmt.lo)}..{_flat(stmt.hi)}", []
    return "", _elements(stmt.expr)


def _elements(expr) -> list:
    return list(expr.items) if isinstance(expr, A.Chain) else [expr]


def _anchor(elements: list, offset: int):
    """The element a comment at ``offset`` follows, in the innermost chain around it: the
    last element starting before it, looked into while the comment is inside its
    brackets and they are opened up (``_opened``), so that the comment keeps its place."""
    while True:
        e = elements[max(bisect.bisect_right([x.span.start for x in elements], offset) - 1, 0)]
        core = _core(e)[0]
        if core is None or not core.span.start < offset < core.span.end or not _opened(e):
            return e  # printed on one line, so the comment follows it
        if isinstance(core, A.Group):
            elements = _elements(core.body)
        else:
            starts = [b.span.start for b in core.items]
            elements = _elements(core.items[max(bisect.bisect_right(starts, offset) - 1, 0)])


def _statement(stmt, comments: list[tuple[int, str]]) -> list[str]:
    prefix, elements = _parts(stmt)
    if not elements:
        lines, tail = [prefix], [text for _, text in comments]
    else:
        notes: dict[int, list[str]] = {}
        for offset, text in comments:
            notes.setdefault(id(_anchor(elements, offset)), []).append(text)
        lines, tail = _pack(elements, 0, CONT, 0, notes, prefix)
    if tail:
        # the first trails the statement; the others become full-line comments after
        # it, where a second parse finds them again
        lines[-1] += "  " + tail[0]
        lines.extend(tail[1:])
    return lines


# --- chains --------------------------------------------------------------------------


def _opened(node) -> bool:
    """Whether ``node`` is a bracketed element its writer laid out over lines: branches
    spread over lines, or a group whose chain breaks between stages (not just before
    its bracket).  It is opened up, keeping the writer's breaks, even where it would fit
    on one line; opened, it always takes more than one."""
    core = _core(node)[0]
    if core is None or core.span.line == core.span.end_line:
        return False
    if isinstance(core, A.Branches):
        return True
    items = _elements(core.body)
    return (any(b.span.line > a.span.end_line for a, b in zip(items, items[1:]))
            or any(_opened(i) for i in items))


def _emit(lines: list[str], comments: list[str], indent: int) -> None:
    """Comments after the last line: the first trails it, the others follow on lines of
    their own."""
    lines[-1] += "  " + comments[0]
    lines.extend(" " * indent + text for text in comments[1:])


def _pack(items: list, col: int, cont: int, reserve: int, notes: dict,
          prefix: str = "") -> tuple[list[str], list[str]]:
    """Lay ``items`` out as a chain after ``prefix``, which starts at column ``col``.

    A ``->`` starts a line where the writer started one (a chain written one stage per
    line stays so); elsewhere items are packed greedily.  A continuation line starts
    ``-> `` at column ``cont``; ``reserve`` columns are kept free after the last item
    (for closing brackets).  The first returned line is relative to ``col``, the others
    are whole lines.  Returns the lines and the comments that trail the last item (the
    caller places them after its closing bracket).
    """
    lines = [prefix]
    cur = col + len(prefix)
    forced = False
    tail: list[str] = []
    for i, item in enumerate(items):
        flat = _flat(item)
        last = i == len(items) - 1
        room = reserve if last else 0
        opened = _opened(item)
        if i > 0:
            written = item.span.line > items[i - 1].span.end_line
            # an element that does not fit starts a new line, unless it must be opened
            # up anyway and its bracket can stay in the first half of this one
            opens_here = cur + 4 <= WIDTH // 2 and _core(item)[0] is not None and (
                opened or cont + 3 + len(flat) + room > WIDTH)
            if forced or written or (cur + 4 + len(flat) + room > WIDTH and not opens_here):
                lines.append(" " * cont + "-> ")
                cur = cont + 3
            else:
                lines[-1] += " -> "
                cur += 4
        inner: list[str] = []
        if not opened and (cur + len(flat) + room <= WIDTH or _core(item)[0] is None):
            lines[-1] += flat
            cur += len(flat)
        else:
            sub, inner = _broken(item, cur, room, notes)
            lines[-1] += sub[0]
            lines.extend(sub[1:])
            cur = cur + len(sub[0]) if len(sub) == 1 else len(sub[-1])
        mine = inner + notes.get(id(item), [])
        forced = bool(mine) and not last
        if forced:
            _emit(lines, mine, cont)
        elif last:
            tail = mine
    return lines, tail


def _core(node) -> tuple[Optional[Union[A.Group, A.Branches]], str]:
    """The group or branches under a node's ``*n`` / ``?`` postfixes, and those postfixes;
    ``(None, "")`` when the node has no brackets to open."""
    postfix = []
    while isinstance(node, (A.Repeat, A.Optional)):
        postfix.append("?" if isinstance(node, A.Optional) else "*" + _flat(node.count))
        node = node.body
    if isinstance(node, (A.Group, A.Branches)):
        return node, "".join(reversed(postfix))
    return None, ""


def _broken(node, col: int, reserve: int, notes: dict) -> tuple[list[str], list[str]]:
    """``node`` (a group or branches, maybe repeated) opened up, its bracket at ``col``,
    and the comments that trail it."""
    core, postfix = _core(node)
    assert core is not None  # only a node with brackets is broken open
    after = ("]" if isinstance(core, A.Group) else ")") + postfix
    if isinstance(core, A.Group):
        lines, tail = _pack(_elements(core.body), col, col + 1, reserve + len(after), notes,
                            prefix="[")
    else:
        lines, tail = _pack(_elements(core.items[0]), col, col + 1, 0, notes, prefix="(")
        sep = max(col - 1, 0)  # `+` / `|` one column left of the bracket: branches align
        for k, branch in enumerate(core.items[1:], 2):
            if tail:
                _emit(lines, tail, col + 1)
            room = reserve + len(after) if k == len(core.items) else 0
            sub, tail = _pack(_elements(branch), sep, sep + 2, room, notes,
                              prefix=core.op + " ")
            lines.append(" " * sep + sub[0])
            lines.extend(sub[1:])
    lines[-1] += after
    return lines, tail


# --- one line ------------------------------------------------------------------------


def _flat(node) -> str:
    """``node`` on one line."""
    if isinstance(node, A.Chain):
        return " -> ".join(_flat(i) for i in node.items)
    if isinstance(node, A.Branches):
        return "(" + f" {node.op} ".join(_flat(i) for i in node.items) + ")"
    if isinstance(node, A.Group):
        return "[" + _flat(node.body) + "]"
    if isinstance(node, A.Repeat):
        return _flat(node.body) + "*" + _flat(node.count)
    if isinstance(node, A.Optional):
        return _flat(node.body) + "?"
    if isinstance(node, (A.Layer, A.Call)):
        return node.name + _args(node.args)
    return _value(node)


def _args(args) -> str:
    if args is None:
        return ""
    return "(" + ", ".join(_flat(a.value) if a.name is None else f"{a.name}={_flat(a.value)}"
                           for a in args) + ")"


def _value(node) -> str:
    if isinstance(node, A.Int):
        return str(node.value)
    if isinstance(node, A.Float):
        return node.text or repr(node.value)
    if isinstance(node, A.Size):
        return "x".join(map(str, node.dims))
    if isinstance(node, A.Bool):
        return "true" if node.value else "false"
    if isinstance(node, A.Word):
        return node.value
    if isinstance(node, A.Name):
        return node.name
    if isinstance(node, A.Neg):
        return "-" + _flat(node.operand)
    if isinstance(node, A.BinOp):
        # `*` is tight, as in a repeat (`4*c`, `CONV*2`); the others are spaced
        op = "*" if node.op == "*" else f" {node.op} "
        return _flat(node.left) + op + _flat(node.right)
    if isinstance(node, A.Paren):
        return "(" + _flat(node.inner) + ")"
    if isinstance(node, A.Tuple):
        return "(" + ", ".join(_flat(i) for i in node.items) + ")"
    raise TypeError(f"cannot format {type(node).__name__}")


# --- diffs ---------------------------------------------------------------------------


def unified_diff(path: str, old: str, new: str) -> str:
    """What ``fmt`` would change in ``path``, as ``git diff`` shows it (``--- a/PATH``,
    ``+++ b/PATH``), so that ``patch -p1`` applies it; ``""`` when nothing changes."""
    import difflib

    lines = difflib.unified_diff(_lines(old), _lines(new), f"a/{path}", f"b/{path}")
    return "".join(lines)


def _lines(text: str) -> list[str]:
    """``text`` in lines that each end in a newline; a last line without one is marked
    as diff and patch mark it, so the diff stays line-based."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n\\ No newline at end of file\n"
    return lines
