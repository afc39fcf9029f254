"""Peak RSS of LoRA training steps in PyTorch on an HF model folder (F32 safetensors), for the
memory comparison of docs/BENCHMARKS.md: the weights memory-mapped as HF does (not copied), the
forward of the project's PyTorch reference (tests/parity/torch_reference.py, written from HF's
modeling code), LoRA rank R (alpha 2R) on the seven projections of every layer, cross-entropy
over the full logits, backward, AdamW on the LoRA parameters.

usage: /usr/bin/python3 bench/torch_lora_memory.py MODEL_DIR [batch] [seq] [rank] [steps]
Prints seconds per step and the process's peak RSS (ru_maxrss). Compare with
`/usr/bin/time -f %M taia bench train -m MODEL_DIR --batch B --seq L --rank R --rounds 1`.
"""
import json
import os
import resource
import struct
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
import torch_reference  # noqa: E402

PROJ = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
        "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}


def load_mapped(path):
    """F32 tensors viewing a read-only memory map of the file (no copy)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            sys.exit(f"{name}: expected F32 tensors, got {info['dtype']}")
        b, e = info["data_offsets"]
        arr = np.frombuffer(mm, dtype=np.float32, count=(e - b) // 4, offset=8 + n + b).reshape(info["shape"])
        out[name] = torch.from_numpy(arr)  # read-only view: PyTorch warns, nothing writes to it
    return out


def main():
    model_dir = sys.argv[1]
    B, L, R, steps = (int(a) for a in (sys.argv[2:6] + ["4", "256", "16", "2"][len(sys.argv) - 2:]))
    torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "2")))
    cfg = torch_reference.load_config(model_dir)
    W = load_mapped(os.path.join(model_dir, "model.safetensors"))
    g = torch.Generator().manual_seed(0)
    lora, params = {}, []
    for layer in range(cfg["num_hidden_layers"]):
        for proj, block in PROJ.items():
            w = W[f"model.layers.{layer}.{block}.{proj}.weight"]
            A = (torch.randn(R, w.shape[1], generator=g) * 0.01).requires_grad_()
            Bm = torch.zeros(w.shape[0], R).requires_grad_()
            lora[f"model.layers.{layer}.{block}.{proj}"] = (A, Bm, 2.0)
            params += [A, Bm]
    opt = torch.optim.AdamW(params, lr=1e-4)
    V = cfg["vocab_size"]
    ids = torch.randint(0, V, (B, L), generator=g)
    for step in range(steps):
        t = time.time()
        logits = torch_reference.forward_batch(cfg, W, ids, lora)
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        print(f"step {step}: loss {loss.item():.4f}, {time.time() - t:.1f} s", flush=True)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.3f} GB")


if __name__ == "__main__":
    main()
