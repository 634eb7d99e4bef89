"""The ``patternnet`` command, run as a real subprocess (``python -m patternnet``).

Exit codes (patternnet/cli.py): 0 clean, 1 problems in the input (diagnostics
printed), 2 usage or I/O errors (one line on stderr, no traceback), 3 internal error,
130 interrupted.  A few tests call ``cli.main`` in-process where a subprocess cannot
reach the situation (an internal error, a failing rename).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from patternnet import __version__, cli, limits
from patternnet.atomic import write_atomic

ROOT = Path(__file__).resolve().parent.parent

CLEAN = "n = 2\nINPUT -> CONV*n -> FC\nv = INPUT(224x224x3) -> FC\n"


def run(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("PYTHONWARNINGS", None)
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=full_env)


def pn(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run("-m", "patternnet", *args, cwd=cwd)


class Result:
    """What ``cli.main`` did in-process: the same fields as a CompletedProcess."""

    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def main(capsys, monkeypatch, tmp_path):
    """Run ``cli.main`` in-process in tmp_path (cheaper than a subprocess)."""
    monkeypatch.chdir(tmp_path)

    def call(*args: str) -> Result:
        capsys.readouterr()
        code = cli.main(list(args))
        out = capsys.readouterr()
        return Result(code, out.out, out.err)

    return call


def write(dir: Path, name: str, text: str | bytes) -> Path:
    p = dir / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8", newline="")
    return p


def assert_usage_error(r: subprocess.CompletedProcess, *words: str) -> None:
    """Exit 2, one line on stderr, nothing on stdout, no traceback."""
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("patternnet: error: ")
    for w in words:
        assert w in lines[0], (w, lines[0])


# --- check: clean files ----------------------------------------------------------------


def test_check_clean_file(tmp_path):
    write(tmp_path, "ok.pn", CLEAN)
    r = pn("check", "ok.pn", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stderr == ""
    lines = r.stdout.splitlines()
    assert lines[0] == "ok.pn: ok"
    # one line per network: the default one first, then the named ones in file order
    assert len(lines) == 3, r.stdout
    assert all(l.startswith("  ") for l in lines[1:])
    assert "default network" in lines[1] and lines[1].endswith("4 layers")
    assert lines[2].startswith("  v: ") and lines[2].endswith("2 layers")
    assert "\x1b[" not in r.stdout  # no colour when stdout is not a terminal


def test_check_net_picks_one_network(tmp_path, main):
    write(tmp_path, "ok.pn", CLEAN)
    r = main("check", "ok.pn", "--net", "v")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0] == "ok.pn: ok"
    assert len(lines) == 2 and lines[1].startswith("  v: ")


def test_check_unknown_net_is_a_problem_in_the_input(tmp_path, main):
    write(tmp_path, "ok.pn", CLEAN)
    r = main("check", "ok.pn", "--net", "vv")
    assert r.returncode == 1
    assert "error[E207]: no network named `vv` in ok.pn" in r.stdout
    assert "did you mean `v`?" in r.stdout
    assert "Traceback" not in r.stderr


def test_check_define(tmp_path, main):
    write(tmp_path, "ok.pn", CLEAN)
    r = main("check", "ok.pn", "-D", "n=5")
    assert r.returncode == 0
    assert r.stdout.splitlines()[1].endswith("7 layers")
    r = main("check", "ok.pn", "-D", " n = 0 ")  # spaces around the name and value
    assert r.returncode == 0
    assert r.stdout.splitlines()[1].endswith(" 2 layers")  # CONV*0 is nothing


def test_check_define_unknown_name(tmp_path, main):
    write(tmp_path, "ok.pn", CLEAN)
    r = main("check", "ok.pn", "-D", "nn=3")
    assert r.returncode == 1
    assert "error[E210]: -D nn: the file has no constant or range `nn`" in r.stdout
    assert "= help: did you mean `n`?" in r.stdout


def test_check_define_fixes_a_range(tmp_path, main):
    write(tmp_path, "f.pn", "k in 1..3\nINPUT -> [CONV -> RELU]*k -> FC\n")
    r = main("check", "f.pn", "-D", "k=3")
    assert r.returncode == 0
    assert r.stdout.splitlines()[1].endswith("8 layers")
    r = main("check", "f.pn", "-D", "k=4")
    assert r.returncode == 1
    assert "error[E210]: -D k=4 is outside the range 1..3" in r.stdout
    assert " --> f.pn:1:1" in r.stdout


def test_check_family(tmp_path, main):
    r = main("check", str(ROOT / "examples" / "cs231n.pn"))
    assert r.returncode == 0, r.stdout
    lines = r.stdout.splitlines()
    assert lines[0].endswith("cs231n.pn: ok")
    assert "family over n in 0..3, m in 0..3, k in 0..2" in lines[1]
    assert lines[2].startswith("  seed: ") and lines[2].endswith("19 layers")


def test_check_quiet(tmp_path):
    write(tmp_path, "ok.pn", CLEAN)
    r = pn("check", "-q", "ok.pn", cwd=tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    r = pn("check", "--quiet", "ok.pn", cwd=tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_check_quiet_still_reports_problems(tmp_path, main):
    write(tmp_path, "bad.pn", "INPUT -> CONVV\n")
    r = main("check", "-q", "bad.pn")
    assert r.returncode == 1
    assert "error[E105]" in r.stdout


@pytest.mark.parametrize("name, data", [
    ("crlf.pn", b"INPUT -> CONV\r\n  -> RELU\r\n"),
    ("bom.pn", b"\xef\xbb\xbfINPUT -> CONV\n"),
    ("noeol.pn", b"INPUT -> CONV"),
    ("tabs.pn", b"\tINPUT\t->\tCONV  # tabs\n"),
])
def test_check_tolerates_line_endings_bom_and_tabs(tmp_path, main, name, data):
    write(tmp_path, name, data)
    r = main("check", name)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[0] == f"{name}: ok"


# --- check: problems in the input ------------------------------------------------------


def test_check_bad_file_prints_diagnostics(tmp_path):
    write(tmp_path, "bad.pn", "INPUT -> CONV(fiters)\nfilters = 3\n")
    r = pn("check", "bad.pn", cwd=tmp_path)
    assert r.returncode == 1
    assert "Traceback" not in r.stdout + r.stderr
    assert r.stdout.rstrip("\n") == (
        "error[E201]: undefined name `fiters`\n"
        " --> bad.pn:1:15\n"
        "  |\n"
        "1 | INPUT -> CONV(fiters)\n"
        "  |               ^^^^^^ not defined\n"
        "  = help: did you mean `filters`?")


def test_check_reports_every_syntax_error(tmp_path):
    write(tmp_path, "multi.pn", "a = INPUT -> CONVV\nb = INPUT -> -> FC\nc = INPUT -> CONV(3\n")
    r = pn("check", "multi.pn", cwd=tmp_path)
    assert r.returncode == 1
    heads = [l for l in r.stdout.splitlines() if l.startswith("error[")]
    assert [h.split("]")[0] for h in heads] == ["error[E105", "error[E101", "error[E103"]
    for where in (" --> multi.pn:1:14", " --> multi.pn:2:14", " --> multi.pn:3:18"):
        assert where in r.stdout


def test_check_reports_errors_of_every_network(tmp_path, main):
    write(tmp_path, "two.pn", "a = INPUT -> blok\nb = INPUT -> CONV(0)\n")
    r = main("check", "two.pn")
    assert r.returncode == 1
    assert "error[E201]: undefined block `blok`" in r.stdout
    assert "error[E206]: `filters` of CONV must be a positive integer, got `0`" in r.stdout
    assert ": ok" not in r.stdout


def test_check_several_files(tmp_path, main):
    write(tmp_path, "ok.pn", CLEAN)
    write(tmp_path, "bad.pn", "INPUT -> CONV(0)\n")
    r = main("check", "ok.pn", "bad.pn")
    assert r.returncode == 1
    assert "ok.pn: ok" in r.stdout
    assert " --> bad.pn:1:15" in r.stdout
    assert r.stdout.index("ok.pn: ok") < r.stdout.index("bad.pn:1:15")


def test_check_file_without_a_network(tmp_path, main):
    write(tmp_path, "c.pn", "# only a comment\nb = CONV\n")
    r = main("check", "c.pn")
    assert r.returncode == 1
    assert "error[E207]: c.pn defines no network" in r.stdout


def test_check_several_networks_resolve_each(tmp_path, main):
    write(tmp_path, "n.pn", "a = INPUT -> FC\nb = INPUT -> CONV -> FC\n")
    r = main("check", "n.pn")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert [l.split(":")[0].strip() for l in lines[1:]] == ["a", "b"]


# --- usage and I/O errors: exit 2, one line ----------------------------------------------


def test_missing_file(tmp_path):
    assert_usage_error(pn("check", "nope.pn", cwd=tmp_path), "nope.pn", "no such file")


def test_directory_without_pn_files(tmp_path):
    (tmp_path / "d.pn").mkdir()
    (tmp_path / "d.pn" / "notes.txt").write_text("INPUT -> FC\n")
    assert_usage_error(pn("check", "d.pn", cwd=tmp_path), "d.pn", "no .pn files")


def test_not_utf8(tmp_path):
    write(tmp_path, "bad.pn", b"INPUT -> CONV\n# caf\xe9\n")
    assert_usage_error(pn("check", "bad.pn", cwd=tmp_path), "bad.pn", "not UTF-8",
                       "0xe9", "line 2")


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_empty_file(tmp_path, text):
    write(tmp_path, "empty.pn", text)
    assert_usage_error(pn("check", "empty.pn", cwd=tmp_path), "empty.pn", "empty")


def test_file_over_the_size_limit(tmp_path):
    line = "# " + "x" * 98 + "\n"
    text = "INPUT -> FC\n" + line * (limits.MAX_FILE_BYTES // len(line) + 1)
    assert len(text.encode()) > limits.MAX_FILE_BYTES
    write(tmp_path, "big.pn", text)
    assert_usage_error(pn("check", "big.pn", cwd=tmp_path), "big.pn", "MAX_FILE_BYTES")


def test_malformed_define(tmp_path):
    write(tmp_path, "ok.pn", CLEAN)
    assert_usage_error(pn("check", "ok.pn", "-D", "n5", cwd=tmp_path), "-D n5", "name=value")


@pytest.mark.parametrize("define", ["=3", "n", " =1"])
def test_malformed_define_variants(tmp_path, main, define):
    write(tmp_path, "ok.pn", CLEAN)
    assert_usage_error(main("check", "ok.pn", "-D", define), f"-D {define}", "name=value")


@pytest.mark.parametrize("args", [(), ("check",), ("check", "--bogus", "ok.pn"), ("frob",)])
def test_argparse_usage_errors(tmp_path, args):
    write(tmp_path, "ok.pn", CLEAN)
    r = pn(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stdout == ""
    errors = [l for l in r.stderr.splitlines() if "error:" in l]
    assert len(errors) == 1 and errors[0].startswith("patternnet")
    assert r.stderr.splitlines()[-1] == errors[0]


@pytest.mark.parametrize("args", [(), ("check", "--bogus", "ok.pn")])
def test_argparse_usage_errors_are_one_line(tmp_path, args):
    write(tmp_path, "ok.pn", CLEAN)
    r = pn(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert len(r.stderr.splitlines()) == 1, r.stderr


def test_unreadable_file_does_not_hide_the_other_reports(tmp_path, main):
    write(tmp_path, "ok.pn", CLEAN)
    write(tmp_path, "bad.pn", "INPUT -> CONV(0)\n")
    r = main("check", "ok.pn", "bad.pn", "missing.pn")
    assert r.returncode == 2
    assert "ok.pn: ok" in r.stdout
    assert "bad.pn:1:15" in r.stdout
    assert "missing.pn: no such file" in r.stderr


def test_version(tmp_path):
    r = pn("--version", cwd=tmp_path)
    assert r.returncode == 0
    assert r.stdout.strip() == f"patternnet {__version__}"


def test_help_lists_the_commands(tmp_path):
    r = pn("--help", cwd=tmp_path)
    assert r.returncode == 0
    for word in ("check", "fmt", "exit codes"):
        assert word in r.stdout


# --- internal errors (in-process) --------------------------------------------------------


def _boom(args):
    raise RuntimeError("boom")


def test_internal_error_is_exit_3_without_traceback(monkeypatch, capsys, tmp_path):
    write(tmp_path, "ok.pn", CLEAN)
    monkeypatch.setattr(cli.check, "run", _boom)
    assert cli.main(["check", str(tmp_path / "ok.pn")]) == 3
    err = capsys.readouterr().err
    assert "internal error" in err and "--debug" in err
    assert "Traceback" not in err


def test_internal_error_with_debug_shows_the_traceback(monkeypatch, capsys, tmp_path):
    write(tmp_path, "ok.pn", CLEAN)
    monkeypatch.setattr(cli.check, "run", _boom)
    assert cli.main(["--debug", "check", str(tmp_path / "ok.pn")]) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: boom" in err


def test_interrupt_is_exit_130(monkeypatch, tmp_path):
    def interrupted(args):
        raise KeyboardInterrupt

    write(tmp_path, "ok.pn", CLEAN)
    monkeypatch.setattr(cli.check, "run", interrupted)
    assert cli.main(["check", str(tmp_path / "ok.pn")]) == 130


# --- check stays light -------------------------------------------------------------------


def test_check_does_not_import_jax_or_numpy(tmp_path):
    write(tmp_path, "ok.pn", CLEAN)
    write(tmp_path, "bad.pn", "INPUT -> CONV(0)\n")
    code = ("import sys, patternnet.cli as c\n"
            "rc = c.main(['check', 'ok.pn', 'bad.pn', "
            f"{str(ROOT / 'examples' / 'cs231n.pn')!r}])\n"
            "print('RESULT', rc, 'jax' in sys.modules, 'numpy' in sys.modules)\n")
    r = run("-c", code, cwd=tmp_path)
    assert r.stdout.splitlines()[-1] == "RESULT 1 False False", r.stdout + r.stderr


def test_check_command_does_not_import_jax_or_numpy_importtime(tmp_path):
    write(tmp_path, "ok.pn", CLEAN)
    r = run("-X", "importtime", "-m", "patternnet", "check", "ok.pn", cwd=tmp_path)
    assert r.returncode == 0
    imported = {l.rsplit("|", 1)[-1].strip() for l in r.stderr.splitlines()
                if l.startswith("import time:")}
    assert "patternnet.cli" in imported
    assert not {m for m in imported if m.split(".")[0] in ("jax", "jaxlib", "numpy")}


# --- fmt -----------------------------------------------------------------------------------

UGLY = "n=2   # the count\nINPUT->[CONV(  3 )->RELU]*n   # body\n# trailing note\n"


@pytest.fixture
def formatter():
    return pytest.importorskip("patternnet.formatter")


def test_fmt_check_lists_files_without_touching_them(tmp_path, formatter):
    p = write(tmp_path, "ugly.pn", UGLY)
    before = p.stat().st_mtime_ns
    r = pn("fmt", "--check", "ugly.pn", cwd=tmp_path)
    assert r.returncode == 1
    assert r.stdout.splitlines() == ["would reformat ugly.pn"]
    assert p.read_text() == UGLY
    assert p.stat().st_mtime_ns == before


def test_fmt_rewrites_in_place_and_is_idempotent(tmp_path, main, formatter):
    from patternnet.parser import parse

    p = write(tmp_path, "ugly.pn", UGLY)
    os.chmod(p, 0o640)
    r = pn("fmt", "ugly.pn", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines() == ["reformatted ugly.pn"]
    new = p.read_text()
    assert new != UGLY
    for comment in ("# the count", "# body", "# trailing note"):
        assert comment in new
    assert parse(new) == parse(UGLY)                # same program
    assert stat.S_IMODE(p.stat().st_mode) == 0o640  # mode kept
    assert sorted(x.name for x in tmp_path.iterdir()) == ["ugly.pn"]  # no temp files left
    # a second run changes nothing
    r = main("fmt", "ugly.pn")
    assert (r.returncode, r.stdout) == (0, "")
    assert p.read_text() == new
    r = main("fmt", "--check", "ugly.pn")
    assert (r.returncode, r.stdout) == (0, "")
    assert formatter.format_source(new) == new


def test_fmt_quiet(tmp_path, main, formatter):
    p = write(tmp_path, "ugly.pn", UGLY)
    r = main("fmt", "-q", "ugly.pn")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert p.read_text() != UGLY


def test_fmt_leaves_files_with_syntax_errors_alone(tmp_path, main, formatter):
    p = write(tmp_path, "bad.pn", "INPUT ->  -> CONV\n")
    r = main("fmt", "bad.pn")
    assert r.returncode == 1
    assert "error[E101]" in r.stdout
    assert p.read_text() == "INPUT ->  -> CONV\n"


def test_fmt_missing_file(tmp_path, formatter):
    assert_usage_error(pn("fmt", "nope.pn", cwd=tmp_path), "nope.pn", "no such file")


def test_fmt_does_not_import_jax_or_numpy(tmp_path, formatter):
    write(tmp_path, "ugly.pn", UGLY)
    code = ("import sys, patternnet.cli as c\n"
            "rc = c.main(['fmt', '--check', 'ugly.pn'])\n"
            "print('RESULT', rc, 'jax' in sys.modules, 'numpy' in sys.modules)\n")
    r = run("-c", code, cwd=tmp_path)
    assert r.stdout.splitlines()[-1] == "RESULT 1 False False", r.stdout + r.stderr


def test_write_atomic_keeps_the_old_file_when_the_rename_fails(tmp_path, monkeypatch):
    p = write(tmp_path, "a.pn", "old\n")

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        write_atomic(str(p), "new\n")
    assert p.read_text() == "old\n"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.pn"]


def test_write_atomic_replaces_the_content(tmp_path):
    p = write(tmp_path, "a.pn", "old\n")
    write_atomic(str(p), "new\r\nline\n")
    assert p.read_bytes() == b"new\r\nline\n"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.pn"]
