"""Normalisation: BN and LRN."""

from __future__ import annotations

from ..rules import Out, need_image
from .base import ArgSpec, Init, Inits, LayerSpec


def bn_inits(c: int) -> tuple[Inits, Inits]:
    """BN's scale and bias (parameters) and running mean and variance (state), as
    torchvision starts them; SKIP's projection has the same."""
    return ({"scale": Init((c,), "ones"), "bias": Init((c,), "zeros")},
            {"mean": Init((c,), "zeros"), "var": Init((c,), "ones")})


def lrn_rule(shape: tuple, a: dict) -> Out:
    need_image(shape, "LRN")
    return Out(shape, a)


BN = LayerSpec(
    "BN", (
        ArgSpec("eps", "float", 1e-5),
        ArgSpec("momentum", "rate", 0.1, doc="running <- (1 - m) * running + m * batch"),
    ), doc="batch normalisation over N, H, W", weights=lambda shape, a: bn_inits(shape[-1]),
    summary=lambda a: f"eps={a['eps']:g}, momentum={a['momentum']:g}", family="norm")
LRN = LayerSpec(
    "LRN", (
        ArgSpec("size", "int", 5), ArgSpec("alpha", "float", 1e-4),
        ArgSpec("beta", "float", 0.75), ArgSpec("k", "float", 2.0),
    ), doc="local response normalisation across channels (alpha divided by size)",
    rule=lrn_rule,
    summary=lambda a: f"{a['size']}, alpha={a['alpha']:g}, beta={a['beta']:g}, k={a['k']:g}",
    tokens=lambda a: [" ", str(a["size"])], family="norm")

KINDS = (BN, LRN)
