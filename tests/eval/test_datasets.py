"""taia eval on the real benchmark files of ../shared/datasets, as their authors publish them:

1. Every record of every file is read, none skipped: `taia eval --predictions` with the gold
   solutions as completions scores n = the published counts (GSM8K 1,319, SVAMP 1,000, BBH 6,511
   over 27 tasks, MMLU 14,042 over 57 subjects, AdvBench 520), and the gold solutions score
   >= 99.5 % through the same extraction as generated answers (GSM8K's own solution texts, SVAMP's
   "The answer is N.", BBH's targets, MMLU's "The answer is (X).", MATH-style \\boxed{} solutions).
2. The MMLU folder runs every subject with 5 demonstrations from the sibling dev/ split, in file
   order, and results.json carries the macro and micro averages; --bbh-cot prompts with the
   task's cot-prompts file.
3. Malformed records and predictions stop with exit 1 naming the file, line and field.

usage: /usr/bin/python3 test_datasets.py TAIA_BINARY FIXTURES WORK_DIR
"""
import csv
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, finish, setup  # noqa: E402

TAIA, FIXTURES, WORK, MODEL = setup()
DATA = os.path.normpath(os.path.join(FIXTURES, "..", "datasets"))
if not os.path.isdir(DATA):
    print(f"skip: {DATA} not found (the shared benchmark files); nothing to read")
    sys.exit(77)


def write_jsonl(path, records):
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return path


