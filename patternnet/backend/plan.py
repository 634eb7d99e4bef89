"""What the backend knows of a checked graph before it runs it.

The runner interprets the checker's graph itself (``CSeq`` / ``CRepeat`` / ``CBranches`` /
``CLayer``); ``Plan`` adds, per layer, the backend's ``Layer`` (its path keys, its
arguments as a dict, the seed of its path) and, per repeat, its uniform tail: the copies
from ``start`` on have the same layer kinds, arguments and shapes position by position,
so they can run as one ``jax.lax.scan`` or be stored stacked (docs/backend.md, "Repeats").
Both are keyed by the checked node's ``id``: the graph is the model's, and lives as long.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from ..checker import CBranches, CheckedNet, CLayer, CNode, CRepeat, CSeq, layers_in, walk
from .layers import LAYER_FNS, Layer


class Tail:
    """A repeat's uniform tail: ``start`` (its first copy), ``layers`` (per tail copy, its
    layers in execution order; position j is the same layer of the body in every copy)
    and ``paths`` (every layer path in the repeat)."""
    __slots__ = ("repeat", "start", "layers", "paths")

    def __init__(self, repeat: CRepeat, plan: "Plan") -> None:
        self.repeat = repeat
        sigs = [_signature(c) for c in repeat.copies]
        start = len(sigs) - 1
        while start > 0 and sigs[start - 1] == sigs[-1]:
            start -= 1
        self.start = max(start, 0)
        self.layers = tuple(plan.layers_of(c) for c in repeat.copies[self.start:])
        self.paths = frozenset(l.path for l in layers_in(repeat))

    @property
    def template(self) -> tuple[Layer, ...]:
        """The layers of the tail's first copy: what a scan body runs."""
        return self.layers[0]


class Plan:
    """``layer(clayer)`` and ``tail(crepeat)`` for one checked network; ``layers``: every
    ``Layer`` in execution order."""

    def __init__(self, checked: CheckedNet) -> None:
        self.graph: CSeq = checked.graph
        self._layers: dict[int, Layer] = {}
        for c in layers_in(self.graph):
            if c.kind not in LAYER_FNS:
                raise NotImplementedError(f"the JAX backend has no function for layer {c.kind} "
                                          "(mark one @implements in patternnet/backend/layers.py)")
            self._layers[id(c)] = Layer(c)
        self.layers: tuple[Layer, ...] = tuple(self._layers.values())
        self._tails = {id(n): Tail(n, self) for n in walk(self.graph) if isinstance(n, CRepeat)}

    def layer(self, c: CLayer) -> Layer:
        return self._layers[id(c)]

    def tail(self, r: CRepeat) -> Tail:
        return self._tails[id(r)]

    def layers_of(self, node: CNode) -> tuple[Layer, ...]:
        return tuple(self._layers[id(c)] for c in layers_in(node))

    def stacks(self) -> dict[int, Tail]:
        """``id(repeat) -> Tail`` for the repeats whose uniform tail the stacked layout
        stores stacked: the outermost ones only (a repeat inside a stacked tail is part of
        each stacked copy), with at least two tail copies and some parameters or state."""
        out: dict[int, Tail] = {}

        def stacked(node: CRepeat) -> tuple:
            t = self.tail(node)
            if len(t.layers) >= 2 and any(l.params or l.state for l in t.template):
                out[id(node)] = t
                return node.copies[:t.start]
            return node.copies
        visit_repeats(self.graph, stacked)
        return out

    def final_layer(self) -> Optional[Layer]:
        """The layer whose output is the network's output, if one is (not a `|` or `+`)."""
        node: CNode = self.graph
        while True:
            if isinstance(node, CLayer):
                return self.layer(node)
            if isinstance(node, CSeq) and node.items:
                node = node.items[-1]
            elif isinstance(node, CRepeat) and node.copies:
                node = node.copies[-1]
            else:
                return None


def visit_repeats(node: CNode, visit: Callable[[CRepeat], Sequence]) -> None:
    """Call ``visit`` on every repeat under ``node``, outer ones first; ``visit`` returns
    the copies whose own repeats are visited next (all of them, or fewer to prune)."""
    if isinstance(node, CRepeat):
        for copy in visit(node):
            visit_repeats(copy, visit)
    elif isinstance(node, CSeq):
        for item in node.items:
            visit_repeats(item, visit)
    elif isinstance(node, CBranches):
        for branch in node.branches:
            visit_repeats(branch, visit)


def _signature(node):
    """What must agree between two copies for one scan body to run both: the structure,
    and per layer its kind, arguments, shapes and counts (not its path)."""
    if isinstance(node, CLayer):
        return ("L", node.kind, repr(sorted(node.args)), node.in_shape, node.out_shape,
                node.params, node.state)
    if isinstance(node, CSeq):
        return ("S",) + tuple(_signature(i) for i in node.items)
    if isinstance(node, CRepeat):
        return ("R",) + tuple(_signature(c) for c in node.copies)
    return ("B", node.op) + tuple(_signature(b) for b in node.branches)
