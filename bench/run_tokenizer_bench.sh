#!/usr/bin/env bash
# Encode throughput (MB/s) of taia and of HF's JavaScript tokenizer (@huggingface/tokenizers,
# from the npm cache the tests use) on the same multi-MB text, LLaMA 3 and Qwen3, one thread.
#   ./bench/run_tokenizer_bench.sh [lines]
set -euo pipefail
cd "$(dirname "$0")/.."
LINES=${1:-40000}
BUILD=${BUILD:-build}
FIXTURES=${TAIA_FIXTURES:-../shared/fixtures}
MODULES=${TAIA_NPM_CACHE:-$HOME/.cache/taia/npm}/node_modules
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python3 - "$LINES" "$WORK/lines.jsonl" <<'PY'
import json, sys
sys.path.insert(0, "tests/tokenizer")
import corpus
with open(sys.argv[2], "w", encoding="utf-8") as f:
    for t in corpus.lines(int(sys.argv[1]), seed=7):
        f.write(json.dumps({"text": t}) + "\n")
PY
echo "| tokenizer | MB | taia MB/s | HF tokenizers.js MB/s | taia / JS |"
echo "|---|---|---|---|---|"
for name in llama3 qwen3; do
  ours=$(OMP_NUM_THREADS=1 "$BUILD/bench/bench_tokenizer" "$FIXTURES/tokenizers/$name/tokenizer.json" "$WORK/lines.jsonl")
  js=$(node tests/tokenizer/hf_js_tokenize.mjs "$MODULES" "$FIXTURES/tokenizers/$name" "$WORK/lines.jsonl" --bench)
  python3 - "$name" "$ours" "$js" <<'PY'
import json, sys
name, ours, js = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
js_mbs = js["bytes"] / js["seconds"] / 1e6
print(f"| {name} | {ours['bytes'] / 1e6:.1f} | {ours['mb_per_s']:.1f} | {js_mbs:.1f} | {ours['mb_per_s'] / js_mbs:.1f}x |")
PY
done
