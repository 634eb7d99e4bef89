"""The classic-network zoo in examples/: exact parameter counts, MACs, brevity, clean checks.

Parameter counts are torchvision's ``sum(p.numel() for p in model.parameters())``
(its ``num_params``); MACs are compared with torchvision's published "GFLOPS", which
count multiply-accumulates (GMACs).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from patternnet import ast as A
from patternnet.pipeline import check, expand
from patternnet.checker import CheckedNet
from patternnet.diagnostics import ShapeError
from patternnet.parser import parse
from patternnet.resolver import resolve

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# (file, net): trainable parameters
PARAMS = {
    ("alexnet.pn", "alexnet"): 61_100_840,          # torchvision
    ("alexnet.pn", "alexnet_paper"): 60_965_224,    # Caffe's bvlc_alexnet (groups=2)
    ("vgg.pn", "vgg11"): 132_863_336,
    ("vgg.pn", "vgg13"): 133_047_848,
    ("vgg.pn", "vgg16"): 138_357_544,
    ("vgg.pn", "vgg19"): 143_667_240,
    ("googlenet.pn", "googlenet"): 6_624_904,       # torchvision, aux_logits=False
    ("resnet.pn", "resnet18"): 11_689_512,
    ("resnet.pn", "resnet34"): 21_797_672,
    ("resnet.pn", "resnet50"): 25_557_032,
    ("resnet.pn", "resnet101"): 44_549_160,
    ("resnet.pn", "resnet152"): 60_192_808,
    ("lenet5.pn", "lenet5"): 61_706,                # full C3 connectivity
    ("zfnet.pn", "zfnet"): 62_357_608,              # no torchvision model: this file's count
    ("digits.pn", "digits"): 62_250,
    ("mobilenet_v2.pn", "mobilenet_v2"): 3_504_872,
    ("mobilenet_v3_large.pn", "mobilenet_v3_large"): 5_483_032,
    ("mobilenet_v3_small.pn", "mobilenet_v3_small"): 2_542_856,
    ("regnet_x_400mf.pn", "regnet_x_400mf"): 5_495_976,
    ("regnet_y_400mf.pn", "regnet_y_400mf"): 4_344_144,
    ("densenet121.pn", "densenet121"): 7_978_856,
    ("squeezenet1_0.pn", "squeezenet1_0"): 1_248_424,
    ("squeezenet1_1.pn", "squeezenet1_1"): 1_235_496,
    ("mnasnet1_0.pn", "mnasnet1_0"): 4_383_312,
    ("resnext50_32x4d.pn", "resnext50_32x4d"): 25_028_904,
    ("wide_resnet50_2.pn", "wide_resnet50_2"): 68_883_240,
    ("vgg11_bn.pn", "vgg11_bn"): 132_868_840,
    # torchvision's 27,161,264 less the auxiliary classifier (aux_logits=False): 3,326,696
    ("inception_v3.pn", "inception_v3"): 23_834_568,
    ("efficientnet_b0.pn", "efficientnet_b0"): 5_288_548,
    ("convnext_tiny.pn", "convnext_tiny"): 28_589_128,
    ("shufflenet_v2_x1_0.pn", "shufflenet_v2_x1_0"): 2_278_604,
    ("unet.pn", "unet"): 31_031_810,                 # no torchvision model: this file's count
}

# torchvision's published GFLOPS (= GMACs) at 224x224
GMACS = {
    ("alexnet.pn", "alexnet"): 0.71,
    ("vgg.pn", "vgg11"): 7.61,
    ("vgg.pn", "vgg13"): 11.31,
    ("vgg.pn", "vgg16"): 15.47,
    ("vgg.pn", "vgg19"): 19.63,
    ("googlenet.pn", "googlenet"): 1.50,
    ("resnet.pn", "resnet18"): 1.81,
    ("resnet.pn", "resnet34"): 3.66,
    ("resnet.pn", "resnet50"): 4.09,
    ("resnet.pn", "resnet101"): 7.80,
    ("resnet.pn", "resnet152"): 11.51,
    # from here on the "_ops" of torchvision's weight metadata, the 3-decimal figure its
    # table rounds to 2 (0.217 -> 0.22, 0.057 -> 0.06 and 0.314 -> 0.31 would miss 1 %
    # through the rounding alone)
    ("mobilenet_v2.pn", "mobilenet_v2"): 0.301,
    ("mobilenet_v3_large.pn", "mobilenet_v3_large"): 0.217,
    ("mobilenet_v3_small.pn", "mobilenet_v3_small"): 0.057,
    ("regnet_x_400mf.pn", "regnet_x_400mf"): 0.414,
    ("regnet_y_400mf.pn", "regnet_y_400mf"): 0.402,
    ("densenet121.pn", "densenet121"): 2.834,
    ("squeezenet1_0.pn", "squeezenet1_0"): 0.819,
    ("squeezenet1_1.pn", "squeezenet1_1"): 0.349,
    ("mnasnet1_0.pn", "mnasnet1_0"): 0.314,
    ("resnext50_32x4d.pn", "resnext50_32x4d"): 4.23,
    ("wide_resnet50_2.pn", "wide_resnet50_2"): 11.398,
    ("vgg11_bn.pn", "vgg11_bn"): 7.609,
    ("inception_v3.pn", "inception_v3"): 5.713,      # at 299x299
    ("efficientnet_b0.pn", "efficientnet_b0"): 0.386,
    ("convnext_tiny.pn", "convnext_tiny"): 4.456,
    ("shufflenet_v2_x1_0.pn", "shufflenet_v2_x1_0"): 0.145,
}

# exact MACs as checked (regression values; each file's header quotes its own)
MACS = {
    ("alexnet.pn", "alexnet"): 714_188_480,
    ("alexnet.pn", "alexnet_paper"): 724_406_816,
    ("vgg.pn", "vgg11"): 7_609_090_048,
    ("vgg.pn", "vgg13"): 11_308_466_176,
    ("vgg.pn", "vgg16"): 15_470_264_320,
    ("vgg.pn", "vgg19"): 19_632_062_464,
    ("googlenet.pn", "googlenet"): 1_498_376_192,
    ("resnet.pn", "resnet18"): 1_814_073_344,
    ("resnet.pn", "resnet34"): 3_663_761_408,
    ("resnet.pn", "resnet50"): 4_089_184_256,
    ("resnet.pn", "resnet101"): 7_801_405_440,
    ("resnet.pn", "resnet152"): 11_513_626_624,
    ("lenet5.pn", "lenet5"): 416_520,
    ("zfnet.pn", "zfnet"): 1_168_032_896,
    ("digits.pn", "digits"): 937_216,
    ("mobilenet_v2.pn", "mobilenet_v2"): 300_774_272,
    ("mobilenet_v3_large.pn", "mobilenet_v3_large"): 216_589_760,
    ("mobilenet_v3_small.pn", "mobilenet_v3_small"): 56_510_400,
    ("regnet_x_400mf.pn", "regnet_x_400mf"): 413_812_608,
    ("regnet_y_400mf.pn", "regnet_y_400mf"): 401_842_848,
    ("densenet121.pn", "densenet121"): 2_834_161_664,
    ("squeezenet1_0.pn", "squeezenet1_0"): 818_924_576,
    ("squeezenet1_1.pn", "squeezenet1_1"): 349_151_936,
    ("mnasnet1_0.pn", "mnasnet1_0"): 314_415_872,
    ("resnext50_32x4d.pn", "resnext50_32x4d"): 4_230_479_872,
    ("wide_resnet50_2.pn", "wide_resnet50_2"): 11_398_021_120,
    ("vgg11_bn.pn", "vgg11_bn"): 7_609_090_048,
    ("inception_v3.pn", "inception_v3"): 5_713_216_096,
    ("efficientnet_b0.pn", "efficientnet_b0"): 385_814_752,
    ("convnext_tiny.pn", "convnext_tiny"): 4_455_531_264,
    ("shufflenet_v2_x1_0.pn", "shufflenet_v2_x1_0"): 144_907_992,
    ("unet.pn", "unet"): 48_171_581_440,              # at 256x256x3
}

INPUTS = {"alexnet": (224, 224, 3), "alexnet_paper": (227, 227, 3), "googlenet": (224, 224, 3),
          "lenet5": (32, 32, 1), "zfnet": (224, 224, 3), "digits": (8, 8, 1),
          "inception_v3": (299, 299, 3), "unet": (256, 256, 3)}
OUTPUTS = {"lenet5": (10,), "digits": (10,), "unet": (256, 256, 2)}

ZOO_FILES = sorted(p.name for p in EXAMPLES.glob("*.pn"))


def _check(file, net, **kw):
    return check(str(EXAMPLES / file), net=net, **kw)


def _id(key):
    return f"{key[0][:-3]}:{key[1]}"


def test_every_required_file_is_there():
    for name in ("cs231n.pn", "lenet5.pn", "alexnet.pn", "zfnet.pn", "vgg.pn", "googlenet.pn",
                 "resnet.pn", "digits.pn", "mobilenet_v2.pn", "mobilenet_v3_large.pn",
                 "mobilenet_v3_small.pn", "regnet_x_400mf.pn", "regnet_y_400mf.pn",
                 "densenet121.pn", "squeezenet1_0.pn", "squeezenet1_1.pn", "mnasnet1_0.pn",
                 "resnext50_32x4d.pn", "wide_resnet50_2.pn", "vgg11_bn.pn", "inception_v3.pn",
                 "efficientnet_b0.pn", "convnext_tiny.pn", "shufflenet_v2_x1_0.pn", "unet.pn"):
        assert name in ZOO_FILES


@pytest.mark.parametrize("key", sorted(PARAMS), ids=_id)
def test_exact_parameter_count(key):
    n = _check(*key)
    assert isinstance(n, CheckedNet)
    assert n.params == PARAMS[key]
    assert n.params == sum(l.params for l in n.layers)


@pytest.mark.parametrize("key", sorted(GMACS), ids=_id)
def test_macs_within_1_percent_of_torchvision(key):
    macs = _check(*key).macs
    assert abs(macs / 1e9 - GMACS[key]) <= 0.01 * GMACS[key], macs


@pytest.mark.parametrize("key", sorted(MACS), ids=_id)
def test_exact_macs(key):
    n = _check(*key)
    assert n.macs == MACS[key]
    assert n.totals.flops == 2 * MACS[key]


@pytest.mark.parametrize("key", sorted(PARAMS), ids=_id)
def test_shapes(key):
    file, name = key
    n = _check(*key)
    assert n.input_shape == INPUTS.get(name, (224, 224, 3))
    assert n.output_shape == OUTPUTS.get(name, (1000,))


@pytest.mark.parametrize("key", sorted(PARAMS), ids=_id)
def test_header_quotes_the_counts(key):
    """Each file's comment header states its parameter count and MACs as checked."""
    text = (EXAMPLES / key[0]).read_text()
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert f"{PARAMS[key]:,}" in header
    gmacs = f"{MACS[key] / 1e9:.2f} G"
    assert f"{MACS[key]:,}" in header or gmacs in header, gmacs


