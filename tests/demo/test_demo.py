"""`taia demo --quick` (the CI smoke test of the whole TAIA experiment): the output's structure
(every experiment x task x mode, one value per seed, files written, the cached pretrained model
loadable by other commands), the pretrained model's knowledge in plain completion, the cache
reused by a second run that reproduces the same table, the flow on a user's model
(stories260K), and clear errors for bad options. It asserts nothing about which mode wins."""
import json
import struct
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from testlib import setup, check, finish  # noqa: E402

taia, fixtures, work, stories = setup()
cache = os.path.join(work, "cache")


def demo(out, *extra):
    cmd = [taia, "demo", "--quick", "-o", out, "--cache", cache, "--threads", "2", "--format", "json", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


# ---- 1. structure of a quick run
out1 = os.path.join(work, "run1")
r = demo(out1)
check(r.returncode == 0, "taia demo --quick exits 0", r.stderr[-2000:])
if r.returncode != 0:
    finish()
summary = json.loads(r.stdout)
settings = summary["settings"]
check(settings["preset"] == "quick" and len(settings["seeds"]) >= 2, "quick preset with several seeds", settings)
check("pretrained in" in r.stderr and "cached at" in r.stderr, "first run pretrains and caches", r.stderr[-800:])
rows = summary["rows"]
tasks = {row["task"] for row in rows}
want = {"knowledge_chat", "knowledge_chat_gen", "knowledge_chat_restated", "knowledge_completion", "facts", "skill",
        "retention"}
check(want <= tasks, "every task scored", sorted(tasks))
check(any(t.startswith("knowledge_chat@") and t.endswith("shot") for t in tasks), "few-shot rows present",
      sorted(tasks))
check({"icl_k0", "icl_k2", "icl_slope"} <= tasks, "the in-context-learning rows and their slope", sorted(tasks))
exps = {row["experiment"] for row in rows}
check(exps == set(settings["experiments"]) and {"facts-lora", "facts-full"} <= exps, "every experiment has rows", exps)
bad = []
control_tasks = {"knowledge_chat", "knowledge_completion", "country", "facts"}  # the controls' tasks
for row in rows:
    modes = row["modes"]
    # the update-size controls on their tasks (early: LoRA runs only); the four plain modes everywhere
    controls = {"scaled", "random-half"} | ({"early"} if row["experiment"].endswith("-lora") else set())
    expected = {"base", "vanilla", "taia", "taif"} | (controls if row["task"] in control_tasks else set())
    if set(modes) != expected:
        bad.append((row["experiment"], row["task"], "modes", sorted(modes)))
        continue
    for m, e in modes.items():
        vals = e["values"]
        if len(vals) != len(settings["seeds"]):
            bad.append((row["task"], m, "values", vals))
        if abs(sum(vals) / len(vals) - e["mean"]) > 1e-9:
            bad.append((row["task"], m, "mean", e))
        if row["metric"] == "bits_per_token":
            if not all(v > 0 for v in vals):
                bad.append((row["task"], m, "bits", vals))
        elif row["metric"] == "slope":  # accuracy per log2(1 + shots): at most 1 / log2(1 + K) either way
            if not all(-1 <= v <= 1 for v in vals):
                bad.append((row["task"], m, "slope", vals))
        elif not all(0 <= v <= 1 for v in vals):
            bad.append((row["task"], m, "acc", vals))
    if modes["base"]["std"] != 0:
        bad.append((row["task"], "base std", modes["base"]))
check(not bad, "each row: its modes (controls on the main tasks), one value per seed, mean = mean of values, values "
      "in range", bad[:5])
# What each control kept, per run: random-half whole modules within the attention set's parameters,
# scaled the attention update's norm, early a checkpoint before the last step.
ups = json.load(open(os.path.join(out1, "results.json"))).get("control_updates", {})
bad = []
for experiment, runs in ups.items():
    for u in runs:
        for draw in ("random-half-1", "random-half-2", "random-half-3"):
            if not 0 < u[draw]["parameters"] <= u[draw]["attention_parameters"]:
                bad.append((experiment, draw, u[draw]["parameters"], u[draw]["attention_parameters"]))
        if abs(u["scaled"]["norm"] - u["scaled"]["attention_norm"]) > 1e-6 * u["scaled"]["attention_norm"]:
            bad.append((experiment, "scaled", u["scaled"]["norm"], u["scaled"]["attention_norm"]))
        if experiment.endswith("-lora") and not (u["early"]["step"] % u["early"]["every"] == 0 and 0 < u["early"]["step"]
                                                 <= u["early"]["steps"] and u["early"]["every"] >= 1):
            bad.append((experiment, "early", u["early"]))
check(set(ups) == exps and all(len(v) == len(settings["seeds"]) for v in ups.values()) and not bad,
      "control_updates: random-half within the attention set's parameters, scaled at its norm, early a checkpoint",
      bad[:3] or ups.keys())
rh = [json.loads(l) for l in open(os.path.join(out1, "data", "icl_k2.jsonl"))]
check(all(len(x["demos"]) == 2 and all(d["answer"] == "The answer is " + x["answer"] + "." for d in x["demos"])
          for x in rh), "ICL records: 2 demonstrations giving the example's answer", rh[:1])

# The knowledge is in the weights: plain-text completion of the pretrained facts, far above chance.
pre = summary["pretrained"]
check(pre["plain_completion_acc"] >= 0.5 and pre["plain_completion_acc"] > 4 * pre["chance_city"],
      "pretrained model completes its facts well above chance", pre)

for f in ["table.md", "summary.json", "results.json", "report.html", "data/knowledge_chat.jsonl", "data/retention.jsonl",
          "runs/facts-lora/seed1/train/adapter_model.safetensors", "runs/facts-full/seed1/train/model.safetensors"]:
    check(os.path.exists(os.path.join(out1, f)), f"wrote {f}")
html = open(os.path.join(out1, "report.html")).read()
check("<svg" in html and "facts-lora" in html and "pretraining" in html and "standard deviation over seeds" in html,
      "report has charts, experiments, curves, and says what ± is")
table = open(os.path.join(out1, "table.md")).read()
check(table.count("\n") == len(rows) + 2, "table has one line per row", table[:300])
# Where the update goes: per experiment and mode, the attention / FFN output change per layer.
drift = json.load(open(os.path.join(out1, "results.json"))).get("drift", {})
layers = json.load(open(os.path.join(pre["cache"], "model", "config.json")))["num_hidden_layers"]
check(set(drift) == exps and all(set(d) == {"vanilla", "taia", "taif"} and all(
      len(m["attention"]) == layers and len(m["ffn"]) == layers for m in d.values()) for d in drift.values()),
      "results.json has the drift of every experiment and mode, one value per layer", {k: list(v) for k, v in drift.items()})
lora = drift.get("facts-lora", {})
check(lora and lora["taia"]["attention"] == lora["vanilla"]["attention"][:1] + lora["taia"]["attention"][1:] and
      lora["taif"]["attention"][0] == 0 and lora["taia"]["attention"][0] > 0,
      "LoRA drift: TAIF leaves layer 0's attention output alone, TAIA and vanilla move it alike", lora)
check("Where the update goes" in html, "the report draws the drift")
claims = json.load(open(os.path.join(out1, "results.json"))).get("claims", [])
by_exp = {}
for c in claims:
    by_exp.setdefault(c["experiment"], set()).add(c["claim"].split(":")[0] if ":" in c["claim"] else c["pair"])
check(by_exp.get("facts-lora", set()) >= {"taia-vanilla", "taia-base", "taia-taif", "C1", "C2", "C3", "I1"} and
      by_exp.get("facts-full", set()) >= {"C1", "C2", "I1"} and "C3" not in by_exp.get("facts-full", set()) and
      by_exp.get("base (world 0)") == {"P1"},
      "claims: the paper's three, C1-C3 (no early for full), I1 per experiment, P1 for the base", by_exp)
p1_holds = all(c["verdict"] == "reproduced" for c in claims if c["claim"].startswith("P1:"))
family = [c for c in claims if "verdict_corrected" in c]
outside = [c for c in claims if "verdict_corrected" not in c]
# Runs that all tie give a zero-width interval: "not shown (no spread)" before and after Holm, p = 1.
check(all(c["verdict"] in ("reproduced", "contradicted", "not shown", "not shown (no spread)")
          and (c["verdict"] != "reproduced" or c["low"] > 0) and (c["verdict"] != "contradicted" or c["high"] < 0)
          and ((c["low"] == c["high"]) == (c["verdict"] == "not shown (no spread)") ==
               (c["verdict_corrected"] == "not shown (no spread)"))
          and (c["low"] != c["high"] or c["p"] == 1) and c["low_corrected"] <= c["low"] and
          c["high_corrected"] >= c["high"] and c["p"] <= c["p_holm"] <= 1 and
          (c["verdict_corrected"].startswith("not shown") or c["verdict"] == c["verdict_corrected"]) for c in family),
      "each verdict matches its interval; Holm's p >= p, the simultaneous interval holds the 95 % one",
      [c for c in family if c["low"] == c["high"]][:2] or family[:2])
check(all(c["claim"].startswith("P1:") or (c["claim"].startswith("I1:") and not p1_holds) for c in outside) and
      all(c["verdict"] == "not judged (P1 failed)" for c in outside if c["claim"].startswith("I1:")),
      "outside the family: the precondition P1, and I1 only while P1 fails (then not judged)", outside[:2])
check(html.index("Verdicts") < html.index("Scores"), "the report opens with the verdicts")
first_claim = claims[0]["claim"] if claims else "(no claim)"
check(html.index("Scores") < html.find("<h3>" + first_claim) < html.find("<h3>Other scores") <
      html.find("Paired differences") < html.find("Where the update goes"),
      "the scores are grouped by claim, the rows no claim names after them, then paired differences and drift")

# The cached model is an HF folder the other commands load: inspect and plain completion.
model = os.path.join(pre["cache"], "model")
for f in ["config.json", "model.safetensors", "tokenizer.model", "tokenizer_config.json"]:
    check(os.path.exists(os.path.join(model, f)), f"cached model has {f}")
r = subprocess.run([taia, "inspect", model, "--format", "json"], capture_output=True, text=True)
check(r.returncode == 0 and json.loads(r.stdout)["config"]["architecture"] == "llama", "taia inspect loads it",
      r.stdout[:300] + r.stderr[-300:])
people = [json.loads(l) for l in open(os.path.join(out1, "data/knowledge_completion.jsonl"))]
hits = 0
for p in people[:6]:
    r = subprocess.run([taia, "generate", "-m", model, "-p", p["context"], "-n", "3", "--temperature", "0",
                        "--format", "json"],
                       capture_output=True, text=True)
    if r.returncode == 0 and json.loads(r.stdout)["text"].strip().startswith(p["answer"]):
        hits += 1
check(hits >= 3, "taia generate completes pretrained facts greedily", hits)

# ---- 2. the cache is reused and the same seeds + threads give the same table
out2 = os.path.join(work, "run2")
r2 = demo(out2)
check(r2.returncode == 0 and "cached at" in r2.stderr and "pretrained in" not in r2.stderr,
      "second run reuses the cached model", r2.stderr[-800:])
if r2.returncode == 0:
    t2 = open(os.path.join(out2, "table.md")).read()
    check(t2 == table, "same seed and threads: the same table", t2[:400])

# ---- 3. the same flow on a user's model (retention on its own sampled text)
out3 = os.path.join(work, "own")
r3 = demo(out3, "--model", stories, "--seeds", "1", "--experiments", "facts-lora")
check(r3.returncode == 0, "taia demo --model stories260K exits 0", r3.stderr[-1500:])
if r3.returncode == 0:
    s3 = json.loads(r3.stdout)
    t3 = {row["task"] for row in s3["rows"]}
    check({"facts", "skill", "retention"} <= t3 and not any(t.startswith("knowledge") for t in t3),
          "own model: in-distribution, skill and retention rows, no world-knowledge rows", sorted(t3))
    check(s3["settings"]["chat_template"] == "alpaca", "a model without a chat template is prompted in Alpaca form",
          s3["settings"]["chat_template"])

# ---- 3b. MoLoRA fine-tuning in the demo (the cached model): the four modes of every task
out4 = os.path.join(work, "molora")
r4 = demo(out4, "--seeds", "1", "--experiments", "facts-molora")
check(r4.returncode == 0, "taia demo --experiments facts-molora exits 0", r4.stderr[-1500:])
if r4.returncode == 0:
    rows4 = json.loads(r4.stdout)["rows"]
    check(rows4 and all(row["experiment"] == "facts-molora" and set(row["modes"]) == {"base", "vanilla", "taia", "taif"}
                        for row in rows4), "MoLoRA rows with the four modes (no update-size controls)", rows4[:1])
    check(os.path.exists(os.path.join(out4, "runs", "facts-molora", "seed1", "train", "molora_config.json")),
          "the MoLoRA run's adapter holds its experts")

# ---- 3c. two worlds: the spread and the paired differences include the pretrained model's
out5 = os.path.join(work, "worlds")
r5 = demo(out5, "--seeds", "1,2", "--experiments", "facts-lora", "--world-seeds", "0,1")
check(r5.returncode == 0, "taia demo --world-seeds 0,1 exits 0", r5.stderr[-1500:])
if r5.returncode == 0:
    s5 = json.loads(r5.stdout)
    check(s5["settings"]["world_seeds"] == [0, 1] and all(
          os.path.exists(os.path.join(out5, f"world-{w}", "runs", "facts-lora", "seed2", "eval")) for w in (0, 1)),
          "each world has its runs", s5["settings"])
    row = next(x for x in s5["rows"] if x["task"] == "knowledge_chat")
    check(all(len(e["values"]) == 4 for e in row["modes"].values()) and row["modes"]["base"]["std"] > 0,
          "worlds x seeds = 4 values per mode; the base varies between worlds", row["modes"]["base"])
    d = row["paired"]["taia-vanilla"]
    want = [a - b for a, b in zip(row["modes"]["taia"]["values"], row["modes"]["vanilla"]["values"])]
    # Worlds are the clusters: the interval is over the two per-world means (t with 1 df = 12.706),
    # the runs in run_order's world-major order.
    check(s5["settings"]["run_order"] == [{"world": w, "seed": k} for w in (0, 1) for k in (1, 2)]
          and s5["settings"]["interval_unit"] == "world", "run_order and the interval unit", s5["settings"])
    world_means = [(want[0] + want[1]) / 2, (want[2] + want[3]) / 2]
    half = 12.706 * abs(world_means[0] - world_means[1]) / 2
    check(d["n"] == 2 and d["unit"] == "world" and abs(d["mean"] - sum(want) / 4) < 1e-12
          and abs((d["high"] - d["low"]) / 2 - half) < 1e-3 * max(half, 1e-9),
          "paired difference TAIA - vanilla: the mean of the run-by-run differences, its 95 % interval over the "
          "2 world means", (d, world_means))
    paired_md = open(os.path.join(out5, "paired.md")).read()
    check("taia − vanilla" in paired_md and "| facts-lora | knowledge_chat | acc | 2 |" in paired_md,
          "paired.md tabulates the differences", paired_md[:300])
    check("Paired differences" in open(os.path.join(out5, "report.html")).read(), "the report shows them")

# ---- 3d. the rank-ratio sweep: attention x FFN ranks, a matrix per task and mode
out6 = os.path.join(work, "sweep")
r6 = demo(out6, "--seeds", "1", "--experiments", "facts-lora", "--sweep", "ranks", "--sweep-ranks", "2,8")
check(r6.returncode == 0, "taia demo --sweep ranks exits 0", r6.stderr[-1500:])
if r6.returncode == 0:
    sw = json.load(open(os.path.join(out6, "results.json")))["sweep"]
    check(sw["ranks"] == [2, 8] and sw["experiment"] == "facts-lora" and all(
          len(m) == 2 and all(len(row) == 2 and all(isinstance(v, float) for v in row) for row in m)
          for modes in sw["tasks"].values() for m in modes.values()), "a 2 x 2 matrix per task and mode", sw["ranks"])
    with open(os.path.join(out6, "runs", "sweep", "facts-lora-a2-f8", "seed1", "train", "adapter_model.safetensors"),
              "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    q = header["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"]["shape"]
    g = header["base_model.model.model.layers.0.mlp.gate_proj.lora_A.weight"]["shape"]
    check(q[0] == 2 and g[0] == 8, "the a2-f8 run has attention rank 2 and FFN rank 8", (q, g))
    check("Rank ratio" in open(os.path.join(out6, "report.html")).read(), "the report draws the heat maps")

# ---- 3e. the noise sweep: TAIA - vanilla per share of wrong answers, paired over the seeds
out7 = os.path.join(work, "noise")
r7 = demo(out7, "--seeds", "1,2", "--experiments", "facts-lora", "--sweep", "noise", "--sweep-noise", "0,0.5")
check(r7.returncode == 0, "taia demo --sweep noise exits 0", r7.stderr[-1500:])
if r7.returncode == 0:
    ns = json.load(open(os.path.join(out7, "results.json")))["noise_sweep"]
    lv = ns["levels"]
    ok = ns["experiment"] == "facts-lora" and [x["noise"] for x in lv] == [0, 0.5] and all(
        x["n"] == 2 and x["knowledge_chat"]["difference"]["n"] == 2 and abs(
            x["knowledge_chat"]["difference"]["mean"] - (x["knowledge_chat"]["taia"] - x["knowledge_chat"]["vanilla"]))
        < 1e-12 for x in lv)
    # a zero-width interval (the seeds tied) shows nothing
    first_not_above = next((x["noise"] for x in lv if not (0 < x["knowledge_chat"]["difference"]["low"]
                                                           < x["knowledge_chat"]["difference"]["high"])), None)
    check(ok and ns["taia_stops_winning_at"] == first_not_above,
          "noise sweep: per level TAIA - vanilla over 2 seeds, and the first level whose interval is not above 0", ns)
    records = [json.loads(l) for l in open(os.path.join(out7, "sweep-noise", "noise-0.50", "runs", "facts-lora", "seed1",
                                                        "train.jsonl"))]
    clean = [json.loads(l) for l in open(os.path.join(out7, "sweep-noise", "noise-0.00", "runs", "facts-lora", "seed1",
                                                      "train.jsonl"))]
    right = {r["messages"][0]["content"]: r["messages"][-1]["content"] for r in clean}
    changed = sum(right.get(r["messages"][0]["content"]) != r["messages"][-1]["content"] for r in records) / len(records)
    check(0.3 < changed < 0.7, "the 0.5 level's fine-tuning set has about half its answers changed", changed)

# ---- 4. bad options
r = subprocess.run([taia, "demo", "--quick", "-o", os.path.join(work, "bad"), "--cache", cache, "--experiments",
                    "facts-bogus"], capture_output=True, text=True)
check(r.returncode == 1 and "facts-bogus" in r.stderr, "unknown experiment: exit 1 naming it", r.stderr[-300:])
r = subprocess.run([taia, "demo", "--quick", "-o", os.path.join(work, "bad_sweep"), "--cache", cache, "--experiments",
                    "facts-full", "--sweep", "ranks"], capture_output=True, text=True)
check(r.returncode == 1 and "repeats a LoRA experiment" in r.stderr and "[demo] 1/" not in r.stderr,
      "--sweep ranks without a LoRA experiment: refused before any run", r.stderr[-300:])
r = subprocess.run([taia, "demo", "--context-people", "1"], capture_output=True, text=True)
check(r.returncode == 2 and "--context-dialogues" in r.stderr, "--context-people without --context-dialogues: usage "
      "error naming it (exit 2)", (r.returncode, r.stderr[-300:]))
r = subprocess.run([taia, "demo", "--noise", "2"], capture_output=True, text=True)
check(r.returncode == 2, "--noise outside [0, 1]: usage error (exit 2)", r.returncode)
r = subprocess.run([taia, "demo", "--quick", "-o", os.path.join(work, "bad2"), "--model", "/nonexistent/model"],
                   capture_output=True, text=True)
check(r.returncode == 1 and "/nonexistent/model" in r.stderr, "missing model: exit 1 naming it", r.stderr[-300:])
r = subprocess.run([taia, "demo", "--quick", "-o", os.path.join(work, "bad3"), "--model", stories, "--mix", "0.2"],
                   capture_output=True, text=True)
check(r.returncode == 1 and "--mix" in r.stderr, "--mix with --model: exit 1 saying why", r.stderr[-300:])
for extra, word in ((["--model", stories, "--pretrain-steps", "5"], "--pretrain-steps"),
                    (["--model", stories, "--context-dialogues", "5"], "--context-dialogues"),
                    (["--context-dialogues", "5", "--context-people", "3", "--context-turns", "4"], "--context-turns")):
    r = subprocess.run([taia, "demo", "--quick", "-o", os.path.join(work, "bad4"), "--cache", cache, *extra],
                       capture_output=True, text=True)
    check(r.returncode == 1 and word in r.stderr and "[demo] corpus" not in r.stderr,
          f"{' '.join(extra[-2:])}: exit 1 naming {word}, before any pretraining", r.stderr[-300:])
finish()
