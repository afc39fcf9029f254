"""An independent PyTorch implementation of HF's LlamaForCausalLM / Qwen2ForCausalLM /
MistralForCausalLM forward pass, written from reading transformers' modeling_llama.py /
modeling_qwen2.py / modeling_mistral.py / modeling_qwen3.py (Mistral: LLaMA's layer without
biases, and the `sliding_window` mask of masking_utils: key j is visible to query i when
i - window < j <= i; Qwen3: q_norm / k_norm, RMSNorm over head_dim of every query and key head
before RoPE, `attention_bias` on q, k, v and o; Gemma 2, modeling_gemma2.py: RMSNorm times
(1 + weight), embeddings times sqrt(hidden) in float32, four norms a layer (the attention and MLP
outputs normalised before their residual adds), GELU-tanh gate, logits scaled by
query_pre_attn_scalar**-0.5 and soft-capped (attention and final), the sliding window on the even
layers; Gemma 3 text, modeling_gemma3.py: Gemma 2's layer with q_norm / k_norm (times 1 + weight),
no soft-capping, every sliding_window_pattern-th layer global, the local layers rotating with
rope_local_base_freq and no scaling, the global ones with rope_theta and rope_scaling; Phi-3,
modeling_phi3.py: q, k, v as column slices of one qkv_proj output and gate, up as the two halves
of gate_up_proj's, LLaMA's layer otherwise, `sliding_window` on every layer, and LongRoPE
(rope_utils' _compute_longrope_parameters: short_factor or, once max(position_ids) + 1 passes
original_max_position_embeddings, long_factor dividing each frequency, cos and sin times the
attention factor), and Phi-4-mini's partial_rotary_factor (apply_rotary_pos_emb: only the first
rotary_dim = int(head_dim * factor) channels of q and k rotate, rotate_half within them, the
frequencies of `dim` = rotary_dim); SmolLM3, modeling_smollm3.py / configuration_smollm3.py:
LLaMA's layer, no rotary on the layers whose no_rope_layers entry is 0 (default: every 4th),
`use_sliding_window` windows on the layers layer_types marks (default: the NoPE ones), rope_theta
2e6 and tied embeddings by default.

It reads the same config.json + model.safetensors as taia (its own safetensors reader, no
taia code) and computes logits in float32 (BF16 weights are upcast, as model.float() does).
Run with Debian's interpreter: /usr/bin/python3 (python3-torch).
"""
import json
import math
import os
import struct

import torch

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        buf = bytearray(data[base + b:base + e])
        t = torch.frombuffer(buf, dtype=DTYPES[info["dtype"]]) if e > b else torch.empty(0, dtype=DTYPES[info["dtype"]])
        out[name] = t.reshape(info["shape"]).to(torch.float32)
    return out


def longrope_attention_factor(cfg, scaling):
    if scaling.get("attention_factor") is not None:
        return scaling["attention_factor"]
    if "original_max_position_embeddings" in cfg:
        orig = cfg["original_max_position_embeddings"]
        factor = cfg["max_position_embeddings"] / orig
    else:
        orig = cfg["max_position_embeddings"]
        factor = scaling.get("factor", 1.0)
    return 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(orig))


