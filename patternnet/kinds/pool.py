"""Pooling: POOL (max), AVGPOOL, GAP."""

from __future__ import annotations

from typing import Callable

from ..rules import Out, RuleError, need_image, spatial
from .base import ArgSpec, LayerSpec, one, pad_text, size, stride_tokens

_POOL_ARGS = (
    ArgSpec("window", "size2", 2, doc="pooling window"),
    ArgSpec("stride", "size2", None, ("s",), "step; defaults to the window"),
    ArgSpec("pad", "pad", 0, ("p",), "zero padding (`same`, `valid`, n or (ph, pw))"),
    ArgSpec("ceil", "bool", False, doc="PyTorch ceil_mode: keep a last partial window"),
)


def pool_rule(kind: str) -> Callable[[tuple, dict], Out]:
    def rule(shape: tuple, a: dict) -> Out:
        need_image(shape, kind)
        pad = a["pad"]
        if not isinstance(pad, str):
            for p, k in zip(pad, a["window"]):
                if p > k // 2:
                    raise RuleError("E307", f"{kind} padding {p} is more than half its window "
                                    f"{k}", help="PyTorch rejects this: use pad <= window // 2")
        oh, ow, pads, lints = spatial(kind, shape, a["window"], a["stride"], (1, 1), pad,
                                      a["ceil"])
        out = Out((oh, ow, shape[2]), {**a, "padding": pads}, window=(a["window"], a["stride"]))
        out.lints = [("E321", msg, "use ceil=true to keep the last partial window, or "
                      "change the window/stride") for msg in lints]
        return out
    return rule


def pool_summary(a: dict) -> str:
    parts = [size(a["window"]), f"s={one(a['stride'])}", f"p={pad_text(a['pad'])}"]
    if a["ceil"]:
        parts.append("ceil=true")
    return ", ".join(parts)


def pool_tokens(a: dict) -> list:
    return [" ", size(a["window"])] + stride_tokens(a["stride"])


def gap_rule(shape: tuple, a: dict) -> Out:
    need_image(shape, "GAP")
    return Out((shape[2],), a, window=((shape[0], shape[1]), (shape[0], shape[1])))


POOL = LayerSpec("POOL", _POOL_ARGS, ("MAXPOOL",), "max pooling", rule=pool_rule("POOL"),
                 summary=pool_summary, tokens=pool_tokens, family="pool")
AVGPOOL = LayerSpec("AVGPOOL", _POOL_ARGS, doc="average pooling; the divisor counts padding",
                    rule=pool_rule("AVGPOOL"), summary=pool_summary, tokens=pool_tokens,
                    family="pool")
GAP = LayerSpec("GAP", doc="global average pooling, HxWxC -> C", rule=gap_rule, family="pool")

KINDS = (POOL, AVGPOOL, GAP)
