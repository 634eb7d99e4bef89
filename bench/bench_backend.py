"""Train-step benchmark (issue 11): PatternNet against hand-written Flax linen and
PyTorch eager, each framework in its own fresh process, rounds interleaved.

    .venv/bin/pip install -e '.[bench]'      # flax, torch==2.13.0+cpu (bench-only)
    .venv/bin/python bench/bench_backend.py [--rounds 5] [--per-round 2] [--nets ...]

Nets, batch 128, SGD lr 0.01 momentum 0.9, softmax cross-entropy, training mode:
* ``card``: ``INPUT(32x32x3) -> [[CONV -> RELU]*2 -> POOL?]*3 -> [FC -> RELU]*1 -> FC(10)``;
* ``resnet18``: CIFAR ResNet-18, bench/nets/cifar_resnet18.pn (3x3 stem, no max pool);
* ``mobilenet``: MobileNetV2 for CIFAR, bench/nets/mobilenet_v2_cifar.pn (depthwise).

Participants, one child process each (``--child``), all alive during a net's rounds:
* ``PatternNet``: ``model.train_step`` as shipped (PatternNet configures XLA:CPU itself,
  convolutions on oneDNN); ``PatternNet (XLA conv)``: the same with
  ``PATTERNNET_CPU_CONV=xla``, XLA's convolutions (the A/B of docs/backend.md §5b);
* ``Flax (JAX default)``: hand-written linen, JAX's default configuration, as its users
  run it; ``Flax (PatternNet flags)``: the same with PatternNet's XLA_FLAGS;
* ``PyTorch eager``: ``torch.set_num_threads(cores)``;
* ``dot``: a 2048x2048 float32 matmul in JAX, timed every round: the machine's dot
  ceiling under the same load.
The same inputs everywhere (NHWC for JAX, NCHW for torch), parameter counts asserted
equal to the checker's.  Each child reports the first call (trace + compile + one step)
and then, per round, ``--per-round`` steps, each blocked on.  A 0.5 s pause precedes each
turn, so one participant's spinning worker threads do not slow the next.  Medians and
min-max over all timed steps; achieved GFLOP/s = 3 x the checker's forward FLOPs
(2 x MACs x batch) / step time (a backward pass costs about twice the forward).  Writes
bench/results/backend.json atomically and prints a Markdown table.
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

LR, MOMENTUM, BATCH = 0.01, 0.9, 128
CARD = "INPUT(32x32x3) -> [[CONV -> RELU]*2 -> POOL?]*3 -> [FC -> RELU]*1 -> FC(10)"
NETS = {
    "card": dict(label="card net 32x32x3", src=CARD),
    "resnet18": dict(label="CIFAR ResNet-18", path="bench/nets/cifar_resnet18.pn"),
    "mobilenet": dict(label="MobileNetV2 (CIFAR)", path="bench/nets/mobilenet_v2_cifar.pn"),
}
# A pause before each participant's turn: the previous one's worker threads (OpenMP's,
# Eigen's) spin for a while after its step and would slow whoever runs next.
SETTLE_S = 0.5
PARTICIPANTS = ("PatternNet", "PatternNet (XLA conv)", "Flax (JAX default)",
                "Flax (PatternNet flags)", "PyTorch eager", "dot")


def net_source(name: str) -> str:
    cfg = NETS[name]
    return cfg["src"] if "src" in cfg else (ROOT / cfg["path"]).read_text()


def inputs(seed=0):
    import numpy as np
    rs = np.random.RandomState(seed)
    x = rs.standard_normal((BATCH, 32, 32, 3)).astype(np.float32)
    return x, rs.randint(0, 10, size=(BATCH,)).astype(np.int32)


# --- the children: each builds one step function and serves "run K" -------------------

def patternnet_step(name):
    import jax
    import numpy as np
    import optax

    import patternnet
    model = patternnet.compile(net_source(name))
    params, state = model.init(jax.random.key(0))
    opt = optax.sgd(LR, momentum=MOMENTUM)
    step = model.train_step(opt)
    x, y = (jax.numpy.asarray(a) for a in inputs())
    carry = [params, state, opt.init(params)]
    rng = jax.random.key(1)

    def run():
        p, s, o, loss = step(*carry, x, y, rng)
        jax.block_until_ready((p, loss))
        carry[:] = [p, s, o]
        return loss
    n = sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(params))
    return run, n


def flax_step(name):
    import flax_nets
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    module = flax_nets.build(name)
    x, y = (jnp.asarray(a) for a in inputs())
    variables = module.init(jax.random.key(0), x[:2], train=False)
    params, stats = variables["params"], variables.get("batch_stats", {})
    opt = optax.sgd(LR, momentum=MOMENTUM)

    def loss_fn(params, stats, x, y):
        if stats:
            logits, upd = module.apply({"params": params, "batch_stats": stats}, x,
                                       train=True, mutable=["batch_stats"])
            stats = upd["batch_stats"]
        else:
            logits = module.apply({"params": params}, x, train=True)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), stats

    @jax.jit
    def step(params, stats, opt_state, x, y):
        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, stats, x, y)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), stats, opt_state, loss
    carry = [params, stats, opt.init(params)]

    def run():
        p, s, o, loss = step(*carry, x, y)
        jax.block_until_ready((p, loss))
        carry[:] = [p, s, o]
    n = sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(params))
    return run, n


def torch_step(name):
    import numpy as np
    import torch
    import torch.nn.functional as F
    import torch_nets
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    dev = "cuda" if os.environ.get("JAX_PLATFORMS") == "cuda" else "cpu"
    model = torch_nets.build(name).to(dev)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    x, y = inputs()
    tx = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).to(dev)
    ty = torch.from_numpy(y.astype(np.int64)).to(dev)

    def run():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(tx), ty)
        loss.backward()
        opt.step()
        loss.item()  # waits for the device
    return run, sum(p.numel() for p in model.parameters())


def dot_step(name):
    import jax
    import jax.numpy as jnp
    a = jax.random.normal(jax.random.key(0), (2048, 2048), jnp.float32)
    f = jax.jit(lambda a: a @ a)

    def run():
        jax.block_until_ready(f(a))
    return run, 0


CHILDREN = {"PatternNet": patternnet_step, "PatternNet (XLA conv)": patternnet_step,
            "Flax (JAX default)": flax_step,
            "Flax (PatternNet flags)": flax_step, "PyTorch eager": torch_step,
            "dot": dot_step}


def child(who: str, name: str, report_loss: bool = False) -> int:
    sys.path.insert(0, str(ROOT / "bench"))
    import jax
    t = time.perf_counter()
    run, n = CHILDREN[who](name)
    run()
    first = time.perf_counter() - t
    run()  # one warm-up step
    print(json.dumps({"ready": True, "params": n, "first_s": first,
                      "xla_flags": os.environ.get("XLA_FLAGS", ""),
                      "jax": jax.__version__}), flush=True)
    for line in sys.stdin:
        k = int(line.split()[1]) if line.startswith("run") else 0
        if not k:
            break
        times = []
        for _ in range(k):
            t = time.perf_counter()
            loss = run()
            times.append(time.perf_counter() - t)
        out = {"times": times}
        if report_loss:  # after the clock: the step's loss, for agreement across settings
            out["loss"] = float(loss)
        print(json.dumps(out), flush=True)
    return 0


# --- the parent: one process per participant, rounds interleaved ---------------------

def child_env(who: str) -> dict:
    from patternnet import xla_cpu
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", xla_cpu.OPT_OUT)}
    env.pop("PATTERNNET_CPU_CONV", None)
    if who == "Flax (PatternNet flags)" or who == "dot":
        env["XLA_FLAGS"] = " ".join(xla_cpu.FLAGS)
    if who == "PatternNet (XLA conv)":   # the same, without oneDNN's convolution
        env["PATTERNNET_CPU_CONV"] = "xla"
    env["JAX_PLATFORMS"] = DEVICE[0]
    return env


DEVICE = ["cpu"]  # --device: "cuda" runs JAX and PyTorch on the GPU (bench/gpu_check.sh)


def start_children(specs: dict, name: str) -> tuple[dict, dict]:
    """One child per ``{label: (participant, env, extra args)}``, started one at a time
    so that compiles do not overlap; returns the processes and their "ready" reports."""
    procs, info = {}, {}
    for label, (who, env, extra) in specs.items():
        p = subprocess.Popen([sys.executable, __file__, "--child", who, "--net", name, *extra],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env=env, cwd=ROOT)
        line = p.stdout.readline()
        if not line:
            raise SystemExit(f"{label} on {name}: the child died (see its stderr above)")
        procs[label], info[label] = p, json.loads(line)
    return procs, info


def interleave(procs: dict, rounds: int, per_round: int, settle_s: float) -> tuple[dict, dict]:
    """``rounds`` rounds of ``per_round`` steps per child, the order alternating, a
    ``settle_s`` pause before each turn; then every child is told to quit.  Returns each
    child's step times and its last reply."""
    times, last = {label: [] for label in procs}, {}
    for r in range(rounds):
        for label in (list(procs) if r % 2 == 0 else list(reversed(procs))):
            time.sleep(settle_s)
            procs[label].stdin.write(f"run {per_round}\n")
            procs[label].stdin.flush()
            last[label] = json.loads(procs[label].stdout.readline())
            times[label] += last[label]["times"]
    for p in procs.values():
        p.stdin.write("quit\n")
        p.stdin.flush()
        p.wait(timeout=60)
    return times, last


