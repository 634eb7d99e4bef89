"""Backend gradients against central finite differences, in float64.

For each layer kind (and for a few small composite networks) the scalar
L(params, x) = sum(apply(params, state, x) * R), with R a fixed random cotangent, is
differentiated by the backend (``jax.grad`` through ``model.apply``, and
``model.value_and_grad`` with its own losses), and each directional derivative — along a
random direction in one parameter array at a time, and in the input — is compared with
the central difference (L(θ + εd) − L(θ − εd)) / 2ε, ε = 1e-6, relative error < 1e-5.

Everything runs inside ``with jax.enable_x64(True):`` (jax's context manager for the
``jax_enable_x64`` flag), so the rest of the test session stays in float32.  Inputs are
continuous random values, so max-pool ties and ReLU kinks are hit with probability ~0.
Train-mode BN differentiates through the batch statistics; train-mode DROPOUT uses a
fixed rng, so its mask is the same in every evaluation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import patternnet

EPS = 1e-6
RTOL = 1e-5


def _jax():
    jax = pytest.importorskip("jax")
    return jax


def to_numpy(tree):
    if isinstance(tree, dict):
        return {k: to_numpy(v) for k, v in tree.items()}
    return np.asarray(tree)


def leaves(tree, prefix=()):
    """(path, array) for every leaf, in a fixed order."""
    if isinstance(tree, dict):
        out = []
        for k in sorted(tree):
            out += leaves(tree[k], prefix + (k,))
        return out
    return [(prefix, tree)]


def replace(tree, path, value):
    """A copy of ``tree`` with the leaf at ``path`` replaced."""
    if not path:
        return value
    out = dict(tree)
    out[path[0]] = replace(tree[path[0]], path[1:], value)
    return out


def get(tree, path):
    for k in path:
        tree = tree[k]
    return tree


def randomize(tree, rng, name=""):
    """Random float64 values with the shapes of ``tree``; positive BN variances and
    scales away from 0, so that every parameter matters."""
    if isinstance(tree, dict):
        return {k: randomize(v, rng, k) for k, v in tree.items()}
    shape = tuple(tree.shape)
    if name == "var":
        return rng.uniform(0.5, 2.0, shape)
    if name == "scale":
        return rng.uniform(0.5, 1.5, shape)
    if name == "w" and len(shape) >= 2:
        return rng.normal(0.0, 2.0 / math.sqrt(int(np.prod(shape[:-1]))), shape)
    return rng.normal(0.0, 0.5, shape)


def assert_directional(f, grad, point, direction, what):
    """f: float64 scalar function of the point; grad: its gradient at the point."""
    ad = float(np.sum(np.asarray(grad, np.float64) * direction))
    hi, lo = f(point + EPS * direction), f(point - EPS * direction)
    fd = (hi - lo) / (2 * EPS)
    # floors: a directional derivative much smaller than |grad|·|d| is a cancellation,
    # judged on the scale of the gradient instead; and the central difference itself
    # is only as good as the rounding of f (float64) divided by eps
    scale = max(abs(fd), abs(ad), 1e-4 * float(np.linalg.norm(grad) * np.linalg.norm(direction)))
    noise = 100 * np.finfo(np.float64).eps * max(abs(hi), abs(lo), 1.0) / EPS
    assert abs(ad - fd) <= RTOL * scale + noise, \
        f"{what}: autodiff {ad!r} vs finite difference {fd!r}"


def check_grads(src, xshape, train=False, seed=0, n_dirs=1, value_and_grad=False, **kw):
    """Every parameter array and the input: backend gradient vs central differences
    (and, with ``value_and_grad``, ``model.value_and_grad``'s gradients too)."""
    jax = _jax()
    import jax.numpy as jnp
    with jax.enable_x64(True):
        model = patternnet.compile(src, dtype="float64", **kw)
        # shapes only (tracing, no compilation): the values are set below
        params0, state0 = jax.eval_shape(model.init, jax.random.PRNGKey(seed))
        assert all(a.dtype == np.float64 for _, a in leaves(params0) + leaves(state0))
        rng = np.random.default_rng(seed)
        params = randomize(params0, rng)
        state = randomize(state0, rng)
        x = rng.normal(0.0, 1.0, xshape)
        key = jax.random.PRNGKey(seed + 100)
        y0, _ = jax.eval_shape(lambda p, xx: model.apply(p, state, xx, train=train, rng=key),
                               params, x)
        assert y0.dtype == np.float64, "the backend did not compute in float64"
        cot = rng.normal(size=tuple(y0.shape))

        def loss(p, xx):
            y, _ = model.apply(p, state, xx, train=train, rng=key)
            return jnp.sum(y * cot)

        # one compilation serves both the gradient and the finite differences
        vg = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
        _, (g_params, g_x) = vg(params, x)
        g_params = to_numpy(g_params)
        assert sorted(p for p, _ in leaves(g_params)) == sorted(p for p, _ in leaves(params))

        def value(p, xx):
            return float(vg(p, xx)[0])

        for _ in range(n_dirs):
            d = rng.normal(size=xshape)
            assert_directional(lambda xx: value(params, xx), g_x, x, d, "d/dinput")
        for path, leaf in leaves(params):
            for _ in range(n_dirs):
                d = rng.normal(size=np.shape(leaf))
                assert_directional(lambda v, path=path: value(replace(params, path, v), x),
                                   get(g_params, path), leaf, d, "d/d" + ".".join(path))

        if value_and_grad:
            losses = value_and_grad if isinstance(value_and_grad, tuple) else None
            check_value_and_grad(model, params, state, x, tuple(y0.shape), train, key, rng,
                                 losses)


def check_value_and_grad(model, params, state, x, yshape, train, key, rng, losses=None):
    """``model.value_and_grad`` with its built-in losses: its gradient against central
    differences of the loss it reports.  By default cross_entropy for vector outputs and
    mse for images."""
    if losses is None:
        losses = ("cross_entropy",) if len(yshape) == 2 else ("mse",)
    labels_for = {}
    if "mse" in losses:
        labels_for["mse"] = rng.normal(size=yshape)
    if "cross_entropy" in losses:
        labels_for["cross_entropy"] = rng.integers(0, yshape[-1], size=yshape[0])
    for loss_name, labels in labels_for.items():
        def value(p, labels=labels, loss_name=loss_name):  # this iteration's
            (l, _), _ = model.value_and_grad(p, state, x, labels, loss=loss_name, train=train,
                                             rng=key)
            return float(l)

        (l0, new_state), grads = model.value_and_grad(params, state, x, labels, loss=loss_name,
                                                      train=train, rng=key)
        assert np.shape(l0) == ()
        grads = to_numpy(grads)
        for path, leaf in leaves(params):
            d = rng.normal(size=np.shape(leaf))
            assert_directional(lambda v, path=path: value(replace(params, path, v)),
                               get(grads, path), leaf, d,
                               f"value_and_grad({loss_name}) d/d" + ".".join(path))


# --------------------------------------------------------------------------- layers

LAYER_CASES = [
    # CONV
    ("INPUT(5x5x3) -> CONV(4)", (2, 5, 5, 3), False),
    ("INPUT(6x6x2) -> CONV(3, 3, s=2)", (2, 6, 6, 2), False),                 # same, lo 0 hi 1
    ("INPUT(7x6x2) -> CONV(3, (3, 2), s=(2, 1), p=(1, 2))", (2, 7, 6, 2), False),
    ("INPUT(7x7x2) -> CONV(3, 3, p=valid, dilation=2)", (2, 7, 7, 2), False),
    ("INPUT(5x5x4) -> CONV(6, 3, p=1, groups=2)", (2, 5, 5, 4), False),
    ("INPUT(5x5x3) -> CONV(4, 3, p=4, bias=false)", (2, 5, 5, 3), False),
    ("INPUT(8x8x2) -> CONV(3, 2, s=3, p=0)", (2, 8, 8, 2), False),
    ("INPUT(1x1x3) -> CONV(2, 3)", (2, 1, 1, 3), False),                      # conv_patches
    ("INPUT(2x2x3) -> CONV(4, 3)", (2, 2, 2, 3), False),                      # conv_patches
    ("INPUT(4x5x2) -> CONV(3, 3, s=2, p=1)", (2, 4, 5, 2), False),            # conv_patches
    ("INPUT(3x3x2) -> CONV(2, 3, p=2, dilation=2)", (2, 3, 3, 2), False),     # conv_patches
    # pooling
    ("INPUT(6x6x2) -> POOL", (2, 6, 6, 2), False),
    ("INPUT(7x7x2) -> POOL(3, s=2, p=1)", (2, 7, 7, 2), False),
    ("INPUT(5x5x2) -> POOL(2, ceil=true)", (2, 5, 5, 2), False),
    ("INPUT(5x6x2) -> POOL(3, s=2, p=same)", (2, 5, 6, 2), False),
    ("INPUT(6x6x2) -> AVGPOOL", (2, 6, 6, 2), False),
    ("INPUT(7x7x2) -> AVGPOOL(3, s=2, p=1)", (2, 7, 7, 2), False),
    ("INPUT(4x5x2) -> AVGPOOL(3, s=2, p=1, ceil=true)", (2, 4, 5, 2), False),
    ("INPUT(5x5x2) -> AVGPOOL(2, ceil=true)", (2, 5, 5, 2), False),
    ("INPUT(5x6x2) -> AVGPOOL(3, s=1, p=same)", (2, 5, 6, 2), False),
    # GAP, FLATTEN, FC
    ("INPUT(3x4x5) -> GAP", (2, 3, 4, 5), False),
    ("INPUT(3x4x5) -> FLATTEN", (2, 3, 4, 5), False),
    ("INPUT(3x4x5) -> FC(4)", (2, 3, 4, 5), False),
    ("INPUT(7) -> FC(3)", (3, 7), False),
    ("INPUT(7) -> FC(3, bias=false)", (3, 7), False),
    # activations
    ("INPUT(3x3x4) -> RELU", (2, 3, 3, 4), False),
    ("INPUT(3x3x4) -> TANH", (2, 3, 3, 4), False),
    ("INPUT(3x3x4) -> SIGMOID", (2, 3, 3, 4), False),
    ("INPUT(3x3x4) -> GELU", (2, 3, 3, 4), False),
    ("INPUT(3x3x4) -> GELU(tanh=true)", (2, 3, 3, 4), False),
    ("INPUT(3x3x4) -> SOFTMAX", (2, 3, 3, 4), False),
    ("INPUT(6) -> SOFTMAX", (3, 6), False),
    ("INPUT(3x3x4) -> LRELU(0.1)", (2, 3, 3, 4), False),
    ("INPUT(3x3x4) -> ELU(0.7)", (2, 3, 3, 4), False),
    ("INPUT(3x3x4) -> ID", (2, 3, 3, 4), False),
    ("INPUT(3x3x4) -> RELU6", (2, 3, 3, 4), False),
    ("INPUT(3x3x4) -> HARDSIGMOID", (2, 3, 3, 4), False),
    ("INPUT(3x3x4) -> HARDSWISH", (2, 3, 3, 4), False),
    ("INPUT(3x3x4) -> SILU", (2, 3, 3, 4), False),
    # BN
    ("INPUT(3x3x4) -> BN", (3, 3, 3, 4), True),
    ("INPUT(3x3x4) -> BN(eps=1e-2, momentum=0.3)", (3, 3, 3, 4), False),
    ("INPUT(5) -> BN", (4, 5), True),
    ("INPUT(5) -> BN", (4, 5), False),
    # LRN
    ("INPUT(3x3x6) -> LRN", (2, 3, 3, 6), False),
    ("INPUT(3x3x6) -> LRN(size=4, alpha=2.0, beta=0.75, k=1)", (2, 3, 3, 6), False),
    # DROPOUT
    ("INPUT(4x4x3) -> DROPOUT(0.3)", (2, 4, 4, 3), True),
    ("INPUT(4x4x3) -> DROPOUT(0.3)", (2, 4, 4, 3), False),
    # the modern vocabulary
    ("INPUT(3x3x4) -> LAYERNORM", (2, 3, 3, 4), False),
    ("INPUT(5) -> LAYERNORM(eps=1e-3)", (3, 5), False),
    ("INPUT(3x3x4) -> GROUPNORM(2)", (2, 3, 3, 4), False),
    ("INPUT(6) -> GROUPNORM(3)", (2, 6), False),
    ("INPUT(3x3x4) -> SCALE(0.5)", (2, 3, 3, 4), False),
    ("INPUT(3x3x4) -> DROPPATH(0.5)", (4, 3, 3, 4), True),
    ("INPUT(3x3x4) -> DROPPATH(0.5)", (4, 3, 3, 4), False),
    ("INPUT(3x3x4) -> CONV(4) -> (SPLIT(2, 0) | SPLIT(2, 1) -> CONV(2)) -> SHUFFLE",
     (2, 3, 3, 4), False),
    ("INPUT(3x3x2) -> UPSAMPLE", (2, 3, 3, 2), False),
    ("INPUT(3x3x2) -> UPSAMPLE(size=5x4, bilinear=true)", (2, 3, 3, 2), False),
    ("INPUT(3x3x2) -> UPSAMPLE(bilinear=true, corners=true)", (2, 3, 3, 2), False),
    ("INPUT(3x3x2) -> CONVT(3)", (2, 3, 3, 2), False),
    ("INPUT(3x4x4) -> CONVT(4, 3, s=2, p=1, output_padding=1, groups=2)", (2, 3, 4, 4), False),
    ("INPUT(4x4x2) -> CONVT(2, 3, s=1, p=2, dilation=2, bias=false)", (2, 4, 4, 2), False),
    # branches
    ("INPUT(5x5x3) -> (CONV(2, 1) | CONV(3) | POOL(3, s=1, p=1))", (2, 5, 5, 3), False),
    ("INPUT(4x4x3) -> (CONV(3) + ID)", (2, 4, 4, 3), False),
    ("INPUT(4x4x3) -> (CONV(3) + SKIP)", (2, 4, 4, 3), False),
    ("INPUT(6x6x3) -> (CONV(4, s=2) + SKIP)", (3, 6, 6, 3), True),
    ("INPUT(6x6x3) -> (CONV(4, s=2) + SKIP)", (3, 6, 6, 3), False),
]


def _id(case):
    src, _, train = case
    return src.split("-> ", 1)[1] + (" [train]" if train else "")


@pytest.mark.parametrize("case", LAYER_CASES, ids=[_id(c) for c in LAYER_CASES])
def test_layer_gradients(case):
    src, xshape, train = case
    check_grads(src, xshape, train=train)


VG_CASES = [
    ("INPUT(7) -> FC(3)", (3, 7), False),
    ("INPUT(7) -> FC(4) -> SOFTMAX", (3, 7), False),    # cross_entropy on SOFTMAX's input
    ("INPUT(3x3x4) -> BN", (3, 3, 3, 4), True),
    ("INPUT(5) -> BN -> DROPOUT(0.4)", (4, 5), True),
    ("INPUT(5x5x3) -> CONV(4, 3, s=2) -> GAP", (2, 5, 5, 3), True),
]


@pytest.mark.parametrize("case", VG_CASES, ids=[_id(c) for c in VG_CASES])
def test_value_and_grad(case):
    """``model.value_and_grad`` (mse, and cross_entropy on vector outputs)."""
    src, xshape, train = case
    losses = ("mse", "cross_entropy") if len(xshape) == 2 or "GAP" in src else ("mse",)
    check_grads(src, xshape, train=train, value_and_grad=losses)


# --------------------------------------------------------------------------- composites

COMPOSITES = {
    "conv_bn_relu_pool_fc": (
        "INPUT(8x8x3) -> CONV(4, 3, s=1, p=1) -> BN -> RELU -> POOL(2) -> FC(5)",
        (4, 8, 8, 3)),
    "residual_with_projection": (
        "basic(c, s=1) = (CONV(c, s=s, bias=false) -> BN -> RELU -> CONV(c, bias=false) -> BN "
        "+ SKIP) -> RELU\n"
        "INPUT(6x6x3) -> basic(3) -> basic(4, s=2) -> GAP -> FC(3)",
        (3, 6, 6, 3)),
    "squeeze_excitation": (  # a vector gate, a 1x1 gate and a spatial gate
        "INPUT(5x5x3) -> CONV(4) -> (ID * GAP -> FC(2) -> RELU -> FC(4) -> SIGMOID) "
        "-> (ID * AVGPOOL(5) -> CONV(2, 1) -> SILU -> CONV(4, 1) -> HARDSIGMOID) "
        "-> (CONV(4) * CONV(1, 1) -> SIGMOID) -> GAP -> FC(3)",
        (2, 5, 5, 3)),
    "inception_like": (
        "INPUT(6x6x3) -> CONV(4, 3) -> RELU -> (CONV(2, 1) | CONV(2, 1) -> RELU -> CONV(3, 3) "
        "| CONV(2, 1) -> CONV(2, 5) | POOL(3, s=1, p=1) -> CONV(2, 1)) -> AVGPOOL(3, s=2, p=1) "
        "-> FC(4) -> TANH -> DROPOUT(0.2) -> FC(3)",
        (2, 6, 6, 3)),
}


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", sorted(COMPOSITES))
def test_composite_gradients(name, train):
    src, xshape = COMPOSITES[name]
    check_grads(src, xshape, train=train, seed=1, value_and_grad=True)


def test_x64_does_not_leak():
    """The float64 checks above must leave the session in float32."""
    jax = _jax()
    import jax.numpy as jnp
    assert jnp.ones(2).dtype == jnp.float32
    with jax.enable_x64(True):
        assert jnp.ones(2).dtype == jnp.float64
    assert jnp.ones(2).dtype == jnp.float32
