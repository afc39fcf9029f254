"""taia from Python against the CLI and PEFT's formats: forward, generate, train, evaluate, adapters
from numpy, Ctrl-C during train, zero-copy logits, threads, errors."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import taia
from conftest import RECORDS, TRAIN_OPTIONS, cli, cli_options, read_safetensors

IDS = [1, 403, 407, 261, 378, 432, 383, 286, 300, 17, 99, 45]
MODES = ("base", "vanilla", "taia", "taif")


def cli_logits(work, model, ids, *extra):
    out = os.path.join(work, "cli_logits.f32")
    cli("forward", "-m", model, "--prompt-ids", ",".join(map(str, ids)), "-o", out, "-t", "2", *extra)
    return np.fromfile(out, dtype="<f4").reshape(len(ids), -1)


def test_forward_equals_cli_on_stories260k(work, stories):
    model = taia.load(stories, threads=2)
    got = model.forward(IDS)
    assert got.dtype == np.float32 and got.shape == (len(IDS), model.vocab_size)
    assert np.array_equal(got, cli_logits(work, stories, IDS))


@pytest.mark.parametrize("arch", ["llama", "qwen2", "mistral", "qwen3", "gemma2", "gemma3", "phi3", "phi4_mini",
                                  "smollm3"])
def test_forward_equals_cli_per_architecture(work, arch_models, arch):
    path = arch_models[arch]
    model = taia.load(path, threads=2)
    assert model.config["model_type"] == json.load(open(os.path.join(path, "config.json")))["model_type"]
    assert np.array_equal(model.forward(IDS), cli_logits(work, path, IDS)), arch


def test_generate_equals_cli_on_random_models(arch_models):
    """Random weights emit byte tokens that are not whole characters: the text is the CLI's."""
    for arch in ("llama", "gemma2"):
        model = taia.load(arch_models[arch])
        g = model.generate("Once upon a time", temperature=0, max_tokens=32, details=True)
        r = json.loads(cli("generate", "-m", arch_models[arch], "-p", "Once upon a time", "-n", "32",
                           "--temperature", "0", "--format", "json").stdout)
        assert g["output_ids"] == r["output_ids"] and g["text"] == r["text"], arch
        assert "".join(model.stream("Once upon a time", temperature=0, max_tokens=32)) == g["text"]


def test_tensor_is_a_read_only_view_of_the_weights(arch_models):
    path = arch_models["llama"]
    model = taia.load(path)
    stored = read_safetensors(os.path.join(path, "model.safetensors"))
    name = "model.layers.1.mlp.down_proj.weight"
    assert name in model.tensor_names()
    a, b = model.tensor(name), model.tensor(name)
    assert np.array_equal(a, stored[name]) and a.shape == stored[name].shape
    assert not a.flags.writeable
    assert a.ctypes.data == b.ctypes.data  # the model's memory, not a copy per call
    with pytest.raises(taia.Error, match="no tensor"):
        model.tensor("model.layers.9.nothing")


def test_tensor_of_bf16_weights_is_a_widened_copy(arch_models):
    model = taia.load(arch_models["llama"], dtype="bf16")
    name = "model.layers.0.self_attn.q_proj.weight"
    w = model.tensor(name)
    f32 = taia.load(arch_models["llama"]).tensor(name)
    bf16 = (f32.view(np.uint32) + 0x7FFF + ((f32.view(np.uint32) >> 16) & 1)) & 0xFFFF0000  # round to nearest even
    assert np.array_equal(w, bf16.view(np.float32))


QUANT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "quant")


