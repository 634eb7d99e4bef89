"""``patternnet expand``: every member of a family, with its output shape, parameters,
MACs, or the error that member fails with."""

from __future__ import annotations

import argparse

from typing import TYPE_CHECKING

from .common import EXIT_OK, EXIT_PROBLEMS, net_options, one_file, print_problems

if TYPE_CHECKING:
    from ..pipeline import CheckedFamily, Member


def add(sub: argparse._SubParsersAction) -> None:
    x = sub.add_parser("expand", help="list the members of a family with params and MACs")
    x.add_argument("file", metavar="FILE")
    net_options(x, "the network to expand", "fix a range or set a constant (repeatable)")
    x.add_argument("--format", choices=("text", "json"), default="text")
    x.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from ..diagnostics import PatternNetError
    from ..parser import parse_source
    from ..pipeline import expand

    source, shape, define = one_file(args)
    try:
        fam = expand(parse_source(source), net=args.net, define=define, input_shape=shape,
                     classes=args.classes)
    except PatternNetError as e:
        return print_problems(e)
    if args.format == "json":
        print(json.dumps({"schema": 1, "file": args.file, "net": fam.name,
                          "free": [{"name": r.name, "lo": r.lo, "hi": r.hi} for r in fam.free],
                          "members": [member_dict(m) for m in fam.members]}, indent=2))
    else:
        print(table(fam))
    return EXIT_PROBLEMS if fam.failures else EXIT_OK


def table(fam: CheckedFamily) -> str:
    """The members as aligned text columns, and a count line."""
    from ..rules import fmt_shape
    from ..summary import human

    rows = [("member", "output", "params", "MACs", "status")]
    for m in fam.members:
        if m.net is not None:  # m.ok, written so that the type checker narrows m.net
            rows.append((m.label, fmt_shape(m.net.output_shape), f"{m.net.params:,}",
                         human(m.net.macs), "ok"))
        else:
            assert m.error is not None  # a member that is not ok carries its error
            d = m.error.diagnostics[0]
            where = f" at {d.span.line}:{d.span.col}" if d.span else ""
            rows.append((m.label, "-", "-", "-", f"error[{d.code}]{where}: {d.message}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.rjust(w) if 1 < i < 4 else c.ljust(w)
                       for i, (c, w) in enumerate(zip(r[:4], widths))) + "  " + r[4]
             for r in rows]
    failed = len(fam.failures)
    lines.append(f"\n{len(fam.members)} members, {len(fam.members) - failed} ok, {failed} failing")
    return "\n".join(lines)


def member_dict(m: Member) -> dict:
    d = {"bindings": dict(m.bindings), "choices": list(m.choices), "ok": m.ok}
    if m.net is not None:  # m.ok, written so that the type checker narrows m.net
        t = m.net.totals
        d.update(output_shape=list(m.net.output_shape), params=t.params, state=t.state,
                 macs=t.macs)
    else:
        assert m.error is not None  # a member that is not ok carries its error
        d["diagnostics"] = [x.to_dict() for x in m.error.diagnostics]
    return d
