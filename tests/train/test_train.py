"""`taia train` end to end on the real stories260K model: LoRA lowers training and validation
loss; a run resumed from a checkpoint reproduces the uninterrupted run exactly (also with another
split of the same global batch; a checkpoint of the per-micro-batch-mean build is refused); the adapter
follows PEFT's names and shapes; full fine-tuning writes an HF folder that loads; bad data and
non-finite losses stop with clear messages.

usage: python3 test_train.py TAIA_BINARY FIXTURES WORK_DIR
"""
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, finish, setup  # noqa: E402

TAIA, FIXTURES, WORK, MODEL = setup()


def taia(*args, timeout=300):
    return subprocess.run([TAIA, *args], capture_output=True, text=True, timeout=timeout)


rng = random.Random(0)
NAMES = ["Lily", "Tom", "Sam", "Max", "Sue", "Ben", "Mia", "Tim"]
THINGS = ["ball", "dog", "cat", "tree", "car", "box", "cake", "toy"]
COLORS = ["red", "big", "small", "happy", "blue", "green"]


def record():
    n, t, c = rng.choice(NAMES), rng.choice(THINGS), rng.choice(COLORS)
    return {"instruction": f"Tell a story about {n} and the {t}.", "input": "",
            "output": f"{n} had a {c} {t}. {n} played with the {t} every day. The {t} was {c}."}


def write_jsonl(path, records):
    with open(path, "w") as f:
        for r in records:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


train = write_jsonl(os.path.join(WORK, "train.jsonl"), [record() for _ in range(96)])
val = write_jsonl(os.path.join(WORK, "val.jsonl"), [record() for _ in range(16)])
COMMON = ["-m", MODEL, "--data", train, "--val-data", val, "--lr", "5e-3", "--batch-size", "4", "--grad-accum", "2",
          "--epochs", "2", "--eval-every", "4", "--save-every", "6", "--threads", "2", "--format", "json"]


def metrics(d):
    return [json.loads(l) for l in open(os.path.join(d, "metrics.jsonl"))]


# 1. LoRA lowers training and validation loss.
out = os.path.join(WORK, "lora")
r = taia("train", *COMMON, "-o", out)
check(r.returncode == 0, "LoRA training runs", r.stderr)
m = metrics(out) if r.returncode == 0 else []
vals = [x["val_loss"] for x in m if "val_loss" in x]
check(len(m) == 24 and m[-1]["loss"] < 0.5 * m[0]["loss"], "training loss falls by more than half",
      [x["loss"] for x in m[:2]] + [x["loss"] for x in m[-2:]])
check(len(vals) == 6 and vals[-1] < vals[0], "validation loss falls", vals)
check(all(k in m[0] for k in ("step", "epoch", "loss", "lr", "grad_norm", "tokens_per_s", "elapsed")),
      "metrics.jsonl has every field", m[0] if m else None)
check("trained tokens" in r.stderr and "chat template" in r.stderr, "data summary is logged", r.stderr)

# 2. Resuming from a checkpoint reproduces the uninterrupted run exactly.
resumed = os.path.join(WORK, "resumed")
os.makedirs(resumed)
shutil.copytree(os.path.join(out, "checkpoint-12"), os.path.join(resumed, "checkpoint-12"))
shutil.copy(os.path.join(out, "metrics.jsonl"), resumed)
r = taia("train", *COMMON, "-o", resumed, "--resume", resumed)
check(r.returncode == 0 and "resumed from" in r.stderr, "resume runs", r.stderr)
if r.returncode == 0:
    m2 = metrics(resumed)
    check([x["loss"] for x in m2] == [x["loss"] for x in m] and [x.get("val_loss") for x in m2] ==
          [x.get("val_loss") for x in m], "resumed losses equal the uninterrupted run's, to the bit",
          [(a["loss"], b["loss"]) for a, b in zip(m, m2) if a["loss"] != b["loss"]][:3])
    check(open(os.path.join(out, "adapter_model.safetensors"), "rb").read() ==
          open(os.path.join(resumed, "adapter_model.safetensors"), "rb").read(), "resumed adapter is byte-identical")

