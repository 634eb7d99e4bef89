"""What every test module shares: PatternNet's XLA:CPU configuration, golden files and
hypothesis profiles.

* The test session embeds PatternNet next to JAX the way a user's program does: it
  applies PatternNet's XLA:CPU configuration before any test module starts JAX
  (patternnet/xla_cpu.py), so the suite runs what users run.

* Golden files: a test takes the ``golden`` fixture and calls ``golden(path, text)``.
  The text must equal the file; ``pytest --update-goldens`` (or, as before,
  ``PATTERNNET_UPDATE_GOLDEN=1``) rewrites the files that differ instead, atomically,
  and the diff is then reviewed by eye before committing.  A missing golden fails with
  the command that creates it.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import patternnet

patternnet.configure_xla_cpu()

ROOT = Path(__file__).resolve().parent.parent

# --- golden files ---------------------------------------------------------------------

UPDATE_OPTION = "--update-goldens"
UPDATE_ENV = "PATTERNNET_UPDATE_GOLDEN"  # the older spelling, still honoured


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(UPDATE_OPTION, action="store_true", default=False,
                     help="rewrite the golden files that differ from what the tests "
                          f"produce, instead of failing (also {UPDATE_ENV}=1)")


def updating(config: pytest.Config) -> bool:
    return config.getoption(UPDATE_OPTION) or os.environ.get(UPDATE_ENV) == "1"


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` as it stands (no newline translation) through a
    temporary file in the same folder, so an interrupted update leaves the old golden
    or the new one, never half of one.  The file keeps its mode (a new one gets the
    umask's), since mkstemp's 0600 would otherwise replace it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def first_difference(got: str, want: str) -> int:
    """The 1-based number of the first line where the two texts differ."""
    a, b = got.splitlines(keepends=True), want.splitlines(keepends=True)
    return next((i for i, (x, y) in enumerate(zip(a, b), 1) if x != y), min(len(a), len(b)) + 1)


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


@dataclass(frozen=True)
class Golden:
    """Compares a test's text with a golden file, or rewrites the file when updating.

    ``nodeid`` is the test's, so the messages name the command that updates just it."""

    update: bool
    nodeid: str

    def __call__(self, path: Path, text: str) -> None:
        if self.update:
            if not path.exists() or path.read_bytes() != text.encode("utf-8"):
                write_atomically(path, text)
            return
        command = f"python -m pytest '{self.nodeid}' {UPDATE_OPTION}"
        if not path.exists():
            pytest.fail(f"missing golden {shown(path)}; create it with\n    {command}\n"
                        "and review it", pytrace=False)
        want = path.read_text(encoding="utf-8")
        assert text == want, (
            f"{shown(path)} differs from the output at line {first_difference(text, want)}; "
            f"after an intended change rewrite it with\n    {command}\nand review the diff")


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Golden:
    return Golden(update=updating(request.config), nodeid=request.node.nodeid)
