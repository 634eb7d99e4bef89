"""``patternnet draw``: the SVG diagram (patternnet/draw.py) and its command.

Golden SVGs live in tests/golden_draw/; after an intended change of the picture,
rewrite them (and the diagrams in docs/img) with

    .venv/bin/python -m pytest tests/test_draw.py --update-goldens

(or ``PATTERNNET_UPDATE_GOLDEN=1``) and look at the result (open the .svg in a browser) before committing.  Besides the
goldens: the SVG parses as XML with a viewBox that holds everything drawn, no two
boxes or labels overlap, it rasterises (resvg, a self-contained wheel) to a picture
of the declared size that is not blank, and repeats, copies and branches are drawn
as documented (docs/draw.md).
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib
from functools import lru_cache
from pathlib import Path

import pytest

from patternnet.pipeline import check
from patternnet.draw import CHAR_EM, draw_svg, text_width
from patternnet.source import read

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden_draw"
SVG = "{http://www.w3.org/2000/svg}"

NETS = {  # key: (file, --net, expand)
    "lenet5": ("lenet5.pn", None, False),
    "seed": ("cs231n.pn", "seed", False),
    "seed_expanded": ("cs231n.pn", "seed", True),
    "resnet18": ("resnet.pn", "resnet18", False),
    "googlenet": ("googlenet.pn", None, False),
    "resnet50": ("resnet.pn", "resnet50", False),
}
GOLDEN_KEYS = ("lenet5", "seed", "seed_expanded", "resnet18")


@lru_cache(maxsize=None)
def svg_of(key: str) -> str:
    file, net, expand = NETS[key]
    path = ROOT / "examples" / file
    return draw_svg(check(str(path), net=net), expand=expand, source=read(str(path)).text)


@lru_cache(maxsize=None)
def tree(key: str) -> ET.Element:
    return ET.fromstring(svg_of(key))


def nodes(root: ET.Element, cls: str) -> list:
    return [e for e in root.iter() if cls in (e.get("class") or "").split()]


# --- golden ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", GOLDEN_KEYS)
def test_golden(key, golden):
    golden(GOLDEN / f"{key}.svg", svg_of(key))  # a mismatch names the first differing line


def test_deterministic():
    file, net, _ = NETS["resnet18"]
    path = str(ROOT / "examples" / file)
    assert draw_svg(check(path, net=net)) == draw_svg(check(path, net=net))


# --- well-formed, inside its viewBox, nothing overlapping ------------------------------


def _boxes(root: ET.Element):
    """(kind, x0, y0, x1, y1) of every layer box and every text, text extents estimated
    with the same monospace metric the layout uses."""
    out = []
    for g in nodes(root, "node"):
        for r in g.iter(SVG + "rect"):
            x, y, w, h = (float(r.get(k)) for k in ("x", "y", "width", "height"))
            out.append(("box", x, y, x + w, y + h))
    for t in root.iter(SVG + "text"):
        size = float(t.get("font-size"))
        w = len(t.text or "") * size * CHAR_EM
        x, y = float(t.get("x")), float(t.get("y"))
        anchor = t.get("text-anchor", "start")
        x0 = x - w / 2 if anchor == "middle" else x - w if anchor == "end" else x
        out.append(("text", x0, y - 0.75 * size, x0 + w, y + 0.2 * size))
    return out


def _inside(inner, outer, slack=0.5) -> bool:
    return (inner[1] >= outer[1] - slack and inner[3] <= outer[3] + slack
            and inner[2] >= outer[2] - slack and inner[4] <= outer[4] + slack)


@pytest.mark.parametrize("key", NETS)
def test_svg_is_well_formed_and_fits_its_viewbox(key):
    root = tree(key)
    assert root.tag == SVG + "svg"
    w, h = float(root.get("width")), float(root.get("height"))
    assert root.get("viewBox") == f"0 0 {root.get('width')} {root.get('height')}"
    assert 300 <= w <= 2000 and 300 <= h <= 20000, (w, h)
    for kind, x0, y0, x1, y1 in _boxes(root):
        assert 0 <= x0 and x1 <= w and 0 <= y0 and y1 <= h, (kind, x0, y0, x1, y1)


@pytest.mark.parametrize("key", ["lenet5", "seed", "seed_expanded", "resnet18", "googlenet",
                                 "resnet50"])
def test_nothing_overlaps(key):
    """No two boxes overlap, no label runs into a box or another label (a label inside
    its own box is the box's text)."""
    items = sorted(_boxes(tree(key)), key=lambda b: b[2])
    boxes = [b for b in items if b[0] == "box"]
    for i, a in enumerate(items):
        for b in items[i + 1:]:
            if b[2] >= a[4]:
                break
            if b[1] >= a[3] or a[1] >= b[3]:
                continue
            if a[0] != b[0] and (_inside(b, a) or _inside(a, b)):
                continue  # a box's own text
            if a[0] == b[0] == "text" and any(_inside(a, x) and _inside(b, x) for x in boxes):
                continue  # the two lines of one box
            raise AssertionError(f"{key}: {a} overlaps {b}")


def test_boxes_fit_their_text():
    root = tree("googlenet")
    for g in nodes(root, "node"):
        rects = list(g.iter(SVG + "rect"))
        if not rects:
            continue
        width = float(rects[0].get("width"))
        for t in g.iter(SVG + "text"):
            assert text_width(t.text, float(t.get("font-size"))) <= width - 8, t.text


# --- rasterised ------------------------------------------------------------------------


def _png_pixels(png: bytes):
    """(width, height, rows of RGBA bytes) of an 8-bit RGBA or RGB PNG, with the stdlib."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", None
    while pos < len(png):
        n, kind = struct.unpack(">I4s", png[pos:pos + 8])
        data = png[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            w, h, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", data)
            assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color)
            bpp = 4 if color == 6 else 3
        elif kind == b"IDAT":
            idat += data
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, bpp, rows


def test_rasterises_to_a_real_picture():
    import resvg_py

    svg = svg_of("seed")
    root = tree("seed")
    png = bytes(resvg_py.svg_to_bytes(svg_string=svg))
    w, h, bpp, rows = _png_pixels(png)
    assert (w, h) == (int(root.get("width")), int(root.get("height")))
    colours, ink = set(), 0
    for row in rows:
        for i in range(0, len(row), bpp):
            px = row[i:i + 3]
            if px != b"\xff\xff\xff":
                ink += 1
                colours.add(px)
    assert ink > 0.05 * w * h, ink          # boxes, frames, edges: not a blank page
    assert ink < 0.6 * w * h, ink           # and not a solid one
    # the family colours of the boxes are there: conv blue, pool orange, fc violet
    for fill in ("#dbeafe", "#ffedd5", "#ede9fe"):
        assert bytes.fromhex(fill[1:]) in colours, fill


# --- what is drawn ---------------------------------------------------------------------


def kinds(root) -> list:
    return [g.get("data-kind") for g in nodes(root, "node") if g.get("data-kind")]


def test_repeats_are_framed_once_with_their_count():
    root = tree("seed")  # INPUT -> [[CONV -> RELU]*2 -> POOL?]*3 -> [FC -> RELU]*1 -> FC
    frames = nodes(root, "repeat")
    assert sorted(f.get("data-count") for f in frames) == ["1", "2", "3"]
    assert sorted(t.text for t in nodes(root, "badge")) == ["×1", "×2", "×3"]
    assert kinds(root) == ["INPUT", "CONV", "RELU", "POOL", "FC", "RELU", "FC", "OUTPUT"]
    texts = [t.text for t in root.iter(SVG + "text")]
    # the copies differ in their bare CONV's filters: 32, then doubled after each pool
    assert "CONV 3x3, 32→64→128" in texts
    assert "32x32x32→16x16x64→8x8x128" in texts   # the edge inside the frames
    assert "4x4x128" in texts                      # the edge leaving it: the last copy's


def test_expand_draws_every_copy():
    root = tree("seed_expanded")
    assert kinds(root).count("CONV") == 6 and kinds(root).count("POOL") == 3
    assert kinds(root).count("FC") == 2
    # the x3 frame once, an x2 frame in each of its copies, the x1 frame
    assert sorted(f.get("data-count") for f in nodes(root, "repeat")) == ["1", "2", "2", "2", "3"]
    assert all(f.get("data-expanded") == "true" for f in nodes(root, "repeat")
               if f.get("data-count") != "1")
    texts = [t.text for t in root.iter(SVG + "text")]
    assert {"CONV 3x3, 32", "CONV 3x3, 64", "CONV 3x3, 128"} <= set(texts)
    assert len(nodes(root, "copy-separator")) == 2 + 3 * 1


def _branch_xs(root, op):
    forks = [f for f in nodes(root, "fork") if f.get("data-op") == op]
    assert forks
    return [[float(b.get("data-x")) for b in f if "branch" in (b.get("class") or "")]
            for f in forks]


def test_branches_side_by_side():
    goog = tree("googlenet")
    forks = _branch_xs(goog, "|")
    assert len(forks) == 9                        # nine inception modules
    for xs in forks:
        assert len(xs) == 4 and xs == sorted(xs) and len(set(xs)) == 4
    assert len(nodes(goog, "concat")) == 9
    res = tree("resnet50")
    for xs in _branch_xs(res, "+"):
        assert len(xs) == 2 and xs[0] < xs[1]     # the layers, then the shortcut beside
    assert len(nodes(res, "add")) == 4 + 4        # each stage: its first block + the repeat
    assert len(nodes(res, "identity")) == 4


def test_resnet152_collapses_to_the_size_of_resnet50():
    path = str(ROOT / "examples" / "resnet.pn")
    r152 = ET.fromstring(draw_svg(check(path, net="resnet152")))
    counts = sorted(f.get("data-count") for f in nodes(r152, "repeat"))
    assert counts == ["2", "2", "35", "7"]
    assert r152.get("height") == tree("resnet50").get("height")


def test_block_frames_name_the_call():
    root = tree("resnet18")
    names = [f.get("data-block") for f in nodes(root, "block")]
    assert names[:3] == ["stem", "basic_stage(64, 2, s=1)", "basic(c, s)"]
    labels = {t.text for t in root.iter(SVG + "text")}
    assert "basic_stage(128, 2)" in labels
    # without the source text, the block's name
    plain = ET.fromstring(draw_svg(check(str(ROOT / "examples" / "resnet.pn"), net="resnet18")))
    assert [f.get("data-block") for f in nodes(plain, "block")][:2] == ["stem", "basic_stage"]


def test_heading():
    texts = [t.text for t in tree("resnet50").iter(SVG + "text")]
    assert texts[0] == "resnet50"
    assert texts[1] == "224x224x3 → 1000 · 25,557,032 params · 4.09 G MACs · 167 layers"


# --- the command -----------------------------------------------------------------------


def pn(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run([sys.executable, "-m", "patternnet", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, env=env)


def one_line_error(r, *words):
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stdout == "" and "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("patternnet: error: "), r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_cli_draws_atomically(tmp_path):
    out = tmp_path / "net.svg"
    out.write_text("old")
    r = pn("draw", str(ROOT / "examples" / "cs231n.pn"), "--net", "seed", "-o", str(out),
           cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == ""
    assert out.read_text(encoding="utf-8") == svg_of("seed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.svg"]  # no temporary left


def test_cli_stdout_family_and_options(tmp_path):
    (tmp_path / "fam.pn").write_text("n in 1..3\nINPUT -> [CONV -> RELU]*n -> FC\n")
    r = pn("draw", "fam.pn", "-o", "-", cwd=tmp_path)
    one_line_error(r, "family over n in 1..3", "-D n=3")
    r = pn("draw", "fam.pn", "-D", "n=2", "--input", "8x8x1", "--classes", "5", "--expand",
           "-o", "-", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    root = ET.fromstring(r.stdout)
    assert kinds(root) == ["INPUT", "CONV", "RELU", "CONV", "RELU", "FC", "OUTPUT"]
    assert "8x8x1 → 5 ·" in next(t.text for t in root.iter(SVG + "text") if "→" in t.text)
    assert list(tmp_path.iterdir()) == [tmp_path / "fam.pn"]


def test_cli_errors(tmp_path):
    (tmp_path / "bad.pn").write_text("INPUT(8x8x1) -> POOL(4) -> POOL(4)\n")
    (tmp_path / "ok.pn").write_text("INPUT -> CONV -> FC\n")
    r = pn("draw", "bad.pn", "-o", "bad.svg", cwd=tmp_path)
    assert r.returncode == 1 and r.stdout == ""
    assert "error[E3" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "bad.svg").exists()
    one_line_error(pn("draw", "missing.pn", "-o", "x.svg", cwd=tmp_path), "missing.pn")
    one_line_error(pn("draw", "ok.pn", "-o", "no/such/dir/x.svg", cwd=tmp_path),
                   "no/such/dir/x.svg", "cannot write")
    one_line_error(pn("draw", "ok.pn", "-o", ".", cwd=tmp_path), "cannot write")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pn", "ok.pn"]


def test_cli_draw_does_not_import_jax_or_numpy(tmp_path):
    (tmp_path / "ok.pn").write_text("INPUT -> (CONV | CONV) -> [CONV]*2 -> FC\n")
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "patternnet", "draw", "ok.pn",
                        "-o", "ok.svg"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    imported = {l.rsplit("|", 1)[-1].strip() for l in r.stderr.splitlines()
                if l.startswith("import time:")}
    assert "patternnet.draw" in imported
    assert not {m for m in imported if m.split(".")[0] in ("jax", "jaxlib", "numpy")}


def test_cli_new_file_gets_the_usual_mode(tmp_path):
    old = os.umask(0o022)
    try:
        from patternnet import cli

        (tmp_path / "ok.pn").write_text("INPUT -> CONV -> FC\n")
        assert cli.main(["draw", str(tmp_path / "ok.pn"), "-o", str(tmp_path / "ok.svg")]) == 0
    finally:
        os.umask(old)
    assert (tmp_path / "ok.svg").stat().st_mode & 0o777 == 0o644


def test_copies_that_differ_in_shape_are_all_drawn():
    # the `?` fits the first copy only (8x8 -> 2x2, then a 4x4 pool no longer fits)
    net = check("INPUT(8x8x1) -> [CONV -> POOL(4)?]*3 -> FC")
    root = ET.fromstring(draw_svg(net))
    assert kinds(root) == ["INPUT", "CONV", "POOL", "CONV", "CONV", "FC", "OUTPUT"]
    (frame,) = nodes(root, "repeat")
    assert frame.get("data-count") == "3" and frame.get("data-expanded") == "true"
    # no repeat, no word about repeats
    plain = ET.fromstring(draw_svg(check("INPUT -> CONV -> FC")))
    assert not any("×n" in (t.text or "") for t in plain.iter(SVG + "text"))


@pytest.mark.parametrize("key,name", [("seed", "cs231n_seed"), ("resnet18", "resnet18"),
                                      ("googlenet", "googlenet")])
def test_docs_images_are_current(key, name, golden):
    """docs/img holds diagrams made by `patternnet draw`; they follow the drawing code."""
    golden(ROOT / "docs" / "img" / f"{name}.svg", svg_of(key))
