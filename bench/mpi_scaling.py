#!/usr/bin/env python3
"""Data-parallel training on this machine: tokens/s of 1 rank x 2 threads against 2 ranks x 1
thread (`mpirun -np 2`), same global batch, LoRA and full fine-tuning, in interleaved rounds; the
communication time per step from metrics.jsonl's `comm_s` (rank 0's seconds inside collectives,
waiting for the other rank included); MPI_Allreduce's cost per size (bench_allreduce); and the
projection to 8 machines from the all-reduce cost and the bytes a step sums.

usage: bench/mpi_scaling.py [--taia build/tools/cli/taia] [--rounds 3] [--steps 6] [--work /tmp/taia-mpi-bench]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import cpu_name  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ap = argparse.ArgumentParser()
ap.add_argument("--taia", default=os.path.join(ROOT, "build/tools/cli/taia"))
ap.add_argument("--allreduce", default=os.path.join(ROOT, "build/bench/bench_allreduce"))
ap.add_argument("--tokenizer", default=os.path.join(ROOT, "../shared/fixtures/models/stories260K/stories260K.gguf"))
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--steps", type=int, default=6)
ap.add_argument("--work", default="/tmp/taia-mpi-bench")
args = ap.parse_args()
MPI = ["mpirun"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])

shutil.rmtree(args.work, ignore_errors=True)
os.makedirs(args.work)
# A 26M-parameter LLaMA (random weights) and 400 paragraphs cut to 128 tokens each.
config = dict(architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=512, intermediate_size=1408,
              num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=8, vocab_size=512,
              max_position_embeddings=512, rms_norm_eps=1e-5, rope_theta=10000.0, bos_token_id=1, eos_token_id=2)
json.dump(config, open(os.path.join(args.work, "config.json"), "w"))
model = os.path.join(args.work, "model")
subprocess.run([args.taia, "init-model", "-c", os.path.join(args.work, "config.json"), "-o", model], check=True,
               capture_output=True)
data = os.path.join(args.work, "data.txt")
with open(data, "w") as f:
    for i in range(400):
        f.write(" ".join(f"The {w} number {i} went to the market and saw a bird." for w in range(12)) + "\n\n")

COMMON = ["train", "-m", model, "--tokenizer", args.tokenizer, "--data", data, "--max-length", "128",
          "--batch-size", "4", "--max-steps", str(args.steps), "--lr", "1e-4", "--format", "json"]
CONFIGS = {"1 rank x 2 threads": ([], ["--threads", "2", "--grad-accum", "4"]),
           "2 ranks x 1 thread": ([*MPI, "-np", "2", "--bind-to", "core"], ["--threads", "1", "--grad-accum", "2"]),
           "2 ranks x 1 thread, sharded": ([*MPI, "-np", "2", "--bind-to", "core"],
                                           ["--threads", "1", "--grad-accum", "2", "--shard-optimizer"]),
           "2 ranks x 1 thread, overlap": ([*MPI, "-np", "2", "--bind-to", "none"],
                                           ["--threads", "1", "--grad-accum", "2", "--overlap-comm"])}


def run(launcher, extra, method, out):
    r = subprocess.run([*launcher, args.taia, *COMMON, *extra, "--method", method, "-o", out],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed: {r.stderr[-800:]}")
    m = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))][1:]  # the first step warms up
    params = int(r.stderr.split(" trainable parameters")[0].rsplit(" ", 1)[1])
    # comm: seconds the step spent in collectives, or with --overlap-comm waiting for them
    comm = statistics.median(x.get("comm_wait_s", x.get("comm_s", 0.0)) for x in m)
    return (statistics.median(x["tokens_per_s"] for x in m), comm, params,
            statistics.median(b["elapsed"] - a["elapsed"] for a, b in zip(m, m[1:])))


results = {}
for rnd in range(args.rounds):
    for method in ("lora", "full"):
        for name, (launcher, extra) in CONFIGS.items():
            if method == "lora" and "sharded" in name:
                continue  # LoRA's optimizer state is small
            tps, comm, params, step_s = run(launcher, extra, method, os.path.join(args.work, "out"))
            results.setdefault((method, name), []).append((tps, comm, step_s))
            results[(method, "params")] = params

ar = json.loads(subprocess.run([*MPI, "-np", "2", args.allreduce, "--json"], capture_output=True, text=True,
                               check=True).stdout)

print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; median over {args.rounds} interleaved rounds of "
      f"{args.steps - 1} steps (global batch 16 x 128 tokens)\n")
print("| method | trainable | bytes summed per step | configuration | tok/s | ratio to 1 rank | comm s/step | step s |")
print("|---|---|---|---|---|---|---|---|")
summary = {}
for method in ("lora", "full"):
    params = results[(method, "params")]
    base = statistics.median(x[0] for x in results[(method, "1 rank x 2 threads")])
    for name in CONFIGS:
        if (method, name) not in results:
            continue
        rows = results[(method, name)]
        tps, comm, step = (statistics.median(x[i] for x in rows) for i in range(3))
        if name == "1 rank x 2 threads":
            summary[method] = dict(params=params, bytes=params * 4, step_1rank=step)
        comm_text = "-" if name.startswith("1 rank") else f"{comm:.4f} ({comm / step * 100:.1f} %)"
        print(f"| {method} | {params:,} | {params * 4 / 2**20:.1f} MiB | {name} | {tps:,.0f} | {tps / base:.2f}x | "
              f"{comm_text} | {step:.2f} |")

print("\nMPI_Allreduce between 2 ranks of this machine (shared memory), in place, F32 sum:\n")
print("| bytes | seconds | bus GB/s |\n|---|---|---|")
for s in ar["sizes"]:
    print(f"| {s['bytes']:,} | {s['seconds']:.6f} | {s['bus_gb_s']:.2f} |")

# Projection: a ring all-reduce over K machines moves 2 (K-1)/K of the bytes through each link and
# takes 2 (K-1) latency steps per 4 MiB bucket.
print("\nProjection to K = 8 machines, each with this machine's step time for its 16 sequences "
      "(global batch 8 x 16), a ring all-reduce over the link (latency 30 us per hop):\n")
print("| method | link | all-reduce s/step | compute s/step | efficiency | speed-up over 1 machine | "
      "efficiency with --overlap-comm |")
print("|---|---|---|---|---|---|---|")
K = 8


def allreduce_seconds(nbytes, gbs):
    return 2 * (K - 1) / K * nbytes / (gbs * 1e9) + 2 * (K - 1) * 30e-6 * max(1, nbytes // (4 << 20))


for method in ("lora", "full"):
    s = summary[method]
    # With --overlap-comm (and a core for the communication thread) only what is left when the
    # backward ends is exposed: the model-level tensors (embeddings, LM head: finished last) and any
    # excess over the backward pass, taken as two thirds of the step.
    late = 2 * config["vocab_size"] * config["hidden_size"] * 4 if method == "full" else 0
    for link, gbs in (("10 GbE (1.1 GB/s)", 1.1), ("25 GbE (2.8 GB/s)", 2.8), ("100 GbE (11 GB/s)", 11.0)):
        t = allreduce_seconds(s["bytes"], gbs)
        eff = s["step_1rank"] / (s["step_1rank"] + t)
        exposed = max(allreduce_seconds(late, gbs) if late else 0.0, t - 2 / 3 * s["step_1rank"])
        eff_overlap = s["step_1rank"] / (s["step_1rank"] + exposed)
        print(f"| {method} | {link} | {t:.4f} | {s['step_1rank']:.2f} | {eff * 100:.1f} % | {K * eff:.2f}x | "
              f"{eff_overlap * 100:.1f} % |")
