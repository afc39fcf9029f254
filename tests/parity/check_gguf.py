"""Parity of taia on a GGUF LLaMA model with an independent PyTorch forward pass that keeps
the GGUF weights as stored (Meta / llama.cpp row order for Q and K) and applies RoPE to
adjacent pairs, as llama2.c and ggml's NORM rope do. taia instead un-permutes Q/K on load and
rotates halves (HF convention); the two must agree.

usage: /usr/bin/python3 check_gguf.py TAIA_BINARY MODEL.gguf WORK_DIR
"""
import math
import os
import struct
import subprocess
import sys

import numpy as np
import torch

SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def read_gguf(path):
    data = open(path, "rb").read()
    off = 0

    def rd(fmt):
        nonlocal off
        v = struct.unpack_from("<" + fmt, data, off)
        off += struct.calcsize("<" + fmt)
        return v[0]

    def rs():
        nonlocal off
        n = rd("Q")
        s = data[off:off + n].decode("utf-8", "replace")
        off += n
        return s

    def rv(t):
        if t == 8:
            return rs()
        if t == 9:
            at, n = rd("I"), rd("Q")
            return [rv(at) for _ in range(n)]
        return rd(SCALAR[t])

    assert data[:4] == b"GGUF"
    off = 4
    rd("I")
    nt, nkv = rd("Q"), rd("Q")
    meta = {}
    for _ in range(nkv):
        k = rs()
        meta[k] = rv(rd("I"))
    infos = []
    for _ in range(nt):
        name = rs()
        nd = rd("I")
        ne = [rd("Q") for _ in range(nd)]
        infos.append((name, ne, rd("I"), rd("Q")))
    align = meta.get("general.alignment", 32)
    base = (off + align - 1) // align * align
    tensors = {}
    for name, ne, typ, o in infos:
        n = int(np.prod(ne))
        dt = {0: "<f4", 1: "<f2"}[typ]
        arr = np.frombuffer(data, dtype=dt, count=n, offset=base + o).astype(np.float32)
        tensors[name] = torch.from_numpy(arr.reshape(list(reversed(ne))).copy())
    return meta, tensors


def rope_adjacent(x, pos, theta):
    # x: [T, heads, hd]; pairs (2i, 2i+1) rotate by pos * theta^(-2i/hd)
    hd = x.shape[-1]
    i = torch.arange(0, hd, 2, dtype=torch.float32)
    freq = 1.0 / (theta ** (i / hd))
    ang = pos[:, None].float() * freq[None, :]
    c, s = ang.cos()[:, None, :], ang.sin()[:, None, :]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x0 * c - x1 * s
    out[..., 1::2] = x0 * s + x1 * c
    return out


def forward(meta, W, ids):
    a = meta["general.architecture"]
    D = meta[a + ".embedding_length"]
    H = meta[a + ".attention.head_count"]
    KV = meta.get(a + ".attention.head_count_kv", H)
    L = meta[a + ".block_count"]
    eps = meta[a + ".attention.layer_norm_rms_epsilon"]
    theta = meta.get(a + ".rope.freq_base", 10000.0)
    hd = D // H
    T = len(ids)
    pos = torch.arange(T)

    def norm(x, w):
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    x = W["token_embd.weight"][torch.tensor(ids)]
    mask = torch.full((T, T), float("-inf")).triu(1)
    for l in range(L):
        p = f"blk.{l}."
        h = norm(x, W[p + "attn_norm.weight"])
        q = rope_adjacent((h @ W[p + "attn_q.weight"].T).view(T, H, hd), pos, theta).transpose(0, 1)
        k = rope_adjacent((h @ W[p + "attn_k.weight"].T).view(T, KV, hd), pos, theta).transpose(0, 1)
        v = (h @ W[p + "attn_v.weight"].T).view(T, KV, hd).transpose(0, 1)
        k = k.repeat_interleave(H // KV, 0)
        v = v.repeat_interleave(H // KV, 0)
        att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(hd) + mask, -1)
        x = x + (att @ v).transpose(0, 1).reshape(T, D) @ W[p + "attn_output.weight"].T
        h = norm(x, W[p + "ffn_norm.weight"])
        g = h @ W[p + "ffn_gate.weight"].T
        u = h @ W[p + "ffn_up.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ W[p + "ffn_down.weight"].T
    x = norm(x, W["output_norm.weight"])
    head = W.get("output.weight", W["token_embd.weight"])
    return x @ head.T


def main():
    taia, model, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    meta, W = read_gguf(model)
    ids = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421]
    out = os.path.join(work, "gguf_logits.f32")
    subprocess.run([taia, "forward", "--model", model, "--prompt-ids", ",".join(map(str, ids)), "--out", out],
                   check=True, stdout=subprocess.DEVNULL)
    vocab = W["token_embd.weight"].shape[0]
    ours = np.fromfile(out, dtype="<f4").reshape(len(ids), vocab)
    with torch.no_grad():
        ref = forward(meta, W, ids).numpy()
    diff = float(np.abs(ours - ref).max())
    print(f"stories260K.gguf: max|diff| = {diff:.3e}, max|logit| = {float(np.abs(ref).max()):.2f}")
    sys.exit(0 if diff <= 1e-4 else 1)


if __name__ == "__main__":
    main()
