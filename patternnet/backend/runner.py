"""One trace of a checked network: the interpreter that ``Model.apply`` runs while JAX
traces it.

It walks the checker's graph (``plan.py`` adds the backend's facts): a layer calls its
function in ``LAYER_FNS``, a merge (``+``, ``|``, ``*``) its function in ``MERGE_FNS``;
a repeat runs its copies one after the other, or its uniform tail as one
``jax.lax.scan`` over the copies' parameters stacked along a leading axis (stacked inside
the trace from the per-copy entries, or as stored by the stacked layout).
"""

from __future__ import annotations

import operator
from typing import Any, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from ..checker import CLayer, CNode, CRepeat, CSeq
from . import trees
from .layers import LAYER_FNS, Ctx, Layer
from .merges import MERGE_FNS
from .plan import Plan, Tail
from .types import Array, PyTree

#: scan="auto" scans a repeat whose uniform tail has at least this many copies, on an
#: accelerator: on XLA:CPU a convolution inside a loop body runs far slower (jax issue
#: #12868; a scanned backward pass measured 15-20x slower) and unrolled code compiles
#: about as fast, so "auto" unrolls there (docs/backend.md, "Repeats")
SCAN_MIN = 4
AUTO_SCAN_ON_CPU = False
SCAN_MODES = ("auto", True, False)


def auto_scans() -> bool:
    return AUTO_SCAN_ON_CPU or jax.default_backend() != "cpu"


def scan_mode(scan: Union[str, bool]) -> Union[str, bool]:
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


