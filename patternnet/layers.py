"""The layer table: every built-in layer's name, aliases and arguments.

Adding a layer means one entry here, its shape rule in ``rules.py`` and one function in
the backend.  Resolve uses this table to map positional arguments to names, to
validate keywords and value kinds, and to suggest names for typos; the checker fills
in the defaults from ``DEFAULTS``, the table's defaults in their normal form (args.py).

Argument kinds:
    int     a positive integer
    nat     a non-negative integer
    size2   an integer ``3`` (meaning 3x3) or a size ``3x5``
    pad     ``same``, ``valid``, an integer or a per-axis pair ``(1, 2)``
    shape   ``HxWxC`` or a vector length ``D``
    bool    ``true`` / ``false``
    float   any number
    rate    a number in [0, 1)
"""

from __future__ import annotations

from typing import Any, Optional

from .args import normalize_arg
from .record import record

REQUIRED = object()  # no default at all
CONTEXT = object()   # default depends on the network (bare CONV filters, bare FC units)


@record
class ArgSpec:
    name: str
    kind: str
    default: Any = REQUIRED
    aliases: tuple[str, ...] = ()
    doc: str = ""


@record
class LayerSpec:
    name: str
    args: tuple[ArgSpec, ...] = ()
    aliases: tuple[str, ...] = ()
    doc: str = ""

    def arg(self, key: str) -> Optional[ArgSpec]:
        """The argument called ``key`` or one of its aliases."""
        for a in self.args:
            if key == a.name or key in a.aliases:
                return a
        return None

    def keywords(self) -> list[str]:
        return [k for a in self.args for k in (a.name, *a.aliases)]


_POOL_ARGS = (
    ArgSpec("window", "size2", 2, doc="pooling window"),
    ArgSpec("stride", "size2", None, ("s",), "step; defaults to the window"),
    ArgSpec("pad", "pad", 0, ("p",), "zero padding (`same`, `valid`, n or (ph, pw))"),
    ArgSpec("ceil", "bool", False, doc="PyTorch ceil_mode: keep a last partial window"),
)

_ACTIVATIONS = {
    "RELU": "max(x, 0)", "TANH": "tanh(x)", "SIGMOID": "1 / (1 + exp(-x))",
    "GELU": "x * Phi(x), the exact (erf) form", "SOFTMAX": "softmax over channels",
}

LAYERS: dict[str, LayerSpec] = {}


def _add(spec: LayerSpec) -> None:
    for key in (spec.name, *spec.aliases):
        LAYERS[key] = spec


_add(LayerSpec("INPUT", (ArgSpec("shape", "shape", None),),
               doc="the network's input, HxWxC or D; bare INPUT takes --input (default 32x32x3)"))
_add(LayerSpec("CONV", (
    ArgSpec("filters", "int", CONTEXT, doc="number of filters (output channels)"),
    ArgSpec("kernel", "size2", 3, doc="filter size F"),
    ArgSpec("stride", "size2", 1, ("s",), "step S"),
    ArgSpec("pad", "pad", "same", ("p",), "zero padding P: same, valid, n or (ph, pw)"),
    ArgSpec("dilation", "size2", 1, doc="spacing D between filter taps"),
    ArgSpec("groups", "int", 1, doc="grouped convolution"),
    ArgSpec("bias", "bool", True, doc="add a learned bias per filter"),
), doc="2-D convolution"))
_add(LayerSpec("POOL", _POOL_ARGS, ("MAXPOOL",), "max pooling"))
_add(LayerSpec("AVGPOOL", _POOL_ARGS, doc="average pooling; the divisor counts padding"))
_add(LayerSpec("GAP", doc="global average pooling, HxWxC -> C"))
_add(LayerSpec("FLATTEN", doc="HxWxC -> H*W*C"))
_add(LayerSpec("FC", (
    ArgSpec("units", "int", CONTEXT, doc="output size"),
    ArgSpec("bias", "bool", True, doc="add a learned bias"),
), ("DENSE",), "fully connected layer"))
for _name, _doc in _ACTIVATIONS.items():
    _add(LayerSpec(_name, doc=_doc))
_add(LayerSpec("LRELU", (ArgSpec("slope", "float", 0.01),), doc="leaky ReLU"))
_add(LayerSpec("ELU", (ArgSpec("alpha", "float", 1.0),), doc="exponential linear unit"))
_add(LayerSpec("BN", (
    ArgSpec("eps", "float", 1e-5),
    ArgSpec("momentum", "rate", 0.1, doc="running <- (1 - m) * running + m * batch"),
), doc="batch normalisation over N, H, W"))
_add(LayerSpec("LRN", (
    ArgSpec("size", "int", 5), ArgSpec("alpha", "float", 1e-4),
    ArgSpec("beta", "float", 0.75), ArgSpec("k", "float", 2.0),
), doc="local response normalisation across channels (alpha divided by size)"))
_add(LayerSpec("DROPOUT", (ArgSpec("rate", "rate", 0.5),), doc="inverted dropout, training only"))
_add(LayerSpec("ID", doc="identity"))
_add(LayerSpec("SKIP", doc="inside `+`: identity, or a 1x1 CONV(bias=false) -> BN projection"))

#: canonical names, in table order, without aliases
NAMES: tuple[str, ...] = tuple(dict.fromkeys(s.name for s in LAYERS.values()))

#: canonical name -> {argument: its default, normalised as a written value would be};
#: arguments whose default the network decides (CONTEXT) or that have none are absent
DEFAULTS: dict[str, dict[str, Any]] = {
    name: {a.name: normalize_arg(a.default, a, name) for a in LAYERS[name].args
           if a.default is not CONTEXT and a.default is not REQUIRED}
    for name in NAMES}


def lookup(name: str) -> Optional[LayerSpec]:
    return LAYERS.get(name)
