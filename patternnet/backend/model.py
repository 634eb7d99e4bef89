"""``compile`` and ``Model``: a checked network as pure JAX functions.

The checked graph (``CSeq`` / ``CRepeat`` / ``CBranches`` / ``CLayer``) becomes a plan of
the same shape (``_Seq`` / ``_Repeat`` / ``_Branches`` / ``Layer``), which ``_Runner``
interprets while JAX traces it.  A repeat whose copies are structurally identical from
some copy on runs its leading copies unrolled and its uniform tail as one ``jax.lax.scan``
over parameters stacked inside the trace from the per-copy dicts (``scan=`` of
``compile``; docs/backend.md "Repeats").  The public pytree keeps one entry per copy
(``layout="per_copy"``, the default), or holds each uniform tail's parameters and state
already stacked under the tail's first copy (``layout="stacked"``), which spares the
scanned program the stacking glue, so its size no longer grows with the copy count.
"""

from __future__ import annotations

import functools
import math
import operator
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ..checker import CBranches, CheckedNet, CLayer, CRepeat, CSeq
from ..pipeline import one_network
from .layers import CHUNK, INIT_FNS, LAYER_FNS, Ctx, Init, Layer, path_seed

LOSSES = ("cross_entropy", "mse")


# --- the plan ------------------------------------------------------------------------


class _Seq:
    __slots__ = ("items",)

    def __init__(self, items):
        self.items = tuple(items)


class _Repeat:
    """``body*n``: the copies, each its own ``_Seq`` with its own parameter paths.

    ``start``: the first copy of the uniform tail (copies ``start..n-1`` have the same
    layer kinds, arguments and shapes position by position, so the tail can run as one
    ``lax.scan``); ``tail``: the layers of each tail copy, execution order (position j of
    every copy is the same layer of the body); ``paths``: every layer path in the repeat."""
    __slots__ = ("copies", "start", "tail", "paths")

    def __init__(self, copies):
        self.copies = tuple(copies)
        sigs = [_signature(c) for c in self.copies]
        start = len(sigs) - 1
        while start > 0 and sigs[start - 1] == sigs[-1]:
            start -= 1
        self.start = max(start, 0)
        self.tail = tuple(tuple(_layers_of(c)) for c in self.copies[self.start:])
        self.paths = frozenset(l.path for c in self.copies for l in _layers_of(c))


class _Branches:
    __slots__ = ("op", "branches")

    def __init__(self, op, branches):
        self.op, self.branches = op, tuple(branches)


def _layers_of(node):
    """The layers of a plan node, execution order."""
    if isinstance(node, Layer):
        yield node
    elif isinstance(node, _Seq):
        for item in node.items:
            yield from _layers_of(item)
    elif isinstance(node, _Repeat):
        for copy in node.copies:
            yield from _layers_of(copy)
    else:
        for branch in node.branches:
            yield from _layers_of(branch)


def _signature(node):
    """What must agree between two copies for one scan body to run both: the structure,
    and per layer its kind, arguments, shapes and counts (not its path)."""
    if isinstance(node, Layer):
        return ("L", node.kind, repr(sorted(node.args.items())), node.in_shape,
                node.out_shape, node.params, node.state)
    if isinstance(node, _Seq):
        return ("S",) + tuple(_signature(i) for i in node.items)
    if isinstance(node, _Repeat):
        return ("R",) + tuple(_signature(c) for c in node.copies)
    return ("B", node.op) + tuple(_signature(b) for b in node.branches)


def _plan(node, layers: list):
    if isinstance(node, CLayer):
        if node.kind not in LAYER_FNS:
            raise NotImplementedError(f"the JAX backend has no function for layer {node.kind} "
                                      "(add one to patternnet.backend.layers.LAYER_FNS)")
        layer = Layer(node)
        layers.append(layer)
        return layer
    if isinstance(node, CSeq):
        return _Seq(_plan(n, layers) for n in node.items)
    if isinstance(node, CRepeat):
        return _Repeat(_plan(c, layers) for c in node.copies)
    if isinstance(node, CBranches):
        return _Branches(node.op, (_plan(b, layers) for b in node.branches))
    raise AssertionError(f"unexpected node {node!r}")


