"""Layer summaries: golden text / Markdown / CSV / JSON for a few networks, and the
numbers in every form agree with the checked network.

Golden files live in tests/golden_summaries/; after an intended change, rewrite them
with ``pytest tests/test_summary.py --update-goldens`` (or ``PATTERNNET_UPDATE_GOLDEN=1``)
and review the diff by eye.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from patternnet import summary
from patternnet.pipeline import check

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden_summaries"

NETS = {
    "seed": ("cs231n.pn", "seed"),
    "resnet18": ("resnet.pn", "resnet18"),
    "googlenet": ("googlenet.pn", None),
    "lenet5": ("lenet5.pn", None),
}
FORMS = {"txt": summary.text, "md": summary.markdown, "csv": summary.csv_text,
         "json": lambda n: json.dumps(summary.to_dict(n), indent=1) + "\n"}


def checked(key):
    file, net = NETS[key]
    return check(str(ROOT / "examples" / file), net=net)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("key", NETS)
def test_golden(key, form, golden):
    if form == "json" and key != "seed":
        pytest.skip("one JSON golden is enough; the others are checked structurally")
    got = FORMS[form](checked(key))
    if not got.endswith("\n"):
        got += "\n"
    golden(GOLDEN / f"{key}.{form}", got)


@pytest.mark.parametrize("key", NETS)
def test_csv_and_json_carry_the_exact_numbers(key):
    net = checked(key)
    rows = list(csv.DictReader(io.StringIO(summary.csv_text(net))))
    assert [r["path"] for r in rows] == [l.path for l in net.layers]
    assert [int(r["params"]) for r in rows] == [l.params for l in net.layers]
    assert [int(r["macs"]) for r in rows] == [l.macs for l in net.layers]
    d = json.loads(json.dumps(summary.to_dict(net)))
    assert d["schema"] == summary.SCHEMA_VERSION
    assert d["totals"]["params"] == net.params == sum(l["params"] for l in d["layers"])
    assert d["totals"]["state"] == sum(l["state"] for l in d["layers"])
    assert d["totals"]["macs"] == net.macs == sum(l["macs"] for l in d["layers"])
    assert d["totals"]["flops"] == 2 * d["totals"]["macs"]
    assert d["output_shape"] == list(net.output_shape)


def test_text_table_totals_line():
    text = summary.text(checked("resnet18"))
    assert "Trainable params: 11,689,512" in text
    assert "Non-trainable state: 9,600 (BN running statistics)" in text
    assert "FLOPs = 2 x MACs" in text


def test_describe_shows_resolved_bare_values():
    net = checked("seed")
    types = [summary.describe(l) for l in net.layers]
    assert types[1] == "CONV(32, 3x3, s=1, p=same)"
    assert "CONV(64, 3x3, s=1, p=same)" in types       # doubled after the first pool
    assert types[-1] == "FC(10)"                       # the bare classifier gets classes


def test_cli_summary_forms(tmp_path):
    for form, marker in (("text", "Trainable params: 550,570"), ("markdown", "| Layer |"),
                         ("csv", "path,type,kind,output,params,state,macs,rf,jump")):
        out = subprocess.run([sys.executable, "-m", "patternnet", "check", "examples/cs231n.pn",
                              "--net", "seed", "--summary", form], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert marker in out.stdout