def bench_net(name: str, rounds: int, per_round: int, who_all) -> dict:
    import patternnet
    checked = patternnet.check(net_source(name))
    flops = 3 * 2 * checked.totals.macs * BATCH
    procs, info = start_children({who: (who, child_env(who), ()) for who in who_all}, name)
    counts = {w: i["params"] for w, i in info.items() if w != "dot"}
    assert set(counts.values()) == {checked.params}, (counts, checked.params)
    times, _ = interleave(procs, rounds, per_round, SETTLE_S)
    dot_gflops = [2 * 2048 ** 3 / t / 1e9 for t in times.get("dot", [])]
    rows = []
    for who, ts in times.items():
        if who == "dot":
            continue
        med = statistics.median(ts)
        rows.append({"net": NETS[name]["label"], "framework": who, "params": counts[who],
                     "first_step_s": info[who]["first_s"], "xla_flags": info[who]["xla_flags"],
                     "median_ms": med * 1e3, "min_ms": min(ts) * 1e3, "max_ms": max(ts) * 1e3,
                     "steps_ms": [t * 1e3 for t in ts], "gflops": flops / med / 1e9})
    by = {r["framework"]: r["median_ms"] for r in rows}
    for r in rows:
        r["x_pytorch"] = r["median_ms"] / by["PyTorch eager"] if "PyTorch eager" in by else None
        r["x_flax_default"] = (r["median_ms"] / by["Flax (JAX default)"]
                               if "Flax (JAX default)" in by else None)
    return {"rows": rows, "macs": checked.totals.macs, "step_gflop": flops / 1e9,
            "dot_gflops_median": statistics.median(dot_gflops) if dot_gflops else None,
            "dot_gflops_max": max(dot_gflops) if dot_gflops else None}


