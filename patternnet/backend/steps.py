"""Training's functions of a ``Model``: the objective, its gradient, and an optimizer
step for any optax ``GradientTransformation``.

    >>> step = steps.train_step(model, optax.adam(1e-3))
    >>> params, state, opt_state, loss = step(params, state, opt_state, x, labels, rng)

Each builder returns a pure function (``objective``, ``update``) or its jitted form
(``value_and_grad``, ``train_step``); ``Model``'s methods of the same names call these.
``patternnet.training`` builds its step from ``update``, so the library and the trainer
run one piece of code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import jax

from .losses import Loss, by_name

if TYPE_CHECKING:  # model.py imports this module; optax is the [train] extra's
    import optax

    from .model import Model


def objective(model: Model, loss: Loss = "cross_entropy", train: bool = True) -> Callable:
    """``f(params, state, x, labels, rng) -> (loss, (new_state, outputs))``, pure.

    ``loss``: "cross_entropy" (integer labels; the outputs taken as logits: a network
    ending in SOFTMAX is scored on that SOFTMAX's input, and ``outputs`` are those
    logits), "mse", or a callable ``loss(outputs, labels) -> scalar``."""
    fn, on_logits = by_name(loss)
    run = model.logits if on_logits else model.apply

    def f(params, state, x, labels, rng):
        y, new_state = run(params, state, x, train=train, rng=rng)
        return fn(y, labels), (new_state, y)
    return f


def value_and_grad(model: Model, loss: Loss = "cross_entropy", train: bool = True) -> Callable:
    """Jitted ``g(params, state, x, labels, rng) -> ((loss, new_state), grads)``."""
    f = objective(model, loss, train)

    def without_outputs(params, state, x, labels, rng):
        value, (new_state, _) = f(params, state, x, labels, rng)
        return value, new_state
    return jax.jit(jax.value_and_grad(without_outputs, has_aux=True))


def update(model: Model, optimizer: optax.GradientTransformation,
           loss: Loss = "cross_entropy") -> Callable:
    """``u(params, state, opt_state, x, labels, rng) -> (params, state, opt_state, loss,
    outputs)``, pure: one optimizer step in training mode (not jitted, so that a caller
    can add to it and jit or shard the whole)."""
    import optax

    grad_fn = jax.value_and_grad(objective(model, loss, True), has_aux=True)

    def u(params, state, opt_state, x, labels, rng):
        (value, (new_state, outputs)), grads = grad_fn(params, state, x, labels, rng)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new_state, opt_state, value, outputs
    return u


def train_step(model: Model, optimizer: optax.GradientTransformation,
               loss: Loss = "cross_entropy") -> Callable:
    """A jitted ``step(params, state, opt_state, x, labels, rng=None) -> (params, state,
    opt_state, loss)``; ``opt_state`` comes from ``optimizer.init(params)``."""
    u = update(model, optimizer, loss)

    def step(params, state, opt_state, x, labels, rng=None):
        return u(params, state, opt_state, x, labels, rng)[:4]
    return jax.jit(step)
