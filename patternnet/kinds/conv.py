"""Convolutions: CONV and the transposed CONVT."""

from __future__ import annotations

from ..rules import Out, RuleError, need_image, spatial
from .base import (CONTEXT, REQUIRED, ArgSpec, Init, Inits, LayerSpec, one, pad_text, size,
                   stride_tokens)


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
    out.lints = [("E320", msg, _fit_help(shape, a, pads)) for msg in lints]
    return out


def _fit_help(shape: tuple, a: dict, pads: tuple) -> str:
    """The input size, per axis, that this kernel and stride would cover exactly."""
    fits = {}
    for axis, n, k, st, d, (lo, hi) in zip("HW", shape, a["kernel"], a["stride"],
                                           a["dilation"], pads):
        span = n + lo + hi - (d * (k - 1) + 1)
        if span % st:
            fits[axis] = (n + st - span % st, n)
    if len(fits) == 2 and fits["H"] == fits["W"]:
        (fit, n), = set(fits.values())
        where = f"{fit}x{fit} instead of {n}x{n}"
    else:
        where = " and ".join(f"{axis} = {fit} instead of {n}" for axis, (fit, n) in fits.items())
    return (f"an input of {where} would fit this {size(a['kernel'])}/{one(a['stride'])} "
            "exactly, or use p=same")


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

def convt_rule(shape: tuple, a: dict) -> Out:
    """PyTorch's ConvTranspose2d: out = (H − 1)·S − 2·P + D·(K − 1) + output_padding + 1."""
    need_image(shape, "CONVT")
    h, w, c = shape
    k, groups = a["filters"], a["groups"]
    if c % groups or k % groups:
        raise RuleError("E303", f"CONVT groups={groups} must divide both the input channels "
                        f"({c}) and the filters ({k})", help="pick groups that divide both")
    if a["pad"] == "same":
        raise RuleError("E309", "CONVT pads as PyTorch's ConvTranspose2d: `same` has no "
                        "meaning there", help="give the padding P as a number: with kernel K "
                        "and stride S, P = (K − S)/2 makes the output S times the input")
    pads = (0, 0) if a["pad"] == "valid" else a["pad"]
    outs = []
    for axis, n, kk, st, d, p, op in zip("HW", (h, w), a["kernel"], a["stride"],
                                         a["dilation"], pads, a["output_padding"]):
        if op >= max(st, d):
            raise RuleError("E309", f"CONVT output_padding {op} along {axis} must be smaller "
                            f"than the stride ({st}) or the dilation ({d})",
                            help="output_padding only picks among the output sizes a stride "
                            "allows: use 0 .. stride − 1")
        out = (n - 1) * st - 2 * p + d * (kk - 1) + op + 1
        if out <= 0:
            raise RuleError("E301", f"CONVT has no output: {axis} = {n}, kernel {kk}, stride "
                            f"{st}, padding {p} → ({n} − 1)·{st} − 2·{p} + {d}·({kk} − 1) + "
                            f"{op} + 1 = {out}", help="use less padding, or a larger kernel "
                            "or stride")
        outs.append(out)
    kh, kw = a["kernel"]
    eff = tuple(-(-(d * (kk - 1) + 1) // st) for d, kk, st in
                zip(a["dilation"], a["kernel"], a["stride"]))
    return Out((outs[0], outs[1], k), {**a, "padding": tuple((p, p) for p in pads)},
               h * w * c * (k // groups) * kh * kw, (eff, (1, 1)), zoom=tuple(a["stride"]))


def convt_weights(shape: tuple, a: dict) -> tuple[Inits, Inits]:
    """``w`` is (kh, kw, in, out/groups): PyTorch's (in, out/groups, kh, kw) with the
    taps first, and PyTorch's fan-in, out/groups·kh·kw."""
    kh, kw = a["kernel"]
    per_group = a["filters"] // a["groups"]
    fan_in = per_group * kh * kw
    p = {"w": Init((kh, kw, shape[-1], per_group), "uniform", fan_in)}
    if a["bias"]:
        p["b"] = Init((a["filters"],), "uniform", fan_in)
    return p, None


def convt_summary(a: dict) -> str:
    parts = [str(a["filters"]), size(a["kernel"]), f"s={one(a['stride'])}",
             f"p={pad_text(a['pad'])}"]
    if a["output_padding"] != (0, 0):
        parts.append(f"output_padding={one(a['output_padding'])}")
    if a["dilation"] != (1, 1):
        parts.append(f"dilation={one(a['dilation'])}")
    if a["groups"] != 1:
        parts.append(f"groups={a['groups']}")
    if not a["bias"]:
        parts.append("bias=false")
    return ", ".join(parts)


def convt_tokens(a: dict) -> list:
    t = [" ", size(a["kernel"]), ", ", str(a["filters"])]
    if tuple(a["stride"]) != (1, 1):
        t += [" ", "×" + one(a["stride"])]
    if a["groups"] != 1:
        t += [", ", f"groups {a['groups']}"]
    return t


CONVT = LayerSpec(
    "CONVT", (
        ArgSpec("filters", "int", REQUIRED, doc="number of filters (output channels)"),
        ArgSpec("kernel", "size2", 2, doc="filter size K"),
        ArgSpec("stride", "size2", 2, ("s",), "step S: the output is about S times the input"),
        ArgSpec("pad", "pad", 0, ("p",), "PyTorch's padding P, taken off each side of the "
                "output: n or (ph, pw)"),
        ArgSpec("output_padding", "nat2", 0, doc="extra rows/columns on the bottom/right, "
                "below the stride"),
        ArgSpec("dilation", "size2", 1, doc="spacing D between filter taps"),
        ArgSpec("groups", "int", 1, doc="grouped transposed convolution"),
        ArgSpec("bias", "bool", True, doc="add a learned bias per filter"),
    ), doc="transposed convolution (PyTorch's ConvTranspose2d): the up-convolution of U-Net",
    rule=convt_rule, weights=convt_weights, summary=convt_summary, tokens=convt_tokens,
    family="conv")

KINDS = (CONV, CONVT)