@pytest.mark.parametrize("file", [f for f in ZOO_FILES if f != "cs231n.pn"])
def test_header_cites_the_source_and_input(file):
    lines = (EXAMPLES / file).read_text().splitlines()
    header = []
    for line in lines:
        if not line.startswith("#"):
            break
        header.append(line)
    text = " ".join(header)
    assert len(header) >= 4
    assert re.search(r"(19|20)\d\d", text), "a year"
    assert re.search(r"[Ii]nput:? \d+x\d+x\d+", text), "the input size"


def test_intermediate_sizes_of_the_papers():
    """Spot checks of sizes stated in the papers (and torchvision's code)."""
    def sizes(file, net, kind):
        return [l.out_shape[:2] for l in _check(file, net).layers if l.kind == kind]
    assert sizes("alexnet.pn", "alexnet", "POOL") == [(27, 27), (13, 13), (6, 6)]
    assert sizes("alexnet.pn", "alexnet_paper", "CONV")[0] == (55, 55)
    assert sizes("zfnet.pn", "zfnet", "CONV") == [(110, 110), (26, 26)] + [(13, 13)] * 3
    assert sizes("zfnet.pn", "zfnet", "POOL") == [(55, 55), (13, 13), (6, 6)]
    assert sizes("lenet5.pn", "lenet5", "AVGPOOL") == [(14, 14), (5, 5)]
    g = _check("googlenet.pn", "googlenet")
    concat = [b.out_shape for b in _branches(g.graph)]
    assert concat == [(28, 28, 256), (28, 28, 480), (14, 14, 512), (14, 14, 512), (14, 14, 512),
                      (14, 14, 528), (14, 14, 832), (7, 7, 832), (7, 7, 1024)]
    r = _check("resnet.pn", "resnet50")
    stage_out = {l.path.split(".")[0]: l.out_shape for l in r.layers if l.path.startswith("stage")}
    assert stage_out == {"stage1": (56, 56, 256), "stage2": (28, 28, 512),
                         "stage3": (14, 14, 1024), "stage4": (7, 7, 2048)}


