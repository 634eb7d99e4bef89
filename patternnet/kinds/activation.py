"""Activations: elementwise (RELU, TANH, ...) and SOFTMAX over channels."""

from __future__ import annotations

from .base import ArgSpec, LayerSpec


def _plain(name: str, doc: str) -> LayerSpec:
    return LayerSpec(name, doc=doc, family="act")


def _one_arg(name: str, arg: ArgSpec, doc: str) -> LayerSpec:
    return LayerSpec(name, (arg,), doc=doc, family="act",
                     summary=lambda a: f"{a[arg.name]:g}",
                     tokens=lambda a: [" ", f"{a[arg.name]:g}"])


RELU = _plain("RELU", "max(x, 0)")
TANH = _plain("TANH", "tanh(x)")
SIGMOID = _plain("SIGMOID", "1 / (1 + exp(-x))")
GELU = LayerSpec(
    "GELU", (ArgSpec("tanh", "bool", False, doc="the tanh approximation (PyTorch's "
                     "approximate='tanh')"),),
    doc="x * Phi(x): the exact (erf) form, or with tanh=true the tanh approximation",
    family="act", summary=lambda a: "tanh=true" if a["tanh"] else "",
    tokens=lambda a: [" ", "tanh"] if a["tanh"] else [])
SOFTMAX = _plain("SOFTMAX", "softmax over channels")
RELU6 = _plain("RELU6", "min(max(x, 0), 6) (MobileNetV2)")
HARDSIGMOID = _plain("HARDSIGMOID", "relu6(x + 3) / 6 (MobileNetV3's gate)")
HARDSWISH = _plain("HARDSWISH", "x * relu6(x + 3) / 6 (MobileNetV3)")
SILU = LayerSpec("SILU", aliases=("SWISH",), doc="x * sigmoid(x) (EfficientNet)", family="act")
LRELU = _one_arg("LRELU", ArgSpec("slope", "float", 0.01), "leaky ReLU")
ELU = _one_arg("ELU", ArgSpec("alpha", "float", 1.0), "exponential linear unit")

KINDS = (RELU, TANH, SIGMOID, GELU, SOFTMAX, LRELU, ELU, RELU6, HARDSIGMOID, HARDSWISH, SILU)
