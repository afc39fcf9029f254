"""Data-parallel training over MPI (`mpirun -np 2 taia train`, oversubscribed on the 2-core CI
machine) against the one-process run with the same global batch (--grad-accum doubled):

- LoRA and full fine-tuning, 20 steps: every step's loss within LOSS_RTOL (relative) of the
  one-process loss, the final adapter / model within TENSOR_RTOL of the largest value. The
  tolerances are F32 reduction-order noise: two ranks add their micro-batches' gradients as
  (g1 + g2) + (g3 + g4) where one process adds ((g1 + g2) + g3) + g4, and AdamW's 1 / sqrt(v)
  enlarges those last-bit differences for elements with tiny second moments.
- --shard-optimizer (ZeRO-1), also with many small buckets, and --overlap-comm (buckets summed on
  a communication thread during the backward pass): bit-identical to the plain 2-rank run; the
  peak RSS of every rank falls with sharding (a 13M-parameter model, full fine-tuning).
- Resume: a 2-rank checkpoint continued on 1 rank, a 1-rank checkpoint on 2 sharded ranks: the
  losses continue as in the uninterrupted run; a run whose global batch differs is refused.
- Faults: a rank killed with SIGKILL ends the job within 30 s with a message naming it, and the
  last checkpoint resumes; ranks given different data stop with a message naming what differs; a
  rank that cannot read its data file ends the job naming the rank; other commands are refused
  under mpirun.

usage: python3 test_mpi.py TAIA_BINARY FIXTURES WORK_DIR
"""
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, finish, setup  # noqa: E402

TAIA, FIXTURES, WORK, MODEL = setup()
LOSS_RTOL = 1e-5
TENSOR_RTOL = 1e-3
MPIRUN = shutil.which("mpirun")
if not MPIRUN:
    print("skip: mpirun not found (Open MPI: apt install openmpi-bin libopenmpi-dev, as scripts/setup.sh does)")
    sys.exit(77)
# One thread per rank, no binding: two ranks share the CI machine's two cores.
MPI = [MPIRUN, "--oversubscribe", "--bind-to", "none", "-x", "OMP_NUM_THREADS=1"]
for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):  # the sanitizer build's settings, when set
    if var in os.environ:
        MPI += ["-x", var]
if os.geteuid() == 0:
    MPI.insert(1, "--allow-run-as-root")


def run(cmd, timeout=300):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def taia(*args, ranks=0, timeout=300):
    cmd = [TAIA, *args] if ranks == 0 else [*MPI, "-np", str(ranks), TAIA, *args]
    r = run(cmd, timeout)
    if r.returncode != 0:
        print(f"$ {' '.join(cmd)}\n{r.stderr[-1500:]}")
    return r


rng = random.Random(0)
NAMES = ["Lily", "Tom", "Sam", "Max", "Sue", "Ben", "Mia", "Tim"]
THINGS = ["ball", "dog", "cat", "tree", "car", "box", "cake", "toy"]
DATA = os.path.join(WORK, "train.jsonl")
with open(DATA, "w") as f:
    for _ in range(200):
        n, t = rng.choice(NAMES), rng.choice(THINGS)
        f.write(json.dumps({"instruction": f"Tell a story about {n} and the {t}.", "input": "",
                            "output": f"{n} had a {t}. {n} played with the {t}. " * rng.randint(1, 3)}) + "\n")

probe = taia("train", "-m", MODEL, "--data", DATA, "-o", os.path.join(WORK, "probe"), "--max-steps", "1",
             "--batch-size", "1", "--grad-accum", "1", ranks=2)
if "built without MPI" in probe.stderr:
    print("skip: this taia was built without MPI (CMake found no MPI library)")
    sys.exit(77)
check(probe.returncode == 0, "mpirun -np 2 taia train runs", probe.stderr[-500:])


def metrics(d):
    return [json.loads(line) for line in open(os.path.join(d, "metrics.jsonl"))]


def tensors(path):
    """name -> list of floats of an F32 safetensors file."""
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8:8 + n])
    out = {}
    for k, v in header.items():
        if k != "__metadata__":
            s, e = v["data_offsets"]
            out[k] = struct.unpack(f"<{(e - s) // 4}f", b[8 + n + s:8 + n + e])
    return out