def _branches(node):
    from patternnet.checker import CBranches, walk
    return (n for n in walk(node) if isinstance(n, CBranches))


# --- brevity ----------------------------------------------------------------------------

def _names_used(node, out: set) -> None:
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, (A.Call, A.Name)):
            out.add(n.name)
        stack.extend(A.children(n))


def definition_lines(path: Path, net: str) -> tuple[int, str]:
    """The non-comment, non-blank lines the network ``net`` needs: its own statement and
    every statement it uses (blocks, constants), transitively; and that text alone."""
    program = parse(path.read_text(), file=str(path))
    by_name = {s.name: s for s in program.statements if hasattr(s, "name")}
    need, todo = [], [net]
    while todo:
        name = todo.pop()
        stmt = by_name.get(name)
        if stmt is None or stmt in need:
            continue
        need.append(stmt)
        used: set = set()
        _names_used(stmt, used)
        todo.extend(sorted(used))
    text = program.text
    lines = text.splitlines()
    kept = []
    for stmt in sorted(need, key=lambda s: s.span.start):
        for line in lines[stmt.span.line - 1: stmt.span.end_line]:
            code = line.split("#", 1)[0].rstrip()
            if code.strip():
                kept.append(code)
    return len(kept), "\n".join(kept) + "\n"


