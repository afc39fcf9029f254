"""taia against llama.cpp on the same GGUF files, the table of docs/BENCHMARKS.md (issue 17).

Models (random weights, made once in WORK_DIR and reused):
  - a Qwen2.5-0.5B-shaped model (hidden 896, 24 layers, 14 / 2 heads, FFN 4864, tied 151,936-token
    embeddings with Qwen's vocabulary from the fixtures), written as F32 GGUF by llama.cpp's gguf-py
    in the converter's layout, then converted by llama-quantize to BF16, F16, Q8_0, Q4_0, Q4_K_M;
  - a LLaMA 58M (dim 512, 8 layers, FFN 1376, LLaMA 2's 32,000-token vocabulary, untied), F32;
  - a Qwen2.5-3B-shaped model (hidden 2048, 36 layers, 16 / 2 heads, FFN 11008): an F16 GGUF written
    from numpy, converted by llama-quantize to F32, BF16, Q8_0, Q4_0, Q4_K_M (216 Q4_K + 37 Q6_K
    tensors). TAIA_BENCH_3B=0 leaves it out.
In interleaved rounds (every file in both tools each round; medians reported), `llama-bench -p 512
-n 128 -r 1` beside `taia bench prefill --prompt 512` and `taia bench decode --tokens 128` (both
from an empty cache, as llama-bench's pp512 and tg128; the 3B files decode 32 tokens, -n 32), and
taia's decode as a share of the bound that the read bandwidth it measures in the same call sets.
Both tools run their defaults: 8-bit activations on quantized files, an F16 KV cache.

Then decode at depth (TAIA_BENCH_DEPTHS, default "4096,16384"; the 0.5B Q4_K_M and BF16 files;
TAIA_BENCH_DEPTH_ROUNDS rounds, default 1): llama-cli's own eval timing of 32 tokens after a
prompt of D tokens (this llama-bench has no -d) beside `taia bench decode --depth D --tokens 32`.
And load: wall time and peak RSS (`/usr/bin/time -f "%e %M"`) of `taia generate -n 8` beside
`llama-cli -n 8`, warm (the file in the page cache) and cold (its pages dropped just before each
run with posix_fadvise DONTNEED).

usage: /usr/bin/python3 bench/compare_llamacpp.py TAIA LLAMA_BENCH FIXTURES WORK_DIR [ROUNDS] [THREADS]
(bench/compare_llamacpp.sh fills in everything but LLAMA_BENCH.) llama-quantize is taken from the
llama-bench's folder and gguf-py from the llama.cpp tree it was built in (LLAMA_CPP_DIR overrides).
"""
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
import check_llamacpp  # noqa: E402  (gguf-py and the converter's tensor layout)
from benchlib import cpu_name  # noqa: E402

QWEN = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 151936, "hidden_size": 896,
        "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
        "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "max_position_embeddings": 32768,
        "tie_word_embeddings": True, "bos_token_id": 151643, "eos_token_id": 151645}
LLAMA = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 32000, "hidden_size": 512,
         "intermediate_size": 1376, "num_hidden_layers": 8, "num_attention_heads": 8, "num_key_value_heads": 8,
         "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 2048,
         "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2}
QWEN_TYPES = ["BF16", "F16", "Q8_0", "Q4_0", "Q4_K_M"]  # llama-quantize's names, from the F32 file
# Qwen2.5-3B's shape: hidden 2048 (a multiple of 256, so llama-quantize's K-quants really are
# Q4_K / Q6_K), 36 layers, 16 / 2 heads, FFN 11008, tied 151,936-token embeddings.
QWEN3B = dict(QWEN, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
              num_key_value_heads=2)
QWEN3B_TYPES = ["F32", "BF16", "F16", "Q8_0", "Q4_0", "Q4_K_M"]  # F16: the file written; the others from it
GEN_3B = 32  # decoded tokens per 3B run (a 3B token takes 0.1-0.5 s)


