#!/usr/bin/env bash
# Runs every benchmark in one session so the numbers can be compared: GEMM back-ends (oneDNN,
# OpenBLAS, taia's linear_forward), the PyTorch peer's matmul on the same shapes, and
# prefill/decode tokens/s beside the decode bandwidth bound. Results go to stdout; copy the
# tables into docs/BENCHMARKS.md with the date and machine.
#   ./bench/run_benchmarks.sh [threads]
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${1:-2}
BUILD=${BUILD:-build}
FIXTURES=${TAIA_FIXTURES:-../shared/fixtures}
PEER=${TAIA_PEER:-../shared/peers/torch_lora_step.py}

echo "== machine"
lscpu | grep -E "Model name|^CPU\(s\)|L2 cache|L3 cache" | sed 's/  */ /g'
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<unset>} (left as the environment set it)"
echo
echo "== GEMM back-ends, ${THREADS} threads (GFLOP/s; GB/s of weights for decode shapes)"
OMP_NUM_THREADS=$THREADS "$BUILD/bench/bench_gemm" --benchmark_min_time=0.3 2>/dev/null |
  awk '/^BM_/ {printf "%-44s %-18s", $1, $NF; for (i = 2; i <= NF; i++) if ($i ~ /GFLOP|GB/) printf " %s", $i; printf "\n"}'
echo
if [ -f "$PEER" ] && /usr/bin/python3 -c "import torch" 2>/dev/null; then
  echo "== PyTorch peer matmul (F.linear layout NT is what a model runs), ${THREADS} threads"
  TORCH_THREADS=$THREADS /usr/bin/python3 "$PEER" matmul 3 2>&1 | tail -n 20
else
  echo "== PyTorch peer skipped: $PEER or /usr/bin/python3 with torch not found"
fi
echo
echo "== inference"
OMP_NUM_THREADS=$THREADS "$BUILD/bench/bench_inference" --threads "$THREADS" \
  --stories "$FIXTURES/models/stories260K/stories260K.gguf"
echo
echo "== multiple-choice scoring (taia eval)"
OMP_NUM_THREADS=$THREADS "$BUILD/bench/bench_eval" --threads "$THREADS" \
  --stories "$FIXTURES/models/stories260K/stories260K.gguf"