# A half-written checkpoint (no COMPLETE marker) is never taken.
fake = os.path.join(WORK, "fake")
shutil.copytree(os.path.join(out, "checkpoint-6"), os.path.join(fake, "checkpoint-6"))
shutil.copytree(os.path.join(out, "checkpoint-12"), os.path.join(fake, "checkpoint-18"))
os.remove(os.path.join(fake, "checkpoint-18", "COMPLETE"))
r = taia("train", *COMMON, "-o", os.path.join(WORK, "fake_out"), "--resume", fake)
check(r.returncode == 0 and "checkpoint-6 at step 6" in r.stderr, "resume skips a checkpoint without COMPLETE",
      r.stderr[-300:])

# A checkpoint of an earlier build (no "step_batches": steps were micro-batches grouped by
# themselves, the loss a mean of their means) is refused naming the change; a resume with another
# split of the same global batch (4 x 2 -> 8 x 1) continues the same steps.
old = os.path.join(WORK, "old_format")
shutil.copytree(os.path.join(out, "checkpoint-12"), os.path.join(old, "checkpoint-12"))
state_path = os.path.join(old, "checkpoint-12", "trainer_state.json")
state = json.load(open(state_path))
check(state.get("global_batch") == 8 and state.get("step_batches"), "trainer_state.json records the global batch "
      "and how steps are made", state)
for k in ("global_batch", "step_batches"):
    state.pop(k, None)
state["micro_batches_per_step"] = 2
json.dump(state, open(state_path, "w"))
r = taia("train", *COMMON, "-o", os.path.join(WORK, "old_out"), "--resume", old)
check(r.returncode == 1 and "averaged the loss per micro-batch" in r.stderr and "Start a new run" in r.stderr,
      "a checkpoint written before the token-mean loss is refused, naming the change", r.stderr[-400:])
resplit = os.path.join(WORK, "resplit")
os.makedirs(resplit)
shutil.copytree(os.path.join(out, "checkpoint-12"), os.path.join(resplit, "checkpoint-12"))
shutil.copy(os.path.join(out, "metrics.jsonl"), resplit)
split8 = list(COMMON)
split8[split8.index("--batch-size") + 1], split8[split8.index("--grad-accum") + 1] = "8", "1"
r = taia("train", *split8, "-o", resplit, "--resume", resplit)
if r.returncode == 0:
    m3 = metrics(resplit)
    worst = max(abs(a["loss"] - b["loss"]) / a["loss"] for a, b in zip(m, m3))
    check(len(m3) == len(m) and worst <= 1e-5, f"a resume as 8 x 1 of a 4 x 2 run continues the same steps "
          f"(losses within {worst:.1e})", worst)
else:
    check(False, "a resume with another split of the global batch runs", r.stderr[-400:])

# 3. The adapter follows PEFT's names and shapes.
cfg = json.load(open(os.path.join(out, "adapter_config.json")))
check(cfg["peft_type"] == "LORA" and cfg["task_type"] == "CAUSAL_LM" and cfg["r"] == 16 and cfg["lora_alpha"] == 32
      and sorted(cfg["target_modules"]) == sorted(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                   "down_proj"]) and cfg["bias"] == "none", "adapter_config.json", cfg)
raw = open(os.path.join(out, "adapter_model.safetensors"), "rb").read()
(n,) = struct.unpack_from("<Q", raw)
header = json.loads(raw[8:8 + n])
dims = {"q_proj": (64, 64), "k_proj": (64, 32), "v_proj": (64, 32), "o_proj": (64, 64), "gate_proj": (64, 172),
        "up_proj": (64, 172), "down_proj": (172, 64)}  # (in, out) for stories260K
pat = re.compile(r"^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+_proj)\.lora_([AB])\.weight$")
bad = []
for k, v in header.items():
    if k == "__metadata__":
        continue
    mm = pat.match(k)
    if not mm:
        bad.append(k)
        continue
    fin, fout = dims[mm.group(3)]
    want = [16, fin] if mm.group(4) == "A" else [fout, 16]
    if v["shape"] != want or v["dtype"] != "F32":
        bad.append((k, v["shape"]))
check(len(header) - ("__metadata__" in header) == 5 * 7 * 2 and not bad, "adapter tensors: PEFT keys and shapes", bad[:3])

# 4. Full fine-tuning writes an HF folder that loads and generates; attention-only training works.
full = os.path.join(WORK, "full")
r = taia("train", "-m", MODEL, "--data", train, "-o", full, "--method", "full", "--lr", "1e-3", "--batch-size", "8",
         "--grad-accum", "1", "--max-steps", "6", "--format", "json")
