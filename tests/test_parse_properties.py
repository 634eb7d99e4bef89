"""The parser on any input: it answers with our own errors, well formed, and fast.

Whatever text comes in (random Unicode, random tokens of the language, valid programs
with characters or tokens deleted, inserted or swapped), ``parse`` either returns a
Program or raises PatternNetError whose every diagnostic has an ``Ennn`` code, a
message and, where it has a span, a line and column inside the text.  Anything else
escaping (an IndexError, a RecursionError, one of Lark's own exceptions) is a bug.

Inputs that do parse go through the formatter's round trip as well.

Each property has a quick version and a ``slow`` one (``pytest -m slow``).
"""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

import strategies as S
from conftest import examples, slow_examples
from patternnet.diagnostics import ParseError, PatternNetError
from patternnet.formatter import format_program
from patternnet.parser import parse

QUICK = examples(150)
SLOW = slow_examples(10_000)

ALPHABET = ("abcnxyzesk_CONVRELUPOLINTFCBSKD0123456789 \t\n\r\f#()[]->|+*?=,./%:{}\"'\\é\x00")
TOKENS = ("INPUT", "CONV", "RELU", "POOL", "FC", "BN", "SKIP", "ID", "CONVV", "Conv", "x", "n",
          "c", "blk", "in", "same", "valid", "true", "false", "->", "-", ">", "(", ")", "[",
          "]", "|", "+", "*", "?", "=", ",", "..", ".", "//", "/", "%", "0", "2", "007",
          "3x3", "224x224x3", "0.5", "1e-4", "1e", "99999999999999999999", "\n", "\r\n",
          " ", "  ", "\t", "# c\n", "#", "  -> ", "\n  -> ", "{", ":", ";", "é", "\x00")


def check(text: str) -> None:
    """Parsing ``text`` returns, or raises PatternNetError with well-formed diagnostics.

    Text that parses is a valid program from outside the strategies' reach, so the
    formatter's promises are checked on it too.
    """
    try:
        program = parse(text)
    except PatternNetError as e:
        check_diagnostics(e, text)
        return
    out = format_program(program)
    again = parse(out)
    assert again == program
    assert Counter(c.text for c in again.comments) == Counter(c.text for c in program.comments)
    assert format_program(again) == out


def check_diagnostics(e: PatternNetError, text: str) -> None:
    assert e.diagnostics
    lines = text.split("\n")
    for d in e.diagnostics:
        assert re.fullmatch(r"E\d\d\d", d.code), d
        assert d.message.strip(), d
        if d.span is not None:
            s = d.span
            assert 1 <= s.line <= len(lines), d
            assert 1 <= s.col <= len(lines[s.line - 1]) + 1, d
            assert (s.end_line, s.end_col) >= (s.line, s.col), d
    assert e.render()  # and rendering them does not fail either


# --- inputs --------------------------------------------------------------------------

alphabet_text = st.text(alphabet=ALPHABET, max_size=80)
token_text = st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)
spaced_token_text = st.lists(st.sampled_from(TOKENS), max_size=40).map(" ".join)

_TOKEN_RE = re.compile(r"\s+|#[^\n]*|[A-Za-z_][A-Za-z0-9_]*|[0-9][0-9x.eE+-]*|->|//|\.\.|.",
                       re.S)


@st.composite
def mutated_programs(draw) -> str:
    """A valid program with a few characters or tokens deleted, inserted, swapped or
    duplicated."""
    text = draw(S.programs(max_statements=3))
    for _ in range(draw(st.integers(1, 4))):
        text = draw(_mutation(text))
    return text


