"""What every command shares: exit codes, the one-line usage error, colour, the
options that pick a network, argument types, and reading the one file a command takes.

Light on purpose (argparse and os only): ``build_parser`` imports every command's
module, ``patternnet check`` included.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Callable, Optional, Sequence, TextIO

if TYPE_CHECKING:  # the commands import the compiler when they run, not at start-up
    from ..diagnostics import PatternNetError
    from ..source import Source

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class Usage(Exception):
    """A usage or I/O problem: printed as one line, exit 2."""


def use_color(stream: TextIO) -> bool:
    """Colour on a terminal, unless NO_COLOR or TERM=dumb says no, or rich (the
    ``[train]`` extra) is not installed: a light install prints plain text."""
    if not stream.isatty() or "NO_COLOR" in os.environ or os.environ.get("TERM") == "dumb":
        return False
    import importlib.util

    return importlib.util.find_spec("rich") is not None


def print_problems(error: PatternNetError, stream: TextIO = sys.stdout) -> int:
    """A ``PatternNetError``'s diagnostics, rendered as ``check`` renders them: exit 1."""
    print(error.render(color=use_color(stream)), file=stream)
    return EXIT_PROBLEMS


# --- argument types ------------------------------------------------------------------


def _number(text: str, cast: Callable, ok: Callable, expected: str):
    try:
        value = cast(text)
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive(text: str) -> int:
    return _number(text, int, lambda v: v >= 1, "a positive whole number")


def whole(text: str) -> int:
    return _number(text, int, lambda v: True, "a whole number")


def positive_float(text: str) -> float:
    return _number(text, float, lambda v: 0 < v < float("inf"), "a positive number")


def nonneg_float(text: str) -> float:
    return _number(text, float, lambda v: 0 <= v < float("inf"), "a number >= 0")


def parse_defines(items: Optional[Sequence[str]]) -> dict[str, str]:
    """``-D name=value`` items as a dict (the resolver parses the values)."""
    out = {}
    for item in items or ():
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            raise Usage(f"-D {item}: write -D name=value, e.g. -D n=3")
        out[name.strip()] = value.strip()
    return out


def net_options(p: argparse.ArgumentParser, net: str,
                define: str = "set a constant or fix a range (repeatable)", *,
                shape: bool = True, input: str = "the input shape for a bare INPUT",
                classes: str = "units of a bare final FC") -> None:
    """The options that pick a network (``--net``, ``-D``) and, with ``shape``, size its
    bare INPUT and final FC (``--input``, ``--classes``); each command words the help."""
    p.add_argument("--net", help=net)
    p.add_argument("-D", dest="define", action="append", metavar="NAME=VALUE", help=define)
    if shape:
        p.add_argument("--input", metavar="HxWxC", help=input)
        p.add_argument("--classes", type=positive, metavar="N", help=classes)


# --- files ---------------------------------------------------------------------------

_GLOB = frozenset("*?[")
#: directories never searched for .pn files (virtual environments, caches, VCS)
_SKIP_DIRS = frozenset({"node_modules", "__pycache__", "site-packages"})


def expand_paths(items: Sequence[str]) -> list[tuple[str, Optional[str]]]:
    """Files, directories (searched for ``*.pn``, hidden directories skipped) and globs
    (``nets/**/*.pn``, for shells that leave them alone) as (path, None), in order,
    without repeats; an item that yields no file as (item, why)."""
    import glob

    out, seen = [], set()
    for item in items:
        if os.path.isdir(item):
            found = sorted(_pn_files(item))
            why = f"{item}: a directory with no .pn files in it"
        elif any(c in _GLOB for c in item) and not os.path.exists(item):
            found = sorted(f for f in glob.glob(item, recursive=True) if os.path.isfile(f))
            why = f"{item}: no file matches this pattern"
        else:
            found, why = [item], None
        if not found:
            out.append((item, why))
        for f in found:
            if f not in seen:
                seen.add(f)
                out.append((f, None))
    return out


def _pn_files(top: str):
    for root, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS)
        yield from (os.path.join(root, f) for f in files if f.endswith(".pn"))


def empty_file(path: str) -> str:
    return (f"{path}: the file is empty; a .pn file holds at least one network, "
            "e.g. INPUT -> CONV -> RELU -> FC")


def one_file(args: argparse.Namespace,
             ) -> tuple[Source, Optional[tuple[int, ...]], dict[str, str]]:
    """``args.file`` read, and the ``--input`` shape and ``-D`` values parsed:
    ``(Source, shape, defines)``, or a usage error (one line, exit 2)."""
    from ..diagnostics import SourceError
    from ..pipeline import parse_shape
    from ..source import read

    try:
        source = read(args.file)
        shape = parse_shape(getattr(args, "input", None))
    except SourceError as e:
        raise Usage(e.diagnostics[0].message) from None
    if not source.text.strip():
        raise Usage(empty_file(args.file))
    return source, shape, parse_defines(args.define)


def write_or_usage(path: str, text: str) -> None:
    """Write a command's output file atomically; a failure is a usage error."""
    from ..atomic import write_atomic

    try:
        write_atomic(path, text)
    except OSError as e:
        raise Usage(f"{path}: cannot write: {e.strerror or e}") from None
