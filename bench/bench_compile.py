"""Compile-time benchmark of repeats: ``lax.scan`` over uniform copies vs unrolled.

    .venv/bin/python bench/bench_compile.py [--ks 4 16 64] [--runs 3] [--modes stacked scan unrolled]

The network (issue 5): ``INPUT(32x32x16) -> [CONV(16) -> BN -> RELU]*k -> GAP -> FC(10)``.
For each k and mode, a fresh ``Model`` after ``jax.clear_caches()``; the time of the first
call (trace + compile + one run, results blocked on) of the jitted ``forward`` and of
the jitted ``value_and_grad`` (training mode, cross-entropy), batch 8; and, again fresh,
trace + lower + XLA compile alone (``.lower(...).compile()``, no run); the median over
--runs, for three modes: ``stacked`` (``scan=True, layout="stacked"``: the params are
stored stacked), ``scan`` (``scan=True``, per-copy params stacked inside the trace) and
``unrolled``.  ``init`` runs (and compiles) before the clock starts.  Goal: with scan,
compile(64) <= 1.5 x compile(4).  Writes bench/results/compile.json (atomically) and
prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import patternnet  # noqa: E402
from patternnet.atomic import write_atomic  # noqa: E402

NET = "INPUT(32x32x16) -> [CONV(16) -> BN -> RELU]*{k} -> GAP -> FC(10)"
# mode -> compile(...) keywords: "scan" stacks the per-copy params inside the trace,
# "stacked" stores them stacked (layout="stacked"), "unrolled" runs every copy
MODES = {"stacked": dict(scan=True, layout="stacked"), "scan": dict(scan=True),
         "unrolled": dict(scan=False)}


def first_calls(k: int, mode: dict, batch: int) -> tuple[float, float]:
    """(forward, value_and_grad) first-call seconds on a fresh model and empty caches."""
    jax.clear_caches()
    model = patternnet.compile(NET.format(k=k), **mode)
    params, state = model.init(0)
    jax.block_until_ready((params, state))
    x = jax.random.normal(jax.random.key(1), (batch,) + model.input_shape)
    labels = jnp.zeros((batch,), jnp.int32)
    jax.block_until_ready(x)
    t = time.perf_counter()
    jax.block_until_ready(model.forward(params, state, x))
    fwd = time.perf_counter() - t
    t = time.perf_counter()
    jax.block_until_ready(model.value_and_grad(params, state, x, labels))
    vg = time.perf_counter() - t
    return fwd, vg


def compiles(k: int, mode: dict, batch: int) -> tuple[float, float]:
    """(forward, value_and_grad) seconds of trace + lower + XLA compile alone (no run)."""
    jax.clear_caches()
    model = patternnet.compile(NET.format(k=k), **mode)
    params, state = model.init(0)
    jax.block_until_ready((params, state))
    x = jnp.zeros((batch,) + model.input_shape)
    labels = jnp.zeros((batch,), jnp.int32)
    t = time.perf_counter()
    model._forward.lower(params, state, x).compile()
    fwd = time.perf_counter() - t
    t = time.perf_counter()
    model._vg("cross_entropy", True).lower(params, state, x, labels, None).compile()
    vg = time.perf_counter() - t
    return fwd, vg


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", type=int, nargs="+", default=[4, 16, 64])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "compile.json"))
    args = ap.parse_args(argv)

    rows = []
    for k in args.ks:
        for mode in args.modes:
            runs = [first_calls(k, MODES[mode], args.batch) for _ in range(args.runs)]
            comp = [compiles(k, MODES[mode], args.batch) for _ in range(args.runs)]
            fwd = statistics.median(r[0] for r in runs)
            vg = statistics.median(r[1] for r in runs)
            cf = statistics.median(r[0] for r in comp)
            cvg = statistics.median(r[1] for r in comp)
            rows.append({"k": k, "mode": mode, "forward_s": round(fwd, 4),
                         "value_and_grad_s": round(vg, 4),
                         "compile_forward_s": round(cf, 4),
                         "compile_value_and_grad_s": round(cvg, 4),
                         "forward_runs_s": [round(r[0], 4) for r in runs],
                         "value_and_grad_runs_s": [round(r[1], 4) for r in runs]})
            print(f"k={k:3d} {mode:8s} first call: forward {fwd:7.3f} s  value_and_grad "
                  f"{vg:7.3f} s; compile only: {cf:7.3f} s  {cvg:7.3f} s",
                  file=sys.stderr, flush=True)

    def get(k, mode, what):
        for r in rows:
            if r["k"] == k and r["mode"] == mode:
                return r[what]
        return None

    goals = {}
    lo, hi = min(args.ks), max(args.ks)
    for mode in args.modes:
        for what in ("forward_s", "value_and_grad_s", "compile_forward_s",
                     "compile_value_and_grad_s"):
            a, b = get(lo, mode, what), get(hi, mode, what)
            goals[f"{mode}/{what}"] = {"ratio": round(b / a, 3), "holds": b <= 1.5 * a}

    print(f"\n{NET.format(k='k')}, batch {args.batch}, median of {args.runs} first calls "
          f"(trace + compile + run), {jax.default_backend()} ({jax.devices()[0].device_kind})\n")
    print("| k | mode | forward, first call (s) | value_and_grad, first call (s) "
          "| forward, compile (s) | value_and_grad, compile (s) |")
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['k']} | {r['mode']} | {r['forward_s']:.3f} | {r['value_and_grad_s']:.3f} "
              f"| {r['compile_forward_s']:.3f} | {r['compile_value_and_grad_s']:.3f} |")
    print()
    for name, g in goals.items():
        print(f"{name}: compile({hi}) / compile({lo}) = {g['ratio']:.2f} "
              f"({'meets' if g['holds'] else 'misses'} the 1.5x goal)")

    result = {"net": NET, "batch": args.batch, "runs": args.runs, "rows": rows,
              "goal": f"compile({hi}) <= 1.5 x compile({lo})", "ratios": goals,
              "backend": jax.default_backend(), "device": jax.devices()[0].device_kind,
              "jax": jax.__version__, "python": platform.python_version(),
              "machine": platform.machine(), "processor": platform.processor()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out, json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
