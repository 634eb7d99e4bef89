"""Every example in the language documents runs, and does what the text says.

* docs/language.md (the reference): every fenced block is checked according to its
  info string (see tests/doc_snippets.py): ``pn`` programs parse, resolve and check,
  ``pn-fragment`` pieces parse as ``INPUT -> <fragment>``, ``pn-error`` programs fail
  with exactly the codes listed, ``pn-notes`` programs check with exactly the warnings
  and notes listed, and the ``text`` block after each of those is byte-for-byte what
  PatternNet prints (a golden file: regenerate with
  ``python tests/doc_snippets.py --update`` and review the diff).  The reference's
  tables are also compared with the code: the layer arguments with patternnet/layers.py,
  the limits with patternnet/limits.py, the diagnostic codes with every code the
  package can raise, the worked numbers with the checker.
* shared/LANGUAGE.md (the design draft, ``../shared`` from the repository root in CI):
  every indented code block parses, resolves and checks (every network in it).  The
  draft elides parts of some examples with ``-> ...``; those elisions are removed
  explicitly, and nothing else is.  Its rendered E301 example is compared with what the
  checker reports for that line: code, place, label and note.
"""

from __future__ import annotations

import ast as pyast
import re

import pytest

import patternnet
from patternnet import explain, limits
from patternnet.diagnostics import ParseError, PatternNetError, ResolveError, ShapeError
from patternnet.layers import CONTEXT, LAYERS
from patternnet.kinds import REQUIRED
from patternnet.parser import parse
from patternnet.resolver import select_all

from doc_snippets import (DESIGN, DOC, EXAMPLE_FILE, REPO, Snippet, SnippetError,
                          expected_failure, fenced_blocks, indented_blocks, reported_notes,
                          run_program, stage_of)

# --- collecting the examples --------------------------------------------------------

DOC_TEXT = DOC.read_text(encoding="utf-8")
try:
    BLOCKS = fenced_blocks(DOC_TEXT, "docs/language.md")
    MARKUP_ERROR = None
except SnippetError as e:  # reported by test_doc_markup, not as a collection crash
    BLOCKS, MARKUP_ERROR = [], str(e)


def _of(kind: str) -> list[Snippet]:
    return [b for b in BLOCKS if b.kind == kind]


def _ids(snippets):
    return [s.id for s in snippets]


PROGRAMS, FRAGMENTS, PYTHON = _of("pn"), _of("pn-fragment"), _of("python")
ERRORS, NOTES = _of("pn-error"), _of("pn-notes")
OUTPUTS = ERRORS + NOTES  # the examples whose rendered text the page shows

# Codes that have no tested example on the page, and why: the diagnostics index says
# (patternnet/diagnostic_index.md: `untested:` no example at all, `plain:` an example
# that tests/test_explain.py runs but this page shows as plain text).
NO_EXAMPLE = {e.code: e.untested or e.plain for e in explain.entries()
              if e.untested or e.plain}

# Examples that state the language correctly but hit a known bug; each is an xfail
# that must start failing (strict) once the bug is fixed, so the entry gets removed.
# Keyed by a line of the example.
KNOWN_BUGS: dict = {}



def test_doc_markup():
    assert MARKUP_ERROR is None, MARKUP_ERROR
    assert PROGRAMS and FRAGMENTS and ERRORS, "the reference lost its examples"


# --- docs/language.md: programs, fragments, errors ----------------------------------


def _program_ids(snippets):
    """Parameters for the examples, each known bug's example marked as a strict xfail."""
    out = []
    for s in snippets:
        bugs = [why for line, why in KNOWN_BUGS.items() if line in s.text.split("\n")]
        marks = [pytest.mark.xfail(reason=bugs[0], strict=True)] if bugs else []
        out.append(pytest.param(s, id=s.id, marks=marks))
    return out


@pytest.mark.parametrize("snip", _program_ids(PROGRAMS))
def test_doc_program(snip: Snippet):
    """A ``pn`` block is a valid program: it parses, resolves and checks without errors
    (warnings and notes are fine; a family checks every member)."""
    try:
        run_program(snip.text, "check", **snip.options)
    except PatternNetError as e:
        pytest.fail(f"{snip.id}: this example should be valid, but:\n{e.render()}")


@pytest.mark.parametrize("snip", PROGRAMS, ids=_ids(PROGRAMS))
def test_doc_program_resolves(snip: Snippet):
    """Resolving alone: a known checker bug must not hide a resolve regression."""
    try:
        run_program(snip.text, "resolve", **{k: v for k, v in snip.options.items()
                                             if k in ("net", "define")})
    except PatternNetError as e:
        pytest.fail(f"{snip.id}: this example should resolve, but:\n{e.render()}")


