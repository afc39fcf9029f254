"""TAIA inference modes and merging, end to end on stories260K:
- unmerged and merged modes give the same logits (max abs diff <= 3e-5, F32: the merged weight W + s B A is rounded once, the unmerged path rounds W x and s B A x separately);
- base mode is the base model; taia with an FFN-only adapter is the base model;
- `taia merge --adapter`: every gate/up/down tensor is bitwise the base's and every q/k/v/o tensor
  equals W + scale * B A computed in double precision, rounded once to F32;
- `taia merge --finetuned`: module-by-module provenance (attention fine-tuned, FFN base,
  embeddings/norms fine-tuned unless --revert);
- `taia analyze`: an FFN-only adapter leaves layer 0's attention output alone, an empty merge moves
  nothing, a merged model moves as its adapter unmerged.

usage: /usr/bin/python3 test_modes.py TAIA_BINARY FIXTURES WORK_DIR
"""
import json
import os
import random
import re
import shutil
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "parity"))
from check_gguf import read_gguf  # noqa: E402
from torch_reference import read_safetensors  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, finish, setup  # noqa: E402

TAIA, FIXTURES, WORK, MODEL = setup()
IDS = "1,403,407,261,378,432,383,286"


def taia(*args):
    r = subprocess.run([TAIA, *args], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        print(r.stderr)
    return r


def logits(*extra):
    out = os.path.join(WORK, "logits.f32")
    r = taia("forward", "-m", MODEL, "--prompt-ids", IDS, "-o", out, "--threads", "2", *extra)
    return np.fromfile(out, dtype="<f4") if r.returncode == 0 else None


rng = random.Random(1)
with open(os.path.join(WORK, "data.jsonl"), "w") as f:
    for _ in range(32):
        n = rng.choice(["Lily", "Tom", "Sam"])
        f.write(json.dumps({"instruction": f"Who is {n}?", "output": f"{n} is a happy child who likes to play."}) + "\n")
data = os.path.join(WORK, "data.jsonl")
adapter = os.path.join(WORK, "adapter")
taia("train", "-m", MODEL, "--data", data, "-o", adapter, "--max-steps", "6", "--lr", "1e-2", "--batch-size", "4",
     "--grad-accum", "1", "--lora-rank", "4", "--lora-alpha", "8", "--lora-dropout", "0")
ffn_adapter = os.path.join(WORK, "ffn_adapter")
taia("train", "-m", MODEL, "--data", data, "-o", ffn_adapter, "--max-steps", "3", "--lr", "1e-2", "--batch-size", "4",
     "--grad-accum", "1", "--targets", "ffn")

base = logits()
check(base is not None, "base forward")
for mode in ("base", "vanilla", "taia", "taif"):
    un = logits("--adapter", adapter, "--mode", mode)
    me = logits("--adapter", adapter, "--mode", mode, "--merge")
    diff = float(np.abs(un - me).max())
    check(diff <= 3e-5, f"{mode}: merged == unmerged logits (max |diff| {diff:.2e})", diff)
    changed = float(np.abs(un - base).max())
    check((changed == 0) == (mode == "base"), f"{mode}: {'equals' if mode == 'base' else 'differs from'} the base "
          f"(max |diff| {changed:.3f})", changed)
taia_l, vanilla_l = logits("--adapter", adapter, "--mode", "taia"), logits("--adapter", adapter, "--mode", "vanilla")
check(float(np.abs(taia_l - vanilla_l).max()) > 1e-3, "taia differs from vanilla")
q_only = logits("--adapter", adapter, "--modules", "q,k,v,o")
check(np.array_equal(q_only, taia_l), "--modules q,k,v,o is taia")
check(np.array_equal(logits("--adapter", ffn_adapter, "--mode", "taia"), base),
      "taia with an FFN-only adapter is exactly the base")

# Merged folders: FFN bitwise base, attention = W + s B A in double, rounded once.
base_dir, taia_dir, taif_dir, van_dir = (os.path.join(WORK, n) for n in ("m_base", "m_taia", "m_taif", "m_vanilla"))
for d, mode in ((base_dir, "base"), (taia_dir, "taia"), (taif_dir, "taif"), (van_dir, "vanilla")):
    r = taia("merge", "--base", MODEL, "--adapter", adapter, "--mode", mode, "-o", d, "--format", "json")
    check(r.returncode == 0, f"merge --mode {mode}", r.stderr)
B = read_safetensors(os.path.join(base_dir, "model.safetensors"))
Tm = read_safetensors(os.path.join(taia_dir, "model.safetensors"))
Fm = read_safetensors(os.path.join(taif_dir, "model.safetensors"))
Vm = read_safetensors(os.path.join(van_dir, "model.safetensors"))
AD = read_safetensors(os.path.join(adapter, "adapter_model.safetensors"))
cfg = json.load(open(os.path.join(adapter, "adapter_config.json")))
scale = cfg["lora_alpha"] / cfg["r"]
bad_ffn, bad_attn, bad_other, bad_vanilla = [], [], [], []
for name, w in B.items():
    wb, wt, wf = w.numpy(), Tm[name].numpy(), Fm[name].numpy()
    proj = next((p for p in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
                 if f".{p}." in name), None)
    if proj is None:
        if not (np.array_equal(wb, wt) and np.array_equal(wb, wf)):
            bad_other.append(name)
        continue
    key = "base_model.model." + name[:-len(".weight")]
    A = AD[key + ".lora_A.weight"].numpy().astype(np.float64)
    Bm = AD[key + ".lora_B.weight"].numpy().astype(np.float64)
    merged = (wb.astype(np.float64) + scale * (Bm @ A)).astype(np.float32)
    attn = proj in ("q_proj", "k_proj", "v_proj", "o_proj")
    if not np.array_equal(Vm[name].numpy(), merged):
        bad_vanilla.append(name)
    if attn:
        if not np.array_equal(wt, merged) or not np.array_equal(wf, wb):
            bad_attn.append(name)
    else:
        if not np.array_equal(wt, wb) or not np.array_equal(wf, merged):
            bad_ffn.append(name)
check(not bad_attn, "taia export: q/k/v/o == W + s B A (double, rounded once); taif keeps them base", bad_attn[:3])
check(not bad_ffn, "taia export: gate/up/down bitwise base; taif merges them", bad_ffn[:3])
check(not bad_other, "embeddings and norms untouched by adapter merges", bad_other[:3])
check(not bad_vanilla, "vanilla export merges every module", bad_vanilla[:3])

# Adapter / base mismatches are named.
other_cfg = os.path.join(WORK, "other_config.json")
json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 512, "hidden_size": 32,
           "intermediate_size": 64, "num_hidden_layers": 5, "num_attention_heads": 4, "num_key_value_heads": 2,
           "max_position_embeddings": 64}, open(other_cfg, "w"))
