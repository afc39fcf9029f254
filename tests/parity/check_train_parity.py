"""Training parity with PyTorch autograd: loss and gradients of one batch (also cut into micro-batches of one step) (LoRA A/B, MoLoRA's experts
and routers, or every weight for full fine-tuning) on tiny random models of every architecture agree to relative error
<= 1e-4 in F32; then 10 AdamW steps on the same batch give the same losses within 1e-4.

usage: /usr/bin/python3 check_train_parity.py TAIA_BINARY TRAIN_PROBE WORK_DIR
"""
import json
import math
import os
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference as ref  # noqa: E402

LLAMA = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 61, "hidden_size": 32,
         "intermediate_size": 80, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
         "rms_norm_eps": 1e-5, "max_position_embeddings": 64, "tie_word_embeddings": False}
QWEN = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 67, "hidden_size": 48,
        "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 6, "num_key_value_heads": 2,
        "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "max_position_embeddings": 64, "tie_word_embeddings": True}

MISTRAL = dict(LLAMA, architectures=["MistralForCausalLM"], model_type="mistral", sliding_window=5)
QWEN3 = dict(QWEN, architectures=["Qwen3ForCausalLM"], model_type="qwen3", head_dim=12)
# Gemma 2 with caps that bite, a window of 5 over 12 positions on the even layer, a custom
# attention scale, head_dim != hidden / heads, tied embeddings.
GEMMA2 = dict(LLAMA, architectures=["Gemma2ForCausalLM"], model_type="gemma2", head_dim=12,
              hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=10, attn_logit_softcapping=0.6,
              final_logit_softcapping=2.0, sliding_window=5, tie_word_embeddings=True)
GEMMA3 = dict(LLAMA, architectures=["Gemma3ForCausalLM"], model_type="gemma3_text", head_dim=12, num_hidden_layers=3,
              hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=10, sliding_window=5,
              sliding_window_pattern=3, rope_local_base_freq=10000.0, rope_theta=1000000.0,
              rope_scaling={"rope_type": "linear", "factor": 8.0}, tie_word_embeddings=True)
# Gemma 3 with layer_types as written (the first layer global, no pattern given).
GEMMA3_TYPES = {k: v for k, v in GEMMA3.items() if k != "sliding_window_pattern"}
GEMMA3_TYPES["layer_types"] = ["full_attention", "sliding_attention", "sliding_attention"]
# Phi-3: fused qkv_proj / gate_up_proj (LoRA on the fused modules: one A per module, B's rows
# split among q, k, v), a window of 5, LongRoPE with the long factors (12 positions > 8).
PHI3 = dict(LLAMA, architectures=["Phi3ForCausalLM"], model_type="phi3", sliding_window=5,
            original_max_position_embeddings=8,
            rope_scaling={"type": "longrope", "short_factor": [1.0, 1.5, 2.0, 2.5], "long_factor": [3.0, 5.0, 9.0, 17.0]})
# Phi-4-mini: partial_rotary_factor 0.75 (6 of 8 channels per head rotate), LongRoPE over the 3
# rotated pairs, tied embeddings.
PHI4_MINI = dict(PHI3, partial_rotary_factor=0.75, tie_word_embeddings=True,
                 rope_scaling={"type": "longrope", "short_factor": [1.0, 1.5, 2.0], "long_factor": [3.0, 5.0, 9.0]})
# SmolLM3: layer 1 without rotary and windowed (use_sliding_window: the NoPE layers by default).
SMOLLM3 = dict(LLAMA, architectures=["SmolLM3ForCausalLM"], model_type="smollm3", no_rope_layers=[1, 0],
               use_sliding_window=True, sliding_window=5, attention_bias=True)

