#!/usr/bin/env python3
"""Speed of two builds of taia side by side, in interleaved rounds (A, B, A, B, ...), so that a
change that should not move speed (a restructuring) is measured against the build before it on
the same machine minutes apart. Runs bench_train in its three modes (f32, bf16 base, bf16c
compute) and bench_inference, and prints per round and the median over rounds of each figure
and the ratio B / A.

  OMP_NUM_THREADS=2 bench/compare_builds.py OLD_BENCH_DIR NEW_BENCH_DIR [rounds] [train trials]

A *_BENCH_DIR holds bench_train and bench_inference (e.g. a copy of build/bench from before the
change)."""
import os
import re
import statistics
import subprocess
import sys


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS=os.environ.get(
        "OMP_NUM_THREADS", "2")))
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {r.stderr[-500:]}")
    return r.stdout + r.stderr


def train_figures(out):
    fb = re.search(r"train fwd\+bwd: median=[\d.]+ ms -> (\d+) tokens/s", out)
    fbo = re.search(r"train fwd\+bwd\+AdamW: median=[\d.]+ ms -> (\d+) tokens/s", out)
    return {"fwd+bwd tok/s": float(fb.group(1)), "with AdamW tok/s": float(fbo.group(1))}


def inference_figures(out):
    figures = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 5 and re.match(r"^\d", cells[3] or ""):
            figures[f"{cells[1]} {cells[2]} prefill tok/s"] = float(cells[3])
            figures[f"{cells[1]} {cells[2]} decode tok/s"] = float(cells[4])
    return figures


def measure(bench_dir, trials):
    figures = {}
    for mode in ("f32", "bf16", "bf16c"):
        for k, v in train_figures(run([os.path.join(bench_dir, "bench_train"), str(trials), mode])).items():
            figures[f"train {mode} {k}"] = v
    figures.update(inference_figures(run([os.path.join(bench_dir, "bench_inference")])))
    return figures


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    old, new = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    trials = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"CPU: {cpu}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '2')}, {rounds} rounds")
    per = {"A": [], "B": []}
    for r in range(rounds):
        for name, d in (("A", old), ("B", new)):
            per[name].append(measure(d, trials))
        print(f"round {r + 1}: " + ", ".join(f"{k} {per['B'][-1][k] / per['A'][-1][k]:.3f}" for k in per["A"][-1]),
              flush=True)
    print("\n| figure | A (before) | B (after) | B / A |\n|---|---|---|---|")
    for k in per["A"][0]:
        a = statistics.median(f[k] for f in per["A"])
        b = statistics.median(f[k] for f in per["B"])
        ratio = statistics.median(fb[k] / fa[k] for fa, fb in zip(per["A"], per["B"]))
        print(f"| {k} | {a:g} | {b:g} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
