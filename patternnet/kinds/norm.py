"""Normalisation: BN, LAYERNORM, GROUPNORM, LRN, and the learned per-channel SCALE."""

from __future__ import annotations

from ..rules import Out, divides, need_image
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
def affine(shape: tuple, a: dict) -> tuple[Inits, Inits]:
    """A per-channel scale (ones) and bias (zeros), no state: LAYERNORM and GROUPNORM."""
    c = shape[-1]
    return {"scale": Init((c,), "ones"), "bias": Init((c,), "zeros")}, None


def groupnorm_rule(shape: tuple, a: dict) -> Out:
    divides("GROUPNORM", "groups", a["groups"], shape[-1])
    return Out(shape, a)


def scale_weights(shape: tuple, a: dict) -> tuple[Inits, Inits]:
    return {"scale": Init((shape[-1],), "full", value=a["init"])}, None


LAYERNORM = LayerSpec(
    "LAYERNORM", (ArgSpec("eps", "float", 1e-5),), ("LN",),
    "layer normalisation over channels at each position (ConvNeXt's LayerNorm2d), over "
    "the features of a vector; a learned scale and bias per channel",
    weights=affine, summary=lambda a: f"eps={a['eps']:g}", family="norm")
GROUPNORM = LayerSpec(
    "GROUPNORM", (
        ArgSpec("groups", "int", 32, doc="channel groups, each normalised over H, W and its "
                "channels"),
        ArgSpec("eps", "float", 1e-5),
    ), ("GN",), "group normalisation (Wu & He 2018): per sample, over each group of "
    "channels; a learned scale and bias per channel", rule=groupnorm_rule, weights=affine,
    summary=lambda a: f"{a['groups']}, eps={a['eps']:g}",
    tokens=lambda a: [" ", str(a["groups"])], family="norm")
SCALE = LayerSpec(
    "SCALE", (ArgSpec("init", "float", 1e-6, doc="every factor's initial value"),),
    doc="a learned factor per channel, x * gamma (ConvNeXt's layer scale)",
    weights=scale_weights, summary=lambda a: f"init={a['init']:g}",
    tokens=lambda a: [" ", f"{a['init']:g}"], family="norm")
LRN = LayerSpec(
    "LRN", (
        ArgSpec("size", "int", 5), ArgSpec("alpha", "float", 1e-4),
        ArgSpec("beta", "float", 0.75), ArgSpec("k", "float", 2.0),
    ), doc="local response normalisation across channels (alpha divided by size)",
    rule=lrn_rule,
    summary=lambda a: f"{a['size']}, alpha={a['alpha']:g}, beta={a['beta']:g}, k={a['k']:g}",
    tokens=lambda a: [" ", str(a["size"])], family="norm")

KINDS = (BN, LAYERNORM, GROUPNORM, LRN, SCALE)
