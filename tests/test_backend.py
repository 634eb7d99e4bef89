"""The JAX backend: shapes against the checker, pytrees, init, modes, gradients, training.

Shape properties use ``jax.eval_shape`` (tracing only, no XLA compile), so they cover
every example network, the biggest included, and hypothesis-generated networks in
seconds.  Real runs (compiles) are limited to a few small networks shared by module
fixtures; JIT compiles of the classic nets on a CPU would take minutes.  Layer values
against an independent NumPy reference are in test_backend_reference.py.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from conftest import examples, slow_examples  # noqa: E402

import patternnet  # noqa: E402
from patternnet import ast as A  # noqa: E402
from patternnet import summary  # noqa: E402
from patternnet.pipeline import check  # noqa: E402
from patternnet.backend import LAYER_FNS, Model  # noqa: E402
from patternnet.diagnostics import PatternNetError, ResolveError, ShapeError  # noqa: E402
from patternnet.kinds.base import no_weights  # noqa: E402
from patternnet.layers import LAYERS, NAMES  # noqa: E402
from patternnet.parser import parse  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
KEY = jax.random.key(0)


def n_elements(tree) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(tree))


def shapes(tree):
    return jax.tree_util.tree_map(lambda a: tuple(a.shape), tree)


def abstract_run(model: Model, batch: int = 2, train: bool = False):
    """(params, state, outputs per path, new state), all as ShapeDtypeStructs."""
    params, state = jax.eval_shape(model.init, KEY)
    x = jax.ShapeDtypeStruct((batch,) + model.input_shape, jnp.float32)
    rng = jax.random.key(1) if train else None
    outs = jax.eval_shape(lambda p, s, x: model.intermediates(p, s, x, train=train, rng=rng),
                          params, state, x)
    _, new_state = jax.eval_shape(lambda p, s, x: model.apply(p, s, x, train=train, rng=rng),
                                  params, state, x)
    return params, state, outs, new_state


def assert_matches_checker(model: Model, batch: int = 2, train: bool = False):
    """Every layer's output shape is the checker's; element counts are the checker's."""
    checked = model.checked
    params, state, outs, new_state = abstract_run(model, batch, train)
    assert set(outs) == {l.path for l in checked.layers}
    wrong = [(l.path, l.kind, l.out_shape, tuple(outs[l.path].shape))
             for l in checked.layers if tuple(outs[l.path].shape) != (batch,) + l.out_shape]
    assert wrong == [], f"checker vs eval_shape (path, kind, checker, jax): {wrong}"
    y = jax.eval_shape(lambda p, s, x: model.apply(p, s, x)[0], params, state,
                       jax.ShapeDtypeStruct((batch,) + model.input_shape, jnp.float32))
    assert tuple(y.shape) == (batch,) + checked.output_shape
    assert n_elements(params) == checked.params
    assert n_elements(state) == checked.totals.state
    assert jax.tree_util.tree_structure(new_state) == jax.tree_util.tree_structure(state)
    assert shapes(new_state) == shapes(state)


# --- every example --------------------------------------------------------------------


def _networks(file):
    """The named networks of an example, and None for its default network."""
    program = parse((EXAMPLES / file).read_text(), file=file)
    names = []
    for stmt in program.statements:
        if isinstance(stmt, A.Assign):
            expr = stmt.value
            while isinstance(expr, (A.Chain, A.Group)):
                expr = expr.items[0] if isinstance(expr, A.Chain) else expr.body
            if isinstance(expr, A.Layer) and expr.name == "INPUT":
                names.append(stmt.name)
    if any(isinstance(s, A.Bare) for s in program.statements):
        names.append(None)
    return names


ALL_NETS = [(f.name, n) for f in sorted(EXAMPLES.glob("*.pn")) for n in _networks(f.name)]
# the cs231n family: a few members, the ranges fixed (every one of its 180 in the slow run)
CS231N_MEMBERS = [{"n": 0, "m": 0, "k": 0}, {"n": 1, "m": 1, "k": 0}, {"n": 2, "m": 3, "k": 1},
                  {"n": 3, "m": 3, "k": 2}, {"n": 0, "m": 2, "k": 2}]


def test_the_example_list_is_complete():
    assert len(ALL_NETS) >= 17 and ("cs231n.pn", None) in ALL_NETS
    assert ("resnet.pn", "resnet152") in ALL_NETS and ("googlenet.pn", "googlenet") in ALL_NETS


