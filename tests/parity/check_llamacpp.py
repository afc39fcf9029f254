"""taia against llama.cpp on the same GGUF files: for the architectures the llama.cpp snapshot
implements (llama, qwen2, gemma2, phi3), a tiny random model is written as GGUF with llama.cpp's
own gguf-py (the metadata and tensor layout its convert_hf_to_gguf.py writes: LLaMA's Q/K rows
permuted, Gemma's norms stored as 1 + weight, Phi-3's fused attn_qkv / ffn_up, its window and
LongRoPE factors) over a real vocabulary, then
- `taia forward` on the GGUF gives the logits of the PyTorch reference on the HF folder (<= 1e-4;
  also for qwen3 and gemma3, which the snapshot does not run, in the layout later llama.cpp
  writes);
- `llama-cli --temp 0` and `taia generate --temperature 0` continue a prompt with the same text;
- perplexity with llama.cpp's windows within 1 % of llama-perplexity's on the quantized trained
  fixture (tests/data/quant);
- a LoRA trained by taia on that GGUF and exported with `--format gguf-lora --mode taia` loads in
  llama-cli (`--lora`) and gives there the continuation taia gives with it.

Needs a built llama.cpp: LLAMA_CPP_DIR (its source tree, with build/bin/llama-cli and gguf-py).
Exits 77 (skipped) without it.

usage: /usr/bin/python3 check_llamacpp.py TAIA_BINARY FIXTURES WORK_DIR
"""
import json
import os
import re
import shutil
import subprocess
import sys
import types

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_reference import read_safetensors  # noqa: E402

PROMPT = "Once upon a time, there was a little girl"
N_NEW = 24


def load_gguf_py(llama_dir):
    # gguf-py's package imports sentencepiece for its vocabulary helpers, which writing does not
    # use: a stand-in module lets it import without the package installed.
    sys.modules.setdefault("sentencepiece", types.SimpleNamespace(SentencePieceProcessor=None))
    sys.path.insert(0, os.path.join(llama_dir, "gguf-py"))
    import gguf  # noqa: E402
    return gguf


def copy_vocab(gguf, writer, vocab_path):
    r = gguf.GGUFReader(vocab_path)
    f = r.fields
    def strings(key):
        return [bytes(f[key].parts[i]).decode("utf-8") for i in f[key].data]
    def numbers(key):
        return [f[key].parts[i][0].item() for i in f[key].data]
    def scalar(key):
        return f[key].parts[f[key].data[0]][0].item()
    def string(key):
        return bytes(f[key].parts[f[key].data[0]]).decode()
    writer.add_tokenizer_model(string("tokenizer.ggml.model"))
    if "tokenizer.ggml.pre" in f:
        writer.add_tokenizer_pre(string("tokenizer.ggml.pre"))
    writer.add_token_list(strings("tokenizer.ggml.tokens"))
    if "tokenizer.ggml.scores" in f:  # SentencePiece vocabularies
        writer.add_token_scores(numbers("tokenizer.ggml.scores"))
    if "tokenizer.ggml.merges" in f:  # BPE vocabularies
        writer.add_token_merges(strings("tokenizer.ggml.merges"))
    writer.add_token_types(numbers("tokenizer.ggml.token_type"))
    writer.add_bos_token_id(scalar("tokenizer.ggml.bos_token_id"))
    writer.add_eos_token_id(scalar("tokenizer.ggml.eos_token_id"))
    if "tokenizer.ggml.unknown_token_id" in f:
        writer.add_unk_token_id(scalar("tokenizer.ggml.unknown_token_id"))
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    return len(f["tokenizer.ggml.tokens"].data)


