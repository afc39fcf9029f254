"""Behaviour of the taia command line: help, exit codes (0 ok, 1 runtime error, 2 usage
error), JSON output, determinism of init-model and sampling, the stories260K golden.

usage: python3 test_cli.py TAIA_BINARY WORK_DIR [FIXTURES_DIR]
"""
import filecmp
import json
import re
import os
import shutil
import subprocess
import sys

TAIA, WORK = sys.argv[1], sys.argv[2]
FIXTURES = sys.argv[3] if len(sys.argv) > 3 else ""
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
failures = []


def run(*args):
    return subprocess.run([TAIA, *args], capture_output=True, text=True, timeout=120)


def check(cond, label, detail=""):
    print(f"{'ok  ' if cond else 'FAIL'} {label}{'' if cond else ': ' + detail}")
    if not cond:
        failures.append(label)


# Help and usage errors.
r = run("--help")
check(r.returncode == 0 and "generate" in r.stdout and "init-model" in r.stdout, "taia --help lists subcommands")
for sub in ("generate", "forward", "inspect", "init-model", "tokenize", "train", "merge", "export", "eval", "report",
            "analyze"):
    r = run(sub, "--help")
    check(r.returncode == 0 and ("--format" in r.stdout or sub == "tokenize"), f"taia {sub} --help", r.stdout + r.stderr)
for label, args in [("no subcommand", []), ("unknown subcommand", ["frobnicate"]),
                    ("generate without --model", ["generate", "--prompt-ids", "1"]),
                    ("bad --prompt-ids", ["generate", "-m", "x", "--prompt-ids", "1,x"]),
                    ("negative id", ["generate", "-m", "x", "--prompt-ids", "1,-3"]),
                    ("top-p out of range", ["generate", "-m", "x", "--prompt-ids", "1", "--top-p", "2"]),
                    ("unknown format", ["inspect", "x", "--format", "xml"]),
                    ("unknown dtype", ["init-model", "-c", "x", "-o", "y", "--dtype", "f64"]),
                    ("analyze without --data", ["analyze", "x", "-m", "y"])]:
    r = run(*args)
    check(r.returncode == 2, f"usage error exits 2: {label}", f"exit {r.returncode} {r.stderr}")

# init-model: deterministic, dtype honoured, inspectable.
cfg = os.path.join(WORK, "config.json")
json.dump({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 64, "hidden_size": 32,
           "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
           "max_position_embeddings": 128, "tie_word_embeddings": True, "eos_token_id": 3}, open(cfg, "w"))
a, b, c = (os.path.join(WORK, n) for n in ("a", "b", "c"))
for out, seed in ((a, "1"), (b, "1"), (c, "2")):
    r = run("init-model", "--config", cfg, "--out", out, "--seed", seed, "--dtype", "bf16", "--format", "json")
    check(r.returncode == 0, f"init-model seed {seed}", r.stderr)
check(filecmp.cmp(os.path.join(a, "model.safetensors"), os.path.join(b, "model.safetensors"), shallow=False),
      "init-model: same seed, same bytes")
check(not filecmp.cmp(os.path.join(a, "model.safetensors"), os.path.join(c, "model.safetensors"), shallow=False),
      "init-model: other seed, other bytes")
check(sorted(os.listdir(a)) == ["config.json", "model.safetensors"], "init-model leaves no temporary files",
      str(os.listdir(a)))
r = run("inspect", a, "--format", "json")
rep = json.loads(r.stdout) if r.returncode == 0 else {}
check(r.returncode == 0 and rep.get("format") == "hf" and rep.get("problems") == [] and
      rep.get("dtypes") == {"BF16": 2 * (2 + 7 + 3) + 2}, "inspect HF folder", r.stdout + r.stderr)
expected_params = 64 * 32 + 2 * (32 * 32 + 2 * 32 * 16 + 32 * 32 + 3 * 32 * 48 + 2 * 32 + 32 + 2 * 16) + 32
check(rep.get("parameter_count") == expected_params, "inspect counts parameters",
      f"{rep.get('parameter_count')} != {expected_params}")
check(rep.get("config", {}).get("qkv_bias") is True and rep["config"].get("num_key_value_heads") == 2 and
      rep["config"].get("architecture") == "qwen2",
      "inspect reports hyper-parameters")
r = run("inspect", a)
check(r.returncode == 0 and "qwen2" in r.stdout and re.search(r"problems +none", r.stdout), "inspect text output", r.stdout)

