"""Unit tests for the resolve stage (``patternnet.resolve``).

Each test parses a small program, resolves it and asserts on the resolved structure
or on the diagnostic (code, span, message, help, trace).  Error codes:

E201 undefined name      E202 duplicate          E203 recursion
E204 block arguments     E205 unknown keyword    E206 bad argument value
E207 network selection   E208 layer limit        E209 arithmetic / counts
E210 -D define           E211 range              E212 too many positional
E213 wrong kind of name  E214 INPUT placement    E216 family too large
"""

from __future__ import annotations

import itertools
import signal
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import examples

from patternnet import limits
from patternnet.diagnostics import Diagnostic, Frame, ParseError, ResolveError
from patternnet.parser import parse
from patternnet.resolver import (Family, FreeRange, Network, RBlock, RBranches, RLayer,
                                ROptional, RRepeat, RSeq, lazy_product, resolve, select_all)

ROOT = Path(__file__).resolve().parent.parent
FILE = "t.pn"

SEED = "INPUT -> [[CONV -> RELU]*2 -> POOL?]*3 -> [FC -> RELU]*1 -> FC"


# --- helpers -------------------------------------------------------------------------


def res(src: str, **kw):
    return resolve(parse(src, FILE), **kw)


def net(src: str, **kw) -> Network:
    r = res(src, **kw)
    assert isinstance(r, Network), r
    return r


def err(src: str, code: str, **kw) -> Diagnostic:
    """Resolve ``src``; it must fail with exactly one ResolveError diagnostic ``code``."""
    prog = parse(src, FILE)
    with pytest.raises(ResolveError) as ei:
        resolve(prog, **kw)
    diags = ei.value.diagnostics
    assert [d.code for d in diags] == [code], ei.value.render()
    return diags[0]


def at(d: Diagnostic) -> tuple[int, int]:
    assert d.span is not None, d
    return d.span.line, d.span.col


def spanned(src: str, d: Diagnostic) -> str:
    """The source text under the diagnostic's span."""
    return src[d.span.start:d.span.end]


def layers(node) -> list[RLayer]:
    """All layers in source order, expanding repeats and blocks (optionals kept)."""
    out: list[RLayer] = []

    def walk(n):
        if isinstance(n, RLayer):
            out.append(n)
        elif isinstance(n, RSeq):
            for i in n.items:
                walk(i)
        elif isinstance(n, RRepeat):
            for _ in range(n.count):
                walk(n.body)
        elif isinstance(n, (ROptional, RBlock)):
            walk(n.body)
        elif isinstance(n, RBranches):
            for i in n.items:
                walk(i)
        else:
            raise AssertionError(f"unexpected node {n!r}")

    walk(node.body if isinstance(node, Network) else node)
    return out


def kinds(node) -> list[str]:
    return [l.kind for l in layers(node)]


def value_of(expr: str, prelude: str = ""):
    """The value of ``expr`` as FC's units (an integer argument)."""
    n = net(f"{prelude}\nINPUT -> FC({expr})\n")
    return n.body.items[1].get("units")


class _Slow(Exception):
    pass


