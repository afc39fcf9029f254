"""Interleaved rounds of taia's LoRA training step and the PyTorch peer's; see run_train_bench.sh.

  train_bench_rounds.py ROUNDS TRIALS                 the peer's 34M model (bench_train, torch_lora_step.py)
  train_bench_rounds.py ROUNDS TRIALS --preset P      a preset's shape (qwen2-0.5b, qwen2.5-1.5b): `taia bench
                                                      train --preset P` (LoRA r 16, 4 x 256) beside
                                                      bench/torch_amp_step.py --shape P, with peak RSS"""
import json
import os
import re
import statistics
import subprocess
import sys

ROUNDS, TRIALS = int(sys.argv[1]), int(sys.argv[2])
PRESET = sys.argv[sys.argv.index("--preset") + 1] if "--preset" in sys.argv else None
BUILD = os.environ.get("BUILD", "build")
PEER = os.environ.get("TAIA_PEER", "../shared/peers/torch_lora_step.py")
THREADS = "2"


def timed(cmd, env_extra):
    """stdout of cmd and its peak RSS in MB (GNU time's %M)."""
    env = dict(os.environ, **env_extra)
    r = subprocess.run(["/usr/bin/time", "-f", "peak_rss_kb=%M"] + cmd, env=env, capture_output=True, text=True)
    rss = re.search(r"peak_rss_kb=(\d+)", r.stderr)
    if r.returncode != 0:
        print(f"  {' '.join(cmd)} failed: {r.stderr[-400:]}", flush=True)
        return None, None
    return r.stdout, int(rss.group(1)) / 1024 if rss else None


def preset_rounds(preset):
    """taia (F32; --compute bf16 on F32 and on BF16 weights) beside the PyTorch peer at the preset's
    shape (F32; bf16 autocast on F32 and on BF16 weights), each step with AdamW; tokens/s, share of the
    bound (taia's own measurement) and peak RSS, then the medians and ratios over rounds."""
    def taia_cmd(dtype, compute):
        return [f"{BUILD}/tools/cli/taia", "bench", "train", "--preset", preset, "--batch", "4", "--seq", "256",
                "--rank", "16", "--dtype", dtype, "--compute", compute, "--rounds", str(TRIALS), "-t", THREADS,
                "--format", "json"]

    def torch_cmd(weights, precision):
        return ["/usr/bin/python3", "bench/torch_amp_step.py", PEER, str(TRIALS), "--shape", preset, "--weights",
                weights, "--precision", precision, "--with-optimizer-only"]

    configs = [("taia F32", taia_cmd("f32", "f32")),
               ("taia F32 weights, --compute bf16", taia_cmd("f32", "bf16")),
               ("taia BF16 weights, --compute bf16", taia_cmd("bf16", "bf16")),
               ("PyTorch F32", torch_cmd("f32", "f32")),
               ("PyTorch F32 weights, bf16 autocast", torch_cmd("f32", "bf16-autocast")),
               ("PyTorch BF16 weights, bf16 autocast", torch_cmd("bf16", "bf16-autocast"))]
    pairs = [("taia F32", "PyTorch F32"),
             ("taia F32 weights, --compute bf16", "PyTorch F32 weights, bf16 autocast"),
             ("taia BF16 weights, --compute bf16", "PyTorch BF16 weights, bf16 autocast")]
    env = {"OMP_NUM_THREADS": THREADS, "TORCH_THREADS": THREADS}
    results = {}
    for r in range(ROUNDS):
        print(f"== round {r + 1}", flush=True)
        for label, cmd in configs:
            out, rss = timed(cmd, env)
            if out is None:
                continue
            if label.startswith("taia"):
                j = json.loads(out)
                tps, share = j["tokens_per_s"], j["fraction_of_bound"]
            else:
                m = re.search(r"train fwd\+bwd\+AdamW: median=[\d.]+ ms -> (\d+) tokens/s", out)
                tps, share = float(m.group(1)), None
            results.setdefault(label, []).append((tps, share, rss))
            extra = f"  {100 * share:4.0f} % of the bound" if share else ""
            print(f"  {label:40s} {tps:7.1f} tok/s  peak RSS {rss:7.0f} MB{extra}", flush=True)
    print(f"== medians over {ROUNDS} rounds (tokens/s of a step with AdamW; peak RSS)")
    for label, v in results.items():
        shares = [x[1] for x in v if x[1]]
        share = f"  {100 * statistics.median(shares):4.0f} % of the bound" if shares else ""
        print(f"  {label:40s} {statistics.median(x[0] for x in v):7.1f} tok/s  "
              f"{statistics.median(x[2] for x in v):7.0f} MB{share}")
    print("== taia / PyTorch, median of the rounds' ratios (range)")
    for a, b in pairs:
        if a not in results or b not in results:
            continue
        speed = [x[0] / y[0] for x, y in zip(results[a], results[b])]
        rss = [x[2] / y[2] for x, y in zip(results[a], results[b])]
        print(f"  {a:34s} vs {b:36s} speed {statistics.median(speed):.2f}x ({min(speed):.2f}-{max(speed):.2f}), "
              f"peak RSS {statistics.median(rss):.2f}x")


