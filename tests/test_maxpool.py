"""``backend.maxpool.max_pool``: XLA:CPU's max pooling with a tap-mask derivative.

The derivative must be the one lax's own ``reduce_window`` max has (select-and-scatter:
each window's gradient to its first maximum, row-major), so it is compared with:
* the slow NumPy reference ``maxpool_grad``, on inputs with many ties (small integers),
  where the first-maximum rule decides every window;
* lax's autodiff of ``reduce_window``, to the bit where windows do not overlap (each
  input position receives at most one value, so nothing is summed) and to float32
  rounding of a sum of at most kh*kw shares where they do;
and forward mode (``jax.jvp``, ``jax.jacfwd``) works, which a ``custom_vjp`` would lose.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import examples, slow_examples

import patternnet
import reference_numpy as ref
from patternnet.backend import layers
from patternnet.backend.maxpool import max_pool, reduce_max

CASES = [  # (input shape, window, strides, padding)
    ((2, 6, 6, 3), (2, 2), (2, 2), ((0, 0), (0, 0))),
    ((2, 7, 7, 2), (3, 3), (2, 2), ((1, 1), (1, 1))),     # ResNet's stem pool, overlapping
    ((1, 5, 5, 2), (2, 2), (2, 2), ((0, 1), (0, 1))),     # ceil mode's extra high row
    ((2, 5, 6, 2), (3, 3), (2, 2), ((1, 1), (0, 1))),     # XLA SAME on odd sizes
    ((1, 6, 5, 1), (3, 2), (1, 2), ((0, 0), (0, 0))),     # unequal window and stride
    ((1, 4, 4, 2), (1, 1), (1, 1), ((0, 0), (0, 0))),
]


def _ties(shape, seed):
    """Values from {0, 1, 2}: almost every window holds several equal maxima."""
    return np.random.default_rng(seed).integers(0, 3, size=shape).astype(np.float32)


def _sum_bound(window, g):
    """float32 rounding of one input's gradient against the exact (float64) sum: it adds
    at most n = kh*kw window shares, each at most max|g|, so the error is below
    (n - 1) * eps * n * max|g| (each of the n - 1 additions rounds by eps/2 of a partial
    sum at most n * max|g|, with margin 2)."""
    n = window[0] * window[1]
    return max(n - 1, 1) * np.finfo(np.float32).eps * n * float(np.abs(g).max())


def _lax_grad(x, g, window, strides, padding):
    return jax.vjp(lambda a: reduce_max(a, window, strides, padding), x)[1](g)[0]


def _our_grad(x, g, window, strides, padding):
    return jax.vjp(lambda a: max_pool(a, window, strides, padding), x)[1](g)[0]


@pytest.mark.parametrize("shape, window, strides, padding", CASES)
def test_gradient_is_the_first_maximum_rule(shape, window, strides, padding):
    x = _ties(shape, 0)
    y = max_pool(jnp.asarray(x), window, strides, padding)
    g = np.random.default_rng(1).normal(size=y.shape).astype(np.float32)
    got = np.asarray(jax.jit(_our_grad, static_argnums=(2, 3, 4))(x, g, window, strides,
                                                                 padding))
    want = ref.maxpool_grad(x, g, window, strides, padding)
    np.testing.assert_allclose(got, want, rtol=0, atol=_sum_bound(window, g))
    np.testing.assert_array_equal(np.asarray(y), np.asarray(reduce_max(x, window, strides,
                                                                       padding)))


@pytest.mark.parametrize("shape, window, strides, padding", CASES)
def test_gradient_equals_lax_autodiff(shape, window, strides, padding):
    for x in (_ties(shape, 2), np.random.default_rng(3).normal(size=shape).astype(np.float32)):
        g = np.random.default_rng(4).normal(
            size=reduce_max(x, window, strides, padding).shape).astype(np.float32)
        ours = np.asarray(_our_grad(x, g, window, strides, padding))
        theirs = np.asarray(_lax_grad(x, g, window, strides, padding))
        if all(s >= k for s, k in zip(strides, window)):
            np.testing.assert_array_equal(ours, theirs)
        else:  # the same shares, summed in another order: float32 rounding of the sums
            np.testing.assert_allclose(ours, theirs, rtol=0, atol=2 * _sum_bound(window, g))


CONFIGS = dict(h=st.integers(1, 7), w=st.integers(1, 7), k=st.integers(1, 3),
               s=st.integers(1, 3), p=st.integers(0, 1), seed=st.integers(0, 2**16))


def _check_random_configuration(h, w, k, s, p, seed):
    if h + 2 * p < k or w + 2 * p < k or p >= k:
        return  # no window fits, or a window of padding only (the checker rejects both)
    shape, window, strides, padding = (1, h, w, 2), (k, k), (s, s), ((p, p), (p, p))
    x = _ties(shape, seed)
    y = reduce_max(x, window, strides, padding)
    g = np.random.default_rng(seed + 1).normal(size=y.shape).astype(np.float32)
    got = np.asarray(_our_grad(x, g, window, strides, padding))
    np.testing.assert_allclose(got, ref.maxpool_grad(x, g, window, strides, padding),
                               rtol=0, atol=_sum_bound(window, g))


@examples(15)  # each example compiles the pool's gradient for its geometry
@given(**CONFIGS)
def test_random_configurations_match_the_reference(h, w, k, s, p, seed):
    _check_random_configuration(h, w, k, s, p, seed)


@pytest.mark.slow
@slow_examples(300)
@given(**CONFIGS)
def test_many_random_configurations_match_the_reference(h, w, k, s, p, seed):
    _check_random_configuration(h, w, k, s, p, seed)


def test_forward_mode_and_second_order_work():
    x = jnp.asarray(np.random.default_rng(5).normal(size=(1, 4, 4, 1)), jnp.float32)
    f = lambda a: max_pool(a, (2, 2), (2, 2), ((0, 0), (0, 0)))  # noqa: E731
    jac_fwd = jax.jacfwd(f)(x)
    jac_rev = jax.jacrev(f)(x)
    np.testing.assert_array_equal(np.asarray(jac_fwd), np.asarray(jac_rev))
    _, t = jax.jvp(f, (x,), (jnp.ones_like(x),))
    np.testing.assert_array_equal(np.asarray(t), np.ones((1, 2, 2, 1)))
    hess = jax.hessian(lambda a: jnp.sum(f(a) ** 2))(x)   # 2 on each window's maximum
    assert float(jnp.sum(hess)) == 8.0


def test_bfloat16():
    x = jnp.asarray(_ties((1, 4, 4, 2), 6), jnp.bfloat16)
    g = jnp.ones((1, 2, 2, 2), jnp.bfloat16)
    got = _our_grad(x, g, (2, 2), (2, 2), ((0, 0), (0, 0)))
    assert got.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(got, np.float32),
                                  np.asarray(_lax_grad(x, g, (2, 2), (2, 2), ((0, 0), (0, 0))),
                                             np.float32))


def test_the_cpu_backend_routes_pool_through_max_pool(monkeypatch):
    calls = []
    monkeypatch.setattr(layers, "_on_cpu", lambda: True)       # as on the CPU backend
    monkeypatch.setattr(layers, "max_pool", lambda *a: calls.append(a) or reduce_max(*a))
    model = patternnet.compile("INPUT(4x4x1) -> POOL(2) -> FC(2)")
    params, state = model.init(0)
    model.apply(params, state, jnp.ones((1, 4, 4, 1)), train=False)
    assert calls == [calls[0]] and calls[0][1:] == ((2, 2), (2, 2), ((0, 0), (0, 0)))
    monkeypatch.setattr(layers, "_on_cpu", lambda: False)   # another backend: lax's op
    model.apply(params, state, jnp.ones((1, 4, 4, 1)), train=False)
    assert len(calls) == 1
