"""Checker benchmark: in-process check of every example, and the cold command line.

    .venv/bin/python bench/bench_check.py [--runs 20] [--cold-runs 15]

In-process: parse + resolve + check of every network of each examples/*.pn file (what
`patternnet check FILE` does), median and min over --runs, after a warm-up; the cyclic
GC is off during the runs, as in the command (see patternnet/cli.py).
Cold: wall time of fresh processes, in one interleaved run so that machine load hits
all of them alike: `python -c pass`, `python -c "import lark"`, `patternnet --version`
and `patternnet check -q examples/resnet.pn`.  Targets (issue 4): ResNet-152 <= 20 ms
in-process; the cold check <= 1.5x the bare lark import.
Writes bench/results/check.json (atomically) and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import gc
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

from patternnet.atomic import write_atomic  # noqa: E402
from patternnet.parser import parse_source  # noqa: E402
from patternnet.pipeline import check_resolved  # noqa: E402
from patternnet.resolver import resolve, select_all  # noqa: E402
from patternnet.source import read  # noqa: E402


def check_file(source) -> int:
    program = parse_source(source)
    layers = 0
    for name in select_all(program):
        result = check_resolved(resolve(program, net=name), program)
        layers += len(getattr(result, "layers", ()))
    return layers


def time_it(fn, runs: int) -> list[float]:
    fn()
    out = []
    gc.disable()
    try:
        for _ in range(runs):
            t = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t) * 1e3)
    finally:
        gc.enable()
    return out


def in_process(runs: int) -> list[dict]:
    rows = []
    for path in sorted((ROOT / "examples").glob("*.pn")):
        source = read(str(path))
        layers = check_file(source)
        ts = time_it(lambda: check_file(source), runs)
        rows.append({"file": path.name, "layers": layers, "median_ms": statistics.median(ts),
                     "min_ms": min(ts)})
    resnet = read(str(ROOT / "examples" / "resnet.pn"))
    program = parse_source(resnet)
    ts = time_it(lambda: check_resolved(resolve(program, net="resnet152"), program), runs)
    rows.append({"file": "resnet.pn --net resnet152 (resolve + check)", "layers": None,
                 "median_ms": statistics.median(ts), "min_ms": min(ts), "target_ms": 20})
    return rows


def cold(runs: int) -> list[dict]:
    py = sys.executable
    exe = str(Path(py).parent / "patternnet")
    cmds = {
        "python -c pass": [py, "-c", "pass"],
        'python -c "import lark"': [py, "-c", "import lark"],
        "patternnet --version": [exe, "--version"],
        "patternnet check -q examples/resnet.pn": [exe, "check", "-q", "examples/resnet.pn"],
    }
    # A user's Python writes bytecode caches on the first run; this sandbox sets
    # PYTHONDONTWRITEBYTECODE, which would recompile PatternNet (an editable install)
    # on every start while lark, installed by pip, is byte-compiled: unset it, and warm
    # the caches once.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for cmd in cmds.values():
        subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    times = {k: [] for k in cmds}
    for _ in range(runs):  # interleaved, so load changes hit every command alike
        for name, cmd in cmds.items():
            t = time.perf_counter()
            subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
            times[name].append((time.perf_counter() - t) * 1e3)
    lark = statistics.median(times['python -c "import lark"'])
    return [{"command": k, "median_ms": statistics.median(v), "min_ms": min(v),
             "x_lark": statistics.median(v) / lark} for k, v in times.items()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--cold-runs", type=int, default=15)
    args = ap.parse_args()
    inproc = in_process(args.runs)
    coldrows = cold(args.cold_runs)
    print("| file | layers | median ms | min ms |\n|---|--:|--:|--:|")
    for r in inproc:
        print(f"| {r['file']} | {r['layers'] if r['layers'] is not None else ''} | "
              f"{r['median_ms']:.2f} | {r['min_ms']:.2f} |")
    print("\n| command (cold process) | median ms | min ms | x lark import |\n|---|--:|--:|--:|")
    for r in coldrows:
        print(f"| `{r['command']}` | {r['median_ms']:.1f} | {r['min_ms']:.1f} | "
              f"{r['x_lark']:.2f} |")
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "python": platform.python_version(),
        "platform": platform.platform(), "cpus": os.cpu_count(),
        "load_average": os.getloadavg(), "in_process": inproc, "cold": coldrows,
        "runs": args.runs, "cold_runs": args.cold_runs,
    }
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    write_atomic(ROOT / "bench" / "results" / "check.json", json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
