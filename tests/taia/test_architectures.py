"""Every architecture through the whole product, with the CLI as a user runs it: a tiny random
model of each (LLaMA, Qwen2, Mistral, Qwen3, Gemma 2, Gemma 3, Phi-3, Phi-4-mini, SmolLM3; each
with its quirks on)
made by init-model from an HF config.json with stories260K's 512-piece tokenizer, then inspect,
LoRA training on every projection, generate, eval (multiple choice and likelihood), the four
modes (unmerged == merged), merge (TAIA: FFN tensors bitwise the base's, attention tensors
W + s B A in double rounded once; for Phi-3 on the fused qkv_proj, with gate_up_proj untouched),
export peft (attention modules only, PEFT's module names) and gguf-lora (llama.cpp's names), and
full fine-tuning with a TAIA merge of it. SmolLM3 has no GGUF form (llama.cpp's snapshot has no
converter for it): its gguf-lora export must be refused by name.

usage: /usr/bin/python3 test_architectures.py TAIA_BINARY FIXTURES WORK_DIR
"""
import json
import os
import random
import shutil
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "parity"))
from check_gguf import read_gguf  # noqa: E402
from torch_reference import read_safetensors  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, finish, setup  # noqa: E402
from arch_configs import ARCHS, COMMON  # noqa: E402

TAIA, FIXTURES, WORK, _ = setup()
TOKENIZER = os.path.join(FIXTURES, "models", "stories260K", "tok512.model")
IDS = "1,403,407,261,378,432,383,286,300,17,99,45"

FUSED = ("phi3", "phi4_mini")  # qkv_proj and gate_up_proj
NO_GGUF = ("smollm3",)
# The feature inspect must name for each architecture.
FEATURES = {"mistral": "sliding_window", "qwen3": "qk_norm", "gemma2": "attn_softcap", "gemma3": "rope_local_theta",
            "phi3": "fused_projections", "phi4_mini": "partial_rotary", "smollm3": "nope_layers"}
ATTN = ("q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj")
FFN = ("gate_proj", "up_proj", "down_proj", "gate_up_proj")


