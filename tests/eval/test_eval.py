"""taia eval / taia report end to end on stories260K with the fixture task files of every kind
and format (tests/eval/tasks):

1. A base-mode run gives each task's prompts. A LoRA adapter is trained on exactly those prompts
   followed by the right answer (so its answers are predictable); then one run scores base,
   vanilla, taia and taif. Known scores: vanilla answers every generative and multiple-choice
   example right (acc 1.0, by log-likelihood and by generated letter) and refuses every AdvBench
   goal (refusal_rate 1.0).
2. Log-likelihood scores equal a direct sum of token log-probs from `taia forward`; perplexity
   equals the direct computation too.
3. Switching modes in one run gives the numbers of separate runs on `taia merge` exports.
4. results.json / samples shape, few-shot from the train split, chat-template prompts,
   malformed task files (exit 1 with file:line), and the HTML report rendered by headless
   Chromium (screenshot not blank, no console errors).

usage: /usr/bin/python3 test_eval.py TAIA_BINARY FIXTURES WORK_DIR
"""
import glob
import json
import math
import os
import shutil
import subprocess
import sys
import zlib

import numpy as np
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, finish, setup  # noqa: E402

TAIA, FIXTURES, WORK, MODEL = setup()
HERE = os.path.dirname(os.path.abspath(__file__))
TASK_DIR = os.path.join(HERE, "tasks")

TASKS = ["gsm8k_test.jsonl", "math.jsonl", "svamp.json", "mmlu.csv", "arc.jsonl", "csqa.jsonl", "bbh.json",
         "generic_mc.jsonl", "generic_gen.jsonl", "advbench.csv", "retention.txt"]
TASK_ARG = ",".join(os.path.join(TASK_DIR, t) for t in TASKS)
COMMON = ["--threads", "2", "--max-new-tokens", "24", "--refusal-tokens", "12", "--batch-size", "4"]


def taia(*args, ok=True):
    r = subprocess.run([TAIA, *args], capture_output=True, text=True, timeout=600)
    if ok and r.returncode != 0:
        print(r.stdout[-2000:], r.stderr[-2000:])
    return r


def samples(run, key, mode):
    with open(os.path.join(run, "samples", f"{key}.{mode}.jsonl")) as f:
        return [json.loads(line) for line in f]


def results(run):
    with open(os.path.join(run, "results.json")) as f:
        return json.load(f)


def stem(t):
    return t.split(".")[0]


# ---- 1. prompts from a base run, an adapter trained on them, the four modes
base_run = os.path.join(WORK, "base_run")
r = taia("eval", "-m", MODEL, "--tasks", TASK_ARG, "--out", base_run, *COMMON)
check(r.returncode == 0, "eval base run", r.stderr)
letter_run = os.path.join(WORK, "letter_base")
r = taia("eval", "-m", MODEL, "--tasks", os.path.join(TASK_DIR, "mmlu.csv"), "--mc-method", "letter",
         "--out", letter_run, *COMMON)
check(r.returncode == 0, "eval base run, letter method", r.stderr)

paragraphs = []
for t in TASKS:
    key = stem(t)
    if key == "retention":
        continue
    task_entry = results(base_run)["tasks"][key]["base"]
    for s in samples(base_run, key, "base"):
        answer = None  # multiple choice: the gold option's text, filled in below
        if task_entry["kind"] == "generative":
            # A 260K-parameter model does not learn to copy LaTeX braces: MATH's \frac{7}{1} is taught as 7
            # (the comparison is numeric).
            target = "7" if s["target"] == "\\frac{7}{1}" else s["target"]
            answer = f"The answer is {target}."
        elif task_entry["kind"] == "refusal":
            answer = "I cannot help with that."
        paragraphs.append((key, s, answer))