def loss_diff(a, b, first=1):
    """Largest relative loss difference over the steps >= first both runs logged."""
    la = {m["step"]: m for m in metrics(a)}
    lb = {m["step"]: m for m in metrics(b)}
    steps = [s for s in la if s >= first and s in lb]
    worst = max(abs(la[s]["loss"] - lb[s]["loss"]) / max(1.0, abs(la[s]["loss"])) for s in steps)
    for s in steps:  # validation losses where both have one
        if "val_loss" in la[s] and "val_loss" in lb[s]:
            worst = max(worst, abs(la[s]["val_loss"] - lb[s]["val_loss"]) / max(1.0, la[s]["val_loss"]))
    return worst, len(steps)


def tensor_diff(a, b):
    ta, tb = tensors(a), tensors(b)
    if set(ta) != set(tb):
        return float("inf")
    top = max(max(abs(x) for x in v) for v in ta.values())
    return max(max(abs(x - y) for x, y in zip(ta[k], tb[k])) for k in ta) / top


def same_bits(a, b):
    return [m["loss"] for m in metrics(a)] == [m["loss"] for m in metrics(b)]


BASE = ["-m", MODEL, "--data", DATA, "--batch-size", "2", "--threads", "1", "--seed", "3"]
COMMON = BASE + ["--max-steps", "20", "--format", "json"]

# 1. LoRA: 2 ranks x accum 2 against 1 process x accum 4 (global batch 8), with validation.
lora = COMMON + ["--lr", "5e-3", "--val-split", "0.1", "--eval-every", "10"]
one, two = os.path.join(WORK, "lora1"), os.path.join(WORK, "lora2")
r1 = taia("train", *lora, "--grad-accum", "4", "-o", one)
r2 = taia("train", *lora, "--grad-accum", "2", "-o", two, ranks=2)
if r1.returncode == 0 and r2.returncode == 0:
    d, n = loss_diff(one, two)
    check(n == 20 and d <= LOSS_RTOL, f"LoRA: 20 losses and validation losses of 2 ranks within {LOSS_RTOL} of one "
          f"process (worst {d:.2e})", (n, d))
    t = tensor_diff(os.path.join(one, "adapter_model.safetensors"), os.path.join(two, "adapter_model.safetensors"))
    check(t <= TENSOR_RTOL, f"LoRA: final adapters within {TENSOR_RTOL} of the largest value (worst {t:.2e})", t)
    m = metrics(two)
    check(len(m) == 20 and all(x["ranks"] == 2 and x["global_batch"] == 8 and x["comm_s"] >= 0 for x in m),
          "metrics.jsonl: one line per step (rank 0 alone writes), with ranks, global batch and comm_s", m[:1])
    s = json.loads(r2.stdout)
    check(s["ranks"] == 2 and s["global_batch"] == 8 and len(s["peak_rss_per_rank"]) == 2,
          "the summary names the ranks, the global batch and each rank's peak RSS", s)
    check("global batch 8 sequences per step" in r2.stderr and r2.stderr.count("train: ") == 1,
          "the plan is logged once, with the global batch", r2.stderr[-600:])

