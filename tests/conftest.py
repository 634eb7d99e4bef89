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

* Hypothesis profiles, chosen by ``HYPOTHESIS_PROFILE``; without it CI (``CI=true``)
  runs "ci" and everything else "default":

  ``default``  hypothesis's 100 examples, no deadline and no too_slow health check
               (the reasons are at SUPPRESSED below);
  ``ci``       the same, derandomized (a CI failure reproduces, a green run stays
               green), no example database (CI starts fresh) and the failing blob
               printed so it can be replayed locally;
  ``slow``     every quick property test at ten times its examples
               (``HYPOTHESIS_PROFILE=slow pytest``), for a long look before a release.

  A test says only what is its own: ``@examples(n)`` for how many examples it runs
  (n under default and ci, 10n under slow), ``@slow_examples(n)`` for a test marked
  ``slow`` (n under every profile: it already is the many-example run),
  ``fixed=True`` for a quick test that runs the same examples every time (each one is
  expensive, so the quick suite stays the same suite), ``filtering=True`` for a
  strategy that filters.  Import them with ``from conftest import examples``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

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


# --- hypothesis profiles --------------------------------------------------------------

PROFILE_ENV = "HYPOTHESIS_PROFILE"
HYPOTHESIS_EXAMPLES = 100  # hypothesis's own max_examples, what the default profile keeps
SLOW_FACTOR = 10           # the slow profile: ten times every quick test's examples

# What every property test here needs: no per-example deadline, since one example may
# compile a JAX program or check every member of a generated family (seconds on a busy
# 2-core runner, so a deadline would time the machine, not the code); and no too_slow
# health check, since the strategies draw whole programs.
SUPPRESSED = (HealthCheck.too_slow,)
# A strategy that filters (assume(), .filter) rejects many draws on purpose.
FILTERING = (*SUPPRESSED, HealthCheck.filter_too_much)

settings.register_profile("default", max_examples=HYPOTHESIS_EXAMPLES, deadline=None,
                          suppress_health_check=SUPPRESSED)
settings.register_profile("ci", settings.get_profile("default"), derandomize=True,
                          database=None, print_blob=True)
settings.register_profile("slow", settings.get_profile("default"),
                          max_examples=HYPOTHESIS_EXAMPLES * SLOW_FACTOR)


def chosen_profile(env: Mapping[str, str]) -> str:
    if env.get(PROFILE_ENV):
        return env[PROFILE_ENV]
    return "ci" if env.get("CI", "").lower() in ("true", "1") else "default"


# Loaded here, before pytest imports any test module, so that every @settings there
# (and every bare @given) inherits the profile; `pytest --hypothesis-profile NAME`
# still replaces it before the test modules are imported.
settings.load_profile(chosen_profile(os.environ))


def pytest_report_header(config: pytest.Config) -> str:
    # hypothesis says which profile runs only under -v; a CI log should always say it.
    # The current one, since --hypothesis-profile may have replaced ours (older
    # hypothesis has no get_current_profile_name: then ours).
    current = getattr(settings, "get_current_profile_name", lambda: chosen_profile(os.environ))
    return f"hypothesis profile: {current()} (set by {PROFILE_ENV}; CI=true picks ci)"


def _own(n: int, fixed: bool, filtering: bool) -> settings:
    own: dict = {"max_examples": n}
    if fixed:  # only ever switched on: False would undo the ci profile's derandomize
        own["derandomize"] = True
    if filtering:
        own["suppress_health_check"] = FILTERING
    return settings(**own)


def examples(n: int, *, fixed: bool = False, filtering: bool = False) -> settings:
    """The settings of a quick property test that runs ``n`` examples under the default
    and ci profiles, scaled with the profile's max_examples (ten times under "slow")."""
    scale = settings.default.max_examples / HYPOTHESIS_EXAMPLES
    return _own(max(1, round(n * scale)), fixed, filtering)


def slow_examples(n: int, *, filtering: bool = False) -> settings:
    """The settings of a test marked ``slow``: ``n`` examples under every profile."""
    return _own(n, False, filtering)
