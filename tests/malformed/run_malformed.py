"""Catalogue of malformed inputs: each must make taia exit with code 1 (never crash, hang or
succeed) and print a message that names the file and the problem.

usage: python3 run_malformed.py TAIA_BINARY WORK_DIR
"""
import json
import os
import shutil
import struct
import subprocess
import sys

TAIA, WORK = sys.argv[1], sys.argv[2]
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)

TINY = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 40, "hidden_size": 16,
        "intermediate_size": 24, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
        "max_position_embeddings": 64, "eos_token_id": 2}


def path(name):
    return os.path.join(WORK, name)


def write(name, data):
    p = path(name)
    with open(p, "wb") as f:
        f.write(data)
    return p


# ---------- safetensors ----------
def st(header, data=b"", raw_len=None):
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    n = len(h) if raw_len is None else raw_len
    return struct.pack("<Q", n) + h + data


F4 = struct.pack("<4f", 1, 2, 3, 4)


def valid_header(**over):
    t = {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}
    t.update(over)
    return {"w": t}


# ---------- GGUF ----------
def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf(kvs=b"", n_kv=0, tensors=b"", n_t=0, version=3, data=b"", magic=b"GGUF", pad=True):
    head = magic + struct.pack("<IQQ", version, n_t, n_kv) + kvs + tensors
    if pad:
        head += b"\0" * ((32 - len(head) % 32) % 32)
    return head + data


def kv_u32(k, v):
    return gstr(k) + struct.pack("<I", 4) + struct.pack("<I", v)


def tinfo(name, ne, typ, off):
    return gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne) + struct.pack("<IQ", typ, off)


CASES = []  # (label, argv, needles)


def case(label, argv, *needles):
    CASES.append((label, argv, needles))


def inspect(p):
    return ["inspect", p]


s = write
case("safetensors: empty file", inspect(s("empty.safetensors", b"")), "at least 8 bytes")
case("safetensors: truncated length", inspect(s("trunc.safetensors", b"\x10\0\0")), "at least 8 bytes")
case("safetensors: header length past EOF", inspect(s("past.safetensors", st(valid_header(), F4, raw_len=4096))),
     "runs past the end")
case("safetensors: header length over limit",
     inspect(s("huge.safetensors", st(valid_header(), F4, raw_len=1 << 40))), "exceeds the limit")
case("safetensors: header is not JSON", inspect(s("badjson.safetensors", st(b'{"w": {"dtype": "F32",, }}'))),
     "invalid JSON at byte")
case("safetensors: header is an array", inspect(s("array.safetensors", st(b"[1, 2, 3]"))), "start with '{'")
case("safetensors: unsupported dtype", inspect(s("i64.safetensors", st(valid_header(dtype="I64"), F4 * 2))),
     "dtype expected one of F32, F16, BF16, got 'I64'")
case("safetensors: shape x dtype size mismatch",
     inspect(s("size.safetensors", st(valid_header(shape=[3, 2]), F4))), "shape x dtype size is 24 bytes")
case("safetensors: offsets outside data",
     inspect(s("outside.safetensors", st(valid_header(data_offsets=[0, 16]), F4[:8]))), "outside the data section")