@pytest.mark.parametrize("snip", FRAGMENTS, ids=_ids(FRAGMENTS))
def test_doc_fragment(snip: Snippet):
    """A ``pn-fragment`` is a piece of a chain: it parses after ``INPUT ->``."""
    try:
        parse("INPUT -> " + snip.text, EXAMPLE_FILE)
    except PatternNetError as e:
        pytest.fail(f"{snip.id}: this fragment should parse, but:\n{e.render()}")


_ERROR_CLASS = {"parse": ParseError, "resolve": ResolveError, "check": ShapeError}


@pytest.mark.parametrize("snip", ERRORS, ids=_ids(ERRORS))
def test_doc_error_codes(snip: Snippet):
    """A ``pn-error`` block fails at its stage with exactly the codes listed, in order."""
    stages = {stage_of(c) for c in snip.codes}
    assert len(stages) == 1, f"{snip.id}: one example, one stage ({snip.codes})"
    err = expected_failure(snip)
    assert err is not None, f"{snip.id}: this example should fail with {snip.codes}"
    want = _ERROR_CLASS[stages.pop()]
    assert isinstance(err, want), (
        f"{snip.id}: expected a {want.__name__}, got:\n{err.render()}")
    got = tuple(d.code for d in err.diagnostics)
    assert got == snip.codes, f"{snip.id}: expected {snip.codes}, got {got}:\n{err.render()}"


@pytest.mark.parametrize("snip", NOTES, ids=_ids(NOTES))
def test_doc_notes_codes(snip: Snippet):
    """A ``pn-notes`` block checks, reporting exactly the warnings and notes listed."""
    notes, text = reported_notes(snip)
    got = tuple(d.code for d in notes)
    assert got == snip.codes, f"{snip.id}: expected {snip.codes}, got {got}:\n{text}"
    assert all(d.severity != "error" for d in notes), text


@pytest.mark.parametrize("snip", OUTPUTS, ids=_ids(OUTPUTS))
def test_doc_rendered_output(snip: Snippet):
    """The ``text`` block after an example is exactly what PatternNet prints for it."""
    assert snip.golden is not None, (
        f"{snip.id}: show the rendered output in a ```text block right after the example "
        "(python tests/doc_snippets.py --update writes it)")
    if snip.kind == "pn-notes":
        rendered = reported_notes(snip)[1]
    else:
        err = expected_failure(snip)
        assert err is not None, f"{snip.id}: this example should fail"
        rendered = err.render()
    golden = snip.golden.text[:-1]  # the extractor adds one final newline
    assert golden == rendered, (
        f"{snip.golden.id}: the shown output differs from what PatternNet prints; if the "
        "change is intended, run python tests/doc_snippets.py --update and review the diff")


def test_text_blocks_are_outputs():
    """A ``text`` block is only ever the output of the example right before it."""
    goldens = {id(s.golden) for s in OUTPUTS if s.golden is not None}
    orphans = [t.id for t in _of("text") if id(t) not in goldens]
    assert not orphans, f"text blocks that follow no pn-error/pn-notes example: {orphans}"


@pytest.mark.parametrize("snip", PYTHON, ids=_ids(PYTHON))
def test_doc_python(snip: Snippet, capsys):
    """A ``python`` block runs; its asserts check what the page says about the API."""
    code = compile(snip.text, snip.id, "exec")
    exec(code, {"__name__": "doc_example"})


# --- docs/language.md: tables against the code --------------------------------------


def _section(title_re: str) -> str:
    """The text of the section whose heading matches, up to the next heading."""
    m = re.search(r"^(#{2,4}) " + title_re + r".*$", DOC_TEXT, re.M)
    assert m, f"docs/language.md has no section matching {title_re!r}"
    level = len(m.group(1))
    rest = DOC_TEXT[m.end():]
    stop = re.search(r"^#{2,%d} " % level, rest, re.M)
    return rest[: stop.start()] if stop else rest


def _table_rows(text: str, header_first_cell: str) -> list[list[str]]:
    """Rows (as cell lists) of every table in ``text`` whose header starts so."""
    rows, in_table = [], False
    for line in text.split("\n"):
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if cells and cells[0] == header_first_cell:
            in_table = True
            continue
        if in_table and not set("".join(cells)) <= set("-: "):
            rows.append(cells)
    return rows


