#!/usr/bin/env bash
# The index's GPU checks, in one run on a machine with a CUDA device:
#   1. the tests that run the index on CuPy (`-m gpu`; on a machine without a device
#      they are skipped with the reason),
#   2. bench/retrieval.py with our indexes on CuPy, at 100k and then 1M jobs (faiss
#      IndexFlatIP, the reference, stays on the CPU: faiss-gpu has no wheel for it).
# Logs and JSON go to $OUT (default bench/out/gpu); the benchmark gets what is left of
# the budget (first argument, seconds), so a run cut short still leaves its figures.
#
#     bash bench/gpu_checks.sh 420
set -uo pipefail
OUT=${OUT:-bench/out/gpu}
PY=${PYTHON:-python3}
BUDGET=${1:-420}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 COLUMNS=180

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  echo "cpus: $(nproc)"
  $PY -c "import sys, numpy, scipy, numba, cupy, faiss
print(sys.version.split()[0], {m.__name__: m.__version__ for m in (numpy, scipy, numba, cupy, faiss)})"
} 2>&1 | tee "$OUT/environment.txt"

$PY -m pytest -q -p no:cacheprovider -m gpu tests/test_index_*.py 2>&1 | tee "$OUT/gpu_tests.log"

left() { echo $((BUDGET - SECONDS)); }
timeout "$(left)" $PY bench/retrieval.py --backend cupy --sizes 100000 --dims 64,128 \
  --out "$OUT/retrieval_cupy_100k.json" 2>&1 | tee "$OUT/retrieval_cupy_100k.log"
timeout "$(left)" $PY bench/retrieval.py --backend cupy --sizes 1000000 --dims 128,64 \
  --out "$OUT/retrieval_cupy_1m.json" 2>&1 | tee "$OUT/retrieval_cupy_1m.log"
echo "gpu checks done in ${SECONDS}s"
