"""PatternNet: a language and compiler for ConvNet architectures.

    >>> import patternnet
    >>> prog = patternnet.parse("INPUT -> [[CONV -> RELU]*2 -> POOL?]*3 -> [FC -> RELU]*1 -> FC")

The pipeline is text -> parse -> resolve -> check -> backend; each stage is a module
of its own.  Nothing here imports jax: the checker path stays light, and
``compile`` imports the backend (and jax) only when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .diagnostics import (Diagnostic, ParseError, PatternNetError, ResolveError, ShapeError,
                          SourceError)

if TYPE_CHECKING:  # names for annotations only: importing patternnet stays light
    import os

    from .backend.export import Loaded
    from .backend.model import Model
    from .checker import CheckedNet as _CheckedNet
    from .pipeline import SourceLike
    from .training.loop import TrainResult

__version__ = "0.1.0"

# The compiler's names are imported on first use (PEP 562), so that ``patternnet.load``
# runs an export without importing the parser, resolver or checker.
_LAZY = {"parse": "parser", "Family": "resolver", "Network": "resolver", "resolve": "resolver",
         "CheckedFamily": "pipeline", "Member": "pipeline", "check": "pipeline",
         "expand": "pipeline", "CheckedNet": "checker", "CLayer": "checker"}


def __getattr__(name: str) -> Any:
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'patternnet' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module("." + where, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def configure_xla_cpu() -> str:
    """Apply PatternNet's XLA:CPU flags now (``patternnet/xla_cpu.py``, docs/backend.md):
    for a program that starts JAX itself before it calls ``patternnet.compile``.  Call it
    before the first JAX computation; returns what was done ("applied", "user's choice",
    ...).  ``compile``, ``train``, ``load`` and the command line call it themselves."""
    from .xla_cpu import configure
    return configure()


def compile(source_or_path: SourceLike | _CheckedNet, **kw: Any) -> Model:
    """Compile one network to a JAX ``Model`` (see ``patternnet.backend.compile``).

    Imports jax on first call; ``import patternnet`` alone does not."""
    from .backend import compile as c
    return c(source_or_path, **kw)


def train(source_or_path: SourceLike | _CheckedNet, **kw: Any) -> TrainResult:
    """Train one network (see ``patternnet.training.train``, docs/training.md): returns a
    ``TrainResult`` with the model, params, state and per-epoch history.

    Imports jax, numpy and the data loaders on first call; ``import patternnet`` does not."""
    from .training import train as t
    return t(source_or_path, **kw)


def load(path: str | os.PathLike[str]) -> Loaded:
    """Load a ``.pnx`` export (``Model.export``) as a callable ``Loaded`` (see
    ``patternnet.backend.export``).  Imports jax, not the parser or the checker."""
    from .backend.export import load as _load
    return _load(path)


__all__ = [
    "Diagnostic", "ParseError", "PatternNetError", "ResolveError", "ShapeError", "SourceError",
    "CheckedFamily", "CheckedNet", "CLayer", "Family", "Member", "Network",
    "check", "compile", "configure_xla_cpu", "expand", "load", "parse", "resolve", "train",
    "__version__",
]
