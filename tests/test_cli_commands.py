"""The commands through a real subprocess: ``check`` on many paths and in its three formats (text, json, github), ``compile``, ``expand``, ``fmt`` on directories, Ctrl-C.

Goldens in tests/golden_cli/ (``pytest --update-goldens``, or ``PATTERNNET_UPDATE_GOLDEN=1``,
rewrites them; review the diff by eye); the JSON document is validated against docs/check.schema.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from patternnet import __version__
from patternnet.diagnostics import Diagnostic
from patternnet.ast import Span
from patternnet.report import FileReport, github

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden_cli"
SCHEMA = json.loads((ROOT / "docs" / "check.schema.json").read_text())

FILES = {
    "good.pn": "# two networks\nsmall = INPUT(28x28x1) -> CONV(8) -> RELU -> POOL -> FC(10)\n"
               "wide = INPUT(32x32x3) -> [CONV(16) -> RELU]*2 -> GAP -> FC(10)\n",
    "bad.pn": "INPUT(4x4x3) -> [POOL]*4 -> FC(10)\n",
    "noted.pn": "INPUT(8x8x3) -> CONV(8) -> POOL? -> POOL? -> POOL? -> POOL? -> FC(10)\n",
    "typo.pn": "block(c) = CONV(c) -> RELU\nINPUT -> blok(16) -> FC\n",
}


def pn(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, **(env or {})}
    full.pop("PYTHONWARNINGS", None)
    return subprocess.run([sys.executable, "-m", "patternnet", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, env=full)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def validate(doc: dict) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(doc, SCHEMA)


# --- the three formats, golden ----------------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "json", "github"])
def test_formats_golden(tree, fmt, golden):
    r = pn("check", *FILES, "missing.pn", "--format", fmt, cwd=tree)
    assert r.returncode == 2  # a missing path outranks the problems in the input
    assert r.stderr == "patternnet: error: missing.pn: no such file\n"
    out = r.stdout.replace(f'"version": "{__version__}"', '"version": "<version>"')
    golden(GOLDEN / f"check.{fmt}", out)


def test_json_document(tree):
    r = pn("check", *FILES, "--format", "json", cwd=tree)
    assert r.returncode == 1 and r.stderr == ""
    doc = json.loads(r.stdout)
    validate(doc)
    assert doc["exit_code"] == 1
    assert doc["totals"] == {"files": 4, "unreadable": 0, "networks": 3, "errors": 2,
                             "warnings": 0, "notes": 1}
    by = {f["path"]: f for f in doc["files"]}
    good = by["good.pn"]["networks"]
    assert [n["name"] for n in good] == ["small", "wide"]
    assert good[0]["totals"]["params"] == (9 * 8 + 8) + (14 * 14 * 8 * 10 + 10)
    assert good[0]["layers"][1]["output_shape"] == [28, 28, 8]
    e301 = by["bad.pn"]["diagnostics"][0]
    assert (e301["code"], e301["span"]["line"], e301["span"]["col"]) == ("E301", 1, 18)
    assert by["typo.pn"]["diagnostics"][0]["help"] == "did you mean `block`?"
    assert by["noted.pn"]["ok"] and by["noted.pn"]["diagnostics"][0]["severity"] == "note"


def test_json_of_every_example_validates():
    r = pn("check", "examples", "--format", "json", cwd=ROOT)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    validate(doc)
    assert doc["totals"]["files"] == len(list((ROOT / "examples").glob("*.pn")))
    kinds = {n["kind"] for f in doc["files"] for n in f["networks"]}
    assert kinds == {"network", "family"}  # cs231n.pn holds a family


def test_json_on_a_clean_run_is_still_printed_when_quiet(tree):
    r = pn("check", "good.pn", "--format", "json", "-q", cwd=tree)
    assert r.returncode == 0
    assert json.loads(r.stdout)["files"][0]["ok"] is True


def test_github_annotations_point_at_the_span(tree):
    r = pn("check", "bad.pn", "typo.pn", "--format", "github", cwd=tree)
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert lines[0].startswith("::error file=bad.pn,line=1,col=18,endLine=1,endColumn=22,"
                               "title=PatternNet E301::POOL has no output")
    assert lines[1].startswith("::error file=typo.pn,line=2,col=10,")
    assert "%0Ahelp: did you mean `block`?" in lines[1]
    assert lines[-1] == "patternnet: 2 files, 0 networks, 2 errors"
    assert pn("check", "good.pn", "--format", "github", "-q", cwd=tree).stdout == ""


def test_github_escapes_its_separators():
    d = Diagnostic("E301", "50% of it\nfails", Span("a:b,c.pn", 3, 4, 3, 9), help="x, y: z")
    (line,) = github(FileReport("a:b,c.pn", diagnostics=(d,)))
    assert line == ("::error file=a%3Ab%2Cc.pn,line=3,col=4,endLine=3,endColumn=9,"
                    "title=PatternNet E301::50%25 of it%0Afails%0Ahelp: x, y: z")
    (line,) = github(FileReport("d/x.pn", error="d/x.pn: no such file"))
    assert line == "::error file=d/x.pn,title=PatternNet::d/x.pn: no such file"


# --- paths: files, directories, globs -------------------------------------------------


def test_directories_are_searched_for_pn_files(tree):
    sub = tree / "nets" / "deep"
    sub.mkdir(parents=True)
    (sub / "a.pn").write_text("INPUT -> FC\n")
    (tree / "nets" / "b.pn").write_text("INPUT -> CONV -> FC\n")
    (tree / "nets" / "readme.txt").write_text("not a network")
    hidden = tree / "nets" / ".cache"
    hidden.mkdir()
    (hidden / "junk.pn").write_text("this is not a network")
    r = pn("check", "nets", cwd=tree)
    assert r.returncode == 0, r.stdout + r.stderr
    checked = [l.split(":")[0] for l in r.stdout.splitlines() if l.endswith(": ok")]
    assert checked == [os.path.join("nets", "b.pn"), os.path.join("nets", "deep", "a.pn")]


def test_globs_are_expanded_once_each(tree):
    r = pn("check", "*.pn", "good.pn", "--format", "json", cwd=tree)
    paths = [f["path"] for f in json.loads(r.stdout)["files"]]
    assert paths == sorted(FILES)  # good.pn not twice
    r = pn("check", "nothing/**/*.pn", cwd=tree)
    assert r.returncode == 2
    assert r.stderr == "patternnet: error: nothing/**/*.pn: no file matches this pattern\n"


def test_unreadable_paths_do_not_stop_the_others(tree):
    (tree / "empty").mkdir()
    r = pn("check", "empty", "good.pn", "--format", "json", cwd=tree)
    assert r.returncode == 2
    assert r.stderr == "patternnet: error: empty: a directory with no .pn files in it\n"
    doc = json.loads(r.stdout)
    validate(doc)
    assert [f["ok"] for f in doc["files"]] == [False, True]
    assert doc["files"][0]["error"] == "empty: a directory with no .pn files in it"


# --- colour ---------------------------------------------------------------------------


def _on_a_terminal(args: list[str], cwd: Path, env: dict) -> str:
    """Run with stdout on a pseudo-terminal; what it printed."""
    import pty

    leader, follower = pty.openpty()
    full = {**os.environ, **env}
    full.pop("NO_COLOR", None) if "NO_COLOR" not in env else None
    full["TERM"] = "xterm"
    p = subprocess.Popen([sys.executable, "-m", "patternnet", *args], cwd=cwd,
                         stdout=follower, stderr=subprocess.PIPE, env=full)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    p.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode()


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_colour_only_on_a_terminal_and_never_with_no_color(tree):
    coloured = _on_a_terminal(["check", "bad.pn"], tree, {})
    assert "\x1b[" in coloured and "error[E301]" in coloured
    plain = _on_a_terminal(["check", "bad.pn"], tree, {"NO_COLOR": "1"})
    assert "\x1b[" not in plain and "error[E301]" in plain
    assert "\x1b[" not in pn("check", "bad.pn", cwd=tree).stdout


def test_json_and_github_import_neither_jax_nor_numpy(tree):
    code = ("import sys; from patternnet import cli; rc = cli.main(sys.argv[1:]); "
            "print('RESULT', 'jax' in sys.modules, 'numpy' in sys.modules)")
    for fmt in ("json", "github"):
        r = subprocess.run([sys.executable, "-c", code, "check", "good.pn", "--format", fmt],
                           cwd=tree, capture_output=True, text=True, timeout=60)
        assert r.stdout.splitlines()[-1] == "RESULT False False"


# --- compile ----------------------------------------------------------------------------


def test_compile_prints_the_summary_and_exports(tree):
    pytest.importorskip("jax")
    r = pn("compile", "good.pn", "--net", "small", "-o", "small.pnx", cwd=tree)
    assert r.returncode == 0, r.stderr
    assert "Trainable params: 15,770" in r.stdout
    assert "compiled small: forward at batch 1, float32, on " in r.stdout
    assert "wrote small.pnx" in r.stdout and "any batch size" in r.stdout
    code = ("import numpy as np, patternnet; m = patternnet.load('small.pnx'); "
            "print(m(np.zeros((3, 28, 28, 1), np.float32)).shape)")
    r = subprocess.run([sys.executable, "-c", code], cwd=tree, capture_output=True, text=True,
                       timeout=120)
    assert r.stdout.strip() == "(3, 10)", r.stderr


def test_compile_emits_ir_on_stdout_and_status_on_stderr(tree):
    pytest.importorskip("jax")
    r = pn("compile", "good.pn", "--net", "wide", "--emit", "stablehlo", "--batch", "2",
           cwd=tree)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("module @") and "stablehlo.convolution" in r.stdout
    assert "tensor<2x32x32x3xf32>" in r.stdout
    assert r.stderr.startswith("compiled wide: forward at batch 2")
    r = pn("compile", "good.pn", "--net", "wide", "--emit", "jaxpr", cwd=tree)
    from patternnet.backend import onednn   # the jaxpr is what runs: oneDNN's, if loaded
    runs = "patternnet_onednn_conv[" if onednn.status()["loaded"] else "conv_general_dilated"
    assert runs in r.stdout


def test_compile_errors(tree):
    r = pn("compile", "bad.pn", cwd=tree)
    assert r.returncode == 1 and "error[E301]" in r.stdout
    r = pn("compile", "good.pn", cwd=tree)  # two networks, no default
    assert r.returncode == 1 and "--net" in r.stdout
    (tree / "fam.pn").write_text("n in 1..3\nINPUT -> CONV*n -> FC\n")
    r = pn("compile", "fam.pn", cwd=tree)
    assert r.returncode == 1 and "E210" in r.stdout and "-D n=1" in r.stdout
    r = pn("compile", "good.pn", "--net", "small", "-o", "no/such/dir/m.pnx", cwd=tree)
    assert r.returncode == 2
    assert r.stderr.splitlines()[-1].startswith("patternnet: error: no/such/dir/m.pnx: cannot write")
    assert not (tree / "no").exists()
    r = pn("compile", "missing.pn", cwd=tree)
    assert (r.returncode, r.stderr) == (2, "patternnet: error: missing.pn: no such file\n")


def test_fmt_takes_directories_and_keeps_going_past_a_bad_path(tree):
    nets = tree / "nets"
    nets.mkdir()
    (nets / "a.pn").write_text("INPUT(8x8x1)->FC(10)\n")
    (nets / "b.pn").write_text("INPUT(8x8x1) -> FC(10)\n")
    r = pn("fmt", "missing.pn", "nets", "--check", cwd=tree)
    assert r.returncode == 2
    assert r.stderr == "patternnet: error: missing.pn: no such file\n"
    assert r.stdout == f"would reformat {os.path.join('nets', 'a.pn')}\n"
    r = pn("fmt", "nets", cwd=tree)
    assert r.returncode == 0 and (nets / "a.pn").read_text() == "INPUT(8x8x1) -> FC(10)\n"


def test_compile_exports_a_checkpoints_parameters(tmp_path):
    pytest.importorskip("jax")
    import numpy as np

    import patternnet
    from patternnet.training.data import load

    net = tmp_path / "tiny.pn"
    net.write_text("INPUT -> FC(16) -> RELU -> FC\n")
    run = patternnet.train(str(net), epochs=1, out=str(tmp_path / "run"))
    r = pn("compile", "tiny.pn", "--ckpt", "run", "-o", "tiny.pnx", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    x = load("digits").x_test[:5]
    loaded = patternnet.load(tmp_path / "tiny.pnx")
    np.testing.assert_allclose(np.asarray(loaded(x)),
                               np.asarray(run.model.forward(run.params, run.state, x)),
                               rtol=1e-5, atol=1e-5)
    r = pn("compile", "tiny.pn", "--ckpt", "nowhere", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("patternnet: error: nowhere: no such checkpoint")


# --- expand -----------------------------------------------------------------------------

FAMILY = "n in 1..3\nINPUT(4x4x3) -> [CONV(8) -> POOL]*n -> FC(10)\n"


def test_expand_table_golden(tmp_path, golden):
    (tmp_path / "fam.pn").write_text(FAMILY)
    r = pn("expand", "fam.pn", cwd=tmp_path)
    assert r.returncode == 1  # n = 3 pools 4x4 down to nothing
    golden(GOLDEN / "expand.text", r.stdout)
    assert r.stdout.rstrip().endswith("3 members, 2 ok, 1 failing")


def test_expand_json(tmp_path):
    (tmp_path / "fam.pn").write_text(FAMILY)
    r = pn("expand", "fam.pn", "--format", "json", cwd=tmp_path)
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert [m["bindings"] for m in doc["members"]] == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert [m["ok"] for m in doc["members"]] == [True, True, False]
    assert doc["members"][0]["params"] == (9 * 3 * 8 + 8) + (2 * 2 * 8 * 10 + 10)
    assert doc["members"][2]["diagnostics"][0]["code"] == "E301"
    r = pn("expand", "fam.pn", "-D", "n=2", "--format", "json", cwd=tmp_path)
    assert r.returncode == 0 and len(json.loads(r.stdout)["members"]) == 1
    r = pn("expand", "fam.pn", "-D", "m=2", cwd=tmp_path)
    assert r.returncode == 1 and "no constant or range `m`" in r.stdout
    r = pn("expand", "gone.pn", cwd=tmp_path)
    assert (r.returncode, r.stderr) == (2, "patternnet: error: gone.pn: no such file\n")


# --- Ctrl-C -----------------------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("delay", [0.15, 0.3, 0.6])
def test_ctrl_c_exits_130_quietly(tree, delay):
    """SIGINT at some moment while ``compile`` imports jax and compiles (a second or so):
    130 and nothing on stderr, whatever Python was doing (a KeyboardInterrupt raised
    inside jax's import once crashed it, or came back as an internal error).  The
    delays leave Python's own start-up (< 0.1 s) behind: before ``main`` runs, Python's
    default handler is in place."""
    import signal
    import time

    pytest.importorskip("jax")
    full = {**os.environ}
    full.pop("PYTHONWARNINGS", None)
    p = subprocess.Popen([sys.executable, "-m", "patternnet", "compile", "good.pn", "--net",
                          "wide"], cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=full)
    time.sleep(delay)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    if p.returncode == 0:
        pytest.skip("the command finished before the signal")
    assert (p.returncode, err) == (130, "")


def test_ctrl_c_handler_is_given_back_in_process(tmp_path, monkeypatch):
    import signal

    from patternnet import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.pn").write_text("INPUT -> FC\n")
    before = signal.getsignal(signal.SIGINT)
    assert cli.main(["check", "-q", "a.pn"]) == 0
    assert signal.getsignal(signal.SIGINT) is before


def test_an_internal_error_in_a_real_process(tree):
    """Exit 3: it says it is a bug and asks for a report; the traceback only with --debug."""
    code = ("import sys\nfrom patternnet import cli\n"
            "def boom(args):\n    raise RuntimeError('a bug')\n"
            "cli.check.run = boom\nsys.exit(cli.main(sys.argv[1:]))\n")
    for debug in ([], ["--debug"]):
        r = subprocess.run([sys.executable, "-c", code, *debug, "check", "good.pn"], cwd=tree,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 3 and r.stdout == ""
        assert r.stderr.startswith("patternnet: internal error: this is a bug in PatternNet")
        assert "please report it" in r.stderr
        assert ("Traceback" in r.stderr) == bool(debug)
        assert ("RuntimeError: a bug" in r.stderr) == bool(debug)
