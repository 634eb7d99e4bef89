"""The diagnostics index: one entry per code, for ``patternnet explain CODE`` and the docs.

The entries are data, in ``diagnostic_index.md`` beside this module (its head says the
format), shipped inside the package so that the light install (lark only) can read
them at run time.  This module parses them into frozen ``Entry`` records, runs an
entry's example through the pipeline as ``net.pn`` (what ``patternnet check`` would
print for it), and writes an entry for a terminal (``explain``) or the whole index as
Markdown (docs/language.md §13.2):

    python -m patternnet.explain --markdown     # the generated part of §13.2

tests/test_explain.py keeps the index and the code together: every code the package
emits has an entry and every entry's code is emitted; each example reports its code and
each fixed example does not; §13.2 is exactly this module's Markdown.

Nothing heavy is imported: the parser, resolver and checker only when an example runs.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Optional

from .record import record

INDEX = Path(__file__).with_name("diagnostic_index.md")
#: the name an example is saved under: what its rendered diagnostics show
EXAMPLE_FILE = "net.pn"
SEVERITIES = ("error", "warning", "note")
#: the code series, in order, as the docs group them
SERIES = (("E0", "reading files and usage"), ("E1", "syntax (parse)"),
          ("E2", "names, arguments and network selection (resolve)"),
          ("E3", "shapes (check)"), ("N3", "notes (check)"))

_CODE = re.compile(r"[EN]\d{3}")
_KEYS = ("title", "severity", "options", "fix-options", "untested", "plain")


@record
class Entry:
    code: str
    title: str
    severity: str
    why: str                         # Markdown: what it means and why
    fix: str                         # Markdown, after "Fix: "
    example: Optional[str] = None    # the erroneous program, saved as net.pn
    fixed: Optional[str] = None      # the same program, fixed
    options: tuple = ()              # command-line words the example runs under
    fix_options: tuple = ()
    untested: Optional[str] = None   # why there is no runnable example
    plain: Optional[str] = None      # why the docs show the example untested by test_docs

    @property
    def command(self) -> str:
        """The command that reports this example: ``patternnet check net.pn ...``."""
        return " ".join(("patternnet check", EXAMPLE_FILE) + self.options)

    @property
    def fix_command(self) -> str:
        return " ".join(("patternnet check", EXAMPLE_FILE) + self.fix_options)


class IndexFormatError(ValueError):
    """diagnostic_index.md does not follow its format (a bug in the data)."""


# --- reading the index ----------------------------------------------------------------


def load(path: Path = INDEX) -> tuple[Entry, ...]:
    """Every entry of the index, in the file's order."""
    text = path.read_text(encoding="utf-8")
    chunks = re.split(r"^## ", text, flags=re.M)[1:]
    return tuple(_entry(chunk) for chunk in chunks)


_CACHE: dict = {}


def entries() -> tuple[Entry, ...]:
    """The index, read once per process."""
    if "entries" not in _CACHE:
        _CACHE["entries"] = load()
    return _CACHE["entries"]


def by_code() -> dict[str, Entry]:
    return {e.code: e for e in entries()}


def _entry(chunk: str) -> Entry:
    head, _, body = chunk.partition("\n")
    code = head.strip()
    if not _CODE.fullmatch(code):
        raise IndexFormatError(f"`## {head}`: an entry's heading is its code, e.g. `## E304`")
    lines = body.strip("\n").split("\n")
    keys: dict[str, str] = {}
    while lines and lines[0].strip():
        key, sep, value = lines.pop(0).partition(": ")
        if not sep or key not in _KEYS or key in keys:
            raise IndexFormatError(f"{code}: `{key}` is not one of {', '.join(_KEYS)} "
                                   "(or is repeated)")
        keys[key] = value.strip()
    prose, blocks = _split("\n".join(lines))
    why, fix = _why_and_fix(code, prose)
    if "title" not in keys or keys.get("severity") not in SEVERITIES:
        raise IndexFormatError(f"{code}: needs a title and a severity ({', '.join(SEVERITIES)})")
    want = 0 if "untested" in keys else 2
    if len(blocks) != want:
        raise IndexFormatError(f"{code}: {len(blocks)} pn blocks; an entry has an example and its "
                          "fix, or none and says why (untested:)")
    return Entry(code, keys["title"], keys["severity"], why, fix,
                 blocks[0] if blocks else None, blocks[1] if blocks else None,
                 tuple(keys.get("options", "").split()),
                 tuple(keys.get("fix-options", "").split()),
                 keys.get("untested"), keys.get("plain"))


