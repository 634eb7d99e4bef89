"""``patternnet fmt --explicit`` and ``--diff``.

``--explicit`` writes out every argument a layer leaves to its default, where every
instantiation of that layer in the file agrees on the value (patternnet/explicit.py).
What it promises, tested here on golden files, on every example and on generated
programs: the result checks to the very same networks (every network, every member of
a family, every ``?`` choice: shapes, arguments, parameters, MACs), a second run
changes nothing, the result is in the canonical layout (``fmt --check`` passes), and
every comment survives.

Golden files: ``tests/golden_explicit/<name>.pn`` is an input and
``<name>.explicit.pn`` what ``fmt --explicit`` makes of it.  After an intended change,
regenerate them with

    .venv/bin/python -m pytest tests/test_fmt_explicit.py --update-goldens

(or ``PATTERNNET_UPDATE_GOLDEN=1``) and review the diff.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import strategies as S
from conftest import examples, slow_examples
from patternnet import cli
from patternnet.pipeline import expand
from patternnet.diagnostics import PatternNetError, ShapeError
from patternnet.explicit import float_text, literal, make_explicit
from patternnet.formatter import format_program, format_source, unified_diff
from patternnet.layers import LAYERS
from patternnet.parser import parse
from patternnet.resolver import select_all

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden_explicit"
CASES = sorted(p.name[:-3] for p in GOLDEN.glob("*.pn")
               if not p.name.endswith(".explicit.pn"))
EXAMPLES = sorted((ROOT / "examples").glob("*.pn"))


def explicit(text: str, file: str = "net.pn") -> str:
    return format_program(make_explicit(parse(text, file)))


# --- what "the same networks" means ----------------------------------------------------


def layer_facts(layer) -> tuple:
    """Everything a checked layer computes; not its notes (a bare layer says "bare"), nor
    which arguments were written.  Arguments by name: the checker lists bare ones last."""
    return (layer.path, layer.kind, dict(layer.args), layer.in_shape, layer.out_shape,
            layer.params, layer.state, layer.macs, layer.rf, layer.jump)


def networks(text: str) -> dict:
    """Every member of every network of ``text``, as ``patternnet expand`` lists them."""
    program = parse(text, "net.pn")
    out = {}
    for name in select_all(program):
        for m in expand(program, net=name).members:
            assert m.ok, m.error.render()
            net = m.net
            out[(name, m.bindings, m.choices)] = (
                net.input_shape, net.output_shape, net.totals,
                tuple(layer_facts(l) for l in net.layers))
    return out


def comments(text: str) -> Counter:
    return Counter(c.text for c in parse(text).comments)


def assert_promises(text: str) -> str:
    """The four promises of ``--explicit`` for ``text``; returns the explicit text."""
    new = explicit(text)
    assert networks(new) == networks(text)   # the very same networks
    assert explicit(new) == new              # idempotent
    assert format_source(new) == new         # passes `fmt --check`
    assert comments(new) == comments(text)   # comments kept
    return new


# --- golden files ----------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_golden(name, golden):
    source = (GOLDEN / f"{name}.pn").read_text(encoding="utf-8")
    golden(GOLDEN / f"{name}.explicit.pn", assert_promises(source))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples(path):
    assert_promises(path.read_text(encoding="utf-8"))


# --- the rule: written in only where every instantiation agrees ------------------------


def test_the_briefs_example():
    assert explicit("INPUT -> CONV -> RELU -> POOL -> FC") == (
        "INPUT(32x32x3)\n"
        "  -> CONV(32, kernel=3, stride=1, pad=same, dilation=1, groups=1, bias=true) -> RELU\n"
        "  -> POOL(window=2, stride=2, pad=0, ceil=false) -> FC(10, bias=true)\n")


def test_copies_of_a_repeat_that_differ_stay_implicit():
    new = explicit("INPUT -> [CONV -> POOL]*3 -> FC")  # 32, 64, 128 filters
    assert "[CONV(kernel=3, stride=1," in new
    new = explicit("INPUT -> [CONV -> RELU]*3 -> FC")  # 32 each time
    assert "[CONV(32, kernel=3," in new


def test_calls_of_a_block_with_different_arguments():
    text = "b(c, k) = CONV(c) -> CONV -> POOL(k)\nINPUT(64x64x3) -> b(8, 2) -> b(16, 2) -> FC\n"
    new = explicit(text)
    # the second CONV follows c: 8, then 16; the pool's stride follows k: 2 both times
    assert "-> CONV(kernel=3," in new
    assert "POOL(k, stride=2, pad=0, ceil=false)" in new
    new = explicit(text.replace("b(16, 2)", "b(8, 4)"))
    assert "POOL(k, pad=0, ceil=false)" in new


def test_networks_of_one_file_all_count():
    text = "body = CONV -> RELU\na = INPUT -> body -> FC\nb = INPUT -> CONV(64) -> body -> FC\n"
    assert "body = CONV(kernel=3," in explicit(text)
    # each network alone agrees with itself
    assert "body = CONV(32, kernel=3," in explicit(text.replace("-> CONV(64) ", ""))


def test_family_members_and_optional_choices_all_count():
    # `check` sees only the `?` kept (a CONV of 64 after the pool); expand also the
    # member without it (32), so the filters stay implicit
    new = explicit("INPUT -> CONV -> POOL? -> CONV -> FC")
    assert "-> CONV(kernel=3," in new
    new = explicit("n in 1..3\nINPUT -> CONV(8*n) -> CONV -> FC")
    assert "-> CONV(kernel=3," in new and "CONV(8*n, kernel=3," in new


def test_the_classifier_fc_only_when_always_the_classifier():
    new = explicit("head = FC -> RELU\nINPUT -> head -> head -> FC")
    assert new.startswith("head = FC(128, bias=true) -> RELU")
    new = explicit("head = FC\nINPUT -> head -> RELU -> head")  # hidden once, last once
    assert new.startswith("head = FC(bias=true)\n")


def test_written_arguments_stay_exactly_as_written():
    new = explicit("c = 4\nINPUT -> CONV(c*2, (3), s=((1)), bias=true) -> FC(units=c)")
    assert "CONV(c*2, (3), s=((1)), p=same, dilation=1, groups=1, bias=true)" in new
    assert "FC(units=c, bias=true)" in new


def test_keywords_follow_the_table_order_and_the_files_spelling():
    # a layer that spells `s=` gets `p=`; one that spells neither follows the file
    new = explicit("INPUT -> CONV(bias=false, s=2) -> CONV(pad=1) -> POOL(p=1) -> FC")
    assert "CONV(64, kernel=3, s=2, p=same, dilation=1, groups=1, bias=false)" not in new
    assert "CONV(32, kernel=3, s=2, p=same, dilation=1, groups=1, bias=false)" in new
    assert "CONV(32, kernel=3, stride=1, pad=1, dilation=1" in new
    assert "POOL(window=2, s=2, p=1, ceil=false)" in new
    assert "FC(10, bias=true)" in new
    mostly_short = explicit("INPUT -> CONV(s=1) -> CONV(p=1) -> CONV -> FC")
    assert "-> CONV(32, kernel=3, s=1, p=same," in mostly_short


def test_aliases_of_layer_names_are_kept():
    new = explicit("INPUT(8x8x3) -> MAXPOOL -> DENSE")
    assert "MAXPOOL(window=2, stride=2, pad=0, ceil=false) -> DENSE(10, bias=true)" in new


def test_layers_no_network_reaches_are_left_alone():
    new = explicit("spare = CONV -> POOL\nINPUT -> [CONV -> BN]*0 -> FC")
    assert "spare = CONV -> POOL\n" in new and "[CONV -> BN]*0" in new
    # not even checked: the arguments of an unused block need not be valid
    new = explicit("spare = POOL(size=5, s=0)\nINPUT -> FC")
    assert new.startswith("spare = POOL(size=5, s=0)\n")


def test_an_explicit_file_is_unchanged():
    new = explicit("INPUT -> CONV -> FC")
    assert explicit(new) == new
    assert explicit("INPUT(784) -> RELU -> GAP?") == "INPUT(784) -> RELU -> GAP?\n"


def test_values_are_written_as_literals():
    spec = {a.name: a for s in LAYERS.values() for a in s.args}
    assert format_program(parse("x = 1")) == "x = 1\n"
    cases = [(spec["kernel"], (3, 3), "3"), (spec["kernel"], (1, 7), "1x7"),
             (spec["pad"], (1, 1), "1"), (spec["pad"], (0, 3), "(0, 3)"),
             (spec["pad"], "same", "same"), (spec["shape"], (224, 224, 3), "224x224x3"),
             (spec["shape"], (784,), "784"), (spec["bias"], False, "false"),
             (spec["eps"], 1e-5, "1e-5"), (spec["rate"], 0.5, "0.5"),
             (spec["slope"], -0.25, "-0.25"), (spec["filters"], 64, "64")]
    from patternnet.formatter import _flat

    for argspec, value, text in cases:
        assert _flat(literal(argspec, value)) == text, (argspec.name, value)
    for value in (1e-5, 1e-4, 0.001, 1e16, 1.5e-7, 0.1, 2.0, 123.456):
        text = float_text(value)
        assert float(text) == value and "e-0" not in text and "e+" not in text


def test_a_file_that_does_not_check_cannot_be_made_explicit():
    with pytest.raises(ShapeError) as e:
        make_explicit(parse("INPUT(4x4x3) -> [CONV -> POOL]*3 -> FC"))
    assert e.value.diagnostics[0].code == "E301"
    # check passes (it keeps the `?`), but the member without it cannot add 8x8 to 4x4
    with pytest.raises(ShapeError) as e:
        make_explicit(parse("INPUT(8x8x3) -> (POOL? + POOL) -> FC"))
    assert e.value.diagnostics[0].code == "E304"
    assert "member ?=0" in e.value.diagnostics[0].message
    with pytest.raises(PatternNetError):
        make_explicit(parse("b = CONV -> RELU\n"))  # E207: no network to check


# --- generated programs ----------------------------------------------------------------

ITEMS = ("CONV", "CONV", "CONV(16)", "CONV(s=2)", "CONV(8, 1, p=valid)", "CONV(w)",
         "CONV(kernel=5, pad=2)", "CONV(w*2, bias=false)", "POOL?", "POOL?", "POOL",
         "AVGPOOL(3, s=1, p=1)", "MAXPOOL(3, s=2, p=1)?", "RELU", "BN", "BN(eps=1e-3)",
         "LRELU", "ELU(0.5)", "LRN", "DROPOUT(0.25)", "ID", "[CONV -> POOL?]*2",
         "[CONV -> RELU]*n", "[CONV -> RELU]*2?", "blk(16)", "blk(w, k=1)", "unit",
         "unit*2", "res(32)", "res(w)", "down", "down(1)", "(CONV -> BN + SKIP)",
         "(CONV | CONV(8, 1) | POOL(3, s=1, p=1))")
TAILS = ("FC", "FC", "head -> FC", "GAP -> FC(10)", "FC -> RELU -> FC", "GAP -> DENSE",
         "FLATTEN -> FC(units=7)", "GAP -> head -> head", "FC -> BN")
INPUTS = ("INPUT", "INPUT(16x16x3)", "INPUT(8x8x1)", "INPUT(shape=24x24x2)")
DEFINITIONS = (
    "w = 24", "n in 1..2",
    "blk(c, k=3) = CONV(c, k) -> RELU -> CONV -> POOL?",
    "unit = [CONV -> BN -> RELU]",
    "res(c) = (CONV(c, bias=false) -> BN -> RELU -> CONV(c) -> BN + SKIP) -> RELU",
    "down(s=2) = MAXPOOL(3, s=s, p=1)",
    "head = FC -> RELU",
)


@st.composite
def checkable_programs(draw):
    """A file of blocks and one to three networks that checks (every member): bare
    layers in repeats, blocks, families and `?`, with comments here and there."""
    comment = S.comments().map("  {}".format)
    lines = [d + draw(st.one_of(st.just(""), st.just(""), comment)) for d in DEFINITIONS]
    nets = draw(st.integers(1, 3))
    for i in range(nets):
        items = [draw(st.sampled_from(INPUTS))]
        items += draw(st.lists(st.sampled_from(ITEMS), max_size=6))
        items.append(draw(st.sampled_from(TAILS)))
        chain = items[0]
        for item in items[1:]:
            # a comment on its own line inside a chain, or trailing an element
            sep = draw(st.sampled_from([" -> ", " -> ", " -> ", "\n  # inside\n  -> "]))
            chain += sep + item
        name = "" if i == 0 and draw(st.booleans()) else f"net{i} = "
        lines.append(name + chain + draw(st.one_of(st.just(""), comment)))
    order = draw(st.permutations(lines))
    text = "\n".join(order) + "\n"
    assume(_checks(text))
    return text


def _checks(text: str) -> bool:
    try:
        make_explicit(parse(text))
        return True
    except PatternNetError:
        return False


# Each example checks every network, family member and `?` choice twice (before and
# after): 25 and 40 in the quick suite, the same ones every run; checkable_programs
# assume()s a program that checks.
@examples(25, fixed=True, filtering=True)
@given(checkable_programs())
def test_generated_programs(text):
    assert_promises(text)


@pytest.mark.slow
@slow_examples(1000, filtering=True)
@given(checkable_programs())
def test_generated_programs_many(text):
    assert_promises(text)


@examples(40, fixed=True, filtering=True)
@given(S.programs())
def test_any_parsed_program_is_explicit_or_refused(text):
    refused_or_promised(text)


@pytest.mark.slow
@slow_examples(3000, filtering=True)
@given(S.programs())
def test_any_parsed_program_is_explicit_or_refused_many(text):
    refused_or_promised(text)


def refused_or_promised(text: str) -> None:
    """On arbitrary programs (most do not resolve): a clean refusal, or the promises."""
    try:
        explicit(text)
    except PatternNetError:
        return
    assert_promises(text)


# --- the command line ------------------------------------------------------------------


def pn(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ}
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run([sys.executable, "-m", "patternnet", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture
def main(capsys, monkeypatch, tmp_path):
    """``cli.main`` in-process in tmp_path: (exit code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)

    def call(*args: str):
        capsys.readouterr()
        code = cli.main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return call


