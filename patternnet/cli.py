"""The ``patternnet`` command.

Exit codes: 0 clean; 1 problems in the input (diagnostics printed); 2 usage or I/O
errors (one line, no traceback); 3 an internal error (a bug: please report it);
130 interrupted.  ``check`` and ``fmt`` never import jax or numpy.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import traceback
from typing import Optional, Sequence

from . import __version__

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _use_color(stream) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


class _Usage(Exception):
    """A usage or I/O problem: printed as one line, exit 2."""


def _parse_defines(items: Sequence[str]) -> dict:
    out = {}
    for item in items or ():
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            raise _Usage(f"-D {item}: write -D name=value, e.g. -D n=3")
        out[name.strip()] = value.strip()
    return out


# --- check ---------------------------------------------------------------------------


def _check_file(path: str, args) -> tuple[int, str]:
    """Check one file; returns (exit code, report)."""
    from .diagnostics import PatternNetError, SourceError
    from .parse import parse_source
    from .resolve import Family, Network, resolve, select_all
    from .source import read

    color = _use_color(sys.stdout)
    try:
        source = read(path)
    except SourceError as e:
        raise _Usage(e.diagnostics[0].message) from None
    if not source.text.strip():
        raise _Usage(f"{path}: the file is empty; a .pn file holds at least one network, "
                     "e.g. INPUT -> CONV -> RELU -> FC")
    try:
        program = parse_source(source)
        define = _parse_defines(args.define)
        names = [args.net] if args.net else select_all(program)
        lines = []
        for name in names:
            result = resolve(program, net=name, define=define)
            label = name or "default network"
            if isinstance(result, Family):
                lines.append(_family_line(label, result))
            else:
                lines.append(f"  {label}: {result.layer_count} layers")
    except PatternNetError as e:
        return EXIT_PROBLEMS, e.render(color=color)
    if args.quiet:
        return EXIT_OK, ""
    return EXIT_OK, f"{path}: ok\n" + "\n".join(lines)


def _family_line(label: str, family) -> str:
    from .diagnostics import ResolveError

    ranges = ", ".join(f"{r.name} in {r.lo}..{r.hi}" for r in family.free)
    failed = [b for b, m in family.members() if isinstance(m, ResolveError)]
    status = f", {len(failed)} fail to resolve" if failed else ""
    return f"  {label}: a family over {ranges} ({family.size} members{status})"


def cmd_check(args) -> int:
    worst, reports = EXIT_OK, []
    for path in args.files:
        code, report = _check_file(path, args)
        worst = max(worst, code)
        if report:
            reports.append(report)
    if reports:
        print("\n\n".join(reports))
    return worst


# --- fmt -----------------------------------------------------------------------------


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".pn-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        try:
            os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        except OSError:
            pass
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def cmd_fmt(args) -> int:
    from .diagnostics import PatternNetError, SourceError
    from .formatter import format_program
    from .parse import parse_source
    from .source import read

    color = _use_color(sys.stdout)
    worst, changed = EXIT_OK, []
    for path in args.files:
        try:
            source = read(path)
        except SourceError as e:
            raise _Usage(e.diagnostics[0].message) from None
        try:
            new = format_program(parse_source(source))
        except PatternNetError as e:
            print(e.render(color=color))
            worst = max(worst, EXIT_PROBLEMS)
            continue
        if new == source.text:
            continue
        changed.append(path)
        if not args.check:
            try:
                write_atomic(path, new)
            except OSError as e:
                raise _Usage(f"{path}: cannot write: {e.strerror or e}") from None
    if args.check:
        for path in changed:
            print(f"would reformat {path}")
        if changed:
            return max(worst, EXIT_PROBLEMS)
    elif changed and not args.quiet:
        for path in changed:
            print(f"reformatted {path}")
    return worst


# --- main ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="patternnet", description="A language and compiler for ConvNet architectures.",
        epilog="exit codes: 0 ok, 1 problems in the input, 2 usage or I/O error, "
               "3 internal error")
    p.add_argument("--version", action="version", version=f"patternnet {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    c = sub.add_parser("check", help="parse and resolve .pn files; print every problem found")
    c.add_argument("files", nargs="+", metavar="FILE")
    c.add_argument("--net", help="check only this named network")
    c.add_argument("-D", dest="define", action="append", metavar="NAME=VALUE",
                   help="set a constant or fix a range (repeatable)")
    c.add_argument("-q", "--quiet", action="store_true", help="print nothing when clean")
    c.set_defaults(func=cmd_check)

    f = sub.add_parser("fmt", help="format .pn files in place (canonical layout)")
    f.add_argument("files", nargs="+", metavar="FILE")
    f.add_argument("--check", action="store_true",
                   help="change nothing; exit 1 listing the files that would change")
    f.add_argument("-q", "--quiet", action="store_true", help="print nothing when clean")
    f.set_defaults(func=cmd_fmt)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except _Usage as e:
        print(f"patternnet: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except Exception:  # a bug in PatternNet, never an input mistake
        print("patternnet: internal error: this is a bug in PatternNet, not in your file; "
              "please report it with the file that triggered it"
              + ("" if args.debug else " (run with --debug for the traceback)"),
              file=sys.stderr)
        if args.debug:
            traceback.print_exc()
        return EXIT_INTERNAL