case("safetensors: overlapping tensors",
     inspect(s("overlap.safetensors", st({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                                          "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, F4))),
     "overlap")
case("safetensors: begin after end",
     inspect(s("order.safetensors", st(valid_header(data_offsets=[16, 0]), F4))), "is after end")
case("safetensors: negative dimension",
     inspect(s("neg.safetensors", st(valid_header(shape=[-2, -2]), F4))), "non-negative")
case("safetensors: absurd shape",
     inspect(s("absurd.safetensors", st(valid_header(shape=[1 << 50, 1 << 50]), F4))), "absurdly large")
case("safetensors: hole in data",
     inspect(s("hole.safetensors", st({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, F4[:16]))),
     "hole")
case("safetensors: metadata not strings",
     inspect(s("meta.safetensors", st({"__metadata__": {"format": 5}, **valid_header()}, F4))), "__metadata__")
case("safetensors: tensor entry not an object",
     inspect(s("entry.safetensors", st({"w": [1, 2]}, b""))), "expected an object")
case("safetensors: missing data_offsets",
     inspect(s("nooff.safetensors", st({"w": {"dtype": "F32", "shape": [1]}}, F4[:4]))), "data_offsets")

g = write
case("gguf: bad magic", ["generate", "-m", g("magic.gguf", gguf(magic=b"GGUX")), "--prompt-ids", "1"],
     "expected a GGUF file")
case("gguf: version 1", inspect(g("v1.gguf", gguf(version=1))), "version expected 2 or 3, got 1")
case("gguf: truncated header", inspect(g("trunc.gguf", b"GGUF\x03\0\0\0\0\0")), "the file ends")
case("gguf: absurd metadata count", inspect(g("nkv.gguf", gguf(n_kv=1 << 60))), "metadata count")
case("gguf: absurd tensor count", inspect(g("nt.gguf", gguf(n_t=1 << 60))), "tensor count")
case("gguf: string length past EOF",
     inspect(g("strlen.gguf", gguf(kvs=struct.pack("<Q", 1 << 40) + b"abc" + b"\0" * 16, n_kv=1, pad=False))), "string length")
case("gguf: bad value type",
     inspect(g("vtype.gguf", gguf(kvs=gstr("x") + struct.pack("<I", 99) + b"\0" * 8, n_kv=1))),
     "value type expected 0..12, got 99")
case("gguf: absurd array length",
     inspect(g("arr.gguf", gguf(kvs=gstr("x") + struct.pack("<IIQ", 9, 4, 1 << 50), n_kv=1))), "array of")
case("gguf: bool out of range",
     inspect(g("bool.gguf", gguf(kvs=gstr("x") + struct.pack("<IB", 7, 7) + b"\0" * 16, n_kv=1))),
     "bool expected 0 or 1")
case("gguf: duplicate key",
     inspect(g("dup.gguf", gguf(kvs=kv_u32("a", 1) + kv_u32("a", 2), n_kv=2))), "duplicate metadata key")
case("gguf: alignment not a power of two",
     inspect(g("align.gguf", gguf(kvs=kv_u32("general.alignment", 3), n_kv=1))), "power of two")
case("gguf: tensor with 5 dimensions",
     inspect(g("ndim.gguf", gguf(tensors=tinfo("t", [1, 1, 1, 1, 1], 0, 0), n_t=1, data=b"\0" * 32))),
     "dimension count expected 1..4")
case("gguf: tensor dimension zero",
     inspect(g("dim0.gguf", gguf(tensors=tinfo("t", [0], 0, 0), n_t=1, data=b"\0" * 32))), "expected 1..2^40")
case("gguf: unknown ggml type",
     inspect(g("gtype.gguf", gguf(tensors=tinfo("t", [4], 77, 0), n_t=1, data=b"\0" * 32))),
     "unknown ggml type 77")
case("gguf: tensor data outside the file",
     inspect(g("toff.gguf", gguf(tensors=tinfo("t", [64], 0, 0), n_t=1, data=b"\0" * 32))),
     "outside the data section")
case("gguf: unaligned tensor offset",
     inspect(g("unal.gguf", gguf(tensors=tinfo("t", [4], 0, 4), n_t=1, data=b"\0" * 64))), "alignment")
case("gguf: overlapping tensors",
     inspect(g("gover.gguf", gguf(tensors=tinfo("a", [16], 0, 0) + tinfo("b", [16], 0, 32), n_t=2,
                                  data=b"\0" * 96))), "overlaps")
case("gguf: Q8_0 row not a multiple of 32",
     inspect(g("q8.gguf", gguf(tensors=tinfo("t", [33], 8, 0), n_t=1, data=b"\0" * 64))), "multiple of 32")
case("gguf: unsupported architecture",
     inspect(g("arch.gguf", gguf(kvs=gstr("general.architecture") + struct.pack("<I", 8) + gstr("gpt2"), n_kv=1))),
     "general.architecture expected one of 'llama', 'qwen2', 'qwen3', 'gemma2', 'gemma3', 'phi3', got 'gpt2'")

# ---------- HF folders ----------
base = path("base_model")
cfg_path = write("tiny_config.json", json.dumps(TINY).encode())
subprocess.run([TAIA, "init-model", "--config", cfg_path, "--out", base], check=True, stdout=subprocess.DEVNULL)


def folder(name, config=None, config_bytes=None, drop=None, safetensors=None):
    d = path(name)
    shutil.copytree(base, d)
    if config is not None:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f)
    if config_bytes is not None:
        with open(os.path.join(d, "config.json"), "wb") as f:
            f.write(config_bytes)
    if safetensors is not None:
        with open(os.path.join(d, "model.safetensors"), "wb") as f:
            f.write(safetensors)
    if drop:
        os.remove(os.path.join(d, drop))
    return d


def gen(d, ids="1,2,3"):
    return ["generate", "-m", d, "--prompt-ids", ids, "-n", "2"]


case("config: invalid JSON", gen(folder("cfg_json", config_bytes=b'{"vocab_size": 40,}')), "invalid JSON at byte")
case("config: missing field", gen(folder("cfg_missing", config={k: v for k, v in TINY.items() if k != "hidden_size"})),
     "missing required field 'hidden_size'")
case("config: heads not divisible", gen(folder("cfg_heads", config={**TINY, "num_key_value_heads": 3})),
     "num_key_value_heads")
case("config: unknown model type", gen(folder("cfg_type", config={**TINY, "model_type": "bert",
                                                                  "architectures": ["BertModel"]})), "model_type")
case("config: wrong field type", gen(folder("cfg_ftype", config={**TINY, "num_hidden_layers": "one"})),
     "num_hidden_layers' expected an integer")
case("config: shapes disagree with tensors", gen(folder("cfg_shape", config={**TINY, "intermediate_size": 32})),
     "expected shape [32, 16], got [24, 16]")
case("config: more layers than tensors", gen(folder("cfg_layers", config={**TINY, "num_hidden_layers": 2})),
     "missing tensor 'model.layers.1.")
case("folder: no weights", gen(folder("no_weights", drop="model.safetensors")), "model.safetensors")
case("folder: no config", gen(folder("no_config", drop="config.json")), "config.json")
case("folder: truncated weights", gen(folder("trunc_weights", safetensors=open(os.path.join(base, "model.safetensors"),
                                                                                   "rb").read()[:200])),
     "model.safetensors")
case("cli: prompt id outside vocabulary", gen(base, "1,40"), "outside the vocabulary")
case("cli: model path does not exist", gen(path("nope")), "no such file")
case("cli: not a model file", gen(cfg_path), "expected a GGUF file")

# ---------- tokenizers ----------
def tokjson(name, obj):
    return write(name, (obj if isinstance(obj, bytes) else json.dumps(obj).encode()))


def tok(p, stdin='{"text": "hello"}\n'):
    return (["tokenize", "--tokenizer", p], stdin)


GOOD_MODEL = {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}
case("tokenizer.json: invalid JSON", tok(tokjson("tj_bad.json", b'{"model": {"type": "BPE",,}}')), "invalid JSON at byte")
case("tokenizer.json: no model", tok(tokjson("tj_nomodel.json", {"normalizer": None})), "missing 'model'")
case("tokenizer.json: Unigram model", tok(tokjson("tj_unigram.json", {"model": {"type": "Unigram", "vocab": []}})),
     "model type expected BPE, got 'Unigram'")
case("tokenizer.json: merge of unknown pieces",
     tok(tokjson("tj_merge.json", {"model": {**GOOD_MODEL, "merges": ["a q"]}})), "merge 0")
case("tokenizer.json: merge without space", tok(tokjson("tj_merge2.json", {"model": {**GOOD_MODEL, "merges": ["ab"]}})),
     "expected two pieces")
case("tokenizer.json: vocab id not an integer",
     tok(tokjson("tj_vocab.json", {"model": {**GOOD_MODEL, "vocab": {"a": "zero"}}})), "expected an integer id")
case("tokenizer.json: negative vocab id",
     tok(tokjson("tj_vocabneg.json", {"model": {**GOOD_MODEL, "vocab": {"a": -5}}})), "out of range")
case("tokenizer.json: unsupported pre-tokenizer",
     tok(tokjson("tj_pre.json", {"model": GOOD_MODEL, "pre_tokenizer": {"type": "BertPreTokenizer"}})),
     "pre_tokenizer type 'BertPreTokenizer' is not supported")
case("tokenizer.json: regex that does not compile",
     tok(tokjson("tj_regex.json", {"model": GOOD_MODEL, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(a"},
                                                                          "behavior": "Isolated"}})),
     "does not compile")
case("tokenizer.json: added token without id",
     tok(tokjson("tj_added.json", {"model": GOOD_MODEL, "added_tokens": [{"content": "<x>"}]})), "missing required field 'id'")
case("tokenizer.json: unk_token outside vocab",
     tok(tokjson("tj_unk.json", {"model": {**GOOD_MODEL, "unk_token": "<unk>"}})), "unk_token '<unk>'")
case("tokenizer.json: unsupported normalizer",
     tok(tokjson("tj_norm.json", {"model": GOOD_MODEL, "normalizer": {"type": "BertNormalizer"}})),
     "normalizer type 'BertNormalizer'")
case("sentencepiece: not a model", tok(write("garbage.model", b"\x0a\xff\xff\xff\xff not a protobuf")),
     "not a SentencePiece model")
case("gguf vocab: unknown tokenizer model",
     tok(g("vocab_bert.gguf", gguf(kvs=gstr("tokenizer.ggml.model") + struct.pack("<I", 8) + gstr("bert") +
                                   gstr("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 1) + gstr("a"), n_kv=2))),
     "tokenizer.ggml.model expected 'llama' or 'gpt2'")
case("gguf vocab: scores of another length",
     tok(g("vocab_scores.gguf", gguf(kvs=gstr("tokenizer.ggml.model") + struct.pack("<I", 8) + gstr("llama") +
                                     gstr("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 2) + gstr("a") + gstr("b") +
                                     gstr("tokenizer.ggml.scores") + struct.pack("<IIQ", 9, 6, 1) + struct.pack("<f", 0.0),
                                     n_kv=3))), "tokenizer.ggml.scores has 1 entries, expected 2")
case("gguf vocab: missing tokens",
     tok(g("vocab_none.gguf", gguf(kvs=gstr("tokenizer.ggml.model") + struct.pack("<I", 8) + gstr("gpt2"), n_kv=1))),
     "missing metadata key 'tokenizer.ggml.tokens'")
case("tokenizer.json: Sequence without its list",
     tok(tokjson("tj_seq.json", {"model": GOOD_MODEL, "normalizer": {"type": "Sequence"}})),
     "unexpected structure", "normalizers")
tiny_tok = tokjson("tj_good.json", {"model": GOOD_MODEL})
case("tokenize: stdin line is not JSON", tok(tiny_tok, '{"text": "ok"}\n{"text": oops}\n'), "stdin:2", "invalid JSON")
case("tokenize: stdin line without text", tok(tiny_tok, '{"txt": "x"}\n'), "stdin:1", "'text' string")
case("tokenize: decode id outside vocabulary", (["tokenize", "--decode", "--tokenizer", tiny_tok], '{"ids": [99]}\n'),
     "token id 99 is outside the vocabulary")


# ---------- PEFT adapter folders (taia inspect ADAPTER) ----------
def adapter(name, config, tensors=None, extra=None):
    d = path(name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "adapter_config.json"), "wb") as f:
        f.write(config if isinstance(config, bytes) else json.dumps(config).encode())
    if tensors is not None:
        with open(os.path.join(d, "adapter_model.safetensors"), "wb") as f:
            f.write(tensors)
    for fname, data in (extra or {}).items():
        with open(os.path.join(d, fname), "wb") as f:
            f.write(data)
    return d + "/"


LORA_CFG = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"],
            "lora_dropout": 0.0, "bias": "none"}
QA = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
QB = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"
GOOD_T = st({QA: {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
             QB: {"dtype": "F32", "shape": [2, 2], "data_offsets": [16, 32]}}, F4 * 2)
case("adapter: config is not JSON", inspect(adapter("ad_badjson", b'{"r": 8,', GOOD_T)), "invalid JSON")
case("adapter: not LoRA", inspect(adapter("ad_ia3", dict(LORA_CFG, peft_type="IA3"), GOOD_T)), "peft_type", "IA3")
case("adapter: DoRA", inspect(adapter("ad_dora", dict(LORA_CFG, use_dora=True), GOOD_T)), "DoRA")
case("adapter: rank 0", inspect(adapter("ad_r0", dict(LORA_CFG, r=0), GOOD_T)), "'r'")
case("adapter: no weights file", inspect(adapter("ad_noweights", LORA_CFG)), "adapter_model.safetensors")
case("adapter: pickle weights only", inspect(adapter("ad_pickle", LORA_CFG, None, {"adapter_model.bin": b"\x80\x02"})),
     "pickle file, which can run code")
case("adapter: A without B", inspect(adapter("ad_halfpair", LORA_CFG, st(
    {QA: {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}, F4))), "lora_B")
case("adapter: rank differs from r", inspect(adapter("ad_rank", LORA_CFG, st(
    {QA: {"dtype": "F32", "shape": [1, 4], "data_offsets": [0, 16]},
     QB: {"dtype": "F32", "shape": [4, 1], "data_offsets": [16, 32]}}, F4 * 2))), "rank")

# ---------- eval task files (taia eval --tasks FILE: read before the model) ----------
def task(name, text):
    p = write(name, text.encode())
    return ["eval", "--tasks", p, "-m", path("no_model_needed"), "-o", path("eval_out")]


case("task: invalid JSON line", task("t_badline.jsonl", '{"question": "q", "answer": "a"}\n{"question": \n'),
     "t_badline.jsonl:2", "invalid JSON")
case("task: GSM8K answer without ####", task("t_gsm.jsonl", '{"question": "q", "answer": "so #### 12"}\n'
                                           '{"question": "q", "answer": "no marker"}\n'), "t_gsm.jsonl:2",
     "no final answer after '####'")
case("adapter: rank pattern not a number", inspect(adapter("ad_rp", dict(LORA_CFG, rank_pattern={"q_proj": "x"}), GOOD_T)),
     "rank_pattern")
case("task: missing answer field", task("t_noans.jsonl", '{"question": "q", "choices": ["a", "b"]}\n'),
     "t_noans.jsonl:1", "missing field 'answer'")
case("task: MMLU answer not a label", task("t_mmlu.csv", "q,a,b,c,d,A\nq2,a,b,c,d,F\n"), "t_mmlu.csv:2",
     "not one of the option labels")
case("task: CSV quote never closed", task("t_quote.csv", 'q,a,b,c,d,A\n"open,a,b,c,d,A\n'), "t_quote.csv:2",
     "never closed")
case("task: ARC choices not a list", task("t_arc.jsonl", '{"question": {"stem": "s", "choices": 5}, '
                                        '"answerKey": "A"}\n'), "t_arc.jsonl:1", "choices")
case("task: mixed kinds", task("t_mixed.jsonl", '{"question": "q", "choices": ["a", "b"], "answer": 0}\n'
                                               '{"question": "q", "answer": "x"}\n'), "t_mixed.jsonl:2", "one kind")
case("task: ICL question answering with a list answer", task("t_ctx.jsonl", '{"context": "X was born in", "answer": ["Oslo"]}\n'),
     "t_ctx.jsonl:1", "field 'answer' expected a number or a string, got array")
case("task: MedQA answer_idx outside the options", task("t_medqa.jsonl",
     '{"question": "q", "options": {"A": "a", "B": "b"}, "answer_idx": "C"}\n'),
     "t_medqa.jsonl:1", "field 'answer_idx': answer 'C' is not one of the option labels (A, B)")
case("task: a record in no known layout", task("t_unknown.jsonl", '{"passage": "p", "label": 1}\n'),
     "t_unknown.jsonl:1", "none of the layouts taia reads (fields found: label, passage")
case("task: completion and question records mixed", task("t_ctxmix.jsonl",
     '{"context": "c", "choices": ["a", "b"], "answer": 0}\n{"question": "q", "choices": ["a", "b"], "answer": 0}\n'),
     "t_ctxmix.jsonl:2", "one prompt style per file")
case("task: BBH examples not a list", task("t_bbh.json", '{"examples": {"input": "i"}}'), "examples")

failures = 0
for label, argv, needles in CASES:
    stdin = None
    if isinstance(argv, tuple):
        argv, stdin = argv
    try:
        r = subprocess.run([TAIA] + argv, capture_output=True, text=True, timeout=60, input=stdin)
        code, err = r.returncode, r.stderr
    except subprocess.TimeoutExpired:
        code, err = "timeout", ""
    target = argv[1] if argv[0] == "inspect" else argv[argv.index("--tokenizer") + 1] if "--tokenizer" in argv else argv[2]
    names_file = os.path.basename(target.rstrip("/")) in err or "prompt id" in err or "stdin:" in err or \
        "token id" in err
    missing = [n for n in needles if n not in err]
    ok = code == 1 and not missing and names_file
    failures += 0 if ok else 1
    print(f"{'ok  ' if ok else 'FAIL'} {label}: exit {code}; {err.strip().splitlines()[-1] if err.strip() else '(no message)'}")
    if not ok:
        print(f"      missing {missing}, names file: {names_file}")
print(f"{len(CASES)} malformed inputs, {failures} failure(s)")
sys.exit(1 if failures else 0)
