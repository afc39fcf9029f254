"""MoLoRA end to end on the real stories260K model: `taia train --method molora` lowers the loss;
the four modes generate and evaluate; the TAIA export of a MoLoRA adapter is byte-identical to
the export of its attention LoRA alone; experts are refused where they cannot go (merge, GGUF
LoRA); with top-1 the routers keep their initial weights (the official behaviour), with top-2 and
the balance loss every expert of every router gets 10-40 % of the routing slots on the training
data (`inspect --data`); a resumed run reproduces the uninterrupted one; MoLoRA options without
--method molora are usage errors.

usage: python3 test_molora.py TAIA_BINARY FIXTURES WORK_DIR
"""
import json
import os
import random
import shutil
import subprocess
import sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, finish, setup  # noqa: E402

TAIA, FIXTURES, WORK, MODEL = setup()
TASKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "eval", "tasks")


def taia(*args, timeout=300):
    return subprocess.run([TAIA, *args], capture_output=True, text=True, timeout=timeout)


def read(path):
    with open(path, "rb") as f:
        return f.read()


rng = random.Random(1)
NAMES = ["Lily", "Tom", "Sam", "Max", "Sue", "Ben", "Mia", "Tim"]
THINGS = ["ball", "dog", "cat", "tree", "car", "box", "cake", "toy"]
COLORS = ["red", "big", "small", "happy", "blue", "green"]
train = os.path.join(WORK, "train.jsonl")
with open(train, "w") as f:
    for _ in range(96):
        n, t, c = rng.choice(NAMES), rng.choice(THINGS), rng.choice(COLORS)
        f.write(json.dumps({"instruction": f"Tell a story about {n} and the {t}.", "input": "",
                            "output": f"{n} had a {c} {t}. {n} played with the {t} every day. The {t} was {c}."}) + "\n")
COMMON = ["-m", MODEL, "--data", train, "--method", "molora", "--lr", "5e-3", "--batch-size", "4", "--grad-accum", "2",
          "--epochs", "2", "--threads", "2", "--format", "json"]


def metrics(d):
    return [json.loads(line) for line in open(os.path.join(d, "metrics.jsonl"))]


def tensors(path):
    """name -> raw bytes of a safetensors file's tensors."""
    data = read(path)
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    return {k: data[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]] for k, v in header.items()
            if k != "__metadata__"}


def routers(d):
    return {k: v for k, v in tensors(os.path.join(d, "molora_model.safetensors")).items() if ".router." in k}


# 1. Top-1 MoLoRA (the official settings) trains; the metrics carry the routers' load.
top1 = os.path.join(WORK, "top1")
r = taia("train", *COMMON, "--save-every", "6", "-o", top1)
check(r.returncode == 0 and "MoLoRA (4 experts, top-1) on gate_proj,up_proj,down_proj" in r.stderr,
      "MoLoRA training runs", r.stderr[-600:])
m = metrics(top1) if r.returncode == 0 else []
check(len(m) == 24 and m[-1]["loss"] < 0.5 * m[0]["loss"], "training loss falls by more than half",
      [x["loss"] for x in m[:1] + m[-1:]])
check(all(len(x.get("expert_load", [])) == 4 and abs(sum(x["expert_load"]) - 1) < 1e-9 and "balance_loss" in x
          for x in m), "metrics.jsonl has expert_load (4 shares summing to 1) and balance_loss", m[:1])
files = sorted(os.listdir(top1))
check({"adapter_config.json", "adapter_model.safetensors", "molora_config.json", "molora_model.safetensors"} <=
      set(files), "the adapter folder holds the PEFT files and the MoLoRA files", files)
peft_cfg = json.load(open(os.path.join(top1, "adapter_config.json")))
check(peft_cfg["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj"] and peft_cfg["peft_type"] == "LORA",
      "the PEFT part is an ordinary LoRA adapter on the attention projections", peft_cfg)

# 2. Top-1: the gate is always 1, so the routers never learn: after 24 steps they equal a 1-step run's.
one = os.path.join(WORK, "top1_one_step")
r = taia("train", *COMMON, "--max-steps", "1", "-o", one)
check(r.returncode == 0 and routers(one) == routers(top1) and len(routers(one)) == 2 * 3 * 5,
      "top-1: every router's weight and bias stay at their initial values (the official quirk)", r.stderr[-300:])