check(r.returncode == 0, "full fine-tuning runs", r.stderr)
mf = metrics(full) if r.returncode == 0 else []
check(len(mf) == 6 and mf[-1]["loss"] < mf[0]["loss"], "full fine-tuning lowers the loss", [x["loss"] for x in mf])
g = taia("generate", "-m", full, "--prompt-ids", "1,403", "-n", "5", "--temperature", "0", "--format", "json")
check(g.returncode == 0 and len(json.loads(g.stdout)["output_ids"]) == 5, "the fully fine-tuned folder loads",
      g.stderr)
r = taia("train", "-m", MODEL, "--data", train, "-o", os.path.join(WORK, "toa"), "--method", "full", "--targets",
         "attn", "--max-steps", "2", "--batch-size", "4", "--grad-accum", "1", "--format", "json")
check(r.returncode == 0 and "q_proj,k_proj,v_proj,o_proj" in r.stderr, "train only attention (TOA)", r.stderr)

# 5. Bad data and runaway training stop with clear messages.
def expect_fail(label, data_lines, needle, *extra):
    path = write_jsonl(os.path.join(WORK, label.replace(" ", "_") + ".jsonl"), data_lines)
    r = taia("train", "-m", MODEL, "--data", path, "-o", os.path.join(WORK, "bad_out"), "--max-steps", "1", *extra)
    check(r.returncode == 1 and needle in r.stderr, f"bad data: {label}", r.stderr[-300:])
    return path


expect_fail("bad json line", [record(), "{oops", record()], ":2: invalid JSON")
expect_fail("missing output", [record(), {"instruction": "x"}], ":2: missing field 'output'")
expect_fail("unknown format", [{"prompt": "x", "completion": "y"}], ":1: expected Alpaca")
expect_fail("no assistant turn", [{"messages": [{"role": "user", "content": "hi"}]}], "no assistant turn")
expect_fail("bad role", [{"conversations": [{"from": "robot", "value": "x"}]}], "role expected")
expect_fail("empty file", [], "no usable records")
p = expect_fail("skippable", [record(), "{oops"], ":2: invalid JSON")
r = taia("train", "-m", MODEL, "--data", p, "-o", os.path.join(WORK, "skip_out"), "--max-steps", "1",
         "--skip-bad-records", "--batch-size", "1", "--grad-accum", "1")
check(r.returncode == 0 and "skipped 1 bad records" in r.stderr, "--skip-bad-records skips and counts", r.stderr)
r = taia("train", "-m", MODEL, "--data", train, "-o", os.path.join(WORK, "trunc_out"), "--max-steps", "1",
         "--max-length", "20", "--batch-size", "2", "--grad-accum", "1")
check(r.returncode == 0 and "96 sequences truncated to --max-length 20" in r.stderr,
      "truncation is counted in a warning", r.stderr)
r = taia("train", "-m", MODEL, "--data", train, "-o", os.path.join(WORK, "short_out"), "--max-steps", "1",
         "--max-length", "4")
check(r.returncode == 1 and "no example has a token to train on" in r.stderr, "all prompts truncated away",
      r.stderr)
r = taia("train", "-m", MODEL, "--data", train, "-o", os.path.join(WORK, "mem_out"), "--max-steps", "1",
         "--max-memory", "1M")
check(r.returncode == 1 and "needs an estimated" in r.stderr and "--max-memory allows 1.0 MiB" in r.stderr and
      "--batch-size" in r.stderr and "--recompute" in r.stderr and not os.path.exists(os.path.join(WORK, "mem_out", "metrics.jsonl")),
      "--max-memory: refused before the first step, with the estimate and what would fit", r.stderr[-500:])
r = taia("train", "-m", MODEL, "--data", train, "-o", os.path.join(WORK, "mem_out"), "--max-steps", "1",
         "--max-memory", "lots")
check(r.returncode == 2, "--max-memory lots: usage error", r.stderr)
nan_out = os.path.join(WORK, "nan_out")
r = taia("train", "-m", MODEL, "--data", train, "-o", nan_out, "--lr", "1e30", "--max-grad-norm", "0",
         "--schedule", "constant", "--warmup-ratio", "0", "--max-steps", "20", "--save-every", "1",
         "--batch-size", "4", "--grad-accum", "1")
check(r.returncode == 1 and "non-finite" in r.stderr and "Last good checkpoint" in r.stderr,
      "a non-finite loss stops the run and names the last good checkpoint", r.stderr[-300:])
finish()