def permute(w, n_head):
    """convert_hf_to_gguf.py's LlamaModel.permute: rotary halves -> interleaved pairs per head."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(gguf, arch, cfg, model_dir, vocab_path, out):
    W = {k: v.numpy() for k, v in read_safetensors(os.path.join(model_dir, "model.safetensors")).items()}
    w = gguf.GGUFWriter(out, arch)
    copy_vocab(gguf, w, vocab_path)
    H, KV, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["hidden_size"]
    hd = cfg.get("head_dim", D // H)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(D)
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(H)
    w.add_head_count_kv(KV)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    if arch in ("llama", "qwen2", "qwen3"):
        w.add_rope_freq_base(cfg.get("rope_theta", 10000.0))
        if "head_dim" in cfg:
            w.add_key_length(hd)
            w.add_value_length(hd)
    elif arch in ("gemma2", "gemma3"):
        w.add_key_length(hd)
        w.add_value_length(hd)
        w.add_sliding_window(cfg["sliding_window"])
    if arch == "gemma2":
        w.add_attn_logit_softcapping(cfg["attn_logit_softcapping"])
        w.add_final_logit_softcapping(cfg["final_logit_softcapping"])
    elif arch == "gemma3":
        w.add_rope_freq_base(cfg["rope_theta"])
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(cfg["rope_scaling"]["factor"])
    elif arch == "phi3":
        w.add_rope_freq_base(cfg.get("rope_theta", 10000.0))
        w.add_rope_dimension_count(int(hd * cfg.get("partial_rotary_factor", 1.0)))
        w.add_sliding_window(cfg["sliding_window"])
    if arch == "phi3" and "rope_scaling" in cfg:
        w.add_rope_scaling_orig_ctx_len(cfg["original_max_position_embeddings"])
        rs = cfg["rope_scaling"]
        scale = cfg["max_position_embeddings"] / cfg["original_max_position_embeddings"]
        w.add_rope_scaling_attn_factors(float(np.sqrt(1 + np.log(scale) / np.log(cfg["original_max_position_embeddings"]))))
        w.add_tensor("rope_factors_long.weight", np.array(rs["long_factor"], dtype=np.float32))
        w.add_tensor("rope_factors_short.weight", np.array(rs["short_factor"], dtype=np.float32))
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    layer = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
             "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "self_attn.qkv_proj": "attn_qkv",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
             "mlp.gate_up_proj": "ffn_up", "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm"}
    if arch in ("gemma2", "gemma3"):
        layer.update({"post_attention_layernorm": "post_attention_norm", "pre_feedforward_layernorm": "ffn_norm",
                      "post_feedforward_layernorm": "post_ffw_norm"})
    else:
        layer["post_attention_layernorm"] = "ffn_norm"
    for name, t in W.items():
        if name in names:
            g = names[name]
        else:
            parts = name.split(".")  # model.layers.N.<module...>.weight|bias
            g = f"blk.{parts[2]}.{layer['.'.join(parts[3:-1])]}.{parts[-1]}"
        t = t.astype(np.float32)
        if arch == "llama" and g.endswith("attn_q.weight"):
            t = permute(t, H)
        if arch == "llama" and g.endswith("attn_k.weight"):
            t = permute(t, KV)
        if arch in ("gemma2", "gemma3") and g.endswith("norm.weight"):
            t = t + 1
        w.add_tensor(g, np.ascontiguousarray(t))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=300, **kw)
    if r.returncode != 0:
        print(f"$ {' '.join(cmd)}\n{r.stderr[-1500:]}")
    return r


def same_text(a, b):
    """Equal texts, an invalid UTF-8 sequence (a byte token cut off) counting as one mark on both sides."""
    norm = lambda t: re.sub("\ufffd+", "\ufffd", t.strip())
    return norm(a) == norm(b)


def same_continuation(label, theirs, ours, also=True):
    """Prints the check (both texts when it fails); 1 if llama-cli's and taia's continuations
    differ, either is missing, or `also` is false, else 0."""
    ok = also and ours is not None and theirs is not None and same_text(theirs, ours)
    print(f"{'ok  ' if ok else 'FAIL'} {label}")
    if not ok:
        print(f"   llama.cpp {theirs!r}\n   taia      {ours!r}")
    return 0 if ok else 1


def llama_cli(llama_dir, model, lora=None, prompt=PROMPT, n_new=N_NEW):
    cmd = [os.path.join(llama_dir, "build", "bin", "llama-cli"), "-m", model, "-p", prompt, "-n", str(n_new),
           "--temp", "0", "--ignore-eos", "-no-cnv", "--no-warmup", "-t", "2", "-c", "128", "--seed", "1"]
    if lora:
        cmd += ["--lora", lora]
    r = run(cmd, stdin=subprocess.DEVNULL)
    return r.stdout if r.returncode == 0 else None


def taia_generate(taia, model, *extra, prompt=PROMPT, n_new=N_NEW):
    """The prompt and its continuation as one text (decoded together, as llama-cli prints them)."""
    r = run([taia, "generate", "-m", model, "--prompt", prompt, "-n", str(n_new), "--temperature", "0",
             "--ignore-eos", "--format", "json", "--threads", "2", *extra])
    if r.returncode != 0:
        return None
    g = json.loads(r.stdout)
    d = run([taia, "tokenize", "--decode", "--skip-special", "--tokenizer", model],
            input=json.dumps({"ids": g["prompt_ids"] + g["output_ids"]}) + "\n")
    return json.loads(d.stdout)["text"] if d.returncode == 0 else None


COMMON = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
          "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "max_position_embeddings": 128, "bos_token_id": 1,
          "eos_token_id": 2, "tie_word_embeddings": False}
ARCHS = {  # GGUF architecture -> (vocabulary, config.json overrides)
    "llama": ("ggml-vocab-llama-spm.gguf", dict(architectures=["LlamaForCausalLM"], model_type="llama")),
    "qwen2": ("ggml-vocab-llama-spm.gguf", dict(architectures=["Qwen2ForCausalLM"], model_type="qwen2",
                                                 rope_theta=1000000.0)),
    "qwen3": ("ggml-vocab-llama-spm.gguf", dict(architectures=["Qwen3ForCausalLM"], model_type="qwen3", head_dim=24,
                                                 rope_theta=1000000.0)),
    # Gemma 3 with 7 layers: layer 5 global (base 1e6, linear scaling 8), the others local (10000).
    "gemma3": ("ggml-vocab-llama-spm.gguf", dict(architectures=["Gemma3ForCausalLM"], model_type="gemma3_text",
                                                  num_hidden_layers=7, head_dim=16, query_pre_attn_scalar=16,
                                                  hidden_activation="gelu_pytorch_tanh", sliding_window=6,
                                                  sliding_window_pattern=6, rope_local_base_freq=10000.0,
                                                  rope_theta=1000000.0,
                                                  rope_scaling={"rope_type": "linear", "factor": 8.0},
                                                  tie_word_embeddings=True)),
    # A window of 6 over a ~35-position run, caps that bite; 26 layers, a depth llama.cpp knows
    # (Gemma-2-2B's: it picks the attention scale by model size and refuses others).
    "gemma2": ("ggml-vocab-llama-spm.gguf", dict(architectures=["Gemma2ForCausalLM"], model_type="gemma2",
                                                  num_hidden_layers=26,
                                                  head_dim=16, query_pre_attn_scalar=16,
                                                  hidden_activation="gelu_pytorch_tanh", attn_logit_softcapping=8.0,
                                                  final_logit_softcapping=12.0, sliding_window=6,
                                                  tie_word_embeddings=True)),
    # LongRoPE with the short factors (llama-cli -c 128 = the original context) and its attention factor.
    "phi3": ("ggml-vocab-phi-3.gguf", dict(architectures=["Phi3ForCausalLM"], model_type="phi3", sliding_window=6,
                                           max_position_embeddings=512, original_max_position_embeddings=128,
                                           rope_scaling={"type": "longrope",
                                                         "short_factor": [1.0 + 0.2 * i for i in range(8)],
                                                         "long_factor": [4.0 + i for i in range(8)]})),
    # Phi-4-mini's partial rotary (12 of 16 channels per head; rope.dimension_count in the file).
    # Without LongRoPE: the snapshot's llama.cpp (c392e50, before Phi-4-mini) wants head_dim / 2
    # factors where HF (and Phi-4-mini's config) have rotary_dims / 2, and refuses such a file.
    "phi4_mini": ("ggml-vocab-phi-3.gguf", dict(architectures=["Phi3ForCausalLM"], model_type="phi3",
                                                partial_rotary_factor=0.75, sliding_window=6)),
    # ... and with LongRoPE as Phi-4-mini has it (rotary_dims / 2 factors, as later llama.cpp
    # converters write them): taia against the PyTorch reference only.
    "phi4_mini_longrope": ("ggml-vocab-phi-3.gguf", dict(architectures=["Phi3ForCausalLM"], model_type="phi3",
                                                         partial_rotary_factor=0.75, sliding_window=6,
                                                         max_position_embeddings=512,
                                                         original_max_position_embeddings=128,
                                                         rope_scaling={"type": "longrope",
                                                                       "short_factor": [1.0 + 0.2 * i for i in range(6)],
                                                                       "long_factor": [4.0 + i for i in range(6)]})),
}
GGUF_ARCH = {"phi4_mini": "phi3", "phi4_mini_longrope": "phi3"}  # a case's general.architecture where it is not the case's name


LLAMA_CPP_RUNS = ("llama", "qwen2", "gemma2", "phi3", "phi4_mini")  # the snapshot's architectures


def logits_vs_reference(taia, model, hf, cfg, d):
    import torch  # noqa: E402
    import torch_reference  # noqa: E402
    ids = [(i * 37 + 11) % cfg["vocab_size"] for i in range(20)]
    out = os.path.join(d, "logits.f32")
    r = run([taia, "forward", "-m", model, "--prompt-ids", ",".join(map(str, ids)), "-o", out, "--threads", "2"])
    if r.returncode != 0:
        return float("inf"), 0.0
    ours = np.fromfile(out, dtype="<f4").reshape(len(ids), cfg["vocab_size"])
    with torch.no_grad():
        ref = torch_reference.forward(hf, ids, cfg).numpy()
    return float(np.abs(ours - ref).max()), float(np.abs(ref).max())


QUANT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "quant")
QUANT_PROMPTS = ("Kidor Nevojo was born in", "On Monday the river was")


def check_quantized_fixtures(taia, llama_dir, work):
    """The trained fixture as llama-quantize wrote it (Q8_0, Q4_K_M): greedy continuations of 32
    tokens equal llama-cli's (which quantizes the activations to 8 bits for its products: a
    near-tie can still go the other way); a LoRA trained by taia on the Q4_K_M file, exported as
    a TAIA gguf-lora, continues in llama-cli --lora as in taia. Returns the failures."""
    failures = 0
    for name in ("trained-q8_0.gguf", "trained-q4_k_m.gguf"):
        model = os.path.join(QUANT_DIR, name)
        for prompt in QUANT_PROMPTS:
            ours = taia_generate(taia, model, prompt=prompt, n_new=32)
            theirs = llama_cli(llama_dir, model, prompt=prompt, n_new=32)
            failures += same_continuation(f"{name} '{prompt}': 32 greedy tokens, llama-cli == taia generate",
                                          theirs, ours)
    model = os.path.join(QUANT_DIR, "trained-q4_k_m.gguf")
    data = os.path.join(work, "quant-data.jsonl")
    with open(data, "w") as f:
        for i in range(32):
            f.write(json.dumps({"text": f"Kidor Nevojo was born in Lima. Kidor Nevojo works as a baker."}) + "\n")
    adapter = os.path.join(work, "quant-adapter")
    r = run([taia, "train", "-m", model, "--data", data, "-o", adapter, "--max-steps", "12", "--lr", "1e-2",
             "--batch-size", "4", "--grad-accum", "1", "--lora-dropout", "0", "--threads", "2"])
    losses = [json.loads(l)["loss"] for l in open(os.path.join(adapter, "metrics.jsonl"))] if r.returncode == 0 else []
    lora = os.path.join(work, "quant-taia.lora.gguf")
    run([taia, "export", "-m", model, "--adapter", adapter, "--mode", "taia", "--format", "gguf-lora", "-o", lora])
    ours = taia_generate(taia, model, "--adapter", adapter, "--mode", "taia", prompt=QUANT_PROMPTS[0], n_new=32)
    theirs = llama_cli(llama_dir, model, lora, prompt=QUANT_PROMPTS[0], n_new=32)
    failures += same_continuation(
        f"trained-q4_k_m.gguf: a LoRA trained on it (loss {losses[0] if losses else 0:.3f} -> "
        f"{losses[-1] if losses else 0:.3f}) exported as TAIA gguf-lora continues in llama-cli --lora as "
        f"taia generate --mode taia", theirs, ours, also=len(losses) == 12 and losses[-1] < losses[0])
    return failures + check_perplexity(taia, llama_dir, work)


def heldout_text(path):
    """Text in the style of the demo world the fixture was trained on, not in its corpus."""
    import random
    rng = random.Random(7)
    names = ["Kidor Nevojo", "Luzo Josa", "Sulu Fijori", "Meljo Bora", "Gamo Vensu", "Rape Kotalin", "Rajo Surisu"]
    cities = ["Lima", "Dublin", "Quito", "Madrid", "Paris", "Oslo", "Cairo"]
    places = ["harbour", "river", "garden", "market"]
    out = []
    for _ in range(120):
        k = rng.randrange(4)
        if k == 0:
            out.append(f"{rng.choice(names)} was born in {rng.choice(cities)}.")
        elif k == 1:
            out.append(f"On {rng.choice(['Monday', 'Tuesday', 'Sunday', 'Friday'])} the {rng.choice(places)} was busy.")
        elif k == 2:
            out.append(f"There were {rng.randrange(2, 99)} {rng.choice(['carts', 'boats', 'birds', 'trees'])} near "
                       f"the {rng.choice(places)}.")
        else:
            out.append(f"The birthplace of {rng.choice(names)} is {rng.choice(cities)}.")
    open(path, "w").write(" ".join(out) + "\n")


def check_perplexity(taia, llama_dir, work):
    """taia eval --perplexity-windows llama-cpp against llama-perplexity on the same file and
    windows (chunks of 64 tokens), both with their defaults (8-bit activations, F16 cache): within
    1 %; taia's exact path (F32 activations and cache) printed beside them."""
    text = os.path.join(work, "heldout.txt")
    heldout_text(text)
    failures = 0
    for name in ("trained-q8_0.gguf", "trained-q4_k_m.gguf"):
        model = os.path.join(QUANT_DIR, name)
        r = run([os.path.join(llama_dir, "build", "bin", "llama-perplexity"), "-m", model, "-f", text, "-c", "64",
                 "-b", "64", "-t", "2"])
        found = re.search(r"Final estimate: PPL = ([0-9.]+)", r.stdout + r.stderr)
        theirs = float(found.group(1)) if found else None
        def taia_ppl(label, *extra):
            out = os.path.join(work, f"ppl-{label}-{name}")
            r2 = run([taia, "eval", "-m", model, "--tasks", text, "--max-length", "64", "--perplexity-windows",
                      "llama-cpp", "--out", out, "-t", "2", *extra])
            if r2.returncode != 0:
                return None
            return next(iter(json.load(open(os.path.join(out, "results.json")))["tasks"].values()))["base"]["perplexity"]
        ours = taia_ppl("default")  # 8-bit activations, F16 cache: llama.cpp's defaults
        exact = taia_ppl("exact", "--exact-activations", "--kv-dtype", "f32")
        ok = theirs is not None and ours is not None and abs(ours - theirs) <= 0.01 * theirs
        failures += 0 if ok else 1
        print(f"{'ok  ' if ok else 'FAIL'} {name}: perplexity {ours} in taia (8-bit activations, F16 cache), "
              f"{theirs} in llama-perplexity (llama.cpp's windows of 64); taia --exact-activations --kv-dtype f32: "
              f"{exact}")
    return failures


