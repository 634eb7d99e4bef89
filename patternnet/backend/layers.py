"""The backend's layer functions: one apply function per layer kind, one init function
per kind with parameters or state.

A layer function is ``fn(layer, params, state, x, ctx) -> (y, new_state)``:

* ``layer`` is the compiled ``Layer`` (path, kind, every resolved argument in
  ``layer.args``, input and output shapes, the stable seed of its path);
* ``params`` / ``state`` are the layer's own sub-dicts (``None`` when it has none);
* ``x`` is the batch, NHWC ``(N, H, W, C)`` or ``(N, D)``;
* ``ctx`` carries ``train`` (a Python bool) and ``rng`` (a key or ``None``);
* ``new_state`` is the layer's updated state sub-dict, or ``None`` when it has none.

What a layer's parameters and state are (shapes and fills) is part of its kind's
definition (``weights`` in patternnet/kinds/), read through ``inits(layer)``; the model
turns them into arrays (model.py, ``Model.init``).

Adding a layer kind: its definition in patternnet/kinds/, and one function here marked
``@implements("KIND")``.  The semantics are documented in docs/backend.md.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..kinds import Inits
from ..layers import LAYERS
from . import onednn
from .maxpool import max_pool, reduce_max
from .types import Array, Key, Pads, Pair, PyTree

if TYPE_CHECKING:  # the checker is not imported at run time: export.load runs without it
    from ..checker import CLayer


#: what an apply function returns: the output and the layer's new state (None: none)
Applied = tuple[Array, Optional[PyTree]]
#: kind -> apply function ``fn(layer, params, state, x, ctx) -> (y, new_state)``
LAYER_FNS: dict[str, Callable[..., Applied]] = {}


def implements(*kinds: str) -> Callable[[Callable[..., Applied]], Callable[..., Applied]]:
    """Register the decorated function as the apply function of ``kinds``."""
    def register(fn: Callable[..., Applied]) -> Callable[..., Applied]:
        for kind in kinds:
            if kind in LAYER_FNS:
                raise ValueError(f"two apply functions for {kind}")
            LAYER_FNS[kind] = fn
        return fn
    return register


def inits(layer: "Layer") -> tuple[Inits, Inits]:
    """The layer's parameter and state trees (nested dicts of ``Init``, or None), as
    its kind declares them: the same the checker counted."""
    return LAYERS[layer.kind].weights(layer.in_shape, layer.args)


class Layer:
    """One checked layer, ready to run: the ``CLayer`` (path, kind, shapes, counts are
    read from it), its arguments as a dict, its path's keys into the params and state
    trees, and the stable seed of its path (a scan body gives each copy its own)."""

    __slots__ = ("clayer", "keys", "args", "seed")

    def __init__(self, clayer: CLayer) -> None:
        self.clayer = clayer
        self.keys: tuple[str, ...] = tuple(clayer.path.split("."))
        self.args: dict = dict(clayer.args)
        self.seed: tuple[int, int] = path_seed(clayer.path)

    @property
    def path(self) -> str:
        return self.clayer.path

    @property
    def kind(self) -> str:
        return self.clayer.kind

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self.clayer.in_shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.clayer.out_shape

    @property
    def params(self) -> int:
        """trainable element count"""
        return self.clayer.params

    @property
    def state(self) -> int:
        """non-trainable element count"""
        return self.clayer.state

    def __repr__(self) -> str:
        return f"Layer({self.path!r}, {self.kind})"


class Ctx:
    """What one call of ``apply`` passes to every layer."""

    __slots__ = ("train", "rng")

    def __init__(self, train: bool, rng: Optional[Key]) -> None:
        self.train, self.rng = train, rng


def path_seed(path: str) -> tuple[int, int]:
    """Two 32-bit words from BLAKE2b of the path: stable across runs and machines."""
    d = hashlib.blake2b(path.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(d[:4], "little"), int.from_bytes(d[4:], "little")


def layer_key(key: Key, seed: tuple[int, int]) -> Key:
    """The key of one layer: ``fold_in(fold_in(key, seed[0]), seed[1])``."""
    return jax.random.fold_in(jax.random.fold_in(key, seed[0]), seed[1])


#: values per chunk of random initial values (see ``Model.init``)
CHUNK = 1024


# --- CONV ----------------------------------------------------------------------------


@implements("CONV")
def conv(layer: Layer, p: PyTree, s: PyTree, x: Array, ctx: Ctx) -> Applied:
    a = layer.args
    if (a["groups"] == 1 and _kernel_exceeds_output(layer) and _on_cpu()
            and not onednn.usable(x, p["w"])):
        y = conv_patches(x, p["w"], a["stride"], a["padding"], a["dilation"])
    else:
        y = convolution(x, p["w"], a["stride"], a["padding"], a["dilation"], a["groups"])
    if a["bias"]:
        y = y + p["b"]
    return y, None


@implements("CONVT")
def convt(layer: Layer, p: PyTree, s: PyTree, x: Array, ctx: Ctx) -> Applied:
    """The transposed convolution as the convolution it is the gradient of: the input
    dilated by the stride, padded by D·(K − 1) − P (+ output_padding below/right), and a
    stride-1 convolution with the kernel flipped and each group's in/out swapped."""
    a = layer.args
    kh, kw, cin, per_group = p["w"].shape
    g = a["groups"]
    w = p["w"].reshape(kh, kw, g, cin // g, per_group)
    w = jnp.transpose(w, (0, 1, 3, 2, 4)).reshape(kh, kw, cin // g, g * per_group)
    w = w[::-1, ::-1]
    pads = [(d * (k - 1) - pp, d * (k - 1) - pp + op) for k, d, (pp, _), op in
            zip((kh, kw), a["dilation"], a["padding"], a["output_padding"])]
    crop = [(min(lo, 0), min(hi, 0)) for lo, hi in pads]
    y = lax.conv_general_dilated(
        x, w, (1, 1), [(max(lo, 0), max(hi, 0)) for lo, hi in pads], lhs_dilation=a["stride"],
        rhs_dilation=a["dilation"], dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=g)
    if any(c != (0, 0) for c in crop):  # padding larger than the kernel: crop instead
        y = lax.pad(y, np.array(0, y.dtype), [(0, 0, 0), (*crop[0], 0), (*crop[1], 0),
                                              (0, 0, 0)])
    if a["bias"]:
        y = y + p["b"]
    return y, None


def convolution(x: Array, w: Array, stride: Pair, padding: Pads, dilation: Pair = (1, 1),
                groups: int = 1) -> Array:
    """NHWC x HWIO convolution: oneDNN's on the CPU where it applies (``onednn.usable``:
    float32, the library built; docs/backend.md §5b), XLA's otherwise."""
    if onednn.usable(x, w):
        return onednn.conv(x, w, stride, padding, dilation, groups)
    return onednn.xla_conv(x, w, stride=stride, padding=padding, dilation=dilation,
                           groups=groups)


def _kernel_exceeds_output(layer: Layer) -> bool:
    """Whether the (dilated) kernel is taller or wider than the output, as in ResNet's
    last stage on small inputs (2x2 or 1x1 maps under a 3x3 kernel).  XLA:CPU's
    convolution is pathologically slow there, forward and input gradient alike (2x2,
    512 -> 512, batch 32: 410 ms against 7 ms as one matrix product), so such a layer
    runs as ``conv_patches`` (docs/performance.md, "Convolutions whose kernel exceeds
    the output") when oneDNN's convolution does not apply.  Where it does, oneDNN runs:
    faster than the patches on the 2x2 maps measured, about equal on a 2x2 map with 64
    channels, slower on a 1x1 map (docs/performance.md, "Per layer")."""
    (kh, kw), (dh, dw) = layer.args["kernel"], layer.args["dilation"]
    oh, ow = layer.out_shape[0], layer.out_shape[1]
    return oh < dh * (kh - 1) + 1 or ow < dw * (kw - 1) + 1


def _on_cpu() -> bool:
    """Whether the lowerings chosen for XLA:CPU apply: its slowness was measured there
    only; elsewhere, e.g. cuDNN on a GPU, lax's own ops stay as they are."""
    return jax.default_backend() == "cpu"


def conv_patches(x: Array, w: Array, stride: Pair, padding: Pads, dilation: Pair) -> Array:
    """``lax.conv_general_dilated`` (NHWC, HWIO, one group) as one matrix product: the
    kh*kw strided slices of the padded input side by side on the channel axis, tap-major
    like HWIO's rows, times the kernel reshaped to (kh*kw*cin, cout)."""
    kh, kw, cin, cout = w.shape
    (sh, sw), (dh, dw) = stride, dilation
    xp = jnp.pad(x, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
    n, h, wd, _ = xp.shape
    oh, ow = (h - dh * (kh - 1) - 1) // sh + 1, (wd - dw * (kw - 1) - 1) // sw + 1
    taps = [lax.slice(xp, (0, i * dh, j * dw, 0),
                      (n, i * dh + (oh - 1) * sh + 1, j * dw + (ow - 1) * sw + 1, cin),
                      (1, sh, sw, 1))
            for i in range(kh) for j in range(kw)]
    patches = jnp.concatenate(taps, axis=-1).reshape(n * oh * ow, kh * kw * cin)
    return (patches @ w.reshape(kh * kw * cin, cout)).reshape(n, oh, ow, cout)




# --- pooling -------------------------------------------------------------------------


def _pool_padding(layer: Layer):
    """Per-side padding of H and W for ``reduce_window``: the checker's padding plus,
    in ceil mode, the extra high-side rows that make room for the last partial window."""
    pads = []
    for axis in (0, 1):
        size, out = layer.in_shape[axis], layer.out_shape[axis]
        k, st = layer.args["window"][axis], layer.args["stride"][axis]
        lo, hi = layer.args["padding"][axis]
        extra = max(0, (out - 1) * st + k - (size + lo + hi))
        pads.append((lo, hi + extra))
    return pads


def _window(layer: Layer):
    (kh, kw), (sh, sw) = layer.args["window"], layer.args["stride"]
    (t, b), (l, r) = _pool_padding(layer)
    return (1, kh, kw, 1), (1, sh, sw, 1), ((0, 0), (t, b), (l, r), (0, 0))


@implements("POOL")
def maxpool(layer: Layer, p: PyTree, s: PyTree, x: Array, ctx: Ctx) -> Applied:
    """On the CPU, ``maxpool.max_pool``: the same values, a derivative without XLA:CPU's
    slow select-and-scatter (measured there only, like ``conv_patches``)."""
    dims, strides, pads = _window(layer)
    pool = max_pool if _on_cpu() else reduce_max
    return pool(x, dims[1:3], strides[1:3], (tuple(pads[1]), tuple(pads[2]))), None


def _avg_divisor(layer: Layer) -> np.ndarray:
    """PyTorch's count_include_pad divisor per output position, (H', W', 1): a window
    counts its padded positions, but not the part past the high padding that a last
    partial window kept by ``ceil`` reaches (hend = min(hstart + k, H + pad))."""
    per_axis = []
    for axis in (0, 1):
        size, out = layer.in_shape[axis], layer.out_shape[axis]
        k, st = layer.args["window"][axis], layer.args["stride"][axis]
        lo, hi = layer.args["padding"][axis]
        starts = np.arange(out) * st - lo
        per_axis.append(np.minimum(starts + k, size + hi) - starts)
    return (per_axis[0][:, None] * per_axis[1][None, :])[:, :, None]


@implements("AVGPOOL")
def avgpool(layer: Layer, p: PyTree, s: PyTree, x: Array, ctx: Ctx) -> Applied:
    dims, strides, pads = _window(layer)
    total = lax.reduce_window(x, np.array(0, x.dtype), lax.add, dims, strides, pads)
    div = _avg_divisor(layer)
    if (div == div.flat[0]).all():
        return total / float(div.flat[0]), None
    return total / jnp.asarray(div, x.dtype), None


# --- shape changes -------------------------------------------------------------------


@implements("GAP")
def gap(layer: Layer, p: PyTree, s: PyTree, x: Array, ctx: Ctx) -> Applied:
    return jnp.mean(x, axis=(1, 2)), None


@implements("FLATTEN")
def flatten(layer: Layer, p: PyTree, s: PyTree, x: Array, ctx: Ctx) -> Applied:
    return x.reshape(x.shape[0], -1), None


@implements("FC")
def fc(layer: Layer, p: PyTree, s: PyTree, x: Array, ctx: Ctx) -> Applied:
    if x.ndim > 2:  # implicit flatten, row-major (H, W, C)
        x = x.reshape(x.shape[0], -1)
    y = x @ p["w"]
    if layer.args["bias"]:
        y = y + p["b"]
    return y, None




# --- activations ---------------------------------------------------------------------


def _elementwise(f: Callable) -> Callable:
    def fn(layer: Layer, p: PyTree, s: PyTree, x: Array, ctx: Ctx) -> Applied:
        return f(x, layer.args), None
    fn.__name__ = f.__name__
    return fn


@implements("RELU")
@_elementwise
def relu(x: Array, a: dict[str, Any]) -> Array:
    return jax.nn.relu(x)


@implements("TANH")
@_elementwise
def tanh(x: Array, a: dict[str, Any]) -> Array:
    return jnp.tanh(x)


@implements("SIGMOID")
@_elementwise
def sigmoid(x: Array, a: dict[str, Any]) -> Array:
    return jax.nn.sigmoid(x)


@implements("GELU")
@_elementwise
def gelu(x: Array, a: dict[str, Any]) -> Array:
    return jax.nn.gelu(x, approximate=a["tanh"])


@implements("SOFTMAX")
@_elementwise
def softmax(x: Array, a: dict[str, Any]) -> Array:
    return jax.nn.softmax(x, axis=-1)


@implements("LRELU")
@_elementwise
def lrelu(x: Array, a: dict[str, Any]) -> Array:
    return jnp.where(x > 0, x, a["slope"] * x)


@implements("ELU")
@_elementwise
def elu(x: Array, a: dict[str, Any]) -> Array:
    return jax.nn.elu(x, a["alpha"])


@implements("RELU6")
@_elementwise
def relu6(x: Array, a: dict[str, Any]) -> Array:
    return jax.nn.relu6(x)


@implements("HARDSIGMOID")
@_elementwise
def hardsigmoid(x: Array, a: dict[str, Any]) -> Array:
    return jax.nn.relu6(x + 3.0) / 6.0


@implements("HARDSWISH")
@_elementwise
def hardswish(x: Array, a: dict[str, Any]) -> Array:
    return x * (jax.nn.relu6(x + 3.0) / 6.0)


@implements("SILU")
@_elementwise
def silu(x: Array, a: dict[str, Any]) -> Array:
    return jax.nn.silu(x)


@implements("INPUT", "ID")
@_elementwise
def identity(x: Array, a: dict[str, Any]) -> Array:
    return x


# --- normalisation and regularisation -------------------------------------------------


def batch_norm(x: Array, p: PyTree, s: PyTree, train: bool, eps: float, momentum: float,
               where: str = "BN") -> tuple[Array, PyTree]:
    """BN over every axis but the last; returns (y, new_state).

    A bfloat16 (or float16) ``x`` is normalised in float32 (batch mean/var, the running
    statistics, scale and bias cast up) and the result cast back to ``x``'s dtype."""
    if x.dtype in (jnp.bfloat16, jnp.float16):
        f32 = jnp.float32
        y, new = batch_norm(x.astype(f32), {k: v.astype(f32) for k, v in p.items()},
                            {k: v.astype(f32) for k, v in s.items()}, train, eps, momentum,
                            where)
        if train:
            new = {k: v.astype(s[k].dtype) for k, v in new.items()}
        else:
            new = s
        return y.astype(x.dtype), new
    axes = tuple(range(x.ndim - 1))
    if train:
        n = x.size // x.shape[-1]
        if n < 2:
            raise ValueError(f"{where}: BN in training needs more than one value per channel "
                             f"(got input {tuple(x.shape)}); PyTorch raises here too: use a "
                             "batch of 2 or more, or train=False")
        mean = jnp.mean(x, axis=axes)
        var = jnp.mean(jnp.square(x - mean), axis=axes)          # biased: normalises
        unbiased = var * (n / (n - 1))                            # for the running var
        m = momentum
        new = {"mean": (1 - m) * s["mean"] + m * lax.stop_gradient(mean).astype(s["mean"].dtype),
               "var": (1 - m) * s["var"] + m * lax.stop_gradient(unbiased).astype(s["var"].dtype)}
    else:
        mean, var, new = s["mean"], s["var"], s
    inv = lax.rsqrt(var + eps) * p["scale"]
    return x * inv + (p["bias"] - mean * inv), new


@implements("BN")
def bn(layer: Layer, p: PyTree, s: PyTree, x: Array, ctx: Ctx) -> Applied:
    a = layer.args
    return batch_norm(x, p, s, ctx.train, a["eps"], a["momentum"], layer.path)






def _in_float32(fn: Callable[..., Array]) -> Callable[..., Array]:
    """Run a normalisation in float32 on a bfloat16 (or float16) ``x`` (its statistics,
    scale and bias cast up), and cast the result back, as BN does."""
    def wrapped(x: Array, p: PyTree, *rest: Any) -> Array:
        if x.dtype in (jnp.bfloat16, jnp.float16):
            up = {k: v.astype(jnp.float32) for k, v in p.items()}
            return fn(x.astype(jnp.float32), up, *rest).astype(x.dtype)
        return fn(x, p, *rest)
    return wrapped


@_in_float32
def layer_norm(x: Array, p: PyTree, eps: float) -> Array:
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)   # biased, as PyTorch
    return (x - mean) * lax.rsqrt(var + eps) * p["scale"] + p["bias"]


@_in_float32
def group_norm(x: Array, p: PyTree, groups: int, eps: float) -> Array:
    """Per sample, over each group of C/groups consecutive channels and every position."""
    g = x.reshape(*x.shape[:-1], groups, x.shape[-1] // groups)
    axes = tuple(range(1, x.ndim - 1)) + (x.ndim,)
    mean = jnp.mean(g, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(g - mean), axis=axes, keepdims=True)
    y = ((g - mean) * lax.rsqrt(var + eps)).reshape(x.shape)
    return y * p["scale"] + p["bias"]


@implements("LAYERNORM")
def layernorm(layer: Layer, p: PyTree, s: PyTree, x: Array, ctx: Ctx) -> Applied:
    return layer_norm(x, p, layer.args["eps"]), None


@implements("GROUPNORM")
def groupnorm(layer: Layer, p: PyTree, s: PyTree, x: Array, ctx: Ctx) -> Applied:
    return group_norm(x, p, layer.args["groups"], layer.args["eps"]), None


@implements("SCALE")
def scale(layer: Layer, p: PyTree, s: PyTree, x: Array, ctx: Ctx) -> Applied:
    return x * p["scale"], None


@implements("LRN")
def lrn(layer: Layer, p: PyTree, s: PyTree, x: Array, ctx: Ctx) -> Applied:
    """PyTorch's LocalResponseNorm: b_c = a_c / (k + alpha/size * sum a_c'^2)^beta over
    the channels c - size//2 .. c + (size-1)//2, zeros beyond the edges."""
    a = layer.args
    size = a["size"]
    sq = lax.reduce_window(jnp.square(x), np.array(0, x.dtype), lax.add, (1, 1, 1, size),
                           (1, 1, 1, 1), ((0, 0), (0, 0), (0, 0), (size // 2, (size - 1) // 2)))
    return x / (a["k"] + (a["alpha"] / size) * sq) ** a["beta"], None


@implements("DROPOUT")
def dropout(layer: Layer, p: PyTree, s: PyTree, x: Array, ctx: Ctx) -> Applied:
    rate = layer.args["rate"]
    if not ctx.train or rate == 0:
        return x, None
    if ctx.rng is None:
        raise ValueError(f"{layer.path}: DROPOUT in training needs a random key: pass "
                         "rng=jax.random.key(...) (or train=False for inference)")
    keep = jax.random.bernoulli(layer_key(ctx.rng, layer.seed), 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros((), x.dtype)), None


@implements("DROPPATH")
def droppath(layer: Layer, p: PyTree, s: PyTree, x: Array, ctx: Ctx) -> Applied:
    """torchvision's StochasticDepth(mode="row"): one keep draw per sample."""
    rate = layer.args["rate"]
    if not ctx.train or rate == 0:
        return x, None
    if ctx.rng is None:
        raise ValueError(f"{layer.path}: DROPPATH in training needs a random key: pass "
                         "rng=jax.random.key(...) (or train=False for inference)")
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    keep = jax.random.bernoulli(layer_key(ctx.rng, layer.seed), 1.0 - rate, shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros((), x.dtype)), None


# --- channels ------------------------------------------------------------------------


@implements("SPLIT")
def split(layer: Layer, p: PyTree, s: PyTree, x: Array, ctx: Ctx) -> Applied:
    width = layer.out_shape[-1]
    start = layer.args["index"] * width
    return lax.slice_in_dim(x, start, start + width, axis=x.ndim - 1), None


@implements("SHUFFLE")
def shuffle(layer: Layer, p: PyTree, s: PyTree, x: Array, ctx: Ctx) -> Applied:
    """Channel c of group g moves to c·groups + g (torchvision's channel_shuffle)."""
    g = layer.args["groups"]
    y = x.reshape(*x.shape[:-1], g, x.shape[-1] // g)
    return jnp.swapaxes(y, -1, -2).reshape(x.shape), None


# --- upsampling ----------------------------------------------------------------------


def resize_matrix(n_in: int, n_out: int, bilinear: bool, corners: bool) -> np.ndarray:
    """The (n_out, n_in) matrix that resizes one axis as PyTorch's interpolate does:
    nearest takes input floor(i·n_in/n_out); bilinear weighs the two inputs around
    (i + 0.5)·n_in/n_out − 0.5 (clamped at 0), or i·(n_in − 1)/(n_out − 1) with
    align_corners."""
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        if not bilinear:
            m[i, min(i * n_in // n_out, n_in - 1)] = 1.0
            continue
        if corners:
            src = i * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        else:
            src = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
        lo = min(int(np.floor(src)), n_in - 1)
        hi = min(lo + 1, n_in - 1)
        t = src - lo
        m[i, lo] += 1.0 - t
        m[i, hi] += t
    return m


@implements("UPSAMPLE")
def upsample(layer: Layer, p: PyTree, s: PyTree, x: Array, ctx: Ctx) -> Applied:
    """Separable: one small matrix per axis (static, from the shapes)."""
    a = layer.args
    (h, w), (oh, ow) = layer.in_shape[:2], a["out"]
    if not a["bilinear"] and oh % h == 0 and ow % w == 0:  # whole factors: repeat
        return jnp.repeat(jnp.repeat(x, oh // h, axis=1), ow // w, axis=2), None
    mh = jnp.asarray(resize_matrix(h, oh, a["bilinear"], a["corners"]), x.dtype)
    mw = jnp.asarray(resize_matrix(w, ow, a["bilinear"], a["corners"]), x.dtype)
    return jnp.einsum("oh,nhwc,pw->nopc", mh, x, mw), None


# --- residuals -----------------------------------------------------------------------


@implements("SKIP")
def skip(layer: Layer, p: PyTree, s: PyTree, x: Array, ctx: Ctx) -> Applied:
    """Identity, or torchvision's downsample: 1x1 CONV(stride, bias=false) -> BN."""
    a = layer.args
    if not a["project"]:
        return x, None
    y = convolution(x, p["conv"]["w"], a["stride"], ((0, 0), (0, 0)))
    y, bn_state = batch_norm(y, p["bn"], s["bn"], ctx.train, a["eps"], a["momentum"],
                             layer.path)
    return y, {"bn": bn_state}
