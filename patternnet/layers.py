"""The layer table: every kind of patternnet/kinds/ by name and alias.

Resolve uses it to map positional arguments to names, to validate keywords and value
kinds, and to suggest names for typos; the checker runs each kind's shape rule and
fills in the defaults from ``DEFAULTS``, the table's defaults in their normal form
(args.py).  What a kind holds, and the argument kinds, are in kinds/base.py.
"""

from __future__ import annotations

from typing import Any, Optional

from .args import normalize_arg
from .kinds import ALL, CONTEXT, REQUIRED, ArgSpec, LayerSpec

__all__ = ["ArgSpec", "CONTEXT", "DEFAULTS", "LAYERS", "LayerSpec", "NAMES", "REQUIRED",
           "lookup"]

#: name or alias -> its kind
LAYERS: dict[str, LayerSpec] = {key: spec for spec in ALL for key in (spec.name, *spec.aliases)}

#: canonical names, in table order, without aliases
NAMES: tuple[str, ...] = tuple(spec.name for spec in ALL)

#: canonical name -> {argument: its default, normalised as a written value would be};
#: arguments whose default the network decides (CONTEXT) or that have none are absent
DEFAULTS: dict[str, dict[str, Any]] = {
    name: {a.name: normalize_arg(a.default, a, name) for a in LAYERS[name].args
           if a.default is not CONTEXT and a.default is not REQUIRED}
    for name in NAMES}


def lookup(name: str) -> Optional[LayerSpec]:
    return LAYERS.get(name)
