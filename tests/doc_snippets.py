"""Extract the code examples from the language documents, so tests can run them.

Two sources:

* docs/language.md, the language reference.  Every fenced block there carries an
  info string that says what it is:

  ``pn``
      a whole, valid program: it must parse, resolve and check without errors
      (warnings and notes are allowed).
  ``pn-fragment``
      a piece of a line, such as one layer expression: it must parse when written
      as ``INPUT -> <fragment>``.
  ``pn-error E105 [E103 ...]``
      a program that must fail; the codes are those of every diagnostic reported,
      in order (E1xx: when parsed, E2xx: when resolved, E3xx: when checked).  The
      ``text`` block right after it is the rendered output, kept exactly as the
      renderer prints it (a golden file, reviewed by eye).
  ``pn-notes N330 [E320 ...]``
      a valid program whose check reports exactly these warnings and notes, in
      order; the ``text`` block after it is their rendered output.
  ``text``
      only as such a golden, right after a ``pn-error`` or ``pn-notes`` block.
  ``python``
      run as it stands; its ``assert`` statements check what it claims.

  After the kind, program blocks may give the options a user would give on the
  command line: ``--net NAME``, ``-D name=value`` (repeatable), ``--input HxWxC``,
  ``--classes N`` and ``--strict``.

* /work/shared/LANGUAGE.md (``../shared/LANGUAGE.md`` from the repository root), the
  design draft.  Its examples are Markdown *indented* code blocks without info
  strings; ``indented_blocks`` finds them and the test classifies them.

Run ``python tests/doc_snippets.py --update`` to regenerate the golden ``text`` blocks
in docs/language.md from the real renderer after a deliberate change to a message.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "language.md"
DESIGN = REPO.parent / "shared" / "LANGUAGE.md"

#: the file name examples are parsed under; it is what the golden outputs show
EXAMPLE_FILE = "net.pn"

KINDS = ("pn", "pn-fragment", "pn-error", "pn-notes", "text", "python")
PROGRAM_KINDS = ("pn", "pn-error", "pn-notes")
CODED_KINDS = ("pn-error", "pn-notes")

_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})\s*(.*?)\s*$")
_CODE = re.compile(r"^[EWN]\d{3}$")


@dataclass
class Snippet:
    source: str                 # file name, for test ids and messages
    line: int                   # 1-based line of the opening fence (or first code line)
    info: str                   # the whole info string
    text: str                   # the code, fences removed, ending in "\n"
    kind: str = ""
    codes: tuple[str, ...] = ()  # pn-error, pn-notes: the expected codes, in order
    options: dict = field(default_factory=dict)  # net, define, input_shape, classes, strict
    golden: Optional["Snippet"] = None          # pn-error, pn-notes: the text block after it
    body_start: int = 0          # 0-based index of the first code line in the file
    body_end: int = 0            # 0-based index of the closing fence

    @property
    def id(self) -> str:
        return f"{self.source}:{self.line}"


class SnippetError(ValueError):
    """An example whose markup the tests cannot understand."""


def parse_info(info: str) -> tuple[str, tuple[str, ...], dict]:
    """(kind, codes, options) from an info string such as ``pn-error E207 --net c``."""
    words = info.split()
    if not words:
        raise SnippetError("a fenced block without an info string (say pn, pn-fragment, "
                           "pn-error CODE, text or python)")
    kind, rest = words[0], words[1:]
    if kind not in KINDS:
        raise SnippetError(f"unknown kind of block `{kind}` (expected one of {', '.join(KINDS)})")
    codes, options = [], {}
    i = 0
    while i < len(rest):
        w, arg = rest[i], (rest[i + 1] if i + 1 < len(rest) else None)
        program = kind in PROGRAM_KINDS
        if _CODE.match(w) and kind in CODED_KINDS:
            codes.append(w)
        elif w == "--net" and arg and program:
            options["net"], i = arg, i + 1
        elif w == "-D" and arg and "=" in arg and program:
            name, value = arg.split("=", 1)
            options.setdefault("define", {})[name] = value
            i += 1
        elif w == "--input" and arg and program:
            options["input_shape"], i = arg, i + 1
        elif w == "--classes" and arg and arg.isdigit() and program:
            options["classes"], i = int(arg), i + 1
        elif w == "--strict" and program:
            options["strict"] = True
        else:
            raise SnippetError(f"cannot understand `{w}` in the info string `{info}`")
        i += 1
    if kind in CODED_KINDS and not codes:
        raise SnippetError(f"`{info}`: a {kind} block names the codes it must produce")
    return kind, tuple(codes), options


def fenced_blocks(markdown: str, source: str = "docs/language.md") -> list[Snippet]:
    """Every fenced code block, classified, with each pn-error's golden attached."""
    lines = markdown.split("\n")
    blocks: list[Snippet] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = len(m.group(1)), m.group(2), m.group(3)
        j = i + 1
        while j < len(lines):
            c = re.match(r"^ {0,3}(`{3,}|~{3,})\s*$", lines[j])
            if c and c.group(1)[0] == fence[0] and len(c.group(1)) >= len(fence):
                break
            j += 1
        else:
            raise SnippetError(f"{source}:{i + 1}: the code block opened here is never closed")
        body = [l[indent:] if l[:indent].strip() == "" else l.lstrip() for l in lines[i + 1:j]]
        snip = Snippet(source, i + 1, info, "\n".join(body) + "\n", body_start=i + 1, body_end=j)
        try:
            snip.kind, snip.codes, snip.options = parse_info(info)
        except SnippetError as e:
            raise SnippetError(f"{source}:{i + 1}: {e}") from None
        blocks.append(snip)
        i = j + 1
    # attach goldens: a text block separated from its example by blank lines only
    for prev, cur in zip(blocks, blocks[1:]):
        if cur.kind != "text" or prev.kind not in CODED_KINDS:
            continue
        between = lines[prev.body_end + 1: cur.line - 1]
        if all(not l.strip() for l in between):
            prev.golden = cur
    return blocks


