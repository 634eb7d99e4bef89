"""Draw a checked network as an SVG diagram (``patternnet draw``).

Pure Python (stdlib only; never imports jax or numpy) and deterministic: the same
network always gives the same bytes, so diagrams can be golden-tested.

The picture is a top-to-bottom flow of layer boxes:

* a box per layer: its kind and key arguments (``CONV 3x3, 64 /2``, ``POOL 3x3 /2``,
  ``FC 1000``), the trainable parameter count in small text, coloured by family
  (conv, pool, norm, activation, fc, dropout, shortcut, reshape);
* every edge carries the shape flowing along it (``56x56x256``);
* a repeat ``[...]*n`` is a framed group with an ``×n`` badge, drawn once.  Where the
  copies differ (e.g. a bare CONV doubling its filters after each pool) the box says
  how, copy by copy: ``CONV 3x3, 32→64→128`` (``first→…→last`` past four copies).
  ``expand=True`` draws every copy instead, split by dotted lines;
* a block call (``bottleneck(64)``) is a dashed frame named after the block;
* branches stand side by side: ``+`` joins them in a ⊕ node, ``|`` in a "concat" bar
  that spans them; a SKIP that is the identity is a bare line marked "identity", a
  projecting SKIP a box (1x1 CONV -> BN).

Sizes come from a monospace font metric (0.6 em per character, as DejaVu Sans Mono,
Menlo and Consolas), so every box fits its text.  Each box has a ``<title>`` (a
tooltip in browsers) with the layer's path and full description.
"""

from __future__ import annotations

import math
import re
from typing import Optional

from .checker import CBranches, CheckedNet, CLayer, CRepeat, CSeq, layers_in
from .layers import LAYERS
from .merges import MERGES
from .rules import fmt_shape
from .summary import describe, human

__all__ = ["draw_svg", "FAMILIES"]

FONT = "DejaVu Sans Mono, Menlo, Consolas, Liberation Mono, monospace"
CHAR_EM = 0.6          # advance width of one character, in em, of a monospace font

# font sizes
F_TITLE, F_BOX, F_SMALL, F_EDGE, F_FRAME, F_HEAD, F_INFO = 12, 12, 10, 10, 11, 16, 11

# geometry (pixels)
MARGIN = 24
BOX_PADX = 10
BOX_H1, BOX_H2 = 24, 36       # one line, two lines
MIN_W = 132                   # boxes that carry parameters
MIN_W_THIN = 72               # activations, dropout, reshapes
GAP = 26                      # vertical space between two items (holds the edge label)
SEP_GAP = 44                  # between two copies of an expanded repeat
EDGE_DX = 7                   # edge label's distance right of the edge
FRAME_PADX = {"repeat": 12, "block": 8}
FRAME_TOP = {"repeat": 26, "block": 20}
FRAME_BOT = {"repeat": 12, "block": 8}
COL_GAP = 22                  # between branches
SPLIT = 22                    # from a fork's top to its branches' tops
EXIT = 26                     # from the tallest branch's bottom to the merge node
MERGE_R = 9                   # radius of the ⊕ node
BAR_H = 18                    # height of the concat bar

#: layer kind -> family, and each family's fill, stroke and legend name (legend order)
FAMILIES = {
    "io": ("#eceff1", "#546e7a", "input / output"),
    "conv": ("#dbeafe", "#2563eb", "conv"),
    "pool": ("#ffedd5", "#ea580c", "pool"),
    "norm": ("#fef9c3", "#ca8a04", "norm"),
    "act": ("#dcfce7", "#16a34a", "activation"),
    "fc": ("#ede9fe", "#7c3aed", "fc"),
    "drop": ("#fce7f3", "#db2777", "dropout"),
    "skip": ("#ccfbf1", "#0d9488", "shortcut"),
    "shape": ("#f1f5f9", "#64748b", "reshape"),
}


def _family(kind: str) -> str:
    """The colour family of a box: its kind's (OUTPUT is the diagram's own box)."""
    return "io" if kind == "OUTPUT" else LAYERS[kind].family


