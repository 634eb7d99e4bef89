"""dtype="bfloat16": mixed precision (docs/backend.md, `compile`'s dtype).

Params and compute in bfloat16, BN running statistics and BN arithmetic in float32,
the built-in losses in float32, gradients in bfloat16; export stores bfloat16 arrays as
uint16 bit patterns and loads them back as bfloat16."""

from __future__ import annotations

import json
import zipfile

import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import patternnet  # noqa: E402

NET = ("INPUT(8x8x3) -> CONV(8) -> BN -> RELU "
       "-> (CONV(12, s=2, bias=false) -> BN -> RELU + SKIP) "
       "-> (CONV(12) -> BN -> RELU + SKIP) -> GAP -> FC(4)")


@pytest.fixture(scope="module")
def models():
    m16 = patternnet.compile(NET, dtype="bfloat16")
    m32 = patternnet.compile(NET)
    params, state = m16.init(0)
    x = jax.random.normal(jax.random.key(1), (8, 8, 8, 3))
    return m16, m32, params, state, x


def _leaves(tree):
    return jax.tree_util.tree_leaves(tree)


def test_dtypes_of_params_state_outputs(models):
    m16, _, params, state, x = models
    assert m16.dtype == jnp.bfloat16
    assert all(a.dtype == jnp.bfloat16 for a in _leaves(params))
    assert _leaves(state) and all(a.dtype == jnp.float32 for a in _leaves(state))
    y = m16.forward(params, state, x)
    assert y.dtype == jnp.bfloat16 and y.shape == (8, 4)
    y, new_state = m16.apply(params, state, x, train=True)
    assert y.dtype == jnp.bfloat16
    assert all(a.dtype == jnp.float32 for a in _leaves(new_state))
    # running statistics moved (in float32)
    assert any(not np.array_equal(a, b) for a, b in zip(_leaves(state), _leaves(new_state)))
    outs = m16.intermediates(params, state, x)
    assert outs["input"].dtype == jnp.bfloat16


def test_init_is_the_float32_init_cast(models):
    m16, m32, params, state, _ = models
    p32, s32 = m32.init(0)
    for a, b in zip(_leaves(params), _leaves(p32)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b.astype(jnp.bfloat16)))
    for a, b in zip(_leaves(state), _leaves(s32)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("train", [False, True])
def test_close_to_float32(models, train):
    m16, m32, params, state, x = models
    p32 = jax.tree.map(lambda a: a.astype(jnp.float32), params)
    # non-trivial running statistics for eval mode
    _, state = m32.apply(p32, state, x, train=True)
    y16, s16 = m16.apply(params, state, x, train=train)
    y32, s32 = m32.apply(p32, state, x.astype(jnp.bfloat16).astype(jnp.float32), train=train)
    y16 = np.asarray(y16, np.float32)
    rel = np.linalg.norm(y16 - y32) / np.linalg.norm(y32)
    assert rel < 5e-2, rel
    for a, b in zip(_leaves(s16), _leaves(s32)):
        np.testing.assert_allclose(a, b, rtol=5e-2, atol=5e-2)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_value_and_grad(models, loss):
    m16, _, params, state, x = models
    labels = jnp.array([0, 1, 2, 3, 0, 1, 2, 3]) if loss == "cross_entropy" \
        else jnp.ones((8, 4), jnp.float32)
    (value, new_state), grads = m16.value_and_grad(params, state, x, labels, loss=loss)
    assert value.dtype == jnp.float32 and np.isfinite(value)
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    for g in _leaves(grads):
        assert g.dtype == jnp.bfloat16
        assert np.isfinite(np.asarray(g, np.float32)).all()
    assert any(np.abs(np.asarray(g, np.float32)).max() > 0 for g in _leaves(grads))
    assert all(a.dtype == jnp.float32 for a in _leaves(new_state))


def test_loss_in_float32():
    from patternnet.backend.losses import cross_entropy, mse
    logits = jnp.array([[1.0, 2.0, 3.0]], jnp.bfloat16)
    assert cross_entropy(logits, jnp.array([2])).dtype == jnp.float32
    assert mse(logits, jnp.zeros((1, 3))).dtype == jnp.float32
    assert cross_entropy(logits.astype(jnp.float32), jnp.array([2])).dtype == jnp.float32


def test_adam_reduces_loss(models):
    m16, _, params, state, _ = models
    x = jax.random.normal(jax.random.key(2), (16, 8, 8, 3))
    labels = jax.random.randint(jax.random.key(3), (16,), 0, 4)
    opt = optax.adam(1e-2)
    step = m16.train_step(opt)
    opt_state = opt.init(params)
    first = float(m16.loss(params, state, x, labels, train=True))
    for _ in range(15):
        params, state, opt_state, value = step(params, state, opt_state, x, labels)
        assert np.isfinite(value)
    assert all(a.dtype == jnp.bfloat16 for a in _leaves(params))
    assert all(a.dtype == jnp.float32 for a in _leaves(state))
    last = float(m16.loss(params, state, x, labels, train=True))
    assert last < 0.8 * first, (first, last)


def test_export_roundtrip(models, tmp_path):
    m16, _, params, state, x = models
    path = tmp_path / "bf16.pnx"
    m16.export(path, params, state)
    with zipfile.ZipFile(path) as z:
        manifest = json.loads(z.read("manifest.json"))
        npz = np.load(z.open("params.npz"))
        w = npz["conv1/w"]
    assert manifest["dtype"] == "bfloat16"
    entry = next(e for e in manifest["params"] if e["name"] == "conv1/w")
    assert entry["dtype"] == "bfloat16" and w.dtype == np.uint16
    assert all(e["dtype"] == "float32" for e in manifest["state"])
    loaded = patternnet.load(path)
    assert loaded.params["conv1"]["w"].dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(loaded.params["conv1"]["w"]),
                                  np.asarray(params["conv1"]["w"]))
    assert loaded.state[next(iter(state))]["mean"].dtype == jnp.float32
    y = loaded(np.asarray(x))
    assert y.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(y, np.float32),
                                  np.asarray(m16.forward(params, state, x), np.float32))


def test_float32_unchanged(models):
    _, m32, _, _, _ = models
    params, state = m32.init(0)
    assert all(a.dtype == jnp.float32 for a in _leaves((params, state)))
    assert m32.state_dtype == jnp.float32
