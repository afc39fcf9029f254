#!/usr/bin/python3
"""LoRA training on quantized and BF16 bases (QLoRA's setting) beside the F32 preset of the same
shape, in interleaved rounds: `taia bench train --profile` (LoRA r 16 on all seven projections,
4 x 256 tokens, F32 compute), tokens/s, the share of the F32 GEMM bound measured in the same call,
the base GEMMs' and the tiles' widening share of the step, and peak RSS.

Models (random N(0, 0.02) weights, made once in WORK_DIR): a Qwen2-architecture F16 GGUF of the
preset's shape written from numpy (bench/compare_llamacpp.py's writer, Qwen's vocabulary from the
fixtures), converted by llama-quantize to Q4_K_M and BF16; the tensor types the file really holds
are counted and printed (at hidden 896 llama-quantize falls back from the K-quants for every matrix
whose rows are not a multiple of 256).

  /usr/bin/python3 bench/train_quantized_base.py TAIA LLAMA_QUANTIZE FIXTURES WORK_DIR PRESET [ROUNDS]
  PRESET: qwen2-0.5b or qwen2.5-1.5b. gguf-py is taken from the llama.cpp tree llama-quantize was
  built in (LLAMA_CPP_DIR overrides)."""
import collections
import json
import os
import re
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
import check_llamacpp  # noqa: E402
import compare_llamacpp  # noqa: E402
from benchlib import cpu_name  # noqa: E402

SHAPES = {"qwen2-0.5b": compare_llamacpp.QWEN,
          "qwen2.5-1.5b": dict(compare_llamacpp.QWEN, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                               num_attention_heads=12, num_key_value_heads=2)}
TYPES = ["Q4_K_M", "BF16"]


def make_files(quantize, gguf, fixtures, work, preset):
    vocab = os.path.join(work, "qwen-vocab.gguf")
    if not os.path.exists(vocab):
        compare_llamacpp.qwen_vocab_gguf(gguf, os.path.join(fixtures, "tokenizers", "qwen3", "tokenizer.json"), vocab)
    f16 = os.path.join(work, f"{preset}-f16.gguf")
    if not os.path.exists(f16):
        compare_llamacpp.qwen_f16_gguf(gguf, SHAPES[preset], vocab, f16)
    files = []
    for t in TYPES:
        out = os.path.join(work, f"{preset}-{t.lower()}.gguf")
        if not os.path.exists(out):
            subprocess.run([quantize, f16, out, t], check=True, capture_output=True)
        files.append((t, out))
    return files


def tensor_types(gguf, path):
    """Matrix tensors (2-D) by their stored type: what the file really holds."""
    reader = gguf.GGUFReader(path)
    return collections.Counter(t.tensor_type.name for t in reader.tensors if len(t.shape) == 2)


def bench(taia, args):
    r = subprocess.run(["/usr/bin/time", "-f", "peak_rss_kb=%M", taia, "bench", "train", "--batch", "4", "--seq", "256",
                        "--rank", "16", "--rounds", "2", "-t", "2", "--profile", "--format", "json", *args],
                       capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="2"))
    if r.returncode != 0:
        sys.exit(f"taia bench train {' '.join(args)} failed: {r.stderr[-600:]}")
    j = json.loads(r.stdout)
    phases = {p["phase"]: p["share"] for p in j["profile"]}
    rss = int(re.search(r"peak_rss_kb=(\d+)", r.stderr).group(1)) / 1024
    return j["tokens_per_s"], j["fraction_of_bound"], phases["base GEMMs"], phases["widening weight tiles"], rss


def main():
    taia, quantize, fixtures, work, preset = sys.argv[1:6]
    rounds = int(sys.argv[6]) if len(sys.argv) > 6 else 3
    llama_dir = os.environ.get("LLAMA_CPP_DIR") or os.path.normpath(
        os.path.join(os.path.dirname(os.path.abspath(quantize)), "..", ".."))
    gguf = check_llamacpp.load_gguf_py(llama_dir)
    os.makedirs(work, exist_ok=True)
    runs = [("F32 preset", ["--preset", preset])] + [(t, ["-m", path]) for t, path in
                                                      make_files(quantize, gguf, fixtures, work, preset)]
    for t, path in runs[1:]:
        print(f"{t}: {os.path.getsize(path[1]) / 1e6:.0f} MB, matrices by stored type: "
              f"{dict(tensor_types(gguf, path[1]))}", flush=True)
    results = collections.defaultdict(list)
    for r in range(rounds):
        for label, args in runs:
            results[label].append(bench(taia, args))
            tps, share, base, widen, rss = results[label][-1]
            print(f"round {r + 1} {label:10s} {tps:6.1f} tok/s  {100 * share:3.0f} % of the F32 bound  base GEMMs "
                  f"{100 * base:3.0f} %  widening {100 * widen:4.1f} %  peak RSS {rss:5.0f} MB", flush=True)
    print(f"\nCPU: {cpu_name()}, 2 threads, {preset}, LoRA r 16 on seven projections, 4 x 256 tokens, F32 compute, "
          f"{rounds} interleaved rounds (medians)\n")
    print("| base | tokens/s | share of the F32 bound | base GEMMs | widening tiles | peak RSS MB | tokens/s / F32's |")
    print("|---|---|---|---|---|---|---|")
    f32 = [x[0] for x in results["F32 preset"]]
    for label, v in results.items():
        med = [statistics.median(x[i] for x in v) for i in range(5)]
        ratio = statistics.median(x[0] / f for x, f in zip(v, f32))
        print(f"| {label} | {med[0]:.1f} | {100 * med[1]:.0f} % | {100 * med[2]:.0f} % | {100 * med[3]:.1f} % | "
              f"{med[4]:.0f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
