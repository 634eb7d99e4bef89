"""Resizing an image up: UPSAMPLE (nearest or bilinear, by a factor or to a size)."""

from __future__ import annotations

from ..rules import Out, RuleError, need_image
from .base import ArgSpec, LayerSpec, one, size


def upsample_rule(shape: tuple, a: dict) -> Out:
    need_image(shape, "UPSAMPLE")
    h, w, c = shape
    if a["factor"] is not None and a["size"] is not None:
        raise RuleError("E309", "UPSAMPLE takes a factor or a size, not both",
                        help="keep `factor` to scale the image, or `size` for a fixed HxW")
    if a["corners"] and not a["bilinear"]:
        raise RuleError("E309", "UPSAMPLE corners=true aligns bilinear samples, but this "
                        "UPSAMPLE is nearest", help="add bilinear=true, or drop corners")
    if a["size"] is not None:
        oh, ow = a["size"]
        zoom = (max(1, oh // h), max(1, ow // w))
        args = {**a, "out": (oh, ow)}
    else:
        f = a["factor"] or (2, 2)
        oh, ow = h * f[0], w * f[1]
        zoom = f
        args = {**a, "factor": f, "out": (oh, ow)}
    window = ((2, 2), (1, 1)) if a["bilinear"] else None  # two input pixels per output
    return Out((oh, ow, c), args, window=window, zoom=tuple(zoom))


def upsample_summary(a: dict) -> str:
    how = "bilinear" if a["bilinear"] else "nearest"
    parts = [f"size={size(a['size'])}" if a["size"] is not None else one(a["factor"]), how]
    if a["corners"]:
        parts.append("corners=true")
    return ", ".join(parts)


def upsample_tokens(a: dict) -> list:
    first = size(a["size"]) if a["size"] is not None else "×" + one(a["factor"])
    return [" ", first] + ([", ", "bilinear"] if a["bilinear"] else [])


UPSAMPLE = LayerSpec(
    "UPSAMPLE", (
        ArgSpec("factor", "size2", None, doc="scale H and W by this (2 when no size is given)"),
        ArgSpec("size", "size2", None, doc="the output's HxW instead of a factor"),
        ArgSpec("bilinear", "bool", False, doc="bilinear interpolation instead of nearest"),
        ArgSpec("corners", "bool", False, doc="PyTorch's align_corners=True (bilinear only)"),
    ), doc="upsampling as PyTorch's nn.Upsample: nearest (each output pixel takes the "
    "input pixel at floor(i·in/out)) or bilinear", rule=upsample_rule,
    summary=upsample_summary, tokens=upsample_tokens, family="pool")

KINDS = (UPSAMPLE,)