def qwen_vocab_gguf(gguf, tokenizer_json, out):
    """A GGUF holding only Qwen's BPE vocabulary (as convert_hf_to_gguf writes it: gpt2 model,
    qwen2 pre-tokenizer, tokens padded to the embedding rows with [PAD{i}])."""
    t = json.load(open(tokenizer_json))
    tokens = {i: tok for tok, i in t["model"]["vocab"].items()}
    types = {i: 1 for i in tokens}
    for a in t["added_tokens"]:
        tokens[a["id"]] = a["content"]
        types[a["id"]] = 3 if a.get("special") else 4
    n = QWEN["vocab_size"]
    w = gguf.GGUFWriter(out, "qwen2")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list([tokens.get(i, f"[PAD{i}]") for i in range(n)])
    w.add_token_types([types.get(i, 5) for i in range(n)])
    merges = t["model"]["merges"]
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    w.add_bos_token_id(QWEN["bos_token_id"])
    w.add_eos_token_id(QWEN["eos_token_id"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def qwen_f16_gguf(gguf, cfg, vocab, out, seed=1):
    """A Qwen2-architecture GGUF in F16 (norms and biases F32, as convert_hf_to_gguf writes them)
    with random N(0, 0.02) weights, written tensor by tensor from numpy: the 3B shape without a
    12 GB F32 detour through an HF folder."""
    import numpy as np
    rng = np.random.default_rng(seed)
    D, F, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = D // H
    w = gguf.GGUFWriter(out, "qwen2")
    check_llamacpp.copy_vocab(gguf, w, vocab)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(D)
    w.add_block_count(L)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(KV)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)

    def weight(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16)

    def ones(n):
        return np.ones(n, dtype=np.float32)

    w.add_tensor("token_embd.weight", weight(cfg["vocab_size"], D))
    w.add_tensor("output_norm.weight", ones(D))
    for i in range(L):
        b = f"blk.{i}."
        w.add_tensor(b + "attn_norm.weight", ones(D))
        w.add_tensor(b + "ffn_norm.weight", ones(D))
        for name, rows in (("attn_q", H * hd), ("attn_k", KV * hd), ("attn_v", KV * hd)):
            w.add_tensor(b + name + ".weight", weight(rows, D))
            w.add_tensor(b + name + ".bias", (rng.standard_normal(rows, dtype=np.float32) * 0.02))
        w.add_tensor(b + "attn_output.weight", weight(D, H * hd))
        w.add_tensor(b + "ffn_gate.weight", weight(F, D))
        w.add_tensor(b + "ffn_up.weight", weight(F, D))
        w.add_tensor(b + "ffn_down.weight", weight(D, F))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def f32_gguf(taia, gguf, arch, cfg, vocab, work, name):
    out = os.path.join(work, f"{name}-f32.gguf")
    if not os.path.exists(out):
        config = os.path.join(work, f"{name}-config.json")
        json.dump(cfg, open(config, "w"))
        hf = os.path.join(work, f"{name}-hf")
        subprocess.run([taia, "init-model", "--config", config, "--out", hf, "--seed", "1", "--std", "0.02"],
                       check=True, capture_output=True)
        check_llamacpp.write_gguf(gguf, arch, cfg, hf, vocab, out)
    return out


def make_models(taia, llama_bench, fixtures, llama_dir, work):
    """[(model label, dtype, path, taia's extra options, llama-bench's extra options)] in table order."""
    gguf = check_llamacpp.load_gguf_py(llama_dir)
    qvocab = os.path.join(work, "qwen-vocab.gguf")
    if not os.path.exists(qvocab):
        qwen_vocab_gguf(gguf, os.path.join(fixtures, "tokenizers", "qwen3", "tokenizer.json"), qvocab)
    qf32 = f32_gguf(taia, gguf, "qwen2", QWEN, qvocab, work, "qwen05")
    files = [("Qwen2.5-0.5B shape", "F32", qf32, (), ()),
             # Both tools with the weights copied into their own memory instead of mapped.
             ("Qwen2.5-0.5B shape", "F32, both --no-mmap", qf32, ("--no-mmap",), ("-mmp", "0"))]
    quantize = os.path.join(os.path.dirname(llama_bench), "llama-quantize")
    for t in QWEN_TYPES:
        out = os.path.join(work, f"qwen05-{t.lower()}.gguf")
        if not os.path.exists(out):
            subprocess.run([quantize, qf32, out, t], check=True, capture_output=True)
        files.append(("Qwen2.5-0.5B shape", t, out, (), ()))
        if t == "BF16":  # llama.cpp's own semantics: activations rounded to BF16
            files.append(("Qwen2.5-0.5B shape", "BF16, taia --compute bf16", out, ("--compute", "bf16"), ()))
    lvocab = os.path.join(fixtures, "tokenizers", "goldens", "ggml-vocab-llama-spm.gguf")
    files.append(("LLaMA 58M", "F32", f32_gguf(taia, gguf, "llama", LLAMA, lvocab, work, "llama58m"), (), ()))
    if os.environ.get("TAIA_BENCH_3B", "1") != "0":
        f16 = os.path.join(work, "qwen3b-f16.gguf")
        if not os.path.exists(f16):
            qwen_f16_gguf(gguf, QWEN3B, qvocab, f16)
        for t in QWEN3B_TYPES:
            out = os.path.join(work, f"qwen3b-{t.lower()}.gguf")
            if not os.path.exists(out):
                subprocess.run([quantize, f16, out, t], check=True, capture_output=True)
            files.append(("Qwen2.5-3B shape", t, out, (), ()))
            if t == "BF16":
                files.append(("Qwen2.5-3B shape", "BF16, taia --compute bf16", out, ("--compute", "bf16"), ()))
    return files


def llama_depth_decode(llama_bench, model, threads, depth, n=32):
    """llama.cpp's decode tokens/s after about `depth` prompt tokens: llama-cli's own eval timing
    (llama_perf_context_print) of n tokens after a prompt of `depth` words (one token each in
    Qwen's vocabulary). (This llama-bench has no -d; subtracting -p D from -pg D,n drowned the n
    tokens in the prompt's run-to-run noise: negative rates.)"""
    import re
    import tempfile
    cli = os.path.join(os.path.dirname(llama_bench), "llama-cli")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(" the" * (depth - 1))
    r = subprocess.run([cli, "-m", model, "-f", f.name, "-n", str(n), "--ignore-eos", "-no-cnv", "-c",
                        str(depth + 2 * n), "-t", str(threads)], capture_output=True, text=True, errors="replace",
                       check=True)  # a random model's text is not always UTF-8
    os.unlink(f.name)
    found = re.search(r"\beval time =\s*([0-9.]+) ms /\s*([0-9]+) runs", r.stderr)
    return int(found.group(2)) / (float(found.group(1)) / 1e3)


def taia_depth_decode(taia, model, threads, depth, n=32):
    r = subprocess.run([taia, "bench", "decode", "-m", model, "--depth", str(depth), "--tokens", str(n), "--rounds",
                        "1", "-t", str(threads), "--format", "json"], capture_output=True, text=True, check=True)
    return json.loads(r.stdout)["tokens_per_s"]


def time_rss(cmd):
    """(wall seconds, peak RSS in GB) of a command, by /usr/bin/time."""
    r = subprocess.run(["/usr/bin/time", "-f", "%e %M", *cmd], capture_output=True, text=True, errors="replace",
                       check=True)
    seconds, kb = r.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(kb) / 1e6


def evict(path):
    """The file's pages dropped from the page cache (posix_fadvise DONTNEED: no root needed), so
    the next run reads it from disk."""
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)


