"""JAX's CPU numerics for PatternNet's accumulating layers, against the NumPy reference,
under PatternNet's own XLA:CPU configuration (tests/conftest.py applies it).

This guards the jax/jaxlib pin in pyproject.toml: upstream has shipped CPU releases whose
jitted results were silently wrong (jax-ml/jax#39103).  Each bound is the textbook one
for a float32 sum of K products, |fl(sum) - sum| <= K * u * sum|terms| with u = eps/2,
taken as K * eps * sum|terms| (margin 2); sum|terms| is the reference run on |x| and |w|.
Inputs and weights are float32 values, so the float64 reference sees exactly what the
backend sees.  A failure names the jax version: it means this JAX computes our layers
wrongly on this CPU, not that a tolerance needs widening.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import patternnet
import reference_numpy as ref

EPS = float(np.finfo(np.float32).eps)


def _fail_loudly(kind, got, want, bound):
    err = np.abs(got - want)
    if not (err <= bound).all():
        i = np.unravel_index(np.argmax(err - bound), err.shape)
        pytest.fail(f"jax {jax.__version__} (jaxlib {jax.lib.__version__}) on "
                    f"{jax.default_backend()}: {kind} differs from the NumPy reference by "
                    f"{err[i]:.3g} at {i}, beyond the float32 bound {bound[i]:.3g}; this JAX "
                    f"computes PatternNet's layers wrongly here (see pyproject.toml's pin)")


def _run(src, params, x):
    model = patternnet.compile(src)
    p, s = model.init(0)
    p = jax.tree_util.tree_map(lambda a, b: np.asarray(b, np.float32), p, params)
    fwd = jax.jit(lambda p, x: model.apply(p, s, x, train=False)[0])
    return np.asarray(fwd(p, x), np.float64)


CONVS = [  # (input HxWxC, filters, kernel, stride, padding, dilation) - patches path included
    ((12, 12, 8), 16, 3, 1, 1, 1), ((11, 11, 5), 7, 3, 2, 1, 1), ((9, 9, 4), 6, 5, 2, 2, 1),
    ((8, 8, 6), 4, 3, 1, 2, 2), ((2, 2, 32), 32, 3, 1, 1, 1), ((1, 1, 24), 8, 3, 1, 1, 1),
    ((16, 16, 3), 32, 7, 2, 3, 1),
]


@pytest.mark.parametrize("hwc, f, k, s, p, d", CONVS)
def test_conv(hwc, f, k, s, p, d):
    rng = np.random.default_rng(sum(hwc) + f + k)
    x = rng.normal(size=(4, *hwc)).astype(np.float32)
    w = rng.normal(size=(k, k, hwc[2], f)).astype(np.float32)
    b = rng.normal(size=(f,)).astype(np.float32)
    src = f"INPUT({hwc[0]}x{hwc[1]}x{hwc[2]}) -> CONV({f}, {k}, s={s}, p={p}, dilation={d})"
    got = _run(src, {"conv1": {"w": w, "b": b}}, x)
    pad = ((p, p), (p, p))
    want = ref.conv2d(x, w, b, s, pad, d)
    terms = ref.conv2d(np.abs(x), np.abs(w), np.abs(b), s, pad, d)
    _fail_loudly(f"CONV {src}", got, want, (k * k * hwc[2] + 1) * EPS * terms)


@pytest.mark.parametrize("din, units", [(300, 40), (2048, 10)])
def test_fc(din, units):
    rng = np.random.default_rng(din)
    x = rng.normal(size=(8, din)).astype(np.float32)
    w = rng.normal(size=(din, units)).astype(np.float32)
    b = rng.normal(size=(units,)).astype(np.float32)
    got = _run(f"INPUT({din}) -> FC({units})", {"fc1": {"w": w, "b": b}}, x)
    _fail_loudly("FC", got, ref.fc(x, w, b), (din + 1) * EPS * ref.fc(np.abs(x), np.abs(w),
                                                                        np.abs(b)))


def test_pools_and_gap():
    x = np.random.default_rng(7).normal(size=(3, 9, 9, 5)).astype(np.float32)
    pad = ((1, 1), (1, 1))
    got = _run("INPUT(9x9x5) -> POOL(3, s=2, p=1)", {}, x)
    _fail_loudly("POOL", got, ref.maxpool(x, 3, 2, pad), np.zeros(got.shape))  # selects: exact
    got = _run("INPUT(9x9x5) -> AVGPOOL(3, s=2, p=1)", {}, x)
    want = ref.avgpool(x, 3, 2, pad)
    _fail_loudly("AVGPOOL", got, want, (9 + 1) * EPS * ref.avgpool(np.abs(x), 3, 2, pad))
    got = _run("INPUT(9x9x5) -> GAP", {}, x)
    _fail_loudly("GAP", got, ref.gap(x), (81 + 1) * EPS * ref.gap(np.abs(x)))


def test_max_pool_gradient():
    """The derivative PatternNet's CPU pooling computes itself (backend/maxpool.py)."""
    x = np.random.default_rng(8).integers(0, 3, size=(2, 8, 8, 3)).astype(np.float32)
    model = patternnet.compile("INPUT(8x8x3) -> POOL(3, s=2, p=1)")
    p, s = model.init(0)
    g = np.random.default_rng(9).normal(size=(2, 4, 4, 3)).astype(np.float32)
    _, vjp = jax.vjp(lambda a: model.apply(p, s, a, train=False)[0], x)
    got = np.asarray(vjp(g)[0], np.float64)
    want = ref.maxpool_grad(x, g, 3, 2, ((1, 1), (1, 1)))
    # an input is in at most 4 of these 3x3 stride-2 windows: a sum of <= 4 shares
    _fail_loudly("POOL's gradient", got, want, 4 * EPS * 4 * np.abs(g).max() * np.ones(got.shape))
