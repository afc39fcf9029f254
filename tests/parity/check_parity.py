"""Parity of taia's forward pass with the independent PyTorch reference on tiny random
models covering every architectural variant the foundation issue lists.

usage: /usr/bin/python3 check_parity.py TAIA_BINARY WORK_DIR
Each case: taia init-model (random, norms and biases random too) -> taia forward (logits of
every position) -> torch_reference.forward -> max abs diff <= 1e-4.
"""
import json
import os
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference  # noqa: E402

TOL = 1e-4
BF16_TOL = 1e-2  # --compute bf16: see main
F32_ONLY = {"gemma3_layer_types", "smollm3_windows"}
ABSENT = object()  # a CASES value that removes the key from BASE

BASE = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 97, "hidden_size": 64,
    "intermediate_size": 160, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4,
    "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 256, "tie_word_embeddings": False,
    "bos_token_id": 1, "eos_token_id": 2,
}

CASES = {
    "llama_mha": {},
    "llama_gqa": {"num_key_value_heads": 2},
    "llama_mqa_tied": {"num_key_value_heads": 1, "tie_word_embeddings": True},
    "llama_head_dim": {"head_dim": 24, "num_attention_heads": 6, "num_key_value_heads": 2},
    "llama_bias": {"attention_bias": True, "mlp_bias": True},
    "llama3_rope": {"rope_theta": 500000.0, "num_key_value_heads": 2, "eos_token_id": [2, 3],
                    "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                     "high_freq_factor": 4.0, "original_max_position_embeddings": 16}},
    "rope_parameters_form": {"rope_parameters": {"rope_type": "llama3", "rope_theta": 50000.0, "factor": 4.0,
                                                 "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                 "original_max_position_embeddings": 32}},
    "qwen2_tied": {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "num_key_value_heads": 2,
                   "tie_word_embeddings": True, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0},
    "qwen2_untied": {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "num_key_value_heads": 1},
    # A window shorter than the 40-position prompt: every position from 6 on loses keys.
    "mistral_window": {"architectures": ["MistralForCausalLM"], "model_type": "mistral", "num_key_value_heads": 2,
                       "sliding_window": 6},
    "mistral_no_window": {"architectures": ["MistralForCausalLM"], "model_type": "mistral", "sliding_window": None},
    # Qwen3: QK-norm, explicit head_dim (not hidden / heads), tied embeddings; and with biases.
    "qwen3_tied": {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "head_dim": 32,
                   "num_key_value_heads": 2, "tie_word_embeddings": True, "rms_norm_eps": 1e-6,
                   "rope_theta": 1000000.0},
    "qwen3_bias": {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "attention_bias": True},
    # Gemma 2 with every quirk biting: soft-caps small enough to bend the logits, a window of 6
    # on the even layers, query_pre_attn_scalar != head_dim, head_dim 32 != hidden / heads.
    "gemma2": {"architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "num_key_value_heads": 2,
               "head_dim": 32, "hidden_activation": "gelu_pytorch_tanh", "query_pre_attn_scalar": 24,
               "attn_logit_softcapping": 0.5, "final_logit_softcapping": 0.8, "sliding_window": 6,
               "tie_word_embeddings": True, "rms_norm_eps": 1e-6},
    # The same with a final cap far above the logits, so that the final tanh does not flatten
    # (and hide) a difference in the layers beneath it.
    "gemma2_mild_final_cap": {"architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2",
                              "query_pre_attn_scalar": 16, "attn_logit_softcapping": 0.5,
                              "final_logit_softcapping": 30.0, "sliding_window": 6},
    # Gemma 3: QK-norm, layers 0-1 windowed with the local RoPE base, layer 2 global with its own
    # base and linear scaling.
    "gemma3": {"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "num_hidden_layers": 3,
               "num_key_value_heads": 2, "head_dim": 32, "query_pre_attn_scalar": 24, "sliding_window": 6,
               "sliding_window_pattern": 3, "rope_local_base_freq": 10000.0, "rope_theta": 1000000.0,
               "rope_scaling": {"rope_type": "linear", "factor": 8.0}, "tie_word_embeddings": True},
    # Gemma 3 with layer_types as written and no sliding_window_pattern (the default 6 would make
    # every layer windowed): 4 layers, the last global.
    "gemma3_layer_types": {"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text",
                           "num_hidden_layers": 4, "num_key_value_heads": 2, "head_dim": 32,
                           "query_pre_attn_scalar": 24, "sliding_window": 6, "rope_local_base_freq": 10000.0,
                           "rope_theta": 1000000.0, "tie_word_embeddings": True,
                           "layer_types": ["sliding_attention", "sliding_attention", "sliding_attention",
                                           "full_attention"]},
    # Phi-3: fused qkv_proj / gate_up_proj (with GQA, as Phi-3-medium), a window of 6 on every
    # layer; LongRoPE with factors far from 1 and an attention factor of 1.13 (max / original =
    # 16). The 40-position prompt passes the original context of 32 (long factors), the 5-position
    # one does not (short factors).
    "phi3_longrope": {"architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "num_key_value_heads": 2,
                      "sliding_window": 6, "max_position_embeddings": 512, "original_max_position_embeddings": 32,
                      "rope_scaling": {"type": "longrope", "short_factor": [1.0 + 0.25 * i for i in range(8)],
                                       "long_factor": [2.0 + 3.0 * i for i in range(8)]},
                      "pad_token_id": 0, "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attention_dropout": 0.0},
    "phi3_plain": {"architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "sliding_window": None},
    # Phi-4-mini: Phi-3 with partial_rotary_factor 0.75 (12 of 16 channels per head rotate),
    # tied embeddings, GQA, LongRoPE with factors for the rotated channels only (6 of them).
    "phi4_mini_partial_rotary": {"architectures": ["Phi3ForCausalLM"], "model_type": "phi3",
                                 "num_key_value_heads": 2, "partial_rotary_factor": 0.75, "sliding_window": None,
                                 "tie_word_embeddings": True, "max_position_embeddings": 512,
                                 "original_max_position_embeddings": 32,
                                 "rope_scaling": {"type": "longrope", "short_factor": [1.0 + 0.5 * i for i in range(6)],
                                                  "long_factor": [2.0 + 3.0 * i for i in range(6)]}},
    # SmolLM3: 4 layers, layer 3 without rotary by the default no_rope_layer_interval; theta and
    # tied embeddings from SmolLM3Config's defaults (no rope_theta / tie_word_embeddings keys).
    "smollm3": {"architectures": ["SmolLM3ForCausalLM"], "model_type": "smollm3", "num_hidden_layers": 4,
                "num_key_value_heads": 2, "rope_theta": ABSENT, "tie_word_embeddings": ABSENT},
    # SmolLM3 with no_rope_layers as written (layers 0 and 2 NoPE), biases, and windows of 6 on
    # the NoPE layers (use_sliding_window, layer_types derived from no_rope_layers).
    "smollm3_windows": {"architectures": ["SmolLM3ForCausalLM"], "model_type": "smollm3", "num_hidden_layers": 3,
                        "no_rope_layers": [0, 1, 0], "attention_bias": True, "mlp_bias": True,
                        "use_sliding_window": True, "sliding_window": 6},
}


def run_case(taia, work, name, overrides, dtype, ids, compute="f32"):
    cfg = dict(BASE)
    cfg.update(overrides)
    cfg = {k: v for k, v in cfg.items() if v is not ABSENT}  # the key left out: the config class's default
    d = os.path.join(work, f"{name}_{dtype}")
    os.makedirs(d, exist_ok=True)
    cfg_path = os.path.join(d, "in_config.json")
    json.dump(cfg, open(cfg_path, "w"))
    model = os.path.join(d, "model")
    subprocess.run([taia, "init-model", "--config", cfg_path, "--out", model, "--seed", "7", "--dtype", dtype,
                    "--init", "full", "--std", "0.05"], check=True, stdout=subprocess.DEVNULL)
    out = os.path.join(d, "logits.f32")
    subprocess.run([taia, "forward", "--model", model, "--prompt-ids", ",".join(map(str, ids)), "--out", out,
                    "--threads", "2", "--compute", compute], check=True, stdout=subprocess.DEVNULL)
    ours = np.fromfile(out, dtype="<f4").reshape(len(ids), cfg["vocab_size"])
    with torch.no_grad():
        # The reference follows the config the case asked for, so a model folder that lost a
        # setting on the way (Mistral's sliding_window once did) fails here.
        ref = torch_reference.forward(model, ids, cfg, bf16_activations=compute == "bf16").numpy()
    diff = float(np.abs(ours - ref).max())
    scale = float(np.abs(ref).max())
    agree = int((np.abs(ours - ref).max(axis=1) <= TOL).sum())  # positions within TOL
    return diff, scale, agree


def main():
    taia, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(0)
    ids = [int(i) for i in rng.integers(0, BASE["vocab_size"], size=40)]
    failures = 0
    for name, overrides in CASES.items():
        # BF16 weights also with --compute bf16 (activations rounded before each product).
        # Cases that change only which layers window (layer_types) skip --compute bf16, whose
        # rounding-boundary rule below (a fifth of the positions exact) the gemma3 case covers.
        computes = (("f32", "f32"), ("bf16", "f32")) + ((("bf16", "bf16"),) if name not in F32_ONLY else ())
        for dtype, compute in computes:
            # 40 positions take the GEMM path, 5 the matrix-vector path of linear_forward.
            for prompt in (ids, ids[:5]):
                diff, scale, agree = run_case(taia, work, name, overrides, dtype, prompt, compute)
                ok = diff <= TOL and scale > 0.05  # logits must be non-trivial for the check to mean something
                if compute == "bf16":
                    # Rounding to BF16 amplifies summation-order differences: where a value lies
                    # within ~1e-7 of a rounding boundary, the two sides round it one BF16 step
                    # apart and that position (and the ones attending to it) drift by up to
                    # ~4e-3. Positions that meet no such boundary agree to ~1e-7; against the
                    # unrounded reference none does (the rounding alone moves logits by 5e-3 ..
                    # 1e-2). So: a fifth of the positions within TOL, none beyond BF16_TOL.
                    ok = diff <= BF16_TOL and agree * 5 >= len(prompt) and scale > 0.05
                print(f"{'ok  ' if ok else 'FAIL'} {name:22s} {dtype:5s} {compute:4s} T={len(prompt):3d} "
                      f"max|diff| = {diff:.3e} (max|logit| = {scale:.3f}), {agree} positions within {TOL}")
                failures += 0 if ok else 1
    if failures:
        print(f"{failures} case(s) failed")
        sys.exit(1)


if __name__ == "__main__":
    main()
