"""oneDNN's convolution on the CPU (patternnet/backend/onednn.py over
native/onednn_conv.cc): built and loaded where its wheel exists, equal to the NumPy
reference in all three passes for any geometry, differentiable in every mode, used by
models and training, kept out of exported programs, and replaced by XLA's convolution
whenever it cannot run.

Bounds: each pass is a float32 sum of K products, |fl(sum) - sum| <= K * u * sum|terms|
with u = eps/2, taken as K * eps * sum|terms|; sum|terms| is the reference run on the
operands' absolute values.  K is kh*kw*C/groups for the forward pass, kh*kw*O/groups
for the input gradient and N*OH*OW for the kernel gradient (the terms each output
element sums).  The operands are float32 values, so the float64 reference sees what the
library sees.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import patternnet
import reference_numpy as ref
from conftest import examples, slow_examples
from patternnet.backend import onednn

ROOT = Path(__file__).resolve().parent.parent
EPS = float(np.finfo(np.float32).eps)
F32 = np.float32
SUPPORTED = sys.platform == "linux" and platform.machine() == "x86_64"
LOADED = onednn.status()["loaded"]
needs_library = pytest.mark.skipif(not LOADED, reason="oneDNN convolution not loaded: "
                                   + onednn.status()["why"])
TARGETS = ("PatternnetConvForward", "PatternnetConvBackwardData",
           "PatternnetConvBackwardWeights")


def test_built_and_loaded_where_its_wheel_exists():
    if not SUPPORTED:
        pytest.skip(f"oneDNN's wheel exists for Linux x86-64 only, not {sys.platform}")
    status = onednn.status()
    assert status["loaded"], f"oneDNN convolution not loaded: {status['why']}"
    assert status["onednn"] == "3.2.0" and status["choice"] == "onednn"


class Geometry:
    def __init__(self, n, hw, c, o, kernel, stride, padding, dilation, groups):
        self.n, self.hw, self.c, self.o, self.kernel = n, hw, c, o, kernel
        self.stride, self.padding, self.dilation, self.groups = (stride, padding, dilation,
                                                                 groups)

    @property
    def args(self):
        return self.stride, self.padding, self.dilation, self.groups

    def operands(self, seed):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(self.n, *self.hw, self.c)).astype(F32)
        w = rng.normal(size=(*self.kernel, self.c // self.groups, self.o)).astype(F32)
        return x, w, rng

    def ref_kw(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation,
                    groups=self.groups)

    def k_forward(self):
        return self.kernel[0] * self.kernel[1] * self.c // self.groups

    def k_dx(self):
        return self.kernel[0] * self.kernel[1] * self.o // self.groups

    def __repr__(self):
        return (f"Geometry(n={self.n}, hw={self.hw}, c={self.c}, o={self.o}, "
                f"kernel={self.kernel}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, groups={self.groups})")


def _assert_within(kind, geo, got, want, k, terms):
    got = np.asarray(got, np.float64)
    bound = k * EPS * terms
    err = np.abs(got - want)
    assert got.shape == want.shape, (kind, got.shape, want.shape)
    if not (err <= bound).all():
        i = np.unravel_index(np.argmax(err - bound), err.shape)
        pytest.fail(f"{kind} of {geo}: {err[i]:.3g} from the NumPy reference at {i}, beyond "
                    f"the float32 bound {bound[i]:.3g}")


def _passes(geo, x, w, g):
    """(y, dx, dw) from oneDNN: the forward pass and both gradients for cotangent g."""
    def f(x, w):
        return onednn.conv(x, w, *geo.args)

    @jax.jit
    def run(x, w, g):
        y, vjp = jax.vjp(f, x, w)
        return (y, *vjp(g))
    return run(x, w, g)


def _check_passes(geo, seed=0):
    x, w, rng = geo.operands(seed)
    want = ref.conv2d(x, w, None, **geo.ref_kw())
    g = rng.normal(size=want.shape).astype(F32)
    y, dx, dw = _passes(geo, x, w, g)
    _assert_within("forward", geo, y, want, geo.k_forward(),
                   ref.conv2d(np.abs(x), np.abs(w), None, **geo.ref_kw()))
    rdx, rdw = ref.conv2d_grads(x, w, g, **geo.ref_kw())
    tdx, tdw = ref.conv2d_grads(np.abs(x), np.abs(w), np.abs(g), **geo.ref_kw())
    _assert_within("input gradient", geo, dx, rdx, geo.k_dx(), tdx)
    _assert_within("kernel gradient", geo, dw, rdw, geo.n * want.shape[1] * want.shape[2],
                   tdw)


GEOMETRIES = [
    Geometry(2, (9, 9), 4, 6, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1),
    Geometry(2, (9, 8), 4, 6, (3, 2), (2, 2), ((1, 0), (0, 2)), (1, 1), 1),   # uneven pads
    Geometry(2, (9, 9), 6, 6, (3, 3), (1, 2), ((2, 2), (2, 2)), (2, 1), 3),   # groups, dilation
    Geometry(3, (8, 8), 8, 8, (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1), 8),   # depthwise, s=2
    Geometry(2, (8, 8), 8, 16, (1, 1), (2, 2), ((0, 0), (0, 0)), (1, 1), 1),  # 1x1 projection
    Geometry(2, (16, 16), 3, 8, (7, 7), (2, 2), ((3, 3), (3, 3)), (1, 1), 1),  # 7x7 stem
    Geometry(1, (5, 5), 2, 2, (3, 3), (3, 3), ((0, 0), (0, 0)), (1, 1), 1),   # rows unread
]


@needs_library
@pytest.mark.parametrize("geo", GEOMETRIES, ids=repr)
def test_three_passes_against_the_numpy_reference(geo):
    _check_passes(geo)


@st.composite
def geometries(draw):
    groups = draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(2))
    span = [d * (k - 1) + 1 for d, k in zip(dilation, kernel)]
    hw = tuple(draw(st.integers(max(1, s - lo - hi), 8))
               for s, (lo, hi) in zip(span, padding))
    return Geometry(draw(st.integers(1, 3)), hw, groups * draw(st.integers(1, 3)),
                    groups * draw(st.integers(1, 3)), kernel,
                    (draw(st.integers(1, 3)), draw(st.integers(1, 3))), padding, dilation,
                    groups)


@needs_library
@examples(12)  # each example runs the three oneDNN passes and the NumPy loops
@given(geometries(), st.integers(0, 2**31 - 1))
def test_any_geometry_against_the_numpy_reference(geo, seed):
    _check_passes(geo, seed)


@needs_library
@pytest.mark.slow
@slow_examples(200)
@given(geometries(), st.integers(0, 2**31 - 1))
def test_any_geometry_against_the_numpy_reference_many(geo, seed):
    _check_passes(geo, seed)


# --- differentiation: every transpose rule, forward mode, vmap ---------------------------

GEO = GEOMETRIES[2]           # grouped, dilated, strided: the rules' index bookkeeping


def _operands():
    x, w, rng = GEO.operands(1)
    y_shape = ref.conv2d(x, w, None, **GEO.ref_kw()).shape
    c, u = (rng.normal(size=s).astype(F32) for s in (y_shape, x.shape))
    v = rng.normal(size=w.shape).astype(F32)
    return x, w, c, u, v


def _conv(x, w):
    return onednn.conv(x, w, *GEO.args)


def _dx(c, w, x_shape):
    return jax.vjp(lambda x: _conv(x, w), jnp.zeros(x_shape, F32))[1](c)[0]


def _dw(x, c, w_shape):
    return jax.vjp(lambda w: _conv(x, w), jnp.zeros(w_shape, F32))[1](c)[0]


def _ref_forward(x, w):
    kw = GEO.ref_kw()
    return ref.conv2d(x, w, None, **kw), ref.conv2d(np.abs(x), np.abs(w), None, **kw)


def _ref_grads(x, w, g):
    kw = GEO.ref_kw()
    return ref.conv2d_grads(x, w, g, **kw), ref.conv2d_grads(np.abs(x), np.abs(w),
                                                             np.abs(g), **kw)


@needs_library
def test_second_derivatives_use_each_transpose_rule():
    # Each function below is bilinear in its two operands, so the gradient of <f(a, b), t>
    # with respect to one operand is itself one convolution pass, with its own bound.
    x, w, c, u, v = _operands()
    k_dw = GEO.n * c.shape[1] * c.shape[2]
    (gdx, gdw), (tdx, tdw) = _ref_grads(x, v, c)
    # <conv_dk(x, c), v>: d/dx = conv_dx(c, v), d/dc = conv(x, v)
    dx, dc = jax.grad(lambda x, c: jnp.sum(_dw(x, c, w.shape) * v), (0, 1))(x, c)
    _assert_within("d/dx <conv_dk(x, c), v>", GEO, dx, gdx, GEO.k_dx(), tdx)
    want, terms = _ref_forward(x, v)
    _assert_within("d/dc <conv_dk(x, c), v>", GEO, dc, want, GEO.k_forward(), terms)
    # <conv_dx(c, w), u>: d/dc = conv(u, w), d/dw = conv_dk(u, c)
    dc, dw = jax.grad(lambda c, w: jnp.sum(_dx(c, w, x.shape) * u), (0, 1))(c, w)
    want, terms = _ref_forward(u, w)
    _assert_within("d/dc <conv_dx(c, w), u>", GEO, dc, want, GEO.k_forward(), terms)
    (_, gdw), (_, tdw) = _ref_grads(u, w, c)
    _assert_within("d/dw <conv_dx(c, w), u>", GEO, dw, gdw, k_dw, tdw)
    jaxpr = str(jax.make_jaxpr(jax.grad(lambda x, c: jnp.sum(_dw(x, c, w.shape) * v)))(x, c))
    assert "patternnet_onednn_conv_dx" in jaxpr and "conv_general_dilated" not in jaxpr


@needs_library
def test_forward_mode():
    x, w, c, u, v = _operands()
    y, t = jax.jvp(_conv, (x, w), (u, v))
    want, terms = _ref_forward(x, w)
    _assert_within("jvp primal", GEO, y, want, GEO.k_forward(), terms)
    a, ta = _ref_forward(u, w)
    b, tb = _ref_forward(x, v)
    _assert_within("jvp tangent", GEO, t, a + b, GEO.k_forward(), ta + tb)
    # jacfwd (tangents through the forward pass) equals jacrev (cotangents through the
    # input gradient): each entry is one kernel weight or zero, so both are exact.
    xs = x[:1, :4, :4]
    f = lambda x: _conv(x, w)  # noqa: E731
    np.testing.assert_array_equal(jax.jacfwd(f)(xs), jax.jacrev(f)(xs))


@needs_library
def test_vmap_folds_activations_and_maps_kernels():
    x, w, c, u, v = _operands()
    xs, ws = np.stack([x, u]), np.stack([w, v])
    want = [_ref_forward(a, b) for a, b in ((x, w), (u, w))]
    got = jax.vmap(_conv, (0, None))(xs, w)                    # folded into the batch
    for i, (r, t) in enumerate(want):
        _assert_within(f"vmap over x [{i}]", GEO, got[i], r, GEO.k_forward(), t)
    got = jax.vmap(_conv)(xs, ws)                               # XLA's, mapped
    for i, (a, b) in enumerate(((x, w), (u, v))):
        r, t = _ref_forward(a, b)
        _assert_within(f"vmap over x and w [{i}]", GEO, got[i], r, GEO.k_forward(), t)
    per_example = jax.vmap(jax.grad(lambda w, x: jnp.sum(_conv(x[None], w) ** 2)),
                           (None, 0))(w, x)
    for i in range(GEO.n):
        g = 2 * ref.conv2d(x[i:i + 1], w, None, **GEO.ref_kw()).astype(F32)
        (_, r), (_, t) = _ref_grads(x[i:i + 1], w, g)
        _assert_within(f"per-example gradient [{i}]", GEO, per_example[i], r,
                       c.shape[1] * c.shape[2], t)


@needs_library
def test_eager_call_outside_jit():
    x, w, *_ = _operands()
    want, terms = _ref_forward(x, w)
    _assert_within("eager forward", GEO, _conv(x, w), want, GEO.k_forward(), terms)


# --- where it is used, and where not -------------------------------------------------

NET = "INPUT(12x12x3) -> CONV(8) -> BN -> RELU -> CONV(8, groups=8) -> CONV(16, 1) -> GAP -> FC(4)"


def _train_step_text(model):
    import optax
    p, s = model.init(0)
    opt = optax.sgd(0.1)
    x = jnp.zeros((4, 12, 12, 3), model.dtype)
    y = jnp.zeros((4,), jnp.int32)
    return jax.jit(model.train_step(opt)).lower(p, s, opt.init(p), x, y,
                                                jax.random.key(0)).as_text()


@needs_library
def test_models_train_on_onednn():
    text = _train_step_text(patternnet.compile(NET))
    for target in TARGETS:
        assert target in text
    assert "stablehlo.convolution" not in text


def test_bfloat16_models_keep_xla():
    text = _train_step_text(patternnet.compile(NET, dtype="bfloat16"))
    assert "Patternnet" not in text and "stablehlo.convolution" in text


@needs_library
def test_exported_programs_hold_xla_convolutions_only(tmp_path):
    model = patternnet.compile(NET)
    p, s = model.init(0)
    assert "Patternnet" not in model.stablehlo(p, s)            # symbolic batch
    assert "Patternnet" not in model.stablehlo(p, s, batch=2)
    model.export(tmp_path / "net", p, s)
    loaded = patternnet.load(tmp_path / "net")
    assert "Patternnet" not in loaded.stablehlo()
    x = np.random.default_rng(0).normal(size=(2, 12, 12, 3)).astype(F32)
    np.testing.assert_allclose(loaded(x), model.forward(p, s, x), rtol=1e-5, atol=1e-5)


def _python(code: str, **env) -> subprocess.CompletedProcess:
    full = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=240)


def test_opt_out_and_a_bad_value_warn_or_keep_xla():
    code = f"""
        import warnings, jax, jax.numpy as jnp, patternnet
        from patternnet.backend import onednn
        m = patternnet.compile({NET!r})
        p, s = m.init(0)
        text = jax.jit(lambda x: m.forward(p, s, x)).lower(jnp.zeros((2, 12, 12, 3))).as_text()
        print("onednn" if "Patternnet" in text else "xla", onednn.status()["choice"])
    """
    done = _python(code, PATTERNNET_CPU_CONV="xla")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["xla", "xla"]
    done = _python(code, PATTERNNET_CPU_CONV="off")
    assert done.returncode == 0, done.stderr
    assert "PATTERNNET_CPU_CONV='off' is not one of onednn, xla" in done.stderr
    assert done.stdout.split()[1] == "onednn"


@pytest.mark.parametrize("broken, why", [
    ("onednn.LIBRARY = onednn.LIBRARY.with_name('missing.so')", "was not built"),
    ("onednn.SOURCE = pathlib.Path('pyproject.toml')", "was built from another version"),
])
def test_a_missing_or_stale_library_falls_back_to_xla(broken, why):
    if not SUPPORTED:
        pytest.skip("no library to break here")
    done = _python(f"""
        import pathlib, jax, jax.numpy as jnp, numpy as np, patternnet
        from patternnet.backend import onednn
        {broken}
        m = patternnet.compile({NET!r})
        p, s = m.init(0)
        y = m.forward(p, s, jnp.ones((2, 12, 12, 3)))
        try:
            onednn.conv(jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 2, 2)), (1, 1), ((1, 1),) * 2)
        except RuntimeError as e:
            assert "check patternnet.backend.onednn.usable" in str(e), e
        else:
            raise SystemExit("onednn.conv ran without its library")
        print(np.isfinite(y).all(), onednn.status()["loaded"], onednn.status()["why"])
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("True False") and why in done.stdout, done.stdout


@needs_library
def test_sharded_training_keeps_xla_convolutions():
    # XLA's partitioner knows no rule for the custom call; patternnet.train traces its
    # sharded step under onednn.off() instead (patternnet/train.py)
    done = _python(f"""
        import jax, jax.numpy as jnp, numpy as np, optax
        import patternnet
        from patternnet.training.loop import _Programs
        m = patternnet.compile({NET!r})
        progs = _Programs(m, optax.sgd(0.1), lambda i: 0.1, devices=2)
        p, s = m.init(0)
        o = optax.sgd(0.1).init(p)
        x, y = progs.batch(jnp.zeros((4, 12, 12, 3)), jnp.zeros((4,), jnp.int32))
        text = progs.step.lower(*progs.put((p, s, o)), x, y, jax.random.key(0), 0).as_text()
        print("Patternnet" in text, "convolution" in text)
    """, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]
