#!/usr/bin/python3
"""The PyTorch peer's LoRA training step under bf16 autocast: the mixed-precision counterpart of
`bench_train bf16c` (taia --compute bf16). The model, batch and optimizer are the peer's own
(imported from ../shared/peers/torch_lora_step.py, not copied); only the forward runs inside
torch.autocast("cpu", dtype=torch.bfloat16), the loss in F32, as the PyTorch AMP recipe does.
  TORCH_THREADS=2 /usr/bin/python3 bench/torch_amp_step.py PEER_PATH [trials]
Prints lines in the peer's format: "train fwd+bwd: median=... ms -> N tokens/s"."""
import importlib.util
import os
import sys
import time

import torch
import torch.nn.functional as F


def main():
    peer_path = sys.argv[1]
    trials = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "2")))
    spec = importlib.util.spec_from_file_location("torch_lora_step", peer_path)
    peer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peer)
    B, T, V, D, L, FF, R = 4, 256, 8000, 512, 8, 1376, 8
    torch.manual_seed(0)
    model = peer.LLaMA(V, D, L, 8, FF, R, T)
    for name, p in model.named_parameters():
        p.requires_grad = "lora_" in name
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    x = torch.randint(0, V, (B, T + 1))
    inp, tgt = x[:, :-1], x[:, 1:]

    def step(with_opt):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(inp)
        loss = F.cross_entropy(logits.float().reshape(-1, V), tgt.reshape(-1))
        loss.backward()
        if with_opt:
            opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(2):
        step(True)
    print(f"torch {torch.__version__} autocast bf16, threads {torch.get_num_threads()}")
    for label, with_opt in (("train fwd+bwd", False), ("train fwd+bwd+AdamW", True)):
        times = []
        for _ in range(trials):
            t0 = time.perf_counter()
            step(with_opt)
            times.append(time.perf_counter() - t0)
        med = sorted(times)[len(times) // 2]
        print(f"{label}: median={med * 1e3:.1f} ms -> {B * T / med:.0f} tokens/s (n={trials})")


if __name__ == "__main__":
    main()