# Multiple-choice answers: the option text of the gold letter, read back from the task files through
# `taia eval` itself would be circular; the fixture files are small, so parse them here.
def gold_texts(path):
    out = []
    if path.endswith(".csv"):
        import csv
        with open(path, newline="") as f:
            for row in csv.reader(f):
                out.append(row[1:-1]["ABCDEFGHIJ".index(row[-1])])
        return out
    with open(path) as f:
        for line in f:
            j = json.loads(line)
            if "answerKey" in j:
                q = j["question"]
                ch = q["choices"] if isinstance(q, dict) else [{"label": l, "text": x} for l, x in
                                                               zip(j["choices"]["label"], j["choices"]["text"])]
                out.append(next(c["text"] for c in ch if c["label"] == j["answerKey"]))
            else:
                a = j["answer"]
                c = j["choices"]
                text = c[a] if isinstance(a, int) else (a if a in c else c["ABCDEFGHIJ".index(a)])
                out.append(text)
    return out


train_lines = []
mc_gold = {}
for key, s, answer in paragraphs:
    if answer is None:
        if key not in mc_gold:
            mc_gold[key] = gold_texts(os.path.join(TASK_DIR, next(t for t in TASKS if stem(t) == key)))
        idx = sum(1 for k, _, _ in paragraphs[:paragraphs.index((key, s, answer))] if k == key)
        answer = mc_gold[key][idx]
    train_lines.append(s["prompt"] + " " + answer)
for s in samples(letter_run, "mmlu", "base"):  # 2 copies: one-letter answers are few tokens to learn from
    train_lines += [s["prompt"] + " " + s["target"]] * 2
train_txt = os.path.join(WORK, "train.txt")
with open(train_txt, "w") as f:
    f.write("\n\n".join(train_lines) + "\n")
adapter = os.path.join(WORK, "adapter")
r = taia("train", "-m", MODEL, "--data", train_txt, "--out", adapter, "--lora-rank", "32", "--lora-alpha", "64",
         "--lora-dropout", "0", "--lr", "0.005", "--max-steps", "400", "--batch-size", "8", "--grad-accum", "1",
         "--warmup-ratio", "0",  # cosine: a constant 0.005 left the loss at 0.1-0.35 and one answer in 3 unlearnt
         "--schedule", "cosine", "--threads", "2", "--seed", "3", "--format", "json")
check(r.returncode == 0, "train the answering adapter", r.stderr)

run = os.path.join(WORK, "modes_run")
r = taia("eval", "-m", MODEL, "--adapter", adapter, "--tasks", TASK_ARG, "--out", run, *COMMON)
check(r.returncode == 0, "eval four modes", r.stderr)
res = results(run)
print(r.stdout)
for t in TASKS:
    key = stem(t)
    check(set(res["tasks"][key]) == {"base", "vanilla", "taia", "taif"}, f"{key}: four modes", res["tasks"][key].keys())
    v = res["tasks"][key]["vanilla"]
    if v["kind"] in ("generative", "multiple_choice"):
        check(v["value"] == 1.0, f"{key}: vanilla answers every example (acc 1.0)", v)
    if v["kind"] == "refusal":
        check(v["value"] == 1.0 and v["metric"] == "refusal_rate", f"{key}: vanilla refuses every goal", v)
    for mode, e in res["tasks"][key].items():
        ss = samples(run, key, mode)
        check(e["n"] == len(ss) if e["kind"] != "perplexity" else e["n"] > 0, f"{key}/{mode}: n matches samples")
        if e["kind"] != "perplexity":
            check(all(set(x) >= {"prompt", "target", "output", "extracted", "correct"} for x in ss),
                  f"{key}/{mode}: sample fields")
            mean = sum(1.0 if x["correct"] else 0.0 for x in ss) / len(ss)
            check(abs(mean - e["value"]) < 1e-12, f"{key}/{mode}: value is the mean of the samples", (mean, e))
            if len(ss) > 1:
                se = math.sqrt(sum((float(x["correct"]) - mean) ** 2 for x in ss) / (len(ss) - 1) / len(ss))
                check(abs(se - e["stderr"]) < 1e-12, f"{key}/{mode}: stderr", (se, e["stderr"]))
    check(res["tasks"][key]["base"]["value"] != 1.0 or v["kind"] != "refusal", f"{key}: base does not refuse all")
letter = os.path.join(WORK, "letter_run")
r = taia("eval", "-m", MODEL, "--adapter", adapter, "--tasks", os.path.join(TASK_DIR, "mmlu.csv"), "--mc-method",
         "letter", "--modes", "base,vanilla", "--out", letter, *COMMON)
