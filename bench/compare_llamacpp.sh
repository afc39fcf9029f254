#!/usr/bin/env bash
# taia beside a llama.cpp you built, on the same GGUF files, in interleaved rounds; the table goes
# to stdout (progress to stderr). See bench/compare_llamacpp.py for the models and the method.
#   ./bench/compare_llamacpp.sh LLAMA_BENCH_BINARY [rounds] [threads]
# e.g. ./bench/compare_llamacpp.sh ~/llama.cpp/build/bin/llama-bench 3 2
# Model files are written once to ${TAIA_BENCH_WORK:-build/compare_llamacpp} and reused.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ] || [ ! -x "$1" ]; then
  echo "usage: $0 LLAMA_BENCH_BINARY [rounds] [threads]  (llama-bench of a llama.cpp build; llama-quantize beside it)" >&2
  exit 2
fi
exec /usr/bin/python3 bench/compare_llamacpp.py "${TAIA_BIN:-build/tools/cli/taia}" "$1" \
  "${TAIA_FIXTURES:-../shared/fixtures}" "${TAIA_BENCH_WORK:-build/compare_llamacpp}" "${2:-3}" "${3:-2}"
