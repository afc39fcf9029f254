#!/usr/bin/python3
"""The PyTorch peer's LoRA training step under bf16 autocast: the mixed-precision counterpart of
`taia bench train --compute bf16`. The forward runs inside torch.autocast("cpu", dtype=torch.bfloat16),
the loss in F32, as the PyTorch AMP recipe does; AdamW over the LoRA factors.

  TORCH_THREADS=2 /usr/bin/python3 bench/torch_amp_step.py PEER_PATH [trials] [--shape S] [--weights W]
      [--precision P] [--batch B] [--seq T] [--rank R] [--with-optimizer-only]

--shape llama-34m (default): the training peer's own model (its LLaMA class, imported from
  ../shared/peers/torch_lora_step.py, not copied), batch 4 x 256, LoRA r 8.
--shape qwen2-0.5b / qwen2.5-1.5b: the shapes of taia's presets of those names (Qwen2: grouped
  query attention with 2 KV heads, q/k/v biases, tied 151,936-token embedding), written here from
  the peer's LoRALinear, RMSNorm and rotary helpers; LoRA r 16 (alpha 2r) on all seven projections.
--weights f32 (default) or bf16: the frozen base stored in that type (LoRA factors stay F32).
--precision bf16-autocast (default) or f32 (no autocast: the F32 peer at the same shape; F32 weights).
--with-optimizer-only: time only the steps with AdamW (the long shapes' rounds skip the others).

Prints lines in the peer's format ("train fwd+bwd: median=... ms -> N tokens/s") and the peak RSS."""
import argparse
import importlib.util
import math
import os
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# The Qwen2-family shapes of taia's presets (src/perf/presets): hidden, layers, heads, KV heads,
# head dim, FFN, vocabulary.
QWEN2_SHAPES = {
    "qwen2-0.5b": dict(dim=896, layers=24, heads=14, kv_heads=2, head_dim=64, ffn=4864, vocab=151936),
    "qwen2.5-1.5b": dict(dim=1536, layers=28, heads=12, kv_heads=2, head_dim=128, ffn=8960, vocab=151936),
}


def load_peer(path):
    spec = importlib.util.spec_from_file_location("torch_lora_step", path)
    peer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peer)
    return peer