check(r.returncode == 0 and results(letter)["tasks"]["mmlu"]["vanilla"]["value"] == 1.0,
      "mmlu by generated letter: vanilla acc 1.0", r.stdout + r.stderr)
check(all(len(x["extracted"]) == 1 for x in samples(letter, "mmlu", "base")), "letter method: one letter per answer")

# ---- 2. log-likelihood and perplexity against `taia forward`
def forward_logprobs(ids, extra=()):
    out = os.path.join(WORK, "logits.f32")
    # eval's default cache type (forward's default is F32, the parity checks' exact path)
    rr = taia("forward", "-m", MODEL, "--prompt-ids", ",".join(map(str, ids)), "-o", out, "--threads", "2",
              "--kv-dtype", "f16", *extra)
    assert rr.returncode == 0, rr.stderr
    lg = np.fromfile(out, dtype="<f4").astype(np.float64).reshape(len(ids), -1)
    m = lg.max(axis=1, keepdims=True)
    return lg - m - np.log(np.exp(lg - m).sum(axis=1, keepdims=True))


def encode(text, special=True):
    rr = subprocess.run([TAIA, "tokenize", "--tokenizer", MODEL] + ([] if special else ["--no-special"]),
                        input=json.dumps({"text": text}) + "\n", capture_output=True, text=True)
    return json.loads(rr.stdout)["ids"]


worst = 0.0
for mode in ("base", "vanilla"):
    extra = () if mode == "base" else ("--adapter", adapter, "--mode", "vanilla")
    gm = samples(run, "generic_mc", mode)
    choices = [["girl", "car", "moon"], ["friends", "spoon", "stone"], ["cold", "hot"]]
    for s, ch in zip(gm, choices):
        ctx = encode(s["prompt"])
        for k, c in enumerate(ch):
            whole = encode(s["prompt"] + " " + c)
            assert whole[:len(ctx)] == ctx
            lp = forward_logprobs(whole, extra)
            direct = sum(lp[t - 1, whole[t]] for t in range(len(ctx), len(whole)))
            worst = max(worst, abs(direct - s["logprobs"][k]))
check(worst < 1e-4, "loglik = direct sum of token log-probs from taia forward", worst)
with open(os.path.join(TASK_DIR, "retention.txt")) as f:
    text = f.read()
ids = encode(text)
lp = forward_logprobs(ids)
bits = -np.mean([lp[t - 1, ids[t]] for t in range(1, len(ids))]) / math.log(2)
got = res["tasks"]["retention"]["base"]
check(abs(bits - got["value"]) < 1e-4 and got["n"] == len(ids) - 1, "bits per token = direct computation",
      (bits, got))
check(abs(got["perplexity"] - 2 ** got["value"]) < 1e-6 * got["perplexity"], "perplexity = 2^bits")

# ---- 3. mode switching in one run == separate runs on merged exports (the update-size controls
# too: eval derives their adapters unmerged, merge folds the same update into the weights)
controls = os.path.join(WORK, "controls")
r = taia("eval", "-m", MODEL, "--adapter", adapter, "--tasks", TASK_ARG, "--modes", "scaled,random-half-2", "--out",
         controls, *COMMON)
check(r.returncode == 0 and set(results(controls)["tasks"][stem(TASKS[0])]) == {"scaled", "random-half-2"},
      "eval --modes scaled,random-half-2", r.stderr)
for key in results(controls)["tasks"]:
    res["tasks"][key].update(results(controls)["tasks"][key])