_THIN = {"act", "drop", "shape", "io"}

INK, MUTED, EDGE, FRAME_INK = "#1f2937", "#6b7280", "#475569", "#94a3b8"


def text_width(text: str, size: float) -> int:
    """Width in pixels of ``text`` set in the monospace font at ``size`` px."""
    return math.ceil(len(text) * size * CHAR_EM)


# --- the display tree ----------------------------------------------------------------
# Built from the checked graph, then measured (bottom up) and drawn (top down).


class _M:
    """A node's measure: extents left and right of its axis (the vertical line edges
    enter and leave by), height, how far below its top the entering edge ends and above
    its bottom the leaving edge starts, and whether the entering edge has an arrowhead."""
    __slots__ = ("l", "r", "h", "top_in", "bot_out", "arrow")

    def __init__(self, l, r, h, top_in=0, bot_out=0, arrow=True):
        self.l, self.r, self.h = l, r, h
        self.top_in, self.bot_out, self.arrow = top_in, bot_out, arrow


class _Node:
    """Measured once: ``measure()`` caches ``_measure()``."""
    _m: Optional[_M] = None

    def measure(self) -> _M:
        if self._m is None:
            self._m = self._measure()
        return self._m

    def _measure(self) -> _M:
        raise NotImplementedError


class _Box(_Node):
    """One layer (or, in a collapsed repeat, the same layer of every copy)."""

    def __init__(self, kind: str, tokens: list, sub: list, out: tuple, tip: str):
        self.kind, self.family = kind, _family(kind)
        self.tokens, self.sub, self.out, self.tip = tokens, sub, out, tip

    @property
    def title(self) -> str:
        return "".join(t if i % 2 else _show(t) for i, t in enumerate(self.tokens))

    @property
    def sub_text(self) -> str:
        return " ".join(_show(w) for w in self.sub)

    def key(self):
        return ("box", self.kind, len(self.tokens), tuple(self.tokens[1::2]), len(self.sub))

    def _measure(self) -> _M:
        w = max(text_width(self.title, F_BOX), text_width(self.sub_text, F_SMALL)) + 2 * BOX_PADX
        w = max(w, MIN_W_THIN if self.family in _THIN and not self.sub else MIN_W)
        w += w % 2
        return _M(w // 2, w // 2, BOX_H2 if self.sub else BOX_H1)


class _Ident(_Node):
    """An identity SKIP: no box, a line marked "identity"."""

    def __init__(self, out: tuple, tip: str):  # out: the output shape's text tokens
        self.out, self.tip = out, tip
        self.kind, self.family = "SKIP", "skip"

    def key(self):
        return ("ident",)

    def _measure(self) -> _M:
        return _M(4, EDGE_DX + text_width("identity", F_SMALL) + 4, 18, arrow=False)


class _Group(_Node):
    """A sequence: framed as a repeat (``count`` copies) or a block call, or plain.
    ``parts`` holds one item list, or one per copy when a repeat is expanded."""

    def __init__(self, frame: Optional[str], label: str, parts: list, out: tuple,
                 count: int = 0, params: int = 0):
        self.frame, self.label, self.parts, self.out = frame, label, parts, out
        self.count, self.params = count, params
        self.label_right = False

    @property
    def items(self) -> list:
        return [x for p in self.parts for x in p]

    def key(self):
        return ("group", self.frame, self.label, self.count,
                tuple(tuple(x.key() for x in p) for p in self.parts))

    def badge(self) -> str:
        return f"×{self.count}"

    def _measure(self) -> _M:
        m = _seq_measure(self.parts)
        if not self.frame:
            return m
        px, top, bot = FRAME_PADX[self.frame], FRAME_TOP[self.frame], FRAME_BOT[self.frame]
        l, r = m.l + px, m.r + px
        if self.frame == "repeat":
            r = max(r, text_width(self.badge(), F_FRAME) + 12 + 8 + 8)
            l = max(l, text_width(self.note(), F_SMALL) + 8 + 8)
        else:  # the block's name in the top left corner, else the top right one
            need = text_width(self.label, F_FRAME) + 8 + 8
            self.label_right = l < need <= r
            if not self.label_right:
                l = max(l, need)
        return _M(l, r, m.h + top + bot, m.top_in + top, m.bot_out + bot, m.arrow)

    def note(self) -> str:
        """The small text beside a repeat's badge: what all its copies hold together."""
        if self.frame != "repeat":
            return ""
        return f"{_count(self.params)} params" if self.params else ""


class _Fork(_Node):
    """Branches side by side, joined by ``op``'s junction (merges.py: ⊕ add, ⊗ gate,
    the concat bar)."""

    def __init__(self, op: str, branches: list, out: tuple):
        self.op, self.branches, self.out = op, branches, out
        self.junction = MERGES[op].junction

    def key(self):
        return ("fork", self.op, tuple(b.key() for b in self.branches))

    def columns(self):
        """Each branch's measure, its axis x relative to the fork's left, and the fork's
        own axis (the ⊕ under the first layered branch; the concat bar's middle)."""
        ms, axes, x = [], [], 0
        for b in self.branches:
            m = b.measure()
            if self.junction == "concat" or (self.junction == "mul" and b.out != self.out):
                m = _M(m.l, max(m.r, EDGE_DX + text_width(_show(b.out), F_EDGE) + 4), m.h,
                       m.top_in, m.bot_out, m.arrow)
            ms.append(m)
            axes.append(x + m.l)
            x += m.l + m.r + COL_GAP
        width = x - COL_GAP
        if self.junction == "add":  # under the first branch that is not the shortcut
            first = next((i for i, b in enumerate(self.branches)
                          if not (len(b.items) == 1 and isinstance(b.items[0], _Ident))), 0)
            axis = axes[first]
        elif self.junction == "mul":  # under the branch that is gated
            axis = axes[next((i for i, b in enumerate(self.branches) if b.out == self.out), 0)]
        else:
            axis = (axes[0] + axes[-1]) / 2
        return ms, axes, width, axis

    def _measure(self) -> _M:
        ms, axes, width, axis = self.columns()
        l, r = axis, width - axis
        if self.junction == "concat":
            bar = text_width("concat", F_SMALL) / 2 + 10
            l, r = max(l, bar), max(r, bar)
        h = SPLIT + max(m.h for m in ms) + EXIT + (BAR_H if self.junction == "concat"
                                                   else 2 * MERGE_R)
        return _M(l, r, h, 0, 0, arrow=False)


def _seq_measure(parts: list) -> _M:
    items = [x for p in parts for x in p]
    ms = [x.measure() for x in items]
    l = max(m.l for m in ms)
    r = max(m.r for m in ms)
    for x in items[:-1]:
        r = max(r, EDGE_DX + text_width(_show(x.out), F_EDGE) + 4)
    h = sum(m.h for m in ms) + GAP * (len(items) - len(parts)) + SEP_GAP * (len(parts) - 1)
    return _M(l, r, h, ms[0].top_in, ms[-1].bot_out, ms[0].arrow)


# --- from the checked graph to the display tree --------------------------------------


def _count(n: int) -> str:
    """A parameter count: exact below a million, else 2.36 M."""
    if n < 1_000_000:
        return f"{n:,}"
    return f"{n / 1e6:.2f} M"


def _tokens(layer: CLayer) -> list:
    """The box title as text tokens with separators between them (odd positions), so
    that the copies of a repeat can be merged argument by argument: the kind's own
    (patternnet/kinds/)."""
    return LAYERS[layer.kind].title(dict(layer.args))


def _tip(layer: CLayer, extra: str = "") -> str:
    lines = [layer.path + extra, describe(layer)]
    if layer.kind != "INPUT":
        lines.append(f"{fmt_shape(layer.in_shape)} -> {fmt_shape(layer.out_shape)}")
    lines.append(f"{layer.params:,} params, {layer.macs:,} MACs")
    return "\n".join(lines)


def _out(node) -> Optional[tuple]:
    """The shape leaving ``node``, None for an empty one."""
    if isinstance(node, CLayer):
        return node.out_shape
    if isinstance(node, CBranches):
        return node.out_shape
    items = node.items if isinstance(node, CSeq) else node.copies
    for x in reversed(items):
        s = _out(x)
        if s is not None:
            return s
    return None


def _block_name(seq: CSeq, depth: int) -> Optional[str]:
    """The block that ``seq`` is the body of, if it is one: every layer in it sits one
    block call deeper than ``depth``, in the same call."""
    leaves = list(layers_in(seq))
    if not leaves:
        return None
    first = leaves[0].path.split(".")
    if len(first) < depth + 2:
        return None
    head = first[: depth + 1]
    for leaf in leaves:
        parts = leaf.path.split(".")
        if len(parts) < depth + 2 or parts[: depth + 1] != head:
            return None
    trace = leaves[0].trace
    if len(trace) > depth:
        return trace[depth].name
    return re.sub(r"\d+$", "", head[-1]) or head[-1]


class _Builder:
    def __init__(self, expand: bool, source: Optional[str]):
        self.expand, self.source = expand, source

    def items(self, seq: CSeq, depth: int) -> list:
        out = []
        for node in seq.items:
            out.extend(self.node(node, depth))
        return out

    def node(self, node, depth: int) -> list:
        if isinstance(node, CLayer):
            return [self.layer(node)]
        if isinstance(node, CRepeat):
            return self.repeat(node, depth)
        if isinstance(node, CBranches):
            return [self.fork(node, depth)]
        while len(node.items) == 1 and isinstance(node.items[0], CSeq):
            node = node.items[0]
        name = _block_name(node, depth)
        if name is None:
            return self.items(node, depth)       # e.g. the body of a `?`: no frame
        inner = self.items(node, depth + 1)
        if len(inner) == 1 and isinstance(inner[0], _Box):
            return inner                           # a one-layer block needs no frame
        if not inner:
            return []
        return [_Group("block", self.call(name, node, depth), [inner], inner[-1].out)]

    def call(self, name: str, seq: CSeq, depth: int) -> str:
        """The block call as written (``stage(128, 4)``) where the source is known."""
        if self.source is None:
            return name
        leaf = next(layers_in(seq))
        if len(leaf.trace) <= depth:
            return name
        span = leaf.trace[depth].span
        text = " ".join(self.source[span.start:span.end].split())
        if not text.startswith(name) or len(text) > 60:
            return name
        return text

    def layer(self, layer: CLayer):
        out = (fmt_shape(layer.out_shape),)
        if layer.kind == "SKIP" and not dict(layer.args).get("project"):
            return _Ident(out, _tip(layer))
        sub = [(_count(layer.params),), ("params",)] if layer.params else []
        tokens = [t if i % 2 else (t,) for i, t in enumerate(_tokens(layer))]
        return _Box(layer.kind, tokens, sub, out, _tip(layer))

    def repeat(self, rep: CRepeat, depth: int) -> list:
        copies = [self.node(c, depth) for c in rep.copies]
        copies = [c for c in copies if c]
        if not copies:
            return []
        n = len(rep.copies)
        out = (fmt_shape(_out(rep)),)
        params = sum(l.params for l in layers_in(rep))
        if not self.expand:
            merged = _merge_lists(copies)
            if merged is not None:
                return [_Group("repeat", "", [merged], out, n, params)]
        return [_Group("repeat", "", copies, out, n, params)]

    def fork(self, br: CBranches, depth: int):
        branches = []
        for b in br.branches:
            items = self.node(b, depth)
            branches.append(_Group(None, "", [items], items[-1].out if items else ("",)))
        return _Fork(br.op, branches, (fmt_shape(br.out_shape),))


def _show(values: tuple) -> str:
    """Variants of one text, one per copy, as one text: ``32→64→64`` up to four
    copies; past four, runs of equal values count once (``32→64→128`` for six copies
    in pairs) and past four runs, ``first→…→last``."""
    if all(v == values[0] for v in values):
        return values[0]
    if len(values) <= 4:
        return "→".join(values)
    runs = [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]
    if len(runs) <= 4:
        return "→".join(runs)
    return f"{runs[0]}→…→{runs[-1]}"


def _cat(values: list) -> tuple:
    return tuple(v for variants in values for v in variants)


def _merge(nodes: list):
    """The copies ``nodes`` of one item, drawn as one; None where their shapes differ."""
    first = nodes[0]
    if any(n.key() != first.key() for n in nodes):
        return None
    outs = _cat([n.out for n in nodes])
    if isinstance(first, _Box):
        tokens = [_cat([n.tokens[i] for n in nodes]) if i % 2 == 0 else first.tokens[i]
                  for i in range(len(first.tokens))]
        sub = [_cat([n.sub[i] for n in nodes]) for i in range(len(first.sub))]
        head, rest = first.tip.split("\n", 1)
        tip = f"{head} (the first of {len(nodes)} copies)\n{rest}"
        return _Box(first.kind, tokens, sub, outs, tip)
    if isinstance(first, _Ident):
        return _Ident(outs, first.tip)
    if isinstance(first, _Group):
        parts = []
        for i in range(len(first.parts)):
            part = _merge_lists([n.parts[i] for n in nodes])
            if part is None:
                return None
            parts.append(part)
        return _Group(first.frame, first.label, parts, outs, first.count,
                      first.params if all(n.params == first.params for n in nodes) else 0)
    if isinstance(first, _Fork):
        branches = [_merge([n.branches[i] for n in nodes]) for i in range(len(first.branches))]
        if any(b is None for b in branches):
            return None
        return _Fork(first.op, branches, outs)
    return None


def _merge_lists(lists: list) -> Optional[list]:
    if any(len(x) != len(lists[0]) for x in lists):
        return None
    out = []
    for column in zip(*lists):
        m = _merge(list(column))
        if m is None:
            return None
        out.append(m)
    return out


# --- drawing ---------------------------------------------------------------------------


def _n(v: float) -> str:
    """A coordinate: whole numbers plainly, others with one decimal."""
    v = round(v, 1)
    return str(int(v)) if v == int(v) else f"{v:.1f}"


def _esc(s: str) -> str:
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


class _Canvas:
    def __init__(self):
        self.frames: list[str] = []   # drawn first: frame backgrounds
        self.edges: list[str] = []
        self.nodes: list[str] = []    # boxes and every label, on top

    def text(self, x, y, s, size, fill=INK, anchor="start", weight=None, style=None,
             into=None, cls=None):
        attrs = f'x="{_n(x)}" y="{_n(y)}" font-size="{size}" fill="{fill}"'
        if anchor != "start":
            attrs += f' text-anchor="{anchor}"'
        if weight:
            attrs += f' font-weight="{weight}"'
        if style:
            attrs += f' font-style="{style}"'
        if cls:
            attrs += f' class="{cls}"'
        (self.nodes if into is None else into).append(f"<text {attrs}>{_esc(s)}</text>")

    def line(self, points, arrow=False, dash=None, color=EDGE, width=1.3, into=None):
        d = " ".join(f"{_n(x)},{_n(y)}" for x, y in points)
        extra = ' marker-end="url(#arrow)"' if arrow else ""
        if dash:
            extra += f' stroke-dasharray="{dash}"'
        (self.edges if into is None else into).append(
            f'<polyline class="edge" points="{d}" fill="none" stroke="{color}" '
            f'stroke-width="{width}"{extra}/>')


def _draw(node, x: float, y: float, c: _Canvas) -> None:
    """Draw ``node`` with its axis at ``x`` and its top at ``y``."""
    m = node.measure()
    if isinstance(node, _Box):
        fill, stroke, _ = FAMILIES[node.family]
        w = m.l + m.r
        c.nodes.append(f'<g class="node {node.family}" data-kind="{node.kind}">'
                       f'<title>{_esc(node.tip)}</title>'
                       f'<rect x="{_n(x - m.l)}" y="{_n(y)}" width="{_n(w)}" height="{_n(m.h)}" '
                       f'rx="5" fill="{fill}" stroke="{stroke}" stroke-width="1.2"/>')
        if node.sub:
            c.text(x, y + 15, node.title, F_BOX, anchor="middle")
            c.text(x, y + 29, node.sub_text, F_SMALL, fill=MUTED, anchor="middle")
        else:
            c.text(x, y + 16, node.title, F_BOX, anchor="middle")
        c.nodes.append("</g>")
    elif isinstance(node, _Ident):
        c.line([(x, y), (x, y + m.h)])
        c.nodes.append(f'<g class="node identity"><title>{_esc(node.tip)}</title>')
        c.text(x + EDGE_DX, y + 13, "identity", F_SMALL, fill=FAMILIES["skip"][1],
               style="italic")
        c.nodes.append("</g>")
    elif isinstance(node, _Group):
        top = 0
        if node.frame:
            _frame(node, m, x, y, c)
            top = FRAME_TOP[node.frame]
        _draw_seq(node.parts, x, y + top, x - m.l, x + m.r, c)
    elif isinstance(node, _Fork):
        _draw_fork(node, x, y, c)


def _frame(g: _Group, m: _M, x, y, c: _Canvas) -> None:
    left, w = x - m.l, m.l + m.r
    if g.frame == "repeat":
        c.frames.append(f'<g class="frame repeat" data-count="{g.count}" '
                        f'data-expanded="{"true" if len(g.parts) > 1 else "false"}">'
                        f'<rect x="{_n(left)}" y="{_n(y)}" width="{_n(w)}" height="{_n(m.h)}" '
                        f'rx="8" fill="#64748b" fill-opacity="0.06" stroke="{FRAME_INK}" '
                        f'stroke-width="1.3"/>')
        badge = g.badge()
        bw = text_width(badge, F_FRAME) + 12
        bx = left + w - 8 - bw
        c.frames.append(f'<rect x="{_n(bx)}" y="{_n(y + 6)}" width="{_n(bw)}" height="16" '
                        f'rx="8" fill="#334155"/>')
        c.text(bx + bw / 2, y + 18, badge, F_FRAME, fill="#ffffff", anchor="middle",
               weight="bold", into=c.frames, cls="badge")
        if g.note():
            c.text(left + 8, y + 17, g.note(), F_SMALL, fill=MUTED, into=c.frames)
        c.frames.append("</g>")
    else:
        c.frames.append(f'<g class="frame block" data-block="{_esc(g.label)}">'
                        f'<rect x="{_n(left)}" y="{_n(y)}" width="{_n(w)}" height="{_n(m.h)}" '
                        f'rx="6" fill="none" stroke="{FRAME_INK}" stroke-width="1" '
                        f'stroke-dasharray="4 3"/>')
        if g.label_right:
            c.text(left + w - 8, y + 14, g.label, F_FRAME, fill=MUTED, style="italic",
                   anchor="end", into=c.frames)
        else:
            c.text(left + 8, y + 14, g.label, F_FRAME, fill=MUTED, style="italic", into=c.frames)
        c.frames.append("</g>")


def _draw_seq(parts: list, x, y, left, right, c: _Canvas) -> float:
    """Draw the items of ``parts`` down from ``y``; returns the bottom."""
    items = [(p, it) for p, part in enumerate(parts) for it in part]
    for i, (p, item) in enumerate(items):
        m = item.measure()
        _draw(item, x, y, c)
        bottom = y + m.h
        if i + 1 == len(items):
            return bottom
        nxt = items[i + 1]
        gap = GAP if nxt[0] == p else SEP_GAP
        nm = nxt[1].measure()
        c.line([(x, bottom - m.bot_out), (x, bottom + gap + nm.top_in)], arrow=nm.arrow)
        c.text(x + EDGE_DX, bottom + GAP / 2 + 4, _show(item.out), F_EDGE, fill=MUTED,
               cls="shape")
        if gap == SEP_GAP:
            sy = bottom + GAP + 1
            c.frames.append(f'<line class="copy-separator" x1="{_n(left + 4)}" y1="{_n(sy)}" '
                            f'x2="{_n(right - 4)}" y2="{_n(sy)}" stroke="{FRAME_INK}" '
                            f'stroke-width="1" stroke-dasharray="2 3"/>')
        y = bottom + gap
    return y


def _draw_fork(f: _Fork, x, y, c: _Canvas) -> None:
    ms, axes, width, axis = f.columns()
    left = x - axis
    xs = [left + a for a in axes]
    top = y + SPLIT
    bus = y + 8
    c.line([(x, y), (x, bus)])
    c.line([(min(xs + [x]), bus), (max(xs + [x]), bus)])
    c.edges.append(f'<circle cx="{_n(x)}" cy="{_n(bus)}" r="2.5" fill="{EDGE}"/>')
    heights = max(m.h for m in ms)
    merge = top + heights + EXIT
    c.nodes.append(f'<g class="fork" data-op="{_esc(f.op)}" data-branches="{len(xs)}">')
    for b, m, bx in zip(f.branches, ms, xs):
        c.line([(bx, bus), (bx, top + m.top_in)], arrow=m.arrow)
        c.nodes.append(f'<g class="branch" data-x="{_n(bx)}">')
        _draw(b, bx, top, c)
        c.nodes.append("</g>")
        exit_y = top + m.h - m.bot_out
        if f.junction != "concat":
            cy = merge + MERGE_R
            if bx == x:
                c.line([(bx, exit_y), (bx, merge)], arrow=True)
            else:
                side = MERGE_R if bx > x else -MERGE_R
                c.line([(bx, exit_y), (bx, cy), (x + side, cy)], arrow=True)
        else:
            c.line([(bx, exit_y), (bx, merge)], arrow=True)
        if f.junction == "concat" or (f.junction == "mul" and b.out != f.out):
            c.text(bx + EDGE_DX, merge - 7, _show(b.out), F_EDGE, fill=MUTED, cls="shape")
    if f.junction != "concat":
        cy, r = merge + MERGE_R, 3.6 if f.junction == "mul" else 5
        mark = (f"M{_n(x - r)},{_n(cy - r)}L{_n(x + r)},{_n(cy + r)}M{_n(x - r)},{_n(cy + r)}"
                f"L{_n(x + r)},{_n(cy - r)}" if f.junction == "mul" else
                f"M{_n(x - r)},{_n(cy)}H{_n(x + r)}M{_n(x)},{_n(cy - r)}V{_n(cy + r)}")
        c.nodes.append(f'<g class="merge {f.junction}"><circle cx="{_n(x)}" cy="{_n(cy)}" '
                       f'r="{MERGE_R}" fill="#ffffff" stroke="{EDGE}" stroke-width="1.4"/>'
                       f'<path d="{mark}" stroke="{EDGE}" stroke-width="1.6"/></g>')
    else:
        half = text_width("concat", F_SMALL) / 2 + 10
        x0 = min(min(xs) - 14, x - half)
        x1 = max(max(xs) + 14, x + half)
        c.nodes.append(f'<g class="merge concat"><rect x="{_n(x0)}" y="{_n(merge)}" '
                       f'width="{_n(x1 - x0)}" height="{BAR_H}" rx="4" fill="#e2e8f0" '
                       f'stroke="{EDGE}" stroke-width="1.2"/>')
        c.text(x, merge + 13, "concat", F_SMALL, fill=INK, anchor="middle")
        c.nodes.append("</g>")
    c.nodes.append("</g>")


# --- the whole picture -----------------------------------------------------------------


def _graph(net: CheckedNet, expand: bool, source: Optional[str]) -> _Group:
    items = _Builder(expand, source).items(net.graph, 0)
    items.append(_Box("OUTPUT", [("OUTPUT",)], [], ("",), "the network's output, "
                      + fmt_shape(net.output_shape)))
    return _Group(None, "", [items], ("",))


def draw_svg(checked: CheckedNet, *, expand: bool = False, source: Optional[str] = None,
             title: Optional[str] = None) -> str:
    """The diagram of ``checked`` (a ``CheckedNet`` from ``patternnet.check``) as SVG text.

    Repeats are drawn once in a frame marked ``×n`` unless ``expand`` is true, which
    draws every copy.  ``source``, the text of the file checked, names block frames
    with the call as written (``stage(128, 4)``) instead of the block's name.  ``title``
    replaces the heading (default: the network's name and, for a member of a family, its
    binding).  Deterministic: equal inputs give equal text.
    """

    root = _graph(checked, expand, source)
    m = root.measure()
    head = title
    if head is None:
        head = checked.name or _stem(checked.file) or checked.label
        if checked.bindings:
            head += " (" + ", ".join(f"{k}={v}" for k, v in checked.bindings) + ")"
    t = checked.totals
    info = (f"{fmt_shape(checked.input_shape)} → {fmt_shape(checked.output_shape)} · "
            f"{t.params:,} params · {human(t.macs)} MACs · {len(checked.layers)} layers")
    repeats = any(isinstance(x, _Group) and x.frame == "repeat" for x in _walk(root))
    hint = ("" if not repeats else "every copy of each repeat is drawn" if expand else
            "×n: a group drawn once and repeated n times (--expand draws every copy)")
    families = [f for f in FAMILIES if any(
        getattr(x, "family", None) == f for x in _walk(root))]
    legend_w = sum(14 + text_width(FAMILIES[f][2], F_SMALL) + 14 for f in families)
    head_h = 98
    width = max(m.l + m.r, text_width(head, F_HEAD), text_width(info, F_INFO),
                text_width(hint, F_SMALL), legend_w) + 2 * MARGIN
    height = head_h + m.h + MARGIN
    x = MARGIN + max(m.l, (width - 2 * MARGIN - m.l - m.r) / 2 + m.l)
    x = round(x)
    c = _Canvas()
    _draw(root, x, head_h, c)
    width = math.ceil(width)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{_n(height)}" '
        f'viewBox="0 0 {width} {_n(height)}" font-family="{FONT}">',
        f"<title>{_esc(head)}</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,1 L9,5 L0,9 z" '
        f'fill="{EDGE}"/></marker></defs>',
        '<rect width="100%" height="100%" fill="#ffffff"/>',
        '<g class="heading">',
    ]
    hc = _Canvas()
    hc.text(MARGIN, MARGIN + 14, head, F_HEAD, weight="bold")
    hc.text(MARGIN, MARGIN + 34, info, F_INFO, fill=INK)
    if hint:
        hc.text(MARGIN, MARGIN + 50, hint, F_SMALL, fill=MUTED)
    lx = MARGIN
    for f in families:
        fill, stroke, name = FAMILIES[f]
        hc.nodes.append(f'<rect x="{lx}" y="{MARGIN + 58}" width="10" height="10" rx="2" '
                        f'fill="{fill}" stroke="{stroke}"/>')
        hc.text(lx + 14, MARGIN + 67, name, F_SMALL, fill=MUTED)
        lx += 14 + text_width(name, F_SMALL) + 14
    out += hc.nodes
    out.append("</g>")
    out += c.frames + c.edges + c.nodes
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _stem(file: str) -> str:
    """``examples/cs231n.pn`` -> ``cs231n``; nothing for ``<string>``."""
    if not file or file.startswith("<"):
        return ""
    base = file.replace("\\", "/").rsplit("/", 1)[-1]
    return base[:-3] if base.endswith(".pn") else base


def _walk(node):
    yield node
    if isinstance(node, _Group):
        for x in node.items:
            yield from _walk(x)
    elif isinstance(node, _Fork):
        for b in node.branches:
            yield from _walk(b)
