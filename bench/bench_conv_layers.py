"""Per-layer convolution passes at batch 128: XLA:CPU's convolution, oneDNN's (PatternNet's
FFI primitive) and PyTorch's (channels-last, its oneDNN path), for the card net's six
convolutions and MobileNetV2-for-CIFAR's depthwise ones.

    .venv/bin/python bench/bench_conv_layers.py [--runs 7]

Forward, input gradient (dx) and weight gradient (dw), each its own jitted program (JAX,
bench_conv_small's) or ``aten.convolution_backward`` call (PyTorch); median of --runs
calls after two warm-up calls, each blocked on.  XLA's and oneDNN's run interleaved in this process; PyTorch runs
in a child process afterwards (one framework per process).  Writes
bench/results/conv_layers.json atomically and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BATCH = 128

# (label, input size, cin, cout, kernel, stride, groups)
LAYERS = [("card conv1", 32, 3, 32, 3, 1, 1), ("card conv2", 32, 32, 32, 3, 1, 1),
          ("card conv3", 16, 32, 64, 3, 1, 1), ("card conv4", 16, 64, 64, 3, 1, 1),
          ("card conv5", 8, 64, 128, 3, 1, 1), ("card conv6", 8, 128, 128, 3, 1, 1),
          ("mbv2 dw 32x32x96", 32, 96, 96, 3, 1, 96),
          ("mbv2 dw 32x32x144 /2", 32, 144, 144, 3, 2, 144),
          ("mbv2 dw 16x16x192", 16, 192, 192, 3, 1, 192),
          ("mbv2 dw 8x8x576", 8, 576, 576, 3, 1, 576),
          ("mbv2 dw 4x4x960", 4, 960, 960, 3, 1, 960)]
PASSES = ("fwd", "dx", "dw")


def _median_ms(fn, runs: int) -> float:
    fn()
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def jax_programs(layer, conv):
    """{pass: a call that runs it once and blocks}: bench_conv_small's three programs."""
    import jax
    from bench_conv_small import programs
    _, size, cin, cout, k, s, g = layer
    x = jax.random.normal(jax.random.key(0), (BATCH, size, size, cin))
    w = jax.random.normal(jax.random.key(1), (k, k, cin // g, cout)) * 0.1
    pad = ((k // 2, k // 2), (k // 2, k // 2))
    progs = programs(lambda x, w: conv(x, w, (s, s), pad, g), x, w)
    return {p: (lambda fn=progs[name][0], a=progs[name][1]: jax.block_until_ready(fn(*a)))
            for p, name in (("fwd", "forward"), ("dx", "dx"), ("dw", "dw"))}


def measure_jax(runs: int) -> list[dict]:
    from patternnet.backend import onednn

    def xla(x, w, stride, pad, groups):
        return onednn.xla_conv(x, w, stride=stride, padding=pad, dilation=(1, 1),
                               groups=groups)

    def dnn(x, w, stride, pad, groups):
        return onednn.conv(x, w, stride, pad, (1, 1), groups)
    if not onednn.status()["loaded"]:
        raise SystemExit(f"oneDNN convolution not loaded: {onednn.status()['why']}")
    rows = []
    for layer in LAYERS:
        impls = {"xla": jax_programs(layer, xla), "onednn": jax_programs(layer, dnn)}
        row = {"layer": layer[0]}
        for p in PASSES:
            for name in ("xla", "onednn") if len(rows) % 2 == 0 else ("onednn", "xla"):
                row[f"{name}_{p}_ms"] = _median_ms(impls[name][p], runs)
        rows.append(row)
        print(row, file=sys.stderr, flush=True)
    return rows


def measure_torch(runs: int) -> list[dict]:
    import torch
    torch.set_num_threads(os.cpu_count())
    rows = []
    for _, size, cin, cout, k, s, g in LAYERS:
        cl = torch.channels_last
        x = torch.randn(BATCH, cin, size, size).to(memory_format=cl)
        w = (torch.randn(cout, cin // g, k, k) * 0.1).to(memory_format=cl)
        a = ([s, s], [k // 2, k // 2], [1, 1], False, [0, 0], g)
        y = torch.nn.functional.conv2d(x, w, None, s, k // 2, 1, g)
        gy = torch.ones_like(y)
        back = torch.ops.aten.convolution_backward
        with torch.no_grad():
            row = {"fwd": _median_ms(lambda: torch.nn.functional.conv2d(x, w, None, s, k // 2,
                                                                        1, g), runs),
                   "dx": _median_ms(lambda: back(gy, x, w, None, *a, [True, False, False]),
                                    runs),
                   "dw": _median_ms(lambda: back(gy, x, w, None, *a, [False, True, False]),
                                    runs)}
        rows.append({f"torch_{p}_ms": v for p, v in row.items()})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--torch-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "conv_layers.json"))
    args = ap.parse_args(argv)
    if args.torch_child:
        print(json.dumps(measure_torch(args.runs)))
        return 0
    import jax

    from patternnet.atomic import write_atomic
    from patternnet.backend import onednn
    rows = measure_jax(args.runs)
    done = subprocess.run([sys.executable, __file__, "--torch-child", "--runs", str(args.runs)],
                          capture_output=True, text=True, check=True)
    for row, t in zip(rows, json.loads(done.stdout)):
        row.update(t)
    print(f"\nbatch {BATCH}, median of {args.runs}, ms\n")
    print("| layer | XLA fwd / dx / dw | oneDNN fwd / dx / dw | PyTorch fwd / dx / dw | "
          "XLA sum | oneDNN sum | PyTorch sum |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    for r in rows:
        cells = [" / ".join(f"{r[f'{n}_{p}_ms']:.1f}" for p in PASSES)
                 for n in ("xla", "onednn", "torch")]
        sums = [sum(r[f"{n}_{p}_ms"] for p in PASSES) for n in ("xla", "onednn", "torch")]
        print(f"| {r['layer']} | {' | '.join(cells)} | "
              + " | ".join(f"{v:.1f}" for v in sums) + " |")
    import torch
    doc = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "python": platform.python_version(),
           "jax": jax.__version__, "torch": torch.__version__,
           "onednn": onednn.status()["onednn"], "cpu_count": os.cpu_count(), "batch": BATCH,
           "runs": args.runs, "rows": rows}
    write_atomic(args.out, json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
