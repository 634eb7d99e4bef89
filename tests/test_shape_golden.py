"""Golden files for shape diagnostics: the exact text a user sees for each shape mistake.

Each ``tests/golden_shapes/<name>.pn`` is a network that fails the shape check and
``<name>.txt`` is the exact ``ShapeError.render(color=False)`` for it, with the file
called ``golden_shapes/<name>.pn``.  Header comments at the top of a .pn set options:

    # strict: true                   (like --strict)
    # net: resnet50                  (like --net resnet50)
    # define: n=3                    (like -D n=3)
    # input: 64x64x3                 (like --input 64x64x3)
    # classes: 100                   (like --classes 100)

To regenerate the .txt files after an intended change of wording, run

    .venv/bin/python -m pytest tests/test_shape_golden.py --update-goldens

(or ``PATTERNNET_UPDATE_GOLDEN=1``) and review the diff by eye.  A .txt is never
created or changed without that option.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from patternnet.pipeline import check
from patternnet.diagnostics import ShapeError
from patternnet.parser import parse

GOLDEN = Path(__file__).resolve().parent / "golden_shapes"
CASES = sorted(p.stem for p in GOLDEN.glob("*.pn"))


def options(text: str) -> dict:
    """The ``# key: value`` option lines of the leading comment block."""
    opts: dict = {"strict": False, "net": None, "define": None, "input_shape": None,
                  "classes": None}
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        m = re.match(r"#\s*(strict|net|define|input|classes):\s*(.*?)\s*$", line)
        if not m:
            continue
        key, value = m.groups()
        if key == "strict":
            opts["strict"] = value == "true"
        elif key == "net":
            opts["net"] = value
        elif key == "define":
            opts["define"] = dict(item.split("=", 1) for item in re.split(r"[\s,]+", value)
                                  if item)
        elif key == "input":
            opts["input_shape"] = value
        else:
            opts["classes"] = int(value)
    return opts


def diagnose(name: str) -> ShapeError:
    text = (GOLDEN / f"{name}.pn").read_text(encoding="utf-8")
    program = parse(text, f"golden_shapes/{name}.pn")
    try:
        check(program, **options(text))
    except ShapeError as e:
        return e
    raise AssertionError(f"golden_shapes/{name}.pn checked without a shape error")


@pytest.mark.parametrize("name", CASES)
def test_golden(name, golden):
    golden(GOLDEN / f"{name}.txt", diagnose(name).render(color=False) + "\n")


@pytest.mark.parametrize("name", CASES)
def test_code_matches_the_file_name(name):
    m = re.match(r"e(\d{3})_", name)
    assert m, "golden shape files are called eNNN_what.pn"
    assert diagnose(name).diagnostics[0].code == f"E{m.group(1)}"


@pytest.mark.parametrize("name", CASES)
def test_place_caret_and_hint(name):
    """Every diagnostic names file:line:col, shows that line with carets under the span,
    and gives a hint."""
    error = diagnose(name)
    lines = error.render(color=False).splitlines()
    source = (GOLDEN / f"{name}.pn").read_text(encoding="utf-8").splitlines()
    for d in error.diagnostics:
        assert d.help, f"{d.code} gives no help"
        assert d.span is not None
        where = f"--> golden_shapes/{name}.pn:{d.span.line}:{d.span.col}"
        i = next(i for i, l in enumerate(lines) if l.strip() == where)
        shown, carets = lines[i + 2], lines[i + 3]
        bar = shown.index("|")
        assert shown[bar + 2:] == source[d.span.line - 1]
        first = carets.index("^")
        assert first - (bar + 2) == d.span.col - 1
        assert carets[first:].split(" ")[0] == "^" * (d.span.end_col - d.span.col)


def test_every_pn_has_a_txt_and_back():
    assert sorted(p.stem for p in GOLDEN.glob("*.txt")) == CASES


def test_coverage():
    codes = {diagnose(name).diagnostics[0].code for name in CASES}
    assert {"E301", "E302", "E303", "E304", "E305", "E306", "E307",
            "E320", "E321", "E322", "E323"} <= codes
    assert len(CASES) >= 10


def test_the_documented_e301_example():
    text = (GOLDEN / "e301_copies.txt").read_text(encoding="utf-8")
    assert "error[E301]: POOL has no output" in text
    assert "--> golden_shapes/e301_copies.pn:3:53" in text
    assert "^^^^ in copy 3 of 4" in text
    assert "= note: copy 1: 32→28→14, copy 2: 14→10→5, copy 3: 5→1, then POOL" in text
    assert "= help: " in text


def test_block_chain_and_family_member():
    chain = (GOLDEN / "e301_block_chain.txt").read_text(encoding="utf-8")
    assert chain.count("= note: in block `") == 2
    member = (GOLDEN / "e301_family_member.txt").read_text(encoding="utf-8")
    assert "error[E301]: member n=4:" in member
    nested = (GOLDEN / "e301_repeat_in_block.txt").read_text(encoding="utf-8")
    # the caret names the innermost copy; a note places that repeat in the outer one
    assert "^ in copy 2 of 2\n" in nested
    assert "= note: the repeat at 2:12 is in copy 3 of 3 of the repeat at 3:19" in nested


def test_strict_lints_are_errors():
    for name in CASES:
        if "strict" in name:
            assert all(d.severity == "error" for d in diagnose(name).diagnostics)
            text = (GOLDEN / f"{name}.pn").read_text(encoding="utf-8")
            assert check(parse(text, name), **{**options(text), "strict": False}).notes


def test_header_options_are_read():
    assert options("# strict: true\n# net: a\n# define: n=3, k=1\n# input: 8x8x1\n"
                   "# classes: 7\nINPUT\n") == {
        "strict": True, "net": "a", "define": {"n": "3", "k": "1"}, "input_shape": "8x8x1",
        "classes": 7}
    assert options("INPUT\n# strict: true\n")["strict"] is False