def _default_matches(cell: str, default) -> bool:
    if default is CONTEXT:
        return "network" in cell
    if default is REQUIRED:
        return cell == "required"
    if default is None:  # INPUT: from --input; POOL stride: the window; UPSAMPLE: the other
        return any(w in cell for w in ("window", "--input", "unless", "none"))
    if isinstance(default, bool):
        return cell == ("true" if default else "false")
    if isinstance(default, str):
        return cell == default
    try:
        return float(cell) == float(default)
    except ValueError:
        return False


def _arg_table(layer: str) -> list[list[str]]:
    """The argument table of ``layer`` in §9, found by how the chapter introduces one:
    a section of its own (``### 9.5 CONV``), else a line "`ELU` arguments:" or a
    bold ``**BN**`` paragraph in a shared section (so a new kind needs no entry here)."""
    if re.search(rf"^### 9\.\d+ {layer}\b", DOC_TEXT, re.M):  # up to another's **KIND**
        own = re.split(rf"\n\*\*(?!{layer}\*\*)[A-Z0-9]+\*\*", _section(rf"9\.\d+ {layer}\b"),
                       maxsplit=1)[0]
        return _table_rows(own, "argument")
    chapter = _section(r"9\. Layers")
    for marker, stop in ((f"`{layer}` arguments:", "arguments:"), (f"**{layer}**", "\n**")):
        if marker in chapter:
            text = chapter.split(marker, 1)[1].split(stop, 1)[0]
            return _table_rows(re.split(r"^#", text, maxsplit=1, flags=re.M)[0], "argument")
    raise AssertionError(f"docs/language.md §9 has no argument table for {layer}")


@pytest.mark.parametrize("name", sorted({s.name for s in LAYERS.values()}))
def test_layer_documented(name):
    """Each layer's arguments, aliases, positional order and defaults match layers.py."""
    spec = LAYERS[name]
    assert re.search(rf"`{name}`", _section(r"9\.3 Overview")), (
        f"{name} is missing from the overview table (9.3)")
    for alias in spec.aliases:
        assert re.search(rf"\|\s*`{name}`\s*\|\s*`{alias}`", _section(r"9\.3 Overview")), (
            f"the overview table does not give {alias} as an alias of {name}")
    if not spec.args:
        return
    rows = _arg_table(name)
    names = [re.findall(r"`([^`]+)`", r[0]) for r in rows]
    assert [n[0] for n in names] == [a.name for a in spec.args], (
        f"{name}: the argument table lists {[n[0] for n in names]}, "
        f"layers.py has {[a.name for a in spec.args]} (positional order matters)")
    for row, keys, arg in zip(rows, names, spec.args):
        assert tuple(keys[1:]) == arg.aliases, f"{name}.{arg.name}: aliases {keys[1:]}"
        assert _default_matches(row[2], arg.default), (
            f"{name}.{arg.name}: the table says the default is {row[2]!r}, "
            f"layers.py says {arg.default!r}")


def test_limits_documented():
    rows = _table_rows(_section(r"12\. Limits"), "limit")
    text = "\n".join(" | ".join(r) for r in rows)
    for key in dir(limits):
        if not key.startswith("MAX_"):
            continue
        value = getattr(limits, key)
        row = next((r for r in rows if f"`{key}`" in r[1]), None)
        assert row is not None, f"{key} is missing from the limits table:\n{text}"
        shown = "1 MiB" if key == "MAX_FILE_BYTES" and value == 1 << 20 else f"{value:,}"
        assert row[1].startswith(shown), f"{key} = {value:,}, but the table says {row[1]!r}"


def _codes_in_package() -> set[str]:
    """Every diagnostic code the package can raise: string constants like "E201"."""
    codes = set()
    for path in (REPO / "patternnet").rglob("*.py"):
        tree = pyast.parse(path.read_text(encoding="utf-8"))
        for node in pyast.walk(tree):
            if isinstance(node, pyast.Constant) and isinstance(node.value, str) \
                    and re.fullmatch(r"[EWN]\d{3}", node.value):
                codes.add(node.value)
    return codes


def _codes_in_table() -> set[str]:
    """The codes of 13.2's table (each a link to its entry: ``| [E304](#e304) |``)."""
    return set(re.findall(r"^\| \[([EWN]\d{3})\]\(#[ewn]\d{3}\) \|",
                          _section(r"13\.2 The codes"), re.M))