@pytest.mark.parametrize("file, net, limit", [
    ("vgg.pn", "vgg16", 12),
    ("resnet.pn", "resnet50", 12),
])
def test_definition_is_short(file, net, limit):
    count, text = definition_lines(EXAMPLES / file, net)
    assert count <= limit, text
    # and those lines alone are the whole network
    alone = check(text, net=net)
    assert alone.params == _check(file, net).params


def test_definition_lines_counts_blocks():
    count, text = definition_lines(EXAMPLES / "vgg.pn", "vgg16")
    assert "vgg_block(c, n) =" in text and "classifier =" in text
    assert "vgg19" not in text
    assert count == 4


def test_whole_vgg_file_is_compact():
    code = [l for l in (EXAMPLES / "vgg.pn").read_text().splitlines()
            if l.split("#", 1)[0].strip()]
    assert len(code) <= 12


# --- every example checks ---------------------------------------------------------------

def _networks(file):
    """The named networks of a file, or [None] for a file with only a default one."""
    program = parse((EXAMPLES / file).read_text(), file=file)
    names = []
    for stmt in program.statements:
        if isinstance(stmt, A.Assign) and _starts_with_input(stmt.value, program):
            names.append(stmt.name)
    if any(isinstance(s, A.Bare) for s in program.statements):
        names.append(None)
    return names