def taia(*args):
    r = subprocess.run([TAIA, *args], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        print(f"$ taia {' '.join(args)}\n{r.stderr[-1500:]}")
    return r


def logits(model, *extra):
    out = os.path.join(WORK, "logits.f32")
    r = taia("forward", "-m", model, "--prompt-ids", IDS, "-o", out, "--threads", "2", *extra)
    return np.fromfile(out, dtype="<f4") if r.returncode == 0 else None


def module_of(name):
    """("self_attn.qkv_proj", True) for an HF tensor name of a projection, else (None, None)."""
    for p in ATTN + FFN:
        if f".{p}." in name:
            return p, p in ATTN
    return None, None


def check_taia_merge(arch, model, adapter, merged):
    B = read_safetensors(os.path.join(model, "model.safetensors"))
    M = read_safetensors(os.path.join(merged, "model.safetensors"))
    AD = read_safetensors(os.path.join(adapter, "adapter_model.safetensors"))
    cfg = json.load(open(os.path.join(adapter, "adapter_config.json")))
    scale = cfg["lora_alpha"] / cfg["r"]
    bad, seen = [], set()
    for name, w in B.items():
        proj, attn = module_of(name)
        wb, wm = w.numpy(), M[name].numpy()
        if proj is None or not attn or name.endswith(".bias"):
            if not np.array_equal(wb, wm):  # FFN, norms, embeddings, biases: bitwise the base's
                bad.append(name)
            continue
        seen.add(proj)
        key = "base_model.model." + name[:-len(".weight")]
        A = AD[key + ".lora_A.weight"].numpy().astype(np.float64)
        Bm = AD[key + ".lora_B.weight"].numpy().astype(np.float64)
        if not np.array_equal(wm, (wb.astype(np.float64) + scale * (Bm @ A)).astype(np.float32)):
            bad.append(name)
    want = {"qkv_proj", "o_proj"} if arch in FUSED else {"q_proj", "k_proj", "v_proj", "o_proj"}
    check(not bad and seen == want, f"{arch}: TAIA merge: FFN bitwise base, {'/'.join(sorted(want))} == W + s B A",
          (bad[:3], seen))


def check_gguf_lora(arch, model, gl, r, taia_logits):
    meta, T = read_gguf(gl) if r.returncode == 0 else ({}, {})
    stems = {n.split(".")[2] for n in T}
    want = {"attn_qkv", "attn_output"} if arch in FUSED else {"attn_q", "attn_k", "attn_v", "attn_output"}
    check(r.returncode == 0 and stems == want and len(T) == 2 * len(want) * COMMON["num_hidden_layers"],
          f"{arch}: export gguf-lora --mode taia: tensors {sorted(want)}", (sorted(stems), r.stderr[-200:]))
    via = logits(model, "--adapter", gl, "--mode", "vanilla")
    diff = float(np.abs(via - taia_logits).max()) if via is not None else 1.0
    check(diff <= 1e-5, f"{arch}: the GGUF LoRA back in taia gives the taia logits (max |diff| {diff:.1e})")


def run_arch(arch, overrides, data, mc_task):
    d = os.path.join(WORK, arch)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    cfg_path = os.path.join(d, "in_config.json")
    json.dump(dict(COMMON, **overrides), open(cfg_path, "w"))
    model = os.path.join(d, "model")
    r = taia("init-model", "--config", cfg_path, "--out", model, "--seed", "3", "--init", "full", "--std", "0.1")
    check(r.returncode == 0, f"{arch}: init-model from config.json", r.stderr[-300:])
    shutil.copy(TOKENIZER, os.path.join(model, "tokenizer.model"))

    r = taia("inspect", model, "--format", "json")
    rep = json.loads(r.stdout) if r.returncode == 0 else {}
    text = json.dumps(rep)
    check(r.returncode == 0 and overrides["model_type"] in text and FEATURES.get(arch, "") in text,
          f"{arch}: inspect names the architecture and its features", text[:300])

    adapter = os.path.join(d, "adapter")
    r = taia("train", "-m", model, "--data", data, "-o", adapter, "--max-steps", "4", "--lr", "1e-2",
             "--batch-size", "4", "--grad-accum", "1", "--lora-rank", "4", "--lora-alpha", "8", "--lora-dropout", "0.1",
             "--threads", "2")
    acfg = json.load(open(os.path.join(adapter, "adapter_config.json"))) if r.returncode == 0 else {}
    want = ["down_proj", "gate_up_proj", "o_proj", "qkv_proj"] if arch in FUSED else \
        sorted(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    check(r.returncode == 0 and sorted(acfg.get("target_modules", [])) == want,
          f"{arch}: LoRA training on every projection (PEFT target_modules {want})", acfg.get("target_modules"))

    r = taia("generate", "-m", model, "--adapter", adapter, "--mode", "taia", "--prompt", "Once upon a time", "-n", "6",
             "--temperature", "0", "--format", "json", "--threads", "2")
    gen = json.loads(r.stdout) if r.returncode == 0 else {}
    check(r.returncode == 0 and len(gen.get("tokens", gen.get("ids", [0] * 6))) > 0, f"{arch}: generate --mode taia",
          r.stdout[-200:])

    base = logits(model)
    per_mode = {}
    for mode in ("base", "vanilla", "taia", "taif"):
        un = logits(model, "--adapter", adapter, "--mode", mode)
        me = logits(model, "--adapter", adapter, "--mode", mode, "--merge")
        ok = un is not None and me is not None
        diff = float(np.abs(un - me).max()) if ok else 1.0
        changed = float(np.abs(un - base).max()) if ok else 0.0
        per_mode[mode] = un
        check(ok and diff <= 3e-5 and (changed == 0) == (mode == "base"),
              f"{arch}: mode {mode}: merged == unmerged (max |diff| {diff:.1e}), "
              f"{'equals' if mode == 'base' else 'differs from'} the base ({changed:.3f})", (diff, changed))

    merged = os.path.join(d, "merged_taia")
    r = taia("merge", "--base", model, "--adapter", adapter, "--mode", "taia", "-o", merged)
    if r.returncode == 0:
        check_taia_merge(arch, model, adapter, merged)
    else:
        check(False, f"{arch}: merge --mode taia", r.stderr[-300:])

    pe = os.path.join(d, "export_peft")
    r = taia("export", "-m", model, "--adapter", adapter, "--mode", "taia", "--format", "peft", "-o", pe)
    pcfg = json.load(open(os.path.join(pe, "adapter_config.json"))) if r.returncode == 0 else {}
    P = read_safetensors(os.path.join(pe, "adapter_model.safetensors")) if r.returncode == 0 else {}
    want = ["o_proj", "qkv_proj"] if arch in FUSED else ["k_proj", "o_proj", "q_proj", "v_proj"]
    check(sorted(pcfg.get("target_modules", [])) == want and P and all(module_of(k)[1] for k in P),
          f"{arch}: export peft --mode taia holds {want} only", (pcfg.get("target_modules"), sorted(P)[:2]))
    again = logits(model, "--adapter", pe, "--mode", "vanilla")
    check(again is not None and np.array_equal(again, per_mode["taia"]),
          f"{arch}: the exported TAIA adapter, run as vanilla, gives the taia logits")

    gl = os.path.join(d, "taia.lora.gguf")
    r = taia("export", "-m", model, "--adapter", adapter, "--mode", "taia", "--format", "gguf-lora", "-o", gl)
    if arch in NO_GGUF:
        check(r.returncode == 1 and overrides["architectures"][0] in r.stderr and not os.path.exists(gl),
              f"{arch}: export gguf-lora refused by name (no GGUF form), nothing written", r.stderr[-200:])
    else:
        check_gguf_lora(arch, model, gl, r, per_mode["taia"])

    run = os.path.join(d, "eval")
    r = taia("eval", "-m", model, "--adapter", adapter, "--tasks", mc_task, "--out", run, "--threads", "2")
    res = json.load(open(os.path.join(run, "results.json"))) if r.returncode == 0 else {}
    modes = set(next(iter(res.get("tasks", {}).values()), {}))
    check(modes == {"base", "vanilla", "taia", "taif"}, f"{arch}: eval runs the four modes", modes)

    full = os.path.join(d, "full")
    r = taia("train", "-m", model, "--data", data, "-o", full, "--method", "full", "--max-steps", "2", "--lr", "1e-3",
             "--batch-size", "4", "--grad-accum", "1", "--threads", "2")
    fm = os.path.join(d, "full_taia")
    r2 = taia("merge", "--base", model, "--finetuned", full, "--mode", "taia", "-o", fm, "--format", "json")
    prov = json.loads(r2.stdout)["provenance"] if r.returncode == 0 and r2.returncode == 0 else {}
    wrong = [n for n, src in prov.items() if module_of(n)[0] and src != ("finetuned" if module_of(n)[1] else "base")]
    check(prov and not wrong, f"{arch}: full fine-tuning, TAIA merge: attention fine-tuned, FFN base", wrong[:3])


def main():
    rng = random.Random(1)
    data = os.path.join(WORK, "data.jsonl")
    with open(data, "w") as f:
        for _ in range(16):
            n = rng.choice(["Lily", "Tom", "Sam"])
            f.write(json.dumps({"instruction": f"Who is {n}?", "output": f"{n} is a happy child."}) + "\n")
    mc_task = os.path.join(WORK, "mc.jsonl")
    with open(mc_task, "w") as f:
        f.write(json.dumps({"question": "Once upon a time, there was a little", "choices": ["girl", "car"],
                            "answer": 0}) + "\n")
        f.write(json.dumps({"question": "The sun is", "choices": ["cold", "hot"], "answer": 1}) + "\n")
    only = sys.argv[4].split(",") if len(sys.argv) > 4 else list(ARCHS)
    for arch in only:
        run_arch(arch, ARCHS[arch], data, mc_task)
    finish()


if __name__ == "__main__":
    main()
