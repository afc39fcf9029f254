#!/usr/bin/env bash
# Runs the whole test suite through CTest, then the sanitizer pass: a second build (build-asan:
# clang, AddressSanitizer + UndefinedBehaviorSanitizer, libFuzzer targets) runs the test suite
# (without the tests labelled slow, unless --sanitize-all) and fuzzes every parser for
# TAIA_FUZZ_SECONDS (default 5) each. Exits non-zero on any failure.
#   ./scripts/test.sh [--sanitize-all] [--no-sanitize] [extra ctest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d build ] || { echo "no build folder: run ./scripts/setup.sh first" >&2; exit 1; }
SANITIZE=1
SLOW_FILTER=(-LE slow)
ARGS=()
for a in "$@"; do
  case "$a" in
    --sanitize-all) SLOW_FILTER=() ;;
    --no-sanitize) SANITIZE=0 ;;
    *) ARGS+=("$a") ;;
  esac
done
cmake --build build --parallel
(cd build && ctest --output-on-failure --parallel 2 "${ARGS[@]}")
[ "$SANITIZE" = 1 ] || exit 0

echo "== sanitizer build (build-asan: clang, ASan + UBSan, libFuzzer targets)"
if [ ! -f build-asan/build.ninja ]; then
  CC=clang CXX=clang++ cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Release \
    "-DCMAKE_CXX_FLAGS_RELEASE=-O1 -DNDEBUG" -DTAIA_SANITIZE=ON -DTAIA_FUZZ=ON -DTAIA_BUILD_BENCH=OFF > /dev/null
fi
cmake --build build-asan --parallel
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export LSAN_OPTIONS=suppressions=$PWD/scripts/lsan.supp
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure --parallel 2 "${SLOW_FILTER[@]}" "${ARGS[@]}")
echo "== fuzzing each parser for ${TAIA_FUZZ_SECONDS:-5} s"
./scripts/fuzz.sh "${TAIA_FUZZ_SECONDS:-5}"
