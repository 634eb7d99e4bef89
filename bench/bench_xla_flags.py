"""XLA:CPU settings A/B (issue 11): PatternNet's train step under each setting that
matters, for speed, and the NumPy-reference numerics test under the same setting.

    .venv/bin/python bench/bench_xla_flags.py [--nets card] [--rounds 4] [--per-round 2]

Each setting runs in its own process (bench_backend.py's ``--child PatternNet``, with
``PATTERNNET_XLA_CPU=jax`` so PatternNet leaves the given XLA_FLAGS alone), all alive at
once, rounds interleaved.  Agreement: the last timed loss is compared across settings
(same inputs, same steps), and tests/test_jax_numerics.py (float32 bounds against the
NumPy reference) runs under each setting.  Writes bench/results/xla_flags.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

YNN = "--xla_cpu_experimental_ynn_fusion_type="
ONEDNN = "--xla_cpu_use_onednn=true"
SETTINGS = {
    "JAX default (YNN fusions on)": "",
    "YNN off (PatternNet's)": YNN,
    "YNN -dot": YNN + "-dot",
    "YNN -eltwise": YNN + "-eltwise",
    "YNN -reduce": YNN + "-reduce",
    "YNN +individual_convolution": YNN + "+individual_convolution",
    "oneDNN, YNN on": ONEDNN,
    "oneDNN, YNN off": ONEDNN + " " + YNN,
}


def env_for(flags: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(PATTERNNET_XLA_CPU="jax", JAX_PLATFORMS="cpu")
    if flags:
        env["XLA_FLAGS"] = flags
    return env


def numerics(flags: str) -> str:
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "tests/test_jax_numerics.py"], cwd=ROOT, env=env_for(flags),
                       capture_output=True, text=True, timeout=600)
    return r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-300:]


def bench(net: str, rounds: int, per_round: int) -> list:
    from bench_backend import interleave, start_children
    specs = {name: ("PatternNet", env_for(flags), ("--report-loss",))
             for name, flags in SETTINGS.items()}
    procs, info = start_children(specs, net)
    times, last = interleave(procs, rounds, per_round, settle_s=0)  # as the committed run
    rows = []
    for name in procs:
        ts = times[name]
        rows.append({"net": net, "setting": name, "xla_flags": SETTINGS[name],
                     "first_call_s": info[name]["first_s"],
                     "median_ms": statistics.median(ts) * 1e3, "min_ms": min(ts) * 1e3, "max_ms": max(ts) * 1e3,
                     "steps_ms": [t * 1e3 for t in ts], "last_loss": last[name]["loss"]})
    base = rows[0]["median_ms"]
    for r in rows:
        r["x_default"] = r["median_ms"] / base
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", nargs="+", default=["card"])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--per-round", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "xla_flags.json"))
    args = ap.parse_args(argv)
    rows = [r for net in args.nets for r in bench(net, args.rounds, args.per_round)]
    checks = {name: numerics(flags) for name, flags in SETTINGS.items()}
    print("| net | setting | median ms (min-max) | x default | last loss | numerics test |")
    print("|---|---|--:|--:|--:|---|")
    for r in rows:
        print(f"| {r['net']} | {r['setting']} | {r['median_ms']:.0f} ({r['min_ms']:.0f}-"
              f"{r['max_ms']:.0f}) | {r['x_default']:.2f} | {r['last_loss']:.7f} | "
              f"{checks[r['setting']]} |")
    import jax

    from patternnet.atomic import write_atomic
    write_atomic(args.out, json.dumps({
        "benchmark": "PatternNet train step (batch 128) under XLA:CPU settings (issue 11)",
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "jax": jax.__version__, "load_avg_1m_at_end": os.getloadavg()[0]},
        "rounds": args.rounds, "per_round": args.per_round, "rows": rows,
        "numerics_test": checks}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
