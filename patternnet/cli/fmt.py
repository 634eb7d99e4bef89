"""``patternnet fmt``: rewrite .pn files in the canonical layout, comments kept."""

from __future__ import annotations

import argparse
import sys

from .common import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, expand_paths, use_color, write_or_usage


def add(sub: argparse._SubParsersAction) -> None:
    f = sub.add_parser("fmt", help="format .pn files in place (canonical layout)")
    f.add_argument("files", nargs="+", metavar="PATH",
                   help="files, directories (searched for *.pn) or globs")
    f.add_argument("--check", action="store_true",
                   help="change nothing; exit 1 listing the files that would change")
    f.add_argument("--diff", action="store_true",
                   help="change nothing; print a unified diff of each change, exit 1 if any")
    f.add_argument("--explicit", action="store_true",
                   help="also write out every default argument (where every instantiation "
                        "of the layer agrees); the file must check")
    f.add_argument("-q", "--quiet", action="store_true", help="print nothing when clean")
    f.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Format each file (``--explicit``: with every agreed default written in, see
    patternnet/explicit.py); ``--check`` and ``--diff`` change nothing and exit 1 when a
    file would change.  A file that does not parse (or, with ``--explicit``, check) gets
    its diagnostics and is left alone."""
    from ..diagnostics import PatternNetError, SourceError
    from ..formatter import format_program, unified_diff
    from ..parser import parse_source
    from ..source import read

    color = use_color(sys.stdout)
    worst, changed = EXIT_OK, []
    dry = args.check or args.diff
    for path, why in expand_paths(args.files):
        if why is None:
            try:
                source = read(path)
            except SourceError as e:
                why = e.diagnostics[0].message
        if why:  # one line, and the other files are still done
            print(f"patternnet: error: {why}", file=sys.stderr)
            worst = EXIT_USAGE
            continue
        try:
            program = parse_source(source)
            if args.explicit:
                from ..explicit import make_explicit

                program = make_explicit(program)
            new = format_program(program)
        except PatternNetError as e:
            print(e.render(color=color))
            worst = max(worst, EXIT_PROBLEMS)
            continue
        if new == source.text:
            continue
        changed.append(path)
        if args.diff:
            sys.stdout.write(unified_diff(path, source.text, new))
        if not dry:
            write_or_usage(path, new)
    if dry:
        if args.check:
            for path in changed:
                print(f"would reformat {path}")
        if changed:
            return max(worst, EXIT_PROBLEMS)
    elif changed and not args.quiet:
        for path in changed:
            print(f"reformatted {path}")
    return worst
