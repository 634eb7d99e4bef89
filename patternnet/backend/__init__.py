"""The JAX backend: a checked network as pure, jit-able JAX functions.

    >>> import jax, optax, patternnet
    >>> model = patternnet.compile("INPUT(32x32x3) -> [CONV(16) -> BN -> RELU]*2 -> GAP -> FC(10)")
    >>> params, state = model.init(jax.random.key(0))
    >>> y, state = model.apply(params, state, x, train=False)        # pure
    >>> y = model.forward(params, state, x)                           # jitted inference
    >>> (loss, state), grads = model.value_and_grad(params, state, x, labels)
    >>> opt = optax.adam(1e-3); opt_state = opt.init(params)
    >>> step = model.train_step(opt)
    >>> params, state, opt_state, loss = step(params, state, opt_state, x, labels, rng)

Importing this package imports jax; ``import patternnet`` does not (``patternnet.compile``
imports it on first call).  docs/backend.md is the full reference.

Pytrees.  ``params`` and ``state`` are nested dicts keyed by the segments of the checker's
layer paths: layer ``stage2.bottleneck1.conv2`` lives at
``params["stage2"]["bottleneck1"]["conv2"]``.  Layers without parameters (state) have no
entry.  Per kind (JAX conventions, NHWC activations, HWIO kernels):

* CONV  params ``{"w": (kh, kw, cin // groups, filters), "b": (filters,)}`` (``b`` only with
  ``bias=true``);
* FC    params ``{"w": (din, units), "b": (units,)}``; on an image, ``din = H*W*C`` and the
  input is flattened row-major (H, W, C) first;
* BN    params ``{"scale": (C,), "bias": (C,)}``, state ``{"mean": (C,), "var": (C,)}``;
* SKIP  projecting: params ``{"conv": {"w": (1, 1, cin, cout)}, "bn": {"scale", "bias"}}``,
  state ``{"bn": {"mean", "var"}}``; the identity SKIP has nothing.

The element counts equal the checker's: ``checked.params`` and ``checked.totals.state``.

Semantics, per layer (x is NHWC ``(N, H, W, C)`` or ``(N, D)``):

* CONV: ``lax.conv_general_dilated`` with the checker's per-side padding
  (``args["padding"]``, XLA SAME resolved), ``rhs_dilation=dilation``,
  ``feature_group_count=groups``, plus the bias; on the CPU in float32 the same
  convolution on oneDNN (``onednn.py``, docs/backend.md §5b); where that does not run,
  with one group and a kernel larger than the output, one matrix product over its
  patches (``conv_patches``).
* POOL: max by ``lax.reduce_window`` with -inf padding (padded positions never win).
* AVGPOOL: sum by ``lax.reduce_window`` over zero padding, divided as PyTorch's
  ``count_include_pad=True``: by the window size, padded positions included; a last
  partial window kept by ``ceil=true`` divides by the part inside the padded input,
  ``min(start + k, H + pad_hi) - start`` per axis.  In ceil mode the backend adds the
  extra high-side padding that makes room for the last window; it never counts.
* GAP: mean over H and W.  FLATTEN: row-major reshape to (N, H*W*C).
* RELU, TANH, SIGMOID, GELU (exact erf form), SOFTMAX (last axis), LRELU(slope),
  ELU(alpha); ID: identity.
* BN: over every axis but the channels.  ``train=True``: normalise with the batch mean
  and *biased* variance, and update ``running = (1 - momentum) * running + momentum *
  batch`` with the *unbiased* batch variance for the running variance (PyTorch).
  ``train=False``: normalise with the running statistics; the state is unchanged.
  ``y = (x - mean) / sqrt(var + eps) * scale + bias``.
* LRN: PyTorch's LocalResponseNorm, ``b_c = a_c / (k + alpha/size * sum a_c'^2)^beta``
  over the ``size`` channels from ``c - size//2`` to ``c + (size-1)//2``, zero-padded.
* DROPOUT: inverted dropout, only with ``train=True``: keep each value with probability
  ``1 - rate`` and scale it by ``1 / (1 - rate)``; needs ``rng`` (a ValueError without
  it).  Each DROPOUT draws from ``fold_in`` of ``rng`` with its path's seed.
* ``|``: concatenation on the last axis.  ``+``: the sum of the branches.
* SKIP: identity, or torchvision's downsample: 1x1 convolution with the checker's
  stride, no bias and no padding, then BN (SKIP's eps and momentum: 1e-5 and 0.1).

Initialisation (PyTorch's defaults): CONV and FC weights and biases ~ U(-1/sqrt(fan_in),
1/sqrt(fan_in)) with fan_in = kh*kw*cin/groups (FC: din; the SKIP projection: cin); BN
scale 1, bias 0, running mean 0, running variance 1.  Keys: each random tensor is named
by its path and leaf ("conv1/w", "stage2.skip1/conv/w"); with (a, b) the two
little-endian 32-bit words of BLAKE2b-64 of the name, its chunk j of 1,024 values is
``uniform(fold_in(fold_in(fold_in(key, a), b), j), (1024,))`` and the tensor is the first
prod(shape) values of its chunks (row-major), mapped to (2u - 1)/sqrt(fan_in).  So a
tensor depends only on the key and its name (adding a layer elsewhere leaves it alone),
and one jitted program draws a whole network's values (fast to compile; traceable).

Repeats: each copy has its own entry (``layout="per_copy"``), or a uniform tail is
stored stacked under its first copy (``layout="stacked"``; ``model.stack`` /
``model.unstack`` convert); uniform copies may run as one ``lax.scan`` (``scan=``;
docs/backend.md "Repeats").  dtype: "float32" (default) or
"float64" (with ``jax_enable_x64``) or "bfloat16" (mixed precision: params and compute
in bfloat16, BN statistics and the built-in losses in float32; docs/backend.md).

Adding a layer kind: its definition in ``patternnet/kinds/`` (names, arguments, shape
rule, parameter and state shapes, summary and diagram), and an apply function marked
``@implements("KIND")`` in ``patternnet/backend/layers.py``.
"""

from .. import xla_cpu as _xla_cpu

_xla_cpu.configure()  # before JAX's CPU backend starts (patternnet/xla_cpu.py)

from .layers import LAYER_FNS, Ctx, Layer, inits  # noqa: E402 (after configure)

# ``model`` (which imports the checker) is imported on first use, so that
# ``patternnet.backend.export.load`` runs an export without the compiler.
_LAZY = {"Model": "model", "compile": "model", "LOSSES": "losses",
         "cross_entropy": "losses", "mse": "losses"}


def __getattr__(name):
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'patternnet.backend' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module("." + where, __name__), name)

__all__ = ["LAYER_FNS", "inits", "LOSSES", "Ctx", "Layer", "Model", "compile",
           "cross_entropy", "mse"]