def table(results: dict) -> str:
    out = ["| net | framework | median ms (min-max) | first call s | x PyTorch | "
           "x Flax default | GFLOP/s | % of dot |",
           "|---|---|--:|--:|--:|--:|--:|--:|"]
    for res in results.values():
        dot = res["dot_gflops_median"]
        for r in res["rows"]:
            pct = f"{100 * r['gflops'] / dot:.0f}" if dot else ""
            out.append(f"| {r['net']} | {r['framework']} | {r['median_ms']:.0f} "
                       f"({r['min_ms']:.0f}-{r['max_ms']:.0f}) | {r['first_step_s']:.1f} | "
                       f"{r['x_pytorch']:.2f} | {r['x_flax_default']:.2f} | "
                       f"{r['gflops']:.0f} | {pct} |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--per-round", type=int, default=2)
    ap.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    ap.add_argument("--only", nargs="+", default=list(PARTICIPANTS), choices=PARTICIPANTS)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--out", default=None, help="default: bench/results/backend[_cuda].json")
    ap.add_argument("--child", choices=PARTICIPANTS, help=argparse.SUPPRESS)
    ap.add_argument("--net", choices=list(NETS), help=argparse.SUPPRESS)
    ap.add_argument("--report-loss", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args.child, args.net, args.report_loss)
    DEVICE[0] = args.device
    out = args.out or str(ROOT / "bench" / "results" /
                          ("backend.json" if args.device == "cpu" else "backend_cuda.json"))
    results = {name: bench_net(name, args.rounds, args.per_round, args.only)
               for name in args.nets}
    print(table(results))
    import jax
    import torch

    from patternnet.atomic import write_atomic
    result = {
        "benchmark": "train step, batch 128: PatternNet vs Flax linen vs PyTorch eager "
                     "(issue 11); each participant in its own process, rounds interleaved",
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "jax": jax.__version__, "torch": torch.__version__,
                    "device": args.device,
                    "load_avg_1m_at_end": os.getloadavg()[0]},
        "optimizer": f"SGD lr={LR} momentum={MOMENTUM}", "batch": BATCH,
        "rounds": args.rounds, "per_round": args.per_round,
        "nets": results,
    }
    write_atomic(out, json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
