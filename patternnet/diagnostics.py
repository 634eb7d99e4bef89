"""Diagnostics are data (code, severity, span, message, notes, help); rendering is here only.

Codes: E1xx syntax, E2xx names and resolution, E3xx shapes, E0xx files and usage.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

from .record import record
from .ast import Span


@record
class Frame:
    """One step of a block-call chain: block ``name`` was called at ``span``."""
    name: str
    span: Span


@record
class Diagnostic:
    code: str
    message: str
    span: Optional[Span] = None
    help: Optional[str] = None
    notes: tuple[str, ...] = ()
    severity: str = "error"  # "error", "warning" or "note"
    label: str = ""          # text printed after the carets
    trace: tuple[Frame, ...] = ()  # innermost call last

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"code": self.code, "severity": self.severity, "message": self.message,
             "help": self.help, "notes": list(self.notes), "label": self.label}
        if self.span is not None:
            s = self.span
            d["span"] = {"file": s.file, "line": s.line, "col": s.col,
                         "end_line": s.end_line, "end_col": s.end_col}
        else:
            d["span"] = None
        d["trace"] = [{"block": f.name, "file": f.span.file, "line": f.span.line,
                       "col": f.span.col} for f in self.trace]
        return d


class Fail(Exception):
    """One diagnostic that ends the current step of a stage (a statement's parse, a
    network's resolution, a walk or a `?` in the checker).  Internal: each stage catches
    it and raises its PatternNetError, so it never leaves the pipeline."""

    def __init__(self, diag: Diagnostic) -> None:
        super().__init__(diag.message)
        self.diag = diag


class PatternNetError(Exception):
    """Base of every error PatternNet raises for a problem in its input.

    Carries all diagnostics found (several independent errors are reported together)
    and the source texts needed to render them.
    """

    stage = "input"

    def __init__(self, diagnostics: Sequence[Diagnostic], sources: Optional[dict] = None) -> None:
        self.diagnostics = tuple(diagnostics)
        self.sources = dict(sources or {})
        first = self.diagnostics[0] if self.diagnostics else None
        where = f"{first.span}: " if first is not None and first.span is not None else ""
        head = f"{where}error[{first.code}]: {first.message}" if first else "error"
        more = len(self.diagnostics) - 1
        super().__init__(head + (f" (and {more} more)" if more > 0 else ""))

    def render(self, color: bool = False) -> str:
        return render_all(self.diagnostics, self.sources, color=color)


class SourceError(PatternNetError):
    """A file could not be read: missing, a directory, not UTF-8, too large (E0xx)."""
    stage = "source"


class ParseError(PatternNetError):
    """Syntax errors (E1xx)."""
    stage = "parse"


class ResolveError(PatternNetError):
    """Name, argument, block and network-selection errors (E2xx)."""
    stage = "resolve"


class ShapeError(PatternNetError):
    """Shape errors found by the checker (E3xx)."""
    stage = "check"


def did_you_mean(word: str, candidates: Iterable[str]) -> Optional[str]:
    """The closest candidate to ``word`` as a help sentence, or None."""
    import difflib  # only on the error path: it costs start-up time

    cands = list(candidates)
    upper = {c.upper(): c for c in cands}
    if word.upper() in upper and upper[word.upper()] != word:
        return f"did you mean `{upper[word.upper()]}`?"
    close = difflib.get_close_matches(word, cands, n=1, cutoff=0.6)
    if not close:
        close = difflib.get_close_matches(word.upper(), list(upper), n=1, cutoff=0.6)
        close = [upper[c] for c in close]
    return f"did you mean `{close[0]}`?" if close else None


# --- rendering -----------------------------------------------------------------------

#: the style of each part of a diagnostic, in rich's style language (used on a terminal)
STYLES = {"error": "bold red", "warning": "bold yellow", "note": "bold cyan",
          "bold": "bold", "blue": "bold blue"}


def render(d: Diagnostic, sources: Optional[dict] = None, color: bool = False) -> str:
    """One diagnostic, rustc style::

        error[E201]: undefined name `vgg_blok`
          --> nets/vgg.pn:3:20
           |
         3 | INPUT -> vgg_blok(64)
           |          ^^^^^^^^ not defined
           = help: did you mean `vgg_block`?

    With ``color``, the same text styled by rich (ANSI escapes for a terminal)."""
    lines = _lines(d, sources or {})
    if color:
        return styled(lines)
    return "\n".join("".join(text for text, _ in line) for line in lines)


def styled(lines: Sequence[Sequence[tuple[str, Optional[str]]]]) -> str:
    """Lines of (text, style name) segments as one ANSI-styled string, by rich (imported
    only here: colour is for terminals, and ``check`` in CI stays fast)."""
    import io

    from rich.console import Console
    from rich.text import Text

    out = Text()
    for i, line in enumerate(lines):
        if i:
            out.append("\n")
        for text, style in line:
            out.append(text, style=STYLES.get(style) if style else None)
    buf = io.StringIO()
    Console(file=buf, force_terminal=True, color_system="standard", width=1 << 16,
            highlight=False, markup=False, emoji=False).print(out, end="", soft_wrap=True)
    return buf.getvalue()


def _lines(d: Diagnostic, sources: dict) -> list[list[tuple[str, Optional[str]]]]:
    """The diagnostic as lines of (text, style name or None) segments."""
    Line = list[tuple[str, Optional[str]]]
    out: list[Line] = [[(f"{d.severity}[{d.code}]", d.severity), (": " + d.message, "bold")]]
    span = d.span
    gutter = len(str(span.end_line if span else 1)) + 1
    bar: tuple[str, Optional[str]] = (" " * gutter + "|", "blue")
    if span is not None:
        out.append([(" " * (gutter - 1) + "--> ", "blue"), (str(span), None)])
        text = sources.get(span.file)
        if text is not None:
            lines = text.splitlines() or [""]
            if 1 <= span.line <= len(lines):
                line = lines[span.line - 1].expandtabs(1)
                end = span.end_col if span.end_line == span.line else len(line) + 1
                line, col, end = _window(line, span.col, end)
                width = max(1, end - col)
                carets = " " * (col - 1) + "^" * width
                label = f" {d.label}" if d.label else ""
                out.append([bar])
                out.append([(f"{span.line:>{gutter - 1}} |", "blue"), (f" {line}", None)])
                out.append([bar, (" ", None), (carets + label, d.severity)])
    pad = " " * gutter
    frames: list[Optional[Frame]] = list(reversed(d.trace))
    if len(frames) > 6:  # innermost three, outermost two
        frames = frames[:3] + [None] + frames[-2:]
    for frame in frames:
        if frame is None:
            out.append([(f"{pad}= note: ... {len(d.trace) - 5} more block calls ...", None)])
        else:
            out.append([(f"{pad}= note: in block `{frame.name}`, called at {frame.span}", None)])
    for note in d.notes:
        out.append([(f"{pad}= note: {note}", None)])
    if d.help:
        out.append([(f"{pad}= ", None), ("help", "bold"), (f": {d.help}", None)])
    return out


def _window(line: str, col: int, end: int, width: int = 100) -> tuple[str, int, int]:
    """Cut a long source line to about ``width`` characters around the span."""
    if len(line) <= width:
        return line, col, end
    end = min(end, col + width - 20)
    start = max(0, col - 1 - 20)
    start = 0 if start <= 3 else start  # "..." for three characters or fewer hides nothing
    stop = min(len(line), max(end - 1 + 20, start + width))
    stop = len(line) if len(line) - stop <= 3 else stop
    head = "..." if start > 0 else ""
    tail = "..." if stop < len(line) else ""
    shift = start - len(head)
    return head + line[start:stop] + tail, col - shift, end - shift


def render_all(diags: Sequence[Diagnostic], sources: Optional[dict] = None,
               color: bool = False) -> str:
    return "\n\n".join(render(d, sources, color) for d in diags)