check(tensors(os.path.join(one, "molora_model.safetensors")) != tensors(os.path.join(top1, "molora_model.safetensors")),
      "top-1: the experts themselves train")

# 3. The four modes run different weights (each pair's logits differ) and generate; greedy text may
#    coincide for two modes over a few tokens (vanilla and TAIF differ by the attention LoRA only).
logits = {}
for mode in ("base", "vanilla", "taia", "taif"):
    path = os.path.join(WORK, f"logits_{mode}.f32")
    r = taia("forward", "-m", MODEL, "--adapter", top1, "--mode", mode, "--prompt-ids", "1,403,407,261,378,157",
             "-o", path)
    logits[mode] = open(path, "rb").read() if r.returncode == 0 else None
check(None not in logits.values() and len(set(logits.values())) == 4, "forward in base, vanilla, taia and taif: four "
      "different sets of logits", {m: v is not None for m, v in logits.items()})
outs = {}
for mode in ("base", "vanilla", "taia", "taif"):
    r = taia("generate", "-m", MODEL, "--adapter", top1, "--mode", mode, "--prompt", "Tell a story about Tom and the ball.",
             "-n", "16", "--temperature", "0")
    outs[mode] = r.stdout if r.returncode == 0 else None
check(None not in outs.values() and len(set(outs.values())) >= 3 and outs["base"] not in
      (outs["vanilla"], outs["taia"], outs["taif"]), "generate runs base, vanilla, taia and taif; the adapter changes "
      "the text in every mode", outs)
ev = os.path.join(WORK, "eval")
r = taia("eval", "-m", MODEL, "--adapter", top1, "--tasks", os.path.join(TASKS, "generic_mc.jsonl"), "--limit", "6",
         "-o", ev)
check(r.returncode == 0 and all(f"generic_mc / {m}: acc = " in r.stdout + r.stderr for m in ("base", "vanilla", "taia", "taif")),
      "eval scores the four modes", r.stdout[-500:] + r.stderr[-300:])

# 4. TAIA export of the MoLoRA adapter == TAIA export of its attention LoRA alone, byte for byte.
alone = os.path.join(WORK, "attention_alone")
os.makedirs(alone)
for f in ("adapter_config.json", "adapter_model.safetensors"):
    shutil.copy(os.path.join(top1, f), alone)
for fmt, name in (("peft", "peft"), ("gguf-lora", "lora.gguf"), ("hf", "hf")):
    a, b = os.path.join(WORK, "x_molora_" + name), os.path.join(WORK, "x_alone_" + name)
    ra = taia("export", "-m", MODEL, "--adapter", top1, "--mode", "taia", "--format", fmt, "-o", a)
    rb = taia("export", "-m", MODEL, "--adapter", alone, "--mode", "taia", "--format", fmt, "-o", b)
    if os.path.isdir(a) and os.path.isdir(b):
        same = sorted(os.listdir(a)) == sorted(os.listdir(b)) and all(
            read(os.path.join(a, f)) == read(os.path.join(b, f)) for f in os.listdir(a))
    else:
        same = os.path.isfile(a) and os.path.isfile(b) and read(a) == read(b)
    check(ra.returncode == 0 and rb.returncode == 0 and same, f"export --format {fmt} --mode taia: the MoLoRA adapter's "
          "file(s) equal its attention LoRA's, byte for byte", ra.stderr[-300:] + rb.stderr[-300:])
check(not os.path.exists(os.path.join(WORK, "x_molora_peft", "molora_config.json")),
      "the TAIA PEFT export carries no experts")

# 5. Experts are refused where they cannot go, by name.
r = taia("merge", "--base", MODEL, "--adapter", top1, "--mode", "vanilla", "-o", os.path.join(WORK, "merged"))
check(r.returncode == 1 and "cannot be merged into dense weights" in r.stderr and not os.path.exists(
      os.path.join(WORK, "merged")), "merge --mode vanilla refuses the experts", r.stderr)
