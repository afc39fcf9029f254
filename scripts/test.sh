#!/usr/bin/env bash
# Runs the whole test suite through CTest; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d build ] || { echo "no build folder: run ./scripts/setup.sh first" >&2; exit 1; }
cmake --build build --parallel
cd build
ctest --output-on-failure --parallel 2 "$@"