def golden_checksum(values):
    """tests/data/quant/make_fixtures.py's checksum of F32 values (gguf-py's dequantize made them)."""
    bits = values.astype("<f4").reshape(-1).view("<u4").astype(np.uint64)
    weights = np.arange(bits.size, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    with np.errstate(over="ignore"):
        return f"{int(np.sum(bits * weights, dtype=np.uint64)):016x}"


@pytest.mark.parametrize("kind", ["q8_0", "q4_k", "q6_k"])
def test_tensor_of_quantized_weights_is_dequantized_as_gguf_py(kind):
    """The dequantized copy = gguf-py's dequantize, bit for bit (goldens made by llama.cpp's tools)."""
    goldens = json.load(open(os.path.join(QUANT, "goldens.json")))[f"tiny-{kind}.gguf"]
    model = taia.load(os.path.join(QUANT, f"tiny-{kind}.gguf"))
    for hf, gguf in (("model.layers.0.self_attn.v_proj.weight", "blk.0.attn_v.weight"),
                     ("model.layers.0.mlp.down_proj.weight", "blk.0.ffn_down.weight")):
        assert goldens[gguf]["type"] == kind.upper()
        t = model.tensor(hf)
        assert golden_checksum(t) == goldens[gguf]["checksum"] and not t.flags.writeable, (kind, hf)


def test_train_equals_cli_to_the_bit(work, stories, data_file, cli_adapter):
    out = os.path.join(work, "py_train")
    steps = []
    run = taia.train(stories, data_file, out, on_step=steps.append, **TRAIN_OPTIONS)
    assert run["steps"] == TRAIN_OPTIONS["max_steps"] and not run["stopped"]
    assert [m["step"] for m in steps] == list(range(1, TRAIN_OPTIONS["max_steps"] + 1))
    with open(os.path.join(out, "adapter_model.safetensors"), "rb") as f, \
            open(os.path.join(cli_adapter, "adapter_model.safetensors"), "rb") as g:
        assert f.read() == g.read()
    lines = [json.loads(x) for x in open(os.path.join(out, "metrics.jsonl"))]
    assert [m["loss"] for m in lines] == [m["loss"] for m in steps]


def test_train_refuses_unknown_options_by_name(work, stories, data_file):
    with pytest.raises(taia.Error, match="--lora-rnk"):
        taia.train(stories, data_file, os.path.join(work, "bad"), lora_rnk=4)
    with pytest.raises(ValueError, match="--lr"):
        taia.train(stories, data_file, os.path.join(work, "bad"), lr=-1)


@pytest.mark.parametrize("mode", MODES)
def test_forward_and_generate_equal_cli_in_each_mode(work, stories, cli_adapter, mode):
    model = taia.load(stories, threads=2)
    adapter = taia.load_adapter(cli_adapter)
    got = model.forward(IDS, adapter=adapter, mode=mode)
    assert np.array_equal(got, cli_logits(work, stories, IDS, "--adapter", cli_adapter, "--mode", mode))
    g = model.generate("Once upon a time", adapter=adapter, mode=mode, temperature=0, max_tokens=24, details=True)
    r = json.loads(cli("generate", "-m", stories, "-p", "Once upon a time", "-n", "24", "--temperature", "0",
                       "--adapter", cli_adapter, "--mode", mode, "-t", "2", "--format", "json").stdout)
    assert g["output_ids"] == r["output_ids"] and g["text"] == r["text"] and g["prompt_ids"] == r["prompt_ids"]
    s = model.generate("Once upon a time", adapter=adapter, mode=mode, temperature=0.9, top_p=0.9, seed=11,
                       max_tokens=24, details=True)
    r = json.loads(cli("generate", "-m", stories, "-p", "Once upon a time", "-n", "24", "--temperature", "0.9",
                       "--top-p", "0.9", "--seed", "11", "--adapter", cli_adapter, "--mode", mode, "-t", "2",
                       "--format", "json").stdout)
    assert s["output_ids"] == r["output_ids"]


def test_model_own_adapter_and_module_lists(stories, cli_adapter):
    model = taia.load(stories)
    with pytest.raises(taia.Error, match="needs an adapter"):
        model.forward(IDS, mode="taia")
    model.load_adapter(cli_adapter)
    a = model.forward(IDS)  # the model's own adapter, mode taia by default
    assert np.array_equal(a, model.forward(IDS, adapter=taia.load_adapter(cli_adapter), mode="q,k,v,o"))
    assert not np.array_equal(a, model.forward(IDS, mode="base"))


def test_numpy_adapter_equals_the_peft_folder(stories, cli_adapter):
    import torch
    model = taia.load(stories)
    tensors = read_safetensors(os.path.join(cli_adapter, "adapter_model.safetensors"))
    config = json.load(open(os.path.join(cli_adapter, "adapter_config.json")))
    first = sorted(tensors)[0]
    tensors[first] = torch.from_numpy(tensors[first].copy())  # a PyTorch state_dict's values work too
    made = taia.Adapter.from_tensors(tensors, config)
    folder = taia.load_adapter(cli_adapter)
    for mode in MODES:
        assert np.array_equal(model.forward(IDS, adapter=made, mode=mode), model.forward(IDS, adapter=folder, mode=mode))
    missing = {k: v for k, v in tensors.items() if k != first}
    with pytest.raises(taia.Error, match="missing tensor"):
        model.forward(IDS, adapter=taia.Adapter.from_tensors(missing, config), mode="vanilla")
    wrong = dict(tensors, **{first: np.zeros((3, 3), np.float32)})
    with pytest.raises(taia.Error, match="expected shape"):
        model.forward(IDS, adapter=taia.Adapter.from_tensors(wrong, config), mode="vanilla")


def test_gguf_lora_and_molora_adapters(work, stories, data_file):
    """A GGUF LoRA file and a MoLoRA folder (trained from Python) run as the CLI runs them."""
    model = taia.load(stories, threads=2)
    molora = os.path.join(work, "molora")
    run = taia.train(stories, data_file, molora, method="molora", experts=2, top_k=2, max_steps=3, batch_size=2,
                     grad_accum=1, lr=0.01, seed=3, lora_rank=4, threads=2)
    assert run["steps"] == 3
    gguf = os.path.join(work, "lora.gguf")
    lora = os.path.join(work, "lora_for_gguf")
    taia.train(stories, data_file, lora, max_steps=2, batch_size=2, grad_accum=1, lr=0.01, lora_rank=4, threads=2)
    taia.export(stories, lora, gguf, format="gguf-lora")
    for path in (molora, gguf):
        adapter = taia.load_adapter(path)
        for mode in ("vanilla", "taia", "taif"):
            want = cli_logits(work, stories, IDS, "--adapter", path, "--mode", mode)
            assert np.array_equal(model.forward(IDS, adapter=adapter, mode=mode), want), (path, mode)


def test_evaluate_returns_what_taia_eval_writes(work, stories, cli_adapter):
    text = os.path.join(work, "story.txt")
    open(text, "w").write("".join(r["output"] + "\n" for r in RECORDS))
    out_cli, out_py = os.path.join(work, "eval_cli"), os.path.join(work, "eval_py")
    cli("eval", "-m", stories, "--tasks", text, "--adapter", cli_adapter, "--modes", "base;taia;q,k", "-o", out_cli,
        "--threads", "2", "--format", "json")
    got = taia.evaluate(stories, text, adapter=cli_adapter, modes=["base", "taia", "q,k"], out=out_py, threads=2)
    written = json.load(open(os.path.join(out_py, "results.json")))
    want = json.load(open(os.path.join(out_cli, "results.json")))

    def scores(results):
        return {t: {m: {k: v for k, v in r.items() if "second" not in k and not k.endswith("_per_s")}
                    for m, r in modes.items()} for t, modes in results["tasks"].items()}
    assert got == written
    assert scores(got) == scores(want) and set(got["tasks"]["story"]) == {"base", "taia", "q,k"}


def test_merge_and_export(work, stories, cli_adapter):
    merged = os.path.join(work, "merged")
    summary = taia.merge(stories, merged, adapter=cli_adapter, mode="taia")
    assert isinstance(summary, dict) and os.path.exists(os.path.join(merged, "config.json"))
    model, m = taia.load(stories), taia.load(merged)
    diff = np.abs(m.forward(IDS) - model.forward(IDS, adapter=taia.load_adapter(cli_adapter), mode="taia")).max()
    assert diff < 1e-4
    gguf = os.path.join(work, "taia-lora.gguf")
    taia.export(stories, cli_adapter, gguf, format="gguf-lora", mode="taia")
    assert open(gguf, "rb").read(4) == b"GGUF"


def test_ctrl_c_during_train_leaves_a_resumable_checkpoint(work, stories, data_file, cli_adapter):
    out = os.path.join(work, "interrupted")
    script = f"""
import sys, time, taia
def on_step(m):
    print("step", m["step"], flush=True)
    time.sleep(0.5)
taia.train({stories!r}, {data_file!r}, {out!r}, on_step=on_step, **{dict(TRAIN_OPTIONS, save_every=0)!r})
print("finished", flush=True)
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=env)
    assert p.stdout.readline().split() == ["step", "1"]
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode != 0 and "KeyboardInterrupt" in stderr and "finished" not in stdout, stderr[-500:]
    checkpoints = sorted(d for d in os.listdir(out) if d.startswith("checkpoint-"))
    assert checkpoints == ["checkpoint-1"] or checkpoints == ["checkpoint-2"], checkpoints
    assert not os.path.exists(os.path.join(out, "adapter_model.safetensors"))  # stopped: no final adapter
    # Resumed by the CLI, it ends where an uninterrupted run ends (save_every does not change the numbers).
    cli("train", "-m", stories, "--data", data_file, "-o", out, "--resume", out,
        *cli_options(dict(TRAIN_OPTIONS, save_every=0)))
    with open(os.path.join(out, "adapter_model.safetensors"), "rb") as f, \
            open(os.path.join(cli_adapter, "adapter_model.safetensors"), "rb") as g:
        assert f.read() == g.read()


def test_logits_are_not_copied(work):
    """A forward of 512 MiB of logits raises the peak RSS by about that, not twice it; the array's
    memory is the library's (its base owns it)."""
    cfg = dict(architectures=["LlamaForCausalLM"], model_type="llama", vocab_size=32768, hidden_size=32,
               intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
               max_position_embeddings=8192, rms_norm_eps=1e-5, tie_word_embeddings=True)
    path = os.path.join(work, "big_vocab")
    json.dump(cfg, open(path + ".json", "w"))
    cli("init-model", "--config", path + ".json", "--out", path)
    script = f"""
import resource, numpy as np, taia
m = taia.load({path!r}, threads=2)
ids = list(np.arange(4096) % 32768)
m.forward(ids[:8])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
x = m.forward(ids)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(x.nbytes, after - before, x.flags.owndata, type(x.base).__name__)
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-800:]
    nbytes, grew, owndata, base = r.stdout.split()
    nbytes, grew = int(nbytes), int(grew)
    assert nbytes == 4096 * 32768 * 4
    assert grew < 1.5 * nbytes, f"peak RSS grew {grew >> 20} MiB for {nbytes >> 20} MiB of logits"
    assert owndata == "False" and base == "PyCapsule"


def test_two_threads_generate_at_once(stories):
    """Each of two threads sharing one model gets its own answer, and the GIL is released while
    one generates (a Python thread keeps counting). The wall-time gain of two threads is measured
    in bench/python_threads.py (a timing, not a test)."""
    model = taia.load(stories, threads=1)
    prompts = ["Once upon a time", "The dog"]

    def run(p):
        return model.generate(p, temperature=0, max_tokens=400, ignore_eos=True)

    alone = [run(p) for p in prompts]
    for _ in range(3):
        got = [None, None]
        threads = [threading.Thread(target=lambda i=i: got.__setitem__(i, run(prompts[i]))) for i in range(2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert got == alone
    count = [0]
    done = threading.Event()

    def counter():
        while not done.is_set():
            count[0] += 1
    c = threading.Thread(target=counter)
    c.start()
    time.sleep(0.01)
    before = count[0]
    run(prompts[0])
    during = count[0] - before
    done.set()
    c.join()
    assert during > 1000, f"a Python thread counted only {during} while generate ran: is the GIL held?"


def test_tokenizer_chat_stream_and_stop(stories):
    model = taia.load(stories)
    tok = model.tokenizer
    ids = tok.encode("Once upon a time")
    assert ids[0] == 1 and tok.decode(ids) == "Once upon a time"
    assert tok.decode([191]) == "\ufffd"  # <0xBC> alone is not UTF-8: replaced, as the CLI's JSON has it
    messages = [{"role": "user", "content": "Tell me a story"}]
    assert "Tell me a story" in tok.apply_chat_template(messages)
    r = json.loads(cli("generate", "-m", stories, "-p", "Tell me a story", "--chat", "-n", "16", "--temperature", "0",
                       "--format", "json").stdout)
    assert tok.apply_chat_template(messages, tokenize=True) == r["prompt_ids"]
    g = model.generate(messages, temperature=0, max_tokens=16, details=True)
    assert g["prompt_ids"] == r["prompt_ids"] and g["output_ids"] == r["output_ids"]
    full = model.generate("Once upon a time", temperature=0, max_tokens=40)
    assert "".join(model.stream("Once upon a time", temperature=0, max_tokens=40)) == full
    word = full.split()[3]
    cut = model.generate("Once upon a time", temperature=0, max_tokens=40, stop=[word], details=True)
    assert cut["text"] == full[:full.index(word)] and cut["stopped_at_text"]
    assert "".join(model.stream("Once upon a time", temperature=0, max_tokens=40, stop=word)) == cut["text"]
    for piece in model.stream("Once upon a time", temperature=0, max_tokens=400, ignore_eos=True):
        break  # leaving early stops the generation
    with pytest.raises(taia.Error, match="unknown option"):
        list(model.stream("x", max_token=3))


def test_errors_are_taia_errors(stories, work):
    with pytest.raises(taia.Error, match="no such"):
        taia.load(os.path.join(work, "nothing"))
    model = taia.load(stories)
    with pytest.raises(taia.Error, match="outside the vocabulary"):
        model.forward([1, 99999])
    with pytest.raises(ValueError, match="top_p"):
        model.generate("x", top_p=0)
    with pytest.raises(taia.Error, match="mode"):
        model.forward(IDS, mode="sideways")
    assert issubclass(taia.Error, ValueError) and taia.__version__
