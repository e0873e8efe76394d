#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: the GPU benchmark (python -m benchmarks.gpu), then the
# CUDA tests against real CuPy. Run from the repository root, with OUT an output folder:
#
#     OUT=/some/folder bash benchmarks/gpu_run.sh
#
# Writes $OUT/nvidia_smi.txt, $OUT/gpu_results.md (the report), $OUT/gpu_bench.log and
# $OUT/gpu_tests.log. Needs python3 with cupy, numpy, sympy, jinja2 and pytest (torch and
# jax with CUDA are optional: the report lists them as missing otherwise), g++ for the
# emulator tests (tests/test_cuda_backend.py skips all of its tests, the real-CuPy ones
# too, without it). Neither tests/conftest.py nor tests/test_cuda_backend.py nor
# tests/test_cuda_emulator.py imports autograd or hypothesis: no wheel needs carrying.
# About 2 to 4 minutes; each step has a time limit, so the whole stays under 8 minutes.
# Environment: PYTHON (default python3), GPU_BENCH_ARGS (e.g. --quick).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-$PWD/gpu_out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
status=0

echo "== nvidia-smi"
if command -v nvidia-smi >/dev/null 2>&1; then
    {
        nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm,clocks.max.sm,clocks.mem,temperature.gpu,power.draw,utilization.gpu --format=csv || true
        nvidia-smi || true
    } 2>&1 | tee "$OUT/nvidia_smi.txt"
else
    echo "nvidia-smi not found" | tee "$OUT/nvidia_smi.txt"
fi

echo "== benchmark: $PY -m benchmarks.gpu ${GPU_BENCH_ARGS:-} --out $OUT/gpu_results.md"
# shellcheck disable=SC2086  # GPU_BENCH_ARGS is a list of options
timeout 330 "$PY" -m benchmarks.gpu ${GPU_BENCH_ARGS:-} --out "$OUT/gpu_results.md" 2>&1 \
    | tee "$OUT/gpu_bench.log" || status=$?
if [ "$status" -ne 0 ]; then
    echo "benchmark exit status $status (1: a mismatch or a symgen failure, see the report;" \
        "2: no CUDA device through CuPy; 124: timed out)"
fi

echo "== CUDA tests against real CuPy"
tests=(tests/test_cuda_backend.py tests/test_cuda_emulator.py)
missing=$("$PY" -c '
import importlib.util as u, re, sys
need = ["pytest"]
for path in ["tests/conftest.py", *sys.argv[1:]]:
    text = open(path, encoding="utf-8").read()
    for name in ("autograd", "hypothesis"):
        if re.search(rf"^\s*(import|from) {name}\b", text, re.M) and name not in need:
            need.append(name)
print(" ".join(n for n in need if u.find_spec(n) is None))
' "${tests[@]}")
if [ -n "$missing" ]; then
    echo "tests skipped: not importable by $PY: $missing (carry them as wheels and put them" \
        "on PYTHONPATH)" | tee "$OUT/gpu_tests.log"
else
    command -v g++ >/dev/null 2>&1 \
        || echo "warning: no g++ on PATH: tests/test_cuda_backend.py skips all its tests"
    "$PY" -c 'import cupy; cupy.cuda.runtime.getDeviceCount()' >/dev/null 2>&1 \
        || echo "warning: no CuPy with a CUDA device: only the emulated tests will run"
    tstatus=0
    timeout 200 "$PY" -m pytest -q -rs -p no:cacheprovider "${tests[@]}" 2>&1 \
        | tee "$OUT/gpu_tests.log" || tstatus=$?
    echo "tests exit status $tstatus"
    if [ "$status" -eq 0 ]; then
        status=$tstatus
    fi
fi
exit "$status"
