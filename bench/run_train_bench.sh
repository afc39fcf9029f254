#!/usr/bin/env bash
# LoRA training tokens/s: taia (F32 base; BF16 base with F32 compute; BF16 GEMMs, i.e.
# --compute bf16) beside the PyTorch peer
# (../shared/peers/torch_lora_step.py train) in the same run. The peer is measured in three
# configurations and the best counts: the environment as set, and OpenBLAS forced to its
# AVX-512 kernels (OPENBLAS_CORETYPE=Cooperlake, set for the peer's command only) with 2 and 1
# torch threads. taia runs with the same 2 threads.
#   ./bench/run_train_bench.sh [trials]
set -uo pipefail
cd "$(dirname "$0")/.."
TRIALS=${1:-5}
BUILD=${BUILD:-build}
PEER=${TAIA_PEER:-../shared/peers/torch_lora_step.py}
echo "== machine: $(lscpu | grep 'Model name' | sed 's/  */ /g'); OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<unset>}"
for dt in f32 bf16 bf16c; do
  OMP_NUM_THREADS=2 "$BUILD/bench/bench_train" "$TRIALS" "$dt"
done
if [ -f "$PEER" ]; then
  echo "== PyTorch peer, environment as set, 2 threads"
  TORCH_THREADS=2 /usr/bin/python3 "$PEER" train "$TRIALS" 2>&1 | grep -E "torch|tokens/s|GFLOP"
  echo "== PyTorch peer, OPENBLAS_CORETYPE=Cooperlake (AVX-512), 2 threads"
  OPENBLAS_CORETYPE=Cooperlake TORCH_THREADS=2 /usr/bin/python3 "$PEER" train "$TRIALS" 2>&1 | grep -E "tokens/s|GFLOP"
  echo "== PyTorch peer, OPENBLAS_CORETYPE=Cooperlake (AVX-512), 1 thread"
  OPENBLAS_CORETYPE=Cooperlake TORCH_THREADS=1 /usr/bin/python3 "$PEER" train "$TRIALS" 2>&1 | grep -E "tokens/s|GFLOP"
fi
