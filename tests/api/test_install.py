"""The C++ library as another project uses it: `cmake --install` into a fresh prefix, then
examples/generate built twice against the installed tree only (find_package(taia CONFIG) and
pkg-config), its greedy continuations and logits compared with the CLI's in the four modes and
with llama2.c's golden for stories260K; examples/finetune's train and evaluate through the library
against taia train's adapter (bit for bit) and taia eval's scores.

  test_install.py TAIA_BINARY FIXTURES WORK_DIR BUILD_DIR SOURCE_DIR"""
import json
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, finish, setup, write_jsonl  # noqa: E402

TAIA, FIXTURES, WORK, MODEL = setup()
BUILD, SOURCE = sys.argv[4], sys.argv[5]
PREFIX = os.path.join(WORK, "prefix")
ENV = dict(os.environ, OMP_NUM_THREADS="2")


def run(*cmd, env=ENV):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env)


def must(*cmd, env=ENV):
    r = run(*cmd, env=env)
    if r.returncode != 0:
        print(f"FAIL {' '.join(map(str, cmd))}: exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
        sys.exit(1)
    return r


# 1. The installed tree: one public header, the library, the CMake package and the pkg-config file.
must("cmake", "--install", BUILD, "--prefix", PREFIX)
headers = sorted(os.path.relpath(os.path.join(d, f), os.path.join(PREFIX, "include"))
                 for d, _, fs in os.walk(os.path.join(PREFIX, "include")) for f in fs)
check(headers == ["taia/taia.h"], "include/ holds only the public header", headers)
libdir = next(os.path.join(PREFIX, d) for d in ("lib", "lib64", "lib/x86_64-linux-gnu")
              if os.path.exists(os.path.join(PREFIX, d, "cmake", "taia", "taiaConfig.cmake")))
check(os.path.exists(os.path.join(libdir, "libtaia.so")), "libtaia.so installed")
check(os.path.exists(os.path.join(libdir, "pkgconfig", "taia.pc")), "taia.pc installed")
check(os.access(os.path.join(PREFIX, "bin", "taia"), os.X_OK), "the CLI installed")

# 2. Only the API is exported: no internal taia:: symbol and none of the hidden dependencies.
syms = must("nm", "-DC", "--defined-only", os.path.join(libdir, "libtaia.so")).stdout.splitlines()
names = [" ".join(s.split()[2:]) for s in syms if len(s.split()) >= 3]
leaked = [n for n in names if ("taia::" in n and "taia::api::" not in n) or "dnnl" in n or "pcre2" in n]
check(any("taia::api::Model::load" in n for n in names), "taia::api::Model::load exported")
check(not leaked, "no internal symbol exported", leaked[:5])

# 3. The example built against the installed tree, by CMake and by pkg-config.
ex = os.path.join(WORK, "example")
must("cmake", "-S", os.path.join(SOURCE, "examples", "generate"), "-B", ex, f"-DCMAKE_PREFIX_PATH={PREFIX}",
     "-DCMAKE_BUILD_TYPE=Release")
must("cmake", "--build", ex)
by_cmake = os.path.join(ex, "taia_example_generate")
pc_env = dict(ENV, PKG_CONFIG_PATH=os.path.join(libdir, "pkgconfig"))
flags = must("pkg-config", "--cflags", "--libs", "taia", env=pc_env).stdout.split()
by_pkgconfig = os.path.join(WORK, "example_pkgconfig")
must("g++", "-O1", os.path.join(SOURCE, "examples", "generate", "generate.cpp"), "-o", by_pkgconfig, *flags)
pc_run_env = dict(ENV, LD_LIBRARY_PATH=libdir)

# 4. Base model: llama2.c's greedy golden, the CLI's ids and logits, through both builds.
golden = json.loads(open(os.path.join(FIXTURES, "models", "stories260K", "greedy-once-upon-a-time.jsonl")).readline())
ids = ",".join(map(str, golden["prompt_ids"]))
n = len(golden["greedy_ids"])


def example(binary, *args, env=ENV, model=MODEL):
    r = run(binary, model, *args, env=env)
    return json.loads(r.stdout) if r.returncode == 0 else {"error": r.stderr}


def cli_generate(*args):
    r = must(TAIA, "generate", "-m", MODEL, "--temperature", "0", "--format", "json", "-t", "2", *args)
    return json.loads(r.stdout)


for label, binary, env in (("cmake", by_cmake, ENV), ("pkg-config", by_pkgconfig, pc_run_env)):
    out = example(binary, "--prompt-ids", ids, "-n", n, env=env)
    check(out.get("output_ids") == golden["greedy_ids"], f"{label} build: greedy ids = llama2.c's golden", out)
    check(out.get("version") == must(TAIA, "--version").stdout.split()[-1], f"{label} build: version = the CLI's",
          out.get("version"))

text = example(by_cmake, "--prompt", golden["prompt"], "-n", 12)
cli = cli_generate("-p", golden["prompt"], "-n", "12")
check(text.get("output_ids") == cli["output_ids"] and text.get("text") == cli["text"],
      "text prompt: ids and text = taia generate -p", (text, cli))

# 5. An adapter in every mode: greedy ids and prompt logits equal the CLI's, bit for bit.
rng = random.Random(3)
data = os.path.join(WORK, "data.jsonl")
write_jsonl(data, [{"instruction": f"Who is {who}?", "output": f"{who} is a happy child."}
                   for who in (rng.choice(["Lily", "Tom", "Sam"]) for _ in range(16))])
adapter = os.path.join(WORK, "adapter")
must(TAIA, "train", "-m", MODEL, "--data", data, "-o", adapter, "--max-steps", "4", "--lr", "1e-2", "--batch-size",
     "4", "--grad-accum", "1", "--lora-rank", "4", "--lora-dropout", "0")
outputs = {}
for mode in ("base", "vanilla", "taia", "taif", "q,v,down"):
    api_logits, cli_logits = os.path.join(WORK, "api.f32"), os.path.join(WORK, "cli.f32")
    out = example(by_cmake, "--prompt-ids", ids, "-n", 16, "--adapter", adapter, "--mode", mode, "--logits", api_logits)
    cli = cli_generate("--prompt-ids", ids, "-n", "16", "--adapter", adapter, "--mode" if "," not in mode else
                       "--modules", mode)
    must(TAIA, "forward", "-m", MODEL, "--prompt-ids", ids, "-o", cli_logits, "-t", "2", "--adapter", adapter,
         "--mode" if "," not in mode else "--modules", mode)
    check(out.get("output_ids") == cli["output_ids"], f"{mode}: greedy ids = taia generate's", (out, cli))
    same = os.path.exists(api_logits) and open(api_logits, "rb").read() == open(cli_logits, "rb").read()
    check(same, f"{mode}: logits = taia forward's, bit for bit")
    outputs[mode] = out.get("output_ids")
check(len({tuple(v or []) for v in outputs.values()}) > 1, "the modes differ (the adapter changes something)",
      outputs)

# 6. examples/finetune: train and evaluate through the installed library = the CLI's, to the bit.
fx = os.path.join(WORK, "example_finetune")
must("cmake", "-S", os.path.join(SOURCE, "examples", "finetune"), "-B", fx, f"-DCMAKE_PREFIX_PATH={PREFIX}",
     "-DCMAKE_BUILD_TYPE=Release")
must("cmake", "--build", fx)
finetune = os.path.join(fx, "taia_example_finetune")
story = os.path.join(WORK, "story.txt")
with open(story, "w") as f:
    f.write("Lily is a happy child. Tom is a happy child. Sam is a happy child.\n")
train_opts = ["max-steps=4", "lr=1e-2", "batch-size=4", "grad_accum=1", "lora-rank=4", "lora-dropout=0"]
api_out = os.path.join(WORK, "api_train")
r = run(finetune, MODEL, data, api_out, story, *train_opts)
lines = [json.loads(x) for x in r.stdout.splitlines()] if r.returncode == 0 else []
check(r.returncode == 0 and [m.get("step") for m in lines[:4]] == [1, 2, 3, 4], "train: on_step after each step",
      r.stdout[-500:] + r.stderr[-500:])
same = all(os.path.exists(os.path.join(d, "adapter_model.safetensors")) for d in (api_out, adapter)) and \
    open(os.path.join(api_out, "adapter_model.safetensors"), "rb").read() == \
    open(os.path.join(adapter, "adapter_model.safetensors"), "rb").read()
check(same, "train through libtaia.so: the adapter = taia train's, bit for bit")
cli_eval = os.path.join(WORK, "cli_eval")
must(TAIA, "eval", "-m", MODEL, "--tasks", story, "--adapter", api_out, "--modes", "base,vanilla,taia,taif", "-o",
     cli_eval, "--threads", "2")
want = json.load(open(os.path.join(cli_eval, "results.json")))["tasks"]["story"]
got = lines[-1]["tasks"]["story"] if lines and "tasks" in lines[-1] else {}
check(sorted(got) == ["base", "taia", "taif", "vanilla"] and
      all(got[m]["value"] == want[m]["value"] for m in want), "evaluate through libtaia.so = taia eval", (got, want))
r = run(finetune, MODEL, data, os.path.join(WORK, "api_stopped"), story, "--stop-after", "2", *train_opts)
stopped = json.loads(r.stdout.splitlines()[-1]) if r.returncode == 0 else {}
check(stopped.get("stopped") is True and stopped.get("output", "").endswith("checkpoint-2"),
      "on_step returning false stops at that step with a checkpoint", r.stdout[-400:] + r.stderr[-400:])
r = run(finetune, MODEL, data, os.path.join(WORK, "api_bad"), story, "lora-rnk=4")
check(r.returncode == 1 and "--lora-rnk" in r.stderr, "an unknown option is refused by name", r.stderr)

# 7. Errors reach the program as taia::api::Error with the library's message.
r = run(by_cmake, os.path.join(WORK, "missing.gguf"), "--prompt-ids", "1")
check(r.returncode == 1 and "missing.gguf" in r.stderr, "a missing model: Error naming the path", r.stderr)
r = run(by_cmake, MODEL, "--prompt-ids", "1,99999")
check(r.returncode == 1 and "99999" in r.stderr and "vocabulary" in r.stderr, "an id outside the vocabulary",
      r.stderr)
r = run(by_cmake, MODEL, "--prompt-ids", "1", "--mode", "taia")
check(r.returncode == 1 and "load_adapter" in r.stderr, "a mode without an adapter", r.stderr)
r = run(by_cmake, MODEL, "--prompt-ids", "1", "--adapter", adapter, "--mode", "bogus")
check(r.returncode == 1 and "bogus" in r.stderr, "an unknown mode is refused by name", r.stderr)
# A model folder whose tokenizer.json is broken: ids still run, a text prompt names the file.
folder = os.path.join(WORK, "folder")
config = os.path.join(WORK, "config.json")
with open(config, "w") as f:
    json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 64, "hidden_size": 32,
               "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2,
               "max_position_embeddings": 64, "rms_norm_eps": 1e-6, "torch_dtype": "float32"}, f)
must(TAIA, "init-model", "-c", config, "-o", folder)
with open(os.path.join(folder, "tokenizer.json"), "w") as f:
    f.write('{"model": {"type": "BPE", "vocab": ')
out = example(by_cmake, "--prompt-ids", "1,2,3", "-n", 4, env=ENV, model=folder)
check(len(out.get("output_ids", [])) == 4, "a broken tokenizer: ids still generate", out)
r = run(by_cmake, folder, "--prompt", "hello")
check(r.returncode == 1 and "tokenizer.json" in r.stderr, "a broken tokenizer: a text prompt names the file",
      r.stderr)
finish()
