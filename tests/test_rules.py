"""Shape rules, one layer kind at a time: exact shapes, parameters, state and MACs.

Each test checks a tiny network through the public ``check`` and looks at one layer,
so the rule, the defaults filled in by the walker and the totals are tested together.
The Hypothesis properties compare the spatial rule with a brute-force count of window
positions written from the definition, XLA's SAME split and the CONV/FC formulas.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import examples, slow_examples

from patternnet.pipeline import check
from patternnet.diagnostics import ShapeError


def net(src, **kw):
    return check(src, **kw)


def layer(src, path=None, **kw):
    """The layer called ``path`` (default: the last one) of the checked network."""
    n = check(src, **kw)
    if path is None:
        return n.layers[-1]
    return {l.path: l for l in n.layers}[path]


def error(src, **kw):
    with pytest.raises(ShapeError) as info:
        check(src, **kw)
    return info.value.diagnostics[0]


def codes(diags):
    return [d.code for d in diags]


# --- CONV ------------------------------------------------------------------------------

class TestConv:
    def test_stride_and_integer_padding(self):
        l = layer("INPUT(227x227x3) -> CONV(96, 11, s=4, p=0)")
        assert l.out_shape == (55, 55, 96)
        assert l.params == 11 * 11 * 3 * 96 + 96 == 34_944
        assert l.macs == 55 * 55 * 96 * 11 * 11 * 3 == 105_415_200
        assert l.state == 0
        assert l.arg("padding") == ((0, 0), (0, 0))

    def test_integer_padding_resnet_pool_and_conv(self):
        assert layer("INPUT(112x112x64) -> POOL(3, s=2, p=1)").out_shape == (56, 56, 64)
        l = layer("INPUT(56x56x64) -> CONV(128, 3, s=2, p=1, bias=false)")
        assert l.out_shape == (28, 28, 128)
        assert l.params == 9 * 64 * 128

    def test_pad_larger_than_half_the_kernel(self):
        # CONV allows any padding: (8 + 2*3 - 3)/1 + 1 = 12
        l = layer("INPUT(8x8x2) -> CONV(4, 3, p=3)")
        assert l.out_shape == (12, 12, 4)
        assert l.macs == 12 * 12 * 4 * 9 * 2

    def test_per_axis_padding_and_kernel(self):
        l = layer("INPUT(10x12x2) -> CONV(4, 3x5, s=1x2, p=(0, 2))")
        # H: (10 - 3)/1 + 1 = 8;  W: ⌊(12 + 2*2 - 5)/2⌋ + 1 = 5 + 1 = 6
        assert l.out_shape == (8, 6, 4)
        assert l.arg("padding") == ((0, 0), (2, 2))
        assert l.params == 3 * 5 * 2 * 4 + 4

    def test_same_stride_1_keeps_the_size(self):
        l = layer("INPUT(17x17x3) -> CONV(8, 5)")
        assert l.out_shape == (17, 17, 8)
        assert l.arg("padding") == ((2, 2), (2, 2))

    def test_same_even_kernel_puts_the_extra_on_the_high_side(self):
        # total = (8 - 1)*1 + 2 - 8 = 1 -> 0 before, 1 after
        l = layer("INPUT(8x8x1) -> CONV(1, 2)")
        assert l.out_shape == (8, 8, 1)
        assert l.arg("padding") == ((0, 1), (0, 1))

    def test_same_stride_2_even_input(self):
        # ResNet's stem with p=same: out = ceil(224/2) = 112, total = 111*2 + 7 - 224 = 5
        l = layer("INPUT(224x224x3) -> CONV(64, 7, s=2)")
        assert l.out_shape == (112, 112, 64)
        assert l.arg("padding") == ((2, 3), (2, 3))

    def test_same_stride_2_odd_and_even_totals(self):
        # 8: out 4, total = 3*2 + 3 - 8 = 1 -> (0, 1);  7: out 4, total = 6 + 3 - 7 = 2 -> (1, 1)
        assert layer("INPUT(8x8x1) -> CONV(1, 3, s=2)").arg("padding") == ((0, 1), (0, 1))
        l = layer("INPUT(7x7x1) -> CONV(1, 3, s=2)")
        assert l.out_shape == (4, 4, 1)
        assert l.arg("padding") == ((1, 1), (1, 1))

    def test_same_stride_larger_than_kernel_needs_no_padding(self):
        # out = ceil(10/4) = 3, total = max(2*4 + 1 - 10, 0) = 0
        l = layer("INPUT(10x10x1) -> CONV(1, 1, s=4)")
        assert l.out_shape == (3, 3, 1)
        assert l.arg("padding") == ((0, 0), (0, 0))

    def test_same_with_dilation(self):
        # effective kernel 2*(3 - 1) + 1 = 5: total 4 -> (2, 2)
        l = layer("INPUT(8x8x1) -> CONV(1, 3, dilation=2)")
        assert l.out_shape == (8, 8, 1)
        assert l.arg("padding") == ((2, 2), (2, 2))

    def test_valid(self):
        l = layer("INPUT(32x32x3) -> CONV(6, 5, p=valid)")
        assert l.out_shape == (28, 28, 6)
        assert l.arg("padding") == ((0, 0), (0, 0))

    def test_dilation(self):
        # (32 - 2*2 - 1)/1 + 1 = 28, as docs/language.md's worked example
        l = layer("INPUT(32x32x3) -> CONV(64, 3, p=valid, dilation=2)")
        assert l.out_shape == (28, 28, 64)
        assert l.params == 9 * 3 * 64 + 64          # dilation adds no weights
        assert l.macs == 28 * 28 * 64 * 9 * 3

    def test_groups(self):
        l = layer("INPUT(27x27x96) -> CONV(256, 5, p=2, groups=2)")
        assert l.out_shape == (27, 27, 256)
        assert l.params == 5 * 5 * 48 * 256 + 256 == 307_456
        assert l.macs == 27 * 27 * 256 * 25 * 48

    def test_depthwise(self):
        l = layer("INPUT(8x8x16) -> CONV(16, 3, groups=16, bias=false)")
        assert l.params == 9 * 16
        assert l.macs == 8 * 8 * 16 * 9

    @pytest.mark.parametrize("src, c, k", [
        ("INPUT(8x8x6) -> CONV(9, groups=2)", 6, 9),
        ("INPUT(8x8x5) -> CONV(8, groups=2)", 5, 8),
    ])
    def test_groups_must_divide_channels_and_filters(self, src, c, k):
        d = error(src)
        assert d.code == "E303"
        assert f"({c})" in d.message and f"({k})" in d.message and "groups=2" in d.message

    def test_bias_false(self):
        assert layer("INPUT(8x8x3) -> CONV(4, 3, bias=false)").params == 3 * 3 * 3 * 4
        assert layer("INPUT(8x8x3) -> CONV(4, 3)").params == 3 * 3 * 3 * 4 + 4

    def test_one_by_one_input(self):
        l = layer("INPUT(1x1x64) -> CONV(10, 3)")            # same: 1 -> 1
        assert l.out_shape == (1, 1, 10)
        assert l.macs == 10 * 9 * 64                            # taps on padding still count
        assert layer("INPUT(1x1x64) -> CONV(10, 1, p=valid)").out_shape == (1, 1, 10)
        assert error("INPUT(1x1x64) -> CONV(10, 3, p=valid)").code == "E301"

    def test_stride_larger_than_kernel(self):
        # windows at 0, 3, 6 of an 8-wide input: (8 - 1)/3 + 1 = 3 (7/3 does not divide)
        n = net("INPUT(8x8x2) -> CONV(4, 1, s=3, p=0)")
        assert n.output_shape == (3, 3, 4)
        assert n.layers[-1].macs == 3 * 3 * 4 * 2
        assert codes(n.notes) == ["E320"]

    def test_non_square(self):
        l = layer("INPUT(20x10x3) -> CONV(4, 3, s=2, p=1)")
        assert l.out_shape == (10, 5, 4)


# --- POOL / AVGPOOL ----------------------------------------------------------------------

class TestPool:
    @pytest.mark.parametrize("kind", ["POOL", "MAXPOOL", "AVGPOOL"])
    def test_default_is_2x2_stride_2(self, kind):
        l = layer(f"INPUT(8x6x5) -> {kind}")
        assert l.out_shape == (4, 3, 5)
        assert l.arg("window") == (2, 2) and l.arg("stride") == (2, 2)
        assert (l.params, l.state, l.macs) == (0, 0, 0)

    def test_stride_defaults_to_the_window(self):
        l = layer("INPUT(9x9x4) -> POOL(3)")
        assert l.arg("stride") == (3, 3)
        assert l.out_shape == (3, 3, 4)

    def test_floor(self):
        assert layer("INPUT(5x5x1) -> POOL").out_shape == (2, 2, 1)          # (5 - 2)/2 + 1

    def test_ceil_keeps_a_partial_window(self):
        assert layer("INPUT(5x5x1) -> POOL(2, ceil=true)").out_shape == (3, 3, 1)
        assert layer("INPUT(5x5x1) -> AVGPOOL(2, ceil=true)").out_shape == (3, 3, 1)

    def test_ceil_last_window_must_start_inside_the_input(self):
        # ceil((5 + 2 - 2)/2) + 1 = 4, but the 4th window would start at 3*2 - 1 = 5 >= 5
        assert layer("INPUT(5x5x1) -> POOL(2, p=1, ceil=true)").out_shape == (3, 3, 1)

    def test_ceil_with_padding_keeps_window_starting_inside(self):
        # PyTorch: ceil((6 + 2 - 3)/2) + 1 = 4, (4 - 1)*2 = 6 < 6 + 1 -> 4 is kept
        assert layer("INPUT(6x6x1) -> POOL(3, s=2, p=1, ceil=true)").out_shape == (4, 4, 1)
        # and without ceil: floor(5/2) + 1 = 3
        assert layer("INPUT(6x6x1) -> POOL(3, s=2, p=1)").out_shape == (3, 3, 1)

    def test_ceil_googlenet_sizes(self):
        shapes = [layer(f"INPUT({w}x{w}x1) -> POOL(3, s=2, ceil=true)").out_shape[0]
                  for w in (112, 56, 28)]
        assert shapes == [56, 28, 14]
        assert layer("INPUT(14x14x1) -> POOL(2, s=2, ceil=true)").out_shape[0] == 7

    def test_ceil_has_no_lint(self):
        assert net("INPUT(5x5x1) -> POOL(2, ceil=true)").notes == ()

    def test_ceil_window_larger_than_input(self):
        assert layer("INPUT(1x1x8) -> POOL(2, ceil=true)").out_shape == (1, 1, 8)
        assert layer("INPUT(2x2x8) -> POOL(3, s=2, ceil=true)").out_shape == (1, 1, 8)

    def test_pad_more_than_half_the_window_is_e307(self):
        d = error("INPUT(8x8x3) -> POOL(3, p=2)")
        assert d.code == "E307"
        assert "padding 2" in d.message and "window 3" in d.message
        assert error("INPUT(8x8x3) -> AVGPOOL(2, p=(0, 2))").code == "E307"

    def test_pad_half_the_window_is_fine(self):
        assert layer("INPUT(8x8x3) -> POOL(3, s=1, p=1)").out_shape == (8, 8, 3)

    def test_pool_on_vector_is_e302(self):
        assert error("INPUT(16) -> POOL").code == "E302"


# --- GAP, FLATTEN, FC ----------------------------------------------------------------

class TestVectors:
    def test_gap(self):
        l = layer("INPUT(7x7x512) -> GAP")
        assert l.out_shape == (512,)
        assert (l.params, l.macs) == (0, 0)

    def test_flatten(self):
        l = layer("INPUT(7x7x512) -> FLATTEN")
        assert l.out_shape == (25_088,)

    def test_fc_on_vector(self):
        l = layer("INPUT(100) -> FC(10)")
        assert l.out_shape == (10,)
        assert l.params == 100 * 10 + 10
        assert l.macs == 1000
        assert l.notes == ()

    def test_fc_bias_false(self):
        assert layer("INPUT(100) -> FC(10, bias=false)").params == 1000

    def test_dense_alias(self):
        assert layer("INPUT(100) -> DENSE(10)").kind == "FC"

    def test_implicit_flatten_before_fc(self):
        l = layer("INPUT(7x7x512) -> FC(4096)")
        assert l.in_shape == (7, 7, 512)
        assert l.out_shape == (4096,)
        assert l.params == 25_088 * 4096 + 4096 == 102_764_544
        assert l.macs == 25_088 * 4096
        assert any("flattens 7x7x512 to 25,088" in n for n in l.notes)
        explicit = net("INPUT(7x7x512) -> FLATTEN -> FC(4096)")
        assert explicit.params == l.params and explicit.macs == l.macs

    def test_image_layer_after_vector_is_e302(self):
        d = error("INPUT(8x8x3) -> FC(10) -> CONV")
        assert d.code == "E302"
        assert "CONV" in d.message and "vector of 10" in d.message
        assert error("INPUT(8x8x3) -> GAP -> POOL").code == "E302"
        assert error("INPUT(8x8x3) -> FLATTEN -> LRN").code == "E302"
        assert error("INPUT(8x8x3) -> GAP -> GAP").code == "E302"


# --- BN and the shape-keeping layers ---------------------------------------------------

class TestSameShape:
    def test_bn_params_and_state(self):
        l = layer("INPUT(8x8x64) -> BN")
        assert l.out_shape == (8, 8, 64)
        assert l.params == 2 * 64
        assert l.state == 2 * 64
        assert l.macs == 0
        n = net("INPUT(8x8x64) -> BN")
        assert n.totals.params == 128 and n.totals.state == 128

    def test_bn_on_vector(self):
        l = layer("INPUT(8x8x3) -> FC(20) -> BN -> FC(10)", "bn1")
        assert (l.params, l.state) == (40, 40)

    @pytest.mark.parametrize("kind", ["RELU", "TANH", "SIGMOID", "GELU", "SOFTMAX", "LRELU",
                                      "ELU", "DROPOUT", "ID", "LRN"])
    def test_keeps_the_shape(self, kind):
        l = layer(f"INPUT(6x5x4) -> {kind} -> FC(10)", kind.lower() + "1")
        assert l.out_shape == (6, 5, 4)
        assert (l.params, l.state, l.macs) == (0, 0, 0)


# --- branches and SKIP -----------------------------------------------------------------

class TestBranches:
    def test_concat_on_channels(self):
        n = net("INPUT(8x8x4) -> (CONV(8, 1) | CONV(16, 3) | POOL(3, s=1, p=1))")
        assert n.output_shape == (8, 8, 8 + 16 + 4)
        assert n.params == (4 * 8 + 8) + (9 * 4 * 16 + 16)

    def test_concat_of_vectors(self):
        assert net("INPUT(10) -> (FC(3) | FC(4) | ID)").output_shape == (17,)

    def test_concat_needs_matching_sizes_e305(self):
        d = error("INPUT(8x8x4) -> (CONV(8, s=2) | CONV(4))")
        assert d.code == "E305"
        assert "4x4x8" in d.message and "8x8x4" in d.message

    def test_concat_image_and_vector_e305(self):
        assert error("INPUT(8x8x4) -> (GAP | CONV(4))").code == "E305"

    def test_add(self):
        n = net("INPUT(8x8x4) -> (CONV(4) -> BN + ID)")
        assert n.output_shape == (8, 8, 4)
        assert n.params == 9 * 4 * 4 + 4 + 8

    def test_add_needs_one_shape_e304(self):
        d = error("INPUT(8x8x4) -> (CONV(8) + CONV(4))")
        assert d.code == "E304"
        assert "8x8x8" in d.message and "8x8x4" in d.message
        assert error("INPUT(8x8x4) -> (CONV(4) + ID + POOL)").code == "E304"

    def test_skip_identity(self):
        n = net("INPUT(8x8x16) -> (CONV(16) -> BN + SKIP)")
        skip = {l.path: l for l in n.layers}["skip1"]
        assert skip.out_shape == (8, 8, 16)
        assert (skip.params, skip.state, skip.macs) == (0, 0, 0)
        assert dict(skip.args)["project"] is False

    def test_skip_projection(self):
        n = net("INPUT(8x8x16) -> (CONV(32, s=2) -> BN + SKIP)")
        skip = {l.path: l for l in n.layers}["skip1"]
        assert skip.in_shape == (8, 8, 16) and skip.out_shape == (4, 4, 32)
        assert skip.params == 16 * 32 + 2 * 32
        assert skip.state == 2 * 32
        assert skip.macs == 4 * 4 * 32 * 16
        assert dict(skip.args)["project"] is True and dict(skip.args)["stride"] == (2, 2)
        assert n.params == (9 * 16 * 32 + 32) + 64 + (16 * 32 + 64)
        assert n.totals.state == 64 + 64

    def test_skip_projection_channels_only(self):
        skip = layer("INPUT(56x56x64) -> (CONV(256, 1) + SKIP)", "skip1")
        assert skip.params == 64 * 256 + 2 * 256
        assert dict(skip.args)["stride"] == (1, 1)

    def test_skip_projection_with_odd_size(self):
        # 7 -> 4 with stride 2: (7 - 1)//2 + 1 = 4
        skip = layer("INPUT(7x7x8) -> (CONV(16, 3, s=2) + SKIP)", "skip1")
        assert skip.out_shape == (4, 4, 16)

    @pytest.mark.parametrize("src", [
        "INPUT(8x8x4) -> SKIP -> FC",
        "INPUT(8x8x4) -> CONV -> SKIP",
    ])
    def test_skip_outside_add_e306(self, src):
        d = error(src)
        assert d.code == "E306"
        assert "+" in d.message

    def test_skip_in_concat_e306(self):
        assert error("INPUT(8x8x4) -> (CONV(8) | SKIP)").code == "E306"

    def test_skip_every_branch_e306(self):
        assert error("INPUT(8x8x4) -> (SKIP + SKIP)").code == "E306"

    @pytest.mark.parametrize("src", [
        "INPUT(8x8x4) -> (CONV(8, 3, p=valid) + SKIP)",     # 8 -> 6 is no whole stride
        "INPUT(8) -> (FC(4) + SKIP)",                        # vectors are not projected
        "INPUT(4x4x4) -> (CONV(8, 3, p=2) + SKIP)",         # grows: 4 -> 6
    ])
    def test_skip_cannot_project_e306(self, src):
        d = error(src)
        assert d.code == "E306"
        assert "cannot project" in d.message


# --- E301 ------------------------------------------------------------------------------

class TestNoOutput:
    def test_message_has_the_arithmetic(self):
        d = error("INPUT(1x1x128) -> POOL")
        assert d.code == "E301"
        assert "POOL has no output" in d.message
        assert "(1 − 2" in d.message and "/2⌋ + 1 = 0" in d.message
        assert d.help

    def test_conv(self):
        d = error("INPUT(4x4x3) -> CONV(8, 5, p=valid)")
        assert d.code == "E301"
        assert "CONV has no output" in d.message and "= 0" in d.message

    def test_dilated(self):
        d = error("INPUT(4x4x3) -> CONV(8, 3, p=valid, dilation=2)")
        assert d.code == "E301"
        assert "dilated by 2 = 5" in d.message

    def test_only_one_axis(self):
        d = error("INPUT(1x9x3) -> POOL")
        assert d.code == "E301" and "H = 1" in d.message

    def test_in_a_repeat(self):
        d = error("INPUT(32x32x3) -> [CONV(128, 5, p=valid) -> RELU -> POOL]*4 -> FC(10)")
        assert d.code == "E301"
        assert d.label == "in copy 3 of 4"
        assert d.notes[0] == "copy 1: 32→28→14, copy 2: 14→10→5, copy 3: 5→1, then POOL"


# --- bare defaults ---------------------------------------------------------------------

class TestBareDefaults:
    def test_seed_pattern_matches_the_docs_table(self):
        n = net("INPUT -> [[CONV -> RELU]*2 -> POOL?]*3 -> [FC -> RELU]*1 -> FC")
        convs = [l for l in n.layers if l.kind == "CONV"]
        assert [l.out_shape[-1] for l in convs] == [32, 32, 64, 64, 128, 128]
        assert [l.arg("kernel") for l in convs] == [(3, 3)] * 6
        assert all(l.arg("stride") == (1, 1) and l.arg("pad") == "same" for l in convs)
        fcs = [l for l in n.layers if l.kind == "FC"]
        assert [l.out_shape for l in fcs] == [(128,), (10,)]
        assert n.params == 550_570
        assert n.macs == 38_896_896
        assert n.totals.flops == 77_793_792

    def test_first_conv_is_32_then_the_previous_count(self):
        n = net("INPUT(16x16x3) -> CONV -> CONV(48) -> CONV")
        assert [l.out_shape[-1] for l in n.layers[1:]] == [32, 48, 48]
        assert "bare CONV: 32 filters (the first)" in n.layers[1].notes
        assert n.layers[2].notes == ()          # written, no bare note

    def test_doubles_after_each_shrinking_pool_and_caps_at_512(self):
        n = net("INPUT(128x128x3) -> [CONV -> POOL]*6 -> CONV -> FC")
        convs = [l.out_shape[-1] for l in n.layers if l.kind == "CONV"]
        assert convs == [32, 64, 128, 256, 512, 512, 512]

    def test_two_pools_double_twice(self):
        n = net("INPUT(32x32x3) -> CONV(16) -> POOL -> AVGPOOL -> CONV")
        assert n.layers[-1].out_shape == (8, 8, 64)

    def test_pool_that_keeps_the_size_does_not_double(self):
        n = net("INPUT(16x16x3) -> CONV(16) -> POOL(3, s=1, p=1) -> CONV")
        assert n.layers[-1].out_shape == (16, 16, 16)

    def test_doubling_stops_at_512(self):
        n = net("INPUT(16x16x3) -> CONV(384) -> POOL -> CONV")
        assert n.layers[-1].out_shape[-1] == 512

    @pytest.mark.parametrize("src", ["INPUT(16x16x3) -> CONV(1024) -> POOL -> CONV",
                                     "INPUT(16x16x3) -> CONV(1024) -> CONV"])
    def test_an_explicit_count_above_512_stays(self, src):
        assert net(src).layers[-1].out_shape[-1] == 1024

    def test_hidden_fc_128_last_fc_classes(self):
        n = net("INPUT(8x8x3) -> FC -> RELU -> FC -> RELU -> FC")
        assert [l.out_shape for l in n.layers if l.kind == "FC"] == [(128,), (128,), (10,)]

    def test_classes_override(self):
        n = net("INPUT(8x8x3) -> FC -> RELU -> FC", classes=5)
        assert n.output_shape == (5,)
        assert [l.out_shape for l in n.layers if l.kind == "FC"] == [(128,), (5,)]

    def test_classes_does_not_touch_written_units(self):
        assert net("INPUT(8x8x3) -> FC(7)", classes=5).output_shape == (7,)

    def test_last_parameterised_layer_rule(self):
        assert net("INPUT(8x8x3) -> FC -> SOFTMAX").output_shape == (10,)
        assert net("INPUT(8x8x3) -> FC -> BN").output_shape == (128,)

    def test_bare_input(self):
        n = net("INPUT -> CONV(4) -> FC(2)")
        assert n.input_shape == (32, 32, 3)
        assert n.layers[0].path == "input" and n.layers[0].out_shape == (32, 32, 3)
        assert any("32x32x3" in note for note in n.layers[0].notes)

    @pytest.mark.parametrize("value", ["64x48x1", (64, 48, 1)])
    def test_input_shape_override(self, value):
        n = net("INPUT -> CONV(4) -> FC(2)", input_shape=value)
        assert n.input_shape == (64, 48, 1)
        assert n.layers[1].out_shape == (64, 48, 4)
        assert n.layers[0].notes == ()

    def test_vector_input_shape(self):
        assert net("INPUT -> FC -> FC", input_shape="784").params == 784 * 128 + 128 + 1290


# --- receptive field and effective stride ----------------------------------------------

class TestReceptiveField:
    def test_small_stack_by_hand(self):
        n = net("INPUT(32x32x3) -> CONV(8, 3) -> CONV(8, 3) -> POOL -> CONV(8, 3) "
                "-> CONV(8, 3, s=2) -> CONV(8, 3, dilation=2)")
        got = [(l.path, l.rf, l.jump) for l in n.layers]
        # rf_l = rf_{l-1} + (k_eff - 1) * jump_{l-1};  jump_l = jump_{l-1} * s
        assert got == [
            ("input", (1, 1), (1, 1)),
            ("conv1", (3, 3), (1, 1)),     # 1 + 2*1
            ("conv2", (5, 5), (1, 1)),     # 3 + 2*1
            ("pool1", (6, 6), (2, 2)),     # 5 + 1*1, jump 2
            ("conv3", (10, 10), (2, 2)),   # 6 + 2*2
            ("conv4", (14, 14), (4, 4)),   # 10 + 2*2, jump 4
            ("conv5", (30, 30), (4, 4)),   # k_eff 5: 14 + 4*4
        ]

    def test_activations_do_not_change_it(self):
        n = net("INPUT(32x32x3) -> CONV(8, 5) -> RELU -> BN")
        assert {(l.rf, l.jump) for l in n.layers[1:]} == {((5, 5), (1, 1))}

    def test_non_square(self):
        l = layer("INPUT(32x32x3) -> CONV(8, 3x5, s=1x2) -> POOL(2)")
        assert l.rf == (4, 7) and l.jump == (2, 4)

    def test_branches_take_the_largest(self):
        n = net("INPUT(32x32x3) -> (CONV(8, 5) | CONV(8, 3)) -> CONV(8, 3)")
        assert n.layers[-1].rf == (7, 7)

    def test_skip_rf_is_its_own(self):
        skip = layer("INPUT(8x8x16) -> (CONV(32, s=2) -> BN + SKIP)", "skip1")
        assert skip.rf == (1, 1) and skip.jump == (2, 2)


# --- `?` --------------------------------------------------------------------------------

class TestOptional:
    def test_kept_where_it_fits_dropped_with_a_note_where_not(self):
        n = net("INPUT(4x4x3) -> [CONV(8) -> POOL?]*4 -> FC(10)")
        assert [l.path for l in n.layers if l.kind == "POOL"] == ["pool1", "pool2"]
        assert n.layers[-1].in_shape == (1, 1, 8)
        notes = [d for d in n.notes if d.code == "N330"]
        assert len(notes) == 2
        assert all(d.severity == "note" for d in notes)
        assert "copy 3 of 4" in notes[0].message and "copy 4 of 4" in notes[1].message
        assert "1x1x8" in notes[0].message
        assert "POOL has no output" in notes[0].notes[0]
        assert n.choices == (True, True, False, False)

    def test_optional_group(self):
        n = net("INPUT(6x6x3) -> [CONV(4, 3, p=valid) -> RELU]? -> [CONV(4, 5, p=valid)]? -> FC(2)")
        assert [l.path for l in n.layers] == ["input", "conv1", "relu1", "fc1"]
        assert codes(n.notes) == ["N330"]

    def test_optional_that_fits_has_no_note(self):
        assert net("INPUT(8x8x3) -> POOL? -> FC(2)").notes == ()


# --- lints -----------------------------------------------------------------------------

class TestLints:
    ALEXNET_224 = "INPUT(224x224x3) -> CONV(96, 11, s=4, p=0) -> RELU -> FC(10)"

    def test_uneven_stride_is_a_warning(self):
        n = net(self.ALEXNET_224)
        assert n.layers[1].out_shape == (54, 54, 96)
        (d,) = n.notes
        assert (d.code, d.severity) == ("E320", "warning")
        assert "(224 − 11 + 2·0)/4 + 1 = 54.25" in d.message

    def test_uneven_stride_is_an_error_when_strict(self):
        d = error(self.ALEXNET_224, strict=True)
        assert (d.code, d.severity) == ("E320", "error")
        assert "54.25" in d.message

    def test_227_divides(self):
        assert net(self.ALEXNET_224.replace("224", "227"), strict=True).notes == ()

    def test_pool_dropping_rows(self):
        n = net("INPUT(8x8x3) -> POOL(3, s=2)")
        assert codes(n.notes) == ["E321"]
        assert "3.5" in n.notes[0].message
        assert check_errors("INPUT(8x8x3) -> POOL(3, s=2)") == ["E321"]

    def test_dropout_after_the_last_layer(self):
        n = net("INPUT(8x8x3) -> FC(10) -> DROPOUT")
        assert [(d.code, d.severity) for d in n.notes] == [("E322", "warning")]
        assert check_errors("INPUT(8x8x3) -> FC(10) -> DROPOUT") == ["E322"]
        assert net("INPUT(8x8x3) -> DROPOUT -> FC(10)", strict=True).notes == ()

    def test_relu_after_relu(self):
        n = net("INPUT(8x8x3) -> CONV(4) -> RELU -> RELU -> FC(2)")
        assert codes(n.notes) == ["E323"]
        assert check_errors("INPUT(8x8x3) -> CONV(4) -> RELU -> RELU -> FC(2)") == ["E323"]

    def test_every_strict_error_is_reported(self):
        src = "INPUT(224x224x3) -> CONV(96, 11, s=4, p=0) -> RELU -> RELU -> POOL(3, s=2) " \
              "-> FC(10) -> DROPOUT"
        assert sorted(codes(net(src).notes)) == ["E320", "E321", "E322", "E323"]
        assert sorted(check_errors(src)) == ["E320", "E321", "E322", "E323"]

    def test_lint_inside_a_repeat_names_the_copy(self):
        n = net("INPUT(9x9x3) -> [POOL(2)]*2 -> FC(2)")
        assert "copy 1 of 2" in n.notes[0].message

    @pytest.mark.parametrize("src", [
        "INPUT(56x56x64) -> CONV(128, 3, s=2, p=1)",
        "INPUT(112x112x64) -> POOL(3, s=2, p=1)",
        "INPUT(224x224x3) -> CONV(64, 11, s=4, p=2)",
        "INPUT(224x224x3) -> CONV(64, 7, s=2, p=3)",
    ])
    def test_no_lint_when_only_padding_is_left_over(self, src):
        assert net(src).notes == ()


def check_errors(src):
    """The codes of the errors ``check(src, strict=True)`` raises."""
    with pytest.raises(ShapeError) as info:
        check(src, strict=True)
    return [d.code for d in info.value.diagnostics]


# --- Hypothesis properties -----------------------------------------------------------

def brute_force(size, k, s, p, d, ceil):
    """Count window positions from the definition: windows start at -P + i*S.

    Floor mode keeps a window whose last tap, start + D*(F - 1), is < size + P.
    Ceil mode (PyTorch's ceil_mode) keeps windows i = 0 .. ceil((size + 2P - D(F-1) - 1)/S),
    each starting inside the input or its leading padding (start < size).
    """
    count, i = 0, 0
    span = size + 2 * p - d * (k - 1) - 1
    while True:
        start = -p + i * s
        last = start + d * (k - 1)
        if ceil:
            if i * s > span + s - 1 or start >= size:
                break
        elif last >= size + p:
            break
        count, i = count + 1, i + 1
    return count


axis = st.tuples(st.integers(1, 40), st.integers(1, 7), st.integers(1, 5), st.integers(1, 3))


@st.composite
def conv_cases(draw):
    (h, kh, sh, dh), (w, kw, sw, dw) = draw(axis), draw(axis)
    ph, pw = draw(st.integers(0, 8)), draw(st.integers(0, 8))
    return dict(kind="CONV", h=h, w=w, k=(kh, kw), s=(sh, sw), d=(dh, dw), p=(ph, pw),
                ceil=False)


@st.composite
def pool_cases(draw):
    (h, kh, sh, _), (w, kw, sw, _) = draw(axis), draw(axis)
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    return dict(kind=draw(st.sampled_from(["POOL", "AVGPOOL"])), h=h, w=w, k=(kh, kw),
                s=(sh, sw), d=(1, 1), p=(ph, pw), ceil=draw(st.booleans()))


def _source(c):
    k = f"{c['k'][0]}x{c['k'][1]}"
    s = f"{c['s'][0]}x{c['s'][1]}"
    p = f"({c['p'][0]}, {c['p'][1]})"
    if c["kind"] == "CONV":
        d = f"{c['d'][0]}x{c['d'][1]}"
        layer_src = f"CONV(4, {k}, s={s}, p={p}, dilation={d})"
    else:
        layer_src = f"{c['kind']}({k}, s={s}, p={p}, ceil={'true' if c['ceil'] else 'false'})"
    return f"INPUT({c['h']}x{c['w']}x2) -> {layer_src}"


def _check_spatial(c):
    want = tuple(brute_force(n, k, s, p, d, c["ceil"])
                 for n, k, s, p, d in zip((c["h"], c["w"]), c["k"], c["s"], c["p"], c["d"]))
    src = _source(c)
    if min(want) == 0:
        with pytest.raises(ShapeError) as info:
            check(src)
        assert info.value.diagnostics[0].code == "E301", src
    else:
        got = check(src).output_shape
        assert got[:2] == want, src


PROPS = examples(150)
SLOW = slow_examples(3000)


@PROPS
@given(st.one_of(conv_cases(), pool_cases()))
def test_output_size_is_the_number_of_window_positions(c):
    _check_spatial(c)


@pytest.mark.slow
@SLOW
@given(st.one_of(conv_cases(), pool_cases()))
def test_output_size_is_the_number_of_window_positions_many(c):
    _check_spatial(c)


def test_brute_force_agrees_with_the_documented_examples():
    assert brute_force(227, 11, 4, 0, 1, False) == 55
    assert brute_force(5, 2, 2, 0, 1, True) == 3
    assert brute_force(5, 2, 2, 1, 1, True) == 3
    assert brute_force(6, 3, 2, 1, 1, True) == 4
    assert brute_force(112, 3, 2, 1, 1, False) == 56
    assert brute_force(32, 3, 1, 0, 2, False) == 28


def _xla_same(size, k, s, d):
    out = -(-size // s)
    total = max((out - 1) * s + d * (k - 1) + 1 - size, 0)
    return out, (total // 2, total - total // 2)


def _same_case(c):
    src = f"INPUT({c[0]}x{c[4]}x1) -> CONV(2, {c[1]}x{c[5]}, s={c[2]}x{c[6]}, " \
          f"dilation={c[3]}x{c[7]})"
    l = check(src).layers[-1]
    (oh, ph), (ow, pw) = _xla_same(*c[:4]), _xla_same(*c[4:])
    assert l.out_shape == (oh, ow, 2), src
    assert l.out_shape[0] == math.ceil(c[0] / c[2])
    assert l.arg("padding") == (ph, pw), src


same_axes = st.tuples(st.integers(1, 64), st.integers(1, 7), st.integers(1, 5), st.integers(1, 3),
                      st.integers(1, 64), st.integers(1, 7), st.integers(1, 5), st.integers(1, 3))


@PROPS
@given(same_axes)
def test_same_is_ceil_w_over_s_with_xla_split(c):
    _same_case(c)


@pytest.mark.slow
@SLOW
@given(same_axes)
def test_same_is_ceil_w_over_s_with_xla_split_many(c):
    _same_case(c)


@st.composite
def conv_params(draw):
    g = draw(st.integers(1, 4))
    c = g * draw(st.integers(1, 8))
    k = g * draw(st.integers(1, 8))
    return dict(h=draw(st.integers(1, 20)), w=draw(st.integers(1, 20)), c=c, k=k, g=g,
                fh=draw(st.integers(1, 5)), fw=draw(st.integers(1, 5)),
                s=draw(st.integers(1, 3)), bias=draw(st.booleans()))


@PROPS
@given(conv_params())
def test_conv_params_and_macs(c):
    src = (f"INPUT({c['h']}x{c['w']}x{c['c']}) -> CONV({c['k']}, {c['fh']}x{c['fw']}, "
           f"s={c['s']}, groups={c['g']}, bias={'true' if c['bias'] else 'false'})")
    l = check(src).layers[-1]
    oh, ow = -(-c["h"] // c["s"]), -(-c["w"] // c["s"])
    assert l.out_shape == (oh, ow, c["k"])
    per_filter = c["fh"] * c["fw"] * c["c"] // c["g"]
    assert l.params == per_filter * c["k"] + (c["k"] if c["bias"] else 0)
    assert l.macs == oh * ow * c["k"] * per_filter
    assert l.state == 0


@PROPS
@given(st.one_of(st.tuples(st.integers(1, 5000)),
                 st.tuples(st.integers(1, 12), st.integers(1, 12), st.integers(1, 16))),
       st.integers(1, 2000), st.booleans())
def test_fc_params_and_macs(shape, units, bias):
    src = f"INPUT({'x'.join(map(str, shape))}) -> FC({units}, bias={'true' if bias else 'false'})"
    n = check(src)
    d = math.prod(shape)
    assert n.output_shape == (units,)
    assert n.params == d * units + (units if bias else 0)
    assert n.macs == d * units
    assert n.totals.flops == 2 * d * units
