"""``compile`` and ``Model``: a checked network as pure JAX functions.

``Model`` holds what a model is: the checked network, its dtype, how repeats run and how
params hold their copies (``scan=``, ``layout=``), ``init``, ``apply``, ``logits``,
``forward`` and the layout conversions.  The runner (``runner.py``) interprets the
checker's graph while JAX traces it, with the facts ``plan.py`` adds.  A repeat whose
copies are structurally identical from some copy on runs its uniform tail unrolled or as
one ``jax.lax.scan`` (docs/backend.md "Repeats"); the public pytree keeps one entry per
copy (``layout="per_copy"``, the default), or holds each uniform tail's parameters and
state already stacked under the tail's first copy (``layout="stacked"``), which spares the
scanned program the stacking glue, so its size no longer grows with the copy count.

Losses (``losses.py``), gradients and the train step (``steps.py``) and export
(``export.py``) are functions of a model in their own modules; the methods of the same
names here call them.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from ..checker import CheckedNet
from ..pipeline import ShapeLike, SourceLike, one_network
from . import steps, trees
from ..kinds import Init
from .layers import CHUNK, Ctx, Layer, inits, path_seed
from .losses import LOSSES, Loss, cross_entropy, loss_precision, mse  # noqa: F401 (re-exported)
from .plan import Plan, visit_repeats
from .runner import Runner, scan_mode
from .types import Array, DType, Key, PyTree

if TYPE_CHECKING:  # optax is the [train] extra's
    import optax

LAYOUTS = ("per_copy", "stacked")


def _flat_inits(spec, prefix: tuple):
    """(inner keys, Init) for every leaf of a nested dict of ``Init``."""
    if spec is None:
        return
    for k, v in spec.items():
        if isinstance(v, Init):
            yield prefix + (k,), v
        else:
            yield from _flat_inits(v, prefix + (k,))


# --- dtypes --------------------------------------------------------------------------


def _dtype(dtype):
    try:
        name = jnp.dtype(dtype).name
    except TypeError:
        name = repr(dtype)
    if name == "float32":
        return jnp.float32
    if name == "float64":
        if jax.dtypes.canonicalize_dtype(jnp.float64) != jnp.float64:
            raise ValueError("dtype='float64' needs 64-bit JAX: call "
                             "jax.config.update('jax_enable_x64', True) or use "
                             "`with jax.enable_x64(True):` around compile and the calls")
        return jnp.float64
    if name == "bfloat16":
        return jnp.bfloat16
    raise ValueError(f"dtype={dtype!r}: expected 'float32', 'bfloat16' (or 'float64' with "
                     "jax_enable_x64)")


# --- the model -----------------------------------------------------------------------


class Model:
    """A checked network compiled to pure JAX functions (see docs/backend.md).

    ``init(key) -> (params, state)``, ``apply(params, state, x, train, rng) -> (y,
    new_state)``, ``forward`` (jitted inference), ``value_and_grad`` / ``grad`` (jitted),
    ``train_step(optimizer)`` (jitted), ``intermediates`` (every layer's output).
    """

    def __init__(self, checked: CheckedNet, dtype: DType = "float32",
                 scan: Union[str, bool] = "auto", layout: str = "per_copy") -> None:
        if not isinstance(checked, CheckedNet):
            raise TypeError(f"Model needs a CheckedNet, got {type(checked).__name__}")
        self.checked = checked
        self.dtype = _dtype(dtype)
        # bfloat16 (mixed precision): params and compute in bfloat16, BN running
        # statistics in float32, and init draws in float32 then casts (docs/backend.md)
        low = self.dtype == jnp.bfloat16
        self.state_dtype = jnp.float32 if low else self.dtype
        self._draw_dtype = jnp.float32 if low else self.dtype
        self._scan = scan_mode(scan)
        if layout not in LAYOUTS:
            raise ValueError(f"layout={layout!r}: expected one of {', '.join(map(repr, LAYOUTS))}")
        self._layout = layout
        self._plan = Plan(checked)
        self.layers: tuple[Layer, ...] = self._plan.layers
        with_vars = tuple(l for l in self.layers if l.params or l.state)
        self._stacks = self._plan.stacks() if layout == "stacked" else {}
        inside = {id(l) for tail in self._stacks.values() for layers in tail.layers[1:]
                  for l in layers}
        #: the layers that have an entry of their own in this layout's trees
        self.entries: tuple[Layer, ...] = tuple(l for l in with_vars if id(l) not in inside)
        self._tensors, self._seeds = self._init_plan(with_vars)
        self._init_jit = jax.jit(self._init_impl)
        final = self._plan.final_layer()
        self._final_softmax = final if final is not None and final.kind == "SOFTMAX" else None
        self._forward = jax.jit(lambda params, state, x: self.apply(params, state, x)[0])
        self._vg_cache: dict = {}
        self._expected: Optional[tuple[dict, dict]] = None

    # basic facts ----------------------------------------------------------------------
    @property
    def scan(self) -> Union[str, bool]:
        """"auto", True or False: how uniform repeat copies run (docs/backend.md,
        "Repeats").  Read-only, since the jitted functions are traced with it; for another
        mode compile again: ``patternnet.compile(model.checked, scan=False)``."""
        return self._scan

    @property
    def layout(self) -> str:
        """"per_copy" or "stacked": how params and state hold the copies of a repeat
        (docs/backend.md, "Repeats").  ``stack`` and ``unstack`` convert."""
        return self._layout

    def stacked(self) -> list[tuple[str, int]]:
        """In the stacked layout: (the path holding a stack, copies in it), per tail."""
        return [(l.path, len(tail.layers)) for tail in self._stacks.values()
                for l in tail.template if l.params or l.state]

    def stack(self, tree: dict) -> dict:
        """A per-copy params (or state, or gradient) tree in this model's layout: each
        stacked tail's copies stacked along a new leading axis under its first copy's
        path.  The identity for ``layout="per_copy"``.  The input is not modified."""
        return self._convert(tree, True)

    def unstack(self, tree: dict) -> dict:
        """The inverse of ``stack``: a tree of this model's layout, one entry per copy."""
        return self._convert(tree, False)

    def _convert(self, tree: dict, to_stacked: bool) -> dict:
        tree = trees.copy_dicts(tree)
        for tail in self._stacks.values():
            for j, l in enumerate(tail.template):
                if not (l.params or l.state):
                    continue
                members = [layers[j] for layers in tail.layers]
                if to_stacked:
                    parts = [trees.pop(tree, m.keys) for m in members]
                    if all(p is None for p in parts):
                        continue  # e.g. a params tree and a layer with state only
                    if any(p is None for p in parts):
                        raise KeyError(f"stack: no entry for layer "
                                       f"{members[parts.index(None)].path}: pass a per-copy "
                                       "tree of this network")
                    trees.insert(tree, l.keys, trees.stack(parts))
                else:
                    whole = trees.pop(tree, l.keys)
                    if whole is None:
                        continue
                    for m, part in zip(members, trees.unstack(whole, len(members), l,
                                                              "unstack")):
                        trees.insert(tree, m.keys, part)
        return tree

    def scanned(self) -> list[tuple[str, str, int]]:
        """The repeats that ``apply`` runs with ``lax.scan`` in this mode: (first path of
        the scanned tail, last path, copies scanned), outer repeats first."""
        runner = Runner(self._plan, None, None, Ctx(False, None), scan=self._scan)
        out = []

        def scanned(node) -> tuple:
            tail = self._plan.tail(node)
            if not runner.scans(tail):
                return node.copies
            out.append((tail.template[0].path, tail.layers[-1][-1].path, len(tail.layers)))
            return node.copies[:tail.start + 1]  # the body: once for every tail copy
        visit_repeats(self._plan.graph, scanned)
        return out

    @property
    def input_shape(self) -> tuple:
        return self.checked.input_shape

    @property
    def output_shape(self) -> tuple:
        return self.checked.output_shape

    def summary(self) -> str:
        from ..summary import text
        return text(self.checked)

    def __repr__(self) -> str:
        return (f"<patternnet Model {self.checked.label}: {self.checked.params:,} parameters, "
                f"input {self.input_shape}, output {self.output_shape}>")

    # init -----------------------------------------------------------------------------
    def _init_plan(self, layers):
        """Every tensor init makes, and the chunks of random values it draws (static)."""
        tensors: list = []
        a: list[int] = []
        b: list[int] = []
        j: list[int] = []
        chunks = 0
        for layer in layers:
            p, s = inits(layer)
            for where, spec, want in ((0, p, layer.params), (1, s, layer.state)):
                flat = list(_flat_inits(spec, ()))
                got = sum(init.size for _, init in flat)
                if got != want:
                    raise AssertionError(f"{layer.path}: init makes {got} "
                                         f"{'parameters' if where == 0 else 'state'}, "
                                         f"the checker counts {want}")
                for inner, init in flat:
                    start = None
                    if init.fill == "uniform":
                        name = "/".join((layer.path,) + inner)
                        sa, sb = path_seed(name)
                        n = -(-init.size // CHUNK)
                        start, chunks = chunks, chunks + n
                        a += [sa] * n
                        b += [sb] * n
                        j += range(n)
                    tensors.append((where, layer.keys + inner, init, start))
        seeds = tuple(np.asarray(v, np.uint32) for v in (a, b, j))
        return tuple(tensors), seeds

    def _init_impl(self, key, seeds):
        """Chunk i of the random values is uniform [0, 1) from
        fold_in(fold_in(fold_in(key, a_i), b_i), j_i); see ``init``."""
        if len(seeds[0]):
            def chunk(sa, sb, sj):
                k = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(key, sa), sb), sj)
                return jax.random.uniform(k, (CHUNK,), self._draw_dtype)
            u = jax.vmap(chunk)(*seeds).reshape(-1)
        made: tuple[dict, dict] = ({}, {})
        for where, keys, init, start in self._tensors:
            dtype = self.state_dtype if where == 1 else self.dtype
            if init.fill == "uniform":
                lo = start * CHUNK
                bound = 1.0 / math.sqrt(init.fan_in)
                value = ((2.0 * u[lo:lo + init.size] - 1.0) * bound).reshape(init.shape)
                value = value.astype(dtype) if value.dtype != dtype else value
            elif init.fill == "ones":
                value = jnp.ones(init.shape, dtype)
            elif init.fill == "full":
                value = jnp.full(init.shape, init.value, dtype)
            else:
                value = jnp.zeros(init.shape, dtype)
            trees.insert(made[where], keys, value)
        return made

    def init(self, key: Union[Key, int]) -> tuple[dict, dict]:
        """Fresh ``(params, state)`` from a ``jax.random`` key (an int means
        ``jax.random.key(key)``); the same key gives the same values.

        CONV/FC weights and biases are U(-1/sqrt(fan_in), 1/sqrt(fan_in)), BN scale 1,
        bias 0, running mean 0 and variance 1.  Each uniform tensor is named by its path
        and leaf, e.g. "stage2.skip1/conv/w"; with (a, b) the two little-endian 32-bit
        words of BLAKE2b-64 of that name, its chunk j of CHUNK values is
        ``uniform(fold_in(fold_in(fold_in(key, a), b), j), (CHUNK,))`` and the tensor is
        the first prod(shape) values of its chunks in row-major order, scaled to the
        bound.  So a tensor depends only on the key and its name.  One jitted program
        draws them all (traceable: ``jax.eval_shape(model.init, key)`` works)."""
        if isinstance(key, int):
            key = jax.random.key(key)
        params, state = self._init_jit(key, self._seeds)
        if self._stacks:
            return self.stack(params), self.stack(state)
        return params, state

    # apply ----------------------------------------------------------------------------
    def _input(self, x):
        x = jnp.asarray(x)
        want = tuple(self.input_shape)
        if x.ndim != len(want) + 1 or tuple(x.shape[1:]) != want:
            raise ValueError(f"input of shape {tuple(x.shape)}: this network takes a batch of "
                             f"shape (N, {', '.join(map(str, want))})")
        return x.astype(self.dtype) if x.dtype != self.dtype else x

    def _shapes(self) -> tuple[dict, dict]:
        """{key path: shape} of params and state in this model's layout (from ``init``)."""
        if self._expected is None:
            shapes = jax.eval_shape(self.init, jax.random.key(0))
            params, state = (
                {jax.tree_util.keystr(k): tuple(v.shape)
                 for k, v in jax.tree_util.tree_flatten_with_path(t)[0]} for t in shapes)
            self._expected = (params, state)
        return self._expected

    def _check_trees(self, params, state) -> None:
        """A tree of the other layout, or of another network, is named here, before a
        layer fails on a shape it cannot use (shapes only: this runs while tracing)."""
        for what, tree, want in zip(("params", "state"), (params, state), self._shapes()):
            try:
                leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
            except Exception:  # not a pytree: the layers' lookups say what is missing
                continue
            for k, v in leaves:
                where, shape = jax.tree_util.keystr(k), tuple(jnp.shape(v))
                expected = want.get(where)
                if expected is not None and expected != shape:
                    hint = ""
                    if len(shape) == len(expected) + 1 and shape[1:] == expected:
                        hint = " (a tree of the stacked layout? convert it with model.unstack)"
                    elif len(expected) == len(shape) + 1 and expected[1:] == shape:
                        hint = " (a per-copy tree? convert it with model.stack)"
                    raise ValueError(f"{what}{where} has shape {shape}; this model expects "
                                     f"{expected}{hint}")

    def _run(self, params, state, x, train, rng, *, skip=None, collect=None):
        self._check_trees(params, state)
        if not isinstance(train, bool):
            train = bool(train)  # a traced value fails here: `train` must be static
        runner = Runner(self._plan, params, state, Ctx(train, rng), skip, collect, self._scan,
                        stacks=self._stacks)
        y = runner.run(self._plan.graph, self._input(x))
        return y, trees.nest(runner.new_state)

    def apply(self, params: PyTree, state: PyTree, x: Array, train: bool = False,
              rng: Optional[Key] = None) -> tuple[Array, PyTree]:
        """``(y, new_state)``: the network on the batch ``x`` (N, H, W, C) or (N, D).

        Pure.  ``train=True`` normalises BN with batch statistics and updates its running
        statistics in ``new_state``, and applies DROPOUT, which needs ``rng``.  With
        ``train=False`` the state comes back unchanged."""
        return self._run(params, state, x, train, rng)

    def logits(self, params: PyTree, state: PyTree, x: Array, train: bool = False,
               rng: Optional[Key] = None) -> tuple[Array, PyTree]:
        """``(logits, new_state)``: as ``apply``, but a network that ends in SOFTMAX
        stops before it (its input, the logits, is what a classification loss wants;
        the log of the probabilities loses precision).  Pure, not jitted."""
        return self._run(params, state, x, train, rng, skip=self._final_softmax)

    def intermediates(self, params: PyTree, state: PyTree, x: Array, train: bool = False,
                      rng: Optional[Key] = None) -> dict:
        """Every layer's output, keyed by its path ("input", "conv1", "stage2.skip1", ...)."""
        outs: dict = {}
        self._run(params, state, x, train, rng, collect=outs)
        return outs

    def forward(self, params: PyTree, state: PyTree, x: Array) -> Array:
        """Jitted inference: ``apply(params, state, x, train=False)[0]``."""
        return self._forward(params, state, x)

    # losses, gradients, the train step (steps.py) -------------------------------------
    def value_and_grad(self, params: PyTree, state: PyTree, x: Array, labels: Array,
                       loss: Loss = "cross_entropy", train: bool = True,
                       rng: Optional[Key] = None) -> tuple[tuple[Array, PyTree], PyTree]:
        """Jitted ``((loss, new_state), grads)``; grads has the structure of params
        (``steps.value_and_grad``, compiled once per loss and mode).

        ``loss``: "cross_entropy" (integer labels, softmax cross-entropy of the outputs
        taken as logits, batch mean; a network ending in SOFTMAX is scored on that
        SOFTMAX's input), "mse", or a callable ``loss(outputs, labels) -> scalar``."""
        key = (loss, bool(train))
        fn = self._vg_cache.get(key)
        if fn is None:
            fn = self._vg_cache[key] = steps.value_and_grad(self, loss, bool(train))
        return fn(params, state, x, labels, rng)

    def grad(self, params: PyTree, state: PyTree, x: Array, labels: Array,
             loss: Loss = "cross_entropy", train: bool = True,
             rng: Optional[Key] = None) -> PyTree:
        """Jitted gradient of the loss with respect to params (see ``value_and_grad``)."""
        return self.value_and_grad(params, state, x, labels, loss, train, rng)[1]

    def loss(self, params: PyTree, state: PyTree, x: Array, labels: Array,
             loss: Loss = "cross_entropy", train: bool = False,
             rng: Optional[Key] = None) -> Array:
        """The loss value alone (not jitted; ``train=False`` by default, for evaluation)."""
        return steps.objective(self, loss, train)(params, state, x, labels, rng)[0]

    def train_step(self, optimizer: optax.GradientTransformation,
                   loss: Loss = "cross_entropy") -> Callable:
        """A jitted ``step(params, state, opt_state, x, labels, rng=None) -> (params, state,
        opt_state, loss)`` for any optax ``GradientTransformation`` (``steps.train_step``);
        ``opt_state`` comes from ``optimizer.init(params)``."""
        return steps.train_step(self, optimizer, loss)

    # export (patternnet/backend/export.py) --------------------------------------------
    def export(self, path: Union[str, os.PathLike[str]], params: PyTree, state: PyTree,
               batch: Optional[int] = None, platforms: Optional[Sequence[str]] = None) -> None:
        """Write inference (``forward``) to one ``.pnx`` file, atomically: the
        ``jax.export`` of ``f(params, state, x)`` (batch symbolic with ``batch=None``,
        else fixed), the params and state arrays and a JSON manifest.
        ``patternnet.load(path)`` runs it.  See docs/backend.md, "Export"."""
        from .export import export
        export(self, path, params, state, batch, platforms)

    def lower(self, params: PyTree, state: PyTree, batch: int = 1) -> Any:
        """``jax.jit(forward).lower(...)`` at a fixed batch (a ``jax.stages.Lowered``)."""
        from .export import lower
        return lower(self, params, state, batch)

    def stablehlo(self, params: Optional[PyTree] = None, state: Optional[PyTree] = None,
                  batch: Optional[int] = None) -> str:
        """Inference's StableHLO text; ``batch=None``: the exported module, batch
        symbolic.  Without params/state their shapes come from ``init``."""
        from .export import stablehlo
        return stablehlo(self, params, state, batch)


