"""Golden files for diagnostics: the exact text a user sees for each kind of mistake.

Each ``tests/golden/<name>.pn`` is a bad input and ``tests/golden/<name>.txt`` is the
exact output of ``PatternNetError.render(color=False)`` for it, with the file called
``golden/<name>.pn`` (a stable relative name).  The .pn is run through parse and
resolve.  Header comments at the top of a .pn set options:

    # define: n=3 size=224x224x3     (like -D n=3 -D size=224x224x3)
    # net: resnet50                  (like --net resnet50)

To regenerate the .txt files after an intended change of wording, run

    .venv/bin/python -m pytest tests/test_golden_diagnostics.py --update-goldens

(or ``PATTERNNET_UPDATE_GOLDEN=1``) and review the diff by eye: every message must say
where the problem is and how to fix it.  A .txt is never created or changed without
that option.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from patternnet.diagnostics import ParseError, PatternNetError, ResolveError
from patternnet.parser import parse
from patternnet.resolver import resolve

GOLDEN = Path(__file__).resolve().parent / "golden"
CASES = sorted(p.stem for p in GOLDEN.glob("*.pn"))

# Diagnostics that have no place in the file, so no "-->" line and no caret.
SPANLESS = {
    "e207_several_networks",   # the choice is missing, not wrong somewhere
    "e207_unknown_net",        # the --net value is wrong
    "e210_define_unknown_name",  # the -D value is wrong
}


def options(text: str) -> dict:
    """``# define:`` and ``# net:`` lines of the leading comment block."""
    opts: dict = {"define": {}, "net": None}
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        m = re.match(r"#\s*define:\s*(.*)$", line)
        if m:
            for item in re.split(r"[\s,]+", m.group(1).strip()):
                if item:
                    name, _, value = item.partition("=")
                    opts["define"][name] = value
        m = re.match(r"#\s*net:\s*(\S+)\s*$", line)
        if m:
            opts["net"] = m.group(1)
    return opts


def diagnose(name: str) -> PatternNetError:
    path = GOLDEN / f"{name}.pn"
    text = path.read_text(encoding="utf-8")
    opts = options(text)
    try:
        program = parse(text, f"golden/{name}.pn")
        resolve(program, net=opts["net"], define=opts["define"] or None)
    except PatternNetError as e:
        return e
    raise AssertionError(f"golden/{name}.pn resolved without an error")


@pytest.mark.parametrize("name", CASES)
def test_golden(name, golden):
    error = diagnose(name)
    golden(GOLDEN / f"{name}.txt", error.render(color=False) + "\n")


@pytest.mark.parametrize("name", CASES)
def test_golden_code_matches_the_file_name(name):
    """``e204_missing_argument.pn`` must produce E204 (first diagnostic)."""
    error = diagnose(name)
    m = re.match(r"e(\d{3})_", name)
    if m:
        assert error.diagnostics[0].code == f"E{m.group(1)}"
        expected_type = ParseError if m.group(1).startswith("1") else ResolveError
        assert isinstance(error, expected_type)


@pytest.mark.parametrize("name", CASES)
def test_golden_shows_place_caret_and_help(name):
    """Each diagnostic names file:line:col and shows that line with a caret under the span."""
    error = diagnose(name)
    lines = error.render(color=False).splitlines()
    source = (GOLDEN / f"{name}.pn").read_text(encoding="utf-8").splitlines()
    for d in error.diagnostics:
        assert d.help or d.notes or d.label, f"{d.code} gives no hint"
        if name in SPANLESS:
            assert d.span is None
            assert d.help, f"{d.code} without a place must at least say what to do"
            continue
        assert d.span is not None, d
        where = f"--> golden/{name}.pn:{d.span.line}:{d.span.col}"
        i = next(i for i, l in enumerate(lines) if l.strip() == where)
        source_line, caret_line = lines[i + 2], lines[i + 3]
        bar = source_line.index("|")
        assert source_line[:bar].strip() == str(d.span.line)
        assert caret_line[:bar].strip() == "" and caret_line[bar] == "|"
        shown = source_line[bar + 2:]
        carets = caret_line[bar + 2:]
        first = len(carets) - len(carets.lstrip(" "))
        assert carets[first] == "^"
        if shown.startswith("..."):   # a long line is cut around the span
            assert shown.strip(".") in source[d.span.line - 1]
        else:
            assert shown == source[d.span.line - 1].expandtabs(1)
            assert first == d.span.col - 1
            if d.span.end_line == d.span.line:
                width = len(carets[first:].split(" ")[0])
                assert width == max(1, d.span.end_col - d.span.col)