def _find_stacks(node, out: dict) -> dict:
    """``id(repeat) -> repeat`` for the repeats whose uniform tail the stacked layout
    stores stacked: the outermost ones only (a repeat inside a stacked tail is part of
    each stacked copy), with at least two tail copies and some parameters or state."""
    if isinstance(node, _Repeat):
        copies = node.copies
        if len(node.tail) >= 2 and any(l.params or l.state for l in node.tail[0]):
            out[id(node)] = node
            copies = node.copies[:node.start]
        for copy in copies:
            _find_stacks(copy, out)
    elif isinstance(node, _Seq):
        for item in node.items:
            _find_stacks(item, out)
    elif isinstance(node, _Branches):
        for branch in node.branches:
            _find_stacks(branch, out)
    return out


def _final_layer(node) -> Optional[Layer]:
    """The layer whose output is the network's output, if one is (not a `|` or `+`)."""
    while True:
        if isinstance(node, Layer):
            return node
        if isinstance(node, _Seq) and node.items:
            node = node.items[-1]
        elif isinstance(node, _Repeat) and node.copies:
            node = node.copies[-1]
        else:
            return None


# --- nested dicts keyed by path segments ---------------------------------------------


def _nest(flat: dict) -> dict:
    root: dict = {}
    for path, value in flat.items():
        _insert(root, tuple(path.split(".")), value)
    return root


def _get(tree, layer: Layer, what: str):
    d = tree
    try:
        for k in layer.keys:
            d = d[k]
    except (KeyError, TypeError, IndexError):
        raise KeyError(f"{what} has no entry for layer {layer.path} ({layer.kind}): pass the "
                       f"{what} made by this model's init (a tree of the other layout: "
                       "convert it with model.stack or model.unstack)") from None
    return d


def _pop(root: dict, keys: tuple):
    """Remove and return the entry at ``keys`` (None if absent), pruning emptied dicts."""
    trail, d = [], root
    for k in keys[:-1]:
        if not isinstance(d, dict) or k not in d:
            return None
        trail.append((d, k))
        d = d[k]
    if not isinstance(d, dict) or keys[-1] not in d:
        return None
    value = d.pop(keys[-1])
    for parent, k in reversed(trail):
        if parent[k]:
            break
        del parent[k]
    return value


def _copy_dicts(tree):
    return {k: _copy_dicts(v) for k, v in tree.items()} if isinstance(tree, dict) else tree


