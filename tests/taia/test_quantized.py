"""A quantized GGUF base through the CLI (tests/data/quant/tiny-q4_k_m.gguf, made by llama.cpp's
llama-quantize: Q4_K and Q6_K weights): LoRA fine-tuning on the frozen quantized base (the loss
falls), generate in the modes, the TAIA gguf-lora export (the same logits back in taia), the gguf
export (unchanged tensors copied byte for byte, the merged ones re-quantized), the hf export
(BF16), inspect's bytes per type, and the refusals: full fine-tuning, --compute bf16, and
merging into quantized weights, each with its reason.

usage: python3 test_quantized.py TAIA_BINARY WORK_DIR
"""
import json
import os
import shutil
import struct
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, finish  # noqa: E402

TAIA, WORK = sys.argv[1:3]
MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "quant", "tiny-q4_k_m.gguf")
IDS = "1,17,200,3,45,99,128,5"


def taia(*args):
    return subprocess.run([TAIA, *args], capture_output=True, text=True, timeout=300)


def logits(*extra):
    out = os.path.join(WORK, "logits.f32")
    r = taia("forward", "-m", MODEL, "--prompt-ids", IDS, "-o", out, "--threads", "2", *extra)
    if r.returncode != 0:
        print(r.stderr)
        return None
    data = open(out, "rb").read()
    return struct.unpack(f"<{len(data) // 4}f", data)


def max_diff(a, b):
    return max(abs(x - y) for x, y in zip(a, b)) if a and b and len(a) == len(b) else float("inf")


shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
data = os.path.join(WORK, "data.jsonl")
with open(data, "w") as f:
    for i in range(16):
        f.write(json.dumps({"text": f"hello world number {i % 4} of the tiny model"}) + "\n")

r = taia("inspect", MODEL, "--format", "json")
rep = json.loads(r.stdout) if r.returncode == 0 else {}
check(set(rep.get("bytes_per_type", {})) == {"F32", "Q4_K", "Q6_K"} and not rep.get("problems"),
      "inspect: the types and bytes per type of a Q4_K_M file", rep.get("bytes_per_type"))

adapter = os.path.join(WORK, "adapter")
r = taia("train", "-m", MODEL, "--data", data, "-o", adapter, "--max-steps", "12", "--lr", "1e-2", "--batch-size",
         "4", "--max-length", "32", "--lora-dropout", "0.05", "--threads", "2")
losses = [json.loads(l)["loss"] for l in open(os.path.join(adapter, "metrics.jsonl"))] if r.returncode == 0 else []
check(len(losses) == 12 and losses[-1] < 0.5 * losses[0],
      f"LoRA on the quantized base: the loss falls ({losses[0] if losses else None} -> "
      f"{losses[-1] if losses else None})", r.stderr[-300:])

base, taia_l, vanilla = logits(), logits("--adapter", adapter, "--mode", "taia"), logits("--adapter", adapter)
check(base and taia_l and max_diff(base, taia_l) > 1e-3 and max_diff(logits("--adapter", adapter, "--mode", "base"),
                                                                        base) == 0,
      "modes run unmerged on the quantized base (base == no adapter, taia differs)")

gl = os.path.join(WORK, "taia.lora.gguf")
r = taia("export", "-m", MODEL, "--adapter", adapter, "--mode", "taia", "--format", "gguf-lora", "-o", gl)
back = logits("--adapter", gl, "--mode", "vanilla") if r.returncode == 0 else None
check(max_diff(back, taia_l) <= 1e-5, f"gguf-lora TAIA export read back gives the taia logits "
      f"(max |diff| {max_diff(back, taia_l):.1e})", r.stderr[-300:])

gm = os.path.join(WORK, "taia.gguf")
r = taia("export", "-m", MODEL, "--adapter", adapter, "--mode", "taia", "--format", "gguf", "-o", gm, "--json")
rep = json.loads(r.stdout) if r.returncode == 0 else {}
rewritten = rep.get("tensors_rewritten", {})
check(rep.get("tensors_copied") == 8 and sorted(rewritten) == [f"blk.0.attn_{p}.weight" for p in ("k", "output", "q", "v")]
      and all(v in ("Q4_K -> Q4_K", "Q6_K -> Q6_K") for v in rewritten.values()),
      "export gguf --mode taia: FFN, norms and embeddings copied byte for byte, the merged attention re-quantized "
      "to its own types", rep or r.stderr[-300:])
out = os.path.join(WORK, "exported.f32")
r2 = taia("forward", "-m", gm, "--prompt-ids", IDS, "-o", out, "--threads", "2")
exported = struct.unpack(f"<{os.path.getsize(out) // 4}f", open(out, "rb").read()) if r2.returncode == 0 else None
scale = max(abs(v) for v in taia_l) if taia_l else 1.0
check(max_diff(exported, taia_l) <= 0.25 * scale, f"the exported GGUF gives the taia logits within Q4_K's error "
      f"(max |diff| {max_diff(exported, taia_l):.3f}, max |logit| {scale:.2f})", r2.stderr[-300:])

hf = os.path.join(WORK, "hf")
r = taia("export", "-m", MODEL, "--adapter", adapter, "--mode", "taia", "--format", "hf", "-o", hf)
cfg = json.load(open(os.path.join(hf, "config.json"))) if r.returncode == 0 else {}
check(cfg.get("torch_dtype") == "bfloat16", "export hf of a quantized base writes BF16", r.stderr[-300:])

for args, needle, label in (
        (["train", "-m", MODEL, "--data", data, "-o", os.path.join(WORK, "full"), "--method", "full"],
         "holds quantized weights", "full fine-tuning of a quantized base is refused"),
        (["train", "-m", MODEL, "--data", data, "-o", os.path.join(WORK, "bf16"), "--compute", "bf16"],
         "--compute bf16 multiplies F32 or BF16", "--compute bf16 on a quantized base is refused"),
        (["forward", "-m", MODEL, "--prompt-ids", IDS, "--adapter", adapter, "--merge"],
         "merging into a quantized weight", "merging an adapter into quantized weights is refused")):
    r = taia(*args)
    check(r.returncode == 1 and needle in r.stderr, label, r.stderr[-300:])
finish()
