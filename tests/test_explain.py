"""The diagnostics index (patternnet/diagnostic_index.md) and ``patternnet explain``.

The index cannot drift from the code: every code the package emits has an entry and
every entry's code is emitted; each entry's example, checked as ``net.pn`` under its
options, reports exactly that code with the entry's severity, and the fixed example
reports neither it nor any error.  The few entries without an example say why in the
data (``untested:``) and are skipped by name.  docs/language.md §13.2 is the index as
``python -m patternnet.explain --markdown`` writes it (tests/test_docs.py runs its
examples again, as the page's).  The command runs in a subprocess, as a user runs it.
"""

from __future__ import annotations

import ast as pyast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from patternnet import explain

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "language.md"
ENTRIES = explain.entries()
BY_CODE = explain.by_code()

# The entries without a runnable example, each for the reason its `untested:` line gives
# (a path or a file's bytes, not program text; a .pnx export; 65 nested blocks).  Adding
# one is a decision, so the set is written out here as well as in the data.
UNTESTED = {"E001", "E002", "E003", "E005", "E006", "E215"}


def _ids(entries):
    return [e.code for e in entries]


# --- the index against the code ---------------------------------------------------------


def codes_in_package() -> set[str]:
    """Every code the package can emit: string constants such as "E304" in patternnet/
    (comments such as ``# noqa: E731`` are not constants, so they do not count)."""
    codes = set()
    for path in (REPO / "patternnet").rglob("*.py"):
        for node in pyast.walk(pyast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, pyast.Constant) and isinstance(node.value, str) \
                    and re.fullmatch(r"[EWN]\d{3}", node.value):
                codes.add(node.value)
    return codes


def test_every_emitted_code_has_an_entry():
    missing = sorted(codes_in_package() - set(BY_CODE))
    assert not missing, (f"codes the package emits with no entry in "
                         f"patternnet/diagnostic_index.md: {missing}")


def test_every_entry_is_emitted():
    invented = sorted(set(BY_CODE) - codes_in_package())
    assert not invented, f"entries for codes nothing in patternnet/ emits: {invented}"


def test_entries_are_unique_and_in_code_order():
    codes = [e.code for e in ENTRIES]
    assert len(codes) == len(set(codes)), "a code with two entries"
    assert codes == sorted(codes, key=lambda c: (c[0] != "E", c)), "entries out of order"


def test_severity_follows_the_code():
    """E320-E323 are warnings, N codes notes, every other E code an error."""
    for e in ENTRIES:
        want = ("note" if e.code.startswith("N") else
                "warning" if "E320" <= e.code <= "E329" else "error")
        assert e.severity == want, f"{e.code}: severity {e.severity}, expected {want}"


def test_only_the_listed_entries_lack_an_example():
    lacking = {e.code for e in ENTRIES if e.example is None}
    assert lacking == UNTESTED
    assert all(BY_CODE[c].untested for c in UNTESTED)


# --- each example reports its code -------------------------------------------------------


def _params(entries):
    """One parameter per entry; those without an example skipped, with the entry's why."""
    return [pytest.param(e, id=e.code, marks=pytest.mark.skip(reason=e.untested))
            if e.untested else pytest.param(e, id=e.code) for e in entries]


@pytest.mark.parametrize("entry", _params(ENTRIES))
def test_example_reports_its_code(entry):
    outcome = explain.run(entry.example, entry.options)
    assert outcome.codes == (entry.code,), (
        f"{entry.code}: `{entry.command}` on the example reports {outcome.codes}:\n"
        f"{outcome.text}")
    assert outcome.severities == (entry.severity,), outcome.text
    assert outcome.failed == (entry.severity == "error"), outcome.text


@pytest.mark.parametrize("entry", _params(ENTRIES))
def test_fixed_example_is_clean(entry):
    outcome = explain.run(entry.fixed, entry.fix_options)
    assert not outcome.failed, f"{entry.code}: the fixed example fails:\n{outcome.text}"
    assert entry.code not in outcome.codes, f"{entry.code}: still reported:\n{outcome.text}"


@pytest.mark.parametrize("entry", _params(ENTRIES))
def test_fix_changes_something(entry):
    assert (entry.fixed, entry.fix_options) != (entry.example, entry.options)


def test_an_untested_entry_still_explains(capsys):
    text = explain.explain(BY_CODE["E001"])
    assert text.startswith("E001 (error): the file cannot be read\n")
    assert "patternnet: error: nets/vgg.pn: no such file" in text and "Fix: " in text


# --- the index's format ------------------------------------------------------------------


@pytest.mark.parametrize("body, complaint", [
    ("## E999\ntitle: t\nseverity: error\n\nwhy\n", "Fix: "),
    ("## E999\ntitle: t\nseverity: fatal\n\nwhy\n\nFix: f\n", "severity"),
    ("## E999\ntitle: t\nseverity: error\ncolour: red\n\nwhy\n\nFix: f\n", "colour"),
    ("## E999\ntitle: t\nseverity: error\n\nwhy\n\n```pn\nINPUT\n```\n\nFix: f\n", "pn blocks"),
    ("## E999\ntitle: t\nseverity: error\n\nwhy\n```text\nx\n```\nFix: f\n", "```text"),
    ("## oops\ntitle: t\n", "heading"),
])
def test_a_malformed_entry_is_refused(tmp_path, body, complaint):
    path = tmp_path / "index.md"
    path.write_text("# head\n\n" + body, encoding="utf-8")
    with pytest.raises(explain.IndexFormatError, match=re.escape(complaint)):
        explain.load(path)


