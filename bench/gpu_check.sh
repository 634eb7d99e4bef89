#!/usr/bin/env bash
# The GPU check of issue 11, at most 5 minutes on a CUDA machine with jax[cuda] and a CUDA
# PyTorch installed in .venv: the backend's tests on the GPU, then the train-step benchmark
# against PyTorch CUDA.  Writes bench/results/backend_cuda.json and $OUT/ (if set) logs.
#     bash bench/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
LOG=${OUT:-bench/results}
mkdir -p "$LOG"
if ! JAX_PLATFORMS=cuda timeout 60 "$PY" -c "import jax; print(jax.devices())"; then
    echo "gpu_check: JAX sees no CUDA device (install jax[cuda12] in .venv); nothing run" >&2
    exit 2
fi
"$PY" -c "import torch; assert torch.cuda.is_available(), 'torch without CUDA'" || exit 2
rc=0
JAX_PLATFORMS=cuda timeout 150 "$PY" -m pytest -q -x -p no:cacheprovider \
    tests/test_backend.py tests/test_backend_reference.py tests/test_backend_gradients.py \
    tests/test_jax_numerics.py tests/test_maxpool.py tests/test_export.py \
    2>&1 | tee "$LOG/gpu_tests.log" | tail -5 || rc=1
timeout 120 "$PY" bench/bench_backend.py --device cuda --rounds 5 --per-round 4 \
    --only PatternNet "Flax (JAX default)" "PyTorch eager" 2>&1 | tee "$LOG/gpu_bench.log" || rc=1
exit $rc