@pytest.mark.parametrize("file, net", [k for k in ALL_NETS if k != ("cs231n.pn", None)],
                         ids=lambda x: str(x))
def test_example_shapes_and_counts(file, net):
    model = patternnet.compile(str(EXAMPLES / file), net=net)
    assert_matches_checker(model)


@pytest.mark.parametrize("define", CS231N_MEMBERS, ids=lambda d: "-".join(f"{k}{v}" for k, v in d.items()))
def test_cs231n_members(define):
    model = patternnet.compile(str(EXAMPLES / "cs231n.pn"), define=define)
    assert_matches_checker(model)


@pytest.mark.parametrize("file, net", [("resnet.pn", "resnet50"), ("googlenet.pn", "googlenet"),
                                       ("alexnet.pn", "alexnet_paper"), ("zfnet.pn", "zfnet")],
                         ids=lambda x: str(x))
def test_example_shapes_in_training_mode(file, net):
    """Training mode (batch statistics, dropout) keeps every shape and the state tree."""
    assert_matches_checker(patternnet.compile(str(EXAMPLES / file), net=net), train=True)


@pytest.mark.slow
def test_every_cs231n_member():
    for m in patternnet.expand(str(EXAMPLES / "cs231n.pn")).members:
        assert_matches_checker(Model(m.net))


def test_resnet50_pytree_layout():
    model = patternnet.compile(str(EXAMPLES / "resnet.pn"), net="resnet50")
    params, state = jax.eval_shape(model.init, KEY)
    b = params["stage2"]["bottleneck1"]
    assert shapes(b["conv2"]) == {"w": (3, 3, 128, 128)}          # bias=false: no "b"
    assert shapes(b["bn3"]) == {"scale": (512,), "bias": (512,)}
    assert shapes(b["skip1"]) == {"conv": {"w": (1, 1, 256, 512)},
                                  "bn": {"scale": (512,), "bias": (512,)}}
    assert shapes(state["stage2"]["bottleneck1"]["skip1"]) == {"bn": {"mean": (512,),
                                                                      "var": (512,)}}
    assert "skip1" not in params["stage2"]["bottleneck2"]          # identity SKIP
    assert "relu1" not in b and "pool1" not in params               # no parameters, no entry
    assert shapes(params["head1"]["fc1"]) == {"w": (2048, 1000), "b": (1000,)}
    assert shapes(params["stem1"]["conv1"]) == {"w": (7, 7, 3, 64)}


def test_param_layout_per_kind():
    model = patternnet.compile(
        "INPUT(6x6x4) -> CONV(8, 3x1, groups=2) -> BN -> FC(5, bias=false) -> BN -> FC(3)")
    params, state = jax.eval_shape(model.init, KEY)
    assert shapes(params) == {
        "conv1": {"w": (3, 1, 2, 8), "b": (8,)},
        "bn1": {"scale": (8,), "bias": (8,)},
        "fc1": {"w": (6 * 6 * 8, 5)},
        "bn2": {"scale": (5,), "bias": (5,)},
        "fc2": {"w": (5, 3), "b": (3,)},
    }
    assert shapes(state) == {"bn1": {"mean": (8,), "var": (8,)}, "bn2": {"mean": (5,), "var": (5,)}}


def test_blocks_and_repeats_nest_by_path():
    model = patternnet.compile("blk(c) = CONV(c) -> BN -> RELU\n"
                               "INPUT(8x8x3) -> [blk(4)]*2 -> POOL -> blk(8) -> GAP -> FC(2)")
    params, _ = jax.eval_shape(model.init, KEY)
    assert sorted(params) == ["blk1", "blk2", "blk3", "fc1"]
    assert sorted(params["blk2"]) == ["bn1", "conv1"]
    assert params["blk3"]["conv1"]["w"].shape == (3, 3, 4, 8)


def test_every_layer_has_a_backend_function():
    assert set(LAYER_FNS) == set(NAMES)
    # the kinds that declare parameters or state (the backend initialises from them)
    assert {n for n in NAMES if LAYERS[n].weights is not no_weights} == {
        "CONV", "CONVT", "FC", "BN", "LAYERNORM", "GROUPNORM", "SCALE", "SKIP"}


# --- hypothesis: generated networks ----------------------------------------------------

