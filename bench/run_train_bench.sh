#!/usr/bin/env bash
# LoRA training tokens/s: taia beside the PyTorch peer (../shared/peers/torch_lora_step.py train)
# in interleaved rounds, so that every ratio compares runs made seconds apart on this shared VM.
# Each round runs: taia F32, taia BF16 base + F32 compute, taia BF16 compute (--compute bf16);
# the peer (F32) in three configurations - the environment as set (2 threads), and OpenBLAS's
# AVX-512 kernels (OPENBLAS_CORETYPE=Cooperlake, set for the peer's command only) with 2 and 1
# threads; and the peer's model under PyTorch bf16 autocast (bench/torch_amp_step.py, 2 threads).
# Prints each round and the median over rounds of each ratio.
#   ./bench/run_train_bench.sh [rounds] [trials per run]
set -uo pipefail
cd "$(dirname "$0")/.."
exec /usr/bin/python3 bench/train_bench_rounds.py "${1:-3}" "${2:-5}"
