"""Convolutions: CONV."""

from __future__ import annotations

from ..rules import Out, RuleError, need_image, spatial
from .base import CONTEXT, ArgSpec, Init, Inits, LayerSpec, one, pad_text, size, stride_tokens


def conv_rule(shape: tuple, a: dict) -> Out:
    need_image(shape, "CONV")
    h, w, c = shape
    k, groups = a["filters"], a["groups"]
    if c % groups or k % groups:
        raise RuleError("E303", f"CONV groups={groups} must divide both the input channels ({c}) "
                        f"and the filters ({k})", help="pick groups that divide both")
    oh, ow, pads, lints = spatial("CONV", shape, a["kernel"], a["stride"], a["dilation"], a["pad"])
    kh, kw = a["kernel"]
    macs = oh * ow * k * kh * kw * (c // groups)
    eff = tuple(d * (kk - 1) + 1 for d, kk in zip(a["dilation"], a["kernel"]))
    out = Out((oh, ow, k), {**a, "padding": pads}, macs, (eff, a["stride"]))
    out.lints = [("E320", msg, "make the input size fit (e.g. 227 instead of 224 for "
                  "AlexNet's 11x11/4), or use p=same") for msg in lints]
    return out


def conv_weights(shape: tuple, a: dict) -> tuple[Inits, Inits]:
    kh, kw = a["kernel"]
    cin = shape[-1] // a["groups"]
    fan_in = kh * kw * cin
    p = {"w": Init((kh, kw, cin, a["filters"]), "uniform", fan_in)}
    if a["bias"]:
        p["b"] = Init((a["filters"],), "uniform", fan_in)
    return p, None


def conv_summary(a: dict) -> str:
    parts = [str(a["filters"]), size(a["kernel"]), f"s={one(a['stride'])}",
             f"p={pad_text(a['pad'])}"]
    if a["dilation"] != (1, 1):
        parts.append(f"dilation={one(a['dilation'])}")
    if a["groups"] != 1:
        parts.append(f"groups={a['groups']}")
    if not a["bias"]:
        parts.append("bias=false")
    return ", ".join(parts)


def conv_tokens(a: dict) -> list:
    t = [" ", size(a["kernel"]), ", ", str(a["filters"])] + stride_tokens(a["stride"])
    if a["dilation"] != (1, 1):
        t += [", ", "dil " + one(a["dilation"])]
    if a["groups"] != 1:
        t += [", ", f"groups {a['groups']}"]
    return t


CONV = LayerSpec(
    "CONV", (
        ArgSpec("filters", "int", CONTEXT, doc="number of filters (output channels)"),
        ArgSpec("kernel", "size2", 3, doc="filter size F"),
        ArgSpec("stride", "size2", 1, ("s",), "step S"),
        ArgSpec("pad", "pad", "same", ("p",), "zero padding P: same, valid, n or (ph, pw)"),
        ArgSpec("dilation", "size2", 1, doc="spacing D between filter taps"),
        ArgSpec("groups", "int", 1, doc="grouped convolution"),
        ArgSpec("bias", "bool", True, doc="add a learned bias per filter"),
    ), doc="2-D convolution", rule=conv_rule, weights=conv_weights, summary=conv_summary,
    tokens=conv_tokens, family="conv")

KINDS = (CONV,)