IMAGE_ACTS = ["RELU", "TANH", "SIGMOID", "GELU", "SOFTMAX", "LRELU(0.2)", "ELU(0.5)", "ID",
              "BN", "BN(eps=0.001, momentum=0.3)", "DROPOUT(0.3)", "RELU6", "HARDSWISH",
              "SILU", "LAYERNORM", "GROUPNORM(1)", "SCALE(0.5)", "DROPPATH(0.3)"]


def _fits(text: str) -> bool:
    try:
        check(text)
        return True
    except ShapeError:
        return False


@st.composite
def conv_layers(draw, channels: int):
    g = draw(st.sampled_from([d for d in (1, 2, 3) if channels % d == 0]))
    f = g * draw(st.integers(1, 4))
    k = draw(st.sampled_from(["1", "2", "3", "1x3", "3x2", "5"]))
    s = draw(st.sampled_from(["1", "2", "(1, 2)", "3"]))
    p = draw(st.sampled_from(["same", "valid", "0", "1", "2", "(1, 0)"]))
    d = draw(st.sampled_from(["1", "1", "2", "(2, 1)"]))
    bias = draw(st.booleans())
    return (f"CONV({f}, {k}, s={s}, p={p}, dilation={d}, groups={g}"
            f"{'' if bias else ', bias=false'})")


@st.composite
def pool_layers(draw):
    kind = draw(st.sampled_from(["POOL", "AVGPOOL"]))
    k = draw(st.sampled_from([1, 2, 3, 4]))
    s = draw(st.sampled_from([None, 1, 2, 3]))
    p = draw(st.sampled_from(["0", "1", "same", "valid", "(1, 0)", "(0, 1)"]))
    ceil = draw(st.booleans())
    return (f"{kind}({k}{'' if s is None else f', s={s}'}, p={p}"
            f"{', ceil=true' if ceil else ''})")


@st.composite
def generated_nets(draw):
    """A valid small network: each item drawn is kept where the checker accepts it."""
    h, w, c = draw(st.integers(3, 12)), draw(st.integers(3, 12)), draw(st.integers(1, 6))
    text = f"INPUT({h}x{w}x{c})"
    image = True
    for _ in range(draw(st.integers(1, 7))):
        shape = check(text).output_shape
        c = shape[-1]
        if image:
            choice = draw(st.sampled_from(["conv", "conv", "pool", "act", "lrn", "concat",
                                           "residual", "project", "end", "up", "gate",
                                           "split"]))
            if choice == "conv":
                item = draw(conv_layers(c))
            elif choice == "pool":
                item = draw(pool_layers())
            elif choice == "act":
                item = draw(st.sampled_from(IMAGE_ACTS))
            elif choice == "lrn":
                item = f"LRN({draw(st.integers(1, 6))})"
            elif choice == "concat":
                s = draw(st.sampled_from([1, 2]))
                item = (f"(CONV({draw(st.integers(1, 4))}, 1, s={s}) | CONV({draw(st.integers(1, 4))}"
                        f", 3, s={s}, dilation=2) -> RELU | POOL(3, s={s}, p=same) | "
                        f"AVGPOOL(3, s={s}, p=same))")
            elif choice == "up":
                f, k = draw(st.integers(1, 4)), draw(st.sampled_from(["1", "2", "3", "2x3"]))
                item = draw(st.sampled_from([
                    f"CONVT({f}, {k}, s={draw(st.sampled_from(['1', '2', '(2, 1)']))}, "
                    f"p={draw(st.sampled_from(['0', '1']))}, "
                    f"output_padding={draw(st.sampled_from(['0', '1']))})",
                    f"UPSAMPLE({draw(st.sampled_from(['2', '2x1', '3']))})",
                    f"UPSAMPLE(size={draw(st.integers(1, 9))}x{draw(st.integers(1, 9))}, "
                    f"bilinear=true, corners={draw(st.sampled_from(['true', 'false']))})"]))
            elif choice == "gate":
                item = draw(st.sampled_from([f"(ID * GAP -> FC(2) -> RELU -> FC({c}) -> SIGMOID)",
                                             "(ID * CONV(1, 1) -> HARDSIGMOID)"]))
            elif choice == "split":
                item = f"(SPLIT(2, 0) | SPLIT(2, 1) -> CONV({c // 2 or 1}, 3)) -> SHUFFLE"
            elif choice == "residual":
                item = f"(CONV({c}, 3) -> BN -> RELU -> CONV({c}, 3) -> BN + ID) -> RELU"
            elif choice == "project":
                s = draw(st.sampled_from([1, 2, 3]))
                f = draw(st.integers(1, 6))
                item = f"(CONV({f}, 3, s={s}, bias=false) -> BN + SKIP + SKIP)"
            else:
                item = draw(st.sampled_from(["GAP", "FLATTEN", f"FC({draw(st.integers(1, 6))})"]))
                image = False
        else:
            choice = draw(st.sampled_from(["fc", "act", "concat", "residual"]))
            if choice == "fc":
                item = f"FC({draw(st.integers(1, 8))}, bias={draw(st.sampled_from(['true', 'false']))})"
            elif choice == "act":
                item = draw(st.sampled_from(IMAGE_ACTS + ["FLATTEN"]))
            elif choice == "concat":
                item = f"(FC({draw(st.integers(1, 4))}) | ID | FC(2) -> TANH)"
            else:
                item = f"(FC({c}) -> BN + SKIP) -> RELU"
        if _fits(f"{text} -> {item}"):
            text = f"{text} -> {item}"
        elif choice == "end":
            image = True
    if draw(st.booleans()):
        text += f" -> FC({draw(st.integers(1, 5))})"
    return text