def warm(path):
    """The file read once so that all of its pages are in the page cache: a warm run must not pay
    for the pages that the runs before it (other files, the other program) pushed out."""
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def load_runs(taia, llama_bench, model, threads, cold=False):
    cli = os.path.join(os.path.dirname(llama_bench), "llama-cli")
    (evict if cold else warm)(model)
    ours = time_rss([taia, "generate", "-m", model, "--prompt-ids", "1,2,3", "-n", "8", "--ignore-eos", "-t",
                     str(threads)])
    (evict if cold else warm)(model)
    theirs = time_rss([cli, "-m", model, "-p", "hello", "-n", "8", "-no-cnv", "--no-warmup", "-c", "512", "-t",
                       str(threads)])
    return ours, theirs


def llama_bench_run(llama_bench, model, threads, extra, gen):
    r = subprocess.run([llama_bench, "-m", model, "-p", "512", "-n", str(gen), "-t", str(threads), "-r", "1", "-o",
                        "json", *extra], capture_output=True, text=True, check=True)
    rows = json.loads(r.stdout)
    pp = next(x["avg_ts"] for x in rows if x["n_prompt"] == 512)
    tg = next(x["avg_ts"] for x in rows if x["n_gen"] == gen)
    return pp, tg


def taia_bench_run(taia, model, threads, extra, gen):
    def bench(*args):
        r = subprocess.run([taia, "bench", *args, "-m", model, "--rounds", "1", "-t", str(threads), "--format",
                            "json", *extra], capture_output=True, text=True, check=True)
        return json.loads(r.stdout)
    pp = bench("prefill", "--prompt", "512")
    tg = bench("decode", "--tokens", str(gen))
    return pp["tokens_per_s"], tg["tokens_per_s"], tg["fraction_of_bound"]


