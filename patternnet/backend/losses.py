"""The built-in losses, and the precision they are computed in.

``cross_entropy`` takes integer labels and the outputs as logits; ``mse`` any targets of
the outputs' shape.  A loss given by name to ``steps.objective`` (and so to
``Model.value_and_grad`` and ``train_step``) is one of ``LOSSES``; a callable
``loss(outputs, labels) -> scalar`` is used as it is.
"""

from __future__ import annotations

from typing import Callable, Union

import jax
import jax.numpy as jnp

from .types import Array

LOSSES = ("cross_entropy", "mse")
#: a loss as the API takes it: a name in ``LOSSES``, or ``loss(outputs, labels) -> scalar``
Loss = Union[str, Callable[[Array, Array], Array]]


def loss_precision(y: Array) -> Array:
    """bfloat16 (or float16) outputs are cast to float32 for the loss; gradients flow
    back through the cast in the outputs' dtype.  float32/float64 are left as they are."""
    return y.astype(jnp.float32) if y.dtype in (jnp.bfloat16, jnp.float16) else y


def log_probs(logits: Array) -> Array:
    """Log-probabilities of ``logits`` along the last axis, in ``loss_precision``."""
    return jax.nn.log_softmax(loss_precision(logits), axis=-1)


def _check_labels(logits, labels):
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"cross_entropy needs integer class labels, got {labels.dtype}; "
                         "use loss='mse' or a callable for other targets")
    if labels.shape != logits.shape[:-1]:
        raise ValueError(f"cross_entropy: labels of shape {tuple(labels.shape)} do not match "
                         f"outputs of shape {tuple(logits.shape)} (expected "
                         f"{tuple(logits.shape[:-1])})")
    return labels


def cross_entropies(logits: Array, labels: Array) -> Array:
    """Softmax cross-entropy of each example: ``logits`` (N, C), integer labels (N,)."""
    labels = _check_labels(logits, labels)
    picked = jnp.take_along_axis(log_probs(logits), labels[..., None].astype(jnp.int32),
                                 axis=-1)
    return -picked[..., 0]


def cross_entropy(logits: Array, labels: Array) -> Array:
    """Mean softmax cross-entropy of ``logits`` (N, C) against integer labels (N,)."""
    return jnp.mean(cross_entropies(logits, labels))


def mse(outputs: Array, targets: Array) -> Array:
    """Mean over every element of (outputs - targets)^2; shapes must be equal."""
    targets = jnp.asarray(targets)
    if targets.shape != outputs.shape:
        raise ValueError(f"mse: targets of shape {tuple(targets.shape)} do not match outputs "
                         f"of shape {tuple(outputs.shape)}")
    outputs = loss_precision(outputs)
    return jnp.mean(jnp.square(outputs - targets.astype(outputs.dtype)))


def by_name(loss: Loss) -> tuple[Callable[[Array, Array], Array], bool]:
    """``(fn, on_logits)`` for a loss name or callable: ``on_logits`` when the loss takes
    logits, so that a network ending in SOFTMAX is scored on that SOFTMAX's input."""
    if isinstance(loss, str):
        if loss == "cross_entropy":
            return cross_entropy, True
        if loss == "mse":
            return mse, False
        raise ValueError(f"loss={loss!r}: expected one of {', '.join(LOSSES)} or a "
                         "callable loss(outputs, labels) -> scalar")
    if callable(loss):
        return loss, False
    raise TypeError(f"loss must be a name ({', '.join(LOSSES)}) or a callable")
