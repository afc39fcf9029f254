"""`taia bench prefill|decode|train`: usage errors, and JSON whose numbers hang together and whose
work per token (bytes read per decode step, FLOPs per prefill token) equals what the model's
shapes give when counted here, independently of the library.

usage: python3 test_bench.py TAIA_BINARY WORK_DIR
"""
import json
import os
import shutil
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, finish  # noqa: E402

TAIA, WORK = sys.argv[1], sys.argv[2]
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)


def run(*args):
    return subprocess.run([TAIA, *args], capture_output=True, text=True, timeout=300)


def close(a, b, rel=1e-9):
    return abs(a - b) <= rel * max(abs(a), abs(b))


for kind in ("prefill", "decode", "train"):
    r = run("bench", kind, "--help")
    check(r.returncode == 0 and "--format" in r.stdout and "--preset" in r.stdout, f"bench {kind} --help", r.stderr)
for label, args in [("no kind", ["bench"]), ("neither model nor preset", ["bench", "decode"]),
                    ("both model and preset", ["bench", "decode", "-m", "x", "--preset", "llama-34m"]),
                    ("unknown preset", ["bench", "decode", "--preset", "gpt-5"]),
                    ("unknown dtype", ["bench", "decode", "--preset", "llama-34m", "--dtype", "q3"]),
                    ("zero rounds", ["bench", "prefill", "--preset", "llama-34m", "--rounds", "0"])]:
    r = run(*args)
    check(r.returncode == 2, f"usage error exits 2: {label}", f"exit {r.returncode} {r.stderr}")
r = run("bench", "decode", "-m", os.path.join(WORK, "missing.gguf"))
check(r.returncode == 1 and "missing.gguf" in r.stderr, "a missing model file exits 1 naming it", r.stderr)

# A small Qwen2 model (biases, grouped KV heads, tied embeddings) as an F32 HF folder.
cfg = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 96, "hidden_size": 64,
       "intermediate_size": 112, "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2,
       "max_position_embeddings": 256, "tie_word_embeddings": True}
json.dump(cfg, open(os.path.join(WORK, "config.json"), "w"))
model = os.path.join(WORK, "qwen")
r = run("init-model", "--config", os.path.join(WORK, "config.json"), "--out", model, "--seed", "3")
check(r.returncode == 0, "init-model", r.stderr)
D, I, V, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["num_hidden_layers"]
hd = D // cfg["num_attention_heads"]
Q, KV = D, cfg["num_key_value_heads"] * hd
proj = D * Q + 2 * D * KV + Q * D + 3 * D * I              # weight elements of one layer's projections
params = V * D + L * (proj + Q + 2 * KV + 2 * D) + D          # + q/k/v biases, two norms; final norm; tied head


def bench(*args):
    r = run("bench", *args, "--format", "json", "-t", "2")
    check(r.returncode == 0, f"bench {' '.join(args[:1])} runs", r.stderr)
    return json.loads(r.stdout) if r.returncode == 0 else None


def consistent(j, label):
    check(j["tokens_per_s"] == statistics.median(j["rounds_tokens_per_s"]), f"{label}: tokens/s is the median of rounds")
    work = j["gbytes_per_token"] if "gbytes_per_token" in j else j["gflop_per_token"]
    check(close(j["achieved"], j["tokens_per_s"] * work), f"{label}: achieved rate = tokens/s x work per token")
    check(close(j["bound_tokens_per_s"], j["ceiling"] / work), f"{label}: bound = ceiling / work per token")
    check(j["ceiling"] > 0 and j["tokens_per_s"] > 0 and j["threads"] == 2, f"{label}: positive rates, 2 threads")