def score(task, completions, name, *extra):
    """--predictions with completions[i] for example i; returns (exit code, entry, stderr)."""
    preds = write_jsonl(os.path.join(WORK, name + ".pred.jsonl"),
                        [{"index": i, "completion": c} for i, c in enumerate(completions)])
    out = os.path.join(WORK, "run-" + name)
    r = subprocess.run([TAIA, "eval", "--tasks", task, "--predictions", preds, "-o", out, "--format", "json", *extra],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return r.returncode, None, r.stderr
    results = json.loads(r.stdout)
    (entry,) = [by_mode["predictions"] for by_mode in results["tasks"].values()]
    return 0, entry, r.stderr


counts = {}
# ---- 1. every record, gold through --predictions
gsm = os.path.join(DATA, "gsm8k", "test.jsonl")
gold = [json.loads(line)["answer"] for line in open(gsm)]
rc, e, err = score(gsm, gold, "gsm8k")
check(rc == 0 and e["n"] == 1319 and e["value"] >= 0.995, "GSM8K: 1,319 records, its own solutions score >= 99.5 %",
      (rc, e, err[-500:]))
counts["gsm8k"] = e and e["n"]

svamp = os.path.join(DATA, "svamp", "SVAMP.json")
gold = [f"The answer is {r['Answer']}." for r in json.load(open(svamp))]
rc, e, err = score(svamp, gold, "svamp")
check(rc == 0 and e["n"] == 1000 and e["value"] >= 0.995, "SVAMP: 1,000 records, 'The answer is N.' scores >= 99.5 %",
      (rc, e, err[-500:]))
counts["svamp"] = e and e["n"]

def score_folder(folder, gold_of, prefix):
    """Every file of a folder through --predictions; returns (files, records, right, failures)."""
    files, n, right, bad = 0, 0, 0.0, []
    for name in sorted(os.listdir(folder)):
        task = os.path.join(folder, name)
        gold = gold_of(task)
        rc, e, err = score(task, gold, prefix + name)
        if rc != 0 or e["n"] != len(gold):
            bad.append((name, rc, err[-300:]))
            continue
        files, n, right = files + 1, n + e["n"], right + e["value"] * e["n"]
    return files, n, right, bad


def mmlu_gold(task):
    with open(task, newline="") as f:
        return [f"The answer is ({row[-1].strip()})." for row in csv.reader(f)]


bbh_dir = os.path.join(DATA, "bbh", "bbh")
tasks, n, right, bad = score_folder(bbh_dir, lambda t: [x["target"] for x in json.load(open(t))["examples"]], "bbh-")
check(not bad and tasks == 27 and n == 6511 and right / n >= 0.995,
      "BBH: 6,511 records over 27 tasks, the targets score >= 99.5 %", (bad[:3], tasks, n, right))
counts["bbh"] = n

mmlu_test = os.path.join(DATA, "mmlu", "test")
tasks, n, right, bad = score_folder(mmlu_test, mmlu_gold, "mmlu-")
check(not bad and tasks == 57 and n == 14042 and right == n,
      "MMLU: 14,042 records over 57 subjects, every '(X)' letter answer read right", (bad[:3], tasks, n))
counts["mmlu"] = n

adv = os.path.join(DATA, "advbench", "harmful_behaviors.csv")
rc, e, err = score(adv, ["I'm sorry, but I cannot help with that."] * 520, "advbench-refused")
rc2, e2, _ = score(adv, ["Sure, here is how to do it."] * 520, "advbench-complied")
check(rc == 0 and rc2 == 0 and e["n"] == 520 and e["value"] == 1.0 and e2["value"] == 0.0,
      "AdvBench: 520 goals; refusals count as refused, compliance does not", (rc, e, err[-300:], e2))
counts["advbench"] = e and e["n"]
sample = json.loads(open(os.path.join(WORK, "run-advbench-complied", "samples",
                                      "harmful_behaviors.predictions.jsonl")).readline())
check({k: sample.get(k) for k in ["target", "extracted", "correct"]} ==
      {"target": "refusal", "extracted": "compliance", "correct": False} and sample["where"].endswith(":2"),
      "predictions' refusal samples have the shape of taia eval's", sample)

# MATH-style \boxed{} solutions (written for this test, not MATH's own records).
math_records = [
    {"problem": "Compute $\\frac{1}{2}+\\frac{1}{3}$.", "solution": "We get $\\frac{3}{6}+\\frac{2}{6}=\\boxed{\\frac{5}{6}}$."},
    {"problem": "Simplify $\\sqrt{50}$.", "solution": "$\\sqrt{50}=\\sqrt{25\\cdot 2}=\\boxed{5\\sqrt{2}}$."},
    {"problem": "Solve $x^2=9$, $x>0$.", "solution": "So $x=\\boxed{3}$."},
    {"problem": "Write the interval.", "solution": "The set is $\\boxed{(-\\infty, 2]}$."},
    {"problem": "Name the shape.", "solution": "It is a \\boxed{\\text{square}}."},
    {"problem": "Give the vector.", "solution": "$\\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}$"},
    {"problem": "What is $0.5$ as a fraction?", "solution": "$0.5=\\boxed{\\dfrac{1}{2}}$"},
    {"problem": "Evaluate $2^{10}$.", "solution": "$2^{10} = \\boxed{1{,}024}$... that is \\boxed{1024}."},
]
math_file = write_jsonl(os.path.join(WORK, "math_style.jsonl"), math_records)
rc, e, err = score(math_file, [r["solution"] for r in math_records], "math")
check(rc == 0 and e["n"] == len(math_records) and e["value"] >= 0.995, "MATH-style \\boxed{} solutions score 100 %",
      (rc, e, err[-300:]))

print("records read:", json.dumps(counts))

# ---- 2. the MMLU folder (5-shot from dev/, in order) and BBH's chain-of-thought prompts, on stories260K
out = os.path.join(WORK, "mmlu-folder")
r = subprocess.run([TAIA, "eval", "-m", MODEL, "--tasks", mmlu_test, "--limit", "1", "--shots", "5", "--threads", "2",
                    "-o", out, "--format", "json"], capture_output=True, text=True)
check(r.returncode == 0, "taia eval --tasks mmlu/test exits 0", r.stderr[-800:])
if r.returncode == 0:
    res = json.loads(r.stdout)
    group = res.get("groups", {}).get("mmlu", {}).get("base", {})
    values = [res["tasks"][k]["base"]["value"] for k in res["tasks"]]
    check(len(res["tasks"]) == 57 and all(k.startswith("mmlu/") for k in res["tasks"]) and group.get("tasks") == 57
          and group.get("n") == 57 and abs(group["macro"] - sum(values) / 57) < 1e-12,
          "57 subjects named mmlu/SUBJECT, macro and micro averages over them", group)
    t = res.get("timing", {})
    check(0 < t.get("model_seconds", 0) <= t.get("score_seconds", 0) and t.get("prepare_seconds", -1) >= 0
          and t.get("write_seconds", -1) >= 0 and 0 <= t.get("outside_model_share", -1) <= 1,
          "results.json says where the time went (model time within scoring time)", t)
    with open(os.path.join(DATA, "mmlu", "dev", "abstract_algebra_dev.csv"), newline="") as f:
        dev = [row[0] for row in csv.reader(f)]
    (sample,) = [json.loads(line) for line in open(os.path.join(out, "samples", "mmlu_abstract_algebra.base.jsonl"))]
    positions = [sample["prompt"].find(q) for q in dev]
    check(all(p >= 0 for p in positions) and positions == sorted(positions),
          "the 5 demonstrations are dev/'s 5 questions, in file order", positions)
    r = subprocess.run([TAIA, "report", out, "-o", os.path.join(out, "report.html")], capture_output=True, text=True)
    html = open(os.path.join(out, "report.html")).read() if r.returncode == 0 else ""
    check("Averages over task groups" in html and "<td>mmlu</td><td>macro</td><td>57</td>" in html
          and "mmlu/world_religions" in html, "the report shows the subjects and the group's averages", r.stderr[-300:])

nav = os.path.join(bbh_dir, "navigate.json")
out = os.path.join(WORK, "bbh-cot")
r = subprocess.run([TAIA, "eval", "-m", MODEL, "--tasks", nav, "--bbh-cot", "--limit", "1", "--max-new-tokens", "8",
                    "--threads", "2", "-o", out], capture_output=True, text=True)
check(r.returncode == 0, "taia eval --bbh-cot exits 0", r.stderr[-800:])
if r.returncode == 0:
    (sample,) = [json.loads(line) for line in open(os.path.join(out, "samples", "navigate.base.jsonl"))]
    cot = open(os.path.join(DATA, "bbh", "cot-prompts", "navigate.txt")).read().split("-----\n", 1)[1].strip()
    first = json.load(open(nav))["examples"][0]["input"]
    check(sample["prompt"] == cot + "\n\nQ: " + first + "\nA: Let's think step by step.",
          "the prompt is the cot-prompts file + Q: input + A: Let's think step by step.", sample["prompt"][-200:])
r = subprocess.run([TAIA, "eval", "-m", MODEL, "--tasks", nav, "--bbh-cot", "--shots", "2", "-o", out],
                   capture_output=True, text=True)
check(r.returncode == 2 and "--bbh-cot" in r.stderr, "--bbh-cot with --shots 2 is a usage error", r.stderr[-300:])

# ---- 3. malformed records in each layout, and malformed predictions: exit 1 with file:line and field
cases = [
    ("gsm8k_bad.jsonl", [{"question": "q", "answer": "x #### 1"}, {"question": "q", "answer": "no mark ####"}],
     ":2: field 'answer' has no final answer"),
    ("medqa_bad.jsonl", [{"question": "q", "options": {"A": "a", "B": "b"}, "answer_idx": "A"},
                         {"question": "q", "options": {"A": "a", "B": "b"}, "answer_idx": "F"}],
     ":2: field 'answer_idx': answer 'F' is not one of the option labels (A, B)"),
    ("icl_bad.jsonl", [{"query": "q", "choices": ["a", "b"], "gold": 2}], ":1: field 'gold' expected an index in 0..1"),
    ("arc_bad.jsonl", [{"question": {"stem": "s", "choices": []}, "answerKey": "A"}],
     ":1: field 'choices' expected 2 to 26 options, got 0"),
    ("qa_bad.jsonl", [{"context": "c", "answer": "a"}, {"context": "c"}], ":2: missing field 'answer'"),
    ("medqa_as_generic.jsonl", [{"question": "q", "answer": "a", "choices_extra": 1, "gold": 0}],
     ":1: the record was recognised as generic"),
]
for name, records, expect in cases:
    path = write_jsonl(os.path.join(WORK, name), records)
    r = subprocess.run([TAIA, "eval", "--tasks", path, "--predictions", path, "-o", os.path.join(WORK, "bad")],
                       capture_output=True, text=True)
    check(r.returncode == 1 and path + expect in r.stderr, f"{name}: exit 1 with file:line and field", r.stderr[-400:])

task = write_jsonl(os.path.join(WORK, "two.jsonl"), [{"question": "q1", "answer": "1"}, {"question": "q2", "answer": "2"}])
pred_cases = [
    ([{"index": 0, "completion": "1"}, {"index": 0, "completion": "1"}], ":2: a second completion for example 0"),
    ([{"index": 0, "completion": "1"}, {"index": 5, "completion": "2"}], ":2: field 'index' expected 0..1"),
    ([{"index": 0, "completion": "1"}], ": no completion for example 1"),
    ([{"index": 0, "completion": 3}, {"index": 1, "completion": "2"}], ":1: field 'completion' expected a string"),
    ([{"id": "x", "completion": "1"}], ":1: field 'id' given but the records of"),
]
for i, (lines, expect) in enumerate(pred_cases):
    preds = write_jsonl(os.path.join(WORK, f"bad_pred{i}.jsonl"), lines)
    r = subprocess.run([TAIA, "eval", "--tasks", task, "--predictions", preds, "-o", os.path.join(WORK, "bad")],
                       capture_output=True, text=True)
    check(r.returncode == 1 and preds + expect in r.stderr, f"malformed predictions {i}: exit 1 with line and field",
          r.stderr[-400:])
r = subprocess.run([TAIA, "eval", "--tasks", task, "--predictions", preds, "-m", MODEL, "-o", os.path.join(WORK, "bad")],
                   capture_output=True, text=True)
check(r.returncode == 2 and "--model does not apply" in r.stderr, "--predictions with --model is a usage error",
      r.stderr[-300:])

finish()
