"""``patternnet explain CODE``: a diagnostic code's entry, as ``rustc --explain`` prints one.

The entries are patternnet/diagnostic_index.md (read by patternnet/explain.py); with no
code, every code and its title.  Light: the index is read only when the command runs.
"""

from __future__ import annotations

import argparse
import sys

from .common import EXIT_OK, Usage


def add(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("explain", help="explain a diagnostic code, e.g. E304 (no code: list "
                                       "them all)")
    e.add_argument("code", nargs="?", metavar="CODE",
                   help="a code such as E304 (e304 and 304 work too)")
    e.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the entry for ``args.code``, or the list of codes; an unknown code is a usage
    error (one line, exit 2) naming the closest codes."""
    from .. import explain

    if args.code is None:
        sys.stdout.write(explain.listing())
        return EXIT_OK
    entry = explain.by_code().get(explain.normalise(args.code))
    if entry is None:
        near = explain.closest(args.code)
        hint = (f"the closest: {', '.join(near)}; " if near else "")
        raise Usage(f"no diagnostic {args.code!r}: {hint}`patternnet explain` lists every code")
    sys.stdout.write(explain.explain(entry))
    return EXIT_OK
