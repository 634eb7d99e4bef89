"""Repeats as ``lax.scan``: the scanned and the unrolled runs of one network agree.

A repeat whose copies are identical from some copy on runs that uniform tail as one
``jax.lax.scan`` over parameters stacked inside the trace (docs/backend.md, "Repeats").
Here every mode of a few small networks runs both ways, from the same parameters, state
and rng: outputs, BN running statistics, dropout masks and gradients must agree to float32
rounding.  Compile times are measured by bench/bench_compile.py, not here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import patternnet  # noqa: E402
from patternnet.backend import Model  # noqa: E402
from patternnet.backend.runner import SCAN_MIN  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TOL = dict(rtol=1e-5, atol=1e-5)

NETS = {
    "bn-relu": "INPUT(8x8x4) -> [CONV(4) -> BN -> RELU]*6 -> GAP -> FC(3)",
    "nested-pool": "INPUT(8x8x4) -> [[CONV(4) -> RELU]*3 -> POOL]*2 -> GAP -> FC(3)",
    "residual": "INPUT(8x8x8) -> [ (CONV(8) -> BN + SKIP) -> RELU ]*5 -> GAP -> FC(3)",
    "first-differs": "INPUT(8x8x3) -> [CONV(8) -> RELU]*5 -> GAP -> FC(3)",
    "dropout": "INPUT(8x8x3) -> [CONV(4) -> BN -> RELU -> DROPOUT(0.5)]*5 -> GAP -> FC(3)",
    "nested-scan": "INPUT(4x4x2) -> [[CONV(2) -> BN -> DROPOUT(0.3)]*4 -> CONV(2, 1)]*4 "
                   "-> GAP -> FC(3)",
}


def pair(src: str):
    scanned = patternnet.compile(src, scan=True)
    return scanned, Model(scanned.checked, scan=False)


def assert_trees_close(a, b):
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), **TOL)


def batch(model: Model, n: int = 3):
    return jax.random.normal(jax.random.key(7), (n,) + model.input_shape)


# --- which repeats scan ----------------------------------------------------------------


def test_the_uniform_tail_is_found():
    assert pair(NETS["bn-relu"])[0].scanned() == [("conv1", "relu6", 6)]
    # copy 1 maps 3 -> 8 channels: unrolled; copies 2..5 scan
    assert pair(NETS["first-differs"])[0].scanned() == [("conv2", "relu5", 4)]
    # the outer copies differ (8x8 vs 4x4): only the inner repeats scan
    assert pair(NETS["nested-pool"])[0].scanned() == [("conv1", "relu3", 3),
                                                       ("conv4", "relu6", 3)]
    # the outer repeat scans, and inside its body the inner repeat scans too
    outer, inner = pair(NETS["nested-scan"])[0].scanned()
    assert outer[2] == 4 and inner == ("conv1", "dropout4", 4)
    assert pair(NETS["bn-relu"])[1].scanned() == []


def test_auto_scans_from_scan_min_copies(monkeypatch):
    # "auto" unrolls on XLA:CPU (slow convolutions in loop bodies); here as on an accelerator
    monkeypatch.setattr("patternnet.backend.runner.AUTO_SCAN_ON_CPU", True)
    below = f"INPUT(8x8x4) -> [CONV(4) -> RELU]*{SCAN_MIN - 1} -> GAP -> FC(3)"
    at = f"INPUT(8x8x4) -> [CONV(4) -> RELU]*{SCAN_MIN} -> GAP -> FC(3)"
    assert patternnet.compile(below).scanned() == []
    assert patternnet.compile(at).scanned() == [("conv1", f"relu{SCAN_MIN}", SCAN_MIN)]
    assert patternnet.compile(below, scan=True).scanned() != []
    assert patternnet.compile(at, scan=False).scanned() == []
    assert patternnet.compile(at).scan == "auto"
    monkeypatch.setattr("patternnet.backend.runner.AUTO_SCAN_ON_CPU", False)
    want = [] if jax.default_backend() == "cpu" else [("conv1", f"relu{SCAN_MIN}", SCAN_MIN)]
    assert patternnet.compile(at).scanned() == want


def test_scan_option_is_checked():
    with pytest.raises(ValueError, match="scan="):
        patternnet.compile(NETS["bn-relu"], scan="always")
    model = patternnet.compile(NETS["bn-relu"], scan=True)
    assert model.scan is True
    with pytest.raises(AttributeError):
        model.scan = False  # traced into the jitted functions: compile again instead


def test_the_jaxpr_has_a_scan():
    scanned, unrolled = pair(NETS["bn-relu"])
    params, state = scanned.init(0)
    x = batch(scanned)
    assert "scan" in str(jax.make_jaxpr(lambda p, s: scanned.apply(p, s, x))(params, state))
    assert "scan" not in str(jax.make_jaxpr(lambda p, s: unrolled.apply(p, s, x))(params, state))


def test_public_pytree_is_per_copy():
    """Stacking happens inside the trace: params, state and grads keep one entry per copy."""
    scanned, unrolled = pair(NETS["residual"])
    ps, ss = scanned.init(0)
    pu, su = unrolled.init(0)
    assert_trees_close((ps, ss), (pu, su))
    assert set(ps) == {f"conv{i}" for i in range(1, 6)} | {f"bn{i}" for i in range(1, 6)} | {"fc1"}
    assert sum(a.size for a in jax.tree_util.tree_leaves(ps)) == scanned.checked.params


# --- the same numbers ------------------------------------------------------------------


def everything(model: Model, params, state, x, labels, rng):
    """One jitted program per model (compiles dominate on a CPU): the inference output,
    the training output and new state, and the training loss, new state and gradients."""
    def run(params, state, x, labels, rng):
        y_eval, _ = model.apply(params, state, x, train=False)
        y_train, new_state = model.apply(params, state, x, train=True, rng=rng)
        vg = jax.value_and_grad(lambda p: model.loss(p, state, x, labels, train=True, rng=rng))
        return y_eval, y_train, new_state, vg(params)
    return jax.jit(run)(params, state, x, labels, rng)


@pytest.mark.parametrize("name", list(NETS))
def test_scan_equals_unrolled(name):
    scanned, unrolled = pair(NETS[name])
    params, state = scanned.init(1)
    x = batch(scanned)
    labels = jnp.array([0, 2, 1])
    rng = jax.random.key(3)
    # outputs in both modes, BN running statistics, dropout masks (same rng), gradients
    got = everything(scanned, params, state, x, labels, rng)
    want = everything(unrolled, params, state, x, labels, rng)
    assert_trees_close(got, want)
    if state:
        assert not all(np.allclose(a, b) for a, b in
                       zip(jax.tree_util.tree_leaves(got[2]), jax.tree_util.tree_leaves(state)))
    grads = got[3][1]
    assert all(float(jnp.abs(g).max()) > 0 for g in jax.tree_util.tree_leaves(grads))


def test_jitted_methods_agree():
    """``forward`` and ``value_and_grad`` (the model's own jitted functions)."""
    scanned, unrolled = pair(NETS["bn-relu"])
    params, state = scanned.init(1)
    x, labels = batch(scanned), jnp.array([0, 2, 1])
    np.testing.assert_allclose(scanned.forward(params, state, x),
                               unrolled.forward(params, state, x), **TOL)
    assert_trees_close(scanned.value_and_grad(params, state, x, labels),
                       unrolled.value_and_grad(params, state, x, labels))


def test_dropout_masks_differ_per_copy_and_match_unrolled():
    src = "INPUT(16) -> [FC(16, bias=false) -> DROPOUT(0.5)]*4"
    scanned, unrolled = pair(src)
    params, _ = scanned.init(0)
    eye = {k: {"w": jnp.eye(16)} for k in params}    # every FC the identity
    x = jnp.ones((1, 16))
    rng = jax.random.key(11)
    outs_u = unrolled.intermediates(eye, {}, x, train=True, rng=rng)
    ys, _ = scanned.apply(eye, {}, x, train=True, rng=rng)
    np.testing.assert_allclose(ys, outs_u["dropout4"], **TOL)
    masks = [np.asarray(outs_u[f"dropout{i}"]) != 0 for i in range(1, 5)]
    assert any((masks[0] != m).any() for m in masks[1:])   # not one mask reused
    assert scanned.scanned() == [("fc1", "dropout4", 4)]


def test_eval_mode_state_and_gradients():
    scanned, unrolled = pair(NETS["residual"])
    params, state = scanned.init(1)
    # non-trivial running statistics
    state = jax.tree_util.tree_map(lambda a: a + 0.25, state)
    x = batch(scanned)
    labels = jnp.array([1, 0, 2])
    (ls, ns), gs = scanned.value_and_grad(params, state, x, labels, train=False)
    (lu, nu), gu = unrolled.value_and_grad(params, state, x, labels, train=False)
    np.testing.assert_allclose(ls, lu, **TOL)
    assert_trees_close(ns, state)
    assert_trees_close(nu, state)
    assert_trees_close(gs, gu)


def test_train_step_under_scan():
    scanned, unrolled = pair(NETS["first-differs"])
    params, state = scanned.init(0)
    opt = optax.sgd(0.1)
    x, labels = batch(scanned), jnp.array([0, 1, 2])
    outs = [m.train_step(opt)(params, state, opt.init(params), x, labels) for m in (scanned, unrolled)]
    assert_trees_close(outs[0], outs[1])


def test_intermediates_and_a_final_softmax_in_a_repeat():
    """``intermediates`` runs unrolled (every copy's output is kept); a repeat that holds
    the final SOFTMAX (the cross-entropy skips it) runs unrolled too."""
    src = "INPUT(6) -> [FC(6) -> SOFTMAX]*5"
    scanned, unrolled = pair(src)
    assert scanned.scanned() == [("fc1", "softmax5", 5)]
    params, state = scanned.init(0)
    x = jax.random.normal(jax.random.key(2), (4, 6))
    outs = scanned.intermediates(params, state, x)
    assert len(outs) == 11
    np.testing.assert_allclose(outs["softmax5"], scanned.forward(params, state, x), **TOL)
    labels = jnp.array([0, 1, 2, 5])
    (ls, _), gs = scanned.value_and_grad(params, state, x, labels)
    (lu, _), gu = unrolled.value_and_grad(params, state, x, labels)
    np.testing.assert_allclose(ls, lu, **TOL)
    assert_trees_close(gs, gu)


@pytest.mark.parametrize("file, net", [("resnet.pn", "resnet152"), ("vgg.pn", "vgg19"),
                                       ("googlenet.pn", "googlenet")], ids=str)
def test_example_shapes_under_scan(file, net):
    """Tracing only: scanned examples keep every output shape and the state tree."""
    try:
        model = patternnet.compile(str(EXAMPLES / file), net=net, scan=True)
    except patternnet.PatternNetError:
        pytest.skip(f"{file} has no such network")
    params, state = jax.eval_shape(model.init, jax.random.key(0))
    x = jax.ShapeDtypeStruct((2,) + model.input_shape, jnp.float32)
    for train in (False, True):
        y, new = jax.eval_shape(
            lambda p, s, x: model.apply(p, s, x, train=train,  # noqa: B023 (traced now)
                                        rng=jax.random.key(1)),
            params, state, x)
        assert tuple(y.shape) == (2,) + model.output_shape
        assert jax.tree_util.tree_structure(new) == jax.tree_util.tree_structure(state)


# --- layout="stacked": each uniform tail stored stacked ---------------------------------


def stacked_pair(src: str, scan=True):
    per_copy = patternnet.compile(src, scan=False)
    return per_copy, Model(per_copy.checked, scan=scan, layout="stacked")


def test_stacked_layout_shapes_and_counts():
    per_copy, stacked = stacked_pair(NETS["first-differs"])
    params, state = stacked.init(0)
    # copy 1 maps 3 -> 8 channels and keeps its own entry; copies 2..5 live under conv2
    assert set(params) == {"conv1", "conv2", "fc1"}
    assert params["conv2"]["w"].shape == (4, 3, 3, 8, 8)
    assert params["conv1"]["w"].shape == (3, 3, 3, 8)
    assert stacked.stacked() == [("conv2", 4)]
    assert stacked.layout == "stacked" and per_copy.layout == "per_copy"
    assert sum(a.size for a in jax.tree_util.tree_leaves(params)) == stacked.checked.params
    # the same numbers as the per-copy init, moved
    assert_trees_close(stacked.unstack(params), per_copy.init(0)[0])
    assert_trees_close(stacked.stack(per_copy.init(0)[0]), params)


def test_stack_and_unstack_are_inverse_and_pure():
    per_copy, stacked = stacked_pair(NETS["residual"])
    params, state = per_copy.init(2)
    s_params, s_state = stacked.stack(params), stacked.stack(state)
    assert set(s_state) == {"bn1"} and s_state["bn1"]["mean"].shape == (5, 8)
    assert_trees_close(stacked.unstack(s_params), params)
    assert_trees_close(stacked.unstack(s_state), state)
    assert "conv2" in params  # the input tree is left alone
    assert per_copy.stack(params) == params  # per-copy layout: the identity


@pytest.mark.parametrize("name, scan", [("residual", True), ("dropout", False),
                                        ("nested-scan", True)])
def test_stacked_layout_equals_per_copy(name, scan):
    """Outputs, new state (restacked), dropout masks and gradients (stacked like params)."""
    per_copy, stacked = stacked_pair(NETS[name], scan)
    params, state = per_copy.init(1)
    x, labels, rng = batch(per_copy), jnp.array([0, 2, 1]), jax.random.key(3)
    want = everything(per_copy, params, state, x, labels, rng)
    got = everything(stacked, stacked.stack(params), stacked.stack(state), x, labels, rng)
    y_eval, y_train, new_state, (loss, grads) = got
    assert_trees_close((y_eval, y_train, loss), want[:2] + (want[3][0],))
    assert_trees_close(stacked.unstack(new_state), want[2])
    assert_trees_close(stacked.unstack(grads), want[3][1])


def test_stacked_scan_program_does_not_grow_with_copies():
    """The point of the layout: no per-copy stacking glue in the scanned program."""
    sizes = []
    for k in (4, 32):
        model = patternnet.compile(f"INPUT(8x8x4) -> [CONV(4) -> BN -> RELU]*{k} -> GAP -> FC(3)",
                                   scan=True, layout="stacked")
        params, state = model.init(0)
        jaxpr = jax.make_jaxpr(
            lambda p, s, x, model=model: model.value_and_grad(p, s, x, jnp.zeros(2, int)))(
            params, state, jnp.zeros((2, 8, 8, 4)))
        sizes.append(len(str(jaxpr)))
    assert sizes[1] < sizes[0] * 1.05


def test_stacked_layout_errors_are_clear():
    per_copy, stacked = stacked_pair(NETS["bn-relu"])
    params, state = per_copy.init(0)
    x = batch(per_copy)
    with pytest.raises(ValueError, match="model.stack"):
        stacked.apply(params, state, x)  # a per-copy tree given to the stacked model
    with pytest.raises(ValueError,
                       match=r"params\['bn1'\]\['bias'\] has shape \(6, 4\).*model.unstack"):
        per_copy.apply(stacked.stack(params), state, x)  # and the other way round
    with pytest.raises(ValueError, match="layout="):
        patternnet.compile(NETS["bn-relu"], layout="flat")
    s_params = stacked.stack(params)
    short = jax.tree_util.tree_map(lambda a: a[:3] if a.ndim > 1 else a, s_params)
    unrolled = Model(per_copy.checked, scan=False, layout="stacked")
    with pytest.raises(ValueError, match=r"\(3, 4\); this model expects \(6, 4\)"):
        unrolled.apply(short, stacked.stack(state), x)


def test_stacked_layout_exports(tmp_path):
    per_copy, stacked = stacked_pair(NETS["residual"])
    params, state = stacked.init(0)
    path = tmp_path / "net.pnx"
    stacked.export(path, params, state)
    loaded = patternnet.load(path)
    x = batch(stacked)
    np.testing.assert_allclose(loaded(x), stacked.forward(params, state, x), **TOL)
    np.testing.assert_allclose(loaded(x), per_copy.forward(*map(stacked.unstack, (params, state)),
                                                          x), **TOL)
