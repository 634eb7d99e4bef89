"""Train-step benchmark: PatternNet's jitted step against hand-written Flax linen and
PyTorch eager (issue 5).

    .venv/bin/pip install -e '.[bench]'      # flax, torch==2.13.0 (bench-only)
    .venv/bin/python bench/bench_backend.py [--steps 15] [--warmup 3] [--nets cnn resnet18]

Nets: ``INPUT(32x32x3) -> [[CONV -> RELU]*2 -> POOL?]*3 -> [FC -> RELU]*1 -> FC`` at
batch 128, and ResNet-18 of examples/resnet.pn at 64x64x3 (1000 classes), batch 32.  The
Flax and PyTorch versions mirror the checker's resolved layers (parameter counts are
asserted equal).  Same optimizer everywhere: SGD lr 0.01, momentum 0.9
(``optax.sgd`` / ``torch.optim.SGD``); the same random inputs (NHWC for JAX, NCHW for
torch) and integer labels; softmax cross-entropy, training mode.

Per framework: compile time = the first call of the jitted step (trace + compile + one
run, blocked on); then --warmup steps; then --steps timed steps, interleaved in rounds
(one step of each framework per round) so machine load hits all alike; each step
blocked until done.  Prints a Markdown table and writes bench/results/backend.json
(atomically) with machine info and a quick HLO comparison (op counts of the lowered
steps and XLA's cost analysis).  A framework that cannot be imported is skipped.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import patternnet  # noqa: E402
from patternnet.atomic import write_atomic  # noqa: E402

try:
    import flax
    import flax.linen as nn
except ImportError:  # pragma: no cover
    flax = nn = None
try:
    import torch
    import torch.nn as tnn
    import torch.nn.functional as F
except ImportError:  # pragma: no cover
    torch = tnn = F = None

LR, MOMENTUM = 0.01, 0.9
CNN_SRC = "INPUT(32x32x3) -> [[CONV -> RELU]*2 -> POOL?]*3 -> [FC -> RELU]*1 -> FC"


def resnet18_src() -> str:
    src = (ROOT / "examples" / "resnet.pn").read_text()
    old = "resnet18 = INPUT(224x224x3)"
    assert old in src
    return src.replace(old, "resnet18 = INPUT(64x64x3)")


NETS = {
    "cnn": dict(label="CNN 32x32x3, batch 128", src=CNN_SRC, net=None, batch=128,
                hw=32, classes=10),
    "resnet18": dict(label="ResNet-18 64x64x3, batch 32", src=None, net="resnet18",
                     batch=32, hw=64, classes=1000),
}


# --- Flax linen ------------------------------------------------------------------------

if nn is not None:
    class FlaxCNN(nn.Module):
        classes: int = 10

        @nn.compact
        def __call__(self, x, train: bool = True):
            for f in (32, 64, 128):
                for _ in range(2):
                    x = nn.relu(nn.Conv(f, (3, 3), padding="SAME")(x))
                x = nn.max_pool(x, (2, 2), (2, 2))
            x = x.reshape((x.shape[0], -1))          # NHWC row-major, as PatternNet's FC
            x = nn.relu(nn.Dense(128)(x))
            return nn.Dense(self.classes)(x)

    def _bn(train):
        return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)

    class FlaxBasic(nn.Module):
        c: int
        s: int = 1

        @nn.compact
        def __call__(self, x, train: bool = True):
            y = nn.Conv(self.c, (3, 3), (self.s, self.s), padding=((1, 1), (1, 1)),
                        use_bias=False)(x)
            y = nn.relu(_bn(train)(y))
            y = nn.Conv(self.c, (3, 3), padding=((1, 1), (1, 1)), use_bias=False)(y)
            y = _bn(train)(y)
            if x.shape != y.shape:
                x = nn.Conv(self.c, (1, 1), (self.s, self.s), padding="VALID",
                            use_bias=False)(x)
                x = _bn(train)(x)
            return nn.relu(y + x)

    class FlaxResNet18(nn.Module):
        classes: int = 1000

        @nn.compact
        def __call__(self, x, train: bool = True):
            x = nn.Conv(64, (7, 7), (2, 2), padding=((3, 3), (3, 3)), use_bias=False)(x)
            x = nn.relu(_bn(train)(x))
            x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
            for c, s in ((64, 1), (128, 2), (256, 2), (512, 2)):
                x = FlaxBasic(c, s)(x, train)
                x = FlaxBasic(c, 1)(x, train)
            x = jnp.mean(x, axis=(1, 2))
            return nn.Dense(self.classes)(x)


def flax_setup(name, cfg, x, labels, opt):
    module = FlaxCNN(cfg["classes"]) if name == "cnn" else FlaxResNet18(cfg["classes"])
    variables = module.init(jax.random.key(0), x[:2], train=False)
    params = variables["params"]
    stats = variables.get("batch_stats", {})
    opt_state = opt.init(params)

    def loss_fn(params, stats, x, labels):
        if stats:
            logits, upd = module.apply({"params": params, "batch_stats": stats}, x,
                                       train=True, mutable=["batch_stats"])
            stats = upd["batch_stats"]
        else:
            logits = module.apply({"params": params}, x, train=True)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        return loss, stats

    def step(params, stats, opt_state, x, labels):
        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, stats, x, labels)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), stats, opt_state, loss

    jstep = jax.jit(step)
    carry = [params, stats, opt_state]

    def run():
        p, s, o, loss = jstep(*carry, x, labels)
        jax.block_until_ready(loss)
        jax.block_until_ready(p)
        carry[:] = [p, s, o]
        return loss

    n = sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(params))
    return run, n, lambda: jstep.lower(params, stats, opt_state, x, labels)


def patternnet_setup(name, cfg, x, labels, opt):
    src = cfg["src"] if name == "cnn" else resnet18_src()
    model = patternnet.compile(src, net=cfg["net"])
    assert model.output_shape == (cfg["classes"],), model.output_shape
    params, state = model.init(jax.random.key(0))
    opt_state = opt.init(params)
    jstep = model.train_step(opt)
    rng = jax.random.key(1)
    carry = [params, state, opt_state]

    def run():
        p, s, o, loss = jstep(*carry, x, labels, rng)
        jax.block_until_ready(loss)
        jax.block_until_ready(p)
        carry[:] = [p, s, o]
        return loss

    n = sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(params))
    assert n == model.checked.params, (n, model.checked.params)
    return run, n, lambda: jstep.lower(params, state, opt_state, x, labels, rng), model


# --- PyTorch ---------------------------------------------------------------------------

if tnn is not None:
    class TorchCNN(tnn.Module):
        def __init__(self, classes=10):
            super().__init__()
            layers, c = [], 3
            for f in (32, 64, 128):
                for _ in range(2):
                    layers += [tnn.Conv2d(c, f, 3, padding=1), tnn.ReLU()]
                    c = f
                layers.append(tnn.MaxPool2d(2, 2))
            layers += [tnn.Flatten(), tnn.Linear(4 * 4 * 128, 128), tnn.ReLU(),
                       tnn.Linear(128, classes)]
            self.net = tnn.Sequential(*layers)

        def forward(self, x):
            return self.net(x)

    class TorchBasic(tnn.Module):
        def __init__(self, cin, c, s=1):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, c, 3, s, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(c)
            self.conv2 = tnn.Conv2d(c, c, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(c)
            self.down = None
            if s != 1 or cin != c:
                self.down = tnn.Sequential(tnn.Conv2d(cin, c, 1, s, bias=False),
                                           tnn.BatchNorm2d(c))

        def forward(self, x):
            y = F.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return F.relu(y + (x if self.down is None else self.down(x)))

    class TorchResNet18(tnn.Module):
        def __init__(self, classes=1000):
            super().__init__()
            self.stem = tnn.Sequential(tnn.Conv2d(3, 64, 7, 2, 3, bias=False),
                                       tnn.BatchNorm2d(64), tnn.ReLU(),
                                       tnn.MaxPool2d(3, 2, 1))
            blocks, cin = [], 64
            for c, s in ((64, 1), (128, 2), (256, 2), (512, 2)):
                blocks += [TorchBasic(cin, c, s), TorchBasic(c, c)]
                cin = c
            self.blocks = tnn.Sequential(*blocks)
            self.fc = tnn.Linear(512, classes)

        def forward(self, x):
            x = self.blocks(self.stem(x))
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def torch_setup(name, cfg, x, labels):
    torch.manual_seed(0)
    model = TorchCNN(cfg["classes"]) if name == "cnn" else TorchResNet18(cfg["classes"])
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    tx = torch.from_numpy(np.ascontiguousarray(np.asarray(x).transpose(0, 3, 1, 2)))
    ty = torch.from_numpy(np.asarray(labels).astype(np.int64))

    def run():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(tx), ty)
        loss.backward()
        opt.step()
        return loss.item()

    n = sum(p.numel() for p in model.parameters())
    return run, n


# --- measurement -----------------------------------------------------------------------

def hlo_ops(lowered) -> dict:
    """Op counts of the StableHLO text, and XLA's cost analysis of the compiled step."""
    text = lowered.as_text()
    ops = collections.Counter(re.findall(r"= (?:\"?)(stablehlo\.[a-z_]+)", text))
    keep = ("convolution", "reduce_window", "select_and_scatter", "reduce", "dot_general",
            "transpose", "broadcast_in_dim", "add", "multiply")
    out = {"total_ops": sum(ops.values())}
    out.update({k: ops.get("stablehlo." + k, 0) for k in keep})
    try:
        ca = lowered.compile().cost_analysis()
        if isinstance(ca, list):
            ca = ca[0]
        out["xla_flops"] = float(ca.get("flops", float("nan")))
        out["xla_bytes_accessed"] = float(ca.get("bytes accessed", float("nan")))
    except Exception as e:  # pragma: no cover
        out["cost_analysis_error"] = repr(e)
    return out