def _split(body: str) -> tuple[list[str], list[str]]:
    """The prose paragraphs (fences removed) and the ```pn blocks, each in order; the
    prose keeps a marker where a block stood, so the example and the fix are told apart."""
    prose: list[str] = []
    blocks: list[str] = []
    code: Optional[list[str]] = None   # the lines of the ```pn block being read
    for line in body.split("\n"):
        if code is None and line.startswith("```"):
            if line.strip() != "```pn":
                raise IndexFormatError(f"a ```{line[3:]} block: entries hold ```pn blocks only")
            code = []
        elif code is not None and line.strip() == "```":
            blocks.append("\n".join(code) + "\n")
            prose.append("\0")
            code = None
        elif code is not None:
            code.append(line)
        else:
            prose.append(line)
    return prose, blocks


def _why_and_fix(code: str, prose: list[str]) -> tuple[str, str]:
    text = "\n".join(l for l in prose if l != "\0")
    why, sep, fix = text.partition("\nFix: ")
    if not sep:
        raise IndexFormatError(f"{code}: no paragraph starts with `Fix: `")
    return _paragraphs(why), _paragraphs(fix)


def _paragraphs(text: str) -> str:
    return re.sub(r"\n{3,}", "\n\n", text.strip())


# --- running an example -----------------------------------------------------------------


def option_kwargs(words: tuple) -> dict:
    """Command-line words (``--net N``, ``-D a=b``, ``--input S``, ``--classes N``,
    ``--strict``) as ``patternnet.check``'s keyword arguments."""
    kw: dict = {}
    it = iter(words)
    for w in it:
        if w == "--strict":
            kw["strict"] = True
        elif w == "-D":
            name, _, value = next(it).partition("=")
            kw.setdefault("define", {})[name] = value
        elif w in ("--net", "--input", "--classes"):
            key = {"--net": "net", "--input": "input_shape", "--classes": "classes"}[w]
            value = next(it)
            kw[key] = int(value) if w == "--classes" and value.isdigit() else value
        else:
            raise IndexFormatError(f"unknown option `{w}` in an entry")
    return kw


@record
class Outcome:
    """What ``patternnet check`` reports for a program: its diagnostics (the error's, or
    the warnings and notes of a program that checks) and the text it prints for them."""
    codes: tuple
    severities: tuple
    text: str
    failed: bool


def run(program: str, options: tuple = ()) -> Outcome:
    """Check ``program`` saved as net.pn, as ``patternnet check net.pn OPTIONS`` would.
    A file or usage error (E0xx) is shown as the command shows it: one line."""
    from .diagnostics import PatternNetError, SourceError, render_all
    from .parser import parse_source
    from .pipeline import check
    from .source import Source

    try:
        result = check(parse_source(Source(EXAMPLE_FILE, program)), **option_kwargs(options))
    except SourceError as e:
        d = e.diagnostics
        text = "\n".join(f"patternnet: error: {x.message}" for x in d)
        return Outcome(tuple(x.code for x in d), tuple(x.severity for x in d), text, True)
    except PatternNetError as e:
        d = e.diagnostics
        return Outcome(tuple(x.code for x in d), tuple(x.severity for x in d), e.render(), True)
    nets = [m.net for m in result.members] if hasattr(result, "members") else [result]
    notes = tuple(d for n in nets if n is not None for d in n.notes)
    return Outcome(tuple(d.code for d in notes), tuple(d.severity for d in notes),
                   render_all(notes, {EXAMPLE_FILE: program}), False)


# --- writing an entry ------------------------------------------------------------------


def explain(entry: Entry) -> str:
    """One entry for a terminal: what the code means, the example and what PatternNet
    reports for it (run now, so it is what this version prints), and the fix."""
    out = [f"{entry.code} ({entry.severity}): {entry.title}", "", entry.why, ""]
    if entry.example is not None:
        outcome = run(entry.example, entry.options)
        out += [f"For example, this {EXAMPLE_FILE}:", "", _indent(entry.example), "",
                f"`{entry.command}` reports:", "", _indent(outcome.text), ""]
    out.append("Fix: " + entry.fix)
    if entry.fixed is not None:
        lead = "" if entry.fix_options == entry.options else f" (`{entry.fix_command}`)"
        out += ["", f"Fixed{lead}:", "", _indent(entry.fixed)]
    if "§" in entry.why + entry.fix:
        out += ["", "(§ numbers are sections of docs/language.md, the language reference.)"]
    return "\n".join(out).rstrip("\n") + "\n"


