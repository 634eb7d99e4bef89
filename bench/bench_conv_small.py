"""XLA:CPU's convolution against one matrix product over its patches and against
oneDNN's convolution, per layer shape.

    .venv/bin/python bench/bench_conv_small.py [--runs 7] [--batch 32]

The shapes are ResNet-18's convolutions at a 64x64 input (the backend benchmark's), plus
a few more where the kernel exceeds the output.  For each: ``lax.conv_general_dilated``
(NHWC/HWIO), ``patternnet.backend.layers.conv_patches`` and, where it loaded,
``patternnet.backend.onednn.conv``, forward, input gradient
(dx), weight gradient (dw), and forward + both gradients in one jit; median of --runs
calls after a warm-up, each blocked on, the lowerings interleaved.  Writes
bench/results/conv_small.json (atomically) and prints a Markdown table.  The backend
uses the patches where the kernel exceeds the output (docs/performance.md).
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
from jax import lax  # noqa: E402

from patternnet.atomic import write_atomic  # noqa: E402
from patternnet.backend import onednn  # noqa: E402
from patternnet.backend.layers import conv_patches  # noqa: E402

# (input size, cin, cout, kernel, stride, pad)
SHAPES = [(64, 3, 64, 7, 2, 3), (16, 64, 64, 3, 1, 1), (16, 64, 128, 3, 2, 1),
          (8, 128, 128, 3, 1, 1), (8, 128, 256, 3, 2, 1), (4, 256, 256, 3, 1, 1),
          (4, 256, 512, 3, 2, 1), (2, 512, 512, 3, 1, 1), (16, 64, 128, 1, 2, 0),
          (4, 256, 512, 1, 2, 0), (1, 512, 512, 3, 1, 1), (2, 64, 64, 3, 1, 1),
          (3, 256, 256, 3, 1, 1), (7, 512, 512, 3, 1, 1)]


def programs(conv, x, w):
    def f(x, w):
        return conv(x, w)
    y = f(x, w)
    g = jnp.ones_like(y)
    return {
        "forward": (jax.jit(f), (x, w)),
        "dx": (jax.jit(lambda x, w, g: jax.vjp(lambda x: f(x, w), x)[1](g)[0]), (x, w, g)),
        "dw": (jax.jit(lambda x, w, g: jax.vjp(lambda w: f(x, w), w)[1](g)[0]), (x, w, g)),
        "fwd+bwd": (jax.jit(lambda x, w: jax.vjp(f, x, w)[1](g)), (x, w)),
    }


def measure(shape, batch: int, runs: int) -> dict:
    size, cin, cout, k, s, p = shape
    x = jax.random.normal(jax.random.key(0), (batch, size, size, cin))
    w = jax.random.normal(jax.random.key(1), (k, k, cin, cout)) * 0.05
    pad = ((p, p), (p, p))
    lowerings = {
        "lax": programs(lambda x, w: lax.conv_general_dilated(
            x, w, (s, s), pad, dimension_numbers=("NHWC", "HWIO", "NHWC")), x, w),
        "patches": programs(lambda x, w: conv_patches(x, w, (s, s), pad, (1, 1)), x, w)}
    if onednn.status()["loaded"]:
        lowerings["onednn"] = programs(
            lambda x, w: onednn.conv(x, w, (s, s), pad, (1, 1), 1), x, w)
    out = (size + 2 * p - k) // s + 1
    row = {"input": size, "cin": cin, "cout": cout, "kernel": k, "stride": s, "pad": p,
           "output": out, "kernel_exceeds_output": out < k}
    for what in ("forward", "dx", "dw", "fwd+bwd"):
        times = {name: [] for name in lowerings}
        for progs in lowerings.values():
            fn, args = progs[what]
            jax.block_until_ready(fn(*args))
        for _ in range(runs):
            for name, progs in lowerings.items():
                fn, args = progs[what]
                t = time.perf_counter()
                jax.block_until_ready(fn(*args))
                times[name].append(time.perf_counter() - t)
        for name in lowerings:
            row[f"{name}_{what}_ms"] = round(statistics.median(times[name]) * 1e3, 3)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "conv_small.json"))
    args = ap.parse_args(argv)
    rows = []
    for shape in SHAPES:
        row = measure(shape, args.batch, args.runs)
        rows.append(row)
        print(row, file=sys.stderr, flush=True)
    print(f"\nbatch {args.batch}, median of {args.runs}, {jax.default_backend()}, ms\n")
    dnn = "onednn_fwd+bwd_ms" in rows[0]
    print("| input | cin -> cout | kernel / stride | output | lax fwd | lax dx | lax dw | "
          "lax fwd+bwd | patches fwd+bwd | lax / patches |"
          + (" oneDNN fwd+bwd | oneDNN / patches |" if dnn else ""))
    print("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
          + (" ---: | ---: |" if dnn else ""))
    for r in rows:
        a, b = r["lax_fwd+bwd_ms"], r["patches_fwd+bwd_ms"]
        mark = " **(k > out)**" if r["kernel_exceeds_output"] else ""
        extra = (f" {r['onednn_fwd+bwd_ms']:.2f} | {r['onednn_fwd+bwd_ms'] / b:.2f} |"
                 if dnn else "")
        print(f"| {r['input']}x{r['input']} | {r['cin']} -> {r['cout']} | {r['kernel']}x"
              f"{r['kernel']} /{r['stride']} | {r['output']}x{r['output']}{mark} | "
              f"{r['lax_forward_ms']:.2f} | {r['lax_dx_ms']:.2f} | {r['lax_dw_ms']:.2f} | "
              f"{a:.2f} | {b:.2f} | {a / b:.2f} |{extra}")
    doc = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "python": platform.python_version(),
           "jax": jax.__version__, "backend": jax.default_backend(), "batch": args.batch,
           "runs": args.runs, "rows": rows}
    write_atomic(args.out, json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