r = taia("export", "-m", MODEL, "--adapter", top1, "--mode", "taif", "--format", "gguf-lora", "-o",
         os.path.join(WORK, "taif.gguf"))
check(r.returncode == 1 and "no GGUF form" in r.stderr, "a GGUF LoRA export of the experts is refused", r.stderr)
r = taia("merge", "--base", MODEL, "--adapter", top1, "--mode", "taia", "-o", os.path.join(WORK, "merged_taia"))
check(r.returncode == 0, "merge --mode taia (attention LoRA only) works", r.stderr[-300:])

# 6. Top-2 with the balance loss: every expert of every router gets 10-40 % of the slots.
def shares(adapter):
    r = taia("inspect", adapter, "-m", MODEL, "--data", train, "--format", "json")
    if r.returncode != 0:
        return None, r.stderr
    rt = json.loads(r.stdout)["molora"]["routing"]
    return [s for mod in rt["modules"] for s in mod["expert_share"]], rt


balanced = os.path.join(WORK, "top2_balanced")
r = taia("train", *COMMON, "--top-k", "2", "--molora-balance-coef", "0.01", "-o", balanced)
s, rt = shares(balanced) if r.returncode == 0 else (None, r.stderr)
check(s is not None and len(s) == 4 * 3 * 5 and 0.10 <= min(s) and max(s) <= 0.40,
      "top-2 + balance loss: every expert of the 15 routers gets 10-40 % of the routing slots on the training data",
      (min(s), max(s)) if s else rt)
free = os.path.join(WORK, "top2_free")
r = taia("train", *COMMON, "--top-k", "2", "-o", free)
s2, _ = shares(free) if r.returncode == 0 else (None, None)
if s2:
    print(f"note: top-2 without the balance loss: expert shares {min(s2):.3f}..{max(s2):.3f}; "
          f"with it {min(s):.3f}..{max(s):.3f}" if s else "")
check(s2 is not None and routers(free) != routers(os.path.join(WORK, "top1")), "top-2: the routers train", None)
r = taia("inspect", balanced)
check(r.returncode == 0 and "MoLoRA: 4 experts (rank 16, top-2)" in r.stdout and "||router||" in r.stdout,
      "inspect shows the experts and routers", r.stdout[-400:])

# 7. A run resumed from a checkpoint reproduces the uninterrupted one, experts and routers included.
resumed = os.path.join(WORK, "resumed")
os.makedirs(resumed)
shutil.copytree(os.path.join(top1, "checkpoint-12"), os.path.join(resumed, "checkpoint-12"))
shutil.copy(os.path.join(top1, "metrics.jsonl"), resumed)
r = taia("train", *COMMON, "--save-every", "6", "-o", resumed, "--resume", resumed)
check(r.returncode == 0 and [x["loss"] for x in metrics(resumed)] == [x["loss"] for x in m] and
      read(os.path.join(resumed, "molora_model.safetensors")) == read(os.path.join(top1, "molora_model.safetensors")),
      "a resumed MoLoRA run equals the uninterrupted one, to the bit", r.stderr[-300:])
r = taia("train", *COMMON[:4], "--method", "lora", "--max-steps", "1", "-o", os.path.join(WORK, "wrong"), "--resume",
         resumed)
check(r.returncode == 1 and "molora" in r.stderr, "a MoLoRA checkpoint is not resumed as LoRA", r.stderr[-300:])

# 8. MoLoRA options need --method molora.
for opt in (["--experts", "3"], ["--top-k", "2"], ["--molora-balance-coef", "0.1"], ["--molora-targets", "down"]):
    r = taia("train", "-m", MODEL, "--data", train, "-o", os.path.join(WORK, "usage"), *opt)
    check(r.returncode == 2 and "needs --method molora" in r.stderr, f"{opt[0]} without --method molora is a usage "
          "error", r.stderr)
r = taia("train", *COMMON, "--top-k", "5", "-o", os.path.join(WORK, "k5"))
check(r.returncode == 1 and "top-k expected 1..4" in r.stderr, "--top-k above --experts is refused", r.stderr)

finish()