CASES = [
    ("llama_lora_all", LLAMA, "f32", {"method": "lora", "targets": "all", "rank": 4, "alpha": 8}),
    ("llama_lora_bf16_base_recompute", LLAMA, "bf16", {"method": "lora", "targets": "all", "rank": 3, "alpha": 5,
                                                      "recompute": True}),
    ("qwen2_lora_patterns_rslora", QWEN, "f32", {"method": "lora", "targets": "all", "rank": 4, "alpha": 16,
                                                 "rslora": True, "rank_pattern": {"q_proj": 2, "layers.1.mlp.up_proj": 6},
                                                 "alpha_pattern": {"down_proj": 3}}),
    ("qwen2_lora_attn_only", QWEN, "f32", {"method": "lora", "targets": "q,k,v,o", "rank": 2, "alpha": 4}),
    # Mixed precision: base GEMMs in BF16, so only a loose agreement with F32 PyTorch is expected.
    ("llama_lora_bf16_compute", LLAMA, "bf16", {"method": "lora", "targets": "all", "rank": 4, "alpha": 8,
                                               "compute": "bf16", "tolerance": 3e-2}),
    ("llama_full_all", LLAMA, "f32", {"method": "full", "targets": "all"}),
    ("qwen2_full_tied", QWEN, "f32", {"method": "full", "targets": "all"}),
    ("qwen2_full_ffn_only", QWEN, "f32", {"method": "full", "targets": "ffn", "recompute": True}),
    # Sliding window 5 over sequences of 12: the window's mask in the backward too.
    ("mistral_window_lora", MISTRAL, "f32", {"method": "lora", "targets": "all", "rank": 4, "alpha": 8}),
    ("mistral_window_full_recompute", MISTRAL, "f32", {"method": "full", "targets": "all", "recompute": True}),
    # QK-norm: its backward, and full fine-tuning of q_norm / k_norm.
    ("qwen3_lora_all", QWEN3, "f32", {"method": "lora", "targets": "all", "rank": 4, "alpha": 8}),
    ("qwen3_full_all", QWEN3, "f32", {"method": "full", "targets": "all"}),
    # Gemma 2: sandwich norms, (1 + w), scaled embeddings, GeGLU, both soft-caps, the window.
    ("gemma2_lora_all", GEMMA2, "f32", {"method": "lora", "targets": "all", "rank": 4, "alpha": 8}),
    ("gemma2_full_all_recompute", GEMMA2, "f32", {"method": "full", "targets": "all", "recompute": True}),
    # Gemma 3: QK-norm (1 + w), two RoPE bases, a global third layer.
    ("gemma3_lora_all", GEMMA3, "f32", {"method": "lora", "targets": "all", "rank": 4, "alpha": 8}),
    ("gemma3_full_all", GEMMA3, "f32", {"method": "full", "targets": "all"}),
    ("gemma3_layer_types_lora", GEMMA3_TYPES, "f32", {"method": "lora", "targets": "all", "rank": 4, "alpha": 8}),
    ("phi3_lora_all", PHI3, "f32", {"method": "lora", "targets": "all", "rank": 4, "alpha": 8,
                                    "rank_pattern": {"gate_up_proj": 3}}),
    ("phi3_lora_attn_recompute", PHI3, "f32", {"method": "lora", "targets": "qkv,o", "rank": 2, "alpha": 4,
                                               "recompute": True}),
    ("phi3_full_all", PHI3, "f32", {"method": "full", "targets": "all"}),
    # MoLoRA (the official semantics: experts on gate/up/down, top-k over the router logits, softmax
    # over the selected ones, attention LoRA) and our balance loss.
    ("llama_molora_top1", LLAMA, "f32", {"method": "molora", "targets": "all", "rank": 4, "alpha": 8, "experts": 4,
                                         "top_k": 1}),
    ("llama_molora_top1_balance", LLAMA, "f32", {"method": "molora", "targets": "all", "rank": 4, "alpha": 8,
                                                 "experts": 4, "top_k": 1, "balance": 0.05}),
    ("llama_molora_top2", LLAMA, "f32", {"method": "molora", "targets": "all", "rank": 4, "alpha": 8, "experts": 4,
                                         "top_k": 2}),
    ("qwen2_molora_top2_balance_recompute", QWEN, "f32", {"method": "molora", "targets": "all", "rank": 3,
                                                          "alpha": 6, "experts": 3, "top_k": 2, "balance": 0.1,
                                                          "recompute": True}),
    ("phi4_mini_lora_all", PHI4_MINI, "f32", {"method": "lora", "targets": "all", "rank": 4, "alpha": 8}),
    ("phi4_mini_full_all_recompute", PHI4_MINI, "f32", {"method": "full", "targets": "all", "recompute": True}),
    ("smollm3_lora_all", SMOLLM3, "f32", {"method": "lora", "targets": "all", "rank": 4, "alpha": 8}),
    ("smollm3_full_all", SMOLLM3, "f32", {"method": "full", "targets": "all"}),
    ("phi3_full_ffn_only", PHI3, "f32", {"method": "full", "targets": "ffn"}),
    # Gradient accumulation: the batch's two rows (7 and 11 target tokens) as two micro-batches of
    # one step, each token weighing 1 / 18 as in PyTorch's mean over the whole batch.
    ("llama_lora_all_accum", LLAMA, "f32", {"method": "lora", "targets": "all", "rank": 4, "alpha": 8,
                                            "micro_rows": [[0], [1]]}),
    ("qwen2_full_accum", QWEN, "f32", {"method": "full", "targets": "all", "micro_rows": [[1], [0]]}),
    ("llama_molora_top2_accum", LLAMA, "f32", {"method": "molora", "targets": "all", "rank": 4, "alpha": 8,
                                               "experts": 4, "top_k": 2, "micro_rows": [[0], [1]]}),
]
PROJ = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj",
        "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}