# Each example traces a generated network through JAX: 40 in the quick suite, the same
# 40 every run; the slow twin below looks at 400 random ones.
@examples(40, fixed=True)
@given(generated_nets(), st.booleans())
def test_generated_nets_match_the_checker(text, train):
    assert_matches_checker(patternnet.compile(text), train=train)


@pytest.mark.slow
@slow_examples(400)
@given(generated_nets(), st.booleans())
def test_generated_nets_match_the_checker_many(text, train):
    assert_matches_checker(patternnet.compile(text), train=train)


@pytest.mark.slow
@slow_examples(15)  # each example compiles and runs forward, jit and value_and_grad
@given(generated_nets())
def test_generated_nets_run(text):
    """Real runs: jit equals eager, finite outputs and gradients."""
    model = patternnet.compile(text)
    params, state = model.init(KEY)
    x = jax.random.normal(jax.random.key(3), (3,) + model.input_shape)
    y, _ = model.apply(params, state, x)
    np.testing.assert_allclose(model.forward(params, state, x), y, rtol=2e-5, atol=2e-5)
    (loss, _), grads = model.value_and_grad(params, state, x, jnp.zeros_like(y), loss="mse",
                                            rng=jax.random.key(4))
    assert np.isfinite(loss)
    assert all(np.isfinite(g).all() for g in jax.tree_util.tree_leaves(grads))


# --- running small networks -------------------------------------------------------------

SMALL = ("INPUT(10x10x3) -> CONV(8) -> BN -> RELU -> POOL(3, s=2, p=1) "
         "-> (CONV(12, s=2, bias=false) -> BN -> RELU + SKIP) "
         "-> (CONV(4, 1) | AVGPOOL(3, s=1, p=1)) -> LRN(3) -> DROPOUT(0.25) -> FC(16) -> GELU "
         "-> FC(4)")


@pytest.fixture(scope="module")
def small():
    model = patternnet.compile(SMALL)
    params, state = model.init(KEY)
    x = jax.random.normal(jax.random.key(1), (6, 10, 10, 3))
    labels = jnp.array([0, 1, 2, 3, 0, 1])
    return model, params, state, x, labels


def test_jit_forward_equals_eager_apply(small):
    model, params, state, x, _ = small
    y_eager, new_state = model.apply(params, state, x)
    y_jit = model.forward(params, state, x)
    assert y_jit.shape == (6, 4) and y_jit.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(y_jit), np.asarray(y_eager), rtol=1e-5, atol=1e-6)
    assert new_state is not state
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(lambda a, b: bool((a == b).all()),
                                                         new_state, state))


def test_init_is_reproducible_from_the_key(small):
    model, params, state, _, _ = small
    again, state2 = model.init(jax.random.key(0))
    same = jax.tree_util.tree_map(lambda a, b: bool((a == b).all()), params, again)
    assert jax.tree_util.tree_all(same)
    raw, _ = model.init(jax.random.PRNGKey(0))          # raw uint32 keys work too
    assert shapes(raw) == shapes(params)
    jitted, _ = jax.jit(model.init)(jax.random.key(0))    # traceable, same values
    np.testing.assert_array_equal(jitted["conv1"]["w"], params["conv1"]["w"])
    other, _ = model.init(jax.random.key(7))
    assert not np.array_equal(other["conv1"]["w"], params["conv1"]["w"])
    np.testing.assert_array_equal(model.init(0)[0]["fc2"]["b"], params["fc2"]["b"])