for mode in ("vanilla", "taia", "taif", "scaled", "random-half-2"):
    one_run = controls if mode in ("scaled", "random-half-2") else run
    merged = os.path.join(WORK, f"merged_{mode}")
    r = taia("merge", "--base", MODEL, "--adapter", adapter, "--mode", mode, "--out", merged)
    check(r.returncode == 0, f"merge {mode}", r.stderr)
    sep = os.path.join(WORK, f"sep_{mode}")
    r = taia("eval", "-m", merged, "--tokenizer", MODEL, "--tasks", TASK_ARG, "--out", sep, *COMMON)
    check(r.returncode == 0, f"eval merged {mode}", r.stderr)
    rs = results(sep)
    for t in TASKS:
        key = stem(t)
        a, b = res["tasks"][key][mode], rs["tasks"][key]["base"]
        # W + s B A in F32 rounds otherwise than the two products: with this memorising adapter
        # (r 32, lr 0.005) bits per token moved by up to 9.5e-5 relative (training seeds 1-3, two
        # builds whose gradients round differently); a wrong merge (scale, module, mode) moves them by tenths.
        tol = 5e-4 * max(1.0, abs(b["value"])) if a["kind"] == "perplexity" else 0.0
        same = abs(a["value"] - b["value"]) <= tol
        if a["kind"] != "perplexity":
            same = same and [x["extracted"] for x in samples(one_run, key, mode)] == \
                [x["extracted"] for x in samples(sep, key, "base")]
        check(same, f"{key}: {mode} unmerged in one run == merged export", (a["value"], b["value"]))

# ---- 4. few-shot, chat prompts, settings, malformed input, report
fs = os.path.join(WORK, "fewshot")
r = taia("eval", "-m", MODEL, "--tasks", os.path.join(TASK_DIR, "gsm8k_test.jsonl"), "--shots", "0,2", "--out", fs,
         *COMMON)
rf = results(fs)
check(r.returncode == 0 and set(rf["tasks"]) == {"gsm8k_test@0shot", "gsm8k_test@2shot"}, "shots 0,2: two entries",
      list(rf.get("tasks", {})))
two = samples(fs, "gsm8k_test@2shot", "base")
check(all(x["prompt"].count("Question:") == 3 and ("Sam has 2 cats" in x["prompt"]) and ("Mia reads" in x["prompt"])
          for x in two), "2-shot prompts hold the two train-split demonstrations", two[0]["prompt"])
check(rf["tasks"]["gsm8k_test@2shot"]["base"]["shots"] == 2, "entry records its shots")
r2 = taia("eval", "-m", MODEL, "--tasks", os.path.join(TASK_DIR, "gsm8k_test.jsonl"), "--shots", "0,2", "--out",
          fs + "2", *COMMON)
check([x["prompt"] for x in samples(fs + "2", "gsm8k_test@2shot", "base")] == [x["prompt"] for x in two],
      "few-shot draw is fixed by the seed")
ch = os.path.join(WORK, "chat")
r = taia("eval", "-m", MODEL, "--tasks", os.path.join(TASK_DIR, "generic_gen.jsonl"), "--chat-template", "chatml",
         "--out", ch, *COMMON)
check(r.returncode == 0 and samples(ch, "generic_gen", "base")[0]["prompt"].startswith("<|im_start|>"),
      "--chat-template chatml renders the prompt", r.stderr)
check(results(ch)["settings"]["chat_template"] == "chatml", "settings record the chat template")
r = taia("eval", "-m", MODEL, "--tasks", os.path.join(TASK_DIR, "generic_gen.jsonl"), "--modes", "taia", "--out",
         os.path.join(WORK, "x"), ok=False)
check(r.returncode == 1 and "needs an adapter" in r.stderr, "taia mode without --adapter: exit 1", r.stderr)
r = taia("eval", "-m", MODEL, "--tasks", os.path.join(TASK_DIR, "mmlu.csv"), "--shots", "x", "--out",
         os.path.join(WORK, "x"), ok=False)
check(r.returncode == 2, "--shots x: usage error (exit 2)", r.returncode)
bad = os.path.join(WORK, "bad.jsonl")
with open(bad, "w") as f:
    f.write('{"question": "q", "answer": "x #### 1"}\n{"question": "q2"}\n')
r = taia("eval", "-m", MODEL, "--tasks", bad, "--out", os.path.join(WORK, "x"), ok=False)
check(r.returncode == 1 and f"{bad}:2: missing field 'answer'" in r.stderr, "missing answer field: exit 1 with file:line",
      r.stderr)
r = taia("eval", "-m", MODEL, "--tasks", TASK_ARG, "--limit", "1", "--out", os.path.join(WORK, "lim"), "--format",
         "json", *COMMON)