SEED = "INPUT->CONV->RELU->POOL->FC   # the seed\n"
BAD = "INPUT(4x4x3) -> [CONV -> POOL]*3 -> FC\n"


def write(dir: Path, name: str, text: str) -> Path:
    p = dir / name
    p.write_text(text, encoding="utf-8", newline="")
    return p


def test_cli_explicit_rewrites_in_place(tmp_path, main):
    p = write(tmp_path, "seed.pn", SEED)
    r = pn("fmt", "--explicit", "seed.pn", cwd=tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (0, "reformatted seed.pn\n", "")
    assert p.read_text() == explicit(SEED)
    assert "# the seed" in p.read_text()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["seed.pn"]  # no temp files left
    assert main("fmt", "--explicit", "seed.pn") == (0, "", "")  # a second run: nothing
    assert main("fmt", "--check", "seed.pn") == (0, "", "")     # the canonical layout
    assert main("fmt", "--explicit", "--check", "seed.pn") == (0, "", "")


def test_cli_explicit_check_lists_without_touching(tmp_path, main):
    p = write(tmp_path, "seed.pn", SEED)
    before = p.stat().st_mtime_ns
    assert main("fmt", "--explicit", "--check", "seed.pn") == (1, "would reformat seed.pn\n", "")
    assert p.read_text() == SEED and p.stat().st_mtime_ns == before
    write(tmp_path, "plain.pn", format_source(SEED))
    # the layout alone is canonical: plain --check passes, --explicit --check does not
    assert main("fmt", "--check", "plain.pn")[0] == 0
    assert main("fmt", "--explicit", "--check", "plain.pn")[0] == 1


def test_cli_diff(tmp_path):
    p = write(tmp_path, "seed.pn", SEED)
    write(tmp_path, "clean.pn", "INPUT -> FC\n")
    r = pn("fmt", "--diff", "seed.pn", "clean.pn", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr == ""
    assert r.stdout == ("--- a/seed.pn\n+++ b/seed.pn\n@@ -1 +1 @@\n"
                        "-INPUT->CONV->RELU->POOL->FC   # the seed\n"
                        "+INPUT -> CONV -> RELU -> POOL -> FC  # the seed\n")
    assert p.read_text() == SEED
    r = pn("fmt", "--diff", "clean.pn", cwd=tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_cli_diff_explicit_applies_as_a_patch(tmp_path, main):
    p = write(tmp_path, "seed.pn", SEED.rstrip("\n"))  # no final newline
    code, out, err = main("fmt", "--diff", "--explicit", "seed.pn")
    assert code == 1 and err == ""
    assert out.startswith("--- a/seed.pn\n+++ b/seed.pn\n")
    assert "\\ No newline at end of file\n" in out
    assert out == unified_diff("seed.pn", SEED.rstrip("\n"), explicit(SEED))
    assert p.read_text() == SEED.rstrip("\n")
    # with --check too: the diff, then the list
    code, out2, _ = main("fmt", "--diff", "--check", "--explicit", "seed.pn")
    assert code == 1 and out2 == out + "would reformat seed.pn\n"


def test_unified_diff_replays_to_the_new_text():
    old, new = "a\nb\nc", "a\nB\nc\nd\n"
    diff = unified_diff("x.pn", old, new)
    assert diff.splitlines()[:2] == ["--- a/x.pn", "+++ b/x.pn"]
    assert unified_diff("x.pn", new, new) == ""
    kept = [l[1:] for l in diff.splitlines(keepends=True)[3:] if l[:1] in " +"]
    assert "".join(kept) == new


def test_cli_explicit_refuses_a_file_that_does_not_check(tmp_path, main):
    p = write(tmp_path, "bad.pn", BAD)
    good = write(tmp_path, "good.pn", SEED)
    check = pn("check", "bad.pn", cwd=tmp_path)
    r = pn("fmt", "--explicit", "bad.pn", "good.pn", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr == ""
    assert "error[E301]" in r.stdout
    assert r.stdout == check.stdout + "reformatted good.pn\n"  # the diagnostics check prints
    assert p.read_text() == BAD                                 # untouched
    assert good.read_text() == explicit(SEED)                   # the others still done
    code, out, _ = main("fmt", "--explicit", "--diff", "bad.pn")
    assert code == 1 and "error[E301]" in out and "---" not in out
    assert p.read_text() == BAD


def test_cli_explicit_does_not_import_jax_or_numpy(tmp_path):
    write(tmp_path, "seed.pn", SEED)
    code = ("import sys, patternnet.cli as c\n"
            "rc = c.main(['fmt', '--explicit', '--diff', 'seed.pn'])\n"
            "print('RESULT', rc, 'jax' in sys.modules, 'numpy' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert r.stdout.splitlines()[-1] == "RESULT 1 False False", r.stdout + r.stderr


def test_the_reference_example():
    """docs/language.md §15.1 shows a file and what `fmt --explicit` makes of it."""
    from doc_snippets import DOC, fenced_blocks

    text = DOC.read_text(encoding="utf-8")
    start = text.index("### 15.1 ")
    section = text[start:text.index("\n## ", start)]
    before, after = [b.text for b in fenced_blocks(section) if b.kind == "pn"][:2]
    assert explicit(before) == after