def qwen2_model(peer, s, r, seq):
    """A Qwen2-shaped decoder with LoRA on q, k, v, o, gate, up, down (the peer's LoRALinear)."""

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            d, hd = s["dim"], s["head_dim"]
            self.h, self.kvh, self.hd = s["heads"], s["kv_heads"], hd
            self.q = peer.LoRALinear(d, self.h * hd, r, 2 * r)
            self.k = peer.LoRALinear(d, self.kvh * hd, r, 2 * r)
            self.v = peer.LoRALinear(d, self.kvh * hd, r, 2 * r)
            self.o = peer.LoRALinear(self.h * hd, d, r, 2 * r)
            # Qwen2's q/k/v biases, frozen like the weights
            for name, n in (("bq", self.h * hd), ("bk", self.kvh * hd), ("bv", self.kvh * hd)):
                self.register_parameter(name, nn.Parameter(torch.zeros(n), requires_grad=False))

        def forward(self, x, cos, sin, mask):
            B, T, _ = x.shape
            q = (self.q(x) + self.bq).view(B, T, self.h, self.hd).transpose(1, 2)
            k = (self.k(x) + self.bk).view(B, T, self.kvh, self.hd).transpose(1, 2)
            v = (self.v(x) + self.bv).view(B, T, self.kvh, self.hd).transpose(1, 2)
            q, k = peer.apply_rope(q, cos, sin), peer.apply_rope(k, cos, sin)
            group = self.h // self.kvh  # each KV head serves `group` query heads (HF's repeat_kv)
            k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
            att = ((q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.hd)) + mask).softmax(-1)
            return self.o((att @ v).transpose(1, 2).reshape(B, T, self.h * self.hd))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            d, ff = s["dim"], s["ffn"]
            self.n1, self.n2 = peer.RMSNorm(d, 1e-6), peer.RMSNorm(d, 1e-6)
            self.attn = Attention()
            self.gate, self.up = peer.LoRALinear(d, ff, r, 2 * r), peer.LoRALinear(d, ff, r, 2 * r)
            self.down = peer.LoRALinear(ff, d, r, 2 * r)

        def forward(self, x, cos, sin, mask):
            x = x + self.attn(self.n1(x), cos, sin, mask)
            h = self.n2(x)
            return x + self.down(F.silu(self.gate(h)) * self.up(h))

    class Qwen2(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(s["vocab"], s["dim"])
            self.blocks = nn.ModuleList(Block() for _ in range(s["layers"]))
            self.norm = peer.RMSNorm(s["dim"], 1e-6)
            cos, sin = peer.rope_cache(seq, s["head_dim"], 1000000.0)
            self.register_buffer("cos", cos)
            self.register_buffer("sin", sin)
            self.register_buffer("mask", torch.full((seq, seq), float("-inf")).triu(1))

        def forward(self, idx):
            T = idx.shape[1]
            x = self.emb(idx)
            for b in self.blocks:
                x = b(x, self.cos[:T], self.sin[:T], self.mask[:T, :T])
            return F.linear(self.norm(x), self.emb.weight)  # tied head

    return Qwen2()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("peer")
    ap.add_argument("trials", nargs="?", type=int, default=5)
    ap.add_argument("--shape", default="llama-34m", choices=["llama-34m"] + sorted(QWEN2_SHAPES))
    ap.add_argument("--weights", default="f32", choices=["f32", "bf16"])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--rank", type=int, default=None)
    ap.add_argument("--precision", default="bf16-autocast", choices=["bf16-autocast", "f32"])
    ap.add_argument("--with-optimizer-only", action="store_true")
    a = ap.parse_args()
    if a.precision == "f32" and a.weights != "f32":
        ap.error("--precision f32 multiplies F32 weights (--weights f32)")
    torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "2")))
    peer = load_peer(a.peer)
    torch.manual_seed(0)
    B, T = a.batch, a.seq
    if a.shape == "llama-34m":
        V, r = 8000, a.rank or 8
        model = peer.LLaMA(V, 512, 8, 8, 1376, r, T)
    else:
        V, r = QWEN2_SHAPES[a.shape]["vocab"], a.rank or 16
        model = qwen2_model(peer, QWEN2_SHAPES[a.shape], r, T)
    for name, p in model.named_parameters():
        p.requires_grad = "lora_" in name
        if not p.requires_grad and a.weights == "bf16":
            p.data = p.data.to(torch.bfloat16)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    x = torch.randint(0, V, (B, T + 1))
    inp, tgt = x[:, :-1], x[:, 1:]

    def step(with_opt):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16-autocast"):
            logits = model(inp)
        loss = F.cross_entropy(logits.float().reshape(-1, V), tgt.reshape(-1))
        loss.backward()
        if with_opt:
            opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(2):
        step(True)
    print(f"torch {torch.__version__} {a.precision}, threads {torch.get_num_threads()}, shape {a.shape}, "
          f"{a.weights} base, LoRA r {r}, batch {B} x {T}")
    runs = (("train fwd+bwd", False), ("train fwd+bwd+AdamW", True))
    for label, with_opt in runs[1:] if a.with_optimizer_only else runs:
        times = []
        for _ in range(a.trials):
            t0 = time.perf_counter()
            step(with_opt)
            times.append(time.perf_counter() - t0)
        med = sorted(times)[len(times) // 2]
        print(f"{label}: median={med * 1e3:.1f} ms -> {B * T / med:.0f} tokens/s (n={a.trials})")
    print(f"peak RSS (ru_maxrss) = {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
