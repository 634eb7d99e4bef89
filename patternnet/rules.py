"""The arithmetic the shape rules share: ``Out`` (what a rule returns), ``RuleError``,
output sizes along an axis with PyTorch's and XLA's paddings.  Each kind's own rule
lives with the rest of its definition (patternnet/kinds/).

Images are ``(H, W, C)`` and vectors ``(D,)``, batch implicit.  ``args`` holds every
argument with defaults filled in and sizes as pairs.  Conventions (docs/language.md):

* integer padding and ``ceil`` follow PyTorch; ``same`` is XLA's SAME (output
  ``ceil(W/S)``, the extra padding on the bottom/right);
* MACs count the multiply-accumulates of CONV, FC and SKIP projections only (what
  torchvision's published "GFLOPS" count); FLOPs are 2 x MACs, reported apart;
* BN's running mean and variance are state, not parameters (as torchvision).
"""

from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

from .record import field, record


class RuleError(Exception):
    def __init__(self, code: str, message: str, help: Optional[str] = None,
                 notes: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.code, self.message, self.help, self.notes = code, message, help, tuple(notes)


@record(frozen=False)
class Out:
    """What a shape rule returns (parameters and state are counted from the kind's
    ``weights``, not here)."""
    out_shape: tuple
    args: dict
    macs: int = 0
    window: Optional[tuple] = None      # ((kh, kw), (sh, sw)) for the receptive field
    zoom: tuple = (1, 1)                # an upsampling's factor: the jump shrinks by it
    notes: list = field(default_factory=list)
    lints: list = field(default_factory=list)  # (code, message, help)


def fmt_shape(shape: Optional[Sequence[int]]) -> str:
    return "x".join(str(d) for d in shape) if shape else "()"


def divides(kind: str, what: str, n: int, channels: int, help: str = "") -> None:
    """E303 when ``n`` (groups, parts) does not divide ``channels``, with the quotient and
    the divisors that would."""
    if channels % n:
        divisors = ", ".join(str(d) for d in range(1, channels + 1) if channels % d == 0)
        if len(divisors) > 60:
            divisors = divisors[:60].rsplit(",", 1)[0] + ", ..."
        raise RuleError("E303", f"{kind} {what}={n} must divide the {channels:,} channels: "
                        f"{channels:,} / {n} = {channels / n:.4g}",
                        help=help or f"pick a divisor of {channels:,}: {divisors}")


def need_image(shape: tuple, kind: str, what: str = "an image") -> None:
    if len(shape) != 3:
        raise RuleError("E302", f"{kind} needs {what} (HxWxC), but its input is a vector of "
                        f"{shape[0]:,}",
                        help=f"move {kind} before the FC/GAP/FLATTEN that made the vector")


def _same(size: int, stride: int, k_eff: int) -> tuple[int, int, int]:
    """XLA SAME: output ceil(W/S); padding split with the extra on the high side."""
    out = -(-size // stride)
    total = max((out - 1) * stride + k_eff - size, 0)
    return out, total // 2, total - total // 2


def _axis(kind, axis, size, k, s, d, pad, ceil) -> tuple[int, tuple[int, int], Optional[str]]:
    """Output length along one axis, the (lo, hi) padding, and the lint if it does not divide."""
    k_eff = d * (k - 1) + 1
    if pad == "same":
        out, lo, hi = _same(size, s, k_eff)
        return out, (lo, hi), None
    p = 0 if pad == "valid" else pad
    span = size + 2 * p - k_eff
    if ceil:  # PyTorch: round up, but the last window must start inside the input
        out = (span + s - 1) // s + 1
        if out > 0 and (out - 1) * s >= size + p:
            out -= 1
    else:
        out = span // s + 1
    if out <= 0:
        name = "kernel" if kind == "CONV" else "window"
        what = f"{name} {k}" if d == 1 else f"{name} {k} dilated by {d} = {k_eff}"
        left, right = ("⌈", "⌉") if ceil else ("⌊", "⌋")
        raise RuleError("E301", f"{kind} has no output: {axis} = {size}, {what}, stride {s}, "
                        f"padding {p} → {left}({size} − {k_eff} + 2·{p})/{s}{right} + 1 = {out}",
                        help="use p=same on the layers before it, a smaller window or stride, "
                        "fewer copies, or `?` to drop it where it does not fit")
    # rows of the real input after the last window (leftover padding is harmless)
    dropped = size + p - (out - 1) * s - k_eff
    lint = None
    if not ceil and dropped > 0:
        rows = f"{dropped} row{'s' if dropped > 1 else ''}/column{'s' if dropped > 1 else ''}"
        lint = (f"({size} − {k_eff} + 2·{p})/{s} + 1 = {span / s + 1:g} is not a whole number: "
                f"{kind} drops {rows} of its input along {axis}")
    return out, (p, p), lint


def spatial(kind: str, shape: tuple, kernel: tuple, stride: tuple, dilation: tuple, pad: Any,
            ceil: bool = False) -> tuple[int, int, tuple, list[str]]:
    """(out H, out W, per-side padding, lints) of a windowed layer over an image."""
    (h, w, _) = shape
    ph = pad if isinstance(pad, str) else pad[0]
    pw = pad if isinstance(pad, str) else pad[1]
    oh, pads_h, lint_h = _axis(kind, "H", h, kernel[0], stride[0], dilation[0], ph, ceil)
    ow, pads_w, lint_w = _axis(kind, "W", w, kernel[1], stride[1], dilation[1], pw, ceil)
    if lint_h and lint_w and lint_h.replace(" H", "") == lint_w.replace(" W", ""):
        lints = [lint_h[:-len(" H")] + " H and W"]
    else:
        lints = [l for l in (lint_h, lint_w) if l]
    return oh, ow, (pads_h, pads_w), lints
