"""Interleaved rounds of taia's bench_train and the PyTorch peer; see run_train_bench.sh."""
import os
import re
import statistics
import subprocess
import sys

ROUNDS, TRIALS = int(sys.argv[1]), int(sys.argv[2])
BUILD = os.environ.get("BUILD", "build")
PEER = os.environ.get("TAIA_PEER", "../shared/peers/torch_lora_step.py")
THREADS = "2"


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