# A folder whose config disagrees with its tensors: inspect lists every problem and exits 1.
bad = os.path.join(WORK, "bad")
shutil.copytree(a, bad)
conf = json.load(open(os.path.join(bad, "config.json")))
conf["num_hidden_layers"] = 3
conf["intermediate_size"] = 40
json.dump(conf, open(os.path.join(bad, "config.json"), "w"))
r = run("inspect", bad, "--format", "json")
rep = json.loads(r.stdout) if r.stdout.strip() else {}
probs = rep.get("problems", [])
check(r.returncode == 1 and any("missing tensor 'model.layers.2." in p for p in probs) and
      any("expected shape [40, 32], got [48, 32]" in p for p in probs), "inspect lists problems and exits 1",
      r.stdout + r.stderr)

# Sampling: same seed, same ids; json fields present.
def gen(model, *extra):
    r = run("generate", "-m", model, "--prompt-ids", "1,2,3", "-n", "12", "--format", "json", *extra)
    return r.returncode, (json.loads(r.stdout) if r.returncode == 0 else r.stderr)


code, g1 = gen(a, "--temperature", "1.0", "--seed", "5", "--ignore-eos")
code2, g2 = gen(a, "--temperature", "1.0", "--seed", "5", "--ignore-eos")
check(code == 0 and code2 == 0 and g1["output_ids"] == g2["output_ids"] and len(g1["output_ids"]) == 12,
      "generate: seeded sampling repeats", str(g1))
check(code == 0 and g1["prompt_ids"] == [1, 2, 3] and "decode_tokens_per_s" in g1, "generate: json fields")
code, g3 = gen(a, "--temperature", "0", "--dtype", "f32")
code4, g4 = gen(a, "--temperature", "0", "--dtype", "bf16")
check(code == 0 and code4 == 0 and g3["output_ids"] == g4["output_ids"],
      "generate: F32 and BF16 storage of BF16 weights give the same greedy ids")

# The golden continuation of the reference C implementation, through the CLI.
model = os.path.join(FIXTURES, "models", "stories260K", "stories260K.gguf") if FIXTURES else ""
if model and os.path.exists(model):
    golden = json.loads(open(os.path.join(FIXTURES, "models", "stories260K", "greedy-once-upon-a-time.jsonl")).readline())
    r = run("generate", "--model", model, "--prompt-ids", ",".join(map(str, golden["prompt_ids"])), "-n", "60",
            "--temperature", "0", "--format", "json")
    out = json.loads(r.stdout) if r.returncode == 0 else {}
    check(out.get("output_ids") == golden["greedy_ids"], "stories260K greedy == llama2.c golden (CLI)", r.stderr)
    # Text prompt through the GGUF's own vocabulary: same ids as the golden, same continuation.
    r = run("generate", "--model", model, "--prompt", golden["prompt"], "-n", "60", "--temperature", "0",
            "--format", "json")
    out = json.loads(r.stdout) if r.returncode == 0 else {}
    check(out.get("prompt_ids") == golden["prompt_ids"] and out.get("output_ids") == golden["greedy_ids"]
          and out.get("text", "").startswith(", there was"), "stories260K --prompt text == golden ids", r.stderr)
    r = run("generate", "--model", model, "--prompt", golden["prompt"], "-n", "60", "--temperature", "0")
    check(r.returncode == 0 and r.stdout.strip() == out.get("text", "").strip(), "text mode streams the same text",
          repr(r.stdout[:80]))
    r = run("inspect", model, "--format", "json")
    rep = json.loads(r.stdout) if r.returncode == 0 else {}
    check(rep.get("format") == "gguf" and rep.get("tensor_count") == 48 and rep.get("config", {}).get("num_hidden_layers") == 5
          and rep.get("problems") == [], "inspect stories260K.gguf", r.stdout + r.stderr)
else:
    print("skip stories260K checks: shared fixtures not found (pass the fixtures folder as third argument)")

