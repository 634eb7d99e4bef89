"""Merges: `+` adds, `|` concatenates, `*` gates (patternnet/merges.py).

The gate is the new one: its syntax (a `*` between layer expressions inside parentheses
splits the chain as `+` does), its shape rule and errors, its backend against a NumPy
reference, and the table's completeness (every merge has a backend function, a NumPy
reference, a diagram junction and its place in docs/language.md §4.5)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from patternnet import ast as A
from patternnet.diagnostics import PatternNetError
from patternnet.formatter import format_source
from patternnet.merges import MERGES
from patternnet.parser import parse
from patternnet.pipeline import check

import reference_numpy as ref

ROOT = Path(__file__).resolve().parent.parent
SE = "(ID * GAP -> FC(8) -> RELU -> FC(32) -> SIGMOID)"


def first_error(src: str):
    with pytest.raises(PatternNetError) as ei:
        check(src)
    return ei.value.diagnostics[0]


def branches(src: str) -> A.Branches:
    """The one Branches node of a net ``INPUT -> (...)``."""
    chain = parse(src).statements[-1].expr
    (node,) = [i for i in chain.items if isinstance(i, A.Branches)]
    return node


def text(src: str, node) -> str:
    return src[node.span.start:node.span.end]


# --- syntax ----------------------------------------------------------------------------


@pytest.mark.parametrize("inner, items", [
    ("ID * GAP -> FC(4) -> SIGMOID", ["ID", "GAP -> FC(4) -> SIGMOID"]),
    ("CONV -> BN * GAP -> FC(4)", ["CONV -> BN", "GAP -> FC(4)"]),
    ("ID * GAP -> FC(4) * CONV(4, 1)", ["ID", "GAP -> FC(4)", "CONV(4, 1)"]),
    ("ID * GAP?", ["ID", "GAP?"]),              # a postfix after a gate: its last operand's
    ("ID * FC(4)*2 -> RELU", ["ID", "FC(4)*2 -> RELU"]),
    ("ID * [GAP -> FC(4)]", ["ID", "[GAP -> FC(4)]"]),
    ("CONV*2 * GAP", ["CONV*2", "GAP"]),
])
def test_a_star_between_layers_splits_the_chain(inner, items):
    src = f"INPUT -> ({inner})"
    node = branches(src)
    assert node.op == "*"
    assert [text(src, i) for i in node.items] == items


@pytest.mark.parametrize("src", ["INPUT -> (CONV -> RELU*2)", "n = 2\nINPUT -> (CONV*n)"])
def test_a_star_before_a_number_is_still_a_repeat(src):
    chain = parse(src).statements[-1].expr
    assert not any(isinstance(i, A.Branches) for i in chain.items)


def test_a_gate_formats_back_to_itself():
    src = (f"se = {SE}\n\n"
           "INPUT(8x8x32) -> se -> (ID * GAP? * CONV(1, 1)*2) -> GAP -> FC(10)\n")
    out = format_source(src)
    assert out == src
    assert format_source(out) == out


@pytest.mark.parametrize("src, message, label_text", [
    ("INPUT -> ID * GAP -> FC(10)",
     "`*` between layers gates one branch by another, and must be in parentheses",
     "ID * GAP"),
    ("INPUT -> (ID * GAP -> FC(8) + SKIP) -> FC(10)",
     "`+` and `*` cannot be mixed in one pair of parentheses", "ID * GAP"),
    ("INPUT -> (CONV | ID * CONV) -> FC(10)",
     "`|` and `*` cannot be mixed in one pair of parentheses", "ID * CONV"),
])
def test_misplaced_gates_are_located_e108(src, message, label_text):
    d = first_error(src)
    assert (d.code, d.message) == ("E108", message)
    assert text(src, d) == label_text


def test_a_mixed_gate_is_reported_once():
    with pytest.raises(PatternNetError) as ei:
        check("INPUT -> (ID * GAP -> FC(8) + SKIP) -> FC(10)")
    assert [d.code for d in ei.value.diagnostics] == ["E108"]


def test_a_bare_block_after_star_says_to_call_it():
    src = "se = (ID * GAP -> FC(32) -> SIGMOID)\nINPUT(8x8x32) -> (ID * se) -> FC(10)"
    d = first_error(src)
    assert d.code == "E213" and text(src, d) == "se"
    assert "`(ID * se())`" in d.help
    check(src.replace("(ID * se)", "(ID * se())"))  # and the fix checks


# --- shapes ------------------------------------------------------------------------------


@pytest.mark.parametrize("inner, out", [
    ("ID * GAP -> FC(32) -> SIGMOID", (8, 8, 32)),            # channel gate, a vector
    ("ID * AVGPOOL(8) -> CONV(32, 1) -> SIGMOID", (8, 8, 32)),  # the 1x1-conv form
    ("ID * CONV(1, 1) -> SIGMOID", (8, 8, 32)),               # spatial gate
    ("ID * CONV(32)", (8, 8, 32)),                            # elementwise
    ("GAP -> FC(32) -> SIGMOID * ID", (8, 8, 32)),            # the gated branch may come last
    ("GAP -> FC(32) * GAP", (32,)),                           # two vectors
])
def test_gate_shapes(inner, out):
    net = check(f"INPUT(8x8x32) -> ({inner}) -> FC(10)")
    merged = [n for n in net.graph.items if hasattr(n, "branches")][0]
    assert merged.out_shape == out


def test_gate_counts_the_branches_parameters():
    net = check(f"INPUT(8x8x32) -> {SE} -> FC(10)")
    # FC(8) on 32 and FC(32) on 8, with biases; the product itself has none
    assert net.params == (32 * 8 + 8) + (8 * 32 + 32) + (8 * 8 * 32 * 10 + 10)


def test_gate_keeps_the_gated_image_grid():
    """The gated output's positions are the image's: a GAP in the gate (stride H) must not
    multiply the jump of the layers after it, only widen their receptive field."""
    net = check(f"INPUT(8x8x32) -> {SE} -> CONV(4, 3) -> FC(10)")
    conv = [l for l in net.layers if l.path == "conv1"][0]
    assert conv.jump == (1, 1)
    assert conv.rf == (10, 10)  # the gate sees all 8x8 (GAP's window), the 3x3 adds 2


@pytest.mark.parametrize("src, message, help_has", [
    ("INPUT(7x7x96) -> (ID * GAP -> FC(64) -> SIGMOID) -> GAP -> FC(10)",
     "`*` multiplies each of the 96 channels of the 7x7x96 image by one entry of the gate, "
     "but the gate is a vector of 64: 64 ≠ 96", "`FC(96) -> SIGMOID`"),
    ("INPUT(7x7x96) -> (ID * CONV(96, s=2)) -> FC(10)",
     "`*` cannot gate the 7x7x96 image by 4x4x96: each of the gate's dimensions must be 1 or "
     "the image's", "AVGPOOL(7x7)"),
    ("INPUT(64) -> (ID * FC(32)) -> FC(10)",
     "`*` multiplies vectors entry by entry, but they have 64 and 32 entries", "`FC(64)`"),
])
def test_gates_that_do_not_fit_are_e308_at_the_gate(src, message, help_has):
    d = first_error(src)
    assert (d.code, d.message) == ("E308", message)
    assert help_has in d.help
    assert text(src, d).startswith(("GAP", "CONV", "FC"))  # the gate branch, not the image


def test_adding_a_channel_vector_suggests_the_gate():
    d = first_error("INPUT(7x7x96) -> (ID + GAP -> FC(96) -> SIGMOID) -> GAP -> FC(10)")
    assert d.code == "E304" and "multiply instead: `(ID * GAP" in d.help


def test_skip_only_in_add():
    d = first_error("INPUT(7x7x96) -> (ID * SKIP) -> FC(10)")
    assert d.code == "E306" and "`*` branch" in d.help


def test_the_cli_shows_a_gate_error_with_its_help(tmp_path):
    f = tmp_path / "se.pn"
    f.write_text("INPUT(7x7x96) -> (ID * GAP -> FC(64) -> SIGMOID) -> GAP -> FC(10)\n")
    r = subprocess.run([sys.executable, "-m", "patternnet", "check", str(f)],
                       capture_output=True, text=True)
    out = r.stdout + r.stderr
    assert r.returncode == 1 and "Traceback" not in out
    assert "error[E308]" in out and "64 ≠ 96" in out and "help:" in out


# --- backend -----------------------------------------------------------------------------


def test_gate_reference_broadcasts_by_hand():
    x = np.arange(2 * 2 * 2 * 3, dtype=float).reshape(2, 2, 2, 3)
    v = np.array([[1.0, 2.0, 3.0], [0.0, 1.0, -1.0]])
    m = np.array([[[[2.0]], [[3.0]]]] * 2)  # (2, 2, 1, 1): per row
    np.testing.assert_array_equal(ref.gate(x, v), x * v[:, None, None, :])
    np.testing.assert_array_equal(ref.gate(m, x), x * m)
    np.testing.assert_array_equal(ref.gate(v, v), v * v)


def test_gate_backend_against_the_reference():
    jax = pytest.importorskip("jax")
    import patternnet

    src = f"INPUT(5x5x32) -> {SE} -> (ID * CONV(1, 1) -> SIGMOID) -> GAP -> FC(3)"
    model = patternnet.compile(src)
    params, state = model.init(jax.random.PRNGKey(0))
    x = np.random.default_rng(0).normal(size=(2, 5, 5, 32)).astype(np.float32)
    p = jax.tree_util.tree_map(np.asarray, params)
    g = ref.sigmoid(ref.fc(ref.relu(ref.fc(ref.gap(x), p["fc1"]["w"], p["fc1"]["b"])),
                           p["fc2"]["w"], p["fc2"]["b"]))
    y = ref.gate(x, g)
    m = ref.sigmoid(ref.conv2d(y, p["conv1"]["w"], p["conv1"]["b"]))
    y = ref.gate(m, y)  # (N, 5, 5, 1) gating (N, 5, 5, 32): the order does not matter
    want = ref.fc(ref.gap(y), p["fc3"]["w"], p["fc3"]["b"])
    got = np.asarray(model.forward(params, state, x))
    # float32 through two small FCs, a 1x1 conv and a 32-channel FC: errors of a few ulp
    # of values near 1 (relative 1e-5 leaves an order of magnitude of room)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


# --- the table is complete ---------------------------------------------------------------


@pytest.mark.parametrize("op", sorted(MERGES))
def test_every_merge_is_complete(op):
    pytest.importorskip("jax")
    from patternnet.backend.merges import MERGE_FNS
    from patternnet.draw import draw_svg

    spec = MERGES[op]
    assert op in MERGE_FNS, f"merge {op!r} has no backend function (@combines)"
    assert hasattr(ref, ref.MERGE_REFERENCES[op]), f"merge {op!r} has no NumPy reference"
    from test_backend_gradients import COMPOSITES
    assert any(f" {op} " in src for src, _ in COMPOSITES.values()), (
        f"merge {op!r} has no finite-difference case in test_backend_gradients.COMPOSITES")
    doc = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    heading = re.search(r"^### 4\.5 .*$", doc, re.M).group(0)
    assert f"`( a {op} b )`".replace("|", "\\|") in heading.replace("|", "\\|"), heading
    svg = draw_svg(check(f"INPUT(8x8x4) -> (CONV(4) {op} CONV(4)) -> FC(10)"))
    assert f'class="merge {spec.junction}"' in svg
