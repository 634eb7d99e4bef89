"""The modern vocabulary's shape rules and their located errors: LAYERNORM, GROUPNORM,
SCALE, DROPPATH, SPLIT, SHUFFLE, UPSAMPLE and CONVT (the backend is compared with NumPy
in test_backend_reference.py and differentiated in test_backend_gradients.py)."""

from __future__ import annotations

import pytest

from patternnet.diagnostics import PatternNetError
from patternnet.pipeline import check


def first_error(src: str):
    with pytest.raises(PatternNetError) as ei:
        check(src)
    return ei.value.diagnostics[0]


def text(src: str, d) -> str:
    return src[d.span.start:d.span.end]


@pytest.mark.parametrize("layer, inp, out, params", [
    ("LAYERNORM", "7x7x96", (7, 7, 96), 192),
    ("LN(eps=1e-6)", "768", (768,), 1536),
    ("GROUPNORM(8)", "7x7x96", (7, 7, 96), 192),
    ("GN", "4x4x64", (4, 4, 64), 128),
    ("SCALE", "7x7x96", (7, 7, 96), 96),
    ("DROPPATH(0.2)", "7x7x96", (7, 7, 96), 0),
    ("SPLIT", "7x7x116", (7, 7, 58), 0),
    ("SPLIT(4, 3)", "8", (2,), 0),
    ("SHUFFLE(4)", "7x7x96", (7, 7, 96), 0),
    ("UPSAMPLE", "7x7x96", (14, 14, 96), 0),
    ("UPSAMPLE(3x2, bilinear=true)", "7x7x96", (21, 14, 96), 0),
    ("UPSAMPLE(size=30x31)", "7x7x96", (30, 31, 96), 0),
    ("CONVT(48)", "7x7x96", (14, 14, 48), 2 * 2 * 96 * 48 + 48),
    ("CONVT(48, 3, s=2, p=1, output_padding=1)", "7x7x96", (14, 14, 48), 9 * 96 * 48 + 48),
    ("CONVT(48, 4, s=2, p=1, groups=4, bias=false)", "7x7x96", (14, 14, 48), 16 * 96 * 12),
    ("CONVT(8, 3, s=1, p=0, dilation=2)", "5x5x4", (9, 9, 8), 9 * 4 * 8 + 8),
])
def test_shapes_and_parameters(layer, inp, out, params):
    net = check(f"INPUT({inp}) -> {layer}")
    last = net.layers[-1]
    assert last.out_shape == out and last.params == params


def test_convt_macs_and_receptive_field():
    net = check("INPUT(7x7x96) -> CONV(96, 3) -> CONVT(48, 3, s=2, p=1, output_padding=1) "
                "-> CONV(8, 3)")
    convt = net.layers[2]
    assert convt.macs == 7 * 7 * 96 * 48 * 9  # each input pixel times each tap and filter
    # a 3x3 / 2 transposed kernel reaches ceil(3/2) = 2 input pixels: rf 3 -> 4, and the
    # step between outputs is half an input pixel, kept at one
    assert convt.rf == (4, 4) and convt.jump == (1, 1)
    assert net.layers[3].rf == (6, 6)


def test_upsampling_divides_the_jump_after_a_stride():
    net = check("INPUT(32x32x3) -> CONV(8, 3, s=4, p=1) -> UPSAMPLE -> CONV(8, 3)")
    assert net.layers[1].jump == (4, 4)
    assert net.layers[2].jump == (2, 2)        # nearest: no wider, but twice as fine
    assert net.layers[3].rf == (3 + 2 * 2,) * 2  # its 3x3 taps are 2 input pixels apart


@pytest.mark.parametrize("src, code, message, help_has, under", [
    ("INPUT(7x7x90) -> GROUPNORM(32) -> GAP -> FC(10)", "E303",
     "GROUPNORM groups=32 must divide the 90 channels: 90 / 32 = 2.812",
     "1, 2, 3, 5, 6, 9, 10, 15, 18, 30, 45, 90", "GROUPNORM(32)"),
    ("INPUT(7x7x117) -> (SPLIT(2, 0) | SPLIT(2, 1)) -> GAP -> FC(10)", "E303",
     "SPLIT parts=2 must divide the 117 channels: 117 / 2 = 58.5", "multiple of 2",
     "SPLIT(2, 0)"),
    ("INPUT(7x7x96) -> SPLIT(2, 2) -> GAP -> FC(10)", "E309",
     "SPLIT index=2 is past the last of its 2 parts (numbered 0 to 1)", "0 to 1", "SPLIT(2, 2)"),
    ("INPUT(7x7x96) -> SHUFFLE(5) -> GAP -> FC(10)", "E303",
     "SHUFFLE groups=5 must divide the 96 channels: 96 / 5 = 19.2", None, "SHUFFLE(5)"),
    ("INPUT(1x1x8) -> CONVT(4, 1, s=1, p=1) -> GAP -> FC(10)", "E301",
     "CONVT has no output: H = 1, kernel 1, stride 1, padding 1 → (1 − 1)·1 − 2·1 + 1·(1 − 1) "
     "+ 0 + 1 = -1", None, "CONVT(4, 1, s=1, p=1)"),
    ("INPUT(7x7x8) -> CONVT(4, 3, s=2, output_padding=2) -> GAP -> FC(10)", "E309",
     "CONVT output_padding 2 along H must be smaller than the stride (2) or the dilation (1)",
     "0 .. stride − 1", "CONVT(4, 3, s=2, output_padding=2)"),
    ("INPUT(7x7x8) -> CONVT(4, p=same) -> GAP -> FC(10)", "E309",
     "CONVT pads as PyTorch's ConvTranspose2d: `same` has no meaning there", "P = (K − S)/2",
     "CONVT(4, p=same)"),
    ("INPUT(7x7x8) -> UPSAMPLE(2, size=14x14) -> GAP -> FC(10)", "E309",
     "UPSAMPLE takes a factor or a size, not both", None, "UPSAMPLE(2, size=14x14)"),
    ("INPUT(7x7x8) -> UPSAMPLE(corners=true) -> GAP -> FC(10)", "E309",
     "UPSAMPLE corners=true aligns bilinear samples, but this UPSAMPLE is nearest",
     "bilinear=true", "UPSAMPLE(corners=true)"),
    ("INPUT(8) -> UPSAMPLE -> FC(10)", "E302",
     "UPSAMPLE needs an image (HxWxC), but its input is a vector of 8", None, "UPSAMPLE"),
    ("INPUT(8x8x4) -> CONVT -> FC(10)", "E218", "CONVT needs `filters`", "`CONVT(64)`",
     "CONVT"),
])
def test_located_errors(src, code, message, help_has, under):
    d = first_error(src)
    assert d.code == code, d
    if message is not None:
        assert d.message == message
    if help_has is not None:
        assert help_has in d.help
    assert text(src, d) == under


def test_ln_and_gn_are_the_names_people_write():
    net = check("INPUT(7x7x96) -> LN -> GN(8) -> GAP -> FC(10)")
    assert [l.kind for l in net.layers[1:3]] == ["LAYERNORM", "GROUPNORM"]


def test_droppath_belongs_before_the_add():
    net = check("INPUT(8x8x16) -> (CONV(16) -> BN -> DROPPATH(0.2) + ID) -> GAP -> FC(10)")
    assert any(l.kind == "DROPPATH" for l in net.layers)
