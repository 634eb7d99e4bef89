"""Vectors: FLATTEN and FC."""

from __future__ import annotations

import math

from ..rules import Out, fmt_shape
from .base import CONTEXT, ArgSpec, Init, Inits, LayerSpec


def flatten_rule(shape: tuple, a: dict) -> Out:
    if len(shape) == 1:
        return Out(shape, a, notes=["already a vector"])
    return Out((shape[0] * shape[1] * shape[2],), a)


def fc_rule(shape: tuple, a: dict) -> Out:
    d = math.prod(shape)
    units = a["units"]
    out = Out((units,), a, d * units)
    if len(shape) == 3:
        out.notes.append(f"flattens {fmt_shape(shape)} to {d:,}")
        out.window = ((shape[0], shape[1]), (shape[0], shape[1]))
    return out


def fc_weights(shape: tuple, a: dict) -> tuple[Inits, Inits]:
    din = math.prod(shape)
    units = a["units"]
    p = {"w": Init((din, units), "uniform", din)}
    if a["bias"]:
        p["b"] = Init((units,), "uniform", din)
    return p, None


FLATTEN = LayerSpec("FLATTEN", doc="HxWxC -> H*W*C", rule=flatten_rule, family="shape")
FC = LayerSpec(
    "FC", (
        ArgSpec("units", "int", CONTEXT, doc="output size"),
        ArgSpec("bias", "bool", True, doc="add a learned bias"),
    ), ("DENSE",), "fully connected layer", rule=fc_rule, weights=fc_weights,
    summary=lambda a: f"{a['units']}{'' if a['bias'] else ', bias=false'}",
    tokens=lambda a: [" ", str(a["units"])], family="fc")

KINDS = (FLATTEN, FC)