other = os.path.join(WORK, "other_model")
taia("init-model", "--config", other_cfg, "--out", other)
r = subprocess.run([TAIA, "forward", "-m", other, "--prompt-ids", "1,2", "--adapter", adapter], capture_output=True,
                   text=True)
check(r.returncode == 1 and "expected shape" in r.stderr and "adapter_model.safetensors" in r.stderr,
      "an adapter for another hidden size is refused, naming the tensor and shapes", r.stderr[-300:])
json.dump(dict(json.load(open(other_cfg)), hidden_size=64, intermediate_size=172, num_attention_heads=8,
               num_key_value_heads=4, num_hidden_layers=3), open(other_cfg, "w"))
shallow = os.path.join(WORK, "shallow_model")
taia("init-model", "--config", other_cfg, "--out", shallow)
r = subprocess.run([TAIA, "forward", "-m", shallow, "--prompt-ids", "1,2", "--adapter", adapter], capture_output=True,
                   text=True)
check(r.returncode == 1 and "matches no adapted module" in r.stderr and "3 layers" in r.stderr,
      "an adapter with more layers than the model is refused", r.stderr[-300:])

# Full fine-tuning merge: provenance and bitwise sources.
full = os.path.join(WORK, "full")
taia("train", "-m", MODEL, "--data", data, "-o", full, "--method", "full", "--max-steps", "3", "--lr", "1e-3",
     "--batch-size", "4", "--grad-accum", "1")