# --- compile -------------------------------------------------------------------------


def compile(source_or_path: Union[SourceLike, CheckedNet], *, net: Optional[str] = None,
            define: Optional[dict] = None, input_shape: ShapeLike = None,
            classes: Optional[int] = None, dtype: DType = "float32", strict: bool = False,
            scan: Union[str, bool] = "auto", layout: str = "per_copy") -> Model:
    """Parse, resolve and check one network, and compile it to a ``Model``.

    ``source_or_path`` is a path, source text, a parsed ``Program`` or a ``CheckedNet``
    (then the other selection arguments must be left out).  A family (free ranges) is an
    error (E210): fix its ranges with ``define``.  ``scan``: "auto" (the default), True or
    False: whether the uniform copies of a repeat run as one ``jax.lax.scan``
    (docs/backend.md, "Repeats").  ``layout``: "per_copy" (the default: one entry per
    copy in params and state) or "stacked" (each uniform tail stacked under its first
    copy's path; compile time stays flat as the copy count grows).
    """
    if isinstance(source_or_path, CheckedNet):
        if net is not None or define or input_shape is not None or classes is not None:
            raise ValueError("compile(CheckedNet): net, define, input_shape and classes "
                             "were already applied by check; leave them out")
        return Model(source_or_path, dtype, scan, layout)
    checked = one_network(source_or_path, net=net, define=define, input_shape=input_shape,
                          classes=classes, strict=strict)
    return Model(checked, dtype, scan, layout)