def test_init_values_follow_pytorch_defaults(small):
    model, params, state, _, _ = small
    for path, fan_in in (("conv1", 27), ("fc1", 3 * 3 * 16), ("fc2", 16)):
        d = params[path]
        bound = 1 / math.sqrt(fan_in)
        for leaf in d.values():
            assert float(jnp.abs(leaf).max()) <= bound
        assert float(jnp.abs(d["w"]).max()) > 0.8 * bound  # spread over the range
    w = params["skip1"]["conv"]["w"]
    assert float(jnp.abs(w).max()) <= 1 / math.sqrt(8)
    np.testing.assert_array_equal(params["bn1"]["scale"], np.ones(8))
    np.testing.assert_array_equal(params["bn1"]["bias"], np.zeros(8))
    np.testing.assert_array_equal(state["bn1"]["mean"], np.zeros(8))
    np.testing.assert_array_equal(state["bn1"]["var"], np.ones(8))


def test_a_tensor_depends_only_on_the_key_and_its_path():
    a = patternnet.compile("INPUT(8x8x3) -> CONV(4) -> FC(10)")
    b = patternnet.compile("INPUT(8x8x3) -> CONV(4) -> RELU -> BN -> FC(10)")
    pa, _ = a.init(KEY)
    pb, _ = b.init(KEY)
    np.testing.assert_array_equal(pa["conv1"]["w"], pb["conv1"]["w"])
    np.testing.assert_array_equal(pa["fc1"]["w"], pb["fc1"]["w"])
    assert not np.array_equal(pa["conv1"]["b"], pa["fc1"]["b"][:4])


def test_init_follows_the_documented_key_scheme():
    """docs/backend.md §4, recomputed from its words."""
    import hashlib
    model = patternnet.compile("INPUT(4) -> FC(3)")
    params, _ = model.init(KEY)
    d = hashlib.blake2b(b"fc1/w", digest_size=8).digest()
    a, b = int.from_bytes(d[:4], "little"), int.from_bytes(d[4:], "little")
    k = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(KEY, a), b), 0)
    u = np.asarray(jax.random.uniform(k, (1024,)))
    np.testing.assert_allclose(params["fc1"]["w"], ((2 * u - 1) / 2)[:12].reshape(4, 3),
                               rtol=1e-6)


def test_apply_is_deterministic_and_pure(small):
    model, params, state, x, _ = small
    y1, s1 = model.apply(params, state, x, train=True, rng=jax.random.key(5))
    y2, s2 = model.apply(params, state, x, train=True, rng=jax.random.key(5))
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(s1["bn1"]["var"], s2["bn1"]["var"])
    np.testing.assert_array_equal(state["bn1"]["mean"], np.zeros(8))  # input untouched


def test_dropout_changes_with_the_rng_in_training_only():
    model = patternnet.compile("INPUT(200) -> DROPOUT(0.5)")
    params, state = model.init(KEY)
    x = jnp.ones((4, 200))
    f = jax.jit(model.apply, static_argnames="train")
    a, _ = f(params, state, x, train=True, rng=jax.random.key(1))
    b, _ = f(params, state, x, train=True, rng=jax.random.key(2))
    assert not np.array_equal(a, b)
    assert set(np.unique(np.asarray(a))) == {0.0, 2.0}          # inverted: kept / (1 - rate)
    assert 0.35 < float((a == 0).mean()) < 0.65
    c, _ = f(params, state, x, train=False, rng=jax.random.key(1))
    np.testing.assert_array_equal(c, x)
    with pytest.raises(ValueError, match="DROPOUT.*rng"):
        model.apply(params, state, x, train=True)


