"""PatternNet: a language and compiler for ConvNet architectures.

    >>> import patternnet
    >>> prog = patternnet.parse("INPUT -> [[CONV -> RELU]*2 -> POOL?]*3 -> [FC -> RELU]*1 -> FC")

The pipeline is text -> parse -> resolve -> check -> backend; each stage is a module
of its own.  Nothing here imports jax: the checker path stays light, and
``compile`` imports the backend (and jax) only when called.
"""

from .diagnostics import (Diagnostic, ParseError, PatternNetError, ResolveError, ShapeError,
                          SourceError)
from .parse import parse
from .resolve import Family, Network, resolve
from .api import CheckedFamily, Member, check, expand
from .check import CheckedNet, CLayer

__version__ = "0.1.0"


def compile(source_or_path, **kw):
    """Compile one network to a JAX ``Model`` (see ``patternnet.backend.compile``).

    Imports jax on first call; ``import patternnet`` alone does not."""
    from .backend import compile as c
    return c(source_or_path, **kw)


__all__ = [
    "Diagnostic", "ParseError", "PatternNetError", "ResolveError", "ShapeError", "SourceError",
    "CheckedFamily", "CheckedNet", "CLayer", "Family", "Member", "Network",
    "check", "compile", "expand", "parse", "resolve", "__version__",
]