def _unstack(tree, n: int, layer: Layer, what: str) -> list:
    """A stacked entry as ``n`` per-copy entries (``lax.unstack``: its transpose is one
    stack, so the gradient of an unrolled run over a stacked layout stays cheap)."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    for leaf in leaves:  # model.unstack of a tree given by hand
        if jnp.ndim(leaf) == 0 or jnp.shape(leaf)[0] != n:
            raise ValueError(f"{what} of layer {layer.path}: a leaf of shape "
                             f"{tuple(jnp.shape(leaf))}, but the stacked layout holds {n} "
                             "copies along the leading axis (a per-copy tree? convert it "
                             "with model.stack)")
    parts = [jax.lax.unstack(leaf) for leaf in leaves]
    return [treedef.unflatten([p[i] for p in parts]) for i in range(n)]


def _insert(root: dict, keys: tuple, value) -> None:
    d = root
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    d[keys[-1]] = value


def _flat_inits(spec, prefix: tuple):
    """(inner keys, Init) for every leaf of a nested dict of ``Init``."""
    if spec is None:
        return
    for k, v in spec.items():
        if isinstance(v, Init):
            yield prefix + (k,), v
        else:
            yield from _flat_inits(v, prefix + (k,))


# --- running the plan ----------------------------------------------------------------


#: scan="auto" scans a repeat whose uniform tail has at least this many copies, on an
#: accelerator: on XLA:CPU a convolution inside a loop body runs far slower (jax issue
#: #12868; a scanned backward pass measured 15-20x slower) and unrolled code compiles
#: about as fast, so "auto" unrolls there (docs/backend.md, "Repeats")
SCAN_MIN = 4
AUTO_SCAN_ON_CPU = False


def _auto_scans() -> bool:
    return AUTO_SCAN_ON_CPU or jax.default_backend() != "cpu"
SCAN_MODES = ("auto", True, False)
LAYOUTS = ("per_copy", "stacked")


def _scan_mode(scan):
    for mode in SCAN_MODES:
        if scan is mode or (isinstance(scan, str) and scan == mode):
            return mode
    raise ValueError(f"scan={scan!r}: expected 'auto', True or False")


def _reseed(layer: Layer, seed) -> Layer:
    """``layer`` with another (traced) path seed: one copy of a scanned body."""
    twin = object.__new__(Layer)
    for slot in Layer.__slots__:
        setattr(twin, slot, getattr(layer, slot))
    twin.seed = (seed[0], seed[1])
    return twin


class _Runner:
    """One trace of the network: parameters in, outputs and the new state out.

    ``scan``: "auto", True or False (see ``Model``); ``overrides`` maps ``id(layer)`` to
    ``(params, state, seed)`` for the layers of a scan body (slices of stacked values);
    ``stacks``: the repeats whose tails the trees hold stacked (``_find_stacks``)."""

    def __init__(self, params, state, ctx: Ctx, skip: Optional[Layer], collect: Optional[dict],
                 scan="auto", overrides: Optional[dict] = None, stacks: Optional[dict] = None):
        self.params, self.state, self.ctx = params, state, ctx
        self.skip, self.collect = skip, collect
        self.scan = scan
        self.overrides = dict(overrides or {})
        self.stacks = stacks or {}
        self.new_state: dict = {}

    def run(self, node, x):
        if isinstance(node, Layer):
            return self.layer(node, x)
        if isinstance(node, _Seq):
            for item in node.items:
                x = self.run(item, x)
            return x
        if isinstance(node, _Repeat):
            return self.repeat(node, x)
        outs = [self.run(b, x) for b in node.branches]
        if node.op == "+":
            return functools.reduce(operator.add, outs)
        return jnp.concatenate(outs, axis=-1)

    def scans(self, node: _Repeat) -> bool:
        """Whether this repeat's uniform tail runs as one ``lax.scan``."""
        n = len(node.tail)
        if self.scan is False or n < 2 or not node.tail[0] or self.collect is not None:
            return False
        if self.skip is not None and self.skip.path in node.paths:
            return False
        return self.scan is True or (n >= SCAN_MIN and _auto_scans())

    def repeat(self, node: _Repeat, x):
        stacked = id(node) in self.stacks
        if not self.scans(node):
            if stacked:
                self.unstack_tail(node)
            for copy in node.copies:
                x = self.run(copy, x)
            if stacked:
                self.restack_state(node)
            return x
        for copy in node.copies[:node.start]:
            x = self.run(copy, x)
        template = node.tail[0]

        def stack(*xs):
            return jnp.stack(xs)
        # per position j: params, state (stacked along a new leading axis, copies in
        # order: as stored in the stacked layout, else stacked here) and the path seeds
        # (n, 2) of that layer in every copy
        if stacked:  # never inside a scan body (_find_stacks): the seeds are static
            # (the stacks' shapes were checked on the way in: Model._check_trees)
            ps = [_get(self.params, l, "params") if l.params else None for l in template]
            ss = [_get(self.state, l, "state") if l.state else None for l in template]
            seeds = np.asarray([[l.seed for l in layers] for layers in node.tail], np.uint32)
        else:
            per_copy = [[self.vars(l) for l in layers] for layers in node.tail]
            ps = [jax.tree_util.tree_map(stack, *[c[j][0] for c in per_copy])
                  for j in range(len(template))]
            ss = [jax.tree_util.tree_map(stack, *[c[j][1] for c in per_copy])
                  for j in range(len(template))]
            seeds = jnp.stack([jnp.stack([jnp.asarray(c[j][2], jnp.uint32) for c in per_copy])
                               for j in range(len(template))], axis=1)
        body_node = node.copies[node.start]

        def body(carry, xs):
            p, s, seed = xs
            sub = _Runner(None, None, self.ctx, None, None, self.scan,
                          {id(l): (p[j], s[j], seed[j]) for j, l in enumerate(template)})
            y = sub.run(body_node, carry)
            return y, [sub.new_state[l.path] if l.state else None for l in template]

        x, new = jax.lax.scan(body, x, (ps, ss, seeds))
        for j, l in enumerate(template):
            if l.state and stacked:
                self.new_state[l.path] = new[j]
            elif l.state:
                for i, layers in enumerate(node.tail):
                    self.new_state[layers[j].path] = jax.tree_util.tree_map(
                        operator.itemgetter(i), new[j])
        return x

    def unstack_tail(self, node: _Repeat) -> None:
        """Run a stacked tail unrolled: each copy's layers read their slice."""
        n = len(node.tail)
        for j, l in enumerate(node.tail[0]):
            if not (l.params or l.state):
                continue
            ps = _unstack(_get(self.params, l, "params"), n, l, "params") if l.params else None
            ss = _unstack(_get(self.state, l, "state"), n, l, "state") if l.state else None
            for i, layers in enumerate(node.tail):
                self.overrides[id(layers[j])] = (ps[i] if ps else None, ss[i] if ss else None,
                                                 np.asarray(layers[j].seed, np.uint32))

    def restack_state(self, node: _Repeat) -> None:
        for j, l in enumerate(node.tail[0]):
            if l.state:
                parts = [self.new_state.pop(layers[j].path) for layers in node.tail]
                self.new_state[l.path] = jax.tree_util.tree_map(
                    lambda *xs: jnp.stack(xs), *parts)

    def vars(self, layer: Layer):
        """``(params, state, seed)`` of a layer: its own, or a scan body's slice."""
        hit = self.overrides.get(id(layer))
        if hit is not None:
            return hit
        p = _get(self.params, layer, "params") if layer.params else None
        s = _get(self.state, layer, "state") if layer.state else None
        return p, s, np.asarray(layer.seed, np.uint32)

    def layer(self, layer: Layer, x):
        if layer is self.skip:
            return x
        if id(layer) in self.overrides:
            p, s, seed = self.overrides[id(layer)]
            layer = _reseed(layer, seed)
        else:
            p = _get(self.params, layer, "params") if layer.params else None
            s = _get(self.state, layer, "state") if layer.state else None
        y, s_new = LAYER_FNS[layer.kind](layer, p, s, x, self.ctx)
        if layer.state:
            self.new_state[layer.path] = s_new
        if self.collect is not None:
            self.collect[layer.path] = y
        return y


