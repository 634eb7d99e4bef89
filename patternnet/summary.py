"""Summaries of a checked network: a text table (like torchinfo / Keras ``summary()``),
Markdown, CSV and a JSON-ready dict.  Pure formatting; no computation lives here."""

from __future__ import annotations

from typing import Any

from .checker import CheckedNet, CLayer
from .kinds.base import one, size
from .layers import LAYERS
from .rules import fmt_shape

__all__ = ["COLUMNS", "FORMATS", "SCHEMA_VERSION", "csv_text", "describe", "footer", "human",
           "markdown", "one", "rows", "size", "text", "to_dict"]

SCHEMA_VERSION = 1
COLUMNS = ("Layer", "Type", "Output", "Params", "MACs", "RF")


def describe(layer: CLayer) -> str:
    """The layer's type with its resolved arguments, e.g. ``CONV(64, 3x3, s=2, p=same)``,
    in its kind's own words (patternnet/kinds/)."""
    return LAYERS[layer.kind].describe(dict(layer.args))


def human(n: float, unit: str = "") -> str:
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {suffix}{unit}"
    return f"{n:g} {unit}".rstrip()


def _bytes(n: int) -> str:
    for scale, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= scale:
            return f"{n / scale:.2f} {suffix}"
    return f"{n} B"


def _rf(layer: CLayer) -> str:
    return one(layer.rf)


def rows(net: CheckedNet) -> list[tuple[str, ...]]:
    return [(l.path, describe(l), fmt_shape(l.out_shape), f"{l.params:,}",
             human(l.macs) if l.macs else "0", _rf(l)) for l in net.layers]


def footer(net: CheckedNet) -> list[str]:
    t = net.totals
    return [
        f"Trainable params: {t.params:,}",
        f"Non-trainable state: {t.state:,} (BN running statistics)",
        f"MACs: {t.macs:,} ({human(t.macs)}); FLOPs = 2 x MACs = {human(t.flops)}",
        f"Memory at batch 1, float32: params + state {_bytes(t.param_bytes)}, "
        f"activations {_bytes(t.activation_bytes)}",
    ]


def text(net: CheckedNet) -> str:
    body = rows(net)
    widths = [max(len(r[i]) for r in body + [COLUMNS]) for i in range(len(COLUMNS))]
    right = {3, 4, 5}

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    rule = "-" * len(line(COLUMNS))
    title = f"{net.label}: {fmt_shape(net.input_shape)} -> {fmt_shape(net.output_shape)}"
    if net.bindings:
        title += "  (" + ", ".join(f"{k}={v}" for k, v in net.bindings) + ")"
    out = [title, rule, line(COLUMNS), rule, *(line(r) for r in body), rule, *footer(net)]
    return "\n".join(out)


def markdown(net: CheckedNet) -> str:
    head = "| " + " | ".join(COLUMNS) + " |"
    sep = "|" + "|".join("---:" if i >= 3 else "---" for i in range(len(COLUMNS))) + "|"
    body = ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows(net)]
    return "\n".join([f"**{net.label}**", "", head, sep, *body, "",
                      *(f"- {f}" for f in footer(net))])


def csv_text(net: CheckedNet) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "type", "kind", "output", "params", "state", "macs", "rf", "jump"])
    for l in net.layers:
        w.writerow([l.path, describe(l), l.kind, fmt_shape(l.out_shape), l.params, l.state,
                    l.macs, _rf(l), one(l.jump)])
    return buf.getvalue()


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    return v


def to_dict(net: CheckedNet) -> dict:
    t = net.totals
    return {
        "schema": SCHEMA_VERSION,
        "name": net.name,
        "input_shape": list(net.input_shape),
        "output_shape": list(net.output_shape),
        "bindings": dict(net.bindings),
        "choices": list(net.choices),
        "totals": {"params": t.params, "state": t.state, "macs": t.macs, "flops": t.flops,
                   "activations": t.activations, "param_bytes": t.param_bytes,
                   "activation_bytes": t.activation_bytes},
        "layers": [{
            "path": l.path, "kind": l.kind, "type": describe(l),
            "args": {k: _jsonable(v) for k, v in l.args}, "given": list(l.given),
            "input_shape": list(l.in_shape), "output_shape": list(l.out_shape),
            "params": l.params, "state": l.state, "macs": l.macs,
            "receptive_field": list(l.rf), "effective_stride": list(l.jump),
            "notes": list(l.notes),
            "span": {"line": l.span.line, "col": l.span.col, "end_line": l.span.end_line,
                     "end_col": l.span.end_col},
        } for l in net.layers],
        "notes": [d.to_dict() for d in net.notes],
    }


FORMATS = {"text": text, "markdown": markdown, "csv": csv_text}
