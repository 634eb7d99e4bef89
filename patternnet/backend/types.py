"""Names for the backend's values in annotations.

JAX arrays and pytrees are ``Any`` to the type checker: jax's own ``jax.Array`` would
pull jax's stubs into every signature and buys nothing for nested dicts of arrays.  The
aliases say what a value is; nothing here imports jax, so a light module may import
this one under ``TYPE_CHECKING``.
"""

from typing import Any, Sequence

Array = Any    # a jax.Array (or a NumPy array where a function takes either)
PyTree = Any   # nested dicts of arrays: params, state, gradients, an optimizer's state
Key = Any      # a jax.random key
Pair = Sequence[int]             # (h, w): a window, a stride, a dilation
Pads = Sequence[tuple[int, int]]  # per-side padding of H and W: ((top, bottom), (left, right))
DType = Any    # a dtype by name ("float32", "bfloat16", "float64") or a NumPy/JAX dtype