# --- losses --------------------------------------------------------------------------


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy of ``logits`` (N, C) against integer labels (N,)."""
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"cross_entropy needs integer class labels, got {labels.dtype}; "
                         "use loss='mse' or a callable for other targets")
    if labels.shape != logits.shape[:-1]:
        raise ValueError(f"cross_entropy: labels of shape {tuple(labels.shape)} do not match "
                         f"outputs of shape {tuple(logits.shape)} (expected "
                         f"{tuple(logits.shape[:-1])})")
    logits = _loss_precision(logits)
    logp = jax.nn.log_softmax(logits, axis=-1)
    picked = jnp.take_along_axis(logp, labels[..., None].astype(jnp.int32), axis=-1)
    return -jnp.mean(picked)


def mse(outputs, targets):
    """Mean over every element of (outputs - targets)^2; shapes must be equal."""
    targets = jnp.asarray(targets)
    if targets.shape != outputs.shape:
        raise ValueError(f"mse: targets of shape {tuple(targets.shape)} do not match outputs "
                         f"of shape {tuple(outputs.shape)}")
    outputs = _loss_precision(outputs)
    return jnp.mean(jnp.square(outputs - targets.astype(outputs.dtype)))


def _loss_precision(y):
    """bfloat16 (or float16) outputs are cast to float32 for the loss; gradients flow
    back through the cast in the outputs' dtype.  float32/float64 are left as they are."""
    return y.astype(jnp.float32) if y.dtype in (jnp.bfloat16, jnp.float16) else y


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

    def __init__(self, checked: CheckedNet, dtype="float32", scan="auto",
                 layout="per_copy"):
        if not isinstance(checked, CheckedNet):
            raise TypeError(f"Model needs a CheckedNet, got {type(checked).__name__}")
        self.checked = checked
        self.dtype = _dtype(dtype)
        # bfloat16 (mixed precision): params and compute in bfloat16, BN running
        # statistics in float32, and init draws in float32 then casts (docs/backend.md)
        low = self.dtype == jnp.bfloat16
        self.state_dtype = jnp.float32 if low else self.dtype
        self._draw_dtype = jnp.float32 if low else self.dtype
        self._scan = _scan_mode(scan)
        if layout not in LAYOUTS:
            raise ValueError(f"layout={layout!r}: expected one of {', '.join(map(repr, LAYOUTS))}")
        self._layout = layout
        layers: list[Layer] = []
        self._plan = _plan(checked.graph, layers)
        self.layers: tuple[Layer, ...] = tuple(layers)
        self._with_vars = tuple(l for l in layers if l.params or l.state)
        self._stacks = _find_stacks(self._plan, {}) if layout == "stacked" else {}
        inside = {id(l) for node in self._stacks.values() for layers in node.tail[1:]
                  for l in layers}
        # the layers that have an entry of their own in this layout's trees
        self._entries = tuple(l for l in self._with_vars if id(l) not in inside)
        missing = sorted({l.kind for l in self._with_vars if l.kind not in INIT_FNS})
        if missing:
            raise NotImplementedError(f"the JAX backend has no init function for {missing}")
        self._tensors, self._seeds = self._init_plan(self._with_vars)
        self._init_jit = jax.jit(self._init_impl)
        final = _final_layer(self._plan)
        self._final_softmax = final if final is not None and final.kind == "SOFTMAX" else None
        self._forward = jax.jit(self._forward_impl)
        self._vg_cache: dict = {}
        self._expected: Optional[tuple[dict, dict]] = None

    # basic facts ----------------------------------------------------------------------
    @property
    def scan(self):
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
        return [(l.path, len(node.tail)) for node in self._stacks.values()
                for l in node.tail[0] if l.params or l.state]

    def stack(self, tree: dict) -> dict:
        """A per-copy params (or state, or gradient) tree in this model's layout: each
        stacked tail's copies stacked along a new leading axis under its first copy's
        path.  The identity for ``layout="per_copy"``.  The input is not modified."""
        return self._convert(tree, True)

    def unstack(self, tree: dict) -> dict:
        """The inverse of ``stack``: a tree of this model's layout, one entry per copy."""
        return self._convert(tree, False)

    def _convert(self, tree: dict, to_stacked: bool) -> dict:
        tree = _copy_dicts(tree)
        for node in self._stacks.values():
            for j, l in enumerate(node.tail[0]):
                if not (l.params or l.state):
                    continue
                members = [layers[j] for layers in node.tail]
                if to_stacked:
                    parts = [_pop(tree, m.keys) for m in members]
                    if all(p is None for p in parts):
                        continue  # e.g. a params tree and a layer with state only
                    if any(p is None for p in parts):
                        raise KeyError(f"stack: no entry for layer "
                                       f"{members[parts.index(None)].path}: pass a per-copy "
                                       "tree of this network")
                    _insert(tree, l.keys, jax.tree_util.tree_map(lambda *xs: jnp.stack(xs),
                                                                 *parts))
                else:
                    whole = _pop(tree, l.keys)
                    if whole is None:
                        continue
                    for m, part in zip(members, _unstack(whole, len(members), l, "unstack")):
                        _insert(tree, m.keys, part)
        return tree

    def scanned(self) -> list[tuple[str, str, int]]:
        """The repeats that ``apply`` runs with ``lax.scan`` in this mode: (first path of
        the scanned tail, last path, copies scanned), outer repeats first."""
        runner = _Runner(None, None, Ctx(False, None), None, None, self._scan)
        out = []

        def walk(node):
            if isinstance(node, _Repeat):
                if runner.scans(node):
                    out.append((node.tail[0][0].path, node.tail[-1][-1].path, len(node.tail)))
                    for copy in node.copies[:node.start + 1]:
                        walk(copy)
                    return
                for copy in node.copies:
                    walk(copy)
            elif isinstance(node, _Seq):
                for item in node.items:
                    walk(item)
            elif isinstance(node, _Branches):
                for branch in node.branches:
                    walk(branch)
        walk(self._plan)
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
        tensors, a, b, j = [], [], [], []
        chunks = 0
        for layer in layers:
            p, s = INIT_FNS[layer.kind](layer)
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
        trees: tuple[dict, dict] = ({}, {})
        for where, keys, init, start in self._tensors:
            dtype = self.state_dtype if where == 1 else self.dtype
            if init.fill == "uniform":
                lo = start * CHUNK
                bound = 1.0 / math.sqrt(init.fan_in)
                value = ((2.0 * u[lo:lo + init.size] - 1.0) * bound).reshape(init.shape)
                value = value.astype(dtype) if value.dtype != dtype else value
            elif init.fill == "ones":
                value = jnp.ones(init.shape, dtype)
            else:
                value = jnp.zeros(init.shape, dtype)
            _insert(trees[where], keys, value)
        return trees

    def init(self, key) -> tuple[dict, dict]:
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
            trees = jax.eval_shape(self.init, jax.random.key(0))
            self._expected = tuple(
                {jax.tree_util.keystr(k): tuple(v.shape)
                 for k, v in jax.tree_util.tree_flatten_with_path(t)[0]} for t in trees)
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
        runner = _Runner(params, state, Ctx(train, rng), skip, collect, self._scan,
                         stacks=self._stacks)
        y = runner.run(self._plan, self._input(x))
        return y, _nest(runner.new_state)

    def apply(self, params, state, x, train: bool = False, rng=None):
        """``(y, new_state)``: the network on the batch ``x`` (N, H, W, C) or (N, D).

        Pure.  ``train=True`` normalises BN with batch statistics and updates its running
        statistics in ``new_state``, and applies DROPOUT, which needs ``rng``.  With
        ``train=False`` the state comes back unchanged."""
        return self._run(params, state, x, train, rng)

    def logits(self, params, state, x, train: bool = False, rng=None):
        """``(logits, new_state)``: as ``apply``, but a network that ends in SOFTMAX
        stops before it (its input, the logits, is what a classification loss wants;
        the log of the probabilities loses precision).  Pure, not jitted."""
        return self._run(params, state, x, train, rng, skip=self._final_softmax)

    def intermediates(self, params, state, x, train: bool = False, rng=None) -> dict:
        """Every layer's output, keyed by its path ("input", "conv1", "stage2.skip1", ...)."""
        outs: dict = {}
        self._run(params, state, x, train, rng, collect=outs)
        return outs

    def _forward_impl(self, params, state, x):
        return self._run(params, state, x, False, None)[0]

    def forward(self, params, state, x):
        """Jitted inference: ``apply(params, state, x, train=False)[0]``."""
        return self._forward(params, state, x)

    # losses and gradients -------------------------------------------------------------
    def _objective(self, loss, train: bool) -> Callable:
        skip = None
        if isinstance(loss, str):
            if loss == "cross_entropy":
                fn = cross_entropy
                skip = self._final_softmax  # a final SOFTMAX: take the logits before it
            elif loss == "mse":
                fn = mse
            else:
                raise ValueError(f"loss={loss!r}: expected one of {', '.join(LOSSES)} or a "
                                 "callable loss(outputs, labels) -> scalar")
        elif callable(loss):
            fn = loss
        else:
            raise TypeError(f"loss must be a name ({', '.join(LOSSES)}) or a callable")

        def objective(params, state, x, labels, rng):
            y, new_state = self._run(params, state, x, train, rng, skip=skip)
            return fn(y, labels), new_state
        return objective

    def _vg(self, loss, train: bool):
        key = (loss, bool(train))
        hit = self._vg_cache.get(key)
        if hit is None:
            hit = jax.jit(jax.value_and_grad(self._objective(loss, bool(train)), has_aux=True))
            self._vg_cache[key] = hit
        return hit

    def value_and_grad(self, params, state, x, labels, loss="cross_entropy", train: bool = True,
                       rng=None):
        """Jitted ``((loss, new_state), grads)``; grads has the structure of params.

        ``loss``: "cross_entropy" (integer labels, softmax cross-entropy of the outputs
        taken as logits, batch mean; a network ending in SOFTMAX is scored on that
        SOFTMAX's input), "mse", or a callable ``loss(outputs, labels) -> scalar``."""
        return self._vg(loss, train)(params, state, x, labels, rng)

    def grad(self, params, state, x, labels, loss="cross_entropy", train: bool = True,
             rng=None):
        """Jitted gradient of the loss with respect to params (see ``value_and_grad``)."""
        return self.value_and_grad(params, state, x, labels, loss, train, rng)[1]

    def loss(self, params, state, x, labels, loss="cross_entropy", train: bool = False,
             rng=None):
        """The loss value alone (not jitted; ``train=False`` by default, for evaluation)."""
        return self._objective(loss, train)(params, state, x, labels, rng)[0]

    def train_step(self, optimizer, loss="cross_entropy") -> Callable:
        """A jitted ``step(params, state, opt_state, x, labels, rng=None) -> (params, state,
        opt_state, loss)`` for any optax ``GradientTransformation``; ``opt_state`` comes
        from ``optimizer.init(params)``."""
        import optax

        grad_fn = jax.value_and_grad(self._objective(loss, True), has_aux=True)

        def step(params, state, opt_state, x, labels, rng=None):
            (value, new_state), grads = grad_fn(params, state, x, labels, rng)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), new_state, opt_state, value
        return jax.jit(step)

    # export (patternnet/backend/export.py) --------------------------------------------
    def export(self, path, params, state, batch: Optional[int] = None, platforms=None) -> None:
        """Write inference (``forward``) to one ``.pnx`` file, atomically: the
        ``jax.export`` of ``f(params, state, x)`` (batch symbolic with ``batch=None``,
        else fixed), the params and state arrays and a JSON manifest.
        ``patternnet.load(path)`` runs it.  See docs/backend.md, "Export"."""
        from .export import export
        export(self, path, params, state, batch, platforms)

    def lower(self, params, state, batch: int = 1):
        """``jax.jit(forward).lower(...)`` at a fixed batch (a ``jax.stages.Lowered``)."""
        from .export import lower
        return lower(self, params, state, batch)

    def stablehlo(self, params=None, state=None, batch: Optional[int] = None) -> str:
        """Inference's StableHLO text; ``batch=None``: the exported module, batch
        symbolic.  Without params/state their shapes come from ``init``."""
        from .export import stablehlo
        return stablehlo(self, params, state, batch)


# --- compile -------------------------------------------------------------------------


def compile(source_or_path, *, net: Optional[str] = None, define: Optional[dict] = None,
            input_shape=None, classes: Optional[int] = None, dtype="float32",
            strict: bool = False, scan="auto", layout="per_copy") -> Model:
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
