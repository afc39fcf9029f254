"""Crash safety of training output, end to end on stories260K:

1. 20 times in a row, a `taia train --save-every 1` run is killed with SIGKILL at a random
   moment and restarted with `--resume` (a fresh start while no checkpoint is complete). After
   every kill, each checkpoint folder that has its COMPLETE marker must hold a readable adapter,
   optimizer state and trainer state for its step; folders without it (or .tmp- folders) must
   never be taken by --resume. The run that finally completes must produce the adapter of an
   uninterrupted run, byte for byte, and the same losses.
2. A full disk (the file-size limit, RLIMIT_FSIZE, makes writes fail with EFBIG): the run stops
   with exit 1 and a message naming the file; the earlier checkpoints are untouched.
3. An output folder that cannot be created (a path through a regular file): exit 1, clear message.

usage: /usr/bin/python3 test_kill_resume.py TAIA_BINARY FIXTURES WORK_DIR [KILLS]
"""
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "parity"))
from torch_reference import read_safetensors  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, finish, setup  # noqa: E402

TAIA, FIXTURES, WORK, MODEL = setup()
KILLS = int(sys.argv[4]) if len(sys.argv) > 4 else 20


rng = random.Random(11)
data = os.path.join(WORK, "data.jsonl")
with open(data, "w") as f:
    for _ in range(64):
        n, t = rng.choice(["Lily", "Tom", "Sam"]), rng.choice(["ball", "cat", "tree"])
        f.write(json.dumps({"instruction": f"Tell a story about {n} and the {t}.", "input": "",
                            "output": f"{n} had a {t}. {n} played with the {t} every day."}) + "\n")
STEPS = 40
ARGS = ["train", "-m", MODEL, "--data", data, "--max-steps", str(STEPS), "--save-every", "1", "--batch-size", "4",
        "--grad-accum", "2", "--lr", "5e-3", "--threads", "2", "--seed", "5", "--format", "json"]


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def losses(out):
    rows = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
    return {r["step"]: r["loss"] for r in rows}


ref = os.path.join(WORK, "reference")
r = subprocess.run([TAIA, *ARGS, "-o", ref], capture_output=True, text=True, timeout=600)
check(r.returncode == 0, "uninterrupted reference run", r.stderr[-500:])
ref_losses = losses(ref)


def complete_checkpoints(out):
    found = []
    if not os.path.isdir(out):  # killed before it made its output folder (a loaded machine): nothing to check
        return found
    for n in sorted(os.listdir(out)):
        d = os.path.join(out, n)
        if n.startswith("checkpoint-") and ".tmp" not in n and os.path.exists(os.path.join(d, "COMPLETE")):
            found.append(d)
    return found


def verify(out, label):
    """Every complete checkpoint is whole and names its own step."""
    ok = True
    for d in complete_checkpoints(out):
        step = int(os.path.basename(d).split("-")[1])
        try:
            state = json.load(open(os.path.join(d, "trainer_state.json")))
            adapter = read_safetensors(os.path.join(d, "adapter_model.safetensors"))
            opt = read_safetensors(os.path.join(d, "optimizer.safetensors"))
            json.load(open(os.path.join(d, "adapter_config.json")))
            ok = ok and state["step"] == step and len(adapter) == 70 and len(opt) == 140
        except Exception as e:  # noqa: BLE001 - any unreadable file is the failure being tested
            print(f"  {d}: {e}")
            ok = False
    check(ok, f"{label}: every checkpoint with COMPLETE is whole")


out = os.path.join(WORK, "killed")
kills = 0
restarts = 0
final = None
deadline = time.time() + 600
while time.time() < deadline:
    resume = bool(os.path.isdir(out) and complete_checkpoints(out))
    cmd = [TAIA, *ARGS, "-o", out] + (["--resume", out] if resume else [])
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    restarts += 1
    if kills < KILLS:
        try:
            p.wait(timeout=rng.uniform(0.05, 0.8))
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            p.wait()
            kills += 1
            verify(out, f"after kill {kills}")
            continue
    stdout, stderr = p.communicate(timeout=600)
    if p.returncode != 0:
        check(False, "restarted run", stderr[-800:])
        break
    if kills >= KILLS:
        final = stdout
        break
    # Finished before the kill came: start over so that every kill lands in a running job.
    shutil.rmtree(out)
check(kills == KILLS, f"{KILLS} SIGKILLs landed in running jobs", (kills, restarts))
if final is not None:
    check(sha(os.path.join(out, "adapter_model.safetensors")) == sha(os.path.join(ref, "adapter_model.safetensors")),
          "after the kills the final adapter equals the uninterrupted run's, byte for byte")
    got = losses(out)
    check(got == ref_losses, "every step's loss equals the uninterrupted run's",
          [(s, got.get(s), ref_losses[s]) for s in ref_losses if got.get(s) != ref_losses[s]][:5])

# 2. Disk full: files may not grow beyond 64 KiB (the adapter and optimizer files are larger).
full = os.path.join(WORK, "full_disk")
r = subprocess.run([TAIA, *ARGS[:ARGS.index("--max-steps")], "--max-steps", "3", "--save-every", "1",
                    *ARGS[ARGS.index("--batch-size"):], "-o", full], capture_output=True, text=True, timeout=600)
check(r.returncode == 0, "run that makes checkpoints 1-3", r.stderr[-300:])
before = {d: {n: sha(os.path.join(d, n)) for n in os.listdir(d)} for d in complete_checkpoints(full)}


def small_files():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))


r = subprocess.run([TAIA, *ARGS[:ARGS.index("--max-steps")], "--max-steps", "6", "--save-every", "1",
                    *ARGS[ARGS.index("--batch-size"):], "-o", full, "--resume", full], capture_output=True,
                   text=True, timeout=600, preexec_fn=small_files)
check(r.returncode == 1 and "File too large" in r.stderr and "checkpoint-4" in r.stderr,
      "full disk: exit 1 naming the file that could not be written", r.stderr[-400:])
after = {d: {n: sha(os.path.join(d, n)) for n in os.listdir(d)} for d in complete_checkpoints(full)}
check(after == before, "full disk: earlier checkpoints untouched, no new complete checkpoint",
      (sorted(before), sorted(after)))
r = subprocess.run([TAIA, *ARGS[:ARGS.index("--max-steps")], "--max-steps", "6", "--save-every", "1",
                    *ARGS[ARGS.index("--batch-size"):], "-o", full, "--resume", full], capture_output=True,
                   text=True, timeout=600)
check(r.returncode == 0 and "resumed from" in r.stderr and "checkpoint-3" in r.stderr,
      "after the disk is freed the run resumes from the last complete checkpoint", r.stderr[-300:])

# 3. An output folder that cannot be created.
blocker = os.path.join(WORK, "a_file")
open(blocker, "w").close()
r = subprocess.run([TAIA, *ARGS, "-o", os.path.join(blocker, "out")], capture_output=True, text=True, timeout=600)
check(r.returncode == 1 and "cannot create folder" in r.stderr and "a_file" in r.stderr,
      "unwritable output folder: exit 1 with the folder named", r.stderr[-300:])

finish("all crash-safety checks passed")