def test_the_index_ships_inside_the_package():
    """hatch packs every file under patternnet/ into the wheel (pyproject.toml's
    [tool.hatch.build.targets.wheel] packages), so the light install can read it."""
    import patternnet

    assert explain.INDEX.parent == Path(patternnet.__file__).parent
    assert 'packages = ["patternnet"]' in (REPO / "pyproject.toml").read_text()


def test_option_words():
    assert explain.option_kwargs(("--net", "a", "-D", "n=3", "-D", "s=2x2x1", "--strict",
                                  "--input", "8x8x1", "--classes", "4")) == {
        "net": "a", "define": {"n": "3", "s": "2x2x1"}, "strict": True,
        "input_shape": "8x8x1", "classes": 4}


@pytest.mark.parametrize("word, code", [("E304", "E304"), ("e304", "E304"), ("304", "E304"),
                                        (" n330 ", "N330")])
def test_normalise(word, code):
    assert explain.normalise(word) == code


def test_closest():
    assert explain.closest("E399") == ["E323", "E322", "E321"]
    assert explain.closest("E110") == ["E109", "E111", "E108"]
    assert explain.closest("N329")[0] == "N330"


# --- docs/language.md §13.2 --------------------------------------------------------------


def test_docs_index_is_generated():
    part = explain.generated_part(DOC.read_text(encoding="utf-8"))
    assert part is not None, "docs/language.md §13.2 lost the generated index's markers"
    assert part == explain.markdown(), (
        "docs/language.md §13.2 differs from the diagnostics index: run "
        "`python -m patternnet.explain --update docs/language.md` and review the diff")


def test_docs_index_sits_in_13_2():
    doc = DOC.read_text(encoding="utf-8")
    start = doc.index("### 13.2 The codes")
    assert start < doc.index(explain.BEGIN) < doc.index(explain.END) < doc.index("## 14.")


def test_every_entry_has_an_anchor():
    doc = DOC.read_text(encoding="utf-8")
    for e in ENTRIES:
        assert f"\n#### {e.code}\n" in doc and f"(#{e.code.lower()})" in doc, e.code


def test_update_rewrites_only_the_generated_part(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text(f"# before\n\n{explain.BEGIN}\nstale\n{explain.END}\n\n# after\n",
                   encoding="utf-8")
    assert explain.main(["--update", str(doc)]) == 0
    assert doc.read_text(encoding="utf-8") == (
        "# before\n\n" + explain.markdown() + "\n# after\n")


def test_markdown_flag(capsys):
    assert explain.main(["--markdown"]) == 0
    assert capsys.readouterr().out == explain.markdown()
    assert explain.main([]) == 2


# --- the command -------------------------------------------------------------------------


def patternnet(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "patternnet", *args], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=120)


def test_explain_prints_the_entry():
    r = patternnet("explain", "E304")
    assert r.returncode == 0 and r.stderr == ""
    e = BY_CODE["E304"]
    assert r.stdout.startswith(f"E304 (error): {e.title}\n")
    assert r.stdout == explain.explain(e)
    assert "error[E304]: `+` needs branches of one shape" in r.stdout   # what check prints
    assert "    " + e.fixed.split("\n")[0] in r.stdout


def test_explain_takes_lower_case():
    assert patternnet("explain", "e304").stdout == patternnet("explain", "E304").stdout


def test_unknown_code_is_one_line_with_the_closest():
    r = patternnet("explain", "E399")
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("patternnet: error: no diagnostic 'E399'")
    assert "E323, E322, E321" in lines[0] and "`patternnet explain` lists" in lines[0]


def test_explain_alone_lists_every_code():
    r = patternnet("explain")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert [l.split()[0] for l in lines] == [e.code for e in ENTRIES]
    for line, e in zip(lines, ENTRIES):
        assert line.endswith(e.title) and e.severity in line


def test_explain_stays_light():
    """``explain`` runs on the light install (lark only): here, in a process where the
    extras' modules cannot be imported (``sys.modules[name] = None`` makes ``import``
    fail, as for a module that is not installed)."""
    heavy = ("jax", "jaxlib", "numpy", "optax", "flatbuffers", "sklearn", "matplotlib", "rich")
    code = ("import sys, io, contextlib\n"
            f"for m in {heavy!r}:\n    sys.modules[m] = None\n"
            "from patternnet.cli import main\n"
            "out = io.StringIO()\n"
            "with contextlib.redirect_stdout(out):\n"
            "    codes = [main(['explain', 'E304']), main(['explain', 'n330']), main(['explain'])]\n"
            "assert codes == [0, 0, 0], (codes, out.getvalue())\n"
            "assert 'error[E304]' in out.getvalue() and 'note[N330]' in out.getvalue()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                       timeout=120)
    assert r.returncode == 0, r.stderr