for revert in ("", "embeddings,norms"):
    out = os.path.join(WORK, "full_taia" + ("_revert" if revert else ""))
    args = ["merge", "--base", MODEL, "--finetuned", full, "--mode", "taia", "-o", out, "--format", "json"]
    r = taia(*args, *(["--revert", revert] if revert else []))
    prov = json.loads(r.stdout)["provenance"] if r.returncode == 0 else {}
    M = read_safetensors(os.path.join(out, "model.safetensors"))
    FT = read_safetensors(os.path.join(full, "model.safetensors"))
    wrong = []
    for name, src in prov.items():
        attn = any(f".{p}." in name for p in ("q_proj", "k_proj", "v_proj", "o_proj"))
        ffn = any(f".{p}." in name for p in ("gate_proj", "up_proj", "down_proj"))
        reverted = bool(revert) and ("norm" in name or name == "model.embed_tokens.weight")
        want = "finetuned" if attn else "base" if ffn or reverted else "finetuned"
        ref = (FT if want == "finetuned" else B)[name].numpy()
        if src != want or not np.array_equal(M[name].numpy(), ref):
            wrong.append((name, src, want))
    check(r.returncode == 0 and len(prov) == len(B) and not wrong,
          f"full fine-tuning merge, revert '{revert}': provenance and bitwise sources", wrong[:3] or r.stderr)

# inspect ADAPTER: per-module update norms ||s B A||_F, per layer attention vs FFN.
r = taia("inspect", adapter, "--format", "json")
rep = json.loads(r.stdout) if r.returncode == 0 else {}
mods = {m["module"]: m for m in rep.get("modules", [])}
key = "model.layers.2.mlp.up_proj"
A = AD[f"base_model.model.{key}.lora_A.weight"].numpy().astype(np.float64)
Bm = AD[f"base_model.model.{key}.lora_B.weight"].numpy().astype(np.float64)
want = scale * np.linalg.norm(Bm @ A)
check(len(mods) == 35 and key in mods and abs(mods[key]["update_norm"] - want) < 1e-6 * max(1.0, want)
      and mods[key]["rank"] == 4 and len(rep.get("layers", [])) == 5,
      "inspect ADAPTER: modules, ranks and ||s B A|| per module", (len(mods), mods.get(key), want))
r = taia("inspect", ffn_adapter, "--format", "json")
layers = json.loads(r.stdout)["layers"] if r.returncode == 0 else []
check(layers and all(l["attention_update_norm"] == 0 and l["ffn_update_norm"] > 0 for l in layers),
      "inspect: an FFN-only adapter changes no attention", layers[:2])

# export: hf == merge; peft holds the selected modules only and reloads to the same logits.
hf = os.path.join(WORK, "export_hf")
r = taia("export", "-m", MODEL, "--adapter", adapter, "--mode", "taia", "--format", "hf", "-o", hf, "--json")
check(r.returncode == 0 and json.loads(r.stdout)["modules"] == 20, "export --format hf", r.stderr)
H = read_safetensors(os.path.join(hf, "model.safetensors"))
check(all(np.array_equal(H[n].numpy(), Tm[n].numpy()) for n in Tm), "hf export equals taia merge, tensor by tensor")
pe = os.path.join(WORK, "export_peft")
r = taia("export", "-m", MODEL, "--adapter", adapter, "--mode", "taia", "--format", "peft", "-o", pe, "--json")
P = read_safetensors(os.path.join(pe, "adapter_model.safetensors")) if r.returncode == 0 else {}
pcfg = json.load(open(os.path.join(pe, "adapter_config.json"))) if r.returncode == 0 else {}
check(len(P) == 40 and all(any(f".{p}." in k for p in ("q_proj", "k_proj", "v_proj", "o_proj")) for k in P)
      and sorted(pcfg.get("target_modules", [])) == ["k_proj", "o_proj", "q_proj", "v_proj"],
      "peft export holds the attention modules only", (len(P), pcfg.get("target_modules")))
check(np.array_equal(logits("--adapter", pe, "--mode", "vanilla"), taia_l),
      "the exported PEFT adapter run as vanilla gives the TAIA logits")

