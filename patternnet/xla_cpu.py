"""PatternNet's XLA:CPU configuration, applied before JAX's CPU backend starts.

jaxlib 0.10 turns XLA:CPU's YNNPACK fusions on by default.  On ConvNet training steps
they cost time on every CPU measured (docs/performance.md, "XLA:CPU configuration"):
the card net's step took 1.4x as long on a 2-core AVX-512 EPYC and 3x on an AVX2-only
one, with bit-identical losses when off; and upstream reports silently wrong results and
crashes in them for this jaxlib (jax-ml/jax#39103, #39257, #40412).  So PatternNet turns
them off, with ``--xla_cpu_experimental_ynn_fusion_type=`` (an empty list of kinds).

The rules:

* Applied whenever PatternNet is what starts JAX: the command line, and
  ``patternnet.compile`` / ``train`` / ``load`` (through ``patternnet.backend``) called
  before JAX's CPU backend exists.  XLA reads ``XLA_FLAGS`` when the backend starts, not
  when ``jax`` is imported, so importing jax first is fine.
* Never overrides the user: if ``XLA_FLAGS`` already names the flag, any value stays;
  ``PATTERNNET_XLA_CPU=jax`` leaves JAX's configuration entirely alone.
* If JAX's backend already started without the flag, one ``PerformanceWarning`` says so,
  naming the flag and the measured cost, instead of nothing.
* Only on a jaxlib known to accept the flag (an unknown flag in ``XLA_FLAGS`` is a fatal
  error in XLA): the range pinned in pyproject.toml.

This module imports neither jax nor numpy.
"""

from __future__ import annotations

import os
import sys
import types
import warnings
from typing import Optional

YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
#: the flags PatternNet adds to XLA_FLAGS, each "name=value"
FLAGS = (YNN_FLAG + "=",)
#: jaxlib (major, minor) versions whose XLA knows every flag in FLAGS
KNOWN_JAXLIB = ((0, 10),)
OPT_OUT = "PATTERNNET_XLA_CPU"  # "jax": keep JAX's own configuration

COST = ("which made ConvNet training steps 1.4-3x slower in PatternNet's measurements "
        "(docs/performance.md)")


class PerformanceWarning(UserWarning):
    """JAX runs with a configuration that PatternNet measured to be slower."""


_state = {"warned": False, "warned_env": False}


def _flag_names(xla_flags: str) -> set[str]:
    return {f.split("=", 1)[0] for f in xla_flags.split()}


def _jaxlib_version() -> tuple[int, ...] | None:
    from importlib import metadata
    try:
        text = metadata.version("jaxlib")
    except metadata.PackageNotFoundError:
        return None
    parts = []
    for p in text.split(".")[:2]:
        digits = "".join(c for c in p if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _backend_started() -> bool:
    """Whether JAX's backends exist (only if jax was imported; never imports it)."""
    bridge = sys.modules.get("jax._src.xla_bridge")
    started = getattr(bridge, "backends_are_initialized", None)
    return bool(started and started())


def _caller_level() -> int:
    """The stack level of the first frame outside PatternNet and the import machinery,
    so that the warning names the user's line."""
    here = os.path.dirname(os.path.abspath(__file__))
    frame: Optional[types.FrameType] = sys._getframe(2)
    level = 1  # level 1 is configure, the caller of warn
    while frame is not None:
        name = frame.f_code.co_filename
        if "importlib" in name and name.startswith("<frozen"):
            frame = frame.f_back  # warnings skips these frames when it counts
            continue
        level += 1
        if not name.startswith(here):
            return level
        frame = frame.f_back
    return 1


def _cpu_is_default() -> bool:
    """The flags matter to XLA:CPU only: no warning when JAX computes on a GPU."""
    jax = sys.modules.get("jax")
    try:
        return jax is not None and jax.default_backend() == "cpu"
    except Exception:  # a broken backend is reported by JAX itself, not here
        return False


def _opted_out() -> bool:
    """``PATTERNNET_XLA_CPU=jax``; any other non-empty value is a mistake, said once."""
    value = os.environ.get(OPT_OUT, "").strip().lower()
    if value and value != "jax" and not _state["warned_env"]:
        _state["warned_env"] = True
        warnings.warn(f"{OPT_OUT}={value!r} means nothing to PatternNet: set it to 'jax' to "
                      "keep JAX's XLA:CPU configuration, or unset it", stacklevel=3)
    return value == "jax"


def status() -> str:
    """What ``configure`` would do now, in words."""
    flags = os.environ.get("XLA_FLAGS", "")
    if _opted_out():
        return "opted out"
    if YNN_FLAG in _flag_names(flags):
        return "set" if all(f in flags.split() for f in FLAGS) else "user's choice"
    if _jaxlib_version() not in KNOWN_JAXLIB:
        return "unknown jaxlib"
    return "started without" if _backend_started() else "not yet applied"


def configure() -> str:
    """Apply PatternNet's XLA:CPU flags if JAX's backend has not started; return what was
    done: "applied", "set" (already there), "user's choice", "opted out",
    "unknown jaxlib" or "started without" (after a one-time ``PerformanceWarning``)."""
    now = status()
    if now == "not yet applied":
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = " ".join([flags, *FLAGS]).strip()
        return "applied"
    if now == "started without" and not _state["warned"] and _cpu_is_default():
        _state["warned"] = True
        warnings.warn(
            f"JAX's CPU backend started before PatternNet could configure it: XLA:CPU "
            f"runs with its YNNPACK fusions on, {COST}.  Set XLA_FLAGS={FLAGS[0]} before "
            f"JAX starts, or call patternnet.configure_xla_cpu() before the first JAX "
            f"computation ({OPT_OUT}=jax keeps JAX's configuration and silences this).",
            PerformanceWarning, stacklevel=_caller_level())
    return now
