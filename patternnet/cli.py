"""The ``patternnet`` command.

Exit codes: 0 clean; 1 problems in the input (diagnostics printed); 2 usage or I/O
errors (one line, no traceback); 3 an internal error (a bug: please report it);
130 interrupted.  ``check`` and ``fmt`` never import jax or numpy.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from . import __version__

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _use_color(stream) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


class _Usage(Exception):
    """A usage or I/O problem: printed as one line, exit 2."""


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return n


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
    """Check every network of one file (or ``--net``); returns (exit code, report)."""
    from .api import CheckedFamily, check_resolved, parse_shape
    from .diagnostics import PatternNetError, SourceError
    from .parse import parse_source
    from .resolve import resolve, select_all
    from .source import read

    color = _use_color(sys.stdout)
    try:
        source = read(path)
        shape = parse_shape(args.input)
    except SourceError as e:
        raise _Usage(e.diagnostics[0].message) from None
    if not source.text.strip():
        raise _Usage(f"{path}: the file is empty; a .pn file holds at least one network, "
                     "e.g. INPUT -> CONV -> RELU -> FC")
    define = _parse_defines(args.define)
    try:
        program = parse_source(source)
    except PatternNetError as e:
        return EXIT_PROBLEMS, e.render(color=color)
    code, lines, problems, tables = EXIT_OK, [], [], []
    for name in [args.net] if args.net else select_all(program):
        try:
            result = check_resolved(resolve(program, net=name, define=define), program, shape,
                                    args.classes, args.strict)
        except PatternNetError as e:
            code = EXIT_PROBLEMS
            problems.append(e.render(color=color))
            continue
        if isinstance(result, CheckedFamily):
            lines.append(_family_line(result))
        else:
            lines.append(_net_line(result))
            if result.notes and not args.quiet:  # warnings and notes (dropped `?`, N331)
                from .diagnostics import render_all
                problems.append(render_all(result.notes, {program.file: program.text}, color))
            if args.summary:
                from .summary import FORMATS
                tables.append(FORMATS[args.summary](result))
    report = "\n\n".join(problems)
    if code == EXIT_OK and not args.quiet:
        report = "\n\n".join(x for x in (report, f"{path}: ok\n" + "\n".join(lines)) if x)
    if tables:
        report = "\n\n".join(x for x in (report, *tables) if x)
    return code, report


def _net_line(net) -> str:
    from .rules import fmt_shape
    from .summary import human

    return (f"  {net.label}: {fmt_shape(net.input_shape)} -> {fmt_shape(net.output_shape)}, "
            f"{net.params:,} params, {human(net.macs)} MACs, {len(net.layers)} layers")


def _family_line(fam) -> str:
    ranges = ", ".join(f"{r.name} in {r.lo}..{r.hi}" for r in fam.free)
    over = f"a family over {ranges}" if ranges else "its `?` choices"
    return f"  {fam.label}: {over}: {len(fam.members)} members, all ok"


def cmd_check(args) -> int:
    """Each file's report as soon as it is checked; an unreadable file is one line on
    stderr and the others are still checked."""
    worst, first = EXIT_OK, True
    for path in args.files:
        try:
            code, report = _check_file(path, args)
        except _Usage as e:
            print(f"patternnet: error: {e}", file=sys.stderr)
            worst = max(worst, EXIT_USAGE)
            continue
        worst = max(worst, code)
        if report:
            print(report if first else "\n" + report, flush=True)
            first = False
    return worst


# --- expand --------------------------------------------------------------------------


def cmd_expand(args) -> int:
    import json

    from .api import expand, parse_shape
    from .diagnostics import PatternNetError, SourceError
    from .parse import parse_source
    from .rules import fmt_shape
    from .source import read
    from .summary import human

    try:
        source = read(args.file)
        shape = parse_shape(args.input)
    except SourceError as e:
        raise _Usage(e.diagnostics[0].message) from None
    define = _parse_defines(args.define)
    try:
        fam = expand(parse_source(source), net=args.net, define=define, input_shape=shape,
                     classes=args.classes)
    except PatternNetError as e:
        print(e.render(color=_use_color(sys.stdout)))
        return EXIT_PROBLEMS
    if args.format == "json":
        print(json.dumps({"schema": 1, "file": args.file, "net": fam.name,
                          "free": [{"name": r.name, "lo": r.lo, "hi": r.hi} for r in fam.free],
                          "members": [_member_dict(m) for m in fam.members]}, indent=2))
    else:
        rows = [("member", "output", "params", "MACs", "status")]
        for m in fam.members:
            if m.ok:
                rows.append((m.label, fmt_shape(m.net.output_shape), f"{m.net.params:,}",
                             human(m.net.macs), "ok"))
            else:
                d = m.error.diagnostics[0]
                where = f" at {d.span.line}:{d.span.col}" if d.span else ""
                rows.append((m.label, "-", "-", "-", f"error[{d.code}]{where}: {d.message}"))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            print("  ".join(c.rjust(w) if 1 < i < 4 else c.ljust(w)
                            for i, (c, w) in enumerate(zip(r[:4], widths))) + "  " + r[4])
        failed = len(fam.failures)
        print(f"\n{len(fam.members)} members, {len(fam.members) - failed} ok, {failed} failing")
    return EXIT_PROBLEMS if fam.failures else EXIT_OK


def _member_dict(m) -> dict:
    d = {"bindings": dict(m.bindings), "choices": list(m.choices), "ok": m.ok}
    if m.ok:
        t = m.net.totals
        d.update(output_shape=list(m.net.output_shape), params=t.params, state=t.state,
                 macs=t.macs)
    else:
        d["diagnostics"] = [x.to_dict() for x in m.error.diagnostics]
    return d


# --- fmt -----------------------------------------------------------------------------


def cmd_fmt(args) -> int:
    """Format each file (``--explicit``: with every agreed default written in, see
    patternnet/explicit.py); ``--check`` and ``--diff`` change nothing and exit 1 when a
    file would change.  A file that does not parse (or, with ``--explicit``, check) gets
    its diagnostics and is left alone."""
    from .atomic import write_atomic
    from .diagnostics import PatternNetError, SourceError
    from .formatter import format_program, unified_diff
    from .parse import parse_source
    from .source import read

    color = _use_color(sys.stdout)
    worst, changed = EXIT_OK, []
    dry = args.check or args.diff
    for path in args.files:
        try:
            source = read(path)
        except SourceError as e:
            raise _Usage(e.diagnostics[0].message) from None
        try:
            program = parse_source(source)
            if args.explicit:
                from .explicit import make_explicit

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
            try:
                write_atomic(path, new)
            except OSError as e:
                raise _Usage(f"{path}: cannot write: {e.strerror or e}") from None
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


# --- draw ----------------------------------------------------------------------------


def cmd_draw(args) -> int:
    """Draw one network as an SVG diagram (patternnet/draw.py), written atomically, or
    to stdout with ``-o -``.  Diagnostics go to stderr, since stdout may be the picture.
    A family is not drawn whole: the message says which ``-D`` picks a member."""
    from .api import check_resolved, parse_shape
    from .atomic import write_atomic
    from .diagnostics import PatternNetError, SourceError
    from .draw import draw_svg
    from .parse import parse_source
    from .resolve import Family, resolve
    from .source import read

    try:
        source = read(args.file)
        shape = parse_shape(args.input)
    except SourceError as e:
        raise _Usage(e.diagnostics[0].message) from None
    if not source.text.strip():
        raise _Usage(f"{args.file}: the file is empty; a .pn file holds at least one network, "
                     "e.g. INPUT -> CONV -> RELU -> FC")
    define = _parse_defines(args.define)
    try:
        program = parse_source(source)
        resolved = resolve(program, net=args.net, define=define)
        if isinstance(resolved, Family):
            which = f"`{resolved.name}`" if resolved.name else "the default network"
            ranges = ", ".join(f"{r.name} in {r.lo}..{r.hi}" for r in resolved.free)
            pick = " ".join(f"-D {r.name}={r.hi}" for r in resolved.free)
            raise _Usage(f"{args.file}: {which} is a family over {ranges}; draw one member, "
                         f"e.g. {pick}")
        net = check_resolved(resolved, program, shape, args.classes)
    except PatternNetError as e:
        print(e.render(color=_use_color(sys.stderr)), file=sys.stderr)
        return EXIT_PROBLEMS
    svg = draw_svg(net, expand=args.expand, source=source.text)
    if args.output == "-":
        sys.stdout.write(svg)
        sys.stdout.flush()
        return EXIT_OK
    try:
        write_atomic(args.output, svg)
    except OSError as e:
        raise _Usage(f"{args.output}: cannot write: {e.strerror or e}") from None
    return EXIT_OK


# --- main ----------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (and exit 2), like every other error."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"patternnet: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="patternnet", description="A language and compiler for ConvNet architectures.",
        epilog="exit codes: 0 ok, 1 problems in the input, 2 usage or I/O error, "
               "3 internal error")
    p.add_argument("--version", action="version", version=f"patternnet {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    c = sub.add_parser("check", help="check .pn files: shapes, parameters, MACs; every problem")
    c.add_argument("files", nargs="+", metavar="FILE")
    c.add_argument("--net", help="check only this named network")
    c.add_argument("-D", dest="define", action="append", metavar="NAME=VALUE",
                   help="set a constant or fix a range (repeatable)")
    c.add_argument("--input", metavar="HxWxC",
                   help="the input shape for a bare INPUT (default 32x32x3); overrides the file's")
    c.add_argument("--classes", type=_positive, metavar="N",
                   help="units of a bare final FC (default 10)")
    c.add_argument("--strict", action="store_true",
                   help="lints become errors: uneven strides, pools that drop rows, "
                        "dropout before the output, RELU after RELU")
    c.add_argument("--summary", nargs="?", const="text", choices=("text", "markdown", "csv"),
                   help="print each network's layer table (text, markdown or csv)")
    c.add_argument("-q", "--quiet", action="store_true", help="print nothing when clean")
    c.set_defaults(func=cmd_check)

    x = sub.add_parser("expand", help="list the members of a family with params and MACs")
    x.add_argument("file", metavar="FILE")
    x.add_argument("--net", help="the network to expand")
    x.add_argument("-D", dest="define", action="append", metavar="NAME=VALUE",
                   help="fix a range or set a constant (repeatable)")
    x.add_argument("--input", metavar="HxWxC", help="the input shape for a bare INPUT")
    x.add_argument("--classes", type=_positive, metavar="N", help="units of a bare final FC")
    x.add_argument("--format", choices=("text", "json"), default="text")
    x.set_defaults(func=cmd_expand)

    f = sub.add_parser("fmt", help="format .pn files in place (canonical layout)")
    f.add_argument("files", nargs="+", metavar="FILE")
    f.add_argument("--check", action="store_true",
                   help="change nothing; exit 1 listing the files that would change")
    f.add_argument("--diff", action="store_true",
                   help="change nothing; print a unified diff of each change, exit 1 if any")
    f.add_argument("--explicit", action="store_true",
                   help="also write out every default argument (where every instantiation "
                        "of the layer agrees); the file must check")
    f.add_argument("-q", "--quiet", action="store_true", help="print nothing when clean")
    f.set_defaults(func=cmd_fmt)

    d = sub.add_parser("draw", help="draw a network as an SVG diagram")
    d.add_argument("file", metavar="FILE")
    d.add_argument("-o", "--output", required=True, metavar="OUT.svg",
                   help="the SVG file to write (atomically); - writes to stdout")
    d.add_argument("--net", help="the network to draw")
    d.add_argument("-D", dest="define", action="append", metavar="NAME=VALUE",
                   help="set a constant or fix a range (repeatable); a family needs one "
                        "value for each range")
    d.add_argument("--input", metavar="HxWxC", help="the input shape for a bare INPUT")
    d.add_argument("--classes", type=_positive, metavar="N", help="units of a bare final FC")
    d.add_argument("--expand", action="store_true",
                   help="draw every copy of each repeat (default: once, framed, marked xN)")
    d.set_defaults(func=cmd_draw)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    # A short-lived process that builds many small acyclic objects: the cyclic GC only
    # costs time here (it more than doubles a ResNet-152 check), so it stays off.
    import gc

    gc.disable()
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
            import traceback

            traceback.print_exc()
        return EXIT_INTERNAL