j = json.loads(r.stdout) if r.returncode == 0 else {}
check(all(e["n"] == 1 for k, m in j.get("tasks", {}).items() for e in m.values() if e["kind"] != "perplexity"),
      "--limit 1 and --format json", r.stderr)

# Report: train metrics + run; Chromium renders it.
html = os.path.join(WORK, "report.html")
r = taia("report", run, adapter, fs, "-o", html, ok=False)
check(r.returncode == 1 and "metrics.jsonl" in r.stderr, "report: a folder without metrics.jsonl is an error", r.stderr)
bad_run = os.path.join(WORK, "bad_run")
os.makedirs(bad_run, exist_ok=True)
with open(os.path.join(bad_run, "results.json"), "w") as f:
    f.write('{"tasks": {"t": {"base": {"metric": "acc"}}}}')
r = taia("report", bad_run, "-o", html, ok=False)
check(r.returncode == 1 and "results.json" in r.stderr and "'value'" in r.stderr,
      "report: results.json without values is an error naming the file", r.stderr)
r = taia("report", fs, adapter, "-o", html + ".fs.html")
check(r.returncode == 0, "report of a few-shot run", r.stderr)
with open(html + ".fs.html") as f:
    check("few-shot" in f.read(), "few-shot curve drawn when several shots ran")
r = taia("report", run, adapter, "-o", html, "--format", "json")
check(r.returncode == 0 and json.loads(r.stdout)["tasks"] == len(TASKS), "report written", r.stderr)
with open(html) as f:
    page = f.read()
check("<script" not in page and "http" not in page.replace("http://www.w3.org/2000/svg", ""),
      "report is self-contained (no scripts, no network)")
check(all(stem(t) in page for t in TASKS) and page.count("<svg") >= len(TASKS) + 1,
      "report has every task and a chart per task plus the loss curve")

chromium = shutil.which("chromium") or shutil.which("chromium-browser")
if not chromium:
    print("skip: chromium not installed (scripts/setup.sh installs it); the screenshot check did not run")
else:
    shot = os.path.join(WORK, "report.png")
    cr = subprocess.run([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                         "--enable-logging=stderr", "--v=0", "--window-size=1200,1600", f"--screenshot={shot}",
                         "file://" + os.path.abspath(html)], capture_output=True, text=True, timeout=120)
    console = [l for l in cr.stderr.splitlines() if "CONSOLE" in l or "Uncaught" in l]
    check(cr.returncode == 0 and os.path.exists(shot), "chromium screenshot", cr.stderr[-1000:])
    check(not console, "no console errors", console)

    def png_pixels(path):
        data = open(path, "rb").read()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        pos, idat, w, h, ct = 8, b"", 0, 0, 0
        while pos < len(data):
            n = int.from_bytes(data[pos:pos + 4], "big")
            kind = data[pos + 4:pos + 8]
            body = data[pos + 8:pos + 8 + n]
            if kind == b"IHDR":
                w, h, ct = int.from_bytes(body[0:4], "big"), int.from_bytes(body[4:8], "big"), body[9]
            elif kind == b"IDAT":
                idat += body
            pos += 12 + n
        raw = zlib.decompress(idat)
        bpp = {2: 3, 6: 4}[ct]
        stride = w * bpp
        rows, prev = [], bytearray(stride)
        for y in range(h):  # undo PNG row filters
            f = raw[y * (stride + 1)]
            line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                if f == 1:
                    line[i] = (line[i] + a) & 255
                elif f == 2:
                    line[i] = (line[i] + b) & 255
                elif f == 3:
                    line[i] = (line[i] + (a + b) // 2) & 255
                elif f == 4:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
            rows.append(bytes(line))
            prev = line
        return np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(h, w, bpp)[:, :, :3]

    if os.path.exists(shot):
        px = png_pixels(shot)
        non_white = float((px.min(axis=2) < 200).mean())
        colours = len({tuple(p) for p in px[::7, ::7].reshape(-1, 3)})
        check(non_white > 0.01 and colours > 8, "screenshot is not blank", (non_white, colours))

finish("all eval checks passed")
