"""The network's frame: INPUT, ID, DROPOUT, DROPPATH and SKIP (a `+` branch's shortcut)."""

from __future__ import annotations

from ..rules import Out, RuleError, fmt_shape
from .base import ArgSpec, Init, Inits, LayerSpec, one, stride_tokens
from .norm import bn_inits


def skip_rule(shape: tuple, a: dict) -> Out:
    """Identity when ``target`` equals the input, else 1x1 CONV(bias=false) -> BN."""
    target = a["target"]
    bn = {"eps": a["eps"], "momentum": a["momentum"]}
    if target == shape:
        return Out(shape, {"project": False, "stride": (1, 1), "filters": shape[-1], **bn})
    if len(shape) != 3 or len(target) != 3:
        raise RuleError("E306", f"SKIP cannot project {fmt_shape(shape)} to {fmt_shape(target)}",
                        help="SKIP projects images; for vectors make the branches agree")
    (h, w, c), (th, tw, tc) = shape, target
    sh, sw = -(-h // th), -(-w // tw)
    if (h - 1) // sh + 1 != th or (w - 1) // sw + 1 != tw:
        raise RuleError("E306", f"SKIP cannot project {fmt_shape(shape)} to {fmt_shape(target)} "
                        "with a strided 1x1 convolution", help="the other branch must shrink H "
                        "and W by a whole factor")
    return Out(target, {"project": True, "stride": (sh, sw), "filters": tc, **bn},
               th * tw * tc * c, ((1, 1), (sh, sw)),
               notes=[f"projects with 1x1 CONV({tc}, s={sh}, bias=false) -> BN"])


def skip_weights(shape: tuple, a: dict) -> tuple[Inits, Inits]:
    if not a["project"]:
        return None, None
    cin, cout = shape[-1], a["filters"]
    bn_p, bn_s = bn_inits(cout)
    return ({"conv": {"w": Init((1, 1, cin, cout), "uniform", cin)}, "bn": bn_p},
            {"bn": bn_s})


def skip_summary(a: dict) -> str:
    if not a["project"]:
        return "identity"
    bn = ", ".join(f"{k}={a[k]:g}" for k, d in (("eps", 1e-5), ("momentum", 0.1)) if a[k] != d)
    return (f"1x1 CONV({a['filters']}, s={one(a['stride'])}, bias=false) -> BN"
            + (f"({bn})" if bn else ""))


def skip_tokens(a: dict) -> list:
    return ([" ", "CONV 1x1", ", ", str(a["filters"])] + stride_tokens(a["stride"])
            + [" ", "→ BN"])


INPUT = LayerSpec(
    "INPUT", (ArgSpec("shape", "shape", None),), family="io",
    doc="the network's input, HxWxC or D; bare INPUT takes --input (default 32x32x3)",
    summary=lambda a: fmt_shape(a["shape"]))
DROPOUT = LayerSpec("DROPOUT", (ArgSpec("rate", "rate", 0.5),), doc="inverted dropout, "
                    "training only", summary=lambda a: f"{a['rate']:g}",
                    tokens=lambda a: [" ", f"{a['rate']:g}"], family="drop")
DROPPATH = LayerSpec("DROPPATH", (ArgSpec("rate", "rate", 0.1),), doc="stochastic depth "
                     "(Huang et al. 2016): in training, zero each sample's whole tensor with "
                     "probability rate and scale the kept ones by 1/(1 - rate); identity in "
                     "evaluation", summary=lambda a: f"{a['rate']:g}",
                     tokens=lambda a: [" ", f"{a['rate']:g}"], family="drop")
ID = LayerSpec("ID", doc="identity", family="shape")
SKIP = LayerSpec("SKIP", (
    ArgSpec("eps", "float", 1e-5, doc="the projection's BN eps"),
    ArgSpec("momentum", "rate", 0.1, doc="the projection's BN momentum"),
), doc="inside `+`: identity, or a 1x1 CONV(bias=false) -> BN projection",
                 rule=skip_rule, weights=skip_weights, summary=skip_summary, tokens=skip_tokens,
                 family="skip")