def test_bn_state_updates_in_training_only():
    model = patternnet.compile("INPUT(4x4x2) -> BN(momentum=0.25)")
    params, state = model.init(KEY)
    x = jax.random.normal(jax.random.key(2), (3, 4, 4, 2)) * 3 + 1
    y, new = model.apply(params, state, x, train=True)
    flat = np.asarray(x, np.float64).reshape(-1, 2)
    mean, var = flat.mean(0), flat.var(0)
    np.testing.assert_allclose(new["bn1"]["mean"], 0.25 * mean, rtol=1e-5)
    np.testing.assert_allclose(new["bn1"]["var"], 0.75 + 0.25 * flat.var(0, ddof=1), rtol=1e-5)
    want = (np.asarray(x, np.float64) - mean) / np.sqrt(var + 1e-5)
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-5)
    y_eval, same = model.apply(params, new, x, train=False)
    np.testing.assert_array_equal(same["bn1"]["mean"], new["bn1"]["mean"])
    np.testing.assert_allclose(y_eval, (np.asarray(x) - new["bn1"]["mean"])
                               / np.sqrt(np.asarray(new["bn1"]["var"]) + 1e-5), rtol=1e-5,
                               atol=1e-5)
    vec = patternnet.compile("INPUT(3) -> BN")
    with pytest.raises(ValueError, match="more than one value per channel"):
        vec.apply(*vec.init(KEY), jnp.ones((1, 3)), train=True)


def test_avgpool_divisor_conventions():
    """count_include_pad, and a ceil-mode last window divided by its part in the padded
    input (PyTorch): 3x3 ones, window 2."""
    ones = jnp.ones((1, 3, 3, 1))
    pad = patternnet.compile("INPUT(3x3x1) -> AVGPOOL(2, p=1)")        # 2x2 out
    np.testing.assert_allclose(pad.apply(*pad.init(KEY), ones)[0][0, :, :, 0],
                               [[0.25, 0.5], [0.5, 1.0]])
    ceil = patternnet.compile("INPUT(3x3x1) -> AVGPOOL(2, ceil=true)")  # 2x2 out
    np.testing.assert_allclose(ceil.apply(*ceil.init(KEY), ones)[0][0, :, :, 0],
                               [[1.0, 1.0], [1.0, 1.0]])
    both = patternnet.compile("INPUT(4x4x1) -> AVGPOOL(3, s=2, p=1, ceil=true)")  # 3x3 out
    x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    y = both.apply(*both.init(KEY), x)[0][0, :, :, 0]
    xs = np.pad(np.arange(16.0).reshape(4, 4), 1)    # padded: rows/cols -1..4
    # windows start at padded 0, 2, 4; the last is cut at H + pad = 5: divisor 3, 3, 2
    div = [3, 3, 2]
    want = [[xs[i:i + 3, j:j + 3].sum() / (div[i // 2] * div[j // 2]) for j in (0, 2, 4)]
            for i in (0, 2, 4)]
    np.testing.assert_allclose(y, want, rtol=1e-6)
    maxp = patternnet.compile("INPUT(3x3x1) -> POOL(2, ceil=true)")
    np.testing.assert_allclose(maxp.apply(*maxp.init(KEY), -x[:, :3, :3] - 1)[0][0, :, :, 0],
                               [[-1.0, -3.0], [-9.0, -11.0]])


def test_value_and_grad(small):
    model, params, state, x, labels = small
    rng = jax.random.key(3)
    (loss, new_state), grads = model.value_and_grad(params, state, x, labels, rng=rng)
    assert loss.shape == () and np.isfinite(loss)
    assert jax.tree_util.tree_structure(grads) == jax.tree_util.tree_structure(params)
    assert shapes(grads) == shapes(params)
    assert all(np.isfinite(g).all() for g in jax.tree_util.tree_leaves(grads))
    assert float(jnp.abs(grads["conv1"]["w"]).sum()) > 0
    assert not np.array_equal(new_state["bn1"]["mean"], state["bn1"]["mean"])
    # the same call without jit
    y, _ = model.apply(params, state, x, train=True, rng=rng)
    logp = jax.nn.log_softmax(y)
    np.testing.assert_allclose(loss, -logp[np.arange(6), labels].mean(), rtol=1e-5)
    g2 = model.grad(params, state, x, labels, rng=rng)
    np.testing.assert_allclose(g2["fc2"]["w"], grads["fc2"]["w"], rtol=1e-6)


def test_losses(small):
    model, params, state, x, labels = small
    y = model.forward(params, state, x)
    targets = jnp.ones_like(y)
    (mse, _), _ = model.value_and_grad(params, state, x, targets, loss="mse", train=False)
    np.testing.assert_allclose(mse, ((y - 1) ** 2).mean(), rtol=1e-5)

    def l1(out, t):
        return jnp.abs(out - t).sum()
    (v, _), g = model.value_and_grad(params, state, x, targets, loss=l1, train=False)
    np.testing.assert_allclose(v, jnp.abs(y - 1).sum(), rtol=1e-5)
    with pytest.raises(ValueError, match="loss="):
        model.value_and_grad(params, state, x, labels, loss="hinge")
    with pytest.raises(ValueError, match="integer class labels"):
        model.value_and_grad(params, state, x, targets, train=False)
    with pytest.raises(ValueError, match="mse"):
        model.value_and_grad(params, state, x, labels, loss="mse", train=False)


def test_cross_entropy_after_a_final_softmax_uses_its_logits():
    src = "INPUT(5) -> FC(3)"
    logits_model = patternnet.compile(src)
    probs_model = patternnet.compile(src + " -> SOFTMAX")
    params, state = logits_model.init(KEY)
    x = jax.random.normal(jax.random.key(1), (4, 5))
    labels = jnp.array([0, 2, 1, 2])
    (a, _), ga = logits_model.value_and_grad(params, state, x, labels)
    (b, _), gb = probs_model.value_and_grad(params, state, x, labels)
    np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(ga["fc1"]["w"], gb["fc1"]["w"], rtol=1e-5)
    np.testing.assert_allclose(probs_model.forward(params, state, x).sum(-1), 1, rtol=1e-6)


@pytest.mark.parametrize("make", [lambda: optax.sgd(0.1, momentum=0.9), lambda: optax.adam(1e-2)],
                         ids=["sgd", "adam"])
def test_train_step_reduces_the_loss(make):
    model = patternnet.compile("INPUT(6x6x2) -> CONV(6) -> BN -> RELU -> POOL -> DROPOUT(0.1) "
                               "-> FC(3)")
    params, state = model.init(KEY)
    kx, ky = jax.random.split(jax.random.key(11))
    x = jax.random.normal(kx, (32, 6, 6, 2))
    labels = jax.random.randint(ky, (32,), 0, 3)
    opt = make()
    opt_state = opt.init(params)
    step = model.train_step(opt)
    losses = []
    for i in range(25):
        params, state, opt_state, loss = step(params, state, opt_state, x, labels,
                                              jax.random.key(100 + i))
        losses.append(float(loss))
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0]
    assert float(state["bn1"]["var"].mean()) != 1.0


def test_float64():
    src = "INPUT(6x6x2) -> CONV(3) -> BN -> TANH -> AVGPOOL(3, s=2, ceil=true) -> FC(2)"
    if not jax.config.read("jax_enable_x64"):
        with pytest.raises(ValueError, match="jax_enable_x64"):
            patternnet.compile(src, dtype="float64")
    m32 = patternnet.compile(src)
    x = np.asarray(jax.random.normal(jax.random.key(1), (2, 6, 6, 2)), np.float64)
    with jax.enable_x64(True):
        m64 = patternnet.compile(src, dtype="float64")
        params, state = m64.init(KEY)
        assert {a.dtype for a in jax.tree_util.tree_leaves((params, state))} == {
            np.dtype(np.float64)}
        y64, _ = m64.apply(params, state, x, train=True)
        assert y64.dtype == jnp.float64
        (loss, _), grads = m64.value_and_grad(params, state, x, jnp.array([0, 1]))
        assert grads["conv1"]["w"].dtype == jnp.float64
        p32 = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), (params, state))
    y32, _ = m32.apply(*p32, x.astype(np.float32), train=True)
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-5)


