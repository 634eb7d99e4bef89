"""Convolution micro-benchmark on XLA:CPU against PyTorch (issue 5).

    .venv/bin/python bench/bench_conv_cpu.py [--batch 32] [--reps 15] [--no-flags]

One representative layer: 3x3 convolution, 64 -> 64 channels, 32x32 spatial, stride 1,
SAME padding, float32, batch --batch.  FLOP = 2 * MACs = 2*N*H*W*Cin*Cout*9 for each of
forward, input gradient (dx) and weight gradient (dw).  Measured (median of --reps
calls, after 3 warm-up calls, each blocked on):

All in-process candidates are timed in interleaved rounds (one call of each per round),
so load on a shared machine hits all alike.

(a) ``jax.lax.conv_general_dilated`` NHWC/HWIO: forward, dx and dw (each its own jitted
    function from ``jax.vjp``), and fwd+bwd (forward + both gradients, one jit);
(b) the same with NCHW/OIHW dimension numbers;
(c) im2col: patches by explicit pad + 9 shifted slices (``slices``) or by
    ``jax.lax.conv_general_dilated_patches`` (``patches``), then one dot; forward and
    weight gradient (patches^T . dy); a patch-free sum over the 9 taps of
    shifted-input . W[tap] (``9-shifted-dots``) for forward and dw; and a ``jax.custom_vjp`` conv whose dw is the im2col
    dot and whose dx is XLA's (fwd+bwd);
(d) XLA flags, each in a subprocess with XLA_FLAGS set, re-timing (a); a flag this
    jaxlib does not accept aborts the child and is reported "not accepted"; each flag
    child is preceded by a no-flag baseline child and reported as time / baseline;
(e) in child processes alternating with no-flag JAX children (--pairs times; one process
    holding both torch's threads and XLA's pool slowed torch 2-4x on this 2-core box):
    ``torch.nn.functional.conv2d`` (NCHW) forward, dx and dw (``aten.convolution_backward``
    with one output mask each) and fwd+bwd, ``torch.set_num_threads(2)``;
(f) the ceiling: a float32 matmul of the im2col shape (N*H*W x 9*Cin) . (9*Cin x Cout)
    in JAX and torch, and the dw-shaped P^T . dy dot with the patches already built.

Prints a Markdown table and writes bench/results/conv_cpu.json (atomically) with
machine info.
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

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

H = W = 32
CIN = COUT = 64
K = 3

FLAGS = [
    "--xla_cpu_use_thunk_runtime=false",
    "--xla_cpu_enable_fast_math=true",
    "--xla_cpu_multi_thread_eigen=true",
    "--xla_cpu_multi_thread_eigen=false",
    "--xla_cpu_use_xnnpack=true",
    "--xla_cpu_use_onednn=true",
    "--xla_cpu_experimental_onednn_custom_call=true",
    "--xla_cpu_use_fusion_emitters=false",
    "--xla_cpu_strict_dot_conv_math=false",
]


def timeit(fn, args, reps, warmup=3):
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def time_rounds(cands, reps, warmup=3):
    """cands: {name: zero-arg callable that blocks}.  One call of each per round, so
    machine load (this box is shared) hits all candidates alike; median per name."""
    for fn in cands.values():
        for _ in range(warmup):
            fn()
    ts = {k: [] for k in cands}
    for _ in range(reps):
        for k, fn in cands.items():
            t0 = time.perf_counter()
            fn()
            ts[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in ts.items()}


def bind(fn, *args):
    return lambda: jax.block_until_ready(fn(*args))


def conv_fns(layout):
    if layout == "NHWC":
        dn = ("NHWC", "HWIO", "NHWC")
    else:
        dn = ("NCHW", "OIHW", "NCHW")

    def fwd(x, w):
        return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=dn)

    def dx(x, w, g):
        return jax.vjp(lambda x_: fwd(x_, w), x)[1](g)[0]

    def dw(x, w, g):
        return jax.vjp(lambda w_: fwd(x, w_), w)[1](g)[0]

    def both(x, w, g):
        y, vjp = jax.vjp(fwd, x, w)
        return y, vjp(g)

    return {"fwd": jax.jit(fwd), "dx": jax.jit(dx), "dw": jax.jit(dw), "fwd+bwd": jax.jit(both)}


def lax_conv_nhwc(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def patches_slices(x):
    """(N,H,W,C) -> (N*H*W, 9*C), columns ordered (kh, kw, c) like HWIO.reshape."""
    n, h, w, c = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    cols = [xp[:, i:i + h, j:j + w, :] for i in range(K) for j in range(K)]
    return jnp.stack(cols, axis=3).reshape(n * h * w, K * K * c)


def patches_xla(x):
    """conv_general_dilated_patches: columns ordered (c, kh, kw)."""
    n, h, w, c = x.shape
    p = jax.lax.conv_general_dilated_patches(
        x, (K, K), (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return p.reshape(n * h * w, c * K * K)


def im2col_fns():
    def fwd_s(x, w):
        n, h, ww, _ = x.shape
        return (patches_slices(x) @ w.reshape(K * K * CIN, COUT)).reshape(n, h, ww, COUT)

    def dw_s(x, g):
        return (patches_slices(x).T @ g.reshape(-1, COUT)).reshape(K, K, CIN, COUT)

    def fwd_p(x, w):
        n, h, ww, _ = x.shape
        wm = jnp.transpose(w, (2, 0, 1, 3)).reshape(CIN * K * K, COUT)
        return (patches_xla(x) @ wm).reshape(n, h, ww, COUT)

    def dw_p(x, g):
        d = (patches_xla(x).T @ g.reshape(-1, COUT)).reshape(CIN, K, K, COUT)
        return jnp.transpose(d, (1, 2, 0, 3))

    def fwd_9(x, w):
        # patch-free: sum over the 9 taps of shifted-input . W[tap]
        n, h, ww, _ = x.shape
        xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        return sum(jnp.einsum("nhwc,co->nhwo", xp[:, i:i + h, j:j + ww, :], w[i, j])
                   for i in range(K) for j in range(K))

    def dw_9(x, g):
        n, h, ww, _ = x.shape
        xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        return jnp.stack([jnp.einsum("nhwc,nhwo->co", xp[:, i:i + h, j:j + ww, :], g)
                          for i in range(K) for j in range(K)]).reshape(K, K, CIN, COUT)

    @jax.custom_vjp
    def conv_cv(x, w):
        return lax_conv_nhwc(x, w)

    def cv_fwd(x, w):
        return lax_conv_nhwc(x, w), (x, w)

    def cv_bwd(res, g):
        x, w = res
        gx = jax.vjp(lambda x_: lax_conv_nhwc(x_, w), x)[1](g)[0]
        return gx, dw_s(x, g)

    conv_cv.defvjp(cv_fwd, cv_bwd)

    def both_cv(x, w, g):
        y, vjp = jax.vjp(conv_cv, x, w)
        return y, vjp(g)

    return {"fwd slices": jax.jit(fwd_s), "dw slices": jax.jit(dw_s),
            "fwd patches": jax.jit(fwd_p), "dw patches": jax.jit(dw_p),
            "fwd 9-shifted-dots": jax.jit(fwd_9), "dw 9-shifted-dots": jax.jit(dw_9),
            "fwd+bwd custom_vjp(dw slices)": jax.jit(both_cv)}


def inputs(n, layout="NHWC"):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, H, W, CIN), dtype=np.float32)
    w = rng.standard_normal((K, K, CIN, COUT), dtype=np.float32) * 0.05
    g = rng.standard_normal((n, H, W, COUT), dtype=np.float32)
    if layout == "NCHW":
        return (x.transpose(0, 3, 1, 2).copy(), w.transpose(3, 2, 0, 1).copy(),
                g.transpose(0, 3, 1, 2).copy())
    return x, w, g


def jax_cands(n, layout, prefix=""):
    x, w, g = (jnp.asarray(a) for a in inputs(n, layout))
    f = conv_fns(layout)
    return {prefix + "fwd": bind(f["fwd"], x, w), prefix + "dx": bind(f["dx"], x, w, g),
            prefix + "dw": bind(f["dw"], x, w, g), prefix + "fwd+bwd": bind(f["fwd+bwd"], x, w, g)}


def run_jax_layout(n, layout, reps):
    return time_rounds(jax_cands(n, layout), reps)


def im2col_cands(n):
    x, w, g = (jnp.asarray(a) for a in inputs(n))
    f = im2col_fns()
    ref = conv_fns("NHWC")
    y_ref, dw_ref = ref["fwd"](x, w), ref["dw"](x, w, g)
    cv_y, (cv_dx, cv_dw) = f["fwd+bwd custom_vjp(dw slices)"](x, w, g)
    errs = {
        "fwd slices": float(jnp.max(jnp.abs(f["fwd slices"](x, w) - y_ref))),
        "fwd patches": float(jnp.max(jnp.abs(f["fwd patches"](x, w) - y_ref))),
        "dw slices": float(jnp.max(jnp.abs(f["dw slices"](x, g) - dw_ref))
                           / jnp.max(jnp.abs(dw_ref))),
        "dw patches": float(jnp.max(jnp.abs(f["dw patches"](x, g) - dw_ref))
                            / jnp.max(jnp.abs(dw_ref))),
        "fwd 9-shifted-dots": float(jnp.max(jnp.abs(f["fwd 9-shifted-dots"](x, w) - y_ref))),
        "dw 9-shifted-dots": float(jnp.max(jnp.abs(f["dw 9-shifted-dots"](x, g) - dw_ref))
                                   / jnp.max(jnp.abs(dw_ref))),
        "custom_vjp dw": float(jnp.max(jnp.abs(cv_dw - dw_ref)) / jnp.max(jnp.abs(dw_ref))),
    }
    c = {
        "im2col|slices|fwd": bind(f["fwd slices"], x, w),
        "im2col|patches|fwd": bind(f["fwd patches"], x, w),
        "im2col|slices|dw": bind(f["dw slices"], x, g),
        "im2col|patches|dw": bind(f["dw patches"], x, g),
        "im2col|custom_vjp(dw slices)|fwd+bwd": bind(f["fwd+bwd custom_vjp(dw slices)"], x, w, g),
        "im2col|9-shifted-dots (no patches)|fwd": bind(f["fwd 9-shifted-dots"], x, w),
        "im2col|9-shifted-dots (no patches)|dw": bind(f["dw 9-shifted-dots"], x, g),
        "im2col|slices, patch build only|patches": bind(jax.jit(patches_slices), x),
    }
    return c, errs


def dot_cands(n):
    rng = np.random.default_rng(1)
    a = jnp.asarray(rng.standard_normal((n * H * W, K * K * CIN), dtype=np.float32))
    b = jnp.asarray(rng.standard_normal((K * K * CIN, COUT), dtype=np.float32))
    g = jnp.asarray(rng.standard_normal((n * H * W, COUT), dtype=np.float32))
    return {"dot|jax P.W|dot": bind(jax.jit(jnp.matmul), a, b),
            "dot|jax P^T.dy (dw-shaped, patches given)|dot": bind(jax.jit(lambda p, d: p.T @ d), a, g)}


def torch_cands(n):
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(2)
    x, w, g = (torch.from_numpy(a) for a in inputs(n, "NCHW"))
    cb = torch.ops.aten.convolution_backward

    def ng(fn):
        def run():
            with torch.no_grad():
                fn()
        return run

    def bwd(mask):
        return ng(lambda: cb(g, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, mask))

    xr, wr = x.clone().requires_grad_(True), w.clone().requires_grad_(True)

    def fwdbwd():
        y = F.conv2d(xr, wr, padding=1)
        y.backward(g)
        xr.grad = wr.grad = None

    rng = np.random.default_rng(1)
    a = torch.from_numpy(rng.standard_normal((n * H * W, K * K * CIN), dtype=np.float32))
    b = torch.from_numpy(rng.standard_normal((K * K * CIN, COUT), dtype=np.float32))
    gm = torch.from_numpy(rng.standard_normal((n * H * W, COUT), dtype=np.float32))
    return {
        "torch|F.conv2d / aten.convolution_backward|fwd": ng(lambda: F.conv2d(x, w, padding=1)),
        "torch|F.conv2d / aten.convolution_backward|dx": bwd([True, False, False]),
        "torch|F.conv2d / aten.convolution_backward|dw": bwd([False, True, False]),
        "torch|F.conv2d + .backward()|fwd+bwd": fwdbwd,
        "dot|torch P.W|dot": ng(lambda: a @ b),
        "dot|torch P^T.dy|dot": ng(lambda: a.T @ gm),
    }, torch.__version__


def child(what, n, reps):
    """Run (a) NHWC (XLA_FLAGS set by the parent) or torch in this process; print JSON."""
    if what == "torch":
        c, v = torch_cands(n)
        print("RESULT " + json.dumps({"times": time_rounds(c, reps), "version": v}))
    else:
        print("RESULT " + json.dumps({"times": run_jax_layout(n, "NHWC", reps)}))


def run_flag(flag, n, reps):
    return run_child("jax", n, reps, flag)


def run_child(what, n, reps, flag=""):
    env = dict(os.environ, XLA_FLAGS=flag)
    p = subprocess.run([sys.executable, __file__, "--child", what, "--batch", str(n),
                        "--reps", str(reps)],
                       env=env, capture_output=True, text=True, timeout=600)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return {"accepted": True, **json.loads(line[7:])}
    err = (p.stderr.strip().splitlines() or [""])[-1][:300]
    return {"accepted": False, "rc": p.returncode, "error": err}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--no-flags", action="store_true")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--child", choices=["jax", "torch"])
    args = ap.parse_args()
    n, reps = args.batch, args.reps
    if args.child:
        child(args.child, n, reps)
        return
    gflop = 2 * n * H * W * CIN * COUT * K * K / 1e9
    rows = []  # (group, variant, op, seconds)

    def add(group, variant, times):
        for op, s in times.items():
            rows.append((group, variant, op, s))

    cands = {}
    cands.update(jax_cands(n, "NHWC", "lax NHWC/HWIO|in-process|"))
    cands.update(jax_cands(n, "NCHW", "lax NCHW/OIHW|in-process|"))
    imc, errs = im2col_cands(n)
    cands.update(imc)
    cands.update(dot_cands(n))
    load_before = os.getloadavg()
    for key, s in time_rounds(cands, reps).items():
        grp, var, op = key.split("|")
        rows.append((grp, var, op, s))
    # JAX vs torch: each in its own child process (torch's threads and XLA's pool in one
    # process slowed torch 2-4x here), alternated --pairs times; median over children.
    torch_version = None
    pair_runs = {"jax": [], "torch": []}
    for _ in range(args.pairs):
        j = run_flag("", n, reps)
        t = run_child("torch", n, reps)
        if j.get("accepted"):
            pair_runs["jax"].append(j["times"])
        if t.get("accepted"):
            pair_runs["torch"].append(t["times"])
            torch_version = t.get("version")
    for who, runs in pair_runs.items():
        if not runs:
            continue
        for key in runs[0]:
            med = statistics.median(r[key] for r in runs)
            if who == "jax":
                rows.append(("lax NHWC/HWIO, child", f"median of {len(runs)} children", key, med))
            else:
                grp, var, op = key.split("|")
                rows.append((grp + ", child, 2 threads", f"{var}; median of {len(runs)} children",
                             op, med))
    flags = {}
    if not args.no_flags:
        # A/B: a no-flag baseline child before each flag child; ratio = flag / that baseline
        for fl in FLAGS:
            b = run_flag("", n, reps)
            r = run_flag(fl, n, reps)
            flags[fl] = {"flag": r, "baseline_before": b}
            if not r["accepted"]:
                rows.append(("XLA_FLAGS (subprocess)", fl, "not accepted", None))
                continue
            for op, s in r["times"].items():
                rows.append(("XLA_FLAGS (subprocess)", fl, op, s,
                             s / b["times"][op] if b.get("accepted") else None))

    def flop(op):
        return 3 * gflop if op == "fwd+bwd" else gflop

    print(f"\n3x3 conv {CIN}->{COUT}, {H}x{W}, batch {n}, SAME, f32; "
          f"{gflop:.3f} GFLOP per fwd/dx/dw; median of {reps}; jax {jax.__version__}\n")
    print("| group | variant | op | ms | GFLOP/s | time / baseline child |")
    print("|---|---|---|---:|---:|---:|")
    out_rows = []
    for grp, var, op, s, *ratio in rows:
        ratio = ratio[0] if ratio else None
        rs = f"{ratio:.2f}" if ratio is not None else ""
        if s is None:
            print(f"| {grp} | `{var}` | not accepted | | | |")
            out_rows.append({"group": grp, "variant": var, "op": op, "ms": None, "gflops": None})
            continue
        if op == "patches":
            gf = 0.0  # patch building alone: no FLOPs, time only
        else:
            gf = flop(op) / s
        print(f"| {grp} | {var} | {op} | {s*1e3:.2f} | {gf:.0f} | {rs} |")
        out_rows.append({"group": grp, "variant": var, "op": op, "ms": s * 1e3, "gflops": gf,
                         "ratio_to_baseline_child": ratio})
    print("\nim2col max error vs lax (fwd: abs; dw: rel to max|dw|):", errs)
    res = {
        "layer": {"kernel": K, "cin": CIN, "cout": COUT, "h": H, "w": W, "batch": n,
                  "stride": 1, "padding": "SAME", "dtype": "float32",
                  "gflop_per_pass": gflop},
        "reps": reps, "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "pair_runs": pair_runs, "rows": out_rows, "flags": flags, "im2col_errors": errs,
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "jax": jax.__version__, "jaxlib": jax.lib.__version__ if hasattr(jax.lib, "__version__") else None,
                    "torch": torch_version, "jax_devices": [str(d) for d in jax.devices()]},
    }
    from patternnet.atomic import write_atomic
    write_atomic(ROOT / "bench/results/conv_cpu.json", json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
