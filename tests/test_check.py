"""The walker: layer paths, totals, the light import, families and their limits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from patternnet import limits
from patternnet.pipeline import CheckedFamily, check, expand
from patternnet.checker import CheckedNet, CRepeat, CSeq
from patternnet.diagnostics import PatternNetError, ResolveError, ShapeError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def paths(src, **kw):
    return [l.path for l in check(src, **kw).layers]


# --- paths -----------------------------------------------------------------------------

class TestPaths:
    def test_input_and_per_kind_counters(self):
        assert paths("INPUT(8x8x3) -> CONV(4) -> RELU -> CONV(4) -> RELU -> POOL -> FC(2)") == [
            "input", "conv1", "relu1", "conv2", "relu2", "pool1", "fc1"]

    def test_counters_continue_across_repeat_copies(self):
        assert paths("INPUT(8x8x3) -> [CONV(4) -> RELU]*3 -> FC(2)") == [
            "input", "conv1", "relu1", "conv2", "relu2", "conv3", "relu3", "fc1"]

    def test_nested_repeats(self):
        got = paths("INPUT(16x16x3) -> [[CONV(4) -> RELU]*2 -> POOL]*2 -> FC(2)")
        assert got == ["input", "conv1", "relu1", "conv2", "relu2", "pool1",
                       "conv3", "relu3", "conv4", "relu4", "pool2", "fc1"]

    def test_aliases_use_the_canonical_name(self):
        assert paths("INPUT(8x8x3) -> MAXPOOL -> DENSE(2)") == ["input", "pool1", "fc1"]

    def test_block_scopes(self):
        src = """
        conv_bn(c) = CONV(c, bias=false) -> BN -> RELU
        down(c) = conv_bn(c) -> conv_bn(c) -> POOL
        INPUT(16x16x3) -> conv_bn(8) -> down(16) -> down(32) -> FC(10)
        """
        assert paths(src) == [
            "input", "conv_bn1.conv1", "conv_bn1.bn1", "conv_bn1.relu1",
            "down1.conv_bn1.conv1", "down1.conv_bn1.bn1", "down1.conv_bn1.relu1",
            "down1.conv_bn2.conv1", "down1.conv_bn2.bn1", "down1.conv_bn2.relu1", "down1.pool1",
            "down2.conv_bn1.conv1", "down2.conv_bn1.bn1", "down2.conv_bn1.relu1",
            "down2.conv_bn2.conv1", "down2.conv_bn2.bn1", "down2.conv_bn2.relu1", "down2.pool1",
            "fc1"]

    def test_block_calls_in_a_repeat_are_counted_on(self):
        src = "blk = CONV(4) -> RELU\nINPUT(8x8x3) -> blk*3 -> FC(2)"
        assert paths(src) == ["input", "blk1.conv1", "blk1.relu1", "blk2.conv1", "blk2.relu1",
                              "blk3.conv1", "blk3.relu1", "fc1"]

    def test_branches_and_skip(self):
        src = "INPUT(8x8x4) -> (CONV(8, 1) | CONV(4) -> CONV(4)) -> (CONV(12) -> BN + SKIP)"
        assert paths(src) == ["input", "conv1", "conv2", "conv3", "conv4", "bn1", "skip1"]

    def test_resnet50(self):
        n = check(str(EXAMPLES / "resnet.pn"), net="resnet50")
        by_path = {l.path: l for l in n.layers}
        l = by_path["stage2.bottleneck1.conv2"]
        assert l.kind == "CONV"
        assert l.in_shape == (56, 56, 128) and l.out_shape == (28, 28, 128)
        assert l.arg("stride") == (2, 2)
        assert by_path["stem1.conv1"].out_shape == (112, 112, 64)
        assert by_path["stem1.pool1"].out_shape == (56, 56, 64)
        assert by_path["stage1.bottleneck1.skip1"].params == 64 * 256 + 2 * 256   # projects
        assert by_path["stage1.bottleneck2.skip1"].params == 0                    # identity
        assert by_path["stage2.bottleneck1.skip1"].arg("stride") == (2, 2)
        assert "stage4.bottleneck3.conv3" in by_path
        assert "stage4.bottleneck4.conv1" not in by_path
        assert n.layers[-1].path == "head1.fc1"
        assert len(by_path) == len(n.layers)

    def test_googlenet_inception_paths(self):
        n = check(str(EXAMPLES / "googlenet.pn"))
        got = [l.path for l in n.layers if l.path.startswith("inception1.")]
        assert got[:4] == ["inception1.cbr1.conv1", "inception1.cbr1.bn1",
                           "inception1.cbr1.relu1", "inception1.cbr2.conv1"]
        assert "inception1.pool1" in got and "inception1.cbr6.conv1" in got
        assert "inception9.cbr6.conv1" in {l.path for l in n.layers}

    def test_paths_are_stable(self):
        a = "INPUT(8x8x3) -> [CONV(4) -> RELU]*2 -> FC(2)"
        b = "# a comment\nINPUT(8x8x3)\n  -> [ CONV(4)   # the conv\n  -> RELU ]*2\n  -> FC(2)"
        assert paths(a) == paths(a) == paths(b)
        # adding a layer at the end renames nothing before it
        assert paths(a + " -> RELU")[:-1] == paths(a)

    def test_optional_left_out_takes_no_number(self):
        got = paths("INPUT(4x4x3) -> [CONV(4) -> POOL?]*3 -> CONV(4) -> POOL? -> FC(2)")
        assert got == ["input", "conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "fc1"]

    def test_every_example_has_unique_paths(self):
        for file, net in [("resnet.pn", "resnet152"), ("googlenet.pn", None),
                          ("vgg.pn", "vgg19"), ("alexnet.pn", "alexnet")]:
            n = check(str(EXAMPLES / file), net=net)
            ps = [l.path for l in n.layers]
            assert len(set(ps)) == len(ps), file


# --- the checked net -------------------------------------------------------------------

class TestCheckedNet:
    SRC = "INPUT(8x8x3) -> CONV(4) -> BN -> RELU -> POOL -> FC(10)"

    def test_totals(self):
        n = check(self.SRC)
        assert isinstance(n, CheckedNet)
        assert n.params == n.totals.params == (27 * 4 + 4) + 8 + (64 * 10 + 10)
        assert n.totals.state == 8
        assert n.macs == n.totals.macs == 8 * 8 * 4 * 27 + 640
        assert n.totals.flops == 2 * n.macs
        # every layer's output elements after the input
        assert n.totals.activations == 256 * 3 + 64 + 10
        assert n.output_shape == (10,)
        assert n.input_shape == (8, 8, 3)

    def test_layer_fields(self):
        n = check(self.SRC)
        conv = n.layers[1]
        assert (conv.kind, conv.in_shape, conv.out_shape) == ("CONV", (8, 8, 3), (8, 8, 4))
        assert conv.arg("filters") == 4 and conv.arg("kernel") == (3, 3)
        assert conv.given == ("filters",)
        assert conv.span.line == 1 and conv.span.col == 17
        assert conv.activations == 256

    def test_graph_keeps_repeat_copies(self):
        n = check("INPUT(8x8x3) -> [CONV(4) -> RELU]*2 -> FC(2)")
        rep = n.graph.items[1]
        assert isinstance(rep, CRepeat) and len(rep.copies) == 2
        assert all(isinstance(c, CSeq) for c in rep.copies)
        assert [l.path for l in rep.copies[1].items] == ["conv2", "relu2"]

    def test_named_network(self):
        src = "a = INPUT(8x8x3) -> FC(2)\nb = INPUT(4) -> FC(3)"
        assert check(src, net="b").name == "b"
        assert check(src, net="b").params == 15
        with pytest.raises(ResolveError):
            check(src)

    def test_errors_are_patternnet_errors(self):
        with pytest.raises(PatternNetError):
            check("INPUT(1x1x3) -> POOL")

    @pytest.mark.parametrize("src", [
        "stem = INPUT(16x16x3) -> CONV(8)\nstem -> FC(10)",
        "net(c) = INPUT(16x16x3) -> CONV(c) -> FC(10)\nmine = net(8)",
    ])
    def test_network_starting_with_input_through_a_block(self, src):
        n = check(src)
        assert n.input_shape == (16, 16, 3)
        assert n.output_shape == (10,)


# --- import weight ---------------------------------------------------------------------

def test_check_does_not_import_jax_or_numpy():
    code = (
        "import sys, json\n"
        "import patternnet\n"
        "from patternnet.pipeline import check, expand\n"
        f"n = check({str(EXAMPLES / 'resnet.pn')!r}, net='resnet50')\n"
        f"f = expand({str(EXAMPLES / 'cs231n.pn')!r})\n"
        "try:\n"
        "    check('INPUT(1x1x3) -> POOL')\n"
        "except patternnet.ShapeError as e:\n"
        "    e.render()\n"
        "print(json.dumps({'params': n.params, 'members': len(f.members),\n"
        "                  'heavy': sorted(m for m in sys.modules\n"
        "                                  if m.split('.')[0] in ('jax', 'jaxlib', 'numpy'))}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["params"] == 25_557_032 and got["members"] == 180
    assert got["heavy"] == []


# --- families --------------------------------------------------------------------------

FAILING = "n in 1..4\nINPUT(8x8x3) -> [CONV(8, 3, p=valid) -> RELU]*n -> POOL? -> FC(10)"


class TestFamilies:
    def test_check_checks_every_member(self):
        fam = check("n in 1..2\nINPUT(8x8x3) -> [CONV(4) -> POOL?]*n -> FC(2)")
        assert isinstance(fam, CheckedFamily)
        labels = [m.label for m in fam.members]
        assert sorted(labels) == sorted(["n=1 ?=1", "n=1 ?=0", "n=2 ?=11", "n=2 ?=10",
                                         "n=2 ?=01", "n=2 ?=00"])
        assert all(m.ok and isinstance(m.net, CheckedNet) for m in fam.members)
        assert [f.name for f in fam.free] == ["n"]

    def test_each_binding_is_its_own_net(self):
        fam = check("c in 1..3\nINPUT(4) -> FC(c)")
        assert {m.bindings: m.net.params for m in fam.members} == {
            (("c", 1),): 5, (("c", 2),): 10, (("c", 3),): 15}
        assert {m.net.bindings for m in fam.members} == {(("c", c),) for c in (1, 2, 3)}

    def test_failing_member_raises_naming_the_binding(self):
        with pytest.raises(ShapeError) as info:
            check(FAILING)
        (d,) = info.value.diagnostics
        assert d.code == "E301"
        assert d.message.startswith("member n=4: CONV has no output")
        assert "member n=4" in info.value.render()

    def test_only_failing_members_are_reported(self):
        with pytest.raises(ShapeError) as info:
            check("n in 1..5\nINPUT(8x8x3) -> [CONV(8, 3, p=valid)]*n -> FC(10)")
        assert [d.message.split(":")[0] for d in info.value.diagnostics] == [
            "member n=4", "member n=5"]

    def test_define_fixes_a_range(self):
        n = check(FAILING, define={"n": 2})
        # n fixed: a single network, its `?` kept where it fits
        assert isinstance(n, CheckedNet)
        assert n.params == 1138

    def test_expand_lists_members_with_params_and_macs(self):
        fam = expand(FAILING)
        got = {m.label: ((m.net.params, m.net.macs) if m.ok else m.error.diagnostics[0].code)
               for m in fam.members}
        assert got == {
            "n=1 ?=1": (954, 8_496), "n=1 ?=0": (3_114, 10_656),
            "n=2 ?=1": (1_138, 17_312), "n=2 ?=0": (2_098, 18_272),
            "n=3 ?=1": (1_482, 19_376), "n=3 ?=0": (1_722, 19_616),
            "n=4": "E301",
        }
        assert len(fam.failures) == 1

    def test_expand_a_single_network(self):
        fam = expand("INPUT(8x8x3) -> CONV(4) -> FC(10)")
        assert [m.label for m in fam.members] == ["(single)"]
        fam = expand("INPUT(8x8x3) -> CONV(4) -> POOL? -> FC(10)")
        assert {m.label: m.net.params for m in fam.members} == {"?=1": 762, "?=0": 2682}

    def test_a_question_mark_that_cannot_fit_is_one_member(self):
        fam = expand("INPUT(1x1x3) -> POOL? -> FC(2)")
        assert [m.label for m in fam.members] == ["?=0"]

    def test_member_cap_on_ranges(self):
        with pytest.raises(ResolveError) as info:
            expand("a in 1..5000\nINPUT(4) -> FC(a)")
        assert info.value.diagnostics[0].code == "E216"
        assert f"{limits.MAX_FAMILY_MEMBERS:,}" in info.value.diagnostics[0].message

    def test_member_cap_counting_question_marks(self):
        src = "INPUT(4) -> " + " -> ".join(["RELU?"] * 13) + " -> FC(2)"   # 2**13 members
        with pytest.raises(ResolveError) as info:
            expand(src)
        d = info.value.diagnostics[0]
        assert d.code == "E216" and (d.span.line, d.span.col) == (1, 13)  # the first `?`
        assert "`?`" in d.help and "1 | INPUT(4) -> RELU? -> RELU?" in info.value.render()
        with pytest.raises(ResolveError):
            check("n in 1..2\n" + src.replace("FC(2)", "FC(n)"))

    def test_layer_budget_refuses_before_checking(self):
        # 602 members of 2n + 2 layers: 363,006 in all, counted from the resolved
        # members alone (a check of each would take about 15 s)
        with pytest.raises(ResolveError) as info:
            expand("n in 0..601\nINPUT -> [CONV -> RELU]*n -> FC")
        d = info.value.diagnostics[0]
        assert d.code == "E217" and d.span.line == 1
        assert "602 members have 363,006 layers" in d.message
        assert f"{limits.MAX_FAMILY_LAYERS:,}" in d.message and "`n` alone" in d.help

    def test_layer_budget_counts_each_question_mark_check(self, monkeypatch):
        # the limit lowered to 2,000 (the real one takes 200,000 layers of checking, 6 s):
        # 2 bindings x 8 on/offs of the ?s, each check 304 layers, is past it at the
        # seventh check, though the bindings alone (608 layers) are well under
        monkeypatch.setattr(limits, "MAX_FAMILY_LAYERS", 2000)
        src = "n in 1..2\nINPUT(4) -> FC(3)*300 -> RELU? -> RELU? -> RELU? -> FC(n)"
        with pytest.raises(ResolveError) as info:
            check(src)
        d = info.value.diagnostics[0]
        assert d.code == "E217" and (d.span.line, d.span.col) == (2, 26)
        assert "more than 2,000 layers" in d.message
        assert expand(src.replace("300", "30")).members[-1].ok

    def test_just_under_the_cap(self):
        src = "INPUT(4) -> " + " -> ".join(["RELU?"] * 12) + " -> FC(2)"   # 4096 members
        assert len(expand(src).members) == limits.MAX_FAMILY_MEMBERS


# --- a `?` that does not fit ------------------------------------------------------------

class TestLeftOutLeavesNoTrace:
    """A `?` whose body fails is checked as if it were not written: nothing its body did
    before failing (names, receptive field, bare-CONV doubling, lints, nested `?`, the
    last parameterised layer, copy trails) may reach the layers after it.  The old hand-written
    undo listed the walk's fields one by one, so a field added to the walk leaked."""

    # every layer of the body changes some of the walk's state, then CONV on a vector
    # fails; the RELU after the `?` would be linted (E323) were the body's last RELU kept
    BODY = "POOL -> blk -> CONV(64) -> RELU -> RELU? -> RELU -> FC -> FC(4) -> RELU -> CONV"

    def src(self, optional: bool, tail: str = "") -> str:
        body = f" -> [{self.BODY}]?" if optional else ""
        return ("blk = CONV -> RELU\n"
                f"INPUT(16x16x3) -> CONV(8) -> [CONV -> POOL{body} -> RELU -> CONV -> blk"
                f"{tail}]*2 -> FC -> FC")

    @staticmethod
    def without_left_out(n: CheckedNet) -> CheckedNet:
        """``n`` less what leaving a `?` out adds: its N330 notes and its choices."""
        return CheckedNet(n.name, n.input_shape, n.output_shape, n.graph, n.layers, n.totals,
                          tuple(d for d in n.notes if d.code != "N330"), n.bindings, (),
                          n.file)

    def test_the_net_is_the_one_written_without_it(self):
        kept, plain = check(self.src(True)), check(self.src(False))
        assert [d.code for d in kept.notes] == ["N330", "N330"]  # one per copy
        assert kept.choices == (False, False)  # the nested RELU? is undone with its body
        assert self.without_left_out(kept) == plain
        # what the comparison covers, spelled out: paths, receptive fields, filters
        assert [(l.path, l.rf, l.out_shape) for l in kept.layers] == [
            (l.path, l.rf, l.out_shape) for l in plain.layers]
        assert plain.notes == ()  # no RELU -> RELU lint from the body's last RELU

    def test_errors_after_it_tell_the_same_copy_trails(self):
        # the third copy's POOL meets a 1x1 map; the body's POOL must not be in the trails
        def error(optional):
            with pytest.raises(ShapeError) as info:
                check(self.src(optional, " -> POOL").replace("]*2", "]*3"))
            return info.value.diagnostics
        kept, plain = error(True), error(False)
        assert [d.code for d in kept if d.code != "N330"] == [d.code for d in plain]
        first = next(d for d in kept if d.code != "N330")
        assert (first.message, first.notes, first.label, first.span) == (
            plain[0].message, plain[0].notes, plain[0].label, plain[0].span)
        assert "copy 1: 16→8→4, copy 2: 4→2→1, copy 3: 1" in first.notes[0]

    def test_a_long_repeat_lists_its_first_and_last_copy_trails(self):
        with pytest.raises(ShapeError) as info:
            check("INPUT(1024x1024x3) -> [CONV(8) -> POOL]*20 -> FC(10)")
        assert info.value.diagnostics[0].notes[0] == (
            "copy 1: 1024→512, copy 2: 512→256, copy 3: 256→128, copy 4: 128→64, "
            "... 4 more, copy 9: 4→2, copy 10: 2→1, copy 11: 1, then POOL")

    def test_a_left_out_bare_fc_does_not_take_the_classifiers_units(self):
        # the first pass leaves the ? out (FC's 128 hidden units do not add to 10), so the
        # final FC is the second parameterised layer; on the second pass the ?'s own FC
        # is the second one met, and must not get --classes for it
        net = check("INPUT(4) -> FC(10) -> [(FC + FC(10))]? -> FC", classes=7)
        assert net.choices == (False,) and net.output_shape == (7,)
        note = next(d for d in net.notes if d.code == "N330")
        assert "128 and 10" in note.notes[0]

    def test_left_out_in_many_copies_is_told_three_times(self):
        net = check("INPUT -> [[CONV -> RELU]*2 -> POOL?]*12 -> FC")
        told = [d for d in net.notes if d.code == "N330"]
        assert [d.message.split("(")[1].split(")")[0] for d in told] == [
            "copy 6 of 12", "copy 7 of 12", "copy 12 of 12"]
        assert told[-1].notes[-1] == (
            "also left out in the 4 copies between the two above and this one")
        assert len(check("INPUT -> [[CONV -> RELU]*2 -> POOL?]*9 -> FC").notes) == 4

    def test_its_bare_fc_is_not_the_classifier(self):
        # the body's last parameterised layer is a bare FC; were it counted, a second pass
        # would give it --classes units, and (FC(10) + FC) would then fit
        kept = check("INPUT(8x8x3) -> CONV(4) -> FLATTEN -> FC(10) -> [FC(4) -> (FC(10) + FC)]?")
        plain = check("INPUT(8x8x3) -> CONV(4) -> FLATTEN -> FC(10)")
        assert kept.choices == (False,)
        assert self.without_left_out(kept) == plain


def test_block_names_ending_in_digits_get_distinct_paths():
    """Block `a1`'s 11th copy and block `a11`'s first were both `a111`: two layers on one
    path, which the backend gave one set of weights."""
    net = check("a1 = CONV(4, 1)\na11 = CONV(8, 1)\nINPUT(4x4x4) -> a1*11 -> a11 -> GAP -> FC(2)")
    paths = [l.path for l in net.layers]
    assert len(set(paths)) == len(paths)
    assert "a1_11.conv1" in paths and "a11_1.conv1" in paths
