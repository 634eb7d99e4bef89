"""The hooks of .pre-commit-hooks.yaml, run by pre-commit itself on a temporary git repo.

pre-commit would install this repository into a virtual environment of its own for
``language: python`` (a download of jax and the rest); the test runs the same hook
definitions (id, entry, files, types) as ``language: system`` hooks against the
``patternnet`` already installed beside the tests, so what it checks is the hooks'
entries and file patterns, and pre-commit's handling of their exit codes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")  # pre-commit's own dependency
pytest.importorskip("pre_commit")

ROOT = Path(__file__).resolve().parent.parent
HOOKS = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())


def run(*args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=env)


@pytest.fixture
def repo(tmp_path: Path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "cache"),
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
           # the patternnet console script beside this interpreter
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    work = tmp_path / "repo"
    work.mkdir()
    run("git", "init", "-q", cwd=work, env=env)
    hooks = [{**h, "language": "system"} for h in HOOKS]
    config = {"repos": [{"repo": "local", "hooks": hooks}]}
    (work / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (work / "nets").mkdir()
    (work / "nets" / "good.pn").write_text("INPUT(28x28x1) -> CONV(8) -> RELU -> POOL -> FC(10)\n")
    (work / "notes.txt").write_text("INPUT -> not a network\n")  # not a .pn: never checked
    return work, env


def precommit(work: Path, env: dict, hook: str) -> subprocess.CompletedProcess:
    run("git", "add", "-A", cwd=work, env=env)
    return run(sys.executable, "-m", "pre_commit", "run", hook, "--all-files", cwd=work, env=env)


def test_the_hooks_are_defined():
    assert [h["id"] for h in HOOKS] == ["patternnet-check", "patternnet-fmt"]
    for h in HOOKS:
        assert h["entry"].startswith("patternnet ") and h["files"] == r"\.pn$"


def test_check_hook_passes_and_fails(repo):
    work, env = repo
    r = precommit(work, env, "patternnet-check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Passed" in r.stdout
    (work / "nets" / "bad.pn").write_text("INPUT(4x4x3) -> [POOL]*4 -> FC(10)\n")
    r = precommit(work, env, "patternnet-check")
    assert r.returncode == 1
    assert "Failed" in r.stdout and "error[E301]" in r.stdout and "nets/bad.pn:1:18" in r.stdout


def test_fmt_hook_rewrites_then_passes(repo):
    work, env = repo
    messy = work / "nets" / "messy.pn"
    messy.write_text("INPUT(8x8x1)->CONV(4)   ->RELU->FC(10)   # a comment\n")
    r = precommit(work, env, "patternnet-fmt")
    assert r.returncode == 1 and "files were modified by this hook" in r.stdout
    assert messy.read_text() == "INPUT(8x8x1) -> CONV(4) -> RELU -> FC(10)  # a comment\n"
    r = precommit(work, env, "patternnet-fmt")
    assert r.returncode == 0, r.stdout