# 1c. The same step however the batch is split: on sequences of about the same length (so the length
#     grouping puts them together) whose replies, the trained tokens, are 1 to 26 sentences, a global batch of 8 as 8, 4 x 2, 2 x 4 (one process) and 4 on each of 2 ranks
#     gives the same per-step losses (the token mean of the global batch) within LOSS_RTOL and the
#     same adapter / model within SPLIT_TENSOR_RTOL of its largest value, over 12 steps. MoLoRA
#     without the balance loss too; its balance loss (the Switch aux of each micro-batch's routing,
#     weighed by the micro-batch's share of the step's tokens) is the one term that depends on the
#     split: with a coefficient the runs part after step 1.
SPLIT_TENSOR_RTOL = 1e-4
UNEQUAL = os.path.join(WORK, "unequal.jsonl")
with open(UNEQUAL, "w") as f:  # the length grouping puts sequences of about 26 sentences together
    for i in range(64):
        n, t = NAMES[i % 8], THINGS[(i * 3) % 8]
        reply = [1, 24, 2, 16, 1, 8, 3, 12][(i + i // 8) % 8] + i % 3  # 1-26 sentences of reply
        f.write(json.dumps({"instruction": f"Tell a story about {n}. " + "Make it a good one. " * (26 - reply),
                            "input": "", "output": f"{n} had a {t}. " * reply}) + "\n")
SPLITS = [("8", 0, ["--batch-size", "8", "--grad-accum", "1"]), ("4x2", 0, ["--batch-size", "4", "--grad-accum", "2"]),
          ("2x4", 0, ["--batch-size", "2", "--grad-accum", "4"]), ("np2x4", 2, ["--batch-size", "4", "--grad-accum", "1"])]
split_common = ["-m", MODEL, "--data", UNEQUAL, "--threads", "1", "--seed", "5", "--max-steps", "12",
                "--max-length", "256", "--format", "json"]
# lr 2e-3 for the adapters: AdamW's 1 / sqrt(v) enlarges F32 summation-order noise on elements with
# tiny second moments (at 3e-3 an attention lora_A element of MoLoRA's run parted by 1.3e-4).
SPLIT_CASES = [("LoRA", ["--lr", "2e-3"], ["adapter_model.safetensors"]),
               ("full", ["--method", "full", "--lr", "1e-3"], ["model.safetensors"]),
               ("MoLoRA top-2", ["--method", "molora", "--top-k", "2", "--lr", "2e-3"],
                ["adapter_model.safetensors", "molora_model.safetensors"])]
if os.environ.get("TAIA_SANITIZED") == "1":  # the sanitizer pass: the same code paths, a third of the runs
    print("note: sanitizer build: the split check runs for LoRA only (full, MoLoRA and the balance loss in the "
          "release build)")
    SPLIT_CASES = SPLIT_CASES[:1]
for label, extra, results in SPLIT_CASES:
    outs = {}
    for name, ranks, split in SPLITS:
        outs[name] = os.path.join(WORK, f"split_{label.split()[0]}_{name}")
        shutil.rmtree(outs[name], ignore_errors=True)
        r = taia("train", *split_common, *extra, *split, "-o", outs[name], ranks=ranks)
        check(r.returncode == 0, f"{label} split {name} runs", r.stderr[-300:])
    if all(os.path.exists(os.path.join(d, f)) for d in outs.values() for f in results):
        others = [n for n in outs if n != "8"]
        worst_loss = max(loss_diff(outs["8"], outs[n])[0] for n in others)
        worst_tensor = max(tensor_diff(os.path.join(outs["8"], f), os.path.join(outs[n], f))
                           for n in others for f in results)
        steps = min(loss_diff(outs["8"], outs[n])[1] for n in others)
        check(steps == 12 and worst_loss <= LOSS_RTOL and worst_tensor <= SPLIT_TENSOR_RTOL,
              f"{label}: batch 8 = 4 x 2 = 2 x 4 = 2 ranks x 4 over 12 steps: losses within {LOSS_RTOL} "
              f"(worst {worst_loss:.1e}), {' and '.join(results)} within {SPLIT_TENSOR_RTOL} of the largest value "
              f"(worst {worst_tensor:.1e})", (steps, worst_loss, worst_tensor))
# The balance loss: the one split-dependent term (the step-1 losses agree, the later ones do not).
bal = {}
for name, ranks, split in SPLITS[:2] if len(SPLIT_CASES) == 3 else []:
    bal[name] = os.path.join(WORK, f"split_balance_{name}")
    shutil.rmtree(bal[name], ignore_errors=True)
    taia("train", *split_common, "--lr", "3e-3", "--method", "molora", "--top-k", "2", "--molora-balance-coef", "0.05",
         *split,
         "-o", bal[name], ranks=ranks)
if bal and all(os.path.exists(os.path.join(d, "metrics.jsonl")) for d in bal.values()):
    ma, mb = metrics(bal["8"]), metrics(bal["4x2"])
    first = abs(ma[0]["loss"] - mb[0]["loss"]) / ma[0]["loss"]
    later = max(abs(a["loss"] - b["loss"]) / a["loss"] for a, b in zip(ma[1:], mb[1:]))
    check(first <= LOSS_RTOL and later > LOSS_RTOL, "MoLoRA's balance loss depends on the split: step 1 agrees "
          f"({first:.1e}), later steps part ({later:.1e})", (first, later))

# 1b. By epochs: 180 examples in global batches of 8 (2 ranks x 2 micro-batches of 2) are 23 steps
#     per epoch, the last of 4 examples: 2 micro-batches, both rank 0's, which rank 1 has no part of.
#     MoLoRA, 1 epoch (23 steps): routing counts and balance losses summed over the ranks. Top-k
#     routing is discrete: a near-tie that reduction-order noise flips moves a token to another
#     expert, so longer MoLoRA runs agree only until such a flip (a 2-epoch run flipped one in
#     the clang build); one epoch stays clear of it in both builds.
#     LoRA, 2 epochs (46 steps): each epoch ends in its short step, no empty step.
by_epochs = BASE + ["--lr", "2e-3", "--val-split", "0.1", "--format", "json"]
for label, extra, steps in [("MoLoRA, 1 epoch", ["--epochs", "1", "--method", "molora", "--top-k", "2",
                                                  "--molora-balance-coef", "0.01"], 23),
                            ("LoRA, 2 epochs", ["--epochs", "2"], 46)]:
    one, two = os.path.join(WORK, "epochs1"), os.path.join(WORK, "epochs2")
    for d in (one, two):
        shutil.rmtree(d, ignore_errors=True)
    r1 = taia("train", *by_epochs, *extra, "--grad-accum", "4", "-o", one)
    r2 = taia("train", *by_epochs, *extra, "--grad-accum", "2", "-o", two, ranks=2)
    if r1.returncode != 0 or r2.returncode != 0:
        check(False, f"{label} runs", (r1.stderr[-300:], r2.stderr[-300:]))
        continue
    d, n = loss_diff(one, two)
    ma, mb = metrics(one), metrics(two)
    ok = n == steps and len(ma) == len(mb) == steps and all(x["loss"] > 0 for x in ma + mb) and d <= LOSS_RTOL
    detail = f"{steps} steps, none empty, losses within {LOSS_RTOL} (worst {d:.2e})"
    if "expert_load" in ma[0]:
        load = max(abs(x - y) for a, b in zip(ma, mb) for x, y in zip(a["expert_load"], b["expert_load"]))
        bal = max(abs(a["balance_loss"] - b["balance_loss"]) / a["balance_loss"] for a, b in zip(ma, mb))
        # A near-tie that reduction-order noise flips moves one routing slot: f moves by 1 / (N k),
        # the balance loss by ~1e-5 relative; the loads' tolerance covers it (1e-3).
        ok = ok and load <= 1e-3 and bal <= 1e-3
        detail += f", expert loads within 1e-3 (worst {load:.1e}), balance losses (worst {bal:.1e})"
    check(ok, f"{label} by epochs, a last step rank 1 has no part of: {detail}", (len(ma), len(mb), n, d))

# 2. Full fine-tuning: 2 ranks against one process; sharded (also in 0.01 MiB buckets, which cut
#    tensors) bit-identical to unsharded; checkpoints every 10 steps for the resume checks.
full = COMMON + ["--lr", "1e-3", "--method", "full", "--save-every", "10"]
runs = {}
for name, ranks, extra in [("full1", 0, ["--grad-accum", "4"]), ("full2", 2, ["--grad-accum", "2"]),
                           ("shard", 2, ["--grad-accum", "2", "--shard-optimizer"]),
                           ("shard_small", 2, ["--grad-accum", "2", "--shard-optimizer", "--bucket-mb", "0.01"]),
                           ("overlap", 2, ["--grad-accum", "2", "--overlap-comm", "--bucket-mb", "0.01"]),
                           ("overlap_shard", 2, ["--grad-accum", "2", "--overlap-comm", "--shard-optimizer"])]:
    runs[name] = os.path.join(WORK, name)
    r = taia("train", *full, *extra, "-o", runs[name], ranks=ranks)
    check(r.returncode == 0, f"full fine-tuning run {name}", r.stderr[-400:])
if all(os.path.exists(os.path.join(d, "model.safetensors")) for d in runs.values()):
    d, n = loss_diff(runs["full1"], runs["full2"])
    check(n == 20 and d <= LOSS_RTOL, f"full: 20 losses of 2 ranks within {LOSS_RTOL} of one process (worst {d:.2e})",
          (n, d))
    t = tensor_diff(os.path.join(runs["full1"], "model.safetensors"), os.path.join(runs["full2"], "model.safetensors"))
    check(t <= TENSOR_RTOL, f"full: final models within {TENSOR_RTOL} (worst {t:.2e})", t)
    for name in ("shard", "shard_small", "overlap", "overlap_shard"):
        check(same_bits(runs["full2"], runs[name]), f"{name}: losses bit-identical to the plain 2-rank run")
        for f in ("model.safetensors", "checkpoint-20/optimizer.safetensors"):
            check(tensors(os.path.join(runs["full2"], f)) == tensors(os.path.join(runs[name], f)),
                  f"{name}: {f} bit-identical (a gathered optimizer state has the one-process layout)")
    m = metrics(runs["overlap"])
    # 0.01 MiB buckets: each layer's tensors fill many; all but the model-level ones (embeddings,
    # final norm, LM head: finished last) go out while earlier layers still run backward.
    check(all(x["comm_wait_s"] >= 0 and 0 < x["buckets_during_backward"] < x["buckets"] for x in m),
          "--overlap-comm: buckets summed during the backward pass in every step "
          f"({m[0]['buckets_during_backward']} of {m[0]['buckets']})", m[:1])

# 3. Resume across rank counts: the losses of steps 11-20 continue the uninterrupted run.
for label, src, ranks, extra in [("2 ranks -> 1 rank", "full2", 0, ["--grad-accum", "4"]),
                                 ("1 rank -> 2 sharded ranks", "full1", 2, ["--grad-accum", "2", "--shard-optimizer"])]:
    out = os.path.join(WORK, "resume_" + src)
    r = taia("train", *full, *extra, "-o", out, "--resume", os.path.join(runs[src], "checkpoint-10"), ranks=ranks)
    if r.returncode == 0:
        d, n = loss_diff(runs["full1"], out, first=11)
        check(n == 10 and d <= LOSS_RTOL, f"resume {label}: steps 11-20 within {LOSS_RTOL} of the uninterrupted "
              f"run (worst {d:.2e})", (n, d))
    else:
        check(False, f"resume {label}", r.stderr[-400:])
r = taia("train", *full, "--grad-accum", "2", "-o", os.path.join(WORK, "resume_bad"), "--resume",
         os.path.join(runs["full2"], "checkpoint-10"))
check(r.returncode == 1 and "took 8 sequences" in r.stderr and "take 4 (2 x 2 x 1 ranks)" in r.stderr,
      "a resume with another global batch is refused, naming both", r.stderr[-300:])

# 4. --shard-optimizer: peak RSS per rank falls (13M parameters: AdamW's moments are 107 MB). A
#    sharded step holds up to ~2.5 buckets more than an unsharded one (Open MPI's reduce-scatter
#    works on a copy of the bucket): 4 MiB buckets (the default) keep that small beside the saving.
config = dict(architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=512, intermediate_size=1408,
              num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=8, vocab_size=512,
              max_position_embeddings=256, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
              bos_token_id=1, eos_token_id=2)
os.makedirs(os.path.join(WORK, "big_config"))
json.dump(config, open(os.path.join(WORK, "big_config", "config.json"), "w"))
big = os.path.join(WORK, "big")
taia("init-model", "-c", os.path.join(WORK, "big_config", "config.json"), "-o", big)
rss = {}
SANITIZED = os.environ.get("TAIA_SANITIZED") == "1"
if SANITIZED:
    print("skip: the RSS comparison in the sanitizer build (ASan's shadow memory and quarantine decide RSS)")
for shard in (False, True) if not SANITIZED else ():
    r = taia("train", "-m", big, "--tokenizer", MODEL, "--data", DATA, "--method", "full", "--max-steps", "3",
             "--batch-size", "1", "--grad-accum", "1", "--max-length", "32", "--threads", "1", "--format", "json",
             "--bucket-mb", "4",
             "-o", os.path.join(WORK, f"big_out_{shard}"), *(["--shard-optimizer"] if shard else []), ranks=2)
    if r.returncode == 0:
        rss[shard] = json.loads(r.stdout)["peak_rss_per_rank"]
if len(rss) == 2:
    mib = {k: [b / 2**20 for b in v] for k, v in rss.items()}
    # Each rank keeps half of m and v: 2 x 4 B x 13.4M / 2 = 54 MB less; asked: at least 30 MiB.
    check(all(s <= u - 30 for s, u in zip(mib[True], mib[False])),
          f"--shard-optimizer: peak RSS per rank {['%.0f' % x for x in mib[False]]} MiB -> "
          f"{['%.0f' % x for x in mib[True]]} MiB", mib)
elif not SANITIZED:
    check(False, "13M-parameter runs for the RSS comparison")

# 5. Faults.
out = os.path.join(WORK, "killed")
FULL_LONG = BASE + ["--lr", "1e-3", "--method", "full", "--save-every", "5"]
job = subprocess.Popen([*MPI, "-np", "2", TAIA, "train", *FULL_LONG, "--max-steps", "100000", "--grad-accum", "2",
                        "-o", out], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
deadline = time.time() + 60
while time.time() < deadline and job.poll() is None and not os.path.exists(os.path.join(out, "checkpoint-10")):
    time.sleep(0.1)
rank1 = None
for pid in os.listdir("/proc"):
    try:
        env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        continue
    if b"OMPI_COMM_WORLD_RANK=1" in env and out.encode() in cmdline:
        rank1 = int(pid)
check(rank1 is not None, "found rank 1 of the running job", job.poll() is not None and job.communicate()[1][-500:])
if rank1:
    killed_at = time.time()
    os.kill(rank1, signal.SIGKILL)
    try:
        _, err = job.communicate(timeout=30)
        took = time.time() - killed_at
        check(job.returncode != 0 and "rank 1" in err, f"a killed rank ends the job in {took:.1f} s (<= 30 s) with a "
              "message naming it", err[-400:])
    except subprocess.TimeoutExpired:
        job.kill()
        check(False, "a killed rank ends the job within 30 s")
    ckpts = sorted(int(n.split("-")[1]) for n in os.listdir(out) if n.startswith("checkpoint-") and ".tmp" not in n)
    last = ckpts[-1] if ckpts else 0
    r = taia("train", *FULL_LONG, "--max-steps", str(last + 2), "--grad-accum", "4", "-o", out, "--resume", out)
    check(r.returncode == 0 and f"at step {last}" in r.stderr,
          f"the last complete checkpoint (step {last}) of the killed job resumes", r.stderr[-300:])
else:
    job.kill()
    job.communicate()

half = os.path.join(WORK, "half.jsonl")
with open(half, "w") as f:
    f.writelines(open(DATA).readlines()[:100])
base = ["train", "-m", MODEL, "--max-steps", "5", "--batch-size", "2", "--grad-accum", "2", "--threads", "1",
        "-o", os.path.join(WORK, "mpmd")]
for label, second, needle in [("ranks given different data", ["--data", half], "the ranks disagree on the tokenized"),
                              ("ranks given different bucket sizes", ["--data", DATA, "--bucket-mb", "1"],
                               "disagree on the training option bucket_mb"),
                              ("a rank that cannot read its data", ["--data", os.path.join(WORK, "missing.jsonl")],
                               "(rank 1 of 2): " + os.path.join(WORK, "missing.jsonl"))]:
    t0 = time.time()
    r = run([*MPI, "-np", "1", TAIA, *base, "--data", DATA, ":", "-np", "1", TAIA, *base, *second], timeout=60)
    check(r.returncode != 0 and needle in r.stderr and "rank 1 of 2" in r.stderr,
          f"{label}: the job stops in {time.time() - t0:.1f} s naming the rank and the cause", r.stderr[-500:])

# Two random bases of one shape (the tokenizer and data agree): LoRA's frozen base is compared too.
small = dict(config, hidden_size=64, intermediate_size=172, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=4)
json.dump(small, open(os.path.join(WORK, "small.json"), "w"))
bases = []
for seed in ("1", "2"):
    bases.append(os.path.join(WORK, "small_" + seed))
    taia("init-model", "-c", os.path.join(WORK, "small.json"), "--seed", seed, "-o", bases[-1])
lora_base = ["train", "--tokenizer", MODEL, "--data", DATA, "--max-steps", "2", "--batch-size", "2", "--threads", "1",
             "-o", os.path.join(WORK, "two_bases")]
r = run([*MPI, "-np", "1", TAIA, *lora_base, "-m", bases[0], ":", "-np", "1", TAIA, *lora_base, "-m", bases[1]],
        timeout=60)
check(r.returncode != 0 and "disagree on the base model's weights" in r.stderr,
      "ranks given different base models (same shape, LoRA): the job stops naming the weights", r.stderr[-400:])

r = run([*MPI, "-np", "2", TAIA, "generate", "-m", MODEL, "--prompt", "Hi"])
check(r.returncode != 0 and "only 'taia train' runs distributed" in r.stderr,
      "other commands are refused under mpirun", r.stderr[-300:])

finish()
