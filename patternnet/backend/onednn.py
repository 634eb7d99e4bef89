"""oneDNN's convolution on XLA:CPU: three JAX primitives over the FFI handlers in
native/onednn_conv.cc, with XLA's convolution wherever they do not apply.

Why: XLA:CPU's convolutions are Eigen's, and its weight gradients on large maps and its
grouped (depthwise) convolutions run at a fraction of the machine's dot ceiling; oneDNN's
took the card net's train step from 1.18x PyTorch's to 0.94x, CIFAR ResNet-18's from 1.22x
to 0.81x and MobileNetV2's from 5.0x to 0.87x (docs/performance.md, "oneDNN
convolutions on the CPU").

The three primitives are bilinear, like ``lax.conv_general_dilated`` and its two
transposes, and each one's transposes are the other two:

* ``conv(x, k)``      -> y,  NHWC input, HWIO kernel (the forward pass);
* ``conv_dx(gy, k)``  -> gx, the input gradient (oneDNN's backward data);
* ``conv_dk(x, gy)``  -> gk, the kernel gradient (oneDNN's backward weights).

So reverse mode, forward mode (``jax.jvp``, ``jax.jacfwd``), Hessians and any order of
derivative run on oneDNN; ``vmap`` folds a mapped activation into the batch and maps
anything else with XLA's convolution.  On a platform other than the CPU the primitives
lower to XLA's convolution.

When it applies (``usable``): JAX's default backend is the CPU, both operands are
float32 with no zero-sized axis, the library loaded (``status()`` says why not), it is
not turned off with ``PATTERNNET_CPU_CONV=xla``, and the trace is not inside ``off()``.
Two traces use ``off()``: ``patternnet.export``'s programs, which keep XLA's convolution
so that an exported network loads anywhere, with or without this library; and training
sharded over several devices, since XLA's partitioner knows no rule for a custom call
and would gather the whole batch onto every device for it.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import importlib.metadata
import os
import threading
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import jax
import numpy as np
from jax import lax
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from .types import Array, Pads, Pair

_DN = ("NHWC", "HWIO", "NHWC")
_NATIVE = Path(__file__).resolve().parent / "native"
LIBRARY = _NATIVE / "_onednn_conv.so"
SOURCE = _NATIVE / "onednn_conv.cc"
ENV = "PATTERNNET_CPU_CONV"          # "onednn" (default) or "xla"
_CHOICES = ("onednn", "xla")

_state = threading.local()          # "off": per thread, as tracing is
_warned = {"env": False}
_load_lock = threading.Lock()
_loaded: dict = {}


# --- loading -------------------------------------------------------------------------


def _preload_onednn() -> None:
    """Loads oneDNN's own library (the onednn-cpu-gomp wheel) globally, so that ours,
    linked against ``libdnnl.so.3`` without a path, finds it."""
    try:
        dist = importlib.metadata.distribution("onednn-cpu-gomp")
    except importlib.metadata.PackageNotFoundError:
        raise OSError("the onednn-cpu-gomp package is not installed") from None
    lib = next((dist.locate_file(f) for f in dist.files or ()
                if str(f).endswith("libdnnl.so.3")), None)
    if lib is None:
        raise OSError("the onednn-cpu-gomp package has no libdnnl.so.3")
    ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)


def _load() -> dict:
    """Loads and registers the library once: ``{"ok": bool, "why": str, ...}``."""
    if _loaded:
        return _loaded
    with _load_lock:             # two threads tracing at once must not register twice
        if not _loaded:
            _loaded.update(_load_once())
    return _loaded


def _load_once() -> dict:
    info = {"ok": False, "library": str(LIBRARY)}
    try:
        if not LIBRARY.is_file():
            raise OSError(f"{LIBRARY.name} was not built (hatch_build.py builds it when the "
                          "package is installed; reinstall it)")
        _preload_onednn()
        lib = ctypes.CDLL(str(LIBRARY))
        lib.PatternnetConvSourceSha.restype = ctypes.c_char_p
        lib.PatternnetConvOnednnVersion.restype = ctypes.c_char_p
        built = lib.PatternnetConvSourceSha().decode()
        if SOURCE.is_file() and built != hashlib.sha256(SOURCE.read_bytes()).hexdigest():
            raise OSError(f"{LIBRARY.name} was built from another version of "
                          f"{SOURCE.name}; reinstall the package (make rebuilds it)")
        for name in _TARGETS:
            jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, name)),
                                        platform="cpu")
        info.update(ok=True, why="", onednn=lib.PatternnetConvOnednnVersion().decode())
        info["handle"] = lib          # keeps the library loaded
    except (OSError, AttributeError) as e:
        info["why"] = str(e)
    return info


def status() -> dict:
    """``{"loaded": bool, "why": reason or "", "onednn": version, "library": path,
    "choice": PATTERNNET_CPU_CONV's value}``."""
    info = _load()
    return {"loaded": info["ok"], "why": info["why"], "onednn": info.get("onednn", ""),
            "library": info["library"], "choice": _choice()}


def _choice() -> str:
    value = os.environ.get(ENV, "").strip().lower() or "onednn"
    if value not in _CHOICES:
        if not _warned["env"]:
            _warned["env"] = True
            warnings.warn(f"{ENV}={value!r} is not one of {', '.join(_CHOICES)}; using "
                          "'onednn'", stacklevel=3)
        return "onednn"
    return value


def xla_only(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with ``off()`` entered while it runs, so that tracing it (under jit, at its
    first call) records XLA's convolutions only."""
    @functools.wraps(fn)
    def traced(*args, **kwargs):
        with off():
            return fn(*args, **kwargs)
    return traced


@contextlib.contextmanager
def off() -> Iterator[None]:
    """Within it, ``usable`` is False: what is traced holds XLA's convolutions only.
    Enter it inside the traced function (jit traces on first call, not where it is
    built): ``xla_only`` does."""
    before = getattr(_state, "off", False)
    _state.off = True
    try:
        yield
    finally:
        _state.off = before


def usable(x: Array, k: Array) -> bool:
    """Whether ``conv(x, k)`` may run on oneDNN here (see the module's docstring)."""
    return (not getattr(_state, "off", False)
            and x.dtype == np.float32 and k.dtype == np.float32
            and x.size > 0 and k.size > 0
            and jax.default_backend() == "cpu"
            and _choice() == "onednn" and _load()["ok"])


# --- the primitives ------------------------------------------------------------------


def conv(x: Array, k: Array, stride: Pair, padding: Pads, dilation: Pair = (1, 1),
         groups: int = 1) -> Array:
    """``lax.conv_general_dilated(x, k, stride, padding, rhs_dilation=dilation,
    dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=groups)`` on oneDNN;
    call it where ``usable(x, k)``."""
    info = _load()
    if not info["ok"]:
        raise RuntimeError(f"oneDNN's convolution is not loaded ({info['why']}); check "
                           "patternnet.backend.onednn.usable(x, k) before calling conv")
    return conv_p.bind(x, k, **_geometry(stride, padding, dilation, groups))


def _geometry(stride, padding, dilation, groups) -> dict:
    return dict(stride=tuple(int(s) for s in stride),
                padding=tuple((int(lo), int(hi)) for lo, hi in padding),
                dilation=tuple(int(d) for d in dilation), groups=int(groups))


conv_p = Primitive("patternnet_onednn_conv")
conv_dx_p = Primitive("patternnet_onednn_conv_dx")
conv_dk_p = Primitive("patternnet_onednn_conv_dk")


def _out_hw(hw, kernel, stride, padding, dilation):
    return tuple((n + lo + hi - (d * (kk - 1) + 1)) // s + 1
                 for n, kk, s, (lo, hi), d in zip(hw, kernel, stride, padding, dilation))


def _conv_shape(x, k, *, stride, padding, dilation, groups):
    oh, ow = _out_hw(x.shape[1:3], k.shape[:2], stride, padding, dilation)
    return jax.core.ShapedArray((x.shape[0], oh, ow, k.shape[3]), x.dtype)


def _dx_shape(gy, k, *, in_hw, stride, padding, dilation, groups):
    return jax.core.ShapedArray((gy.shape[0], *in_hw, k.shape[2] * groups), gy.dtype)


def _dk_shape(x, gy, *, kernel, stride, padding, dilation, groups):
    return jax.core.ShapedArray((*kernel, x.shape[3] // groups, gy.shape[3]), x.dtype)


conv_p.def_abstract_eval(_conv_shape)
conv_dx_p.def_abstract_eval(_dx_shape)
conv_dk_p.def_abstract_eval(_dk_shape)


# What each primitive computes, in XLA's own convolutions: their lowering off the CPU,
# their vmap of mapped kernels, and the reference the tests compare against.

def xla_conv(x: Array, k: Array, *, stride: Pair, padding: Pads, dilation: Pair,
             groups: int) -> Array:
    return lax.conv_general_dilated(x, k, stride, padding, rhs_dilation=dilation,
                                    dimension_numbers=_DN, feature_group_count=groups)


def xla_conv_dx(gy: Array, k: Array, *, in_hw: Pair, stride: Pair, padding: Pads,
                dilation: Pair, groups: int) -> Array:
    x = jax.ShapeDtypeStruct((gy.shape[0], *in_hw, k.shape[2] * groups), gy.dtype)
    f = functools.partial(xla_conv, k=k, stride=stride, padding=padding, dilation=dilation,
                          groups=groups)
    return jax.linear_transpose(f, x)(gy)[0]


def xla_conv_dk(x: Array, gy: Array, *, kernel: Pair, stride: Pair, padding: Pads,
                dilation: Pair, groups: int) -> Array:
    k = jax.ShapeDtypeStruct((*kernel, x.shape[3] // groups, gy.shape[3]), x.dtype)
    f = functools.partial(xla_conv, x, stride=stride, padding=padding, dilation=dilation,
                          groups=groups)
    return jax.linear_transpose(lambda kk: f(k=kk), k)(gy)[0]


_XLA: dict[Any, Callable[..., Any]] = {conv_p: xla_conv, conv_dx_p: xla_conv_dx,
                                       conv_dk_p: xla_conv_dk}
# The FFI handlers of native/onednn_conv.cc, in _XLA's order.
_TARGETS = ("PatternnetConvForward", "PatternnetConvBackwardData",
            "PatternnetConvBackwardWeights")


# Transposes.  With A_k x = conv(x, k): conv_dx(gy, k) = A_k^T gy and conv_dk(x, gy) is
# the k with <conv_dk(x, gy), k> = <gy, conv(x, k)>; each rule follows from those.

def _geo(params):
    return {n: params[n] for n in ("stride", "padding", "dilation", "groups")}


def _conv_t_x(ct, x, k, **params):
    return conv_dx_p.bind(ct, k, in_hw=tuple(x.aval.shape[1:3]), **_geo(params))


def _conv_t_k(ct, x, k, **params):
    return conv_dk_p.bind(x, ct, kernel=tuple(k.aval.shape[:2]), **_geo(params))


def _dx_t_gy(ct, gy, k, **params):
    return conv_p.bind(ct, k, **_geo(params))


def _dx_t_k(ct, gy, k, **params):
    return conv_dk_p.bind(ct, gy, kernel=tuple(k.aval.shape[:2]), **_geo(params))


def _dk_t_x(ct, x, gy, **params):
    return conv_dx_p.bind(gy, ct, in_hw=tuple(x.aval.shape[1:3]), **_geo(params))


def _dk_t_gy(ct, x, gy, **params):
    return conv_p.bind(x, ct, **_geo(params))


ad.defbilinear(conv_p, _conv_t_x, _conv_t_k)
ad.defbilinear(conv_dx_p, _dx_t_gy, _dx_t_k)
ad.defbilinear(conv_dk_p, _dk_t_x, _dk_t_gy)


# vmap.  An activation mapped on its own (conv, conv_dx: the kernel unmapped) folds into
# the batch axis: a convolution treats its batch entries independently.  conv_dk sums
# over the batch, and a mapped kernel has no batch to fold into, so those map XLA's.

def _batch(prim, args, dims, **params):
    a, b = args
    da, db = dims                      # None: not mapped
    if prim is not conv_dk_p and db is None:
        a = jax.numpy.moveaxis(a, da, 0)
        m, n = a.shape[:2]
        out = prim.bind(a.reshape(m * n, *a.shape[2:]), b, **params)
        return out.reshape(m, n, *out.shape[1:]), 0
    return jax.vmap(functools.partial(_XLA[prim], **params), in_axes=(da, db))(a, b), 0


for _prim in _XLA:
    batching.primitive_batchers[_prim] = functools.partial(_batch, _prim)


# Lowering: the FFI call on the CPU, XLA's convolution elsewhere.

def _attributes(params) -> dict:
    (sh, sw), ((ph0, ph1), (pw0, pw1)), (dh, dw) = (params["stride"], params["padding"],
                                                    params["dilation"])
    return {name: np.int64(v) for name, v in
            dict(sh=sh, sw=sw, ph0=ph0, ph1=ph1, pw0=pw0, pw1=pw1, dh=dh, dw=dw,
                 groups=params["groups"]).items()}


def _cpu_lowering(target):
    ffi = jax.ffi.ffi_lowering(target)

    def lower(ctx, a, b, **params):
        return ffi(ctx, a, b, **_attributes(params))
    return lower


for _prim, _name in zip(_XLA, _TARGETS):
    mlir.register_lowering(_prim, _cpu_lowering(_name), platform="cpu")
    mlir.register_lowering(_prim, mlir.lower_fun(_XLA[_prim], multiple_results=False))


# Outside jit (eager calls), each primitive runs as its own small jitted program.

@functools.lru_cache(maxsize=None)
def _jitted(prim, items):
    return jax.jit(functools.partial(prim.bind, **dict(items)))


for _prim in _XLA:
    _prim.def_impl(lambda *args, _prim=_prim, **params:
                   _jitted(_prim, tuple(sorted(params.items())))(*args))