for dtype, size in (("f32", 4), ("bf16", 2)):
    j = bench("decode", "-m", model, "--tokens", "20", "--depth", "10", "--rounds", "3", "--dtype", dtype)
    if j:
        consistent(j, f"decode {dtype}")
        check(len(j["rounds_tokens_per_s"]) == 3 and j["dtype"] == dtype.upper(), f"decode {dtype}: rounds and dtype")
        # Every weight read once in its storage (norms and biases stay F32), the tied embedding as
        # the head, and keys and values at the mean context (depth + tokens / 2) in the default
        # cache type, F16.
        check(j.get("kv_dtype") == "f16", f"decode {dtype}: the default cache type is f16", j.get("kv_dtype"))
        linear = V * D + L * proj
        expected = linear * size + (params - linear) * 4 + L * 2 * KV * 2 * (10 + 20 // 2)
        check(close(j["gbytes_per_token"], expected / 1e9), f"decode {dtype}: bytes per token from the shapes",
              f"{j['gbytes_per_token'] * 1e9} vs {expected}")
j = bench("decode", "-m", model, "--tokens", "8", "--rounds", "1", "--no-mmap")
check(j is not None and j["tokens_per_s"] > 0, "decode --no-mmap runs")
j = bench("prefill", "-m", model, "--prompt", "40", "--rounds", "2")
if j:
    consistent(j, "prefill")
    T = 40
    flops = L * (2 * T * proj + 2 * 2 * (T * (T + 1) / 2) * Q) + 2 * D * V
    check(close(j["gflop_per_token"], flops / T / 1e9), "prefill: FLOPs per token from the shapes",
          f"{j['gflop_per_token']} vs {flops / T / 1e9}")
for compute in ("f32", "bf16"):
    j = bench("train", "-m", model, "--batch", "2", "--seq", "32", "--rank", "4", "--rounds", "2", "--compute", compute)
    if j:
        consistent(j, f"train {compute}")
        tok = 2 * 32
        lora = 4 * ((D + Q) + 2 * (D + KV) + (Q + D) + 2 * (D + I) + (I + D))
        fwd = L * (2 * tok * (proj + lora) + 2 * 2 * 2 * 32 * 32 * Q) + 2 * tok * D * V
        check(close(j["gflop_per_token"], 2 * fwd / tok / 1e9), f"train {compute}: FLOPs per token (the peer's formula)")
        check("profile" not in j, f"train {compute}: no profile unless asked")
j = bench("train", "-m", model, "--batch", "2", "--seq", "32", "--rank", "4", "--rounds", "2", "--profile")
if j:
    phases = {p["phase"]: p for p in j["profile"]}
    check(set(phases) == {"base GEMMs", "LoRA branches", "attention + RoPE", "RMSNorm", "SwiGLU, copies, embedding",
                          "LM head + loss", "widening weight tiles", "optimizer (zero grads, AdamW)", "other"}, "train --profile: every phase",
          sorted(phases))
    check(all(p["ms_per_step"] >= 0 and 0 <= p["share"] <= 1 for p in j["profile"]), "train --profile: times >= 0",
          j["profile"])
    check(all(phases[k]["ms_per_step"] > 0 for k in ("base GEMMs", "LoRA branches", "attention + RoPE",
                                                     "LM head + loss", "optimizer (zero grads, AdamW)")),
          "train --profile: the phases a LoRA step runs took time", j["profile"])
    # "other" is the step's wall time no phase covers, so the shares add up to the whole step.
    check(abs(sum(p["share"] for p in j["profile"]) - 1) < 1e-6, "train --profile: shares add up to the step",
          j["profile"])
    # The phases are timed inside the same steps the rates come from: their sum ("other" the
    # remainder, never negative) is the timed steps' mean wall time, however loaded the machine (a
    # phase counted twice would push it above). Not the median's step: one slow round moves the mean.
    mean_step_ms = statistics.mean(1e3 * 2 * 32 / r for r in j["rounds_tokens_per_s"])
    check(abs(sum(p["ms_per_step"] for p in j["profile"]) - mean_step_ms) <= 1e-6 * mean_step_ms,
          "train --profile: the phases fit in the steps' time", (mean_step_ms, j["profile"]))
j = bench("prefill", "--preset", "llama-34m", "--prompt", "16", "--rounds", "1", "--dtype", "bf16")
if j:
    check(j["model"].startswith("llama-34m") and j["dtype"] == "BF16", "a preset in the asked dtype", str(j))
quant = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "quant", "tiny-q8_0.gguf")
if os.path.exists(quant):
    r = run("bench", "train", "-m", quant, "--compute", "bf16", "--rounds", "1")
    check(r.returncode == 1 and "block-quantized" in r.stderr, "train --compute bf16 on a quantized base is refused",
          r.stderr)
    j = bench("train", "-m", quant, "--batch", "2", "--seq", "32", "--rank", "4", "--rounds", "1", "--profile")
    if j:
        phases = {p["phase"]: p["ms_per_step"] for p in j["profile"]}
        check(phases["widening weight tiles"] > 0 and phases["base GEMMs"] > 0,
              "train --profile on a Q8_0 base: the tiles' widening timed apart from the GEMMs", j["profile"])
r = run("bench", "decode", "-m", model, "--compute", "bf16", "--rounds", "1")
check(r.returncode == 1 and "--compute bf16" in r.stderr and "model.embed_tokens.weight" in r.stderr,
      "--compute bf16 on F32 weights is refused naming a tensor", r.stderr)
j = bench("prefill", "-m", model, "--dtype", "bf16", "--compute", "bf16", "--prompt", "40", "--rounds", "1")
if j:
    check(j["compute"] == "bf16" and j["dtype"] == "BF16", "prefill --compute bf16 on BF16 weights", str(j))
r = run("bench", "decode", "-m", model, "--tokens", "300", "--rounds", "1")
check(r.returncode == 1 and "max_position" in r.stderr, "decoding past max_position_embeddings is refused", r.stderr)

finish()