# gguf-lora: names, ggml shapes and alpha read back by an independent GGUF reader; applied to the
# GGUF base (un-permuting Q/K rows of lora_b) it gives the TAIA logits.
gl = os.path.join(WORK, "taia.lora.gguf")
r = taia("export", "-m", MODEL, "--adapter", adapter, "--mode", "taia", "--format", "gguf-lora", "-o", gl)
meta, T = read_gguf(gl) if r.returncode == 0 else ({}, {})
LORA_NAME = re.compile(r"^blk\.[0-4]\.attn_(q|k|v|output)\.weight\.lora_[ab]$")
names_ok = len(T) == 40 and all(LORA_NAME.match(n) for n in T)
shapes_ok = all(tuple(T[f"blk.0.{p}.weight.lora_a"].shape) == (4, 64) for p in ("attn_q", "attn_k", "attn_v", "attn_output")) \
    and tuple(T["blk.0.attn_k.weight.lora_b"].shape) == (32, 4) if T else False
check(r.returncode == 0 and meta.get("general.type") == "adapter" and meta.get("adapter.type") == "lora" and
      meta.get("general.architecture") == "llama" and meta.get("adapter.lora.alpha") == 1.0 and names_ok and shapes_ok,
      "gguf-lora export: metadata, names and shapes", (r.stderr, sorted(T)[:3], meta.get("adapter.lora.alpha")))
via_gguf = logits("--adapter", gl, "--mode", "vanilla")
diff = float(np.abs(via_gguf - taia_l).max()) if via_gguf is not None else 1.0
check(diff <= 1e-5, f"the GGUF LoRA on the GGUF base gives the TAIA logits (max |diff| {diff:.2e})", diff)

# gguf: the merged TAIA model as a GGUF (base metadata and tokenizer carried over) loads to the TAIA logits.
gm = os.path.join(WORK, "taia.gguf")
r = taia("export", "-m", MODEL, "--adapter", adapter, "--mode", "taia", "--format", "gguf", "-o", gm)
meta2, T2 = read_gguf(gm) if r.returncode == 0 else ({}, {})
out = os.path.join(WORK, "gguf_logits.f32")
r2 = taia("forward", "-m", gm, "--prompt-ids", IDS, "-o", out, "--threads", "2")
diff = float(np.abs(np.fromfile(out, dtype="<f4") - taia_l).max()) if r2.returncode == 0 else 1.0
check(len(T2) == 48 and len(meta2.get("tokenizer.ggml.tokens", [])) == 512 and diff <= 1e-5,
      f"gguf export: merged TAIA model with the base's metadata (max |diff| {diff:.2e})", (len(T2), r.stderr, r2.stderr))

# A llama.cpp GGUF LoRA is an adapter like a PEFT folder for merge and export: from the GGUF LoRA
# exported from `adapter` (rank 4, alpha 8: llama.cpp's alpha 1 with B scaled by alpha, exact in
# F32), merge and export hf give the PEFT adapter's tensors bit for bit, and export peft writes a
# PEFT adapter whose alpha / r reproduces the scales (merged again: the same tensors).
gl_all = os.path.join(WORK, "vanilla.lora.gguf")
taia("export", "-m", MODEL, "--adapter", adapter, "--mode", "vanilla", "--format", "gguf-lora", "-o", gl_all)
from_gguf = os.path.join(WORK, "m_taia_from_gguf_lora")
r = taia("merge", "--base", MODEL, "--adapter", gl_all, "--mode", "taia", "-o", from_gguf)
G = read_safetensors(os.path.join(from_gguf, "model.safetensors")) if r.returncode == 0 else {}
check(len(G) == len(Tm) and all(np.array_equal(G[n].numpy(), Tm[n].numpy()) for n in Tm),
      "merge --adapter GGUF-LoRA: the PEFT adapter's merged tensors, bit for bit", r.stderr[-300:])
