"""How branches join: one ``MergeSpec`` per operator, as ``kinds/`` holds one ``LayerSpec``
per layer kind.

    (a + b)   add: the branches' outputs summed; SKIP matches the other branch
    (a | b)   concat: stacked on channels
    (a * b)   gate: multiplied elementwise, a smaller branch broadcast over the larger
              (a C-vector or a 1x1xC image scales each channel: squeeze-excitation)

Each spec holds the merged shape's rule, whether SKIP may stand in a branch, and the
diagram's junction.  The backend adds one combining function per operator
(backend/merges.py).  Pure Python: the checker and the diagram read these without JAX.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

from .record import record
from .rules import RuleError, fmt_shape


class BranchError(RuleError):
    """A merge rule's complaint about one branch (``index``), which the checker locates."""

    def __init__(self, index: int, code: str, message: str, help: Optional[str] = None) -> None:
        super().__init__(code, message, help)
        self.index = index


@record
class MergeSpec:
    """One way branches join.  ``rule(shapes) -> shape`` gives the merged shape or raises
    ``BranchError``; ``takes_skip``: a SKIP branch takes the shape of the others;
    ``junction``: how the diagram draws the join ("add", "mul" or "concat")."""
    op: str
    name: str
    doc: str
    rule: Callable[[Sequence[tuple]], tuple]
    takes_skip: bool = False
    junction: str = "concat"


def _channel_gate(a: tuple, b: tuple) -> bool:
    """Whether one of two shapes is an image and the other a vector (or 1x1 image) of its
    channels: what a squeeze-excitation gate computes."""
    for img, vec in ((a, b), (b, a)):
        if len(img) == 3 and (vec == (img[2],) or vec == (1, 1, img[2])) and img != vec:
            return True
    return False


def add_rule(shapes: Sequence[tuple]) -> tuple:
    target = shapes[0]
    for i, got in enumerate(shapes):
        if got == target:
            continue
        if _channel_gate(target, got):
            hint = ("to scale the image channel by channel by the vector (squeeze-excitation), "
                    "multiply instead: `(ID * GAP -> FC(s) -> RELU -> FC(c) -> SIGMOID)`")
        else:
            hint = ("make both branches produce the same shape, or use SKIP, which projects "
                    "with a 1x1 CONV -> BN when the shapes differ")
        raise BranchError(i, "E304", f"`+` needs branches of one shape: {fmt_shape(target)} "
                          f"and {fmt_shape(got)}", help=hint)
    return target


def concat_rule(shapes: Sequence[tuple]) -> tuple:
    first = shapes[0]
    for i, got in enumerate(shapes):
        if len(got) != len(first) or got[:-1] != first[:-1]:
            raise BranchError(
                i, "E305", f"`|` concatenates on channels, so the branches' other dimensions "
                f"must agree: {fmt_shape(first)} and {fmt_shape(got)}",
                help="give every branch the same stride and padding (p=same keeps sizes)")
    return first[:-1] + (sum(s[-1] for s in shapes),)


def _as_image(shape: tuple) -> tuple:
    return (1, 1) + shape if len(shape) == 1 else shape


def gate_rule(shapes: Sequence[tuple]) -> tuple:
    """The largest branch (the first, on a tie) is gated by the others, each of whose
    dimensions is 1 or the gated one's; a vector of D gates like a 1x1xD image."""
    rank = max(len(s) for s in shapes)
    carrier = max(range(len(shapes)), key=lambda i: (len(shapes[i]) == rank,
                                                     math.prod(shapes[i]), -i))
    target = shapes[carrier]
    for i, got in enumerate(shapes):
        if i == carrier:
            continue
        t, g = (_as_image(target), _as_image(got)) if rank == 3 else (target, got)
        if all(gd in (1, td) for gd, td in zip(g, t)):
            continue
        raise BranchError(i, "E308", _gate_message(target, got), help=_gate_help(target, got))
    return _as_image(target) if rank == 3 else target


def _gate_message(target: tuple, got: tuple) -> str:
    if len(target) == 3 and len(got) == 1:
        h, w, c = target
        return (f"`*` multiplies each of the {c:,} channels of the {fmt_shape(target)} image "
                f"by one entry of the gate, but the gate is a vector of {got[0]:,}: "
                f"{got[0]:,} ≠ {c:,}")
    if len(target) == 1:
        return (f"`*` multiplies vectors entry by entry, but they have {target[0]:,} and "
                f"{got[0]:,} entries")
    return (f"`*` cannot gate the {fmt_shape(target)} image by {fmt_shape(got)}: each of the "
            f"gate's dimensions must be 1 or the image's")


def _gate_help(target: tuple, got: tuple) -> str:
    if len(target) == 1:
        return f"end the gate branch with `FC({target[0]})`"
    h, w, c = target
    if len(got) == 3 and got[2] in (1, c):
        return (f"a gate image is 1x1 (one factor per channel: pool it with GAP or "
                f"AVGPOOL({h}x{w})) or {h}x{w} like the image (stride 1 and p=same keep it)")
    return (f"end the gate branch with {c:,} units, e.g. `FC({c}) -> SIGMOID` (or "
            f"`CONV({c}, 1)` for a 1x1 gate), or with 1 channel for a {h}x{w}x1 spatial "
            "gate")


ADD = MergeSpec("+", "add", "sum of the branches (residual connection); SKIP in a branch "
                "passes the input through, projected when the shapes differ", add_rule,
                takes_skip=True, junction="add")
CONCAT = MergeSpec("|", "concat", "the branches stacked on channels (Inception)", concat_rule)
GATE = MergeSpec("*", "gate", "the largest branch multiplied elementwise by the others, "
                 "broadcast: a C-vector or 1x1xC image scales each channel "
                 "(squeeze-excitation), an HxWx1 map each position", gate_rule, junction="mul")

#: every merge, by operator
MERGES: dict[str, MergeSpec] = {m.op: m for m in (ADD, CONCAT, GATE)}
