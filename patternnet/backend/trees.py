"""Params and state as nested dicts keyed by the segments of the checker's layer paths:
layer ``stage2.bottleneck1.conv2`` lives at ``tree["stage2"]["bottleneck1"]["conv2"]``.

The lookups, inserts and removals every part of the backend uses on such trees (the
model, its stacked layout, export), with errors that name the layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp

from .types import PyTree

if TYPE_CHECKING:
    from .layers import Layer


def nest(flat: dict[str, Any]) -> dict:
    """``{"a.b": v}`` -> ``{"a": {"b": v}}``."""
    root: dict = {}
    for path, value in flat.items():
        insert(root, tuple(path.split(".")), value)
    return root


def entry(tree: PyTree, layer: Layer, what: str) -> PyTree:
    """The sub-tree of ``layer`` (a backend ``Layer``) in ``tree`` (its ``what``: "params"
    or "state"); a KeyError that names the layer and the likely cause when absent."""
    d = tree
    try:
        for k in layer.keys:
            d = d[k]
    except (KeyError, TypeError, IndexError):
        raise KeyError(f"{what} has no entry for layer {layer.path} ({layer.kind}): pass the "
                       f"{what} made by this model's init (a tree of the other layout: "
                       "convert it with model.stack or model.unstack)") from None
    return d


def insert(root: dict, keys: tuple, value: Any) -> None:
    d = root
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    d[keys[-1]] = value


def pop(root: dict, keys: tuple) -> Any:
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


def copy_dicts(tree: PyTree) -> PyTree:
    """The dicts of ``tree`` copied (the arrays shared): safe to insert into and pop."""
    return {k: copy_dicts(v) for k, v in tree.items()} if isinstance(tree, dict) else tree


def unstack(tree: PyTree, n: int, layer: Layer, what: str) -> list:
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
    return [jax.tree_util.tree_unflatten(treedef, [p[i] for p in parts]) for i in range(n)]


def stack(parts: list) -> PyTree:
    """Per-copy entries of one structure as one entry, copies along a new leading axis."""
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *parts)