def test_every_code_documented():
    """A code the package raises is listed in 13.2 (and the table invents none)."""
    missing = sorted(_codes_in_package() - _codes_in_table())
    assert not missing, f"codes raised by the package but not documented in 13.2: {missing}"


def test_documented_codes_exist():
    invented = sorted(_codes_in_table() - _codes_in_package())
    assert not invented, f"codes documented in 13.2 that nothing raises: {invented}"


def test_every_code_has_an_example():
    shown = {c for s in OUTPUTS for c in s.codes}
    lacking = sorted(c for c in _codes_in_table() - shown - set(NO_EXAMPLE))
    assert not lacking, f"documented codes with no pn-error example: {lacking}"


# --- docs/language.md: worked numbers against the checker ----------------------------

SEED = "INPUT -> [[CONV -> RELU]*2 -> POOL?]*3 -> [FC -> RELU]*1 -> FC"


def _ints(cell: str) -> list[int]:
    return [int(x.replace(",", "")) for x in re.findall(r"\d[\d,]*", cell)]


def test_seed_table():
    """9.16's table of the seed pattern is what the checker computes, row by row."""
    rows = _table_rows(_section(r"9\.16 Defaults"), "layer")
    body = [r for r in rows if not r[0].startswith("**")]
    total = next(r for r in rows if r[0].startswith("**"))
    net = patternnet.check(parse(SEED + "\n", EXAMPLE_FILE))
    # one row per CONV/FC (with the activation after it) or POOL, in order
    shown = [l for l in net.layers if l.kind in ("CONV", "FC", "POOL")]
    assert len(body) == len(shown), "the seed table has the wrong number of rows"
    for row, layer in zip(body, shown):
        assert f"`{layer.kind}`" in row[0], f"{row} is not {layer.path}"
        assert _ints(row[1]) == list(layer.out_shape), f"{layer.path}: output {layer.out_shape}"
        if layer.kind != "POOL":
            assert _ints(row[2])[0] == layer.out_shape[-1], f"{layer.path}: filters/units"
        assert _ints(row[3]) == [layer.params], f"{layer.path}: {layer.params:,} parameters"
        assert _ints(row[4]) == [layer.macs], f"{layer.path}: {layer.macs:,} MACs"
    assert _ints(total[3]) == [net.params]
    assert _ints(total[4]) == [net.macs, net.totals.flops]


def test_spatial_examples():
    """10.1's worked examples: each layer on a WxWx16 input gives the output shown."""
    rows = _table_rows(_section(r"10\.1 Spatial sizes"), "layer")
    assert len(rows) >= 5
    for row in rows:
        layer = re.match(r"`([^`]+)`", row[0]).group(1)
        w, out = int(row[1]), _ints(row[3])[0]
        net = patternnet.check(parse(f"INPUT({w}x{w}x16) -> {layer}\n", EXAMPLE_FILE))
        assert net.output_shape[:2] == (out, out), f"{layer} on {w}: {net.output_shape}"


def test_counting_example():
    """10.3 and 10.4 count one small network by hand; the checker agrees."""
    snip = next(s for s in PROGRAMS
                if s.text == "INPUT(32x32x3) -> CONV(16) -> RELU -> POOL -> FC(10)\n")
    net = run_program(snip.text)
    conv, fc = (l for l in net.layers if l.params)
    prose = " ".join(DOC_TEXT[DOC_TEXT.index(snip.text):].split())
    assert f"has {conv.params:,} parameters in the convolution" in prose
    assert f"{fc.params:,} in the `FC`" in prose and f"{net.params:,} in all" in prose
    assert f"costs {conv.macs:,} MACs in the convolution and {fc.macs:,} in the `FC`" in prose
    assert f"{net.macs:,} MACs, or {net.totals.flops:,} FLOPs" in prose


def test_family_size():
    """8.4 says the seed family has 168 members."""
    snip = next(s for s in PROGRAMS if s.text.startswith("n in 0..3\nm in 1..3\nk in 0..2\n")
                and not s.options)
    fam = patternnet.expand(parse(snip.text, EXAMPLE_FILE))
    assert len(fam.members) == 168 and not fam.failures
    assert "= 168 members" in " ".join(_section(r"8\.4 Expanding").split())


# --- shared/LANGUAGE.md: the design draft's examples --------------------------------

if DESIGN.is_file():
    DESIGN_BLOCKS = indented_blocks(DESIGN.read_text(encoding="utf-8"), "LANGUAGE.md")
else:
    DESIGN_BLOCKS = []