class Runner:
    """Parameters in, outputs and the new state out.

    ``scan``: "auto", True or False (see ``Model``); ``skip``: a layer run as the
    identity (a final SOFTMAX, for the logits); ``collect``: a dict that receives every
    layer's output; ``overrides`` maps ``id(layer)`` to ``(params, state, seed)`` for the
    layers of a scan body (slices of stacked values); ``stacks``: the repeats whose tails
    the trees hold stacked (``Plan.stacks``)."""

    def __init__(self, plan: Plan, params: PyTree, state: PyTree, ctx: Ctx,
                 skip: Optional[Layer] = None, collect: Optional[dict] = None,
                 scan: Union[str, bool] = "auto", overrides: Optional[dict] = None,
                 stacks: Optional[dict] = None) -> None:
        self.plan = plan
        self.params, self.state, self.ctx = params, state, ctx
        self.skip, self.collect = skip, collect
        self.scan = scan
        self.overrides = dict(overrides or {})
        self.stacks = stacks or {}
        self.new_state: dict = {}

    def run(self, node: CNode, x: Array) -> Array:
        if isinstance(node, CLayer):
            return self.layer(self.plan.layer(node), x)
        if isinstance(node, CSeq):
            for item in node.items:
                x = self.run(item, x)
            return x
        if isinstance(node, CRepeat):
            return self.repeat(node, x)
        return MERGE_FNS[node.op]([self.run(b, x) for b in node.branches])

    def scans(self, tail: Tail) -> bool:
        """Whether this repeat's uniform tail runs as one ``lax.scan``."""
        n = len(tail.layers)
        if self.scan is False or n < 2 or not tail.template or self.collect is not None:
            return False
        if self.skip is not None and self.skip.path in tail.paths:
            return False
        return self.scan is True or (n >= SCAN_MIN and auto_scans())

    def repeat(self, node: CRepeat, x: Array) -> Array:
        tail = self.plan.tail(node)
        stacked = id(node) in self.stacks
        if not self.scans(tail):
            if stacked:
                self.unstack_tail(tail)
            for copy in node.copies:
                x = self.run(copy, x)
            if stacked:
                self.restack_state(tail)
            return x
        for copy in node.copies[:tail.start]:
            x = self.run(copy, x)
        return self.scan_tail(node, tail, stacked, x)

    def scan_tail(self, node: CRepeat, tail: Tail, stacked: bool, x: Array) -> Array:
        template = tail.template
        # per position j: params, state (stacked along a new leading axis, copies in
        # order: as stored in the stacked layout, else stacked here) and the path seeds
        # (n, 2) of that layer in every copy
        if stacked:  # never inside a scan body (Plan.stacks): the seeds are static
            # (the stacks' shapes were checked on the way in: Model._check_trees)
            ps = [trees.entry(self.params, l, "params") if l.params else None for l in template]
            ss = [trees.entry(self.state, l, "state") if l.state else None for l in template]
            seeds: Any = np.asarray([[l.seed for l in layers] for layers in tail.layers],
                                    np.uint32)
        else:
            per_copy = [[self.vars(l) for l in layers] for layers in tail.layers]
            ps = [trees.stack([c[j][0] for c in per_copy]) for j in range(len(template))]
            ss = [trees.stack([c[j][1] for c in per_copy]) for j in range(len(template))]
            seeds = jnp.stack([jnp.stack([jnp.asarray(c[j][2], jnp.uint32) for c in per_copy])
                               for j in range(len(template))], axis=1)
        body_node = node.copies[tail.start]

        def body(carry, xs):
            p, s, seed = xs
            sub = Runner(self.plan, None, None, self.ctx, None, None, self.scan,
                         {id(l): (p[j], s[j], seed[j]) for j, l in enumerate(template)})
            y = sub.run(body_node, carry)
            return y, [sub.new_state[l.path] if l.state else None for l in template]

        x, new = jax.lax.scan(body, x, (ps, ss, seeds))
        for j, l in enumerate(template):
            if l.state and stacked:
                self.new_state[l.path] = new[j]
            elif l.state:
                for i, layers in enumerate(tail.layers):
                    self.new_state[layers[j].path] = jax.tree_util.tree_map(
                        operator.itemgetter(i), new[j])
        return x

    def unstack_tail(self, tail: Tail) -> None:
        """Run a stacked tail unrolled: each copy's layers read their slice."""
        n = len(tail.layers)
        for j, l in enumerate(tail.template):
            if not (l.params or l.state):
                continue
            ps = trees.unstack(trees.entry(self.params, l, "params"), n, l, "params") \
                if l.params else None
            ss = trees.unstack(trees.entry(self.state, l, "state"), n, l, "state") \
                if l.state else None
            for i, layers in enumerate(tail.layers):
                self.overrides[id(layers[j])] = (ps[i] if ps else None, ss[i] if ss else None,
                                                 np.asarray(layers[j].seed, np.uint32))

    def restack_state(self, tail: Tail) -> None:
        for j, l in enumerate(tail.template):
            if l.state:
                self.new_state[l.path] = trees.stack(
                    [self.new_state.pop(layers[j].path) for layers in tail.layers])

    def vars(self, layer: Layer) -> tuple[PyTree, PyTree, Array]:
        """``(params, state, seed)`` of a layer: its own, or a scan body's slice."""
        hit = self.overrides.get(id(layer))
        if hit is not None:
            return hit
        p = trees.entry(self.params, layer, "params") if layer.params else None
        s = trees.entry(self.state, layer, "state") if layer.state else None
        return p, s, np.asarray(layer.seed, np.uint32)

    def layer(self, layer: Layer, x: Array) -> Array:
        if layer is self.skip:
            return x
        if id(layer) in self.overrides:
            p, s, seed = self.overrides[id(layer)]
            layer = _reseed(layer, seed)
        else:
            p = trees.entry(self.params, layer, "params") if layer.params else None
            s = trees.entry(self.state, layer, "state") if layer.state else None
        y, s_new = LAYER_FNS[layer.kind](layer, p, s, x, self.ctx)
        if layer.state:
            self.new_state[layer.path] = s_new
        if self.collect is not None:
            self.collect[layer.path] = y
        return y
