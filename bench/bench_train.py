"""The digits demo, timed: ``patternnet train examples/digits.pn`` as ``make demo`` runs it.

Each run is a fresh process (JAX start-up, compiling and the data load included), with
the defaults, in a temporary run folder; the wall time is the whole process.  Writes
bench/results/train.json: every run's wall time, CPU time and test accuracy, the medians,
and the machine (CPUs, load average before and after, Python, jax, the commit).

    python bench/bench_train.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "results" / "train.json"


def one_run(folder: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "patternnet", "train",
                        str(ROOT / "examples" / "digits.pn"), "--out", folder],
                       capture_output=True, text=True, env=env, cwd=folder)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"the demo failed ({r.returncode}): {r.stderr}")
    acc = float(re.search(r"test accuracy ([\d.]+)%", r.stdout).group(1))
    return {"wall_s": round(wall, 2),
            "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2),
            "test_accuracy_pct": acc}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    load_before = os.getloadavg()
    runs = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as d:
            runs.append(one_run(d))
        print(f"run {i + 1}: {runs[-1]}", flush=True)
    import jax

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=ROOT).stdout.strip()
    result = {
        "command": "patternnet train examples/digits.pn (defaults)",
        "runs": runs,
        "median_wall_s": statistics.median(r["wall_s"] for r in runs),
        "median_cpu_s": statistics.median(r["cpu_s"] for r in runs),
        "median_test_accuracy_pct": statistics.median(r["test_accuracy_pct"] for r in runs),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count(), "jax": jax.__version__,
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "commit": commit, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("median_wall_s", "median_cpu_s",
                                             "median_test_accuracy_pct")}))


if __name__ == "__main__":
    main()
