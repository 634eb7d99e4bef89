"""``patternnet draw``: one network as an SVG diagram (patternnet/draw.py)."""

from __future__ import annotations

import argparse
import sys

from .common import EXIT_OK, Usage, net_options, one_file, print_problems, write_or_usage


def add(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("draw", help="draw a network as an SVG diagram")
    d.add_argument("file", metavar="FILE")
    d.add_argument("-o", "--output", required=True, metavar="OUT.svg",
                   help="the SVG file to write (atomically); - writes to stdout")
    net_options(d, "the network to draw", "set a constant or fix a range (repeatable); a "
                "family needs one value for each range")
    d.add_argument("--expand", action="store_true",
                   help="draw every copy of each repeat (default: once, framed, marked xN)")
    d.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Draw one network, written atomically, or to stdout with ``-o -``.  Diagnostics go
    to stderr, since stdout may be the picture.  A family is not drawn whole: the one
    line says which ``-D`` picks a member."""
    from ..diagnostics import PatternNetError
    from ..draw import draw_svg
    from ..parser import parse_source
    from ..pipeline import FamilyError, one_network

    source, shape, define = one_file(args)
    try:
        net = one_network(parse_source(source), net=args.net, define=define,
                          input_shape=shape, classes=args.classes, needs="draw")
    except FamilyError as e:
        raise Usage(e.one_line(args.file, "draw")) from None
    except PatternNetError as e:
        return print_problems(e, sys.stderr)
    svg = draw_svg(net, expand=args.expand, source=source.text)
    if args.output == "-":
        sys.stdout.write(svg)
        sys.stdout.flush()
        return EXIT_OK
    write_or_usage(args.output, svg)
    return EXIT_OK