def test_bad_dtype_and_inputs():
    assert patternnet.compile("INPUT(4) -> FC(2)", dtype="bfloat16").dtype == jnp.bfloat16
    with pytest.raises(ValueError, match="dtype="):
        patternnet.compile("INPUT(4) -> FC(2)", dtype="int8")
    model = patternnet.compile("INPUT(8x8x3) -> CONV(4) -> FC(2)")
    params, state = model.init(KEY)
    with pytest.raises(ValueError, match=r"\(N, 8, 8, 3\)"):
        model.apply(params, state, jnp.ones((2, 8, 8, 4)))
    with pytest.raises(ValueError, match=r"\(N, 8, 8, 3\)"):
        model.forward(params, state, jnp.ones((8, 8, 3)))
    with pytest.raises(KeyError, match="conv1"):
        model.apply({}, state, jnp.ones((2, 8, 8, 3)))
    y = model.forward(params, state, np.ones((2, 8, 8, 3), np.uint8))  # cast to float32
    assert y.dtype == jnp.float32


# --- compile: selection, families, errors -----------------------------------------------


def test_compile_accepts_paths_text_programs_and_checked_nets():
    path = str(EXAMPLES / "lenet5.pn")
    a = patternnet.compile(path, net="lenet5")
    b = patternnet.compile(parse((EXAMPLES / "lenet5.pn").read_text(), "lenet5.pn"),
                           net="lenet5")
    c = patternnet.compile(check(path, net="lenet5"))
    assert a.checked == b.checked == c.checked
    assert a.summary() == summary.text(a.checked)
    assert "61,706" in a.summary() and "61,706" in repr(a)
    with pytest.raises(ValueError, match="already applied"):
        patternnet.compile(a.checked, classes=3)
    d = patternnet.compile("INPUT -> CONV -> FC", input_shape="16x16x1", classes=7)
    assert d.input_shape == (16, 16, 1) and d.output_shape == (7,)