def main():
    taia, llama_bench, fixtures, work = sys.argv[1:5]
    rounds = int(sys.argv[5]) if len(sys.argv) > 5 else 3
    threads = int(sys.argv[6]) if len(sys.argv) > 6 else 2
    llama_dir = os.environ.get("LLAMA_CPP_DIR") or os.path.normpath(
        os.path.join(os.path.dirname(os.path.abspath(llama_bench)), "..", ".."))
    os.makedirs(work, exist_ok=True)
    files = make_models(taia, llama_bench, fixtures, llama_dir, work)
    results = {f: {"llama": [], "taia": []} for f in files}
    for r in range(rounds):  # interleaved: each round runs every file in both tools
        for f in files:
            gen = GEN_3B if f[0] == "Qwen2.5-3B shape" else 128
            results[f]["llama"].append(llama_bench_run(llama_bench, f[2], threads, f[4], gen))
            results[f]["taia"].append(taia_bench_run(taia, f[2], threads, f[3], gen))
            print(f"round {r + 1} {f[0]} {f[1]}: llama.cpp {results[f]['llama'][-1]}, taia {results[f]['taia'][-1]}",
                  file=sys.stderr, flush=True)
    print(f"CPU: {cpu_name()}, {threads} threads, {rounds} interleaved rounds (medians), llama-bench -p 512 -n 128 "
          f"vs taia bench prefill --prompt 512 / decode --tokens 128 (3B: -n {GEN_3B} / --tokens {GEN_3B})\n")
    print("| model (random weights) | dtype | file MB | llama.cpp prefill / decode tok/s | taia prefill / decode tok/s "
          "| taia / llama.cpp | taia decode, share of the bandwidth bound |")
    print("|---|---|---|---|---|---|---|")
    for f in files:
        label, dtype, path = f[:3]
        lp, lt = (statistics.median(x[i] for x in results[f]["llama"]) for i in (0, 1))
        tp, tt, share = (statistics.median(x[i] for x in results[f]["taia"]) for i in (0, 1, 2))
        print(f"| {label} | {dtype} | {os.path.getsize(path) / 1e6:.0f} | {lp:.0f} / {lt:.1f} | {tp:.0f} / {tt:.1f} | "
              f"{tp / lp:.2f}x / {tt / lt:.2f}x | {100 * share:.0f} % |")
    print(flush=True)
    depth_table(taia, llama_bench, files, rounds, threads)
    load_table(taia, llama_bench, files, rounds, threads)


def depth_table(taia, llama_bench, files, rounds, threads):
    depths = [int(d) for d in os.environ.get("TAIA_BENCH_DEPTHS", "4096,16384").split(",") if d]
    rounds = int(os.environ.get("TAIA_BENCH_DEPTH_ROUNDS", "1"))
    picked = [f for f in files if f[0] == "Qwen2.5-0.5B shape" and f[1] in ("BF16", "Q4_K_M")]
    rows = {(f, d): {"llama": [], "taia": []} for f in picked for d in depths}
    for r in range(rounds):
        for (f, d), res in rows.items():
            res["llama"].append(llama_depth_decode(llama_bench, f[2], threads, d))
            res["taia"].append(taia_depth_decode(taia, f[2], threads, d))
            print(f"round {r + 1} depth {d} {f[1]}: llama.cpp {res['llama'][-1]:.1f}, taia {res['taia'][-1]:.1f}",
                  file=sys.stderr, flush=True)
    print("| model | dtype | depth | llama.cpp decode tok/s | taia decode tok/s | taia / llama.cpp |")
    print("|---|---|---|---|---|---|")
    for (f, d), res in rows.items():
        lt, tt = statistics.median(res["llama"]), statistics.median(res["taia"])
        print(f"| {f[0]} | {f[1]} | {d} | {lt:.1f} | {tt:.1f} | {tt / lt:.2f}x |")
    print()


def load_table(taia, llama_bench, files, rounds, threads):
    picked = [f for f in files if f[0] == "Qwen2.5-3B shape" or (f[0] == "Qwen2.5-0.5B shape" and f[1] == "Q4_K_M")]
    runs = {f: [] for f in picked}
    cold = {f: [] for f in picked}
    for _ in range(rounds):
        for f in picked:
            runs[f].append(load_runs(taia, llama_bench, f[2], threads))
            cold[f].append(load_runs(taia, llama_bench, f[2], threads, cold=True))
    print("| model | dtype | taia generate -n 8, warm: s / peak RSS GB | llama-cli -n 8, warm: s / peak RSS GB "
          "| taia, cold: s | llama-cli, cold: s |")
    print("|---|---|---|---|---|---|")
    for f, rs in runs.items():
        cell = lambda i: " ".join(f"{r[i][0]:.2f}" for r in rs) + f" / {max(r[i][1] for r in rs):.2f}"
        cold_cell = lambda i: " ".join(f"{r[i][0]:.2f}" for r in cold[f])
        print(f"| {f[0]} | {f[1]} | {cell(0)} | {cell(1)} | {cold_cell(0)} | {cold_cell(1)} |")
    print()


if __name__ == "__main__":
    main()
