"""PatternNet's XLA:CPU configuration (patternnet/xla_cpu.py), each case in a fresh
process: JAX's flags are read once, when its CPU backend starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from patternnet import xla_cpu

ROOT = Path(__file__).resolve().parent.parent
NET = "INPUT(8x8x1) -> CONV(4) -> RELU -> POOL -> FC(2)"

# A jitted dot + relu: YNN's default fusion kinds take it, so its optimized HLO names a
# "__ynn" fusion exactly when the fusions are on.
PROBE = """
import json, os, jax, jax.numpy as jnp
f = jax.jit(lambda a, b: jax.nn.relu(a @ b) + 1.0)
hlo = f.lower(jnp.ones((64, 64)), jnp.ones((64, 64))).compile().as_text()
print(json.dumps({"flags": os.environ.get("XLA_FLAGS"), "ynn": "ynn_fusion" in hlo}))
"""


def run(code: str, **env) -> tuple[dict, str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("XLA_FLAGS", xla_cpu.OPT_OUT, "PYTHONWARNINGS")}
    r = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True,
                       text=True, timeout=120,
                       env={**clean, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu", **env})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1]), r.stderr


def test_compile_applies_the_flag_before_jax_starts():
    got, err = run(f"import patternnet; patternnet.compile({NET!r})\n" + PROBE)
    assert got == {"flags": xla_cpu.FLAGS[0], "ynn": False}
    assert "PerformanceWarning" not in err


def test_without_patternnet_the_fusions_are_on():
    """The flag is not a no-op on the pinned jaxlib: JAX's own default fuses with YNN."""
    got, _ = run(PROBE)
    assert got == {"flags": None, "ynn": True}


def test_importing_jax_first_is_fine():
    got, err = run(f"import jax, patternnet; patternnet.compile({NET!r})\n" + PROBE)
    assert got["ynn"] is False and "PerformanceWarning" not in err


def test_a_users_own_flag_is_kept():
    mine = "--xla_cpu_experimental_ynn_fusion_type=dot --xla_cpu_enable_fast_math=false"
    got, err = run(f"import patternnet; patternnet.compile({NET!r})\n" + PROBE, XLA_FLAGS=mine)
    assert got == {"flags": mine, "ynn": True}
    assert "PerformanceWarning" not in err


def test_other_user_flags_are_kept_and_ours_added():
    got, _ = run(f"import patternnet; patternnet.compile({NET!r})\n" + PROBE,
                 XLA_FLAGS="--xla_force_host_platform_device_count=2")
    assert got == {"flags": "--xla_force_host_platform_device_count=2 " + xla_cpu.FLAGS[0],
                   "ynn": False}


def test_opting_out_keeps_jaxs_configuration():
    got, err = run(f"import patternnet; patternnet.compile({NET!r})\n" + PROBE,
                   PATTERNNET_XLA_CPU="jax")
    assert got == {"flags": None, "ynn": True} and "PerformanceWarning" not in err


def test_an_unknown_opt_out_value_is_said_and_the_flag_still_applied():
    got, err = run(f"import patternnet; patternnet.compile({NET!r})\n" + PROBE,
                   PATTERNNET_XLA_CPU="off")
    assert got == {"flags": xla_cpu.FLAGS[0], "ynn": False}
    assert err.count("PATTERNNET_XLA_CPU='off' means nothing to PatternNet") == 1, err


def test_a_backend_started_without_the_flag_warns_once():
    code = ("import jax, jax.numpy as jnp, patternnet\n"
            "jnp.ones(3).block_until_ready()\n"
            f"patternnet.compile({NET!r}); patternnet.compile({NET!r})\n"
            "print(patternnet.configure_xla_cpu())\n" + PROBE)
    got, err = run(code)
    assert got["ynn"] is True
    assert err.count("PerformanceWarning") == 1, err
    assert "<string>:3: PerformanceWarning" in err   # the user's line, not PatternNet's
    assert xla_cpu.FLAGS[0] in err and "slower" in err and "docs/performance.md" in err


def test_configure_xla_cpu_before_the_first_computation():
    code = ("import jax, jax.numpy as jnp, patternnet\n"
            "print(patternnet.configure_xla_cpu())\n"
            "jnp.ones(3).block_until_ready()\n" + PROBE)
    got, err = run(code)
    assert got == {"flags": xla_cpu.FLAGS[0], "ynn": False} and "Warning" not in err


def test_the_command_line_applies_it(tmp_path):
    net = tmp_path / "n.pn"
    net.write_text(NET + "\n")
    code = (f"import patternnet.cli as cli\nassert cli.main(['compile', {str(net)!r}]) == 0\n"
            + PROBE)
    got, _ = run(code)
    assert got == {"flags": xla_cpu.FLAGS[0], "ynn": False}


def test_check_leaves_xla_flags_alone(tmp_path):
    net = tmp_path / "n.pn"
    net.write_text(NET + "\n")
    code = (f"import os, sys, json, patternnet.cli as cli\n"
            f"assert cli.main(['check', '-q', {str(net)!r}]) == 0\n"
            "print(json.dumps({'flags': os.environ.get('XLA_FLAGS'), "
            "'jax': 'jax' in sys.modules}))")
    got, _ = run(code)
    assert got == {"flags": None, "jax": False}


def test_an_unknown_jaxlib_gets_no_flag(monkeypatch):
    """An unknown flag in XLA_FLAGS is fatal to XLA, so only known jaxlibs get it."""
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.delenv(xla_cpu.OPT_OUT, raising=False)
    monkeypatch.setattr(xla_cpu, "_jaxlib_version", lambda: (0, 9))
    monkeypatch.setattr(xla_cpu, "_backend_started", lambda: False)
    assert xla_cpu.configure() == "unknown jaxlib"
    assert "XLA_FLAGS" not in os.environ
    monkeypatch.setattr(xla_cpu, "_jaxlib_version", lambda: xla_cpu.KNOWN_JAXLIB[0])
    assert xla_cpu.configure() == "applied" and os.environ["XLA_FLAGS"] == xla_cpu.FLAGS[0]
    assert xla_cpu.configure() == "set"


@pytest.mark.parametrize("flags, names", [
    ("", set()), ("--a=1 --b", {"--a", "--b"}), ("  --a=x=y  ", {"--a"})])
def test_flag_names(flags, names):
    assert xla_cpu._flag_names(flags) == names
