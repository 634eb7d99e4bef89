"""What ``patternnet check`` found in each file, and its three output formats.

``FileReport`` is the data (one per file: the networks checked, every diagnostic, or the
one-line reason the file could not be read); ``text``, ``json_document`` and ``github``
render it.  The JSON schema is docs/check.schema.json (``"schema": 1``); a change that
removes or renames a field raises the version.
"""

from __future__ import annotations

from typing import Optional

from .record import field, record

#: the version of ``patternnet check --format json``'s document (docs/check.schema.json)
JSON_SCHEMA = 1


@record
class FileReport:
    path: str
    error: Optional[str] = None                          # unreadable, empty, ... (exit 2)
    diagnostics: tuple = ()                              # errors, warnings and notes
    results: tuple = ()                                  # CheckedNet / CheckedFamily
    sources: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def errors(self) -> int:
        return sum(d.severity == "error" for d in self.diagnostics)

    @property
    def code(self) -> int:
        """0 clean, 1 problems in the input, 2 not readable."""
        return 2 if self.error else 1 if self.errors else 0


# --- text ----------------------------------------------------------------------------


def text(report: FileReport, *, color: bool, quiet: bool, summary: Optional[str]) -> str:
    """Diagnostics first, then (when clean) one line per network, then the tables."""
    from .diagnostics import render

    if report.error:
        return ""
    shown = [d for d in report.diagnostics if d.severity == "error" or not quiet]
    parts = [render(d, report.sources, color) for d in shown]
    if not report.errors and not quiet:
        parts.append(f"{report.path}: ok\n" + "\n".join(_line(r) for r in report.results))
    if summary and not report.errors:
        from .checker import CheckedNet
        from .summary import FORMATS

        parts += [FORMATS[summary](r) for r in report.results if isinstance(r, CheckedNet)]
    return "\n\n".join(p for p in parts if p)


def _line(result) -> str:
    from .checker import CheckedNet
    from .rules import fmt_shape
    from .summary import human

    if isinstance(result, CheckedNet):
        return (f"  {result.label}: {fmt_shape(result.input_shape)} -> "
                f"{fmt_shape(result.output_shape)}, {result.params:,} params, "
                f"{human(result.macs)} MACs, {len(result.layers)} layers")
    ranges = ", ".join(f"{r.name} in {r.lo}..{r.hi}" for r in result.free)
    over = f"a family over {ranges}" if ranges else "its `?` choices"
    return f"  {result.label}: {over}: {len(result.members)} members, all ok"


# --- json ----------------------------------------------------------------------------


def json_document(reports: list[FileReport], exit_code: int, version: str) -> dict:
    counts = {s: sum(d.severity == s for r in reports for d in r.diagnostics)
              for s in ("error", "warning", "note")}
    return {
        "schema": JSON_SCHEMA,
        "tool": {"name": "patternnet", "version": version},
        "exit_code": exit_code,
        "totals": {"files": len(reports), "unreadable": sum(bool(r.error) for r in reports),
                   "networks": sum(len(r.results) for r in reports),
                   "errors": counts["error"], "warnings": counts["warning"],
                   "notes": counts["note"]},
        "files": [_file_dict(r) for r in reports],
    }


def _file_dict(report: FileReport) -> dict:
    return {"path": report.path, "ok": report.code == 0, "error": report.error,
            "diagnostics": [d.to_dict() for d in report.diagnostics],
            "networks": [_result_dict(r) for r in report.results]}


def _result_dict(result) -> dict:
    from .checker import CheckedNet
    from .summary import to_dict

    if isinstance(result, CheckedNet):
        d = to_dict(result)
        del d["schema"], d["notes"]  # the document's version; notes are in "diagnostics"
        return {"kind": "network", **d}
    return {"kind": "family", "name": result.name,
            "free": [{"name": r.name, "lo": r.lo, "hi": r.hi} for r in result.free],
            "members": [{"bindings": dict(m.bindings), "choices": list(m.choices),
                         "output_shape": list(m.net.output_shape), "params": m.net.params,
                         "state": m.net.totals.state, "macs": m.net.macs}
                        for m in result.members]}


# --- github --------------------------------------------------------------------------

#: GitHub's workflow-command levels per severity
_LEVELS = {"error": "error", "warning": "warning", "note": "notice"}


def github(report: FileReport) -> list[str]:
    """Workflow commands (``::error file=F,line=L,col=C,...::message``): GitHub shows
    them inline on the pull request's diff."""
    if report.error:
        return [f"::error file={_prop(report.path)},title=PatternNet::{_data(report.error)}"]
    out = []
    for d in report.diagnostics:
        props = {"file": report.path}
        if d.span is not None:
            s = d.span
            props.update(file=s.file if s.file and s.file != "<string>" else report.path,
                         line=s.line, col=s.col, endLine=s.end_line, endColumn=s.end_col)
        props["title"] = f"PatternNet {d.code}"
        body = d.message + "".join(f"\nnote: {n}" for n in d.notes)
        if d.help:
            body += f"\nhelp: {d.help}"
        head = ",".join(f"{k}={_prop(str(v))}" for k, v in props.items())
        out.append(f"::{_LEVELS.get(d.severity, 'error')} {head}::{_data(body)}")
    return out


def _data(s: str) -> str:
    # GitHub's escaping of a workflow command's message
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(s: str) -> str:
    # ... and of a property value, where ':' and ',' separate
    return _data(s).replace(":", "%3A").replace(",", "%2C")