def _mutation(text: str):
    at = st.integers(0, len(text))
    char_edits = st.one_of(
        st.builds(lambda i: text[:i] + text[i + 1:], at),
        st.builds(lambda i, c: text[:i] + c + text[i:], at, st.sampled_from(TOKENS)),
        st.builds(lambda i, c: text[:i] + c + text[i:], at, st.sampled_from(ALPHABET)),
        st.builds(lambda i, j: _swap(list(text), i, j), at, at),
        st.builds(lambda i, j: text[:i] + text[min(i, j):max(i, j)] + text[i:], at, at))
    tokens = _TOKEN_RE.findall(text)
    if not tokens:
        return char_edits
    k = st.integers(0, len(tokens) - 1)
    token_edits = st.one_of(
        st.builds(lambda i: "".join(tokens[:i] + tokens[i + 1:]), k),
        st.builds(lambda i: "".join(tokens[:i] + tokens[i:i + 1] + tokens[i:]), k),
        st.builds(lambda i, j: _swap(tokens, i, j), k, k),
        st.builds(lambda i, t: "".join(tokens[:i] + [t] + tokens[i:]), k,
                  st.sampled_from(TOKENS)))
    return st.one_of(char_edits, token_edits)


def _swap(items: list, i: int, j: int) -> str:
    items = list(items)
    if items:
        i, j = min(i, len(items) - 1), min(j, len(items) - 1)
        items[i], items[j] = items[j], items[i]
    return "".join(items)


# --- properties: quick ---------------------------------------------------------------


@QUICK
@given(st.text(max_size=200))
def test_random_text(text):
    check(text)


@QUICK
@given(st.one_of(alphabet_text, token_text, spaced_token_text))
def test_random_tokens(text):
    check(text)


@QUICK
@given(mutated_programs())
def test_mutated_programs(text):
    check(text)


@examples(100)
@given(S.programs())
def test_generated_programs_parse(text):
    parse(text)  # the strategies write valid programs: no error at all


# --- properties: slow ----------------------------------------------------------------


@pytest.mark.slow
@SLOW
@given(st.text())
def test_random_text_slow(text):
    check(text)


@pytest.mark.slow
@SLOW
@given(st.one_of(alphabet_text, token_text, spaced_token_text))
def test_random_tokens_slow(text):
    check(text)


@pytest.mark.slow
@SLOW
@given(mutated_programs())
def test_mutated_programs_slow(text):
    check(text)


# --- pathological inputs -------------------------------------------------------------


def _timed(text: str):
    start = time.perf_counter()
    try:
        return parse(text), None, time.perf_counter() - start
    except PatternNetError as e:
        return None, e, time.perf_counter() - start


def test_huge_repeat_count_parses():
    # the count is bounded later, by resolve (MAX_LAYERS); parsing it is instant
    program, error, seconds = _timed("[CONV]*1000000000")
    assert error is None and seconds < 1
    assert program.statements[0].expr.count.value == 1_000_000_000


@pytest.mark.parametrize("text", [
    "INPUT -> " + "[" * 5000 + "CONV" + "]" * 5000,
    "INPUT -> " + "(" * 5000 + "CONV" + ")" * 5000,
    "x = " + "(" * 5000 + "1" + ")" * 5000,
    "INPUT -> " + "[" * 5000,
    "INPUT -> CONV" + "?" * 5000,
    "INPUT -> CONV" + "*2" * 5000,
    "x = " + "-" * 5000 + "1",
    "x = 1" + " + 1" * 5000,
], ids=["brackets", "parens", "arith-parens", "unclosed", "optionals", "repeats", "negations",
        "sum"])
def test_deep_nesting_is_refused_fast(text):
    program, error, seconds = _timed(text)
    assert seconds < 2
    assert isinstance(error, ParseError)
    assert "E106" in {d.code for d in error.diagnostics}
    check_diagnostics(error, text)


def test_long_flat_inputs_are_fast():
    for text in ["INPUT" + " -> CONV" * 20_000,
                 "\n".join(f"c{i} = {i}" for i in range(20_000)), "#" * 200_000]:
        program, error, seconds = _timed(text)
        assert error is None and seconds < 5