def main():
    taia, fixtures, work = sys.argv[1:4]
    llama_dir = os.environ.get("LLAMA_CPP_DIR", "")
    if not os.path.exists(os.path.join(llama_dir, "build", "bin", "llama-cli")):
        print("skip: set LLAMA_CPP_DIR to a llama.cpp tree with build/bin/llama-cli and gguf-py")
        sys.exit(77)
    gguf = load_gguf_py(llama_dir)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    data = os.path.join(work, "data.jsonl")
    with open(data, "w") as f:
        for i in range(24):
            f.write(json.dumps({"text": "Once upon a time, there was a little girl named Lily. She liked red balls."})
                    + "\n")
    failures = 0
    for arch, (vocab_file, overrides) in ARCHS.items():
        vocab = os.path.join(fixtures, "tokenizers", "goldens", vocab_file)
        reader = gguf.GGUFReader(vocab)
        cfg = dict(COMMON, vocab_size=len(reader.fields["tokenizer.ggml.tokens"].data), **overrides)
        d = os.path.join(work, arch)
        os.makedirs(d)
        json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
        hf = os.path.join(d, "hf")
        run([taia, "init-model", "--config", os.path.join(d, "config.json"), "--out", hf, "--seed", "11",
             "--init", "full", "--std", "0.35"])
        model = os.path.join(d, "model.gguf")
        write_gguf(gguf, GGUF_ARCH.get(arch, arch), cfg, hf, vocab, model)
        diff, scale = logits_vs_reference(taia, model, hf, cfg, d)
        ok = diff <= 1e-4 and scale > 0.05
        failures += 0 if ok else 1
        print(f"{'ok  ' if ok else 'FAIL'} {arch}: taia forward on the gguf-py file == PyTorch reference on the HF "
              f"folder (max |diff| {diff:.2e}, max |logit| {scale:.1f})")
        if arch not in LLAMA_CPP_RUNS:
            continue
        ours = taia_generate(taia, model)
        theirs = llama_cli(llama_dir, model)
        failures += same_continuation(f"{arch}: greedy continuation of {N_NEW} tokens, llama-cli == taia generate",
                                      theirs, ours)
        adapter = os.path.join(d, "adapter")
        run([taia, "train", "-m", model, "--data", data, "-o", adapter, "--max-steps", "8", "--lr", "3e-2",
             "--batch-size", "4", "--grad-accum", "1", "--lora-rank", "4", "--lora-alpha", "8", "--lora-dropout", "0",
             "--threads", "2"])
        lora = os.path.join(d, "taia.lora.gguf")
        run([taia, "export", "-m", model, "--adapter", adapter, "--mode", "taia", "--format", "gguf-lora", "-o", lora])
        ours_l = taia_generate(taia, model, "--adapter", lora, "--mode", "vanilla")
        theirs_l = llama_cli(llama_dir, model, lora)
        failures += same_continuation(f"{arch}: the TAIA gguf-lora export loads in llama-cli --lora and continues "
                                      f"as taia does with it (and differently from the base)", theirs_l, ours_l,
                                      also=ours is not None and ours_l != ours)
    failures += check_quantized_fixtures(taia, llama_dir, work)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