if PRESET:
    preset_rounds(PRESET)
    sys.exit(0)


def run(label, cmd, env_extra):
    env = dict(os.environ, **env_extra)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True).stdout
    fb = re.search(r"train fwd\+bwd: median=([\d.]+) ms.*?-> (\d+) tokens/s", out)
    fbo = re.search(r"train fwd\+bwd\+AdamW: median=([\d.]+) ms.*?-> (\d+) tokens/s", out)
    if not fb or not fbo:
        print(f"  {label}: no result\n{out}", flush=True)
        return None
    phases = re.search(r"phases \(.*", out)
    print(f"  {label:44s} fwd+bwd {int(fb.group(2)):5d} tok/s   with AdamW {int(fbo.group(2)):5d} tok/s", flush=True)
    if phases:
        print(f"    {phases.group(0)}", flush=True)
    return int(fb.group(2)), int(fbo.group(2))


def taia(mode):
    return [f"{BUILD}/bench/bench_train", str(TRIALS), mode]


def peer(*args):
    return ["/usr/bin/python3", PEER, "train", str(TRIALS)] + list(args)


CONFIGS = [
    ("taia F32", taia("f32"), {"OMP_NUM_THREADS": THREADS}),
    ("taia BF16 base, F32 compute", taia("bf16"), {"OMP_NUM_THREADS": THREADS}),
    ("taia BF16 compute (--compute bf16)", taia("bf16c"), {"OMP_NUM_THREADS": THREADS}),
    ("PyTorch F32, environment as set, 2 threads", peer(), {"TORCH_THREADS": "2"}),
    ("PyTorch F32, Cooperlake, 2 threads", peer(), {"TORCH_THREADS": "2", "OPENBLAS_CORETYPE": "Cooperlake"}),
    ("PyTorch F32, Cooperlake, 1 thread", peer(), {"TORCH_THREADS": "1", "OPENBLAS_CORETYPE": "Cooperlake"}),
    ("PyTorch bf16 autocast, 2 threads", ["/usr/bin/python3", "bench/torch_amp_step.py", PEER, str(TRIALS)],
     {"TORCH_THREADS": "2", "OPENBLAS_CORETYPE": "Cooperlake"}),
]
PEER_F32 = [c[0] for c in CONFIGS if c[0].startswith("PyTorch F32")]

print("== machine:", subprocess.run("lscpu | grep 'Model name' | sed 's/  */ /g'", shell=True, capture_output=True,
                                   text=True).stdout.strip(),
      f"| OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '<unset>')} | {ROUNDS} rounds x {TRIALS} trials")
have_peer = os.path.exists(PEER)
ratios = {}
results = {}
for r in range(ROUNDS):
    print(f"== round {r + 1}", flush=True)
    res = {}
    for label, cmd, env in CONFIGS:
        if label.startswith("PyTorch") and not have_peer:
            continue
        res[label] = run(label, cmd, env)
    best = max((res[k] for k in PEER_F32 if res.get(k)), default=None, key=lambda v: v[0])
    if best is None:
        continue
    best_label = max((k for k in PEER_F32 if res.get(k)), key=lambda k: res[k][0])
    amp = res.get("PyTorch bf16 autocast, 2 threads")
    for label in ("taia F32", "taia BF16 base, F32 compute", "taia BF16 compute (--compute bf16)"):
        if not res.get(label):
            continue
        ratios.setdefault((label, "best F32 peer"), []).append(
            (res[label][0] / best[0], res[label][1] / best[1]))
        if amp:
            ratios.setdefault((label, "PyTorch bf16 autocast"), []).append(
                (res[label][0] / amp[0], res[label][1] / amp[1]))
    for k, v in res.items():
        if v:
            results.setdefault(k, []).append(v)
    print(f"  best F32 peer this round: {best_label} ({best[0]} tok/s)", flush=True)

print("== medians over rounds (fwd+bwd / with AdamW tokens/s)")
for k, v in results.items():
    print(f"  {k:44s} {statistics.median(x[0] for x in v):6.0f} / {statistics.median(x[1] for x in v):6.0f}")
print("== ratios, median over rounds (each round's ratio uses that round's runs)")
for (label, ref), v in ratios.items():
    fb = [x[0] for x in v]
    fbo = [x[1] for x in v]
    print(f"  {label:36s} vs {ref:22s} fwd+bwd {statistics.median(fb):.2f}x (range {min(fb):.2f}-{max(fb):.2f}), "
          f"with AdamW {statistics.median(fbo):.2f}x (range {min(fbo):.2f}-{max(fbo):.2f})")