def listing() -> str:
    """Every code with its severity and title, one a line."""
    return "".join(f"{e.code}  {e.severity:<7}  {e.title}\n" for e in entries())


def _indent(text: str) -> str:
    return "\n".join(("    " + l) if l else "" for l in text.rstrip("\n").split("\n"))


def normalise(word: str) -> str:
    """``e304``, ``E304`` and ``304`` all name E304."""
    w = word.strip().upper()
    return "E" + w if w.isdigit() else w


def closest(word: str, n: int = 3) -> list[str]:
    """The codes nearest ``word``: of its letter by number, else by spelling."""
    codes = [e.code for e in entries()]
    w = normalise(word)
    if re.fullmatch(r"[A-Z]\d+", w):
        same = [c for c in codes if c[0] == w[0]] or codes
        return sorted(same, key=lambda c: (abs(int(c[1:]) - int(w[1:])), c))[:n]
    import difflib

    return difflib.get_close_matches(w, codes, n=n, cutoff=0.3)


# --- the docs: §13.2 -------------------------------------------------------------------

BEGIN = ("<!-- generated by `python -m patternnet.explain --markdown` from "
         "patternnet/diagnostic_index.md: edit that file, not this part -->")
END = "<!-- end of the generated index -->"


def markdown() -> str:
    """The whole index as docs/language.md §13.2 shows it, between its two markers: a
    table of every code, then each entry.  Examples are ``pn-error``/``pn-notes``
    blocks with what PatternNet prints for them (tests/test_docs.py runs them again),
    fixes ``pn`` blocks."""
    out = [BEGIN, "", "| code | severity | what it reports |", "| --- | --- | --- |"]
    out += [f"| [{e.code}](#{e.code.lower()}) | {e.severity} | {_cell(e.title)} |"
            for e in entries()]
    for prefix, what in SERIES:
        group = [e for e in entries() if e.code.startswith(prefix)]
        if group:
            out += ["", f"**{prefix}xx — {what}**"]
            for e in group:
                out += ["", *_markdown_entry(e)]
    return "\n".join(out + ["", END]) + "\n"


def _markdown_entry(e: Entry) -> list[str]:
    out = [f"#### {e.code}", "", f"**{e.title}** ({e.severity})", "", e.why, ""]
    if e.example is not None:
        outcome = run(e.example, e.options)
        if e.plain:
            out += [f"`{e.command}` on", "", _indent(e.example), "", "prints", "",
                    _indent(outcome.text), ""]
        else:
            kind = "pn-error" if outcome.failed else "pn-notes"
            info = " ".join((kind,) + outcome.codes + e.options)
            out += [f"```{info}", e.example.rstrip("\n"), "```", "",
                    "```text", outcome.text, "```", ""]
    out.append("**Fix:** " + e.fix)
    if e.fixed is not None:
        if e.plain:
            out += ["", f"`{e.fix_command}` checks", "", _indent(e.fixed)]
        else:
            out += ["", "```" + " ".join(("pn",) + e.fix_options), e.fixed.rstrip("\n"), "```"]
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def generated_part(doc: str) -> Optional[str]:
    """The generated index in ``doc`` (docs/language.md), markers included, or None."""
    i, j = doc.find(BEGIN), doc.find(END)
    return doc[i:j + len(END)] + "\n" if 0 <= i < j else None


def with_index(doc: str) -> str:
    """``doc`` with its generated index replaced by the current one."""
    old = generated_part(doc)
    if old is None:
        raise IndexFormatError("the document has no generated index (its two markers)")
    return doc.replace(old, markdown(), 1)


_USAGE = ("usage: python -m patternnet.explain --markdown | --update docs/language.md\n"
          "  --markdown  print the generated part of docs/language.md §13.2\n"
          "  --update    rewrite that part of the document in place\n"
          "(a code's entry: patternnet explain CODE)")


def main(argv: Optional[list] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--markdown"]:
        sys.stdout.write(markdown())
        return 0
    if len(argv) == 2 and argv[0] == "--update":
        from .atomic import write_atomic

        doc = Path(argv[1])
        write_atomic(str(doc), with_index(doc.read_text(encoding="utf-8")))
        return 0
    print(_USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
