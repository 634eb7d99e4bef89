"""PatternNet: a language and compiler for ConvNet architectures.

    >>> import patternnet
    >>> prog = patternnet.parse("INPUT -> [[CONV -> RELU]*2 -> POOL?]*3 -> [FC -> RELU]*1 -> FC")

The pipeline is text -> parse -> resolve -> check -> backend; each stage is a module
of its own.  Nothing here imports jax: the checker path stays light.
"""

from .diagnostics import (Diagnostic, ParseError, PatternNetError, ResolveError, ShapeError,
                          SourceError)
from .parse import parse
from .resolve import Family, Network, resolve
from .api import CheckedFamily, Member, check, expand
from .check import CheckedNet, CLayer

__version__ = "0.1.0"

__all__ = [
    "Diagnostic", "ParseError", "PatternNetError", "ResolveError", "ShapeError", "SourceError",
    "CheckedFamily", "CheckedNet", "CLayer", "Family", "Member", "Network",
    "check", "expand", "parse", "resolve", "__version__",
]