def rel_err(a, b, floor=1e-12):
    """max |a - b| over max |b|, or over `floor` where b is smaller."""
    return float(np.abs(a - b).max() / max(np.abs(b).max(), floor))


def molora_branch(A, Bm, rw, rb, scale, k, aux):
    """The official MoLoRALinear.molora_helper2 (training): every expert's scale * B_e A_e x, the
    top-k router logits, a softmax over them, the weighted sum; aux collects the Switch balance
    loss E * sum_e f_e P_e of each call (taia's extension)."""
    E = A.shape[0]

    def f(x):
        xf = x.reshape(-1, x.shape[-1])
        logits = xf @ rw.T + rb
        every = torch.stack([(xf @ A[e].T) @ Bm[e].T * scale for e in range(E)], dim=0).transpose(0, 1)
        weights, selected = torch.topk(logits, k)
        chosen = every.gather(1, selected.unsqueeze(-1).expand(-1, -1, every.shape[-1]))
        weights = torch.softmax(weights, dim=-1)
        out = torch.einsum("be,bef->bf", weights, chosen)
        share = torch.nn.functional.one_hot(selected, E).sum(dim=(0, 1)).float() / (xf.shape[0] * k)
        aux.append(E * (share * torch.softmax(logits, dim=-1).mean(0)).sum())
        return out.reshape(*x.shape[:-1], -1)

    return f


