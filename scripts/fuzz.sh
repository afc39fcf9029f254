#!/usr/bin/env bash
# Runs every libFuzzer target (or the ones named) for SECONDS each, starting from the seeds in
# fuzz/corpus/<target> (never modified: new inputs go to build-asan/fuzz-work/<target>).
# Fails on any crash, sanitizer report, timeout (10 s per input) or out-of-memory (2 GB).
# Prints per target: executions, exec/s, corpus size. A crash input is left in
# build-asan/fuzz-work/artifacts/; copy it to fuzz/regressions/<target>/ once fixed.
#   ./scripts/fuzz.sh SECONDS [TARGET ...]      (needs the build-asan folder: scripts/test.sh)
set -uo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:?usage: scripts/fuzz.sh SECONDS [TARGET ...]}
shift
BUILD=${BUILD_ASAN:-build-asan}
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(safetensors gguf config tokenizer_json sentencepiece peft_adapter molora_adapter data_records task_files predictions serve_request)
WORK="$BUILD/fuzz-work"
mkdir -p "$WORK/artifacts"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/scripts/lsan.supp}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=0
for t in "${TARGETS[@]}"; do
  bin="$BUILD/fuzz/fuzz_$t"
  [ -x "$bin" ] || { echo "fuzz: $bin not built (cmake -DTAIA_FUZZ=ON with clang)" >&2; exit 1; }
  mkdir -p "$WORK/$t"
  log="$WORK/$t.log"
  "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
    -artifact_prefix="$WORK/artifacts/$t-" -print_final_stats=1 "$WORK/$t" "fuzz/corpus/$t" > "$log" 2>&1
  rc=$?
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
  speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$')
  corpus=$(ls "$WORK/$t" | wc -l)
  if [ $rc -ne 0 ]; then
    failed=1
    echo "FAIL $t (exit $rc): see $log"
    grep -E "ERROR|SUMMARY|escaped exception|runtime error|Test unit written" "$log" | head -8
  else
    echo "ok   $t: ${runs:-?} runs, ${speed:-?} exec/s, corpus ${corpus} inputs (+ $(ls fuzz/corpus/$t | wc -l) seeds), ${SECONDS_EACH} s"
  fi
done
exit $failed