def _list_context(line: str) -> bool:
    return bool(re.match(r"^\s{0,3}([-*+]|\d+[.)])\s", line))


def indented_blocks(markdown: str, source: str = "LANGUAGE.md") -> list[Snippet]:
    """CommonMark indented code blocks (four spaces), outside fences and lists.

    A block starts after a blank line (it cannot interrupt a paragraph) with a line
    indented four or more spaces, and runs over blank lines while the next line is
    still indented.  Four-space lines inside a list item belong to the item.
    """
    lines = markdown.split("\n")
    out: list[Snippet] = []
    in_fence, in_list, prev_blank = False, False, True
    i = 0
    while i < len(lines):
        line = lines[i]
        if _FENCE.match(line):
            in_fence = not in_fence
            prev_blank = False
            i += 1
            continue
        if in_fence:
            i += 1
            continue
        if not line.strip():
            prev_blank = True
            i += 1
            continue
        if line.startswith("    ") and prev_blank and not in_list:
            start = i
            body = []
            while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
                body.append(lines[i][4:])
                i += 1
            while body and not body[-1].strip():
                body.pop()
            out.append(Snippet(source, start + 1, "", "\n".join(body) + "\n", kind="indented"))
            prev_blank = True
            continue
        if _list_context(line):
            in_list = True
        elif not line.startswith(" "):
            in_list = False
        prev_blank = False
        i += 1
    return out


# --- running examples -------------------------------------------------------------------

STAGES = ("parse", "resolve", "check")


def stage_of(code: str) -> str:
    """The stage that reports ``code``: E1xx parse, E2xx resolve, E3xx and notes check."""
    return {"E1": "parse", "E2": "resolve"}.get(code[:2], "check")


def run_program(text: str, stage: str = "check", net: Optional[str] = None,
                define: Optional[dict] = None, input_shape=None, classes=None,
                strict: bool = False):
    """Run ``text``, saved as net.pn, through the stages up to ``stage``; return the
    last stage's result or raise its ``PatternNetError``."""
    from patternnet.parser import parse

    program = parse(text, EXAMPLE_FILE)
    if stage == "parse":
        return program
    from patternnet.resolver import resolve

    resolved = resolve(program, net=net, define=define or None)
    if stage == "resolve":
        return resolved
    from patternnet import check

    return check(program, net=net, define=define or None, input_shape=input_shape,
                 classes=classes, strict=strict)


def expected_failure(snip: Snippet):
    """Run a pn-error example up to the stage of its codes; the error it raised, or None."""
    from patternnet.diagnostics import PatternNetError

    try:
        run_program(snip.text, stage_of(snip.codes[0]), **snip.options)
    except PatternNetError as e:
        return e
    return None


def reported_notes(snip: Snippet):
    """Check a pn-notes example: (its warnings and notes, the rendered text)."""
    from patternnet.diagnostics import render_all

    net = run_program(snip.text, "check", **snip.options)
    notes = tuple(getattr(net, "notes", ()))
    return notes, render_all(notes, {EXAMPLE_FILE: snip.text})


def rendered(snip: Snippet) -> str:
    """What PatternNet prints for a pn-error or pn-notes example."""
    if snip.kind == "pn-notes":
        return reported_notes(snip)[1]
    err = expected_failure(snip)
    if err is None:
        raise AssertionError(f"{snip.id}: the example did not fail")
    return err.render()


def update_goldens(path: Path = DOC) -> int:
    """Rewrite every example's golden text block with the real rendered output."""
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    edits = []
    for snip in fenced_blocks(text, str(path)):
        if snip.kind not in CODED_KINDS:
            continue
        try:
            out = rendered(snip).split("\n")
        except Exception as e:  # noqa: BLE001 -- say which example, then stop
            raise SystemExit(f"{snip.id}: {e}") from None
        if snip.golden is None:
            edits.append((snip.body_end + 1, snip.body_end + 1, ["", "```text", *out, "```"]))
        else:
            edits.append((snip.golden.body_start, snip.golden.body_end, out))
    for start, end, new in reversed(edits):
        lines[start:end] = new
    path.write_text("\n".join(lines), encoding="utf-8")
    return len(edits)


if __name__ == "__main__":
    if sys.argv[1:] == ["--update"]:
        sys.path.insert(0, str(REPO))
        print(f"updated {update_goldens()} rendered examples in {DOC.relative_to(REPO)}")
    else:
        print(__doc__)
