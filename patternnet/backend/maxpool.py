"""Max pooling whose gradient is a few elementwise passes instead of XLA's
select-and-scatter.

XLA:CPU expands ``select_and_scatter`` (the transpose of ``reduce_window``'s max) into a
variadic reduce-window that carries one int32 index array per dimension, plus a
scatter: on the card net (three 2x2 pools at batch 128) that was 60 of 225 ms per train
step (docs/performance.md, "Where the card net's step went").  Here the gradient is computed
from the window's taps: tap (i, j) is the strided slice of the padded input that holds
each window's element (i, j); a tap gets the window's gradient where it equals the
window's maximum and no earlier tap (row-major) did, which is the element that
select-and-scatter's ``>=`` selection and PyTorch's first-maximum rule pick.  Each tap's
share goes back to its positions through the transpose of its slice, an interior
``lax.pad``.  The gradient is the same set of values as lax's, to the bit: only which
element receives each window's gradient is decided, nothing is summed differently,
except that overlapping windows (stride < window) add their shares in tap order.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .types import Array, Pads, Pair


def reduce_max(x: Array, window: Pair, strides: Pair, padding: Pads) -> Array:
    """``lax.reduce_window`` max over H and W of NHWC ``x``; ``padding`` per side of
    H and W, padded positions are -inf (they never win)."""
    return lax.reduce_window(x, np.array(-np.inf, x.dtype), lax.max, (1, *window, 1),
                             (1, *strides, 1), ((0, 0), *padding, (0, 0)))


@partial(jax.custom_jvp, nondiff_argnums=(1, 2, 3))
def max_pool(x: Array, window: Pair, strides: Pair, padding: Pads) -> Array:
    """``reduce_max`` with the tap-mask derivative; ``window`` and ``strides`` are
    (h, w) tuples, ``padding`` ((top, bottom), (left, right)), all hashable.  A JVP
    rule (not a VJP) so that forward mode works too; JAX transposes it into the
    gradient: each tap's mask selects, each slice's transpose is an interior pad."""
    return reduce_max(x, window, strides, padding)


def _tap(xp, i, j, out_hw, strides):
    (oh, ow), (sh, sw) = out_hw, strides
    n, _, _, c = xp.shape
    return lax.slice(xp, (0, i, j, 0), (n, i + (oh - 1) * sh + 1, j + (ow - 1) * sw + 1, c),
                     (1, sh, sw, 1))


def _pad(x, padding, value):
    (top, bottom), (left, right) = padding
    return jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)


@max_pool.defjvp
def _jvp(window, strides, padding, primals, tangents):
    (x,), (tx,) = primals, tangents
    y = reduce_max(x, window, strides, padding)
    xp, txp = _pad(x, padding, -np.inf), _pad(tx, padding, 0)
    out_hw, zero = y.shape[1:3], np.array(0, tx.dtype)
    taken = ty = None
    for i in range(window[0]):
        for j in range(window[1]):
            hit = lax.stop_gradient(_tap(xp, i, j, out_hw, strides) == y)
            if taken is None:
                taken = hit
            else:
                hit = hit & ~taken
                taken = taken | hit
            part = jnp.where(hit, _tap(txp, i, j, out_hw, strides), zero)
            ty = part if ty is None else ty + part
    return y, ty
