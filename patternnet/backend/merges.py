"""The backend's merges: one combining function per operator of patternnet/merges.py.

A merge function is ``fn(outs) -> y``: the branches' outputs, batch first, in the order
written, to the merged output whose shape the checker computed with the merge's rule.
"""

from __future__ import annotations

import functools
import operator
from typing import Callable

import jax.numpy as jnp

from .types import Array

#: operator -> ``fn(outs) -> y``
MERGE_FNS: dict[str, Callable[[list], Array]] = {}


def combines(op: str) -> Callable[[Callable[[list], Array]], Callable[[list], Array]]:
    """Register the decorated function as the backend of merge ``op``."""
    def register(fn: Callable[[list], Array]) -> Callable[[list], Array]:
        if op in MERGE_FNS:
            raise ValueError(f"two functions for the merge {op!r}")
        MERGE_FNS[op] = fn
        return fn
    return register


@combines("+")
def add(outs: list) -> Array:
    return functools.reduce(operator.add, outs)


@combines("|")
def concat(outs: list) -> Array:
    return jnp.concatenate(outs, axis=-1)


@combines("*")
def gate(outs: list) -> Array:
    """Elementwise product, broadcast; a batch of vectors ``(N, C)`` beside images gates
    their channels, so it is read as ``(N, 1, 1, C)``."""
    rank = max(o.ndim for o in outs)
    shaped = [o.reshape(o.shape[0], *(1,) * (rank - 2), o.shape[-1]) if o.ndim < rank else o
              for o in outs]
    return functools.reduce(operator.mul, shaped)
