"""Every layer kind, one ``LayerSpec`` each (base.py says what one holds), grouped by
family in the modules beside this one.  ``ALL`` is the table in its documented order;
patternnet/layers.py indexes it by name and alias.

Adding a kind: its ``LayerSpec`` in the module of its family (and in ``ALL``), its apply
function in patternnet/backend/layers.py, its tests; nothing else.
"""

from __future__ import annotations

from . import activation, channels, conv, dense, norm, pool, resize, structure
from .base import CONTEXT, FAMILIES, REQUIRED, ArgSpec, Init, Inits, LayerSpec, tree_size

ALL: tuple[LayerSpec, ...] = (
    structure.INPUT, *conv.KINDS, *pool.KINDS, *resize.KINDS, *dense.KINDS, *activation.KINDS,
    *norm.KINDS, structure.DROPOUT, structure.DROPPATH, *channels.KINDS, structure.ID,
    structure.SKIP,
)

__all__ = ["ALL", "CONTEXT", "FAMILIES", "REQUIRED", "ArgSpec", "Init", "Inits", "LayerSpec",
           "tree_size"]