def rope_inv_freq(cfg, head_dim, seq_len=0):
    """head_dim: HF's `dim`, the rotated channels (int(head_dim * partial_rotary_factor))."""
    base = cfg.get("rope_theta", 2000000.0 if cfg.get("model_type") == "smollm3" else 10000.0)
    scaling = cfg.get("rope_scaling") or cfg.get("rope_parameters")
    if scaling and "rope_theta" in scaling:
        base = scaling["rope_theta"]
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    rtype = (scaling or {}).get("rope_type", (scaling or {}).get("type", "default"))
    if rtype == "linear":
        inv_freq = inv_freq / scaling["factor"]
    elif rtype == "llama3":
        factor = scaling["factor"]
        low = scaling["low_freq_factor"]
        high = scaling["high_freq_factor"]
        old = scaling["original_max_position_embeddings"]
        low_wavelen = old / low
        high_wavelen = old / high
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
        inv_freq = torch.where(medium, smoothed, scaled)
    elif rtype in ("longrope", "su"):
        orig = cfg.get("original_max_position_embeddings", cfg["max_position_embeddings"])
        ext = torch.tensor(scaling["long_factor"] if seq_len > orig else scaling["short_factor"], dtype=torch.float32)
        inv_freq = 1.0 / (ext * base ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    return inv_freq


def rope_mscale(cfg):
    scaling = cfg.get("rope_scaling") or cfg.get("rope_parameters") or {}
    rtype = scaling.get("rope_type", scaling.get("type", "default"))
    return longrope_attention_factor(cfg, scaling) if rtype in ("longrope", "su") else 1.0


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rms_norm(x, w, eps):
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def load_config(model_dir):
    return json.load(open(os.path.join(model_dir, "config.json")))


def forward_batch(cfg, W, ids, lora=None, bf16_activations=False):
    """Logits [B, L, V] for ids [B, L] (a list of lists or a LongTensor). W: tensor name ->
    float32 tensor (may require grad). lora: module name ("model.layers.0.self_attn.q_proj") ->
    (A [r, in], B [out, r], scale): y += scale * (x A^T) B^T, PEFT's LoRA without dropout; or a
    function f: y += f(x) (MoLoRA's mixtures, built by the training parity test).
    bf16_activations: the input of every base projection and of the LM head rounded to bfloat16
    first (products then exact in float32), what `--compute bf16` asks for."""
    ids = torch.as_tensor(ids)
    Bsz, T = ids.shape
    D = cfg["hidden_size"]
    H = cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads", H)
    gemma_any = cfg.get("model_type") in ("gemma2", "gemma3_text")
    hd = cfg.get("head_dim") or (256 if gemma_any else D // H)  # HF's Gemma configs default to 256
    eps = cfg.get("rms_norm_eps", 1e-6)
    L = cfg["num_hidden_layers"]
    lora = lora or {}

    def rounded(x):
        return x.bfloat16().float() if bf16_activations else x

    def lin(x, prefix):
        y = rounded(x) @ W[prefix + ".weight"].T
        if prefix + ".bias" in W:
            y = y + W[prefix + ".bias"]
        if prefix in lora and callable(lora[prefix]):  # another adapter kind (MoLoRA): y += f(x)
            y = y + lora[prefix](x)
        elif prefix in lora:
            A, Bm, scale = lora[prefix]
            y = y + scale * ((x @ A.T) @ Bm.T)
        return y

    rot = int(hd * cfg.get("partial_rotary_factor", 1.0))  # rotated channels per head

    def cos_sin(rope_cfg):
        inv_freq = rope_inv_freq(rope_cfg, rot, T)
        pos = torch.arange(T, dtype=torch.float32)
        freqs = pos[:, None] * inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        m = rope_mscale(rope_cfg)
        return emb.cos() * m, emb.sin() * m  # [T, rot]

    cos, sin = cos_sin(cfg)
    gemma3 = cfg.get("model_type") == "gemma3_text"
    if gemma3:
        local_cos, local_sin = cos_sin({"rope_theta": cfg.get("rope_local_base_freq", 10000.0)})
        pattern = cfg.get("sliding_window_pattern", 6)

    gemma = cfg.get("model_type") in ("gemma2", "gemma3_text")

    def norm(x, w):
        return rms_norm(x, 1.0 + w if gemma else w, eps)

    x = W["model.embed_tokens.weight"][ids]  # [B, T, D]
    if gemma:
        x = x * torch.tensor(D ** 0.5, dtype=torch.float32)
    causal = torch.full((T, T), float("-inf")).triu(1)
    gemma2 = cfg.get("model_type") == "gemma2"
    # Keys missing from a Gemma config take the HF config classes' defaults.
    phi3 = cfg.get("model_type") == "phi3"
    if cfg.get("model_type") in ("mistral", "phi3"):
        window = cfg.get("sliding_window")
    elif gemma:
        window = cfg.get("sliding_window", 4096 if gemma2 else 512)
    elif cfg.get("model_type") == "smollm3" and cfg.get("use_sliding_window"):
        window = cfg.get("sliding_window")
    else:
        window = None
    smollm3 = cfg.get("model_type") == "smollm3"
    if smollm3:
        rope_layers = cfg.get("no_rope_layers") or [int((i + 1) % cfg.get("no_rope_layer_interval", 4) != 0)
                                                     for i in range(L)]
        smol_types = cfg.get("layer_types") or ["sliding_attention" if window and not rope_layers[i]
                                                else "full_attention" for i in range(L)]
    windowed = causal
    if window:
        i = torch.arange(T)[:, None]
        j = torch.arange(T)[None, :]
        windowed = causal.masked_fill(j <= i - window, float("-inf"))
    scaling = cfg.get("query_pre_attn_scalar", 256) ** -0.5 if gemma else None
    softcap = cfg.get("attn_logit_softcapping", 50.0 if gemma2 else None) if gemma else None
    for l in range(L):
        p = f"model.layers.{l}."
        if gemma and cfg.get("layer_types"):  # as written: HF derives it from the pattern only when absent
            sliding = cfg["layer_types"][l] == "sliding_attention"
        elif smollm3:
            sliding = smol_types[l] == "sliding_attention"
        else:
            sliding = (l + 1) % pattern != 0 if gemma3 else (not gemma or l % 2 == 0)
        mask = windowed if sliding else causal
        c_l, s_l = (local_cos, local_sin) if gemma3 and sliding else (cos, sin)
        h = norm(x, W[p + "input_layernorm.weight"])
        if phi3:
            qkv = lin(h, p + "self_attn.qkv_proj")
            q, k, v = qkv[..., :H * hd], qkv[..., H * hd:(H + KV) * hd], qkv[..., (H + KV) * hd:]
        else:
            q = lin(h, p + "self_attn.q_proj")
            k = lin(h, p + "self_attn.k_proj")
            v = lin(h, p + "self_attn.v_proj")
        q = q.reshape(Bsz, T, H, hd).transpose(1, 2)
        k = k.reshape(Bsz, T, KV, hd).transpose(1, 2)
        v = v.reshape(Bsz, T, KV, hd).transpose(1, 2)
        if cfg.get("model_type") in ("qwen3", "gemma3_text"):
            q = norm(q, W[p + "self_attn.q_norm.weight"])
            k = norm(k, W[p + "self_attn.k_norm.weight"])
        if not smollm3 or rope_layers[l]:
            q = torch.cat((q[..., :rot] * c_l + rotate_half(q[..., :rot]) * s_l, q[..., rot:]), dim=-1)
            k = torch.cat((k[..., :rot] * c_l + rotate_half(k[..., :rot]) * s_l, k[..., rot:]), dim=-1)
        k = k.repeat_interleave(H // KV, dim=1)
        v = v.repeat_interleave(H // KV, dim=1)
        att = q @ k.transpose(-1, -2)
        att = att * scaling if scaling is not None else att / math.sqrt(hd)
        if softcap:
            att = torch.tanh(att / softcap) * softcap
        att = att + mask
        att = torch.softmax(att.float(), dim=-1)
        o = (att @ v).transpose(1, 2).reshape(Bsz, T, H * hd)
        o = lin(o, p + "self_attn.o_proj")
        if gemma:
            x = x + norm(o, W[p + "post_attention_layernorm.weight"])
            h = norm(x, W[p + "pre_feedforward_layernorm.weight"])
        else:
            x = x + o
            h = norm(x, W[p + "post_attention_layernorm.weight"])
        if phi3:
            g, u = lin(h, p + "mlp.gate_up_proj").chunk(2, dim=-1)
        else:
            g = lin(h, p + "mlp.gate_proj")
            u = lin(h, p + "mlp.up_proj")
        act = torch.nn.functional.gelu(g, approximate="tanh") if gemma else torch.nn.functional.silu(g)
        m = lin(act * u, p + "mlp.down_proj")
        x = x + (norm(m, W[p + "post_feedforward_layernorm.weight"]) if gemma else m)
    x = norm(x, W["model.norm.weight"])
    tied = cfg.get("tie_word_embeddings", gemma or smollm3)
    head = W["model.embed_tokens.weight"] if tied else W["lm_head.weight"]
    logits = rounded(x) @ head.T
    cap = cfg.get("final_logit_softcapping", 30.0 if gemma2 else None) if gemma else None
    return torch.tanh(logits / cap) * cap if cap else logits


def forward(model_dir, ids, cfg=None, bf16_activations=False):
    """Logits of one sequence; cfg: the config to follow (default: the folder's config.json)."""
    cfg = cfg or load_config(model_dir)
    W = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    return forward_batch(cfg, W, [ids], bf16_activations=bf16_activations)[0]
