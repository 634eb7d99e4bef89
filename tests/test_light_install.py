"""The light install (issue 12): ``pip install patternnet`` is lark alone, and runs
``check``, ``fmt``, ``expand``, ``draw`` and the pre-commit hooks; a command that needs
an extra it lacks exits 2 with one line naming the extra.

The fast tests run the real command in a subprocess in which every module of the
extras is made unimportable (``sys.modules[name] = None``: ``import`` raises and
``importlib.util.find_spec`` answers None, as for a module that is not installed).
The slow test installs the hooks the way pre-commit does for a ``language: python``
hook, in a virtual environment of pre-commit's own, and runs them and the commands
from that environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: the top-level modules of the [jax] and [train] extras and of their dependencies that a
#: light command could reach by accident
HEAVY = ("jax", "jaxlib", "numpy", "optax", "flatbuffers", "sklearn", "matplotlib", "rich",
         "scipy", "ml_dtypes")
NET = "INPUT(16x16x3) -> [CONV(8) -> RELU -> POOL]*2 -> FC(10)\n"
FAMILY = "n in 1..2\nINPUT(16x16x3) -> [CONV(8) -> RELU]*n -> FC(10)\n"


def light(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``patternnet ARGS`` in a process where no module of the extras can be imported."""
    code = ("import sys\n"
            f"for m in {HEAVY!r}:\n    sys.modules[m] = None\n"
            "from patternnet.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env=env)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "net.pn").write_text(NET)
    (tmp_path / "fam.pn").write_text(FAMILY)
    (tmp_path / "messy.pn").write_text("INPUT(8x8x1)->CONV(4)   ->RELU->FC(10)\n")
    return tmp_path


def test_the_light_commands_need_no_extra(files):
    r = light("check", "net.pn", "fam.pn", "--summary", cwd=files)
    assert r.returncode == 0 and "net.pn: ok" in r.stdout, r.stderr
    r = light("check", "--format", "json", "net.pn", cwd=files)
    assert r.returncode == 0 and '"ok": true' in r.stdout, r.stderr
    r = light("expand", "fam.pn", cwd=files)
    assert r.returncode == 0 and "2 members, 2 ok" in r.stdout, r.stderr
    r = light("draw", "net.pn", "-o", "net.svg", cwd=files)
    assert r.returncode == 0 and (files / "net.svg").read_text().startswith("<svg"), r.stderr
    r = light("explain", "E304", cwd=files)
    assert r.returncode == 0 and "E304" in r.stdout, r.stderr
    r = light("fmt", "messy.pn", cwd=files)
    assert r.returncode == 0 and "reformatted" in r.stdout, r.stderr
    assert (files / "messy.pn").read_text() == "INPUT(8x8x1) -> CONV(4) -> RELU -> FC(10)\n"


@pytest.mark.parametrize("command, extra, what", [
    (["compile", "net.pn"], "jax", "JAX"),
    (["train", "net.pn"], "train", "the training extra"),
    (["eval", "net.pn", "--ckpt", "run"], "train", "the training extra"),
    (["predict", "net.pn", "--ckpt", "run", "--data", "x.npz", "-o", "p.npz"], "train",
     "the training extra"),
])
def test_a_command_without_its_extra_says_which_in_one_line(files, command, extra, what):
    r = light(*command, cwd=files)
    assert r.returncode == 2 and r.stdout == ""
    (line,) = r.stderr.splitlines()
    assert line.startswith(f"patternnet: error: patternnet {command[0]} needs {what} (")
    assert line.endswith(f"pip install 'patternnet[{extra}]'")
    assert "not installed" in line and "Traceback" not in r.stderr


def test_the_extras_are_declared_as_the_command_line_names_them():
    import tomllib

    from patternnet.cli import EXTRAS

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert [d.split(">")[0].split("=")[0] for d in project["dependencies"]] == ["lark"]
    extras = project["optional-dependencies"]
    assert set(EXTRAS) <= set(extras) and extras["all"] == ["patternnet[jax,train]"]
    # every module the command line looks for is installed by its extra
    installs = {"jax": "jax", "jaxlib": "jaxlib", "flatbuffers": "flatbuffers",
                "optax": "optax", "sklearn": "scikit-learn", "matplotlib": "matplotlib",
                "rich": "rich"}
    for extra, (modules, _) in EXTRAS.items():
        declared = " ".join(extras[extra] + (extras["jax"] if "patternnet[jax]" in
                                             extras[extra] else []))
        for m in modules:
            assert installs[m] in declared, (extra, m)


def _snapshot(dest: Path, env: dict) -> str:
    """This working tree as it is (tracked and untracked files that git does not ignore)
    committed in a new repository at ``dest``: what pre-commit installs a hook from.
    Returns the commit."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, capture_output=True, check=True)
    for name in filter(None, listed.stdout.decode().split("\0")):
        src = ROOT / name
        if src.is_file():  # a file deleted in the working tree stays out
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run(["git", *args], cwd=dest, env=env, check=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=dest, env=env, capture_output=True,
                          text=True, check=True).stdout.strip()


@pytest.mark.slow
def test_precommit_installs_the_light_core_and_runs_the_hooks(tmp_path):
    """pre-commit's own ``language: python`` install of this repository (the working
    tree as it is, uncommitted changes included, committed in a snapshot repository): its
    environment holds lark and patternnet and none of the extras; the hooks pass and
    fail as they should, and the commands run from that environment.  Building the wheel
    downloads the build requirements (jaxlib's headers, oneDNN) into pip's isolated build
    environment, not into the hook's.  Takes a few minutes."""
    yaml = pytest.importorskip("yaml")  # pre-commit's own dependency
    pytest.importorskip("pre_commit")
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "cache"),
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    env.pop("VIRTUAL_ENV", None)
    src, work = tmp_path / "patternnet", tmp_path / "repo"
    src.mkdir()
    work.mkdir()
    rev = _snapshot(src, env)
    config = {"repos": [{"repo": str(src), "rev": rev,
                         "hooks": [{"id": "patternnet-check"}, {"id": "patternnet-fmt"}]}]}
    (work / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=work, env=env, check=True)
    (work / "good.pn").write_text(NET)

    def hook(name: str) -> subprocess.CompletedProcess:
        subprocess.run(["git", "add", "-A"], cwd=work, env=env, check=True)
        return subprocess.run([sys.executable, "-m", "pre_commit", "run", name, "--all-files"],
                              cwd=work, env=env, capture_output=True, text=True, timeout=900)

    r = hook("patternnet-check")
    assert r.returncode == 0 and "Passed" in r.stdout, r.stdout + r.stderr
    (work / "bad.pn").write_text("INPUT(4x4x3) -> [POOL]*4 -> FC(10)\n")
    r = hook("patternnet-check")
    assert r.returncode == 1 and "error[E301]" in r.stdout, r.stdout + r.stderr
    (work / "bad.pn").unlink()
    (work / "messy.pn").write_text("INPUT(8x8x1)->CONV(4)   ->RELU->FC(10)\n")
    r = hook("patternnet-fmt")
    assert r.returncode == 1 and "files were modified by this hook" in r.stdout, r.stdout
    # the hook environment: patternnet and lark, none of the extras
    (py,) = (tmp_path / "cache").glob("repo*/py_env-*/bin/python")
    listed = subprocess.run([str(py), "-m", "pip", "list", "--format", "freeze"],
                            capture_output=True, text=True, check=True).stdout.lower()
    names = {line.split("==")[0] for line in listed.split()}
    assert {"patternnet", "lark"} <= names
    assert not names & {"jax", "jaxlib", "numpy", "optax", "scikit-learn", "matplotlib", "rich"}
    exe = py.parent / "patternnet"
    for args in (["expand", "good.pn"], ["draw", "good.pn", "-o", "-"]):
        r = subprocess.run([str(exe), *args], cwd=work, capture_output=True, text=True)
        assert r.returncode == 0 and r.stdout, r.stderr
    r = subprocess.run([str(exe), "compile", "good.pn"], cwd=work, capture_output=True,
                       text=True)
    assert r.returncode == 2 and "pip install 'patternnet[jax]'" in r.stderr
    assert "Traceback" not in r.stderr