def run_case(taia, probe, work, name, cfg, dtype, spec):
    d = os.path.join(work, name)
    os.makedirs(d, exist_ok=True)
    json.dump(cfg, open(os.path.join(d, "in_config.json"), "w"))
    model = os.path.join(d, "model")
    subprocess.run([taia, "init-model", "--config", os.path.join(d, "in_config.json"), "--out", model, "--seed", "5",
                    "--dtype", dtype, "--init", "full", "--std", "0.08"], check=True, stdout=subprocess.DEVNULL)
    rng = np.random.default_rng(3)
    B, L = 2, 12
    tokens = rng.integers(0, cfg["vocab_size"], size=(B, L))
    targets = np.concatenate([tokens[:, 1:], np.full((B, 1), -1)], axis=1)
    targets[0, :4] = -1  # a masked prompt
    spec = dict(spec, B=B, L=L, tokens=tokens.flatten().tolist(), targets_ids=targets.flatten().tolist(), steps=10,
                lr=2e-3, weight_decay=0.01, seed=11, init_b_std=0.2)
    json.dump(spec, open(os.path.join(d, "spec.json"), "w"))
    r = subprocess.run([probe, model, os.path.join(d, "spec.json"), d], capture_output=True, text=True)
    if r.returncode != 0:
        return [f"train_probe failed: {r.stderr}"]
    ours = json.load(open(os.path.join(d, "result.json")))
    grads = ref.read_safetensors(os.path.join(d, "grads.safetensors"))

    W = ref.read_safetensors(os.path.join(model, "model.safetensors"))
    torch.manual_seed(0)
    lora, params = {}, []
    experts, aux = {}, []  # MoLoRA: module -> [A, B, router weight, router bias]; the balance losses of a pass
    full = spec["method"] == "full"
    if full:
        for n in grads:
            W[n] = W[n].clone().requires_grad_(True)
        decay = [W[n] for n in grads if "norm" not in n and not n.endswith(".bias")]
        no_decay = [W[n] for n in grads if "norm" in n or n.endswith(".bias")]
        groups = [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}]
    else:
        init = ref.read_safetensors(os.path.join(d, "lora_init.safetensors"))
        modules = sorted({k[len("base_model.model."):-len(".lora_A.weight")] for k in init if k.endswith("lora_A.weight")})
        for m in modules:
            A = init[f"base_model.model.{m}.lora_A.weight"].clone().requires_grad_(True)
            Bm = init[f"base_model.model.{m}.lora_B.weight"].clone().requires_grad_(True)
            r_ = A.shape[0]
            short = m.split(".")[-1]
            alpha = spec["alpha"]
            for key, val in spec.get("alpha_pattern", {}).items():
                if m.endswith("." + key):
                    alpha = val
                    break
            scale = alpha / math.sqrt(r_) if spec.get("rslora") else alpha / r_
            lora[m] = (A, Bm, scale)
            params += [A, Bm]
            # rank_pattern must have been applied: compare with the spec
            want_r = spec["rank"]
            for key, val in spec.get("rank_pattern", {}).items():
                if m.endswith("." + key) or m.endswith(key):
                    want_r = val
                    break
            if r_ != want_r:
                return [f"{m}: rank {r_}, expected {want_r} from rank_pattern"]
        no_decay = []
        for m in sorted({k[len("base_model.model."):-len(".experts.lora_A")] for k in init
                         if k.endswith(".experts.lora_A")}):
            t = [init[f"base_model.model.{m}.{tail}"].clone().requires_grad_(True)
                 for tail in ("experts.lora_A", "experts.lora_B", "router.weight", "router.bias")]
            experts[m] = t
            lora[m] = molora_branch(*t, spec["alpha"] / spec["rank"], spec["top_k"], aux)
            params += t[:3]
            no_decay.append(t[3])  # the router's bias: no weight decay, as HF Trainer
        groups = [{"params": params, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}]
    tt = torch.tensor(targets)

    def loss_fn():
        aux.clear()
        logits = ref.forward_batch(cfg, W, tokens, lora)
        ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tt.reshape(-1), ignore_index=-1)
        return ce + spec.get("balance", 0.0) * sum(aux) if aux else ce

    loss = loss_fn()
    loss.backward()
    problems = []
    tol = spec.get("tolerance", 1e-4)
    if abs(loss.item() - ours["loss"]) > tol * max(1.0, abs(loss.item())):
        problems.append(f"loss {ours['loss']} vs torch {loss.item()}")
    worst = 0.0
    if full:
        # A tensor whose gradient vanishes by symmetry (a NoPE layer's k bias: the softmax ignores
        # a shift of all of a query's logits) holds rounding noise on both sides; it is measured
        # against a thousandth of the model's largest gradient instead of against its own noise.
        floor = 1e-3 * max(float(W[n].grad.abs().max()) for n in grads)
        for n, g in grads.items():
            e = rel_err(g.numpy(), W[n].grad.numpy(), floor)
            worst = max(worst, e)
            if e > tol:
                problems.append(f"grad {n}: relative error {e:.2e}")
        count = len(grads)
    else:
        for m, (A, Bm, _) in ((m, v) for m, v in lora.items() if m not in experts):
            for tag, t in (("A", A), ("B", Bm)):
                e = rel_err(grads[f"base_model.model.{m}.lora_{tag}.weight"].numpy(), t.grad.numpy())
                worst = max(worst, e)
                if e > tol:
                    problems.append(f"grad {m}.lora_{tag}: relative error {e:.2e}")
        count = 2 * (len(lora) - len(experts))
        for m, tensors in experts.items():
            for tail, t in zip(("experts.lora_A", "experts.lora_B", "router.weight", "router.bias"), tensors):
                e = rel_err(grads[f"base_model.model.{m}.{tail}"].numpy(), t.grad.numpy())
                worst = max(worst, e)
                if e > tol:
                    problems.append(f"grad {m}.{tail}: relative error {e:.2e}")
                count += 1
    opt = torch.optim.AdamW(groups, lr=2e-3, betas=(0.9, 0.999), eps=1e-8)
    losses = [loss.item()]
    for _ in range(10):
        opt.step()
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        losses.append(loss.item())
    diff = max(abs(a - b) for a, b in zip(losses, ours["losses"]))
    if diff > tol or len(ours["losses"]) != 11:
        problems.append(f"AdamW losses differ by {diff:.2e}: taia {ours['losses']} torch {losses}")
    print(f"{'ok  ' if not problems else 'FAIL'} {name}: loss {ours['loss']:.6f}, {count} gradient tensors, worst "
          f"relative error {worst:.2e}, 10 AdamW steps max |loss diff| {diff:.2e} "
          f"({losses[0]:.4f} -> {losses[-1]:.4f})")
    return problems


def main():
    taia, probe, work = sys.argv[1:4]
    failures = 0
    for name, cfg, dtype, spec in CASES:
        problems = run_case(taia, probe, work, name, cfg, dtype, spec)
        for p in problems:
            print("   ", p)
        failures += bool(problems)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
