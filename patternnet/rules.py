"""Shape rules: one function per layer kind, ``rule(in_shape, args) -> Out``.

Images are ``(H, W, C)`` and vectors ``(D,)``, batch implicit.  ``args`` holds every
argument with defaults filled in and sizes as pairs.  Conventions (docs/language.md):

* integer padding and ``ceil`` follow PyTorch; ``same`` is XLA's SAME (output
  ``ceil(W/S)``, the extra padding on the bottom/right);
* MACs count the multiply-accumulates of CONV, FC and SKIP projections only (what
  torchvision's published "GFLOPS" count); FLOPs are 2 x MACs, reported apart;
* BN's running mean and variance are state, not parameters (as torchvision).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Optional, Sequence

from .record import field, record


class RuleError(Exception):
    def __init__(self, code: str, message: str, help: Optional[str] = None,
                 notes: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.code, self.message, self.help, self.notes = code, message, help, tuple(notes)


@record(frozen=False)
class Out:
    out_shape: tuple
    args: dict
    params: int = 0
    state: int = 0
    macs: int = 0
    window: Optional[tuple] = None      # ((kh, kw), (sh, sw)) for the receptive field
    notes: list = field(default_factory=list)
    lints: list = field(default_factory=list)  # (code, message, help)


def fmt_shape(shape: Optional[Sequence[int]]) -> str:
    return "x".join(str(d) for d in shape) if shape else "()"


def _image(shape, kind: str, what: str = "an image"):
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


def _spatial(kind, shape, kernel, stride, dilation, pad, ceil=False):
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


def conv(shape: tuple[int, ...], a: dict[str, Any]) -> Out:
    _image(shape, "CONV")
    h, w, c = shape
    k, groups = a["filters"], a["groups"]
    if c % groups or k % groups:
        raise RuleError("E303", f"CONV groups={groups} must divide both the input channels ({c}) "
                        f"and the filters ({k})", help="pick groups that divide both")
    oh, ow, pads, lints = _spatial("CONV", shape, a["kernel"], a["stride"], a["dilation"], a["pad"])
    kh, kw = a["kernel"]
    params = kh * kw * (c // groups) * k + (k if a["bias"] else 0)
    macs = oh * ow * k * kh * kw * (c // groups)
    eff = tuple(d * (kk - 1) + 1 for d, kk in zip(a["dilation"], a["kernel"]))
    out = Out((oh, ow, k), {**a, "padding": pads}, params, 0, macs, (eff, a["stride"]))
    out.lints = [("E320", msg, "make the input size fit (e.g. 227 instead of 224 for "
                  "AlexNet's 11x11/4), or use p=same") for msg in lints]
    return out


def _pool(kind):
    def rule(shape, a):
        _image(shape, kind)
        pad = a["pad"]
        if not isinstance(pad, str):
            for p, k in zip(pad, a["window"]):
                if p > k // 2:
                    raise RuleError("E307", f"{kind} padding {p} is more than half its window "
                                    f"{k}", help="PyTorch rejects this: use pad <= window // 2")
        oh, ow, pads, lints = _spatial(kind, shape, a["window"], a["stride"], (1, 1), pad,
                                       a["ceil"])
        out = Out((oh, ow, shape[2]), {**a, "padding": pads}, window=(a["window"], a["stride"]))
        out.lints = [("E321", msg, "use ceil=true to keep the last partial window, or "
                      "change the window/stride") for msg in lints]
        return out
    return rule


def gap(shape: tuple[int, ...], a: dict[str, Any]) -> Out:
    _image(shape, "GAP")
    return Out((shape[2],), a, window=((shape[0], shape[1]), (shape[0], shape[1])))


def flatten(shape: tuple[int, ...], a: dict[str, Any]) -> Out:
    if len(shape) == 1:
        return Out(shape, a, notes=["already a vector"])
    return Out((shape[0] * shape[1] * shape[2],), a)


def fc(shape: tuple[int, ...], a: dict[str, Any]) -> Out:
    d = math.prod(shape)
    units = a["units"]
    out = Out((units,), a, d * units + (units if a["bias"] else 0), 0, d * units)
    if len(shape) == 3:
        out.notes.append(f"flattens {fmt_shape(shape)} to {d:,}")
        out.window = ((shape[0], shape[1]), (shape[0], shape[1]))
    return out


def same_shape(shape: tuple[int, ...], a: dict[str, Any]) -> Out:
    return Out(shape, a)


def bn(shape: tuple[int, ...], a: dict[str, Any]) -> Out:
    c = shape[-1]
    return Out(shape, a, 2 * c, 2 * c)


def lrn(shape: tuple[int, ...], a: dict[str, Any]) -> Out:
    _image(shape, "LRN")
    return Out(shape, a)


def skip(shape: tuple[int, ...], a: dict[str, Any]) -> Out:
    """Identity when ``target`` equals the input, else 1x1 CONV(bias=false) -> BN."""
    target = a["target"]
    if target == shape:
        return Out(shape, {"project": False, "stride": (1, 1), "filters": shape[-1]})
    if len(shape) != 3 or len(target) != 3:
        raise RuleError("E306", f"SKIP cannot project {fmt_shape(shape)} to {fmt_shape(target)}",
                        help="SKIP projects images; for vectors make the branches agree")
    (h, w, c), (th, tw, tc) = shape, target
    sh, sw = -(-h // th), -(-w // tw)
    if (h - 1) // sh + 1 != th or (w - 1) // sw + 1 != tw:
        raise RuleError("E306", f"SKIP cannot project {fmt_shape(shape)} to {fmt_shape(target)} "
                        "with a strided 1x1 convolution", help="the other branch must shrink H "
                        "and W by a whole factor")
    params = c * tc + 2 * tc
    return Out(target, {"project": True, "stride": (sh, sw), "filters": tc}, params, 2 * tc,
               th * tw * tc * c, ((1, 1), (sh, sw)),
               notes=[f"projects with 1x1 CONV({tc}, s={sh}, bias=false) -> BN"])


SHAPE_RULES: dict[str, Callable] = {
    "CONV": conv, "POOL": _pool("POOL"), "AVGPOOL": _pool("AVGPOOL"), "GAP": gap,
    "FLATTEN": flatten, "FC": fc, "BN": bn, "LRN": lrn, "SKIP": skip,
    **{k: same_shape for k in ("RELU", "TANH", "SIGMOID", "GELU", "SOFTMAX", "LRELU", "ELU",
                               "DROPOUT", "ID")},
}
