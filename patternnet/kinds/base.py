"""What a layer kind is: one record, ``LayerSpec``, holding everything PatternNet knows
about it apart from how it runs -- its names, arguments and reference text, its shape
rule, the shapes of its parameters and state, its wording in the summary and its look
in the diagram.  The backend adds one apply function per kind (backend/layers.py).

Argument kinds (``ArgSpec.kind``):
    int     a positive integer
    nat     a non-negative integer
    size2   an integer ``3`` (meaning 3x3) or a size ``3x5``
    nat2    a non-negative integer ``1`` (both axes) or a pair ``(1, 0)``
    pad     ``same``, ``valid``, an integer or a per-axis pair ``(1, 2)``
    shape   ``HxWxC`` or a vector length ``D``
    bool    ``true`` / ``false``
    float   any number
    rate    a number in [0, 1)

Pure Python: the checker, the summary and the diagram read these without JAX.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence

from ..record import record
from ..rules import Out

REQUIRED = object()  # no default at all
CONTEXT = object()   # default depends on the network (bare CONV filters, bare FC units)

#: the families a diagram colours boxes by (draw.FAMILIES holds their colours)
FAMILIES = ("io", "conv", "pool", "norm", "fc", "act", "drop", "skip", "shape")


@record
class ArgSpec:
    name: str
    kind: str
    default: Any = REQUIRED
    aliases: tuple[str, ...] = ()
    doc: str = ""


class Init:
    """How one parameter or state tensor starts: ``fill`` is "uniform" (U(-1/sqrt(fan_in),
    1/sqrt(fan_in)), PyTorch's default for Conv2d and Linear), "ones", "zeros" or "full"
    (every element ``value``: a layer scale's 1e-6).  The checker counts their sizes;
    the backend's model draws every uniform tensor of a network in one jitted program
    (backend/model.py)."""

    __slots__ = ("shape", "fill", "fan_in", "value")

    def __init__(self, shape: Sequence[int], fill: str, fan_in: int = 0,
                 value: float = 0.0) -> None:
        self.shape, self.fill, self.fan_in, self.value = tuple(shape), fill, fan_in, value

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def __repr__(self) -> str:
        extra = (f", fan_in={self.fan_in}" if self.fill == "uniform" else
                 f", value={self.value:g}" if self.fill == "full" else "")
        return f"Init({self.shape}, {self.fill!r}{extra})"


#: a layer's parameters or state: nested dicts of ``Init``, or None when it has none
Inits = Optional[dict]
#: ``weights(in_shape, args) -> (params, state)``, args as the shape rule returned them
Weights = Callable[[tuple, dict], "tuple[Inits, Inits]"]


def no_weights(shape: tuple, args: dict) -> tuple[Inits, Inits]:
    return None, None


def same_shape(shape: tuple, args: dict) -> Out:
    """The shape rule of a kind that keeps its input's shape."""
    return Out(shape, args)


def tree_size(tree: Inits) -> int:
    """Elements in a nested dict of ``Init``."""
    if tree is None:
        return 0
    return sum(tree_size(v) if isinstance(v, dict) else v.size for v in tree.values())


@record
class LayerSpec:
    """One layer kind, whole.

    ``rule(in_shape, args) -> Out`` gives the output shape, the arguments the backend
    runs with (defaults filled in, padding resolved), the MACs, notes and lints;
    ``weights(in_shape, args)`` the parameter and state trees, from which the checker
    counts and the backend initialises (one source: the two cannot disagree);
    ``summary(args)`` the summary's Type column inside the parentheses (None: the name
    alone); ``tokens(args)`` the diagram's title after the name, as text tokens with
    separators at odd positions, so that the copies of a repeat merge argument by
    argument; ``family`` the diagram's colour (one of FAMILIES).
    """
    name: str
    args: tuple[ArgSpec, ...] = ()
    aliases: tuple[str, ...] = ()
    doc: str = ""
    rule: Callable[[tuple, dict], Out] = same_shape
    weights: Weights = no_weights
    summary: Optional[Callable[[dict], str]] = None
    tokens: Optional[Callable[[dict], list]] = None
    family: str = "shape"

    def arg(self, key: str) -> Optional[ArgSpec]:
        """The argument called ``key`` or one of its aliases."""
        for a in self.args:
            if key == a.name or key in a.aliases:
                return a
        return None

    def keywords(self) -> list[str]:
        return [k for a in self.args for k in (a.name, *a.aliases)]

    def describe(self, args: dict) -> str:
        """The summary's Type: ``CONV(64, 3x3, s=2, p=same)``."""
        inside = self.summary(args) if self.summary else ""
        return f"{self.name}({inside})" if inside else self.name

    def title(self, args: dict) -> list:
        """The diagram's box title as tokens: ``["CONV", " ", "3x3", ", ", "64"]``."""
        return [self.name] + (self.tokens(args) if self.tokens else [])


# --- how sizes read, in the summary and the diagram alike -----------------------------


def size(v: Sequence[int]) -> str:
    """An (h, w) pair as ``3x3`` (the summary's and the diagram's one spelling)."""
    return f"{v[0]}x{v[1]}"


def one(v: Sequence[int]) -> str:
    """An (h, w) pair as ``2`` when both agree, else ``2x1``."""
    return str(v[0]) if v[0] == v[1] else size(v)


def pad_text(p: Any) -> str:
    """A ``pad`` argument as written: ``same``, ``1`` or ``(1, 2)``."""
    if isinstance(p, str):
        return p
    return str(p[0]) if p[0] == p[1] else f"({p[0]}, {p[1]})"


def stride_tokens(v: Sequence[int]) -> list:
    """`` /2`` in a diagram title, nothing for stride 1."""
    if tuple(v) == (1, 1):
        return []
    return [" ", "/" + one(v)]
