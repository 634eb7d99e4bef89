"""The JAX backend against the slow NumPy reference (tests/reference_numpy.py).

Two parts:

* self-tests of the reference itself: tiny hand-computed cases, the worked examples of
  docs/language.md §10.1, and the reference's sizes and padding against the checker's;
* the backend: single-layer (or tiny) networks compiled with ``patternnet.compile``, with
  random inputs and explicitly set random parameters and state, compared with the
  reference in float32 at tight tolerances; hypothesis draws CONV and pooling
  configurations (a moderate count by default, more under ``-m slow``).

The backend tests skip while ``patternnet.backend`` / ``patternnet.compile`` do not exist.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from conftest import examples, slow_examples

import patternnet
import reference_numpy as ref

# float32 backend vs float64 reference
RTOL = 1e-4
ATOL = 1e-4
ELEM = dict(rtol=1e-5, atol=1e-6)       # element-wise layers: no accumulation


# =========================================================================== reference

def test_ref_same_padding_formula():
    # (size, kernel, stride, dilation) -> (lo, hi)
    assert ref.same_padding(224, 7, 2) == (2, 3)       # §10.1: 111*2 + 7 - 224 = 5
    assert ref.same_padding(5, 3, 2) == (1, 1)         # out 3: 2*2 + 3 - 5 = 2
    assert ref.same_padding(4, 3, 2) == (0, 1)         # out 2: 2 + 3 - 4 = 1, odd -> high
    assert ref.same_padding(6, 1, 2) == (0, 0)         # total negative -> 0
    assert ref.same_padding(1, 3, 1) == (1, 1)
    assert ref.same_padding(4, 4, 1) == (1, 2)         # even kernel, stride 1
    assert ref.same_padding(7, 3, 1, 2) == (2, 2)      # dilated: effective 5
    assert ref.same_padding(8, 2, 3) == (0, 0)         # out 3: 6 + 2 - 8 = 0


def test_ref_out_size_worked_examples():
    # docs/language.md §10.1
    assert ref.out_size(227, 11, 4, 0, 0) == 55
    assert ref.out_size(224, 11, 4, 0, 0) == 54
    assert ref.out_size(224, 7, 2, 2, 3) == 112
    assert ref.out_size(32, 3, 1, 0, 0, dilation=2) == 28
    assert ref.out_size(112, 3, 2, 1, 1) == 56
    assert ref.out_size(5, 2, 2, 0, 0) == 2
    assert ref.out_size(5, 2, 2, 0, 0, ceil=True) == 3
    assert ref.out_size(5, 2, 2, 1, 1, ceil=True) == 3     # 4, but (4-1)*2 >= 5 + 1
    assert ref.out_size(1, 2, 2, 0, 0, ceil=True) == 1     # window longer than the input


def test_ref_conv2d_hand_computed():
    x = np.arange(1, 10, dtype=float).reshape(1, 3, 3, 1)     # [[1,2,3],[4,5,6],[7,8,9]]
    w = np.array([[1.0, 0.0], [0.0, -1.0]]).reshape(2, 2, 1, 1)
    # cross-correlation: x[i,j] - x[i+1,j+1] = -4 everywhere
    y = ref.conv2d(x, w)
    np.testing.assert_array_equal(y[0, :, :, 0], [[-4, -4], [-4, -4]])
    # no flip: a kernel picking the top-left tap gives the top-left 2x2 of x
    w2 = np.array([[1.0, 0.0], [0.0, 0.0]]).reshape(2, 2, 1, 1)
    np.testing.assert_array_equal(ref.conv2d(x, w2)[0, :, :, 0], [[1, 2], [4, 5]])
    # ones 3x3, padding 1: neighbourhood sums; bias 10
    ones = np.ones((3, 3, 1, 1))
    y = ref.conv2d(x, ones, np.array([10.0]), padding=((1, 1), (1, 1)))
    np.testing.assert_array_equal(y[0, :, :, 0], [[12 + 10, 21 + 10, 16 + 10],
                                                  [27 + 10, 45 + 10, 33 + 10],
                                                  [24 + 10, 39 + 10, 28 + 10]])
    # stride 2 with padding 1: the corners of the sums above
    y = ref.conv2d(x, ones, None, stride=2, padding=((1, 1), (1, 1)))
    np.testing.assert_array_equal(y[0, :, :, 0], [[12, 16], [24, 28]])
    # asymmetric padding (same, 2x2 kernel, stride 1: lo 0, hi 1)
    y = ref.conv2d(x, np.ones((2, 2, 1, 1)), padding=((0, 1), (0, 1)))
    np.testing.assert_array_equal(y[0, :, :, 0], [[12, 16, 9], [24, 28, 15], [15, 17, 9]])
    # dilation 2, 2x2 kernel on 3x3: the four corners
    y = ref.conv2d(x, np.ones((2, 2, 1, 1)), dilation=2)
    np.testing.assert_array_equal(y[0, :, :, 0], [[1 + 3 + 7 + 9]])


def test_ref_conv2d_groups_and_channels():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, 4, 4))
    # groups=2, 1x1: output k of group g sees only channels 2g, 2g+1
    w = np.zeros((1, 1, 2, 4))
    w[0, 0, 0, 0] = 1.0    # out 0 <- in 0
    w[0, 0, 1, 1] = 2.0    # out 1 <- 2 * in 1
    w[0, 0, 0, 2] = 3.0    # out 2 <- 3 * in 2 (group 1, first channel)
    w[0, 0, 1, 3] = -1.0   # out 3 <- -in 3
    y = ref.conv2d(x, w, groups=2)
    np.testing.assert_allclose(y, x * np.array([1.0, 2.0, 3.0, -1.0]))
    # groups = channels (depthwise) with a 3x3 kernel equals per-channel single convs
    wd = rng.normal(size=(3, 3, 1, 4))
    y = ref.conv2d(x, wd, padding=((1, 1), (1, 1)), groups=4)
    for c in range(4):
        yc = ref.conv2d(x[..., c:c + 1], wd[..., c:c + 1], padding=((1, 1), (1, 1)))
        np.testing.assert_allclose(y[..., c], yc[..., 0])
    # an ordinary conv is the sum over input channels of single-channel convs
    wf = rng.normal(size=(2, 3, 4, 3))
    y = ref.conv2d(x, wf, stride=(2, 1), padding=((1, 0), (0, 2)))
    acc = sum(ref.conv2d(x[..., c:c + 1], wf[:, :, c:c + 1, :], stride=(2, 1),
                         padding=((1, 0), (0, 2))) for c in range(4))
    np.testing.assert_allclose(y, acc)


def test_ref_maxpool_hand_computed():
    x = np.array([[1.0, 5, 2, 0], [3, 4, 8, 7], [6, 1, 0, 2], [9, 2, 3, 4]]).reshape(1, 4, 4, 1)
    np.testing.assert_array_equal(ref.maxpool(x, 2)[0, :, :, 0], [[5, 8], [9, 4]])
    # padding never wins, even against negative values
    xn = -np.arange(1, 4, dtype=float).reshape(1, 1, 3, 1)     # [-1, -2, -3]
    y = ref.maxpool(xn, (1, 3), (1, 1), ((0, 0), (1, 1)))
    np.testing.assert_array_equal(y[0, 0, :, 0], [-1, -1, -2])
    # ceil keeps the partial last window
    x5 = np.array([1.0, 3, 2, 5, 4]).reshape(1, 1, 5, 1)
    np.testing.assert_array_equal(ref.maxpool(x5, (1, 2), (1, 2), ceil=True)[0, 0, :, 0],
                                  [3, 5, 4])
    np.testing.assert_array_equal(ref.maxpool(x5, (1, 2), (1, 2))[0, 0, :, 0], [3, 5])


def test_ref_avgpool_divisors():
    x = np.array([1.0, 2, 3, 4, 5]).reshape(1, 1, 5, 1)
    # plain
    np.testing.assert_allclose(ref.avgpool(x, (1, 2), (1, 2))[0, 0, :, 0], [1.5, 3.5])
    # ceil: last window [5] inside the padded input only partly: divides by 1
    np.testing.assert_allclose(ref.avgpool(x, (1, 2), (1, 2), ceil=True)[0, 0, :, 0],
                               [1.5, 3.5, 5.0])
    # padding counts in the divisor: window 3, stride 1, pad 1
    np.testing.assert_allclose(ref.avgpool(x, (1, 3), (1, 1), ((0, 0), (1, 1)))[0, 0, :, 0],
                               [3 / 3, 6 / 3, 9 / 3, 12 / 3, 9 / 3])
    # W=4, k=3, s=2, p=1, ceil: 3 windows; the last [3, 6) is clipped to the padded
    # input [-1, 5) -> divisor 2 (PyTorch: hend = min(hstart + k, H + pad))
    x4 = np.array([1.0, 2, 3, 4]).reshape(1, 1, 4, 1)
    np.testing.assert_allclose(
        ref.avgpool(x4, (1, 3), (1, 2), ((0, 0), (1, 1)), ceil=True)[0, 0, :, 0],
        [(0 + 1 + 2) / 3, (2 + 3 + 4) / 3, (4 + 0) / 2])
    # 2-D: the corner window of a 3x3 `same` pool divides by 9
    ones = np.ones((1, 3, 3, 1))
    y = ref.avgpool(ones, 3, 1, ((1, 1), (1, 1)))
    np.testing.assert_allclose(y[0, :, :, 0], [[4 / 9, 6 / 9, 4 / 9], [6 / 9, 1, 6 / 9],
                                               [4 / 9, 6 / 9, 4 / 9]])
    # 2-D ceil with a partial window on both axes: 2x2 windows over 3x3, ceil
    x9 = np.arange(1, 10, dtype=float).reshape(1, 3, 3, 1)
    y = ref.avgpool(x9, 2, 2, ceil=True)
    np.testing.assert_allclose(y[0, :, :, 0], [[(1 + 2 + 4 + 5) / 4, (3 + 6) / 2],
                                               [(7 + 8) / 2, 9 / 1]])


def test_ref_gap_flatten_fc():
    x = np.arange(24, dtype=float).reshape(1, 2, 3, 4)
    np.testing.assert_allclose(ref.gap(x)[0], x[0].mean(axis=(0, 1)))
    f = ref.flatten(x)
    # row-major H, W, C: element (h, w, c) at h*12 + w*4 + c, and x holds its own index
    np.testing.assert_array_equal(f[0], np.arange(24))
    w = np.zeros((24, 2))
    w[5, 0] = 1.0       # (h=0, w=1, c=1)
    w[23, 1] = 2.0      # (h=1, w=2, c=3)
    np.testing.assert_array_equal(ref.fc(x, w, np.array([0.5, 0.0])), [[5.5, 46.0]])
    np.testing.assert_array_equal(ref.fc(np.array([[1.0, 2.0]]), np.array([[1.0], [10.0]])),
                                  [[21.0]])


def test_ref_batchnorm():
    # one channel with values 1..4: mean 2.5, biased var 1.25, unbiased 5/3
    x = np.array([1.0, 2, 3, 4]).reshape(1, 2, 2, 1)
    y, m, v = ref.batchnorm_train(x, [2.0], [0.5], [1.0], [3.0], eps=0.0, momentum=0.25)
    np.testing.assert_allclose(y.ravel(), (np.array([1, 2, 3, 4]) - 2.5) / math.sqrt(1.25) * 2
                               + 0.5)
    np.testing.assert_allclose(m, [0.75 * 1.0 + 0.25 * 2.5])
    np.testing.assert_allclose(v, [0.75 * 3.0 + 0.25 * 5 / 3])
    # statistics run over N, H, W per channel; vectors over N per feature
    xv = np.array([[1.0, 10.0], [3.0, 30.0]])
    y, m, v = ref.batchnorm_train(xv, [1, 1], [0, 0], [0, 0], [1, 1], eps=0.0, momentum=1.0)
    np.testing.assert_allclose(y, [[-1, -1], [1, 1]])
    np.testing.assert_allclose(m, [2, 20])
    np.testing.assert_allclose(v, [2, 200])
    y = ref.batchnorm_eval(x, [2.0], [0.5], [1.0], [3.0], eps=1.0)
    np.testing.assert_allclose(y.ravel(), (np.array([1, 2, 3, 4]) - 1.0) / 2.0 * 2 + 0.5)


def test_ref_lrn():
    a = np.array([1.0, 2.0, 3.0]).reshape(1, 1, 1, 3)
    # size 2: channel c sums c-1..c; alpha/size = 1, k = 1, beta = 1
    y = ref.lrn(a, size=2, alpha=2.0, beta=1.0, k=1.0)
    np.testing.assert_allclose(y.ravel(), [1 / (1 + 1), 2 / (1 + 1 + 4), 3 / (1 + 4 + 9)])
    # size 3: c-1..c+1
    y = ref.lrn(a, size=3, alpha=3.0, beta=0.5, k=2.0)
    np.testing.assert_allclose(y.ravel(), [1 / math.sqrt(2 + 1 + 4), 2 / math.sqrt(2 + 14),
                                           3 / math.sqrt(2 + 4 + 9)])
    # size 5 on 3 channels: every channel sums all three
    y = ref.lrn(a, size=5, alpha=5.0, beta=1.0, k=0.0)
    np.testing.assert_allclose(y.ravel(), np.array([1, 2, 3]) / 14)


def test_ref_activations():
    x = np.array([[-2.0, -1.0, 0.0, 1.0, 3.0]])
    np.testing.assert_array_equal(ref.relu(x), [[0, 0, 0, 1, 3]])
    np.testing.assert_allclose(ref.lrelu(x, 0.1), [[-0.2, -0.1, 0, 1, 3]])
    np.testing.assert_allclose(ref.elu(x, 0.5), [[0.5 * (math.exp(-2) - 1),
                                                  0.5 * (math.exp(-1) - 1), 0, 1, 3]])
    np.testing.assert_allclose(ref.tanh(x), np.tanh(x))
    np.testing.assert_allclose(ref.sigmoid(np.array([0.0, math.log(3.0)])), [0.5, 0.75])
    # Phi(1) = 0.8413447460685429
    np.testing.assert_allclose(ref.gelu(np.array([1.0, -1.0, 0.0])),
                               [0.8413447460685429, -0.15865525393145707, 0.0], rtol=1e-14)
    np.testing.assert_allclose(ref.softmax(np.log(np.array([[1.0, 2.0, 3.0]]))),
                               [[1 / 6, 2 / 6, 3 / 6]])
    big = ref.softmax(np.array([[1000.0, 1000.0]]))          # stable
    np.testing.assert_allclose(big, [[0.5, 0.5]])


def test_ref_concat_add_skip():
    a = np.ones((1, 2, 2, 2))
    b = 2 * np.ones((1, 2, 2, 1))
    c = ref.concat(a, b)
    assert c.shape == (1, 2, 2, 3)
    np.testing.assert_array_equal(c[0, 0, 0], [1, 1, 2])
    np.testing.assert_array_equal(ref.add(a, a, a), 3 * a)
    # projection: 1x1 stride 2 picks rows/cols 0, 2
    x = np.arange(16, dtype=float).reshape(1, 4, 4, 1)
    w = np.full((1, 1, 1, 2), 1.0)
    w[..., 1] = -1.0
    y = ref.skip_projection(x, w, [1.0, 1.0], [0.0, 0.0], [0.0, 0.0], [1.0, 1.0], 2, eps=0.0)
    np.testing.assert_allclose(y[0, :, :, 0], [[0, 2], [8, 10]])
    np.testing.assert_allclose(y[0, :, :, 1], [[0, -2], [-8, -10]])


# --- the reference's sizes and padding agree with the checker's -------------------------

def _pair_src(v):
    a, b = ref.pair(v)
    return str(a) if a == b else f"({a}, {b})"


def _pad_src(p):
    return p if isinstance(p, str) else _pair_src(p)


@st.composite
def conv_configs(draw, max_size=9):
    groups = draw(st.sampled_from([1, 1, 1, 2, 3]))
    cin = groups * draw(st.integers(1, 2))
    filters = groups * draw(st.integers(1, 2))
    h = draw(st.integers(1, max_size))
    w = draw(st.integers(1, max_size))
    square = draw(st.booleans())
    kh = draw(st.integers(1, 4))
    kw = kh if square else draw(st.integers(1, 4))
    sh = draw(st.integers(1, 3))
    sw = sh if square else draw(st.integers(1, 3))
    dh = draw(st.sampled_from([1, 1, 2]))
    dw = dh if square else draw(st.sampled_from([1, 1, 2]))
    pad = draw(st.one_of(st.just("same"), st.just("valid"), st.integers(0, 4),
                         st.tuples(st.integers(0, 3), st.integers(0, 3))))
    bias = draw(st.booleans())
    n = draw(st.integers(1, 2))
    cfg = dict(h=h, w=w, cin=cin, filters=filters, kernel=(kh, kw), stride=(sh, sw),
               dilation=(dh, dw), pad=pad, groups=groups, bias=bias, n=n)
    (pt, pb), (pl, pr) = ref.conv_padding(pad, (h, w), (kh, kw), (sh, sw), (dh, dw))
    assume(ref.out_size(h, kh, sh, pt, pb, dh) >= 1 and ref.out_size(w, kw, sw, pl, pr, dw) >= 1)
    return cfg


def conv_source(cfg):
    args = [str(cfg["filters"]), _pair_src(cfg["kernel"]), f"s={_pair_src(cfg['stride'])}",
            f"p={_pad_src(cfg['pad'])}"]
    if cfg["dilation"] != (1, 1):
        args.append(f"dilation={_pair_src(cfg['dilation'])}")
    if cfg["groups"] != 1:
        args.append(f"groups={cfg['groups']}")
    if not cfg["bias"]:
        args.append("bias=false")
    return f"INPUT({cfg['h']}x{cfg['w']}x{cfg['cin']}) -> CONV({', '.join(args)})"


@st.composite
def pool_configs(draw, max_size=9):
    h = draw(st.integers(1, max_size))
    w = draw(st.integers(1, max_size))
    c = draw(st.integers(1, 3))
    square = draw(st.booleans())
    kh = draw(st.integers(1, 4))
    kw = kh if square else draw(st.integers(1, 4))
    sh = draw(st.integers(1, 3))
    sw = sh if square else draw(st.integers(1, 3))
    # integer padding at most half the window (PyTorch's rule, E307)
    pad = draw(st.one_of(st.just("same"), st.just("valid"), st.integers(0, min(kh, kw) // 2),
                         st.tuples(st.integers(0, kh // 2), st.integers(0, kw // 2))))
    ceil = draw(st.booleans())
    kind = draw(st.sampled_from(["POOL", "AVGPOOL"]))
    n = draw(st.integers(1, 2))
    cfg = dict(kind=kind, h=h, w=w, c=c, window=(kh, kw), stride=(sh, sw), pad=pad,
               ceil=ceil, n=n)
    (pt, pb), (pl, pr) = ref.conv_padding(pad, (h, w), (kh, kw), (sh, sw))
    assume(ref.out_size(h, kh, sh, pt, pb, 1, ceil) >= 1
           and ref.out_size(w, kw, sw, pl, pr, 1, ceil) >= 1)
    return cfg


def pool_source(cfg):
    args = [_pair_src(cfg["window"]), f"s={_pair_src(cfg['stride'])}", f"p={_pad_src(cfg['pad'])}"]
    if cfg["ceil"]:
        args.append("ceil=true")
    return f"INPUT({cfg['h']}x{cfg['w']}x{cfg['c']}) -> {cfg['kind']}({', '.join(args)})"


def conv_expected_shape(cfg):
    (pt, pb), (pl, pr) = ref.conv_padding(cfg["pad"], (cfg["h"], cfg["w"]), cfg["kernel"],
                                          cfg["stride"], cfg["dilation"])
    return ((ref.out_size(cfg["h"], cfg["kernel"][0], cfg["stride"][0], pt, pb,
                          cfg["dilation"][0]),
             ref.out_size(cfg["w"], cfg["kernel"][1], cfg["stride"][1], pl, pr,
                          cfg["dilation"][1]), cfg["filters"]), ((pt, pb), (pl, pr)))


def pool_expected_shape(cfg):
    (pt, pb), (pl, pr) = ref.conv_padding(cfg["pad"], (cfg["h"], cfg["w"]), cfg["window"],
                                          cfg["stride"])
    return ((ref.out_size(cfg["h"], cfg["window"][0], cfg["stride"][0], pt, pb, 1, cfg["ceil"]),
             ref.out_size(cfg["w"], cfg["window"][1], cfg["stride"][1], pl, pr, 1, cfg["ceil"]),
             cfg["c"]), ((pt, pb), (pl, pr)))


def _checked_layer(src):
    return patternnet.check(src).layers[-1]


@examples(150)  # the checker and the reference's output size only: cheap
@given(conv_configs())
def test_ref_conv_sizes_match_checker(cfg):
    layer = _checked_layer(conv_source(cfg))
    shape, padding = conv_expected_shape(cfg)
    assert layer.out_shape == shape
    assert dict(layer.args)["padding"] == padding
    # and the loop-based conv produces exactly that shape
    x = np.zeros((1, cfg["h"], cfg["w"], cfg["cin"]))
    w = np.zeros(cfg["kernel"] + (cfg["cin"] // cfg["groups"], cfg["filters"]))
    y = ref.conv2d(x, w, None, cfg["stride"], padding, cfg["dilation"], cfg["groups"])
    assert y.shape[1:] == shape


@examples(150)
@given(pool_configs())
def test_ref_pool_sizes_match_checker(cfg):
    layer = _checked_layer(pool_source(cfg))
    shape, padding = pool_expected_shape(cfg)
    assert layer.out_shape == shape
    assert dict(layer.args)["padding"] == padding
    x = np.zeros((1, cfg["h"], cfg["w"], cfg["c"]))
    fn = ref.maxpool if cfg["kind"] == "POOL" else ref.avgpool
    assert fn(x, cfg["window"], cfg["stride"], padding, cfg["ceil"]).shape[1:] == shape


# =========================================================================== backend

def _compile(src, **kw):
    pytest.importorskip("jax")
    return patternnet.compile(src, **kw)


def _key(seed):
    import jax
    return jax.random.PRNGKey(seed)


def to_numpy(tree):
    if isinstance(tree, dict):
        return {k: to_numpy(v) for k, v in tree.items()}
    return np.asarray(tree)


def randomize(tree, rng, name=""):
    """Fresh random float32 values with the shapes of ``tree`` (a params or state dict):
    BN scales in [0.5, 1.5], running variances in [0.5, 2], everything else normal."""
    if isinstance(tree, dict):
        return {k: randomize(v, rng, k) for k, v in tree.items()}
    shape = tuple(tree.shape)
    if name == "var":
        v = rng.uniform(0.5, 2.0, shape)
    elif name == "scale":
        v = rng.uniform(0.5, 1.5, shape)
    elif name == "w" and len(shape) >= 2:
        fan_in = int(np.prod(shape[:-1]))
        v = rng.normal(0.0, 1.0 / math.sqrt(fan_in), shape) * 2.0
    else:
        v = rng.normal(0.0, 0.5, shape)
    return v.astype(np.float32)


def shapes(tree):
    if isinstance(tree, dict):
        return {k: shapes(v) for k, v in tree.items()}
    return tuple(np.shape(tree))


def get(tree, path):
    for seg in path.split("."):
        tree = tree[seg]
    return tree


def build(src, seed=0, **kw):
    """Compile, init, then replace every parameter and state value by known random ones."""
    import jax
    model = _compile(src, **kw)
    # only the shapes are needed: eval_shape traces init without compiling it
    params, state = jax.eval_shape(model.init, _key(seed))
    rng = np.random.default_rng(seed)
    return model, randomize(params, rng), randomize(state, rng), rng


def apply(model, params, state, x, train=False, rng=None):
    y, new_state = model.apply(params, state, np.asarray(x, np.float32), train=train, rng=rng)
    assert np.asarray(y).dtype == np.float32
    return np.asarray(y, np.float64), to_numpy(new_state)


def close(y, expected, rtol=RTOL, atol=ATOL):
    assert y.shape == expected.shape, (y.shape, expected.shape)
    np.testing.assert_allclose(y, expected, rtol=rtol, atol=atol)


def f32(a):
    """The float32 value the backend sees, widened to float64 for the reference."""
    return np.asarray(a, np.float32).astype(np.float64)


# --- contract ---------------------------------------------------------------------------

def test_contract_param_tree():
    model = _compile("INPUT(7x7x3) -> CONV(4, 3, s=2, p=1) -> BN -> RELU -> FC(5) "
                     "-> FC(2, bias=false)")
    params, state = model.init(_key(0))
    assert shapes(to_numpy(params)) == {
        "conv1": {"w": (3, 3, 3, 4), "b": (4,)},
        "bn1": {"scale": (4,), "bias": (4,)},
        "fc1": {"w": (4 * 4 * 4, 5), "b": (5,)},
        "fc2": {"w": (5, 2)},
    }
    assert shapes(to_numpy(state)) == {"bn1": {"mean": (4,), "var": (4,)}}
    for leaf in (params["conv1"]["w"], params["fc1"]["b"], state["bn1"]["mean"]):
        assert np.asarray(leaf).dtype == np.float32


def test_contract_grouped_and_projection_shapes():
    model = _compile("INPUT(6x6x4) -> CONV(6, 3, groups=2, bias=false) "
                     "-> (CONV(8, s=2) -> BN + SKIP)")
    params, state = model.init(_key(1))
    p = shapes(to_numpy(params))
    assert p["conv1"] == {"w": (3, 3, 2, 6)}
    assert p["skip1"] == {"conv": {"w": (1, 1, 6, 8)}, "bn": {"scale": (8,), "bias": (8,)}}
    assert shapes(to_numpy(state))["skip1"] == {"bn": {"mean": (8,), "var": (8,)}}


def test_contract_nested_block_paths():
    model = _compile("blk(c) = CONV(c) -> BN\nINPUT(4x4x2) -> blk(3) -> blk(5) -> FC(2)")
    params, state = model.init(_key(0))
    p = shapes(to_numpy(params))
    assert p["blk1"]["conv1"]["w"] == (3, 3, 2, 3)
    assert p["blk2"]["conv1"]["w"] == (3, 3, 3, 5)
    assert shapes(to_numpy(state))["blk2"]["bn1"] == {"mean": (5,), "var": (5,)}


def test_forward_equals_apply_and_batch_independence():
    model, params, state, rng = build("INPUT(6x5x3) -> CONV(4, 3, s=2) -> BN -> RELU "
                                      "-> POOL(2, ceil=true) -> DROPOUT -> FC(3)")
    x = rng.normal(size=(3, 6, 5, 3)).astype(np.float32)
    y, _ = apply(model, params, state, x)
    yf = np.asarray(model.forward(params, state, x), np.float64)
    close(yf, y, rtol=1e-6, atol=1e-6)
    # each example is computed on its own in eval mode
    y0, _ = apply(model, params, state, x[1:2])
    close(y0, y[1:2], rtol=1e-6, atol=1e-6)


# --- CONV -------------------------------------------------------------------------------

def check_conv(cfg, seed=0):
    src = conv_source(cfg)
    model, params, state, rng = build(src, seed)
    shape, padding = conv_expected_shape(cfg)
    p = params["conv1"]
    assert p["w"].shape == cfg["kernel"] + (cfg["cin"] // cfg["groups"], cfg["filters"])
    assert ("b" in p) == cfg["bias"]
    x = rng.normal(size=(cfg["n"], cfg["h"], cfg["w"], cfg["cin"])).astype(np.float32)
    y, new_state = apply(model, params, state, x)
    expected = ref.conv2d(f32(x), f32(p["w"]), f32(p["b"]) if cfg["bias"] else None,
                          cfg["stride"], padding, cfg["dilation"], cfg["groups"])
    assert expected.shape[1:] == shape
    close(y, expected)


def _conv(h, w, cin, filters, kernel=3, stride=1, pad="same", dilation=1, groups=1, bias=True,
          n=2):
    return dict(h=h, w=w, cin=cin, filters=filters, kernel=ref.pair(kernel),
                stride=ref.pair(stride), dilation=ref.pair(dilation), pad=pad, groups=groups,
                bias=bias, n=n)


CONV_CASES = {
    "contract_example": _conv(7, 7, 3, 4, 3, 2, 1),
    "int_pad": _conv(6, 5, 2, 3, 3, 1, 1),
    "pair_pad": _conv(6, 5, 2, 3, (3, 2), 1, (1, 2)),
    "valid": _conv(6, 7, 3, 2, 3, 1, "valid"),
    "same_odd_kernel_s1": _conv(5, 6, 2, 3, 3, 1, "same"),
    "same_even_kernel_s1": _conv(5, 6, 2, 3, 4, 1, "same"),        # total 3: lo 1, hi 2
    "same_s2_even_input": _conv(8, 8, 2, 3, 3, 2, "same"),          # total 1: lo 0, hi 1
    "same_s2_odd_input": _conv(7, 7, 2, 3, 3, 2, "same"),           # total 2: 1/1
    "same_7x7_s2": _conv(10, 9, 3, 2, 7, 2, "same"),                 # total 5 / 4
    "same_s3_rect": _conv(7, 10, 2, 2, (2, 5), (3, 2), "same"),
    "same_dilated": _conv(7, 6, 2, 2, 3, 1, "same", dilation=2),
    "stride_gt_kernel": _conv(9, 8, 2, 3, 2, 3, 0),
    "stride_gt_kernel_1x1": _conv(7, 7, 3, 2, 1, 3, 0),
    "pad_gt_half_kernel": _conv(4, 5, 2, 3, 3, 1, 3),
    "pad_gt_kernel_strided": _conv(4, 4, 1, 2, 2, 2, (3, 4)),
    "dilation_2": _conv(9, 9, 2, 3, 3, 1, 0, dilation=2),
    "dilation_rect": _conv(9, 8, 2, 2, (2, 3), (1, 2), 1, dilation=(3, 2)),
    "groups_2": _conv(5, 5, 4, 6, 3, 1, 1, groups=2),
    "groups_3_strided": _conv(6, 6, 6, 3, 3, 2, "same", groups=3),
    "depthwise": _conv(5, 5, 4, 4, 3, 1, 1, groups=4),
    "depthwise_multiplier": _conv(5, 4, 2, 6, 3, 1, 1, groups=2),
    "no_bias": _conv(5, 5, 3, 4, 3, 2, 1, bias=False),
    "input_1x1_same": _conv(1, 1, 3, 4, 3, 1, "same"),
    "input_1x1_k1": _conv(1, 1, 3, 4, 1, 1, "valid"),
    "input_1x1_pad": _conv(1, 1, 2, 3, 2, 2, 1),
    "kernel_equals_input": _conv(4, 5, 2, 3, (4, 5), 1, "valid"),
    "batch_1": _conv(5, 5, 3, 4, 3, 1, 1, n=1),
    # the kernel exceeds the output: these run as one matrix product (conv_patches)
    "patches_2x2_same": _conv(2, 2, 3, 4, 3, 1, "same"),
    "patches_strided": _conv(4, 4, 3, 4, 3, 2, 1),
    "patches_dilated": _conv(3, 3, 2, 3, 3, 1, 2, dilation=2),
    "patches_rect": _conv(2, 6, 2, 3, 3, 1, "same"),
    "patches_asymmetric_pad": _conv(3, 2, 2, 2, (3, 2), (1, 2), (2, 1), bias=False),
}


@pytest.mark.parametrize("name", sorted(CONV_CASES))
def test_conv(name):
    check_conv(CONV_CASES[name])


# Each example compiles the layer in JAX and runs the NumPy loops: 40 in the quick suite,
# the same 40 every run; conv_configs assume()s an output of at least one pixel.
@examples(40, fixed=True, filtering=True)
@given(conv_configs(max_size=8))
def test_conv_random(cfg):
    check_conv(cfg)


@pytest.mark.slow
@slow_examples(300, filtering=True)
@given(conv_configs(max_size=11), st.integers(0, 2**16))
def test_conv_random_slow(cfg, seed):
    check_conv(cfg, seed)


# --- POOL / AVGPOOL ---------------------------------------------------------------------

def check_pool(cfg, seed=0):
    model, params, state, rng = build(pool_source(cfg), seed)
    shape, padding = pool_expected_shape(cfg)
    x = rng.normal(size=(cfg["n"], cfg["h"], cfg["w"], cfg["c"])).astype(np.float32)
    y, _ = apply(model, params, state, x)
    fn = ref.maxpool if cfg["kind"] == "POOL" else ref.avgpool
    expected = fn(f32(x), cfg["window"], cfg["stride"], padding, cfg["ceil"])
    assert expected.shape[1:] == shape
    close(y, expected, rtol=1e-5, atol=1e-6)


def _pool(kind, h, w, window=2, stride=None, pad=0, ceil=False, c=2, n=2):
    window = ref.pair(window)
    return dict(kind=kind, h=h, w=w, c=c, window=window,
                stride=window if stride is None else ref.pair(stride), pad=pad, ceil=ceil, n=n)


POOL_CASES = {
    "default_2x2": dict(h=6, w=6),
    "odd_input_floor": dict(h=5, w=7),
    "resnet_3_s2_p1": dict(h=8, w=7, window=3, stride=2, pad=1),
    "pair_pad": dict(h=6, w=7, window=(3, 2), stride=(2, 1), pad=(1, 0)),
    "same_s2": dict(h=7, w=6, window=3, stride=2, pad="same"),
    "same_s1_even": dict(h=5, w=5, window=2, stride=1, pad="same"),
    "same_3x3_s1": dict(h=4, w=5, window=3, stride=1, pad="same"),
    "valid_overlap": dict(h=7, w=7, window=3, stride=2, pad="valid"),
    "stride_gt_window": dict(h=9, w=8, window=2, stride=3),
    "ceil_partial_window": dict(h=5, w=5, window=2, ceil=True),          # 3, last partial
    "ceil_partial_3_s2": dict(h=6, w=8, window=3, stride=2, ceil=True),
    "ceil_last_window_removed": dict(h=5, w=5, window=2, pad=1, ceil=True),  # 4 -> 3
    "ceil_partial_beyond_pad": dict(h=4, w=4, window=3, stride=2, pad=1, ceil=True),
    "ceil_exact_no_change": dict(h=6, w=6, window=2, ceil=True),
    "ceil_rect": dict(h=5, w=7, window=(2, 3), stride=(2, 2), pad=(1, 1), ceil=True),
    "ceil_window_longer_than_input": dict(h=1, w=1, window=2, ceil=True),
    "input_1x1_window_1": dict(h=1, w=1, window=1),
    "input_1x1_same": dict(h=1, w=1, window=3, stride=1, pad="same"),
}


@pytest.mark.parametrize("kind", ["POOL", "AVGPOOL"])
@pytest.mark.parametrize("name", sorted(POOL_CASES))
def test_pool(kind, name):
    check_pool(_pool(kind, **POOL_CASES[name]))


def test_maxpool_padding_never_wins():
    model, params, state, rng = build("INPUT(4x4x2) -> POOL(3, s=1, p=1)")
    x = -1.0 - rng.uniform(size=(2, 4, 4, 2)).astype(np.float32)        # all < -1 < 0
    y, _ = apply(model, params, state, x)
    assert (y < -1).all()
    close(y, ref.maxpool(f32(x), 3, 1, ((1, 1), (1, 1))), rtol=1e-6, atol=0)


def test_avgpool_counts_padding_at_corners():
    model, params, state, rng = build("INPUT(3x3x1) -> AVGPOOL(3, s=1, p=same)")
    y, _ = apply(model, params, state, np.ones((1, 3, 3, 1)))
    np.testing.assert_allclose(y[0, :, :, 0], [[4 / 9, 6 / 9, 4 / 9], [6 / 9, 1, 6 / 9],
                                               [4 / 9, 6 / 9, 4 / 9]], rtol=1e-6)


def test_avgpool_ceil_divisor():
    # W=5, window 2, ceil: the last window holds one value and divides by 1
    model, params, state, rng = build("INPUT(1x5x1) -> AVGPOOL((1, 2), ceil=true)")
    y, _ = apply(model, params, state, np.array([1.0, 2, 3, 4, 5]).reshape(1, 1, 5, 1))
    np.testing.assert_allclose(y.ravel(), [1.5, 3.5, 5.0], rtol=1e-6)
    # W=4, window 3, stride 2, pad 1, ceil: last window clipped to the padded input: /2
    model, params, state, rng = build("INPUT(1x4x1) -> AVGPOOL((1, 3), s=(1, 2), p=(0, 1), "
                                      "ceil=true)")
    y, _ = apply(model, params, state, np.array([1.0, 2, 3, 4]).reshape(1, 1, 4, 1))
    np.testing.assert_allclose(y.ravel(), [1.0, 3.0, 2.0], rtol=1e-6)


@examples(40, fixed=True, filtering=True)  # as test_conv_random
@given(pool_configs(max_size=8))
def test_pool_random(cfg):
    check_pool(cfg)


@pytest.mark.slow
@slow_examples(300, filtering=True)
@given(pool_configs(max_size=12), st.integers(0, 2**16))
def test_pool_random_slow(cfg, seed):
    check_pool(cfg, seed)


# --- GAP, FLATTEN, FC -------------------------------------------------------------------

def test_gap():
    model, params, state, rng = build("INPUT(3x5x4) -> GAP")
    x = rng.normal(size=(2, 3, 5, 4))
    y, _ = apply(model, params, state, x)
    close(y, ref.gap(f32(x)), rtol=1e-5, atol=1e-6)


def test_gap_1x1():
    model, params, state, rng = build("INPUT(1x1x3) -> GAP")
    x = rng.normal(size=(2, 1, 1, 3))
    y, _ = apply(model, params, state, x)
    close(y, f32(x).reshape(2, 3), rtol=1e-6, atol=0)


def test_flatten_order():
    model, params, state, rng = build("INPUT(2x3x4) -> FLATTEN")
    x = np.arange(2 * 24, dtype=np.float32).reshape(2, 2, 3, 4)
    y, _ = apply(model, params, state, x)
    close(y, ref.flatten(x), rtol=0, atol=0)


def test_flatten_vector_unchanged():
    model, params, state, rng = build("INPUT(7) -> FLATTEN")
    x = rng.normal(size=(3, 7))
    y, _ = apply(model, params, state, x)
    close(y, f32(x), rtol=0, atol=0)


@pytest.mark.parametrize("src,xshape,units,bias", [
    ("INPUT(6) -> FC(4)", (3, 6), 4, True),
    ("INPUT(6) -> FC(4, bias=false)", (3, 6), 4, False),
    ("INPUT(3x4x5) -> FC(7)", (2, 3, 4, 5), 7, True),              # implicit flatten
    ("INPUT(3x4x5) -> FLATTEN -> FC(7)", (2, 3, 4, 5), 7, True),
    ("INPUT(2x2x3) -> DENSE(5, bias=false)", (2, 2, 2, 3), 5, False),
    ("INPUT(1x1x3) -> FC(2)", (2, 1, 1, 3), 2, True),
])
def test_fc(src, xshape, units, bias):
    model, params, state, rng = build(src)
    p = params["fc1"]
    assert p["w"].shape == (int(np.prod(xshape[1:])), units)
    assert ("b" in p) == bias
    x = rng.normal(size=xshape)
    y, _ = apply(model, params, state, x)
    close(y, ref.fc(f32(x), f32(p["w"]), f32(p["b"]) if bias else None))


def test_implicit_flatten_matches_explicit():
    m1, params, state, rng = build("INPUT(3x2x4) -> FC(5)")
    m2 = _compile("INPUT(3x2x4) -> FLATTEN -> FC(5)")
    x = rng.normal(size=(2, 3, 2, 4))
    y1, _ = apply(m1, params, state, x)
    y2, _ = apply(m2, params, state, x)
    close(y1, y2, rtol=1e-6, atol=1e-6)


# --- activations ------------------------------------------------------------------------

ACTIVATIONS = [
    ("RELU", ref.relu),
    ("TANH", ref.tanh),
    ("SIGMOID", ref.sigmoid),
    ("GELU", ref.gelu),
    ("GELU(tanh=true)", lambda x: ref.gelu(x, tanh=True)),
    ("GELU(false)", ref.gelu),
    ("SOFTMAX", ref.softmax),
    ("LRELU", lambda x: ref.lrelu(x, 0.01)),
    ("LRELU(0.2)", lambda x: ref.lrelu(x, 0.2)),
    ("LRELU(slope=-0.5)", lambda x: ref.lrelu(x, -0.5)),
    ("ELU", lambda x: ref.elu(x, 1.0)),
    ("ELU(alpha=0.5)", lambda x: ref.elu(x, 0.5)),
    ("ELU(2)", lambda x: ref.elu(x, 2.0)),
    ("ID", lambda x: x),
    ("RELU6", ref.relu6),
    ("HARDSIGMOID", ref.hardsigmoid),
    ("HARDSWISH", ref.hardswish),
    ("SILU", ref.silu),
    ("SWISH", ref.silu),
]


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 6)], ids=["image", "vector"])
@pytest.mark.parametrize("layer,fn", ACTIVATIONS, ids=[a for a, _ in ACTIVATIONS])
def test_activation(layer, fn, shape):
    inp = "x".join(map(str, shape[1:]))
    model, params, state, rng = build(f"INPUT({inp}) -> {layer}")
    x = rng.normal(0.0, 2.0, size=shape)
    y, _ = apply(model, params, state, x)
    close(y, fn(f32(x)), **ELEM)


def test_softmax_rows_sum_to_one_and_stable():
    model, params, state, rng = build("INPUT(4) -> SOFTMAX")
    x = np.array([[1000.0, 1001.0, 999.0, -1000.0], [0.0, 0.0, 0.0, 0.0]])
    y, _ = apply(model, params, state, x)
    assert np.isfinite(y).all()
    close(y, ref.softmax(x), **ELEM)


# --- BN ---------------------------------------------------------------------------------

@pytest.mark.parametrize("src,xshape,eps,mom", [
    ("INPUT(3x4x5) -> BN", (4, 3, 4, 5), 1e-5, 0.1),
    ("INPUT(3x4x5) -> BN(eps=1e-2, momentum=0.3)", (2, 3, 4, 5), 1e-2, 0.3),
    ("INPUT(1x1x3) -> BN(momentum=0.5)", (5, 1, 1, 3), 1e-5, 0.5),
    ("INPUT(6) -> BN", (5, 6), 1e-5, 0.1),
    ("INPUT(6) -> BN(1e-3, 0.9)", (3, 6), 1e-3, 0.9),
])
def test_bn_train_and_eval(src, xshape, eps, mom):
    model, params, state, rng = build(src)
    p, s = params["bn1"], state["bn1"]
    x = rng.normal(1.5, 2.0, size=xshape)
    # training: batch statistics, and the running-stat update
    y, new_state = apply(model, params, state, x, train=True, rng=_key(3))
    ey, em, ev = ref.batchnorm_train(f32(x), f32(p["scale"]), f32(p["bias"]), f32(s["mean"]),
                                     f32(s["var"]), eps, mom)
    close(y, ey)
    close(new_state["bn1"]["mean"].astype(np.float64), em, rtol=1e-5, atol=1e-5)
    close(new_state["bn1"]["var"].astype(np.float64), ev, rtol=1e-5, atol=1e-5)
    # the state passed in is not modified
    np.testing.assert_array_equal(state["bn1"]["mean"], s["mean"])
    # eval: running statistics, state unchanged
    y, new_state = apply(model, params, state, x, train=False)
    close(y, ref.batchnorm_eval(f32(x), f32(p["scale"]), f32(p["bias"]), f32(s["mean"]),
                                f32(s["var"]), eps))
    np.testing.assert_array_equal(new_state["bn1"]["mean"], s["mean"])
    np.testing.assert_array_equal(new_state["bn1"]["var"], s["var"])


def test_bn_init_state_is_pytorch_default():
    model = _compile("INPUT(2x2x3) -> BN")
    params, state = model.init(_key(0))
    np.testing.assert_array_equal(np.asarray(params["bn1"]["scale"]), np.ones(3))
    np.testing.assert_array_equal(np.asarray(params["bn1"]["bias"]), np.zeros(3))
    np.testing.assert_array_equal(np.asarray(state["bn1"]["mean"]), np.zeros(3))
    np.testing.assert_array_equal(np.asarray(state["bn1"]["var"]), np.ones(3))


def test_bn_two_train_steps_chain_state():
    model, params, state, rng = build("INPUT(2x2x3) -> BN(momentum=0.2)")
    x1 = rng.normal(size=(4, 2, 2, 3))
    x2 = rng.normal(2.0, 3.0, size=(4, 2, 2, 3))
    _, s1 = apply(model, params, state, x1, train=True, rng=_key(0))
    _, s2 = apply(model, params, s1, x2, train=True)        # no DROPOUT: no rng needed
    p, s = params["bn1"], state["bn1"]
    _, m1, v1 = ref.batchnorm_train(f32(x1), p["scale"], p["bias"], f32(s["mean"]),
                                    f32(s["var"]), 1e-5, 0.2)
    _, m2, v2 = ref.batchnorm_train(f32(x2), p["scale"], p["bias"], m1, v1, 1e-5, 0.2)
    close(s2["bn1"]["mean"].astype(np.float64), m2, rtol=1e-5, atol=1e-5)
    close(s2["bn1"]["var"].astype(np.float64), v2, rtol=1e-5, atol=1e-5)


# --- LRN --------------------------------------------------------------------------------

@pytest.mark.parametrize("args,kw", [
    ("", dict()),
    ("size=3, alpha=0.5, beta=0.6, k=1", dict(size=3, alpha=0.5, beta=0.6, k=1.0)),
    ("4, 2.0, 0.75, 1.0", dict(size=4, alpha=2.0, beta=0.75, k=1.0)),      # even size
    ("size=9, alpha=1.5, beta=1.0, k=0.5", dict(size=9, alpha=1.5, beta=1.0, k=0.5)),  # > C
    ("size=1, alpha=1, beta=2, k=1", dict(size=1, alpha=1.0, beta=2.0, k=1.0)),
])
def test_lrn(args, kw):
    model, params, state, rng = build(f"INPUT(3x2x7) -> LRN({args})" if args
                                      else "INPUT(3x2x7) -> LRN")
    x = rng.normal(0.0, 3.0, size=(2, 3, 2, 7))
    y, _ = apply(model, params, state, x)
    close(y, ref.lrn(f32(x), **kw), rtol=1e-5, atol=1e-6)


# --- DROPOUT ----------------------------------------------------------------------------

@pytest.mark.parametrize("src, xshape", [("INPUT(3x4x2) -> ID", (2, 3, 4, 2)),
                                         ("INPUT(5)", (3, 5))])
def test_identity_kinds(src, xshape):
    model, params, state, rng = build(src)
    x = rng.normal(size=xshape)
    y, _ = apply(model, params, state, x, train=True)
    close(y, ref.identity(f32(x)), rtol=0, atol=0)


def test_dropout_eval_identity():
    model, params, state, rng = build("INPUT(4x4x3) -> DROPOUT(0.7)")
    x = rng.normal(size=(2, 4, 4, 3))
    y, _ = apply(model, params, state, x, train=False)
    close(y, f32(x), rtol=0, atol=0)
    yf = np.asarray(model.forward(params, state, np.asarray(x, np.float32)), np.float64)
    close(yf, f32(x), rtol=0, atol=0)


@pytest.mark.parametrize("rate", [0.5, 0.2, 0.8])
def test_dropout_train(rate):
    model, params, state, rng = build(f"INPUT(40x40x8) -> DROPOUT({rate})")
    x = rng.uniform(0.5, 1.5, size=(4, 40, 40, 8)).astype(np.float32)   # never 0
    y, _ = apply(model, params, state, x, train=True, rng=_key(11))
    kept = y != 0
    np.testing.assert_allclose(y, ref.dropout(f32(x), kept, rate), rtol=1e-6)
    n = y.size
    frac = kept.mean()
    sd = math.sqrt(rate * (1 - rate) / n)
    assert abs(frac - (1 - rate)) < 5 * sd, (frac, 1 - rate)
    # the mean is roughly preserved
    assert abs(y.mean() - f32(x).mean()) < 0.05 * f32(x).mean()
    # same rng -> same mask; another rng -> another mask
    y2, _ = apply(model, params, state, x, train=True, rng=_key(11))
    np.testing.assert_array_equal(y2, y)
    y3, _ = apply(model, params, state, x, train=True, rng=_key(12))
    assert (y3 != 0).mean() == pytest.approx(1 - rate, abs=5 * sd)
    assert ((y3 != 0) != kept).mean() > 0.1


def test_dropout_rate_zero_is_identity_in_training():
    model, params, state, rng = build("INPUT(10) -> DROPOUT(0)")
    x = rng.normal(size=(3, 10))
    y, _ = apply(model, params, state, x, train=True, rng=_key(0))
    close(y, f32(x), rtol=0, atol=0)


def test_two_dropouts_use_different_masks():
    x = np.ones((2, 2000), np.float32)
    model, params, state, rng = build("INPUT(2000) -> (DROPOUT | DROPOUT)")
    y, _ = apply(model, params, state, x, train=True, rng=_key(5))
    a, b = y[:, :2000] != 0, y[:, 2000:] != 0
    assert (a != b).mean() > 0.3          # independent masks disagree about half the time


# --- branches: | and + (ID, SKIP) --------------------------------------------------------

def test_concat_images():
    model, params, state, rng = build("INPUT(5x5x3) -> (CONV(4, 1) | CONV(2, 3) "
                                      "| POOL(3, s=1, p=1) | ID)")
    x = rng.normal(size=(2, 5, 5, 3))
    y, _ = apply(model, params, state, x)
    a = ref.conv2d(f32(x), f32(params["conv1"]["w"]), f32(params["conv1"]["b"]))
    b = ref.conv2d(f32(x), f32(params["conv2"]["w"]), f32(params["conv2"]["b"]),
                   padding=((1, 1), (1, 1)))
    c = ref.maxpool(f32(x), 3, 1, ((1, 1), (1, 1)))
    close(y, ref.concat(a, b, c, f32(x)))


def test_concat_vectors():
    model, params, state, rng = build("INPUT(6) -> (FC(3) | FC(2) -> RELU)")
    x = rng.normal(size=(4, 6))
    y, _ = apply(model, params, state, x)
    a = ref.fc(f32(x), params["fc1"]["w"], params["fc1"]["b"])
    b = ref.relu(ref.fc(f32(x), params["fc2"]["w"], params["fc2"]["b"]))
    close(y, ref.concat(a, b))


def test_add_with_id():
    model, params, state, rng = build("INPUT(4x4x3) -> (CONV(3) -> RELU + ID + CONV(3, 1))")
    x = rng.normal(size=(2, 4, 4, 3))
    y, _ = apply(model, params, state, x)
    a = ref.relu(ref.conv2d(f32(x), params["conv1"]["w"], params["conv1"]["b"],
                            padding=((1, 1), (1, 1))))
    c = ref.conv2d(f32(x), params["conv2"]["w"], params["conv2"]["b"])
    close(y, ref.add(a, f32(x), c))


def test_skip_identity():
    model, params, state, rng = build("INPUT(4x4x3) -> (CONV(3) + SKIP)")
    assert not params.get("skip1")
    x = rng.normal(size=(2, 4, 4, 3))
    y, _ = apply(model, params, state, x)
    a = ref.conv2d(f32(x), params["conv1"]["w"], params["conv1"]["b"], padding=((1, 1), (1, 1)))
    close(y, ref.add(a, f32(x)))


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("src,hw,stride,padding", [
    ("INPUT(6x6x4) -> (CONV(8, s=2, bias=false) -> BN + SKIP) -> RELU", (6, 6), 2,
     ((0, 1), (0, 1))),
    ("INPUT(7x7x4) -> (CONV(6, s=2, bias=false) -> BN + SKIP) -> RELU", (7, 7), 2,
     ((1, 1), (1, 1))),
    ("INPUT(5x5x4) -> (CONV(6, bias=false) -> BN + SKIP) -> RELU", (5, 5), 1,
     ((1, 1), (1, 1))),
    # 7 -> 3: the projection's stride is 3 (the smallest s with (7 - 1)//s + 1 = 3)
    ("INPUT(7x7x4) -> (CONV(4, s=3, bias=false) -> BN + SKIP) -> RELU", (7, 7), 3,
     ((1, 1), (1, 1))),
    # a different stride per axis
    ("INPUT(6x5x4) -> (CONV(8, s=(2, 1), bias=false) -> BN + SKIP) -> RELU", (6, 5), (2, 1),
     ((0, 1), (1, 1))),
])
def test_skip_projection(src, hw, stride, padding, train):
    model, params, state, rng = build(src)
    assert dict(patternnet.check(src).layers[-2].args)["stride"] == ref.pair(stride)
    x = rng.normal(size=(3,) + hw + (4,))
    y, new_state = apply(model, params, state, x, train=train, rng=_key(0) if train else None)
    p, s = params, state
    z = ref.conv2d(f32(x), p["conv1"]["w"], None, stride, padding)
    sp, ss = p["skip1"], s["skip1"]
    if train:
        z, m1, v1 = ref.batchnorm_train(z, p["bn1"]["scale"], p["bn1"]["bias"], s["bn1"]["mean"],
                                        s["bn1"]["var"])
        sk, m2, v2 = ref.skip_projection(f32(x), sp["conv"]["w"], sp["bn"]["scale"],
                                         sp["bn"]["bias"], ss["bn"]["mean"], ss["bn"]["var"],
                                         stride, train=True)
        for got, exp in [(new_state["bn1"]["mean"], m1), (new_state["bn1"]["var"], v1),
                         (new_state["skip1"]["bn"]["mean"], m2),
                         (new_state["skip1"]["bn"]["var"], v2)]:
            close(got.astype(np.float64), exp, rtol=1e-5, atol=1e-5)
    else:
        z = ref.batchnorm_eval(z, p["bn1"]["scale"], p["bn1"]["bias"], s["bn1"]["mean"],
                               s["bn1"]["var"])
        sk = ref.skip_projection(f32(x), sp["conv"]["w"], sp["bn"]["scale"], sp["bn"]["bias"],
                                 ss["bn"]["mean"], ss["bn"]["var"], stride)
    close(y, ref.relu(ref.add(z, sk)))


def test_small_cnn_end_to_end():
    src = ("INPUT(9x9x3) -> CONV(4, 3, s=2, p=1) -> BN -> RELU -> POOL(2, ceil=true) "
           "-> LRN(3) -> AVGPOOL(2, p=1) -> FC(3) -> SOFTMAX")
    model, params, state, rng = build(src)
    x = rng.normal(size=(2, 9, 9, 3))
    y, _ = apply(model, params, state, x)
    p, s = params, state
    z = ref.conv2d(f32(x), p["conv1"]["w"], p["conv1"]["b"], 2, ((1, 1), (1, 1)))
    z = ref.batchnorm_eval(z, p["bn1"]["scale"], p["bn1"]["bias"], s["bn1"]["mean"],
                           s["bn1"]["var"])
    z = ref.maxpool(ref.relu(z), 2, 2, ceil=True)
    z = ref.avgpool(ref.lrn(z, 3), 2, 2, ((1, 1), (1, 1)))
    z = ref.softmax(ref.fc(z, p["fc1"]["w"], p["fc1"]["b"]))
    close(y, z, rtol=1e-4, atol=1e-5)


# --- losses -----------------------------------------------------------------------------

def _ref_cross_entropy(logits, labels):
    total = 0.0
    for n, lab in enumerate(labels):
        row = [float(v) for v in logits[n]]
        m = max(row)
        lse = m + math.log(sum(math.exp(v - m) for v in row))
        total += lse - row[lab]
    return total / len(labels)


def test_loss_values():
    import jax.numpy as jnp
    model, params, state, rng = build("INPUT(6) -> FC(4)")
    x = rng.normal(size=(5, 6)).astype(np.float32)
    labels = rng.integers(0, 4, size=5)
    logits = ref.fc(f32(x), params["fc1"]["w"], params["fc1"]["b"])
    (l, _), grads = model.value_and_grad(params, state, x, labels, loss="cross_entropy",
                                         train=False)
    assert float(l) == pytest.approx(_ref_cross_entropy(logits, labels), rel=1e-5)
    assert shapes(to_numpy(grads)) == shapes(params)
    targets = rng.normal(size=(5, 4)).astype(np.float32)
    (l, _), _ = model.value_and_grad(params, state, x, targets, loss="mse", train=False)
    assert float(l) == pytest.approx(float(np.mean((logits - f32(targets)) ** 2)), rel=1e-5)
    (l, _), _ = model.value_and_grad(params, state, x, targets,
                                     loss=lambda y, t: jnp.sum(y * t), train=False)
    assert float(l) == pytest.approx(float(np.sum(logits * f32(targets))), rel=1e-5, abs=1e-5)


def test_cross_entropy_after_softmax_scores_the_logits():
    # the backend's documented choice: a final SOFTMAX is scored on its input
    m1, params, state, rng = build("INPUT(6) -> FC(4) -> SOFTMAX")
    x = rng.normal(size=(5, 6)).astype(np.float32)
    labels = rng.integers(0, 4, size=5)
    logits = ref.fc(f32(x), params["fc1"]["w"], params["fc1"]["b"])
    (l, _), _ = m1.value_and_grad(params, state, x, labels, loss="cross_entropy", train=False)
    assert float(l) == pytest.approx(_ref_cross_entropy(logits, labels), rel=1e-5)


# --- compile options and keys -----------------------------------------------------------

def test_compile_options_input_shape_classes_define():
    model, params, state, rng = build("n in 1..3\nINPUT -> [CONV(2) -> RELU]*n -> FC",
                                      define={"n": 2}, input_shape="4x5x3", classes=3)
    assert shapes(params) == {"conv1": {"w": (3, 3, 3, 2), "b": (2,)},
                              "conv2": {"w": (3, 3, 2, 2), "b": (2,)},
                              "fc1": {"w": (4 * 5 * 2, 3), "b": (3,)}}
    x = rng.normal(size=(2, 4, 5, 3))
    y, _ = apply(model, params, state, x)
    z = f32(x)
    for name in ("conv1", "conv2"):
        z = ref.relu(ref.conv2d(z, params[name]["w"], params[name]["b"],
                                padding=((1, 1), (1, 1))))
    close(y, ref.fc(z, params["fc1"]["w"], params["fc1"]["b"]))


def test_typed_keys():
    import jax
    model = _compile("INPUT(50) -> FC(20) -> DROPOUT")
    params, state = model.init(jax.random.key(0))
    x = np.ones((4, 50), np.float32)
    y1, _ = model.apply(params, state, x, train=True, rng=jax.random.key(1))
    y2, _ = model.apply(params, state, x, train=True, rng=jax.random.PRNGKey(1))
    assert np.asarray(y1).shape == (4, 20)
    # the same seed as a typed key or a raw key gives the same mask
    np.testing.assert_array_equal(np.asarray(y1) != 0, np.asarray(y2) != 0)


# --- the modern vocabulary: LAYERNORM, GROUPNORM, SCALE, DROPPATH, SPLIT, SHUFFLE,
# --- UPSAMPLE, CONVT ----------------------------------------------------------------------

def test_ref_layernorm_and_groupnorm_hand_computed():
    # one position, channels 1, 2, 3: mean 2, biased var 2/3
    x = np.array([1.0, 2.0, 3.0]).reshape(1, 1, 1, 3)
    y = ref.layernorm(x, [1.0, 2.0, 1.0], [0.0, 0.0, 5.0], eps=0.0)
    s = math.sqrt(2 / 3)
    np.testing.assert_allclose(y.ravel(), [-1 / s, 0.0, 1 / s + 5])
    # two groups of two channels over 1x2 positions: group 0 holds 0, 2, 4, 6
    x = np.array([[0.0, 2.0, 10.0, 10.0], [4.0, 6.0, 10.0, 14.0]]).reshape(1, 1, 2, 4)
    y = ref.groupnorm(x, [1.0] * 4, [0.0] * 4, groups=2, eps=0.0)
    np.testing.assert_allclose(y[0, 0, :, :2].ravel(), (np.array([0, 2, 4, 6]) - 3) / math.sqrt(5))
    np.testing.assert_allclose(y[0, 0, :, 2:].ravel(), (np.array([10, 10, 10, 14]) - 11) / math.sqrt(3))


def test_ref_channels_hand_computed():
    x = np.arange(6.0).reshape(1, 1, 1, 6)
    np.testing.assert_array_equal(ref.split(x, 3, 1).ravel(), [2, 3])
    np.testing.assert_array_equal(ref.shuffle(x, 2).ravel(), [0, 3, 1, 4, 2, 5])
    np.testing.assert_array_equal(ref.shuffle(x, 3).ravel(), [0, 2, 4, 1, 3, 5])
    np.testing.assert_array_equal(ref.channel_scale(x, [1, 2, 3, 4, 5, 6]).ravel(),
                                  [0, 2, 6, 12, 20, 30])
    np.testing.assert_array_equal(ref.droppath(np.ones((2, 3)), [True, False], 0.5),
                                  [[2, 2, 2], [0, 0, 0]])


def test_ref_upsample_hand_computed():
    x = np.array([1.0, 3.0]).reshape(1, 1, 2, 1)
    np.testing.assert_array_equal(ref.upsample(x, (1, 4)).ravel(), [1, 1, 3, 3])
    # PyTorch's bilinear, align_corners=False: sources -0.25 (clamped to 0), 0.25, 0.75, 1.25
    np.testing.assert_allclose(ref.upsample(x, (1, 4), bilinear=True).ravel(),
                               [1.0, 1.5, 2.5, 3.0])
    # align_corners=True: sources 0, 1/3, 2/3, 1
    np.testing.assert_allclose(ref.upsample(x, (1, 4), bilinear=True, corners=True).ravel(),
                               [1.0, 5 / 3, 7 / 3, 3.0])


def test_ref_conv_transpose_hand_computed():
    # 1 channel, 2 inputs, kernel [1, 10], stride 2: each input writes its own pair
    x = np.array([1.0, 2.0]).reshape(1, 1, 2, 1)
    w = np.array([1.0, 10.0]).reshape(1, 2, 1, 1)
    np.testing.assert_array_equal(ref.conv_transpose2d(x, w, stride=(1, 2)).ravel(),
                                  [1, 10, 2, 20])
    # stride 1: the pairs overlap and add; padding 1 crops one from each side
    y = ref.conv_transpose2d(x, w, stride=1)
    np.testing.assert_array_equal(y.ravel(), [1, 12, 20])
    y = ref.conv_transpose2d(x, w, stride=1, padding=(0, 1))
    np.testing.assert_array_equal(y.ravel(), [12])
    # output_padding adds a zero column at the end (no input reaches it)
    y = ref.conv_transpose2d(x, w, stride=(1, 2), output_padding=(0, 1))
    np.testing.assert_array_equal(y.ravel(), [1, 10, 2, 20, 0])


@pytest.mark.parametrize("src,xshape", [
    ("INPUT(3x4x5) -> LAYERNORM", (2, 3, 4, 5)),
    ("INPUT(3x4x5) -> LN(eps=1e-6)", (2, 3, 4, 5)),
    ("INPUT(7) -> LAYERNORM", (3, 7)),
])
def test_layernorm(src, xshape):
    model, params, state, rng = build(src)
    p = params["layernorm1"]
    x = rng.normal(1.0, 3.0, size=xshape)
    eps = 1e-6 if "1e-6" in src else 1e-5
    y, _ = apply(model, params, state, x)
    close(y, ref.layernorm(f32(x), f32(p["scale"]), f32(p["bias"]), eps), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("src,xshape,groups", [
    ("INPUT(3x4x6) -> GROUPNORM(3)", (2, 3, 4, 6), 3),
    ("INPUT(3x4x6) -> GN(groups=1, eps=1e-3)", (2, 3, 4, 6), 1),
    ("INPUT(2x2x4) -> GROUPNORM(4)", (2, 2, 2, 4), 4),
    ("INPUT(8) -> GROUPNORM(2)", (3, 8), 2),
])
def test_groupnorm(src, xshape, groups):
    model, params, state, rng = build(src)
    p = params["groupnorm1"]
    x = rng.normal(-1.0, 2.0, size=xshape)
    eps = 1e-3 if "1e-3" in src else 1e-5
    y, _ = apply(model, params, state, x)
    close(y, ref.groupnorm(f32(x), f32(p["scale"]), f32(p["bias"]), groups, eps),
          rtol=1e-5, atol=1e-5)


def test_scale_starts_at_its_init_and_scales_channels():
    import jax
    model = _compile("INPUT(2x2x3) -> SCALE(init=0.5)")
    params, state = model.init(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(np.asarray(params["scale1"]["scale"]), [0.5, 0.5, 0.5])
    model, params, state, rng = build("INPUT(2x2x3) -> SCALE")
    x = rng.normal(size=(2, 2, 2, 3))
    y, _ = apply(model, params, state, x)
    close(y, ref.channel_scale(f32(x), f32(params["scale1"]["scale"])), **ELEM)


def test_droppath_is_per_sample_and_training_only():
    rate = 0.4
    model, params, state, rng = build(f"INPUT(3x3x2) -> DROPPATH({rate})")
    x = rng.uniform(0.5, 1.5, size=(400, 3, 3, 2))   # never 0
    y, _ = apply(model, params, state, x, train=True, rng=_key(5))
    keep = (y != 0).reshape(len(y), -1)
    assert (keep.all(axis=1) | ~keep.any(axis=1)).all(), "a sample was partly dropped"
    close(y, ref.droppath(f32(x), keep[:, 0], rate), rtol=1e-6, atol=0)
    sd = math.sqrt(rate * (1 - rate) / len(y))
    assert abs(keep[:, 0].mean() - (1 - rate)) < 5 * sd
    y2, _ = apply(model, params, state, x, train=True, rng=_key(5))
    np.testing.assert_array_equal(y2, y)           # the same key, the same samples
    y, _ = apply(model, params, state, x, train=False)
    close(y, f32(x), rtol=0, atol=0)


@pytest.mark.parametrize("src,xshape,fn", [
    ("INPUT(2x3x6) -> SPLIT", (2, 2, 3, 6), lambda x: ref.split(x, 2, 0)),
    ("INPUT(2x3x6) -> SPLIT(3, 2)", (2, 2, 3, 6), lambda x: ref.split(x, 3, 2)),
    ("INPUT(6) -> SPLIT(2, 1)", (3, 6), lambda x: ref.split(x, 2, 1)),
    ("INPUT(2x3x6) -> SHUFFLE", (2, 2, 3, 6), lambda x: ref.shuffle(x, 2)),
    ("INPUT(2x3x6) -> SHUFFLE(3)", (2, 2, 3, 6), lambda x: ref.shuffle(x, 3)),
])
def test_split_and_shuffle(src, xshape, fn):
    model, params, state, rng = build(src)
    x = rng.normal(size=xshape)
    y, _ = apply(model, params, state, x)
    close(y, fn(f32(x)), rtol=0, atol=0)


@pytest.mark.parametrize("args,xshape,out,kw", [
    ("", (2, 3, 4, 2), (6, 8), {}),
    ("3x2", (2, 3, 4, 2), (9, 8), {}),
    ("size=7x5", (2, 3, 4, 2), (7, 5), {}),
    ("bilinear=true", (2, 3, 4, 2), (6, 8), dict(bilinear=True)),
    ("size=5x9, bilinear=true", (2, 3, 4, 2), (5, 9), dict(bilinear=True)),
    ("2, bilinear=true, corners=true", (2, 3, 4, 2), (6, 8), dict(bilinear=True, corners=True)),
    ("size=2x3, bilinear=true", (2, 3, 4, 2), (2, 3), dict(bilinear=True)),   # down
])
def test_upsample(args, xshape, out, kw):
    model, params, state, rng = build(f"INPUT({xshape[1]}x{xshape[2]}x{xshape[3]}) -> "
                                      f"UPSAMPLE({args})")
    x = rng.normal(size=xshape)
    y, _ = apply(model, params, state, x)
    close(y, ref.upsample(f32(x), out, **kw), rtol=1e-5, atol=1e-6)


CONVT_CASES = [
    ("CONVT(3)", (4, 5, 2), {}),
    ("CONVT(4, 3, s=2, p=1, output_padding=1)", (4, 4, 2), dict(stride=2, padding=(1, 1), output_padding=(1, 1))),
    ("CONVT(3, (3, 2), s=(1, 2), p=(1, 0))", (3, 4, 2), dict(stride=(1, 2), padding=(1, 0))),
    ("CONVT(4, 3, s=1, dilation=2, bias=false)", (3, 3, 2), dict(stride=1, dilation=2)),
    ("CONVT(6, 2, s=2, groups=2)", (3, 3, 4), dict(stride=2, groups=2)),
    ("CONVT(2, 2, s=1, p=2)", (5, 5, 3), dict(stride=1, padding=(2, 2))),   # crops
]


@pytest.mark.parametrize("args,inp,kw", CONVT_CASES, ids=[c[0] for c in CONVT_CASES])
def test_convt(args, inp, kw):
    model, params, state, rng = build(f"INPUT({inp[0]}x{inp[1]}x{inp[2]}) -> {args}")
    p = params["convt1"]
    x = rng.normal(size=(2,) + inp)
    y, _ = apply(model, params, state, x)
    kw = {"stride": 2, **kw}
    close(y, ref.conv_transpose2d(f32(x), f32(p["w"]), f32(p["b"]) if "b" in p else None, **kw))


def test_skip_projection_takes_its_bn_arguments():
    """SKIP(eps=, momentum=) reach the projection's BN (MobileNet-style nets use 1e-3)."""
    src = "INPUT(4x4x3) -> (CONV(5, s=2) + SKIP(eps=0.5, momentum=0.3))"
    model, params, state, rng = build(src)
    p, s = params["skip1"], state["skip1"]
    x = rng.normal(size=(3, 4, 4, 3))
    y, new = apply(model, params, state, x, train=True, rng=_key(0))
    conv = ref.conv2d(f32(x), f32(params["conv1"]["w"]), f32(params["conv1"]["b"]), stride=2,
                      padding=((0, 1), (0, 1)))
    sk, mean, var = ref.skip_projection(f32(x), f32(p["conv"]["w"]), f32(p["bn"]["scale"]),
                                        f32(p["bn"]["bias"]), f32(s["bn"]["mean"]),
                                        f32(s["bn"]["var"]), 2, train=True, eps=0.5, momentum=0.3)
    close(y, conv + sk)
    close(new["skip1"]["bn"]["mean"].astype(np.float64), mean, rtol=1e-5, atol=1e-5)
