"""The ``patternnet`` command.

Exit codes: 0 clean; 1 problems in the input (diagnostics printed); 2 usage or I/O
errors (one line, no traceback); 3 an internal error (a bug: please report it);
130 interrupted.  ``check`` and ``fmt`` never import jax or numpy; ``train``, ``eval``
and ``predict`` live in ``train_cli.py``.
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


# --- paths ---------------------------------------------------------------------------

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


# --- check ---------------------------------------------------------------------------


def _check_file(path: str, args, shape, define: dict):
    """Check every network of one file (or ``--net``) into a ``FileReport``."""
    from .api import check_resolved
    from .diagnostics import PatternNetError, SourceError
    from .parse import parse_source
    from .report import FileReport
    from .resolve import resolve, select_all
    from .source import read

    try:
        source = read(path)
    except SourceError as e:
        return FileReport(path, error=e.diagnostics[0].message)
    if not source.text.strip():
        return FileReport(path, error=_empty(path))
    sources = {source.name: source.text}
    try:
        program = parse_source(source)
    except PatternNetError as e:
        return FileReport(path, diagnostics=tuple(e.diagnostics), sources={**sources, **e.sources})
    diags, results = [], []
    for name in [args.net] if args.net else select_all(program):
        try:
            result = check_resolved(resolve(program, net=name, define=define), program, shape,
                                    args.classes, args.strict)
        except PatternNetError as e:
            diags += e.diagnostics
            sources.update(e.sources)
            continue
        results.append(result)
        diags += getattr(result, "notes", ())  # warnings and notes: a dropped `?`, N331
    return FileReport(path, diagnostics=tuple(diags), results=tuple(results), sources=sources)


def cmd_check(args) -> int:
    """Each file's report as soon as it is checked (text), or one document at the end
    (json); an unreadable file is one line on stderr and the others are still checked."""
    from .api import parse_shape
    from .diagnostics import SourceError
    from .report import FileReport, github, text

    try:
        shape = parse_shape(args.input)
    except SourceError as e:
        raise _Usage(e.diagnostics[0].message) from None
    define = _parse_defines(args.define)
    color = args.format == "text" and _use_color(sys.stdout)
    reports, first = [], True
    for path, why in expand_paths(args.files):
        report = FileReport(path, error=why) if why else _check_file(path, args, shape, define)
        reports.append(report)
        if report.error:
            print(f"patternnet: error: {report.error}", file=sys.stderr, flush=True)
        if args.format == "text":
            out = text(report, color=color, quiet=args.quiet, summary=args.summary)
            if out:
                print(out if first else "\n" + out, flush=True)
                first = False
        elif args.format == "github":
            for line in github(report):
                print(line, flush=True)
    worst = max((r.code for r in reports), default=EXIT_OK)
    if args.format == "json":
        import json

        from .report import json_document

        print(json.dumps(json_document(reports, worst, __version__), indent=2,
                         ensure_ascii=False))
    elif args.format == "github" and not args.quiet:
        nets = sum(len(r.results) for r in reports)
        errors = sum(r.errors for r in reports) + sum(bool(r.error) for r in reports)
        print(f"patternnet: {len(reports)} file{'s' * (len(reports) != 1)}, {nets} "
              f"network{'s' * (nets != 1)}, {errors} error{'s' * (errors != 1)}")
    return worst


# --- one file, one network (compile, expand, draw) -----------------------------------


def _one_file(args):
    """``args.file`` read, and the ``--input`` shape and ``-D`` values parsed: a usage
    error (one line, exit 2) when any of them is wrong."""
    from .api import parse_shape
    from .diagnostics import SourceError
    from .source import read

    try:
        source = read(args.file)
        shape = parse_shape(args.input)
    except SourceError as e:
        raise _Usage(e.diagnostics[0].message) from None
    if not source.text.strip():
        raise _Usage(_empty(args.file))
    return source, shape, _parse_defines(args.define)


def _empty(path: str) -> str:
    return (f"{path}: the file is empty; a .pn file holds at least one network, "
            "e.g. INPUT -> CONV -> RELU -> FC")


# --- compile -------------------------------------------------------------------------


def _load_checked(args):
    """The one network ``args`` selects, checked (``compile``): (CheckedNet, program),
    or the exit code after printing the diagnostics."""
    from .api import check_resolved
    from .diagnostics import PatternNetError
    from .parse import parse_source
    from .resolve import Family, resolve

    source, shape, define = _one_file(args)
    try:
        program = parse_source(source)
        resolved = resolve(program, net=args.net, define=define)
        if isinstance(resolved, Family):
            from .backend.model import _family_error
            raise _family_error(resolved, program)
        return check_resolved(resolved, program, shape, args.classes, args.strict), program
    except PatternNetError as e:
        print(e.render(color=_use_color(sys.stdout)))
        return EXIT_PROBLEMS, None


def cmd_compile(args) -> int:
    """Check, compile with the JAX backend, time the compile of inference; print the
    summary (or the jaxpr / StableHLO); write the exported model atomically."""
    import time

    t0 = time.perf_counter()  # init's time below includes the check and JAX's start-up
    if args.ckpt:  # the trained network: the run's shapes, classes and dtype
        from .train_cli import _guarded, _restored

        restored = _guarded(_restored, args)
        if isinstance(restored, int):
            return restored
        model, params, state, _ = restored
        checked = model.checked
        import jax
    else:
        checked, _ = _load_checked(args)
        if isinstance(checked, int):
            return checked
        import jax

        if args.dtype == "float64":
            jax.config.update("jax_enable_x64", True)
        from .backend import Model

        model = Model(checked, dtype=args.dtype, layout=args.layout,
                      scan={"auto": "auto", "on": True, "off": False}[args.scan])
        params, state = model.init(args.seed)
    jax.block_until_ready((params, state))
    t1 = time.perf_counter()
    batch = args.batch or 1
    lowered = model.lower(params, state, batch)
    lowered.compile()
    t2 = time.perf_counter()
    ir = sys.stdout if args.emit != "summary" else None
    status = sys.stderr if ir else sys.stdout
    if args.emit == "summary":
        from .summary import text
        print(text(checked))
    elif args.emit == "jaxpr":
        x = jax.ShapeDtypeStruct((batch,) + tuple(model.input_shape), model.dtype)
        print(jax.make_jaxpr(model._forward_impl)(params, state, x))
    else:
        print(model.stablehlo(params, state, args.batch))
    backend = jax.default_backend()
    import numpy as np

    dtype = np.dtype(model.dtype).name
    print(f"compiled {checked.label}: forward at batch {batch}, {dtype}, on {backend}, "
          f"in {t2 - t1:.2f} s (init {t1 - t0:.2f} s, JAX start-up included)", file=status)
    if args.output:
        try:
            model.export(args.output, params, state, batch=args.batch)
        except OSError as e:
            raise _Usage(f"{args.output}: cannot write: {e.strerror or e}") from None
        size = os.path.getsize(args.output)
        which = f"batch {args.batch}" if args.batch else "any batch size"
        print(f"wrote {args.output} ({size / 1e6:.1f} MB; {which}; load it with "
              f"patternnet.load)", file=status)
    return EXIT_OK


# --- expand --------------------------------------------------------------------------


def cmd_expand(args) -> int:
    import json

    from .api import expand
    from .diagnostics import PatternNetError
    from .parse import parse_source
    from .rules import fmt_shape
    from .summary import human

    source, shape, define = _one_file(args)
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
    from .api import check_resolved
    from .atomic import write_atomic
    from .diagnostics import PatternNetError
    from .draw import draw_svg
    from .parse import parse_source
    from .resolve import Family, resolve

    source, shape, define = _one_file(args)
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


def net_options(p, net: str, define: str = "set a constant or fix a range (repeatable)",
                *, shape: bool = True, input: str = "the input shape for a bare INPUT",
                classes: str = "units of a bare final FC") -> None:
    """The options that pick a network (``--net``, ``-D``) and, with ``shape``, size its
    bare INPUT and final FC (``--input``, ``--classes``); each command words the help."""
    p.add_argument("--net", help=net)
    p.add_argument("-D", dest="define", action="append", metavar="NAME=VALUE", help=define)
    if shape:
        p.add_argument("--input", metavar="HxWxC", help=input)
        p.add_argument("--classes", type=_positive, metavar="N", help=classes)


def _add_check(sub) -> None:
    c = sub.add_parser("check", help="check .pn files: shapes, parameters, MACs; every problem")
    c.add_argument("files", nargs="+", metavar="PATH",
                   help="files, directories (searched for *.pn) or globs")
    net_options(c, "check only this named network",
                input="the input shape for a bare INPUT (default 32x32x3); overrides the file's",
                classes="units of a bare final FC (default 10)")
    c.add_argument("--strict", action="store_true",
                   help="lints become errors: uneven strides, pools that drop rows, "
                        "dropout before the output, RELU after RELU")
    c.add_argument("--summary", nargs="?", const="text", choices=("text", "markdown", "csv"),
                   help="print each network's layer table (text, markdown or csv)")
    c.add_argument("--format", choices=("text", "json", "github"), default="text",
                   help="text (default); json: one document, schema in docs/check.schema.json; "
                        "github: workflow-command annotations for pull requests")
    c.add_argument("-q", "--quiet", action="store_true",
                   help="print nothing when clean (errors only)")
    c.set_defaults(func=cmd_check)


def _add_compile(sub) -> None:
    k = sub.add_parser("compile", help="check and compile one network with JAX; export it")
    k.add_argument("file", metavar="FILE")
    net_options(k, "the network to use (when the file has several)")
    k.add_argument("--strict", action="store_true", help="lints become errors")
    k.add_argument("-o", "--output", metavar="MODEL.pnx",
                   help="write the exported model (jax.export; run it with patternnet.load)")
    k.add_argument("--emit", choices=("summary", "jaxpr", "stablehlo"), default="summary",
                   help="what to print: the layer table (default), or inference's jaxpr or "
                        "StableHLO (status lines then go to stderr)")
    k.add_argument("--batch", type=_positive, metavar="N",
                   help="a fixed batch size (default: the export takes any batch; the "
                        "timed compile uses 1)")
    k.add_argument("--dtype", choices=("float32", "bfloat16", "float64"), default="float32")
    k.add_argument("--seed", type=int, default=0, help="the init key (default 0)")
    k.add_argument("--ckpt", metavar="PATH",
                   help="use a training checkpoint's parameters (a run folder or its "
                        "checkpoint.npz; the run's shapes, classes and dtype)")
    k.add_argument("--scan", choices=("auto", "on", "off"), default="auto",
                   help="run uniform repeat copies as one lax.scan (docs/backend.md)")
    k.add_argument("--layout", choices=("per_copy", "stacked"), default="per_copy",
                   help="how params hold the copies of a repeat (docs/backend.md)")
    k.set_defaults(func=cmd_compile)


def _add_expand(sub) -> None:
    x = sub.add_parser("expand", help="list the members of a family with params and MACs")
    x.add_argument("file", metavar="FILE")
    net_options(x, "the network to expand", "fix a range or set a constant (repeatable)")
    x.add_argument("--format", choices=("text", "json"), default="text")
    x.set_defaults(func=cmd_expand)


def _add_fmt(sub) -> None:
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
    f.set_defaults(func=cmd_fmt)


def _add_draw(sub) -> None:
    d = sub.add_parser("draw", help="draw a network as an SVG diagram")
    d.add_argument("file", metavar="FILE")
    d.add_argument("-o", "--output", required=True, metavar="OUT.svg",
                   help="the SVG file to write (atomically); - writes to stdout")
    net_options(d, "the network to draw", "set a constant or fix a range (repeatable); a "
                "family needs one value for each range")
    d.add_argument("--expand", action="store_true",
                   help="draw every copy of each repeat (default: once, framed, marked xN)")
    d.set_defaults(func=cmd_draw)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="patternnet", description="A language and compiler for ConvNet architectures.",
        epilog="exit codes: 0 ok, 1 problems in the input, 2 usage or I/O error, "
               "3 internal error")
    p.add_argument("--version", action="version", version=f"patternnet {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_check(sub)
    _add_compile(sub)
    _add_expand(sub)
    _add_fmt(sub)
    _add_draw(sub)
    from .train_cli import add_commands  # train, eval, predict (jax imported only when run)
    add_commands(sub)
    return p


def _quit_on_ctrl_c():
    """Ctrl-C ends the command at once with 130 and no traceback.  A KeyboardInterrupt
    raised wherever Python happens to be can crash an extension module's import (jax's,
    seen as a segfault) or be swallowed and re-raised as another error by a library; a
    handler that exits cannot.  Files being written atomically are removed first (their
    targets are untouched).  ``train`` installs its own handler for its loop, which
    stops at a step boundary and checkpoints (patternnet/train.py)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        from .atomic import PENDING, discard

        for tmp in list(PENDING):
            discard(tmp)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(EXIT_INTERRUPTED)
    return signal.signal(signal.SIGINT, handler)


def main(argv: Optional[Sequence[str]] = None) -> int:
    # A short-lived process that builds many small acyclic objects: the cyclic GC only
    # costs time here (it more than doubles a ResNet-152 check), so it stays off.
    import gc

    gc.disable()
    previous = _quit_on_ctrl_c()
    try:
        return _run(argv)
    finally:
        if previous is not None:  # a caller in the same process gets its own back
            import signal

            signal.signal(signal.SIGINT, previous)


_JAX_COMMANDS = frozenset({"compile", "train", "eval", "predict"})


def _run(argv: Optional[Sequence[str]]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in _JAX_COMMANDS:  # before any of them starts JAX (xla_cpu.py)
        from .xla_cpu import configure

        configure()
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