hf_gguf = os.path.join(WORK, "export_hf_from_gguf_lora")
r = taia("export", "-m", MODEL, "--adapter", gl_all, "--mode", "taia", "--format", "hf", "-o", hf_gguf, "--json")
G = read_safetensors(os.path.join(hf_gguf, "model.safetensors")) if r.returncode == 0 else {}
check(r.returncode == 0 and json.loads(r.stdout)["modules"] == 20 and
      all(np.array_equal(G[n].numpy(), Tm[n].numpy()) for n in Tm),
      "export --format hf --adapter GGUF-LoRA: the PEFT adapter's merged tensors", r.stderr[-300:])
pe_gguf = os.path.join(WORK, "export_peft_from_gguf_lora")
r = taia("export", "-m", MODEL, "--adapter", gl_all, "--mode", "taia", "--format", "peft", "-o", pe_gguf)
remerged = os.path.join(WORK, "m_from_peft_from_gguf_lora")
r2 = taia("merge", "--base", MODEL, "--adapter", pe_gguf, "--mode", "vanilla", "-o", remerged)
G = read_safetensors(os.path.join(remerged, "model.safetensors")) if r2.returncode == 0 else {}
check(r.returncode == 0 and all(np.array_equal(G[n].numpy(), Tm[n].numpy()) for n in Tm),
      "export --format peft --adapter GGUF-LoRA: a PEFT adapter with the same effective updates",
      r.stderr[-300:] + r2.stderr[-300:])

# A merged folder is complete (tokenizer files, generation config): eval and generate run on it as
# they do on its base. The HF base: stories260K as a folder with its SentencePiece model.
hf_base = os.path.join(WORK, "hf_base")
taia("merge", "--base", MODEL, "--adapter", adapter, "--mode", "base", "-o", hf_base)
shutil.copy(os.path.join(FIXTURES, "models", "stories260K", "tok512.model"), os.path.join(hf_base, "tokenizer.model"))
merged_base, merged_taia = os.path.join(WORK, "merged_base"), os.path.join(WORK, "merged_taia")
for d, mode in ((merged_base, "base"), (merged_taia, "taia")):
    r = taia("merge", "--base", hf_base, "--adapter", adapter, "--mode", mode, "-o", d)
    check(r.returncode == 0 and all(os.path.exists(os.path.join(d, f)) for f in
                                    ("config.json", "model.safetensors", "tokenizer.model", "generation_config.json")),
          f"merge --mode {mode} of an HF base writes the tokenizer and generation config", os.listdir(d))
gen = json.load(open(os.path.join(merged_base, "generation_config.json")))
check(gen.get("bos_token_id") == 1 and gen.get("eos_token_id") == 2, "generation_config.json holds BOS / EOS", gen)


def generate(model, *extra):
    r = taia("generate", "-m", model, "--prompt", "Once upon a time", "-n", "12", "--temperature", "0",
             "--format", "json", *extra)
    return json.loads(r.stdout)["output_ids"] if r.returncode == 0 else r.stderr[-300:]


def eval_values(model, name, *extra):
    out = os.path.join(WORK, "eval_" + name)
    r = taia("eval", "-m", model, "--tasks", os.path.join(os.path.dirname(__file__), "..", "eval", "tasks",
             "generic_mc.jsonl"), "--limit", "4", "-o", out, *extra)
    if r.returncode != 0:
        return r.stderr[-300:]
    res = json.load(open(os.path.join(out, "results.json")))["tasks"]
    return {t: {m: e["value"] for m, e in modes.items()} for t, modes in res.items()}


check(generate(merged_base) == generate(hf_base) and isinstance(generate(hf_base), list),
      "generate --prompt on the merged (base) folder: the base's output", (generate(merged_base), generate(hf_base)))
check(isinstance(generate(merged_taia), list), "generate --prompt on the merged TAIA folder runs", generate(merged_taia))
base_eval = eval_values(hf_base, "base")
check(isinstance(base_eval, dict) and eval_values(merged_base, "merged_base") == base_eval,
      "eval on the merged (base) folder: the base's scores", (base_eval, eval_values(merged_base, "merged_base")))
taia_eval = eval_values(merged_taia, "merged_taia")
check(isinstance(taia_eval, dict), "eval on the merged TAIA folder runs", taia_eval)

r = taia("forward", "-m", MODEL, "--prompt-ids", "1", "--mode", "taia")
check(r.returncode == 2, "--mode without --adapter is a usage error", r.returncode)