def test_every_pn_has_a_txt_and_back():
    txts = sorted(p.stem for p in GOLDEN.glob("*.txt"))
    assert txts == CASES


def test_golden_files_cover_the_codes():
    codes = set()
    for name in CASES:
        codes |= set(re.findall(r"^error\[(E\d+)\]", (GOLDEN / f"{name}.txt").read_text(),
                                re.M))
    required = {"E101", "E102", "E103", "E104", "E105", "E106", "E107", "E108", "E109", "E111",
                "E112", "E201", "E202", "E203", "E204", "E205", "E206", "E207", "E208", "E209",
                "E210", "E211", "E212", "E213", "E214"}
    assert required <= codes, sorted(required - codes)
    assert len(CASES) >= 20


def test_goldens_include_a_block_chain_and_several_errors():
    chains = [n for n in CASES if "= note: in block `" in (GOLDEN / f"{n}.txt").read_text()]
    assert len(chains) >= 2
    several = [n for n in CASES
               if (GOLDEN / f"{n}.txt").read_text().count("\nerror[") >= 2]
    assert "multiple_errors" in several


def test_header_options_are_read():
    assert options("# define: n=3, size=224x224x3\n# net: vgg\nINPUT\n") == {
        "define": {"n": "3", "size": "224x224x3"}, "net": "vgg"}
    assert options("INPUT\n# net: later\n") == {"define": {}, "net": None}


# --- known bugs in diagnostics -----------------------------------------------------------


@pytest.mark.parametrize("src, message, col", [
    ("INPUT -> CONV*\nINPUT -> FC\n", 'expected a repeat count after "*", found the end of '
     'the line', 15),
    ("INPUT -> CONV*\n", 'expected a repeat count after "*"', 15),
    ("n in 1..\nINPUT -> FC\n", 'after ".."', 9),
    ("x = 3 +\nINPUT -> FC\n", 'after "+"', 8),
])
def test_line_break_error_points_at_the_end_of_the_line(src, message, col):
    with pytest.raises(ParseError) as ei:
        parse(src, "t.pn")
    d = ei.value.diagnostics[0]
    assert d.code == "E101"
    assert (d.span.line, d.span.col) == (1, col)
    assert message in d.message


def test_error_at_the_end_of_the_file_points_after_the_last_token():
    """The same mistake at the very end of a file without a final newline reads well."""
    with pytest.raises(ParseError) as ei:
        parse("INPUT -> CONV*", "t.pn")
    d = ei.value.diagnostics[0]
    assert (d.code, d.span.line, d.span.col) == ("E101", 1, 15)
    assert d.message == 'expected a repeat count after "*", found the end of the line'


@pytest.mark.parametrize("src, op", [("x = 2 * -", "-"), ("x = 3 //", "//"),
                                     ("x = 3 %", "%"), ("x = -", "-")])
def test_a_missing_operand_says_what_arithmetic_needs(src, op):
    with pytest.raises(ParseError) as ei:
        parse(src + "\nINPUT -> FC\n", "t.pn")
    d = ei.value.diagnostics[0]
    assert d.code == "E101" and d.span.col == len(src) + 1
    assert d.message == f'expected a value after "{op}", found the end of the line'
    assert "`n - 1`" in d.help


def test_parameter_order_is_reported_once():
    with pytest.raises(ParseError) as ei:
        parse("b(c=1, k) = CONV\nINPUT -> b(1)\n", "t.pn")
    assert [d.code for d in ei.value.diagnostics] == ["E109"]


def test_unparenthesised_plus_in_a_block_suggests_parentheses():
    with pytest.raises(ParseError) as ei:
        parse("res = CONV(64) -> BN + ID\nINPUT -> res -> FC\n", "t.pn")
    diags = ei.value.diagnostics
    assert [d.code for d in diags] == ["E108"]
    assert "parentheses" in diags[0].help