def _starts_with_input(expr, program) -> bool:
    while isinstance(expr, (A.Chain, A.Group)):
        expr = expr.items[0] if isinstance(expr, A.Chain) else expr.body
    return isinstance(expr, A.Layer) and expr.name == "INPUT"


ALL_NETS = [(f, n) for f in ZOO_FILES for n in _networks(f)]


def test_every_named_net_is_listed():
    assert {k for k in ALL_NETS if k[0] != "cs231n.pn"} == set(PARAMS)
    assert ("cs231n.pn", None) in ALL_NETS and ("cs231n.pn", "seed") in ALL_NETS


def _members(result):
    if isinstance(result, CheckedNet):
        return [result]
    assert not result.failures
    return [m.net for m in result.members]


# The warnings an example must give, each for a reason in its file: torchvision's
# SqueezeNets at 224x224 start with a stride-2 CONV that drops the input's last row and
# column, (224 - 7)/2 + 1 = 109.5 and (224 - 3)/2 + 1 = 111.5, as torchvision computes
# them; 227x227 would fit, but would not be torchvision's network.
WARNINGS = {("squeezenet1_0.pn", "squeezenet1_0"): ["E320"],
            ("squeezenet1_1.pn", "squeezenet1_1"): ["E320"]}


@pytest.mark.parametrize("file, net", ALL_NETS, ids=lambda x: str(x))
def test_every_example_checks_clean(file, net):
    """No errors and no warnings but those in WARNINGS: at most notes (a `?` left out in
    a cs231n member)."""
    for n in _members(check(str(EXAMPLES / file), net=net)):
        warnings = [d.code for d in n.notes if d.severity != "note"]
        assert warnings == WARNINGS.get((file, net), [])
        assert {d.code for d in n.notes} - set(warnings) <= {"N330"}
        assert len({l.path for l in n.layers}) == len(n.layers)


@pytest.mark.parametrize("file, net", ALL_NETS, ids=lambda x: str(x))
def test_every_example_checks_strict(file, net):
    """--strict too: torchvision's paddings at 224x224 leave over only padding rows
    (e.g. ResNet's CONV(3, s=2, p=1) on 56x56), which is no uneven-stride lint; an
    example with WARNINGS fails with exactly those."""
    if (file, net) in WARNINGS:
        with pytest.raises(ShapeError) as ei:
            check(str(EXAMPLES / file), net=net, strict=True)
        assert [d.code for d in ei.value.diagnostics] == WARNINGS[(file, net)]
        return
    assert _members(check(str(EXAMPLES / file), net=net, strict=True))


def test_cs231n_family_expands_with_no_failing_member():
    fam = expand(str(EXAMPLES / "cs231n.pn"))
    assert fam.failures == ()
    # n 0..3, m 0..3, k 0..2, each `?` on/off: m=0 has none, m copies have m of them
    assert len(fam.members) == 4 * 3 * (1 + 2 + 4 + 8)
    assert {m.bindings for m in fam.members} == {
        (("n", n), ("m", m), ("k", k)) for n in range(4) for m in range(4) for k in range(3)}
    checked = check(str(EXAMPLES / "cs231n.pn"))
    assert len(checked.members) == len(fam.members)


def test_cs231n_seed_instance():
    n = check(str(EXAMPLES / "cs231n.pn"), net="seed")
    assert n.params == 550_570 and n.macs == 38_896_896


@pytest.mark.parametrize("file, net", ALL_NETS, ids=lambda x: str(x))
def test_resolves_in_process(file, net):
    text = (EXAMPLES / file).read_text()
    program = parse(text, file=file)
    assert resolve(program, net=net) is not None
    result = check(program, net=net)
    assert result is not None


def test_digits_is_small():
    n = _check("digits.pn", "digits")
    assert 10_000 <= n.params < 100_000
    assert n.input_shape == (8, 8, 1) and n.output_shape == (10,)

