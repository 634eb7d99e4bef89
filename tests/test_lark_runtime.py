"""The two ways Lark runs the grammar agree, and the standalone one is made and reused.

See patternnet/lark_runtime.py: a standalone parser generated into the user's cache is
the default, and the lark package serves when the cache cannot be written or
PATTERNNET_PARSER=lark asks for it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from patternnet.diagnostics import PatternNetError
from patternnet.parser import parse

ROOT = Path(__file__).resolve().parent.parent
PARSE = sys.modules["patternnet.parser"]
SOURCES = sorted((ROOT / "examples").glob("*.pn")) + sorted((ROOT / "tests" / "golden").glob("*.pn"))


def _outcome(text: str):
    try:
        return ("ok", parse(text, "t.pn"))
    except PatternNetError as e:
        return ("error", [d.to_dict() for d in e.diagnostics])


@pytest.fixture
def use_runtime(monkeypatch):
    def use(name: str):
        monkeypatch.setenv("PATTERNNET_PARSER", name)
        monkeypatch.setattr(PARSE, "_parser", None)
        monkeypatch.setattr(PARSE, "_R", None)
        PARSE._get_parser()
        return PARSE._R.__name__
    yield use
    PARSE._parser = None  # the next test builds the default parser again


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_standalone_and_package_agree(path, use_runtime):
    text = path.read_text(encoding="utf-8")
    assert use_runtime("lark") == "lark"
    by_package = _outcome(text)
    assert use_runtime("standalone").startswith("_patternnet_pn_parser_")
    assert _outcome(text) == by_package


def _run(code: str, cache: str) -> str:
    env = {**os.environ, "XDG_CACHE_HOME": cache}
    env.pop("PATTERNNET_PARSER", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


PROBE = ("import sys, patternnet; patternnet.check('examples/vgg.pn', net='vgg16'); "
         "print(sys.modules['patternnet.parser']._R.__name__, 'lark' in sys.modules)")


def test_generated_once_then_imported_without_lark(tmp_path):
    first = _run(PROBE, str(tmp_path))
    made = list((tmp_path / "patternnet").glob("pn_parser_*.py"))
    assert len(made) == 1 and first.startswith("_patternnet_pn_parser_")
    second = _run(PROBE, str(tmp_path))
    assert second.split() == [first.split()[0], "False"]  # lark itself is not imported


def test_unwritable_cache_falls_back_to_the_lark_package(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")  # the cache root is a file, so nothing can be written under it
    assert _run(PROBE, str(blocker)) == "lark True"