def run_within(seconds: float, fn):
    """Call ``fn``; raise _Slow when it takes longer than ``seconds`` (SIGALRM)."""
    if not hasattr(signal, "setitimer"):
        t0 = time.perf_counter()
        result = fn()
        if time.perf_counter() - t0 > seconds:
            raise _Slow(f"took more than {seconds} s")
        return result

    def on_alarm(signum, frame):
        raise _Slow(f"took more than {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# --- constants and arithmetic --------------------------------------------------------


@pytest.mark.parametrize("expr, expected", [
    ("2 + 3 * 4", 14),
    ("(2 + 3) * 4", 20),
    ("17 // 5", 3),
    ("17 % 5", 2),
    ("10 - 2 - 3", 5),            # left associative
    ("2 * 3 // 4", 1),            # (2 * 3) // 4, not 2 * (3 // 4)
    ("-3 + 10", 7),
    ("-(2 - 5)", 3),
    ("20 + -7 // 2", 16),         # floor division, as in Python: -7 // 2 == -4
    ("-7 % 3 + 1", 3),            # -7 % 3 == 2
    ("100 // 7 * 7 + 100 % 7", 100),
])
def test_integer_arithmetic(expr, expected):
    assert value_of(expr) == expected


def test_constants_and_arithmetic_on_them():
    prelude = "a = 2 + 3 * 4\nb = a // 3\nc = -a % 5\nd = (a - b) * c"
    assert value_of("a", prelude) == 14
    assert value_of("b", prelude) == 4
    assert value_of("c", prelude) == 1
    assert value_of("d", prelude) == 10
    assert value_of("a + b * c", prelude) == 18


def test_definitions_are_order_independent():
    src = ("INPUT -> stage(c) -> FC(units)\n"
           "units = c * 2\n"
           "stage(k) = conv_relu(k)*depth\n"
           "conv_relu(k) = CONV(k) -> RELU\n"
           "c = depth + 14\n"
           "depth = 2\n")
    n = net(src)
    assert kinds(n) == ["INPUT", "CONV", "RELU", "CONV", "RELU", "FC"]
    assert [l.get("filters") for l in layers(n) if l.kind == "CONV"] == [16, 16]
    assert layers(n)[-1].get("units") == 32


def test_true_division_gives_a_number_where_a_number_is_fine():
    n = net("INPUT -> DROPOUT(1 / 4) -> LRELU(1 / 2)")
    assert n.body.items[1].get("rate") == 0.25
    assert n.body.items[2].get("slope") == 0.5


def test_true_division_rejected_as_an_integer_argument():
    d = err("a = 8 / 2\nINPUT -> CONV(a)", "E206")
    assert "`filters` of CONV must be a positive integer" in d.message
    assert "4.0" in d.message
    assert at(d) == (2, 15)


def test_true_division_rejected_as_a_repeat_count():
    src = "INPUT -> CONV*(4 / 2)"
    d = err(src, "E209")
    assert d.message == "a repeat count must be an integer, got a number `2.0`"
    assert spanned(src, d) == "(4 / 2)"
    assert d.help == "use // for integer division"


@pytest.mark.parametrize("expr", ["3 // 0", "3 % 0", "3 / 0", "3 // (2 - 2)"])
def test_division_by_zero(expr):
    src = f"INPUT -> FC({expr})"
    d = err(src, "E209")
    assert d.message == "division by zero"
    assert d.label == "divides by 0"
    assert spanned(src, d) == expr


def test_division_by_zero_in_a_constant_points_at_the_constant():
    src = "z = 0\nk = 4 // z\nINPUT -> CONV*k"
    d = err(src, "E209")
    assert at(d) == (2, 5)
    assert spanned(src, d) == "4 // z"


@pytest.mark.parametrize("expr, what", [("true + 1", "a boolean"), ("3x3 + 1", "a size"),
                                        ("same * 2", "`same`")])
def test_arithmetic_on_non_numbers(expr, what):
    d = err(f"INPUT -> FC({expr})", "E209")
    assert d.message.startswith(f"cannot use {what} in arithmetic")


def test_constant_defined_twice_is_e202():
    src = "n = 1\nn = 2\nINPUT -> CONV*n"
    d = err(src, "E202")
    assert d.message == "`n` is defined twice"
    assert at(d) == (2, 1)
    assert d.notes == ("first defined at t.pn:1:1",)


def test_every_duplicate_is_reported():
    prog = parse("a = 1\na = 2\nb(c) = CONV\nb = RELU\nINPUT -> FC", FILE)
    with pytest.raises(ResolveError) as ei:
        resolve(prog)
    assert [(d.code, d.span.line) for d in ei.value.diagnostics] == [("E202", 2), ("E202", 4)]


def test_two_bare_default_networks_is_e202():
    src = "INPUT -> CONV\nINPUT -> FC\n"
    d = err(src, "E202")
    assert d.message == "a second default network"
    assert at(d) == (2, 1)
    assert d.notes == ("the first is at t.pn:1:1",)
    assert "--net" in d.help


def test_block_and_constant_with_the_same_name_is_e202():
    d = err("b(c) = CONV(c)\nb = 3\nINPUT -> b(1)", "E202")
    assert d.message == "`b` is defined twice"


# --- undefined names (E201) ----------------------------------------------------------


def test_undefined_value_with_did_you_mean():
    src = "filters = 3\nINPUT -> CONV(fiters)"
    d = err(src, "E201")
    assert d.message == "undefined name `fiters`"
    assert at(d) == (2, 15)
    assert d.label == "not defined"
    assert d.help == "did you mean `filters`?"


def test_undefined_value_without_a_close_match_suggests_defining_it():
    d = err("INPUT -> CONV(q)", "E201")
    assert "define it" in d.help and "-D" in d.help


def test_undefined_block_with_did_you_mean():
    src = "INPUT -> blok(3)\nblock(c) = CONV(c)"
    d = err(src, "E201")
    assert d.message == "undefined block `blok`"
    assert at(d) == (1, 10)
    assert spanned(src, d) == "blok"
    assert d.help == "did you mean `block`?"


def test_undefined_name_suggests_a_block_parameter():
    d = err("b(width) = CONV(widht)\nINPUT -> b(3)", "E201")
    assert d.help == "did you mean `width`?"


def test_undefined_name_inside_blocks_carries_the_call_chain():
    src = ("outer(c) = inner(c * 2)\n"
           "inner(d) = CONV(d) -> CONV(q)\n"
           "INPUT -> outer(4)\n")
    d = err(src, "E201")
    assert at(d) == (2, 28)
    # outermost call first, innermost last
    assert [(f.name, f.span.line, f.span.col) for f in d.trace] == [
        ("outer", 3, 10), ("inner", 1, 12)]
    text = ResolveError([d], {FILE: src}).render()
    assert ("  = note: in block `inner`, called at t.pn:1:12\n"
            "  = note: in block `outer`, called at t.pn:3:10") in text


# --- recursion (E203) ----------------------------------------------------------------


def test_block_calling_itself():
    src = "b(c) = CONV -> b(c)\nINPUT -> b(1)"
    d = err(src, "E203")
    assert d.message == "block `b` calls itself: b -> b"
    assert at(d) == (1, 16)
    assert [f.name for f in d.trace] == ["b"]


def test_blocks_calling_each_other():
    src = "a(c) = CONV -> bb(c)\nbb(c) = RELU -> a(c)\nINPUT -> a(2)"
    d = err(src, "E203")
    assert d.message == "block `a` calls itself: a -> bb -> a"
    assert at(d) == (2, 17)
    assert [f.name for f in d.trace] == ["a", "bb"]


def test_parameterless_blocks_calling_each_other():
    d = err("a = CONV -> b\nb = RELU -> a\nINPUT -> a", "E203")
    assert d.message == "block `a` calls itself: a -> b -> a"


def test_constants_defined_in_terms_of_each_other():
    src = "x = y + 1\ny = x * 2\nINPUT -> CONV*x"
    d = err(src, "E203")
    assert d.message == "`x` is defined in terms of itself: x -> y -> x"
    assert at(d) == (1, 1)


def test_constant_defined_in_terms_of_itself():
    d = err("x = x + 1\nINPUT -> CONV*x", "E203")
    assert d.message == "`x` is defined in terms of itself: x -> x"


def test_block_called_twice_in_sequence_is_not_recursion():
    n = net("b = CONV -> RELU\nc = b -> b\nINPUT -> c -> c")
    assert n.layer_count == 9


# --- blocks and arguments (E204) -----------------------------------------------------


BLK = "blk(c, k=2, m=k*2) = CONV(c)*m\n"


@pytest.mark.parametrize("call, filters, copies", [
    ("blk(8)", 8, 4),                 # m's default uses k's default
    ("blk(8, 3)", 8, 6),              # m's default uses the given k
    ("blk(8, m=1)", 8, 1),
    ("blk(c=5, k=1)", 5, 2),
    ("blk(k=1, c=5)", 5, 2),          # keywords in any order
    ("blk(8, 1, 3)", 8, 3),
])
def test_block_arguments_and_defaults(call, filters, copies):
    n = net(BLK + f"INPUT -> {call}")
    convs = layers(n)[1:]
    assert len(convs) == copies
    assert {l.get("filters") for l in convs} == {filters}
    assert n.layer_count == 1 + copies


def test_block_arguments_are_evaluated_in_the_callers_scope():
    n = net("outer(c) = inner(c * 2) -> inner(c + 1)\ninner(d) = CONV(d)\n"
            "INPUT -> outer(4)")
    assert [l.get("filters") for l in layers(n)[1:]] == [8, 5]


def test_parameter_shadows_a_constant_and_constants_are_visible_in_blocks():
    n = net("c = 5\nw = 7\nb(c) = CONV(c, w)\nINPUT -> b(3) -> CONV(c)")
    first, second = layers(n)[1:]
    assert first.get("filters") == 3 and first.get("kernel") == (7, 7)
    assert second.get("filters") == 5


def test_parameter_default_may_use_a_constant_defined_later():
    n = net("b(c, k=w) = CONV(c, k)\nw = 5\nINPUT -> b(7)")
    assert layers(n)[1].get("kernel") == (5, 5)


def test_block_with_empty_parentheses():
    assert net("b() = CONV\nINPUT -> b -> b()").layer_count == 3


def test_too_many_block_arguments():
    src = "blk(c, k=2) = CONV(c)*k\nINPUT -> blk(8, 1, 2)"
    d = err(src, "E204")
    assert d.message == "block `blk` takes 2 arguments, got 3"
    assert at(d) == (2, 20)
    assert d.label == "extra argument"
    assert d.help == "its parameters are: c, k"


def test_argument_to_a_parameterless_block():
    d = err("b = CONV\nINPUT -> b(3)", "E204")
    assert d.message.startswith("block `b` takes 0 arguments, got 1")


def test_unknown_keyword_argument_to_a_block():
    src = "blk(c, k=2) = CONV(c)*k\nINPUT -> blk(8, kk=1)"
    d = err(src, "E204")
    assert d.message == "block `blk` has no parameter `kk`"
    assert at(d) == (2, 17)
    assert d.help == "did you mean `k`?"


def test_missing_block_argument():
    src = "blk(c, k=2) = CONV(c)*k\nINPUT -> blk(k=1)"
    d = err(src, "E204")
    assert d.message == "block `blk` needs argument `c`"
    assert spanned(src, d) == "blk(k=1)"
    assert d.label == "missing `c`"
    assert d.help == "pass it: `blk(c, k)`"


def test_block_argument_given_positionally_and_by_keyword():
    src = "blk(c, k=2) = CONV(c)*k\nINPUT -> blk(8, c=1)"
    d = err(src, "E204")
    assert d.message == "parameter `c` of `blk` is given twice"
    assert spanned(src, d) == "c=1"


def test_block_keyword_given_twice_is_a_syntax_error():
    with pytest.raises(ParseError) as ei:
        parse("blk(c, k=2) = CONV(c)*k\nINPUT -> blk(8, k=1, k=2)", FILE)
    assert [d.code for d in ei.value.diagnostics] == ["E112"]


# --- layer arguments (E205, E206, E212) ----------------------------------------------


@pytest.mark.parametrize("src, word, hint", [
    ("INPUT -> CONV(filter=3)", "filter", "did you mean `filters`?"),
    ("INPUT -> CONV(3, strid=2)", "strid", "did you mean `stride`?"),
    ("INPUT -> POOL(windw=3)", "windw", "did you mean `window`?"),
    ("INPUT -> DROPOUT(p=0.2)", "p", "DROPOUT takes: `rate`"),
])
def test_unknown_layer_keyword(src, word, hint):
    d = err(src, "E205")
    layer = src.split("-> ")[1].split("(")[0]
    assert d.message == f"{layer} has no argument `{word}`"
    assert spanned(src, d) == word
    assert d.label == "unknown"
    assert d.help == hint


def test_unknown_keyword_on_a_layer_without_arguments():
    d = err("INPUT -> RELU(x=1)", "E205")
    assert d.help == "RELU takes: none"


@pytest.mark.parametrize("src, arg, bad", [
    ("INPUT -> CONV(0)", "filters", "0"),
    ("INPUT -> CONV(-3)", "filters", "-3"),
    ("INPUT -> CONV(true)", "filters", "true"),
    ("INPUT -> CONV(same)", "filters", "same"),
    ("INPUT -> CONV(2.0)", "filters", "2.0"),
    ("INPUT -> CONV(8, pad=-1)", "pad", "-1"),
    ("INPUT -> CONV(8, p=(1, 2, 3))", "pad", "(1, 2, 3)"),
    ("INPUT -> CONV(8, 0x3)", "kernel", "(0, 3)"),
    ("INPUT -> CONV(8, 3, s=0)", "stride", "0"),
    ("INPUT -> CONV(8, bias=1)", "bias", "1"),
    ("INPUT -> DROPOUT(1.5)", "rate", "1.5"),
    ("INPUT -> DROPOUT(1)", "rate", "1"),
    ("INPUT -> DROPOUT(-0.1)", "rate", "-0.1"),
    ("INPUT -> BN(momentum=1)", "momentum", "1"),
    ("INPUT -> BN(eps=true)", "eps", "true"),
    ("INPUT -> FC(0)", "units", "0"),
    ("INPUT -> POOL(2.5)", "window", "2.5"),
    ("INPUT -> CONV(8, groups=0)", "groups", "0"),
    ("INPUT(10x10) -> FC", "shape", "(10, 10)"),
    ("INPUT(0) -> FC", "shape", "0"),
])
def test_bad_argument_values(src, arg, bad):
    d = err(src, "E206")
    assert d.message.startswith(f"`{arg}` of ")
    assert d.message.endswith(f", got `{bad}`")
    assert d.label == "bad value"


def test_bad_argument_value_points_at_the_value():
    src = "INPUT -> CONV(8, pad=-1)"
    d = err(src, "E206")
    assert spanned(src, d) == "-1"
    assert d.message == ("`pad` of CONV must be `same`, `valid`, an integer >= 0 or a pair "
                         "(ph, pw), got `-1`")


def test_bad_value_from_a_block_parameter_points_at_the_use_with_a_trace():
    src = "b(c) = CONV(c)\nINPUT -> b(0)"
    d = err(src, "E206")
    assert at(d) == (1, 13)
    assert [f.name for f in d.trace] == ["b"]


@pytest.mark.parametrize("src", ["INPUT -> CONV(stride=2, s=2)", "INPUT -> CONV(8, filters=2)",
                                 "INPUT -> POOL(p=1, pad=1)"])
def test_layer_argument_given_twice_through_position_or_alias(src):
    d = err(src, "E206")
    assert d.message.endswith("is given twice")
    assert d.help == "keep one of them"


def test_too_many_positional_arguments():
    src = "INPUT -> CONV(8, 3, 1, same, 1, 1, true, 7)"
    d = err(src, "E212")
    assert d.message == ("CONV takes 7 positional arguments (filters, kernel, stride, pad, "
                         "dilation, groups, bias), got 8")
    assert spanned(src, d) == "7"
    assert d.label == "extra argument"
    assert d.help.startswith("remove it, or name the arguments: filters=...")


def test_positional_argument_to_a_layer_without_arguments():
    src = "INPUT -> RELU(1)"
    d = err(src, "E212")
    assert spanned(src, d) == "1"
    assert d.help == "remove the parentheses' contents"


# --- resolved structure --------------------------------------------------------------


def test_seed_pattern_layer_count():
    n = net(SEED)
    assert n.layer_count == 19
    assert n.name is None and n.label == "(default network)"
    assert n.input.kind == "INPUT" and n.input.args == ()
    assert n.bindings == ()
    assert n.file == FILE


def test_seed_pattern_structure():
    n = net(SEED)
    inp, outer, head, last = n.body.items
    assert isinstance(outer, RRepeat) and outer.count == 3
    inner, opt = outer.body.items
    assert isinstance(inner, RRepeat) and inner.count == 2
    assert [l.kind for l in inner.body.items] == ["CONV", "RELU"]
    assert isinstance(opt, ROptional) and [l.kind for l in opt.body.items] == ["POOL"]
    assert isinstance(head, RRepeat) and head.count == 1
    assert isinstance(last, RLayer) and last.kind == "FC"
    assert kinds(n) == ["INPUT"] + ["CONV", "RELU", "CONV", "RELU", "POOL"] * 3 + [
        "FC", "RELU", "FC"]


@pytest.mark.parametrize("src, count", [
    ("INPUT -> CONV*2*3 -> FC", 8),
    ("INPUT -> (CONV | POOL -> CONV) -> FC", 5),
    ("INPUT -> (CONV -> BN + ID) -> RELU", 5),
    ("INPUT -> CONV? -> FC", 3),
    ("b = CONV -> RELU\nINPUT -> b*3", 7),
])
def test_layer_count_expands_repeats(src, count):
    n = net(src)
    assert n.layer_count == count
    assert len(layers(n)) == count


@pytest.mark.parametrize("src, count", [
    ("INPUT -> CONV*0 -> FC", 2),
    ("INPUT -> [CONV -> [RELU]*0]*4", 5),
    ("n = 0\nINPUT -> [CONV -> RELU]*n -> FC", 2),
])
def test_layer_count_of_zero_repeats(src, count):
    n = net(src)
    assert len(layers(n)) == count
    assert n.layer_count == count


def test_layer_normalisation():
    n = net("INPUT(224x224x3) -> MAXPOOL(3, s=2, p=1) -> DENSE(10, bias=false) "
            "-> CONV(8, 3x5, p=(1, 2)) -> CONV(8, p=valid) -> CONV(8, pad=1, dilation=2) "
            "-> BN(1e-3, 0.2) -> LRELU(1) -> DROPOUT(0) "
            "-> CONV(16, kernel=3, stride=2, pad=same, groups=2)")
    got = [(l.kind, l.written, l.args) for l in n.body.items]
    assert got == [
        ("INPUT", "INPUT", (("shape", (224, 224, 3)),)),
        ("POOL", "MAXPOOL", (("window", (3, 3)), ("stride", (2, 2)), ("pad", (1, 1)))),
        ("FC", "DENSE", (("units", 10), ("bias", False))),
        ("CONV", "CONV", (("filters", 8), ("kernel", (3, 5)), ("pad", (1, 2)))),
        ("CONV", "CONV", (("filters", 8), ("pad", "valid"))),
        ("CONV", "CONV", (("filters", 8), ("pad", (1, 1)), ("dilation", (2, 2)))),
        ("BN", "BN", (("eps", 0.001), ("momentum", 0.2))),
        ("LRELU", "LRELU", (("slope", 1.0),)),          # a float argument is a float
        ("DROPOUT", "DROPOUT", (("rate", 0.0),)),
        ("CONV", "CONV", (("filters", 16), ("kernel", (3, 3)), ("stride", (2, 2)),
                          ("pad", "same"), ("groups", 2))),
    ]


def test_bare_layers_have_no_arguments_and_defaults_stay_in_the_table():
    n = net("INPUT -> CONV -> POOL -> FC")
    conv, pool, fc = n.body.items[1:]
    assert conv.args == pool.args == fc.args == ()
    assert not conv.given("filters") and conv.get("filters") is None
    assert conv.spec.arg("kernel").default == 3
    assert pool.spec.arg("s").name == "stride"


def test_vector_input_and_tuple_size():
    n = net("INPUT(10) -> FC")
    assert n.input.get("shape") == (10,)
    n = net("INPUT(3x3x3) -> CONV(8, (1, 2)) -> CONV(8, s=(1, 2))")
    assert n.body.items[1].get("kernel") == (1, 2)
    assert n.body.items[2].get("stride") == (1, 2)


def test_equal_networks_compare_equal_whatever_the_layout():
    a = net("INPUT -> CONV(8, s=2) -> RELU")
    b = net("\n\nINPUT->CONV(filters=8,stride=2)\n  ->RELU  # comment\n")
    assert a.body == b.body


def test_block_expansion_keeps_the_block_and_its_trace():
    src = "conv_bn(c) = CONV(c) -> BN\nINPUT -> conv_bn(16)"
    n = net(src)
    blk = n.body.items[1]
    assert isinstance(blk, RBlock) and blk.name == "conv_bn"
    assert [l.kind for l in blk.body.items] == ["CONV", "BN"]
    assert blk.trace == (Frame("conv_bn", blk.span),)
    assert (blk.span.line, blk.span.col) == (2, 10)
    conv = blk.body.items[0]
    assert conv.get("filters") == 16
    assert [f.name for f in conv.trace] == ["conv_bn"]
    assert (conv.span.line, conv.span.col) == (1, 14)


def test_name_times_count_becomes_a_repeat_once_the_name_is_a_block():
    n = net("b = CONV -> RELU\nx = b*2\nINPUT -> x")
    x = n.body.items[1]
    assert isinstance(x, RBlock) and x.name == "x"
    (rep,) = x.body.items
    assert isinstance(rep, RRepeat) and rep.count == 2
    assert isinstance(rep.body.items[0], RBlock) and rep.body.items[0].name == "b"
    assert n.layer_count == 5


def test_name_times_constant_and_forward_references():
    assert net("x = b*k\nk = 3\nb = CONV\nINPUT -> x").layer_count == 4
    assert net("x = y*2\ny = b\nb = CONV\nINPUT -> x").layer_count == 3


def test_arithmetic_of_constants_stays_arithmetic():
    assert value_of("y", "x = 2\ny = x*2") == 4


@pytest.mark.parametrize("op", ["+", "|"])
def test_parenthesised_names_become_branches_once_they_are_blocks(op):
    n = net(f"a = CONV -> BN\nb = ID\nx = (a {op} b)\nINPUT -> x")
    (br,) = n.body.items[1].body.items
    assert isinstance(br, RBranches) and br.op == op
    assert [[i.name for i in s.items] for s in br.items] == [["a"], ["b"]]
    assert n.layer_count == 4


def test_a_network_may_start_with_another_network_or_a_block():
    assert net("a = INPUT -> CONV\nb = a -> FC", net="b").layer_count == 3
    n = net("stem = INPUT(64x64x3) -> CONV\nstem -> FC")
    assert n.layer_count == 3
    assert layers(n)[0].get("shape") == (64, 64, 3)
    assert net("x = [INPUT]\nx -> FC").layer_count == 2


def test_network_input_is_the_input_layer_through_blocks():
    n = net("stem = INPUT(64x64x3) -> CONV\nstem -> FC")
    assert isinstance(n.input, RLayer) and n.input.kind == "INPUT"
    assert n.input.get("shape") == (64, 64, 3)


# --- examples from the design ----------------------------------------------------------

VGG = """\
vgg_block(c, n) = [CONV(c) -> RELU]*n -> POOL
INPUT(224x224x3) -> vgg_block(64, 2) -> vgg_block(128, 2) -> vgg_block(256, 3)
  -> vgg_block(512, 3) -> vgg_block(512, 3) -> [FC(4096) -> RELU -> DROPOUT]*2 -> FC(1000)
"""

RESNET50 = """\
bottleneck(c, s=1) = (CONV(c, 1, bias=false) -> BN -> RELU
                      -> CONV(c, 3, s=s, p=1, bias=false) -> BN -> RELU
                      -> CONV(4*c, 1, bias=false) -> BN
                    + SKIP) -> RELU
stage(c, n, s) = bottleneck(c, s) -> bottleneck(c)*(n - 1)
resnet50 = INPUT(224x224x3) -> CONV(64, 7, s=2, p=3, bias=false) -> BN -> RELU
  -> POOL(3, s=2, p=1) -> stage(64, 3, 1) -> stage(128, 4, 2) -> stage(256, 6, 2)
  -> stage(512, 3, 2) -> GAP -> FC(1000)
"""


def test_vgg_sketch():
    n = net(VGG)
    assert n.layer_count == 39
    convs = [l.get("filters") for l in layers(n) if l.kind == "CONV"]
    assert convs == [64] * 2 + [128] * 2 + [256] * 3 + [512] * 6
    assert kinds(n).count("POOL") == 5
    assert [l.get("units") for l in layers(n) if l.kind == "FC"] == [4096, 4096, 1000]


def test_resnet50_sketch():
    n = net(RESNET50)
    assert n.name == "resnet50"
    assert n.layer_count == 167
    ls = layers(n)
    convs = [l for l in ls if l.kind == "CONV"]
    assert len(convs) == 1 + 16 * 3
    assert kinds(n).count("SKIP") == 16
    # the 3x3 convolution of each stage's first bottleneck carries the stage's stride
    strided = [l.get("stride")[0] for l in convs if l.get("kernel") == (3, 3)]
    assert strided == [1, 1, 1] + [2, 1, 1, 1] + [2, 1, 1, 1, 1, 1] + [2, 1, 1]
    assert [l.get("filters") for l in convs[-3:]] == [512, 512, 2048]

    def residuals(node):
        if isinstance(node, RBranches):
            return 1 + sum(residuals(i) for i in node.items)
        if isinstance(node, RSeq):
            return sum(residuals(i) for i in node.items)
        if isinstance(node, RRepeat):
            return node.count * residuals(node.body)
        if isinstance(node, (RBlock, ROptional)):
            return residuals(node.body)
        return 0

    assert residuals(n.body) == 16


def test_language_statement_examples():
    src = ("n = 2\n"
           "m in 1..3\n"
           "vgg_block(c, k=2) = [CONV(c) -> RELU]*k -> POOL\n"
           "vgg16 = INPUT(224x224x3) -> vgg_block(64) -> FC\n"
           "INPUT(32x32x3) -> [CONV -> RELU]*n -> FC(10)\n"
           "classifier = [FC(4096) -> RELU -> DROPOUT]*2 -> FC(1000)\n")
    assert net(src).layer_count == 6
    assert net(src, net="vgg16").layer_count == 7
    d = err(src, "E207", net="classifier")
    assert d.message == "`classifier` is not a network (it does not start with INPUT)"


def test_cs231n_example_file():
    prog = parse((ROOT / "examples" / "cs231n.pn").read_text(), "cs231n.pn")
    fam = resolve(prog)
    assert isinstance(fam, Family)
    assert [(r.name, r.lo, r.hi) for r in fam.free] == [("n", 0, 3), ("m", 0, 3), ("k", 0, 2)]
    assert fam.size == 48
    seed = resolve(prog, net="seed")
    assert isinstance(seed, Network) and seed.layer_count == 19
    member = resolve(prog, define={"n": 2, "m": 3, "k": 1})
    assert isinstance(member, Network) and member.layer_count == 19
    assert member.bindings == (("n", 2), ("m", 3), ("k", 1))
    assert member.body == seed.body


# --- defines (-D) ----------------------------------------------------------------------


@pytest.mark.parametrize("value", [3, "3", " 3 ", "1 + 2", "(9 - 3) // 2"])
def test_define_overrides_a_constant(value):
    n = net("n = 2\nINPUT -> CONV*n", define={"n": value})
    assert n.layer_count == 4
    assert n.bindings == ()


def test_define_fixes_a_range():
    n = net("n in 1..3\nINPUT -> CONV*n", define={"n": "2"})
    assert n.layer_count == 3
    assert n.bindings == (("n", 2),)


def test_define_reaches_constants_that_use_it():
    n = net("n = 2\nc = n * 8\nINPUT -> CONV(c)", define={"n": 4})
    assert n.body.items[1].get("filters") == 32


@pytest.mark.parametrize("value", ["224x224x3", (224, 224, 3)])
def test_define_a_size(value):
    n = net("s = 2\nINPUT(s) -> FC", define={"s": value})
    assert n.input.get("shape") == (224, 224, 3)


@pytest.mark.parametrize("value", ["false", False])
def test_define_a_boolean(value):
    n = net("b = true\nINPUT -> CONV(bias=b)", define={"b": value})
    assert n.body.items[1].get("bias") is False


@pytest.mark.parametrize("value, expected", [("same", "same"), ("valid", "valid"),
                                             ("2", (2, 2)), ((1, 2), (1, 2))])
def test_define_a_padding(value, expected):
    n = net("p = 1\nINPUT -> CONV(8, p=p)", define={"p": value})
    assert n.body.items[1].get("pad") == expected


def test_define_a_float():
    n = net("a = 0.1\nINPUT -> LRELU(a)", define={"a": "0.25"})
    assert n.body.items[1].get("slope") == 0.25


def test_define_text_and_python_values_agree():
    src = "n = 1\ns = 8x8x3\nb = true\nINPUT(s) -> CONV(bias=b)*n"
    a = net(src, define={"n": "3", "s": "16x16x1", "b": "false"})
    b = net(src, define={"n": 3, "s": (16, 16, 1), "b": False})
    assert a.body == b.body


def test_define_unknown_name_with_did_you_mean():
    d = err("n = 2\nINPUT -> CONV*n", "E210", define={"nn": 3})
    assert d.message == "-D nn: the file has no constant or range `nn`"
    assert d.span is None
    assert d.help == "did you mean `n`?"


def test_define_unknown_name_lists_the_names():
    d = err("n = 2\nk in 0..1\nINPUT -> CONV*n", "E210", define={"zzz": 3})
    assert d.help == "its constants and ranges are: n, k"
    d = err("INPUT -> FC", "E210", define={"zzz": 3})
    assert d.help == "the file defines no constants or ranges"


def test_define_a_block_parameter_is_unknown():
    d = err("b(c) = CONV(c)\nINPUT -> b(1)", "E210", define={"c": 3})
    assert "no constant or range `c`" in d.message


def test_define_a_block_or_network():
    d = err("blk = CONV\nINPUT -> blk", "E210", define={"blk": 1})
    assert d.message == "-D blk: `blk` is a block, not a constant"
    assert at(d) == (1, 1)


@pytest.mark.parametrize("value", [5, "5", 0, "-1", True, "true", 1.5])
def test_define_out_of_range(value):
    src = "n in 1..3\nINPUT -> CONV*n"
    d = err(src, "E210", define={"n": value})
    assert "is outside the range 1..3" in d.message
    assert spanned(src, d) == "n in 1..3"
    assert d.help == "pick a value from 1 to 3, or widen the range in the file"


@pytest.mark.parametrize("text", ["nope", "1..3", "", "CONV", "3 ->", "(1"])
def test_define_text_that_is_not_a_value(text):
    d = err("n = 2\nINPUT -> CONV*n", "E210", define={"n": text})
    assert d.message == f"-D n={text}: the value is not a number, size or boolean"
    assert "-D n=3" in d.help


def test_define_may_introduce_a_bad_value_that_resolve_then_reports():
    d = err("n = 1\nINPUT -> CONV*n", "E209", define={"n": "-1"})
    assert d.message == "a repeat count cannot be negative (it is -1)"


# --- network selection (E207) --------------------------------------------------------


NETS = "alpha = INPUT -> FC\nbeta = INPUT -> CONV -> FC\nblk(x) = RELU\nk = 3\n"


def test_default_network_is_chosen_over_named_ones():
    n = net(NETS + "INPUT -> CONV -> CONV -> CONV")
    assert n.name is None and n.layer_count == 4


def test_named_network_selected():
    n = net(NETS, net="beta")
    assert n.name == "beta" and n.label == "beta" and n.layer_count == 3


def test_single_named_network_is_chosen():
    n = net("a = INPUT -> FC\nc(x) = RELU\n")
    assert n.name == "a" and n.layer_count == 2


def test_several_networks_and_no_default_lists_them():
    d = err(NETS, "E207")
    assert d.message == "t.pn defines 2 networks and no default one: say which"
    assert d.help == "choose one with --net NAME (net= in Python): `alpha`, `beta`"


def test_unknown_net_with_did_you_mean():
    d = err(NETS, "E207", net="alpah")
    assert d.message == "no network named `alpah` in t.pn"
    assert d.help == "did you mean `alpha`? the networks are: `alpha`, `beta`"


def test_unknown_net_in_a_file_without_named_networks():
    d = err("INPUT -> FC", "E207", net="zz")
    assert d.help == "this file has no named networks; leave out --net"


@pytest.mark.parametrize("name, line", [("blk", 3), ("k", 4)])
def test_block_or_constant_given_as_net(name, line):
    d = err(NETS, "E207", net=name)
    assert d.message == f"`{name}` is not a network (it does not start with INPUT)"
    assert at(d) == (line, 1)
    assert d.help == "the networks are: `alpha`, `beta`"


def test_file_without_a_network():
    d = err("c(x) = RELU\nn = CONV -> FC\n", "E207")
    assert d.message == "t.pn defines no network"
    assert "INPUT" in d.help


def test_networks_are_resolved_independently():
    src = "good = INPUT -> FC\nbad = INPUT -> CONV(0)\n"
    assert net(src, net="good").layer_count == 2
    err(src, "E206", net="bad")


def test_select_all_lists_networks_in_file_order():
    prog = parse("zeta = INPUT -> FC\nINPUT -> CONV\nalpha = INPUT -> RELU\nb = CONV\n", FILE)
    assert select_all(prog) == [None, "zeta", "alpha"]
    assert select_all(parse("b = CONV\n", FILE)) == [None]
    assert select_all(parse("a = INPUT\na = INPUT\n", FILE)) == [None]


# --- limits (E208) -------------------------------------------------------------------


def test_billion_copies_answer_quickly():
    src = "INPUT -> [CONV]*1000000000"
    t0 = time.perf_counter()
    d = err(src, "E208")
    assert time.perf_counter() - t0 < 0.5
    assert d.message == "the network expands to more than 100,000 layers (limit MAX_LAYERS)"
    assert spanned(src, d) == "[CONV]*1000000000"
    assert d.notes == ("repeated 1,000,000,000 times at t.pn:1:10",)
    assert d.label == "too many copies"


def test_layer_limit_boundary():
    assert limits.MAX_LAYERS == 100_000
    t0 = time.perf_counter()
    assert net("INPUT -> CONV*99999").layer_count == 100_000
    err("INPUT -> CONV*100000", "E208")
    assert time.perf_counter() - t0 < 0.5


def test_nested_repeats_over_the_limit_are_noted():
    d = err("INPUT -> [[CONV]*1000]*1000", "E208")
    assert d.notes == ("repeated 1,000 times at t.pn:1:10", "repeated 1,000 times at t.pn:1:11")


def test_repeats_of_repeated_blocks_over_the_limit():
    src = "b1 = CONV\n" + "".join(f"b{i} = b{i - 1}*10\n" for i in range(2, 40)) + "INPUT -> b39\n"
    t0 = time.perf_counter()
    d = err(src, "E208")
    assert time.perf_counter() - t0 < 0.5
    # blocks are sized before they are expanded, so the error is at the outermost call
    # that crosses the limit, where the fix goes
    assert d.trace == () and "`b39`" in d.message and "more than 100,000" in d.message


def _doubling(n: int) -> str:
    return ("b1 = CONV -> RELU\n" + "".join(f"b{i} = b{i - 1} -> b{i - 1}\n"
                                            for i in range(2, n + 1)) + f"INPUT -> b{n}\n")


def test_doubling_blocks_under_the_limit_resolve():
    n = net(_doubling(10))
    assert n.layer_count == 1 + 2 ** 10


def test_doubling_blocks_over_the_limit_answer_in_well_under_a_second():
    prog = parse(_doubling(17), FILE)

    def go():
        with pytest.raises(ResolveError) as ei:
            resolve(prog)
        return ei.value.diagnostics[0].code

    assert run_within(1.0, go) == "E208"


# --- counts and ranges (E209, E211) --------------------------------------------------


@pytest.mark.parametrize("src, count", [("n = 2 - 5\nINPUT -> CONV*n", -3),
                                        ("INPUT -> CONV*(0 - 2)", -2),
                                        ("INPUT -> CONV*-2", -2)])
def test_negative_repeat_count(src, count):
    d = err(src, "E209")
    assert d.message == f"a repeat count cannot be negative (it is {count})"
    assert d.help == "use *0 to leave the group out"


def test_negative_repeat_count_points_at_the_count():
    src = "n = 2 - 5\nINPUT -> [CONV -> RELU]*n"
    d = err(src, "E209")
    assert at(d) == (2, 25)


def test_repeat_count_must_be_an_integer():
    d = err("INPUT -> CONV*true", "E209")
    assert d.message == "a repeat count must be an integer, got a boolean `true`"
    d = err("INPUT -> CONV*3x3", "E209")
    assert "got a size" in d.message


def test_empty_range():
    src = "n in 3..1\nINPUT -> CONV*n"
    d = err(src, "E211")
    assert d.message == "empty range 3..1: the low end is above the high end"
    assert spanned(src, d) == "n in 3..1"
    assert d.help == "write 1..3"


def test_range_bounds_must_be_integers():
    src = "n in 1..2.5\nINPUT -> CONV*n"
    d = err(src, "E211")
    assert d.message == "a range bound must be an integer, got a number `2.5`"
    assert spanned(src, d) == "2.5"


def test_range_bound_may_be_a_constant_but_not_a_range():
    fam = res("hi = 3\nn in 1..hi\nINPUT -> CONV*n")
    assert isinstance(fam, Family) and (fam.free[0].lo, fam.free[0].hi) == (1, 3)
    d = err("m in 1..2\nn in 1..m\nINPUT -> CONV*n", "E211")
    assert d.message == "a range bound cannot use the range `m`"


def test_single_value_range():
    fam = res("n in 2..2\nINPUT -> CONV*n")
    assert isinstance(fam, Family) and fam.size == 1


# --- names of the wrong kind (E213) --------------------------------------------------


def test_constant_used_as_a_block():
    src = "c = 3\nINPUT -> c"
    d = err(src, "E213")
    assert d.message == "`c` is a constant, not a block"
    assert at(d) == (2, 10)


def test_range_used_as_a_block():
    d = err("n in 1..3\nINPUT -> n", "E213")
    assert "not a block" in d.message


def test_block_used_as_a_value():
    src = "b = CONV\nINPUT -> CONV(b)"
    d = err(src, "E213")
    assert d.message == "`b` is a block, not a value"
    assert at(d) == (2, 15)


def test_block_used_as_a_repeat_count():
    d = err("b = CONV\nINPUT -> RELU*b", "E213")
    assert d.message == "`b` is a block, so it cannot count a repeat"
    assert "`-> b`" in d.help and "`(ID * b())`" in d.help  # chain it, or gate by it


def test_parameter_used_as_a_block():
    src = "blk(c) = CONV -> c\nINPUT -> blk(2)"
    d = err(src, "E213")
    assert d.message == "`c` is a parameter holding an integer, not a block"
    assert at(d) == (1, 18)
    assert [f.name for f in d.trace] == ["blk"]


# --- INPUT placement (E214) ----------------------------------------------------------


def test_network_not_starting_with_input():
    src = "CONV -> FC"
    d = err(src, "E214")
    assert d.message == "the network does not start with INPUT"
    assert spanned(src, d) == "CONV"


def test_named_network_not_starting_with_input():
    d = err("a = INPUT -> FC\nb = INPUT*2 -> a\n", "E214", net="b")
    assert d.message == "the network `b` does not start with INPUT"


def test_name_for_a_chain_not_starting_with_input_is_a_block_not_a_network():
    d = err("a = INPUT -> FC\nb = CONV -> a\n", "E207", net="b")
    assert d.message == "`b` is not a network (it does not start with INPUT)"


def test_input_in_the_middle():
    src = "INPUT -> CONV -> INPUT -> FC"
    d = err(src, "E214")
    assert d.message == "INPUT can only start a network"
    assert at(d) == (1, 18)


def test_input_in_the_middle_through_a_block():
    src = "b = RELU -> INPUT\nINPUT -> b"
    d = err(src, "E214")
    assert at(d) == (1, 13)
    assert [f.name for f in d.trace] == ["b"]


def test_input_twice_through_a_block_that_starts_with_input():
    d = err("s = INPUT -> CONV\nINPUT -> s", "E214")
    assert at(d) == (1, 5)
    assert [f.name for f in d.trace] == ["s"]


@pytest.mark.parametrize("src", ["INPUT*2 -> FC", "INPUT? -> FC", "[INPUT -> CONV]*1 -> FC"])
def test_repeated_or_optional_input_is_rejected(src):
    err(src, "E214")


# --- families ------------------------------------------------------------------------


FAM = ("n in 0..3\nm in 1..2\nk in 0..9\n"
       "INPUT -> CONV*n -> FC*m\n"
       "x = INPUT -> FC*k\n"
       "y = INPUT -> FC\n")


def test_family_has_only_the_ranges_the_network_uses():
    fam = res(FAM)
    assert isinstance(fam, Family)
    assert fam.name is None
    assert [(r.name, r.lo, r.hi) for r in fam.free] == [("n", 0, 3), ("m", 1, 2)]
    assert fam.free[0] == FreeRange("n", 0, 3, fam.free[0].span)
    assert (fam.free[0].span.line, fam.free[0].span.col) == (1, 1)
    assert fam.size == 8
    x = res(FAM, net="x")
    assert isinstance(x, Family) and [r.name for r in x.free] == ["k"] and x.size == 10
    y = res(FAM, net="y")
    assert isinstance(y, Network) and y.bindings == ()


def test_family_bindings_in_range_order():
    fam = res(FAM)
    bs = list(fam.bindings())
    assert len(bs) == fam.size
    assert bs[:3] == [{"n": 0, "m": 1}, {"n": 0, "m": 2}, {"n": 1, "m": 1}]
    assert bs[-1] == {"n": 3, "m": 2}


def test_family_bind_and_members():
    fam = res(FAM)
    member = fam.bind({"n": 2, "m": 1})
    assert isinstance(member, Network)
    assert member.bindings == (("n", 2), ("m", 1))
    assert member.layer_count == 4
    members = list(fam.members())
    assert [b for b, _ in members] == list(fam.bindings())
    # INPUT -> CONV*n -> FC*m for (n, m) in (0..3) x (1..2); `*0` contributes nothing
    assert [m.layer_count for _, m in members] == [2, 3, 3, 4, 4, 5, 5, 6]


def test_family_bind_out_of_range():
    fam = res(FAM)
    with pytest.raises(ResolveError) as ei:
        fam.bind({"n": 7, "m": 1})
    assert ei.value.diagnostics[0].code == "E210"


def test_define_narrows_a_family():
    fam = res(FAM, define={"n": 1})
    assert isinstance(fam, Family)
    assert [r.name for r in fam.free] == ["m"]
    assert fam.define == (("n", 1),)
    assert [m.bindings for _, m in fam.members()] == [(("n", 1), ("m", 1)), (("n", 1), ("m", 2))]
    n = res(FAM, define={"n": 1, "m": 2})
    assert isinstance(n, Network) and n.layer_count == 4


def test_range_used_through_a_constant_or_a_default_makes_a_family():
    for src in ("n in 0..2\nc = n + 1\nINPUT -> CONV(c)",
                "n in 0..2\nb(c) = CONV(c)\nINPUT -> b(n + 1)",
                "n in 0..2\nb(c=n) = CONV*c\nINPUT -> b"):
        fam = res(src)
        assert isinstance(fam, Family) and [r.name for r in fam.free] == ["n"], src


def test_unused_range_is_not_free():
    n = res("n in 0..3\nINPUT -> CONV -> FC")
    assert isinstance(n, Network) and n.bindings == ()


def test_family_members_that_fail():
    fam = res("n in 0..2\nINPUT -> CONV(8 // n)\n")
    assert isinstance(fam, Family) and fam.size == 3
    members = list(fam.members())
    bad_binding, bad = members[0]
    assert bad_binding == {"n": 0}
    assert isinstance(bad, ResolveError)
    assert bad.diagnostics[0].code == "E209"
    assert bad.diagnostics[0].message == "division by zero"
    assert [isinstance(m, Network) for _, m in members[1:]] == [True, True]


def test_family_with_negative_member():
    fam = res("n in -1..1\nINPUT -> CONV*n")
    codes = [m.diagnostics[0].code if isinstance(m, ResolveError) else "ok"
             for _, m in fam.members()]
    assert codes == ["E209", "ok", "ok"]


def test_failing_first_member_does_not_widen_the_family():
    fam = res("n in 0..2\nk in 1..2\nINPUT -> CONV(8 // n)\nother = INPUT -> FC*k\n")
    assert isinstance(fam, Family)
    assert [r.name for r in fam.free] == ["n"]
    assert fam.size == 3


def test_family_size_limit():
    fam = res("a in 0..99\nb in 0..99\nINPUT -> CONV*a -> FC*b")
    assert fam.size == 10_000 > limits.MAX_FAMILY_MEMBERS
    with pytest.raises(ResolveError) as ei:
        next(iter(fam.members()))
    d = ei.value.diagnostics[0]
    assert d.code == "E216"
    assert "10,000 members" in d.message and "MAX_FAMILY_MEMBERS" in d.message


def test_a_range_of_any_size_is_a_located_limit_error_not_an_allocation():
    # issue 12's fuzz find: itertools.product copied each range into a tuple, so a range
    # of 10**17 values was a MemoryError inside resolve (an internal error in the CLI)
    src = "n in 0..3\nk in 0..99999999999999999\nINPUT(32x32x3) -> [CONV -> RELU]*n -> [FC -> RELU]*k -> FC(10)\n"
    fam = res(src)
    assert isinstance(fam, Family) and fam.size == 4 * 10 ** 17
    first = list(itertools.islice(fam.bindings(), 3))
    assert first == [{"n": 0, "k": 0}, {"n": 0, "k": 1}, {"n": 0, "k": 2}]
    with pytest.raises(ResolveError) as ei:
        next(iter(fam.members()))
    d = ei.value.diagnostics[0]
    assert d.code == "E216" and d.span.line == 2         # the widest range
    assert "`k` alone has 100,000,000,000,000,000 values" in d.help


@examples(60)
@given(st.lists(st.tuples(st.integers(-3, 3), st.integers(-1, 4)), max_size=4))
def test_lazy_product_is_itertools_product(bounds):
    ranges = [range(lo, lo + n) for lo, n in bounds]
    assert list(lazy_product(ranges)) == list(itertools.product(*ranges))


# --- errors as data --------------------------------------------------------------------


def test_resolve_error_renders_with_its_source():
    src = "INPUT -> CONV(0)"
    with pytest.raises(ResolveError) as ei:
        res(src)
    e = ei.value
    assert e.stage == "resolve"
    assert str(e).startswith("t.pn:1:15: error[E206]:")
    assert e.render() == (
        "error[E206]: `filters` of CONV must be a positive integer, got `0`\n"
        " --> t.pn:1:15\n"
        "  |\n"
        "1 | INPUT -> CONV(0)\n"
        "  |               ^ bad value")
    as_dict = e.diagnostics[0].to_dict()
    assert as_dict["code"] == "E206"
    assert as_dict["span"] == {"file": "t.pn", "line": 1, "col": 15, "end_line": 1,
                               "end_col": 16}


def test_resolve_does_not_mutate_the_program():
    prog = parse(FAM, FILE)
    before = prog.statements
    res_a = resolve(prog, define={"n": 1, "m": 1})
    resolve(prog, net="x")
    assert prog.statements == before
    assert resolve(prog, define={"n": 1, "m": 1}) == res_a