needs_design = pytest.mark.skipif(
    not DESIGN.is_file(),
    reason=f"the design draft is not checked out at {DESIGN} (CI has it at ../shared)")

# The draft shortens some examples with "-> ..." (an elided rest of the chain), e.g.
# `vgg16 = INPUT(224x224x3) -> vgg_block(64) -> ...     # a named network`.  Exactly
# that is removed, before a comment or the end of the line; any other "..." stays and
# fails the parse, so a new kind of elision is noticed, not silently accepted.
_ELISION = re.compile(r"[ \t]*->[ \t]*\.\.\.(?=[ \t]*(#|$))", re.M)


def _design_programs():
    return [b for b in DESIGN_BLOCKS if not b.text.startswith(("error[", "warning["))]


def _design_outputs():
    return [b for b in DESIGN_BLOCKS if b.text.startswith(("error[", "warning["))]


@needs_design
def test_design_examples_found():
    programs = [b.text for b in _design_programs()]
    assert "INPUT -> [[CONV -> RELU]*2 -> POOL?]*3 -> [FC -> RELU]*1 -> FC\n" in programs, (
        "the seed line is not among the draft's examples: the extractor is broken")
    assert _design_outputs(), "the draft's rendered E301 example was not found"


@needs_design
@pytest.mark.parametrize("snip", _design_programs(), ids=_ids(_design_programs()))
def test_design_program(snip: Snippet):
    """Each of the draft's programs parses, resolves and checks: every network in it."""
    text = _ELISION.sub("", snip.text)
    try:
        program = parse(text, EXAMPLE_FILE)
        for name in select_all(program):
            patternnet.check(program, net=name)
    except PatternNetError as e:
        pytest.fail(f"{snip.id}: the draft's example fails:\n{e.render()}")


@needs_design
@pytest.mark.parametrize("snip", _design_outputs(), ids=_ids(_design_outputs()))
def test_design_rendered_error(snip: Snippet):
    """The draft's rendered error is what the checker reports for its source line.

    The draft's example is E301 (a shape error).  Its source line, placed on the line
    and in the file the example names, must fail with that code at that line and
    column, with the same caret label and the same notes.  The message and help are
    worded by the implementation (the draft's are a sketch), so they are not compared.
    """
    lines = snip.text.split("\n")
    head = re.match(r"(error|warning)\[(E\d{3})\]: ", lines[0])
    assert head, f"{snip.id}: no error[CODE] heading"
    loc = next(re.search(r"--> (\S+):(\d+):(\d+)", l) for l in lines if "-->" in l)
    file, line_no, col = loc.group(1), int(loc.group(2)), int(loc.group(3))
    src = next(l for l in lines if re.match(rf"\s*{line_no} \| ", l))
    gutter = src.index("| ") + 2
    code_line = src[gutter:]
    caret_line = next(l for l in lines if re.match(r"\s*\|\s*\^", l))
    carets = re.search(r"\^+", caret_line)
    assert carets.start() - gutter + 1 == col, f"{snip.id}: carets not under column {col}"
    label = caret_line[carets.end():].strip()
    notes = [l.split("= note: ", 1)[1] for l in lines if "= note: " in l]

    text = "\n" * (line_no - 1) + code_line + "\n"
    with pytest.raises(ShapeError) as info:
        patternnet.check(parse(text, file))
    d = info.value.diagnostics[0]
    assert d.code == head.group(2)
    assert (d.span.file, d.span.line, d.span.col) == (file, line_no, col)
    assert d.span.end_col - d.span.col == len(carets.group())
    assert d.label == label
    assert list(d.notes) == notes


def test_layer_names_list_every_kind_and_alias():
    """§9.15 names every layer kind, each alias in parentheses after its kind, and no
    other; §9.14 places every kind (activations as a group; INPUT is the input)."""
    names = _section(r"9\.15 Layer names").strip().split("\n\n", 1)[0]
    listed = re.findall(r"`([A-Z][A-Z0-9]*)`(?: \(`([A-Z][A-Z0-9]*)`\))?", names)
    kinds = {s.name: s for s in LAYERS.values()}
    assert [k for k, _ in listed] == list(dict.fromkeys(s.name for s in LAYERS.values()))
    for kind, alias in listed:
        assert (alias,) == kinds[kind].aliases[:1] or (not alias and not kinds[kind].aliases)
    where = _section(r"9\.14 Which inputs")
    for kind in kinds:
        assert f"`{kind}`" in where or kinds[kind].family in ("act", "io"), kind