# --chat: the prompt is the chat template's rendering with a generation prompt.
qwen = os.path.join(FIXTURES, "tokenizers", "qwen3") if FIXTURES else ""
if qwen and os.path.isdir(qwen):
    qcfg = os.path.join(WORK, "qwen_vocab.json")
    json.dump({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 151936, "hidden_size": 16,
               "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
               "max_position_embeddings": 256, "tie_word_embeddings": True, "eos_token_id": 151645}, open(qcfg, "w"))
    qmodel = os.path.join(WORK, "qwen_model")
    run("init-model", "--config", qcfg, "--out", qmodel, "--seed", "3")
    r = run("generate", "-m", qmodel, "--tokenizer", qwen, "--prompt", "Hi there", "--chat", "-n", "4",
            "--temperature", "0", "--format", "json")
    g = json.loads(r.stdout) if r.returncode == 0 else {}
    t = subprocess.run([TAIA, "tokenize", "--chat", "--tokenizer", qwen],
                       input=json.dumps({"messages": [{"role": "user", "content": "Hi there"}],
                                         "add_generation_prompt": True}) + "\n", capture_output=True, text=True)
    want = json.loads(t.stdout)["ids"] if t.returncode == 0 else None
    check(g.get("prompt_ids") == want and g.get("chat_template") == "qwen3" and isinstance(g.get("text"), str),
          "generate --chat renders the prompt with the model's chat template", r.stderr + str(g)[:200])
    r = run("generate", "-m", qmodel, "--prompt", "Hi", "-n", "2")
    check(r.returncode == 1 and "needs a tokenizer" in r.stderr, "--prompt without a tokenizer: exit 1", r.stderr)
    # An HF folder with its tokenizer: training and exports carry the tokenizer files over.
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(qwen, f), qmodel)
    data = os.path.join(WORK, "chat.jsonl")
    with open(data, "w") as fh:
        fh.write(json.dumps({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}) + "\n")
    lora_out, full_out, hf_out = (os.path.join(WORK, n) for n in ("q_lora", "q_full", "q_hf"))
    r1 = run("train", "-m", qmodel, "--data", data, "-o", lora_out, "--max-steps", "1", "--batch-size", "1",
             "--grad-accum", "1")
    r2 = run("export", "-m", qmodel, "--adapter", lora_out, "--format", "hf", "-o", hf_out)
    r3 = run("train", "-m", qmodel, "--data", data, "-o", full_out, "--method", "full", "--max-steps", "1",
             "--batch-size", "1", "--grad-accum", "1")
    same = all(filecmp.cmp(os.path.join(qwen, f), os.path.join(d, f), shallow=False)
               for d in (hf_out, full_out) for f in ("tokenizer.json", "tokenizer_config.json")
               if os.path.exists(os.path.join(d, f)))
    present = all(os.path.exists(os.path.join(d, f)) for d in (hf_out, full_out)
                  for f in ("tokenizer.json", "tokenizer_config.json"))
    check(r1.returncode == 0 and r2.returncode == 0 and r3.returncode == 0 and present and same,
          "hf export and full fine-tuning carry the tokenizer files", r1.stderr + r2.stderr + r3.stderr)
    # The update-size controls: an exported scaled adapter run as vanilla is the scaled mode run
    # unmerged; a full merge of random-half keeps whole tensors (fine-tuned or the base's) within
    # the attention set's parameter count; a draw 0 is a usage error.
    scaled_out = os.path.join(WORK, "q_scaled")
    r = run("export", "-m", qmodel, "--adapter", lora_out, "--mode", "scaled", "--format", "peft", "-o", scaled_out)
    g1 = run("generate", "-m", qmodel, "--adapter", lora_out, "--mode", "scaled", "--prompt-ids", "1,5,9", "-n", "6",
             "--temperature", "0", "--format", "json")
    g2 = run("generate", "-m", qmodel, "--adapter", scaled_out, "--mode", "vanilla", "--prompt-ids", "1,5,9", "-n", "6",
             "--temperature", "0", "--format", "json")
    ids = [json.loads(g.stdout)["output_ids"] if g.returncode == 0 else None for g in (g1, g2)]
    check(r.returncode == 0 and ids[0] is not None and ids[0] == ids[1],
          "export --mode scaled (peft) run as vanilla == generate --mode scaled", r.stderr + g1.stderr + g2.stderr)
    merged_half = os.path.join(WORK, "q_half")
    r = run("merge", "--base", qmodel, "--finetuned", full_out, "--mode", "random-half-2", "--out", merged_half,
            "--format", "json")
    m = json.loads(r.stdout) if r.returncode == 0 else {}
    upd, prov = m.get("update", {}), m.get("provenance", {})
    proj = [v for k, v in prov.items() if "_proj." in k]
    check(r.returncode == 0 and m.get("mode") == "random-half-2" and 0 < upd.get("parameters", 0) <=
          upd.get("attention_parameters", -1) and set(proj) == {"base", "finetuned"},
          "merge --finetuned --mode random-half-2: whole tensors, <= the attention set's parameters",
          r.stderr + str(upd)[:300])
    r = run("generate", "-m", qmodel, "--adapter", lora_out, "--mode", "random-half-0", "--prompt-ids", "1", "-n", "1")
    check(r.returncode == 2 and "random-half" in r.stderr, "--mode random-half-0: usage error", r.stderr)
    r = run("generate", "-m", qmodel, "--prompt-ids", "1", "--prompt", "x")
    check(r.returncode == 2, "--prompt-ids and --prompt together: usage error")

print(f"{len(failures)} failure(s)")
sys.exit(1 if failures else 0)
