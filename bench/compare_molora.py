"""MoLoRA training beside LoRA on the PyTorch peer's 34M model (`taia bench train --preset
llama-34m`), in interleaved rounds: each round runs LoRA, MoLoRA top-1 (the official setting) and
MoLoRA top-2, with F32 and with --compute bf16; the table gives tokens/s (median of the timed
steps, then of the rounds) and MoLoRA / LoRA per round (median and range).

usage: /usr/bin/python3 bench/compare_molora.py TAIA_BINARY [rounds] [steps per run]
"""
import json
import statistics
import subprocess
import sys

taia = sys.argv[1]
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
steps = sys.argv[3] if len(sys.argv) > 3 else "5"
CONFIGS = [("LoRA", []), ("MoLoRA, 4 experts, top-1", ["--experts", "4", "--top-k", "1"]),
           ("MoLoRA, 4 experts, top-2", ["--experts", "4", "--top-k", "2"])]
COMPUTES = ["f32", "bf16"]
rates = {(c, name): [] for c in COMPUTES for name, _ in CONFIGS}
cpu = ""
for r in range(rounds):
    for compute in COMPUTES:
        for name, extra in CONFIGS:
            args = [taia, "bench", "train", "--preset", "llama-34m", "--rounds", steps, "--format", "json",
                    "--compute", compute] + (["--dtype", "bf16"] if compute == "bf16" else []) + extra
            j = json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout)
            cpu = j["cpu"]
            rates[(compute, name)].append(j["tokens_per_s"])
            print(f"round {r + 1} {compute} {name}: {j['tokens_per_s']:.0f} tokens/s", file=sys.stderr)
print(f"CPU: {cpu}, 2 threads, batch 4 x 256, rank 8 (alpha 16), {rounds} interleaved rounds\n")
print("| configuration | compute | tokens/s | MoLoRA / LoRA (median, range over rounds) |")
print("|---|---|---|---|")
for compute in COMPUTES:
    lora = rates[(compute, "LoRA")]
    for name, _ in CONFIGS:
        v = rates[(compute, name)]
        ratio = "" if name == "LoRA" else (
            f"{statistics.median([a / b for a, b in zip(v, lora)]):.2f}x "
            f"({min(a / b for a, b in zip(v, lora)):.2f}-{max(a / b for a, b in zip(v, lora)):.2f})")
        print(f"| {name} | {compute} | {statistics.median(v):.0f} | {ratio} |")
