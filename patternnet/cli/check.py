"""``patternnet check``: shapes, parameters and MACs of every network in the files, and
every problem found; text, JSON (docs/check.schema.json) or GitHub annotations."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Optional

from .common import EXIT_OK, Usage, expand_paths, net_options, parse_defines, use_color

if TYPE_CHECKING:
    from ..report import FileReport


def add(sub: argparse._SubParsersAction) -> None:
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
    c.set_defaults(func=run)


def check_file(path: str, args: argparse.Namespace, shape: Optional[tuple[int, ...]],
               define: dict) -> FileReport:
    """Check every network of one file (or ``--net``) into a ``FileReport``."""
    from ..diagnostics import PatternNetError, SourceError
    from ..parser import parse_source
    from ..pipeline import check
    from ..report import FileReport
    from ..resolver import select_all
    from ..source import read
    from .common import empty_file

    try:
        source = read(path)
    except SourceError as e:
        return FileReport(path, error=e.diagnostics[0].message)
    if not source.text.strip():
        return FileReport(path, error=empty_file(path))
    sources = {source.name: source.text}
    try:
        program = parse_source(source)
    except PatternNetError as e:
        return FileReport(path, diagnostics=tuple(e.diagnostics), sources={**sources, **e.sources})
    diags: list = []
    results: list = []
    for name in [args.net] if args.net else select_all(program):
        try:
            result = check(program, net=name, define=define, input_shape=shape,
                           classes=args.classes, strict=args.strict)
        except PatternNetError as e:
            diags += e.diagnostics
            sources.update(e.sources)
            continue
        results.append(result)
        diags += getattr(result, "notes", ())  # warnings and notes: a dropped `?`, N331
    return FileReport(path, diagnostics=tuple(diags), results=tuple(results), sources=sources)


def run(args: argparse.Namespace) -> int:
    """Each file's report as soon as it is checked (text), or one document at the end
    (json); an unreadable file is one line on stderr and the others are still checked."""
    from .. import __version__
    from ..diagnostics import SourceError
    from ..pipeline import parse_shape
    from ..report import FileReport, github, text

    try:
        shape = parse_shape(args.input)
    except SourceError as e:
        raise Usage(e.diagnostics[0].message) from None
    define = parse_defines(args.define)
    color = args.format == "text" and use_color(sys.stdout)
    reports, first = [], True
    for path, why in expand_paths(args.files):
        report = FileReport(path, error=why) if why else check_file(path, args, shape, define)
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

        from ..report import json_document

        print(json.dumps(json_document(reports, worst, __version__), indent=2,
                         ensure_ascii=False))
    elif args.format == "github" and not args.quiet:
        nets = sum(len(r.results) for r in reports)
        errors = sum(r.errors for r in reports) + sum(bool(r.error) for r in reports)
        print(f"patternnet: {len(reports)} file{'s' * (len(reports) != 1)}, {nets} "
              f"network{'s' * (nets != 1)}, {errors} error{'s' * (errors != 1)}")
    return worst