def bench_net(name, steps, warmup):
    cfg = NETS[name]
    rs = np.random.RandomState(0)
    xn = rs.standard_normal((cfg["batch"], cfg["hw"], cfg["hw"], 3)).astype(np.float32)
    yn = rs.randint(0, cfg["classes"], size=(cfg["batch"],)).astype(np.int32)
    x, labels = jnp.asarray(xn), jnp.asarray(yn)
    opt = optax.sgd(LR, momentum=MOMENTUM)

    runs, counts, compile_s, hlo = {}, {}, {}, {}
    run, n, lowered, model = patternnet_setup(name, cfg, x, labels, opt)
    runs["PatternNet"], counts["PatternNet"] = run, n
    lowereds = {"PatternNet": lowered}
    scan_mode = {"scan": model.scan, "scanned": [str(s) for s in model.scanned()]}
    if nn is not None:
        run, n, lowered = flax_setup(name, cfg, x, labels, opt)
        runs["Flax"], counts["Flax"] = run, n
        lowereds["Flax"] = lowered
    if torch is not None:
        run, n = torch_setup(name, cfg, xn, yn)
        runs["PyTorch"], counts["PyTorch"] = run, n
    assert len(set(counts.values())) == 1, counts

    for fw, run in runs.items():
        t = time.perf_counter()
        run()
        compile_s[fw] = time.perf_counter() - t
        for _ in range(warmup):
            run()
    times = {fw: [] for fw in runs}
    for r in range(steps):
        order = list(runs) if r % 2 == 0 else list(reversed(runs))
        for fw in order:
            t = time.perf_counter()
            runs[fw]()
            times[fw].append(time.perf_counter() - t)
    # after the clock: an ahead-of-time compile must not warm the timed first call
    hlo = {fw: hlo_ops(lw()) for fw, lw in lowereds.items()}
    rows = []
    med = {fw: statistics.median(ts) for fw, ts in times.items()}
    for fw in runs:
        rows.append({
            "net": cfg["label"], "framework": fw, "params": counts[fw],
            "compile_s": compile_s[fw] if fw != "PyTorch" else None,
            "first_step_s": compile_s[fw],
            "load_avg_1m": os.getloadavg()[0],
            "median_ms": med[fw] * 1e3, "min_ms": min(times[fw]) * 1e3,
            "steps_ms": [t * 1e3 for t in times[fw]],
            "ratio_to_flax": med[fw] / med["Flax"] if "Flax" in med else None,
            "ratio_to_pytorch": med[fw] / med["PyTorch"] if "PyTorch" in med else None,
        })
    return rows, hlo, scan_mode


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "backend.json"))
    args = ap.parse_args(argv)
    threads = os.cpu_count() or 1
    if torch is not None:
        torch.set_num_threads(threads)

    all_rows, hlo, scan = [], {}, {}
    for name in args.nets:
        rows, hlo[name], scan[name] = bench_net(name, args.steps, args.warmup)
        all_rows += rows

    def f(v, fmt):
        return "" if v is None else format(v, fmt)
    print("| net | framework | compile s | median step ms | min ms | x Flax | x PyTorch |")
    print("|---|---|--:|--:|--:|--:|--:|")
    for r in all_rows:
        print(f"| {r['net']} | {r['framework']} | {f(r['compile_s'], '.2f')} | "
              f"{r['median_ms']:.1f} | {r['min_ms']:.1f} | {f(r['ratio_to_flax'], '.2f')} | "
              f"{f(r['ratio_to_pytorch'], '.2f')} |")
    print(json.dumps(hlo, indent=1))

    result = {
        "benchmark": "backend train step vs Flax linen and PyTorch eager (issue 5)",
        "machine": {
            "platform": platform.platform(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "jax": jax.__version__, "jax_backend": jax.default_backend(),
            "optax": optax.__version__,
            "flax": getattr(flax, "__version__", None),
            "torch": getattr(torch, "__version__", None),
            "torch_threads": torch.get_num_threads() if torch is not None else None,
        },
        "optimizer": f"SGD lr={LR} momentum={MOMENTUM}",
        "steps": args.steps, "warmup": args.warmup,
        "patternnet_scan": scan,
        "rows": all_rows,
        "hlo": hlo,
    }
    write_atomic(args.out, json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
