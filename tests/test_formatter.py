"""The formatter: exact layouts for each rule, and the properties it promises for every
valid program (round trip up to spans, idempotence, no comment lost)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given

import strategies as S
from conftest import examples, slow_examples
from patternnet.formatter import format_program, format_source
from patternnet.parser import parse

ROOT = Path(__file__).resolve().parent.parent


def fmt(text: str) -> str:
    return format_source(text)


# --- spacing -------------------------------------------------------------------------


@pytest.mark.parametrize("source, expected", [
    ("x=2", "x = 2"),
    ("n in 0 .. 3", "n in 0..3"),
    ("blk( c , k = 2 ) = [ CONV( c , 3 , s = 2 ) -> RELU ] * k",
     "blk(c, k=2) = [CONV(c, 3, s=2) -> RELU]*k"),
    ("INPUT->( CONV|POOL )->( CONV+ID )", "INPUT -> (CONV | POOL) -> (CONV + ID)"),
    ("INPUT -> CONV * ( n-1 ) -> POOL ?", "INPUT -> CONV*(n - 1) -> POOL?"),
    ("INPUT -> CONV*2? -> POOL?*2 -> FC*n*2", "INPUT -> CONV*2? -> POOL?*2 -> FC*n*2"),
    ("x = 4 * c", "x = 4*c"),
    ("x = c//2", "x = c // 2"),
    ("x = a%b/c", "x = a % b / c"),
    ("x = - 1", "x = -1"),
    ("x = --n", "x = --n"),
    ("INPUT(224x224x3) -> CONV(p=( 1,2 ))", "INPUT(224x224x3) -> CONV(p=(1, 2))"),
    ("INPUT -> CONV(64, 3,)", "INPUT -> CONV(64, 3)"),
    ("INPUT -> CONV(64,\n   3, s=2,\n   bias=false)", "INPUT -> CONV(64, 3, s=2, bias=false)"),
    ("INPUT -> CONV(p = same, bias = true) -> POOL(p=valid)",
     "INPUT -> CONV(p=same, bias=true) -> POOL(p=valid)"),
])
def test_spacing(source, expected):
    assert fmt(source) == expected + "\n"


def test_floats_keep_their_text():
    assert fmt("INPUT -> BN(eps=1E-5) -> DROPOUT(0.50) -> LRN(alpha=1e-4)") == \
        "INPUT -> BN(eps=1E-5) -> DROPOUT(0.50) -> LRN(alpha=1e-4)\n"


def test_parentheses_are_kept_never_added():
    assert fmt("x = a + b*c") == "x = a + b*c\n"
    assert fmt("x = (a + b)*c") == "x = (a + b)*c\n"
    assert fmt("x = ((a))") == "x = ((a))\n"
    assert fmt("x=(a+b)*2//3") == "x = (a + b)*2 // 3\n"
    assert fmt("INPUT -> CONV(((2)))") == "INPUT -> CONV(((2)))\n"


def test_parentheses_around_one_chain_are_a_group():
    # `(a -> b)` and `[a -> b]` are the same AST node; brackets are the canonical spelling
    assert fmt("INPUT -> (CONV -> RELU)*2") == "INPUT -> [CONV -> RELU]*2\n"


def test_calls_with_and_without_parentheses():
    assert fmt("stem = RELU() -> head -> tail() -> CONV") == \
        "stem = RELU() -> head -> tail() -> CONV\n"
    assert fmt("f() = CONV") == "f() = CONV\n"


# --- blank lines and empty files -----------------------------------------------------


@pytest.mark.parametrize("source, expected", [
    ("x = 1\n\n\n\ny = 2\n", "x = 1\n\ny = 2\n"),
    ("\n\n  x = 1\r\ny = 2  \r\n\n\n", "x = 1\ny = 2\n"),
    ("x = 1", "x = 1\n"),
    ("", ""),
    ("\n\n  \n", ""),
    ("# only\n\n\n# two", "# only\n\n# two\n"),
    ("x = 1\n   \t\ny = 2", "x = 1\n\ny = 2\n"),
])
def test_blank_lines(source, expected):
    assert fmt(source) == expected


# --- comments ------------------------------------------------------------------------


@pytest.mark.parametrize("source, expected", [
    ("x = 2 # two", "x = 2  # two\n"),
    ("# head\nx = 1\n\n# about y\ny = 2  # two\n# end",
     "# head\nx = 1\n\n# about y\ny = 2  # two\n# end\n"),
    ("x = 1\n\n   # indented\n\n\ny = 2", "x = 1\n\n# indented\n\ny = 2\n"),
    # a comment inside a statement stays after its element and breaks the line; inside
    # brackets the bracket stays open, so that the comment keeps its place
    ("INPUT -> CONV  # first\n  -> RELU  # second\n  -> FC\n",
     "INPUT -> CONV  # first\n  -> RELU  # second\n  -> FC\n"),
    ("INPUT -> [CONV  # inner\n  -> RELU]*2 -> FC",
     "INPUT -> [CONV  # inner\n          -> RELU]*2 -> FC\n"),
    ("x = ([CONV -> RELU]*  # count\n  2)", "x = [[CONV -> RELU]*2]  # count\n"),
    ("x = (CONV -> BN  # main\n  + ID)  # residual",
     "x = (CONV -> BN  # main\n   + ID)  # residual\n"),
    ("INPUT\n  # note\n  -> FC", "INPUT  # note\n  -> FC\n"),
    ("x =  # why\n  INPUT -> FC", "x = INPUT  # why\n  -> FC\n"),
    ("INPUT -> CONV ->  # after the arrow\n  FC", "INPUT -> CONV  # after the arrow\n  -> FC\n"),
    ("INPUT -> CONV  # a\n  # b\n  -> FC", "INPUT -> CONV  # a\n  # b\n  -> FC\n"),
    # on the last element only one comment can trail; the others follow it
    ("x = [CONV  # a\n  # b\n  -> RELU]  # c", "x = [CONV  # a\n     # b\n     -> RELU]  # c\n"),
    ("x = CONV -> RELU  # a\n  # b", "x = CONV -> RELU  # a\n# b\n"),
    ("n in (0  # low\n  )..3", "n in (0)..3  # low\n"),
    ("x = 2 #no space\n#\n#  spaced ", "x = 2  #no space\n#\n#  spaced\n"),
    ("x = 2  # a -> b # c", "x = 2  # a -> b # c\n"),
])
def test_comments(source, expected):
    assert fmt(source) == expected


# --- long lines ----------------------------------------------------------------------


def test_a_chain_written_one_stage_per_line_stays_so():
    text = ("net = INPUT(32x32x3)\n"
            "  -> CONV(16, 3, p=1) -> RELU  # two on this line, as written\n"
            "  -> POOL\n"
            "  -> FC(10)\n")
    assert fmt(text) == text
    assert fmt(text.replace("\n  ->", " ->").replace("  # two on this line, as written", "")) \
        == "net = INPUT(32x32x3) -> CONV(16, 3, p=1) -> RELU -> POOL -> FC(10)\n"


def test_a_group_written_open_stays_open():
    text = ("res(c) = (CONV(c, 3, p=1) -> BN -> RELU\n"
            "          -> CONV(c, 3, p=1) -> BN\n"
            "        + ID) -> RELU\n")
    assert fmt(text) == text


def test_long_chain_breaks_before_arrows_greedily():
    source = ("INPUT(224x224x3) -> vgg_block(64, 2) -> vgg_block(128, 2) -> vgg_block(256, 3)"
              " -> vgg_block(512, 3) -> vgg_block(512, 3) -> [FC(4096) -> RELU -> DROPOUT]*2"
              " -> FC(1000)")
    assert fmt(source) == (
        "INPUT(224x224x3) -> vgg_block(64, 2) -> vgg_block(128, 2) -> vgg_block(256, 3)\n"
        "  -> vgg_block(512, 3) -> vgg_block(512, 3) -> [FC(4096) -> RELU -> DROPOUT]*2\n"
        "  -> FC(1000)\n")


def test_language_design_resnet_layout_is_canonical():
    text = (
        "bottleneck(c, s=1) = (CONV(c, 1, bias=false) -> BN -> RELU\n"
        "                      -> CONV(c, 3, s=s, p=1, bias=false) -> BN -> RELU\n"
        "                      -> CONV(4*c, 1, bias=false) -> BN\n"
        "                    + SKIP) -> RELU\n"
        "stage(c, n, s) = bottleneck(c, s) -> bottleneck(c)*(n - 1)\n"
        "resnet50 = INPUT(224x224x3) -> CONV(64, 7, s=2, p=3, bias=false) -> BN -> RELU\n"
        "  -> POOL(3, s=2, p=1) -> stage(64, 3, 1) -> stage(128, 4, 2) -> stage(256, 6, 2)\n"
        "  -> stage(512, 3, 2) -> GAP -> FC(1000)\n")
    assert fmt(text) == text
    assert fmt(re.sub(r"\n +", " ", text)) == text  # each statement from one line


def test_long_group_breaks_inside_its_brackets():
    source = ("features = [CONV(64, 3, s=1, p=same, bias=false) -> BN(eps=1e-5, momentum=0.1)"
              " -> RELU -> CONV(64, 3, s=1, p=same, bias=false) -> BN]*3 -> FC")
    assert fmt(source) == (
        "features = [CONV(64, 3, s=1, p=same, bias=false) -> BN(eps=1e-5, momentum=0.1) -> RELU\n"
        "            -> CONV(64, 3, s=1, p=same, bias=false) -> BN]*3 -> FC\n")


def test_long_concatenation_puts_each_branch_on_its_line():
    source = ("inception(c) = (CONV(c, 1) -> RELU | CONV(c // 2, 1) -> RELU -> CONV(c, 3) -> RELU"
              " | CONV(c // 8, 1) -> RELU -> CONV(c // 4, 5) -> RELU | POOL(3, s=1)"
              " -> CONV(c // 4, 1) -> RELU)")
    assert fmt(source) == (
        "inception(c) = (CONV(c, 1) -> RELU\n"
        "              | CONV(c // 2, 1) -> RELU -> CONV(c, 3) -> RELU\n"
        "              | CONV(c // 8, 1) -> RELU -> CONV(c // 4, 5) -> RELU\n"
        "              | POOL(3, s=1) -> CONV(c // 4, 1) -> RELU)\n")


def test_nested_groups_open_up_in_turn():
    source = ("x = INPUT -> [[CONV(64, 3, s=1, p=same, bias=false) -> BN -> RELU"
              " -> CONV(64, 3, s=1, p=same, bias=false) -> BN -> RELU]*2 -> POOL?]*3 -> FC")
    assert fmt(source) == (
        "x = INPUT -> [[CONV(64, 3, s=1, p=same, bias=false) -> BN -> RELU\n"
        "               -> CONV(64, 3, s=1, p=same, bias=false) -> BN -> RELU]*2 -> POOL?]*3\n"
        "  -> FC\n")


def test_group_far_right_starts_a_new_line_first():
    source = ("net = INPUT(224x224x3) -> CONV(64, 7, s=2, p=3, bias=false) -> BN -> RELU"
              " -> (CONV(64, 3, p=1, bias=false) -> BN -> RELU -> CONV(64, 3, p=1, bias=false)"
              " -> BN + SKIP) -> RELU")
    assert fmt(source) == (
        "net = INPUT(224x224x3) -> CONV(64, 7, s=2, p=3, bias=false) -> BN -> RELU\n"
        "  -> (CONV(64, 3, p=1, bias=false) -> BN -> RELU -> CONV(64, 3, p=1, bias=false) -> BN\n"
        "    + SKIP) -> RELU\n")


def test_unbreakable_element_overflows_on_its_own_line():
    layer = ("LRN(size=5, alpha=1e-4, beta=0.75, k=2, "
             "aaaa=1, bbbb=2, cccc=3, dddd=4, eeee=5, ffff=6)")
    assert fmt(f"x = INPUT -> {layer} -> FC") == f"x = INPUT\n  -> {layer}\n  -> FC\n"


def test_comment_forces_a_break_in_a_long_statement():
    source = ("net = INPUT(224x224x3) -> CONV(64, 7, s=2, p=3, bias=false)  # stem\n"
              " -> BN -> RELU -> POOL(3, s=2, p=1) -> stage(64, 3, 1) -> stage(128, 4, 2)"
              " -> stage(256, 6, 2) -> GAP -> FC(1000)")
    assert fmt(source) == (
        "net = INPUT(224x224x3) -> CONV(64, 7, s=2, p=3, bias=false)  # stem\n"
        "  -> BN -> RELU -> POOL(3, s=2, p=1) -> stage(64, 3, 1) -> stage(128, 4, 2)\n"
        "  -> stage(256, 6, 2) -> GAP -> FC(1000)\n")


def test_examples_round_trip():
    for path in sorted((ROOT / "examples").glob("*.pn")):
        text = path.read_text(encoding="utf-8")
        out = format_source(text, str(path))
        assert parse(out) == parse(text), path
        assert format_source(out) == out, path


def test_format_program_accepts_a_parsed_program():
    program = parse("INPUT->FC # c")
    assert format_program(program) == "INPUT -> FC  # c\n"


# --- properties ----------------------------------------------------------------------


def comment_texts(program) -> Counter:
    return Counter(c.text for c in program.comments)


def check_round_trip(source: str) -> None:
    program = parse(source)
    out = format_program(program)
    again = parse(out)
    assert again == program
    assert comment_texts(again) == comment_texts(program)


def check_idempotent(source: str) -> None:
    out = format_source(source)
    assert format_source(out) == out


def check_layout(source: str) -> None:
    out = format_source(source)
    lines = out.split("\n")
    assert out == "" or (out.endswith("\n") and not out.endswith("\n\n"))
    assert "\n\n\n" not in out and not out.startswith("\n")
    for line in lines:
        assert line == line.rstrip()
        code = line.split("#", 1)[0]
        assert "  " not in code.strip() and "\t" not in code, line


@examples(100)
@given(S.programs())
def test_round_trip(source):
    check_round_trip(source)


@examples(100)
@given(S.programs())
def test_idempotent(source):
    check_idempotent(source)


@examples(50)
@given(S.programs())
def test_layout(source):
    check_layout(source)


@pytest.mark.slow
@slow_examples(10_000)
@given(S.programs())
def test_format_properties_slow(source):
    check_round_trip(source)
    check_idempotent(source)
    check_layout(source)


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parent.parent / "examples")
                                        .glob("*.pn")), ids=lambda p: p.name)
def test_examples_are_in_the_canonical_layout(path):
    """`patternnet fmt --check examples/` passes: the examples are what fmt writes."""
    text = path.read_text(encoding="utf-8")
    assert format_source(text, str(path)) == text


def test_the_documented_hand_layout_is_canonical():
    """docs/language.md §15 shows a hand-laid file and says fmt leaves it alone."""
    doc = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    after = doc.split("Where the layout is the writer's choice", 1)[1]
    block = after.split("```pn\n", 1)[1].split("```", 1)[0]
    assert "is already in the canonical layout" in after.split("```", 2)[2][:80]
    assert fmt(block) == block