# `taia analyze`: where the update goes, for an adapter (in a mode) and for a fine-tuned model.
def analyze(path, *extra):
    r = taia("analyze", path, "-m", MODEL, "--data", data, "--format", "json", *extra)
    return json.loads(r.stdout) if r.returncode == 0 else None


ffn = analyze(ffn_adapter)
check(ffn is not None and ffn["drift"]["layers"][0]["attention"]["relative_change"] == 0 and
      ffn["drift"]["layers"][0]["ffn"]["relative_change"] > 0 and ffn["drift"]["tokens"] > 0,
      "analyze: an FFN-only adapter leaves the first layer's attention output unchanged and moves its FFN's",
      ffn and ffn["drift"]["layers"][0])
taia_mode = analyze(adapter, "--mode", "taia")
check(taia_mode is not None and taia_mode["mode"] == "taia" and all(
      lay["attention"]["relative_change"] > 0 for lay in taia_mode["drift"]["layers"]) and len(taia_mode["modules"]) > 0,
      "analyze --mode taia: every layer's attention output moves; update norms per module listed",
      taia_mode and taia_mode["drift"]["layers"][:1])
none = analyze(merged_base)
check(none is not None and none["kind"] == "finetuned" and all(
      lay["attention"]["relative_change"] == 0 and lay["ffn"]["relative_change"] == 0 for lay in none["drift"]["layers"])
      and all(m["update_norm"] == 0 for m in none["modules"]),
      "analyze of the base merged with nothing (mode base): nothing moves", none and none["drift"]["layers"][:1])
merged_vanilla = os.path.join(WORK, "merged_vanilla")
taia("merge", "--base", MODEL, "--adapter", adapter, "--mode", "vanilla", "-o", merged_vanilla)
fv, av = analyze(merged_vanilla), analyze(adapter)
check(fv is not None and av is not None and all(
      abs(a["ffn"]["relative_change"] - b["ffn"]["relative_change"]) < 1e-3 * max(1e-3, b["ffn"]["relative_change"]) + 1e-5
      for a, b in zip(fv["drift"]["layers"], av["drift"]["layers"])),
      "analyze: the merged vanilla model moves as the adapter applied unmerged", None)
# --neurons: per mode and layer the FFN neurons that moved most. TAIF's first layer sees the base's
# attention output, TAIA's its own; with the FFN-only adapter TAIA (attention only) moves no neuron.
nv = analyze(adapter, "--neurons", "4")
check(nv is not None and set(nv["neurons"]) == {"vanilla", "taia", "taif"} and all(
      len(lay["neurons"]) == 4 and lay["neurons"][0]["rms_change"] >= lay["neurons"][-1]["rms_change"] > 0
      for lay in nv["neurons"]["vanilla"]["layers"]), "analyze --neurons 4: four neurons per layer and mode, largest "
      "first", nv and nv["neurons"]["vanilla"]["layers"][:1])
nf = analyze(ffn_adapter, "--neurons", "2", "--mode", "taia")
check(nf is not None and list(nf["neurons"]) == ["taia"] and all(
      lay["rms_change"] == 0 for lay in nf["neurons"]["taia"]["layers"]),
      "analyze --neurons --mode taia of an FFN-only adapter: no neuron moves", nf and nf["neurons"])
nm = analyze(merged_vanilla, "--neurons", "2")
check(nm is not None and list(nm["neurons"]) == ["finetuned"] and abs(
      nm["neurons"]["finetuned"]["layers"][0]["rms_change"] - nv["neurons"]["vanilla"]["layers"][0]["rms_change"]) <=
      1e-3 * nv["neurons"]["vanilla"]["layers"][0]["rms_change"] + 1e-6,
      "analyze --neurons on the merged vanilla model: its first layer's neurons move as the adapter's", nm and nm["neurons"])
r = taia("analyze", merged_vanilla, "-m", MODEL, "--data", data, "--mode", "taia")
check(r.returncode == 2 and "fine-tuned model" in r.stderr, "analyze: --mode with a fine-tuned model is a usage error",
      r.stderr[-200:])
finish()
