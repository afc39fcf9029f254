"""Quantized GGUF bases against llama.cpp on the same files: a Qwen2.5-0.5B-shaped random model
(hidden 896, 24 layers, 14 / 2 heads, FFN 4864, tied 151,936-token embeddings with Qwen's
vocabulary from the fixtures) written as F32 GGUF by llama.cpp's gguf-py, quantized by its
llama-quantize to Q8_0, Q4_0 and Q4_K_M; then, in interleaved rounds (medians),
`llama-bench -p 512 -n 128 -t T` beside `taia generate --prompt-ids <512 ids> -n 128
--ignore-eos -t T`, prefill and decode tokens/s.

usage: LLAMA_CPP_DIR=... /usr/bin/python3 bench/bench_quant.py TAIA_BINARY FIXTURES WORK_DIR [ROUNDS] [THREADS]
The model files are made once in WORK_DIR and reused.
"""
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
import check_llamacpp  # noqa: E402  (gguf-py and the converter's tensor layout)

CONFIG = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 151936, "hidden_size": 896,
          "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
          "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "max_position_embeddings": 32768,
          "tie_word_embeddings": True, "bos_token_id": 151643, "eos_token_id": 151645}
TYPES = ["Q8_0", "Q4_0", "Q4_K_M"]


def qwen_vocab_gguf(gguf, tokenizer_json, out):
    """A GGUF holding only Qwen's BPE vocabulary (as convert_hf_to_gguf writes it: gpt2 model,
    qwen2 pre-tokenizer, tokens padded to the embedding rows with [PAD{i}])."""
    t = json.load(open(tokenizer_json))
    tokens = {i: tok for tok, i in t["model"]["vocab"].items()}
    types = {i: 1 for i in tokens}
    for a in t["added_tokens"]:
        tokens[a["id"]] = a["content"]
        types[a["id"]] = 3 if a.get("special") else 4
    n = CONFIG["vocab_size"]
    w = gguf.GGUFWriter(out, "qwen2")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list([tokens.get(i, f"[PAD{i}]") for i in range(n)])
    w.add_token_types([types.get(i, 5) for i in range(n)])
    merges = t["model"]["merges"]
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    w.add_bos_token_id(CONFIG["bos_token_id"])
    w.add_eos_token_id(CONFIG["eos_token_id"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make_models(taia, fixtures, llama_dir, work):
    gguf = check_llamacpp.load_gguf_py(llama_dir)
    f32 = os.path.join(work, "qwen05-f32.gguf")
    if not os.path.exists(f32):
        json.dump(CONFIG, open(os.path.join(work, "config.json"), "w"))
        hf = os.path.join(work, "hf")
        subprocess.run([taia, "init-model", "--config", os.path.join(work, "config.json"), "--out", hf, "--seed", "1",
                        "--std", "0.02"], check=True)
        vocab = os.path.join(work, "qwen-vocab.gguf")
        qwen_vocab_gguf(gguf, os.path.join(fixtures, "tokenizers", "qwen3", "tokenizer.json"), vocab)
        check_llamacpp.write_gguf(gguf, "qwen2", CONFIG, hf, vocab, f32)
    files = {}
    for t in TYPES:
        out = os.path.join(work, f"qwen05-{t.lower()}.gguf")
        if not os.path.exists(out):
            subprocess.run([os.path.join(llama_dir, "build", "bin", "llama-quantize"), f32, out, t], check=True,
                           capture_output=True)
        files[t] = out
    return files


def llama_bench(llama_dir, model, threads):
    r = subprocess.run([os.path.join(llama_dir, "build", "bin", "llama-bench"), "-m", model, "-p", "512", "-n", "128",
                        "-t", str(threads), "-r", "1", "-o", "json"], capture_output=True, text=True, check=True)
    rows = json.loads(r.stdout)
    pp = next(x["avg_ts"] for x in rows if x["n_prompt"] == 512)
    tg = next(x["avg_ts"] for x in rows if x["n_gen"] == 128)
    return pp, tg


def taia_bench(taia, model, threads):
    ids = ",".join(str(100 + (i * 7919) % 150000) for i in range(512))
    r = subprocess.run([taia, "generate", "-m", model, "--prompt-ids", ids, "-n", "128", "--ignore-eos",
                        "--temperature", "0", "--format", "json", "-t", str(threads)], capture_output=True, text=True,
                       check=True)
    g = json.loads(r.stdout)
    return g["prefill_tokens_per_s"], g["decode_tokens_per_s"]


def cpu_name():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"


def main():
    taia, fixtures, work = sys.argv[1:4]
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    threads = int(sys.argv[5]) if len(sys.argv) > 5 else 2
    llama_dir = os.environ["LLAMA_CPP_DIR"]
    os.makedirs(work, exist_ok=True)
    files = make_models(taia, fixtures, llama_dir, work)
    results = {t: {"llama": [], "taia": []} for t in TYPES}
    for _ in range(rounds):  # interleaved: each round runs every file in both tools
        for t, path in files.items():
            results[t]["llama"].append(llama_bench(llama_dir, path, threads))
            results[t]["taia"].append(taia_bench(taia, path, threads))
    print(f"CPU: {cpu_name()}, {threads} threads, {rounds} interleaved rounds (medians)\n")
    print("| file | size MB | llama.cpp prefill / decode tok/s | taia prefill / decode tok/s | taia / llama.cpp |")
    print("|---|---|---|---|---|")
    for t, path in files.items():
        lp, lt = (statistics.median(x[i] for x in results[t]["llama"]) for i in (0, 1))
        tp, tt = (statistics.median(x[i] for x in results[t]["taia"]) for i in (0, 1))
        print(f"| {t} | {os.path.getsize(path) / 1e6:.0f} | {lp:.0f} / {lt:.1f} | {tp:.0f} / {tt:.1f} | "
              f"{tp / lp:.2f}x / {tt / lt:.2f}x |")


if __name__ == "__main__":
    main()