def test_compile_a_family_asks_for_define():
    with pytest.raises(ResolveError) as e:
        patternnet.compile(str(EXAMPLES / "cs231n.pn"))
    (diag,) = e.value.diagnostics
    assert diag.code == "E210"
    assert "family" in diag.message and "`n` (0..3)" in diag.message and "`k` (0..2)" in diag.message
    assert "define=" in diag.help and "-D n=" in diag.help
    assert "cs231n.pn" in e.value.render()
    m = patternnet.compile(str(EXAMPLES / "cs231n.pn"), define={"n": 1, "m": 2, "k": 1})
    assert dict(m.checked.bindings) == {"n": 1, "m": 2, "k": 1}


def test_compile_reports_checker_errors():
    with pytest.raises(ShapeError):
        patternnet.compile("INPUT(1x1x3) -> POOL")
    with pytest.raises(PatternNetError):
        patternnet.compile("INPUT -> CONVV")


def test_import_patternnet_does_not_import_jax():
    code = ("import sys, json, patternnet\n"
            "assert callable(patternnet.compile)\n"
            "print(json.dumps(sorted(m for m in sys.modules\n"
            "                        if m.split('.')[0] in ('jax', 'jaxlib', 'optax'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_backend_doc_example_runs(monkeypatch):
    text = (ROOT / "docs" / "backend.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr("builtins.print", lambda *a, **k: None)
    exec(compile(code, "docs/backend.md", "exec"), {})


def test_logits_stop_before_a_final_softmax():
    model = patternnet.compile("INPUT(6) -> FC(5) -> SOFTMAX")
    params, state = model.init(0)
    x = jax.random.normal(jax.random.key(1), (3, 6))
    logits, new_state = model.logits(params, state, x)
    assert new_state == {}
    np.testing.assert_allclose(jax.nn.softmax(logits), model.forward(params, state, x),
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(logits, x @ params["fc1"]["w"] + params["fc1"]["b"], rtol=1e-5,
                               atol=1e-6)
    plain = patternnet.compile("INPUT(6) -> FC(5)")
    np.testing.assert_array_equal(plain.logits(params, state, x)[0],
                                  plain.apply(params, state, x)[0])


def test_a_kernel_larger_than_the_output_runs_as_one_matrix_product(monkeypatch):
    """XLA:CPU's convolution is pathologically slow when the kernel exceeds the output
    (docs/performance.md); where oneDNN's does not run, such a layer is lowered to
    patches times the kernel."""
    from patternnet.backend.layers import _kernel_exceeds_output

    monkeypatch.setenv("PATTERNNET_CPU_CONV", "xla")

    model = patternnet.compile("INPUT(4x4x8) -> CONV(8) -> CONV(8, 3, s=2) -> CONV(8) "
                               "-> CONV(8, 3, groups=2) -> GAP -> FC(2)")
    routed = {l.path: _kernel_exceeds_output(l) for l in model.layers if l.kind == "CONV"}
    assert routed == {"conv1": False, "conv2": True, "conv3": True, "conv4": True}
    params, state = model.init(0)
    x = jnp.ones((2, 4, 4, 8))
    jaxpr = str(jax.make_jaxpr(lambda p: model.apply(p, state, x))(params))
    if jax.default_backend() != "cpu":  # measured on XLA:CPU only: elsewhere lax stays
        assert jaxpr.count("conv_general_dilated") == 4
        return
    assert jaxpr.count("conv_general_dilated") == 2   # conv1, and conv4 (groups stay lax)
    assert "dot_general" in jaxpr
