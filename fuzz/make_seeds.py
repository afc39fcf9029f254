#!/usr/bin/env python3
"""Writes the fuzz seed corpora (fuzz/corpus/<target>/) from small synthetic files and the
repository's own test fixtures. Deterministic; the output is committed (a few KB per target).

usage: python3 fuzz/make_seeds.py [FIXTURES]   (FIXTURES: ../shared/fixtures, for tok512.model)
"""
import json
import math
import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, "corpus")
FIXTURES = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "fixtures")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def safetensors(tensors, metadata=None):
    """tensors: list of (name, dtype, shape, bytes)."""
    header, off, body = {}, 0, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        body += raw
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + body


def f32(n, start=0.0):
    return struct.pack(f"<{n}f", *[start + 0.01 * i for i in range(n)])


# ---- safetensors
put("safetensors", "two_tensors", safetensors([("a", "F32", [2, 3], f32(6)), ("b", "BF16", [4], b"\x80\x3f" * 4)],
                                              {"format": "pt"}))
put("safetensors", "f16_scalar", safetensors([("s", "F16", [], b"\x00\x3c"), ("e", "F32", [0, 4], b"")]))

# ---- config.json
llama = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 256, "hidden_size": 64,
         "intermediate_size": 172, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
         "max_position_embeddings": 512, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "eos_token_id": 2,
         "tie_word_embeddings": False}
put("config", "llama", json.dumps(llama))
qwen = dict(llama, architectures=["Qwen2ForCausalLM"], model_type="qwen2", tie_word_embeddings=True,
            eos_token_id=[2, 3], rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                               "high_freq_factor": 4.0, "original_max_position_embeddings": 128})
put("config", "qwen2_llama3_rope", json.dumps(qwen))
put("config", "rope_parameters", json.dumps(dict(llama, head_dim=24, rope_parameters={"rope_type": "linear",
                                                                                       "factor": 2.0})))


# ---- GGUF (v3): a 1-layer llama with a SentencePiece-style vocabulary
def gguf_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf_kv(key, vtype, value):
    out = gguf_str(key) + struct.pack("<I", vtype)
    if vtype == 4:
        out += struct.pack("<I", value)
    elif vtype == 5:
        out += struct.pack("<i", value)
    elif vtype == 6:
        out += struct.pack("<f", value)
    elif vtype == 8:
        out += gguf_str(value)
    elif vtype == 9:
        etype, items = value
        out += struct.pack("<IQ", etype, len(items))
        for it in items:
            if etype == 8:
                out += gguf_str(it)
            elif etype == 6:
                out += struct.pack("<f", it)
            elif etype == 5:
                out += struct.pack("<i", it)
    return out


def gguf_file(kvs, tensors):
    data, infos, off = b"", b"", 0
    for name, ne, raw in tensors:
        infos += gguf_str(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne)
        infos += struct.pack("<IQ", 0, off)
        pad = (32 - len(raw) % 32) % 32
        data += raw + b"\0" * pad
        off += len(raw) + pad
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(gguf_kv(*kv) for kv in kvs) + infos
    head += b"\0" * ((32 - len(head) % 32) % 32)
    return head + data


V, D, F = 16, 8, 16
tokens = ["<unk>", "<s>", "</s>"] + ["\u2581" + c for c in "abcdefgh"] + list("ijklm")
kvs = [("general.architecture", 8, "llama"), ("llama.embedding_length", 4, D), ("llama.feed_forward_length", 4, F),
       ("llama.block_count", 4, 1), ("llama.attention.head_count", 4, 2), ("llama.attention.head_count_kv", 4, 1),
       ("llama.context_length", 4, 64), ("llama.attention.layer_norm_rms_epsilon", 6, 1e-5),
       ("tokenizer.ggml.model", 8, "llama"), ("tokenizer.ggml.tokens", 9, (8, tokens)),
       ("tokenizer.ggml.scores", 9, (6, [-float(i) for i in range(V)])),
       ("tokenizer.ggml.token_type", 9, (5, [2, 3, 3] + [1] * (V - 3))),
       ("tokenizer.ggml.bos_token_id", 4, 1), ("tokenizer.ggml.eos_token_id", 4, 2)]
tens = [("token_embd.weight", [D, V], f32(D * V)), ("output_norm.weight", [D], f32(D, 1.0)),
        ("output.weight", [D, V], f32(D * V)), ("blk.0.attn_norm.weight", [D], f32(D, 1.0)),
        ("blk.0.ffn_norm.weight", [D], f32(D, 1.0)), ("blk.0.attn_q.weight", [D, D], f32(D * D)),
        ("blk.0.attn_k.weight", [D, 4], f32(D * 4)), ("blk.0.attn_v.weight", [D, 4], f32(D * 4)),
        ("blk.0.attn_output.weight", [D, D], f32(D * D)), ("blk.0.ffn_gate.weight", [D, F], f32(D * F)),
        ("blk.0.ffn_up.weight", [D, F], f32(D * F)), ("blk.0.ffn_down.weight", [F, D], f32(D * F))]
put("gguf", "tiny_llama", gguf_file(kvs, tens))
gpt2_tokens = ["a", "b", "ab", "Ġ", "Ġa", "<|endoftext|>"]
put("gguf", "gpt2_vocab", gguf_file([("general.architecture", 8, "llama"), ("tokenizer.ggml.model", 8, "gpt2"),
                                     ("tokenizer.ggml.tokens", 9, (8, gpt2_tokens)),
                                     ("tokenizer.ggml.merges", 9, (8, ["a b", "Ġ a"])),
                                     ("tokenizer.ggml.token_type", 9, (5, [1, 1, 1, 1, 1, 3]))], []))
put("gguf", "lora", gguf_file([("general.architecture", 8, "llama"), ("general.type", 8, "adapter"),
                               ("adapter.type", 8, "lora"), ("adapter.lora.alpha", 6, 4.0)],
                              [("blk.0.attn_q.weight.lora_a", [8, 2], f32(16)),
                               ("blk.0.attn_q.weight.lora_b", [2, 8], f32(16))]))

# ---- tokenizer.json
byte_level = {
    "version": "1.0",
    "added_tokens": [{"id": 8, "content": "<s>", "special": True, "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": False}],
    "normalizer": {"type": "NFC"},
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "\\p{L}+|\\p{N}|\\s+"}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
    "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                                                {"Sequence": {"id": "A", "type_id": 0}}],
                       "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [8], "tokens": ["<s>"]}}},
    "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
              "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
              "vocab": {"H": 0, "e": 1, "l": 2, "o": 3, "He": 4, "ll": 5, "Hell": 6, "Ġ": 7, "<s>": 8},
              "merges": ["H e", "l l", "He ll"]}}
put("tokenizer_json", "byte_level_bpe", json.dumps(byte_level))
metaspace = {
    "version": "1.0", "added_tokens": [],
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                       {"type": "Replace", "pattern": {"String": " "},
                                                        "content": "\u2581"}]},
    "pre_tokenizer": None, "post_processor": None,
    "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                                                 {"type": "ByteFallback"}, {"type": "Fuse"},
                                                 {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
    "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
              "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
              "vocab": dict({"<unk>": 0, "\u2581": 1, "a": 2, "b": 3, "\u2581a": 4},
                            **{f"<0x{i:02X}>": 5 + i for i in range(256)}),
              "merges": [["\u2581", "a"]]}}
put("tokenizer_json", "metaspace_byte_fallback", json.dumps(metaspace))

# ---- SentencePiece: the stories260K tokenizer (7.5 KB)
spm = os.path.join(FIXTURES, "models", "stories260K", "tok512.model")
if os.path.exists(spm):
    with open(spm, "rb") as f:
        put("sentencepiece", "tok512", f.read())

# ---- PEFT adapter: u32 length + adapter_config.json + adapter_model.safetensors (base: fuzz_peft_adapter.cpp)
cfg = json.dumps({"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 2, "lora_alpha": 4,
                  "target_modules": ["q_proj", "down_proj"], "lora_dropout": 0.0, "bias": "none",
                  "use_rslora": False, "rank_pattern": {}, "alpha_pattern": {},
                  "base_model_name_or_path": "tiny"}).encode()
pre = "base_model.model.model.layers"
st = safetensors([(f"{pre}.{l}.{m}.lora_{ab}.weight", "F32", shape, f32(shape[0] * shape[1]))
                  for l in range(2)
                  for m, (i, o) in (("self_attn.q_proj", (8, 8)), ("mlp.down_proj", (16, 8)))
                  for ab, shape in (("A", [2, i]), ("B", [o, 2]))])
put("peft_adapter", "q_and_down", struct.pack("<I", len(cfg)) + cfg + st)

# ---- MoLoRA files: u32 length + molora_config.json + molora_model.safetensors (base: fuzz_molora_adapter.cpp)
cfg = json.dumps({"peft_type": "MOLORA", "num_experts": 2, "top_k": 1, "r": 2, "lora_alpha": 4,
                  "use_rslora": False, "target_modules": ["up_proj", "down_proj"], "balance_coef": 0.0,
                  "expert_dropout": 0.0}).encode()
st = safetensors([(f"{pre}.{l}.mlp.{m}.{t}", "F32", shape, f32(math.prod(shape)))
                  for l in range(2)
                  for m, (i, o) in (("up_proj", (8, 16)), ("down_proj", (16, 8)))
                  for t, shape in [(f"experts.{e}.lora_{ab}.weight", [2, i] if ab == "A" else [o, 2])
                                   for e in range(2) for ab in "AB"] + [("router.weight", [2, i]),
                                                                         ("router.bias", [2])]])
put("molora_adapter", "up_and_down", struct.pack("<I", len(cfg)) + cfg + st)

# ---- data records: first byte picks .jsonl / .json / .txt
put("data_records", "alpaca_jsonl", b"\x00" + b'{"instruction": "Say hi", "input": "", "output": "Hi!"}\n'
    b'{"instruction": "Add", "input": "1 2", "output": "3"}\n')
put("data_records", "sharegpt_json", b"\x01" + json.dumps([{"conversations": [
    {"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hello"},
    {"from": "gpt", "value": "Hi."}]}]).encode())
put("data_records", "openai_jsonl", b"\x00" + json.dumps({"messages": [
    {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}).encode() + b"\n")
put("data_records", "text", b"\x02" + b"Once upon a time.\n\nThere was a cat.\n")

# ---- task files: first byte picks .jsonl / .json / .csv / .txt, second byte a format (255: detect)
ext = {".jsonl": 0, ".json": 1, ".csv": 2, ".txt": 3, ".md": 3}
tasks = os.path.join(ROOT, "tests", "eval", "tasks")
for name in sorted(os.listdir(tasks)):
    e = os.path.splitext(name)[1]
    with open(os.path.join(tasks, name), "rb") as f:
        put("task_files", name.replace(".", "_"), bytes([ext[e], 255]) + f.read())
# The layouts recognised from fields alone (eval/task_records): MedQA, flattened ARC, ICL records.
for name, rec in [
        ("medqa_jsonl", {"question": "q", "answer": "b", "options": {"A": "a", "B": "b"}, "answer_idx": "B"}),
        ("medqa_list_jsonl", {"question": "q", "options": [{"key": "A", "value": "a"}, {"key": "B", "value": "b"}],
                              "answer_idx": "A"}),
        ("arc_flat_jsonl", {"id": "1", "question": "q", "choices.label": ["A", "B"], "choices.text": ["a", "b"],
                            "answerKey": "B"}),
        ("icl_mc_jsonl", {"query": "Q: q\nA:", "choices": ["a", "b"], "gold": 1}),
        ("icl_qa_jsonl", {"context": "Q: q\nA:", "answer": "a", "aliases": ["A"]})]:
    put("task_files", name, bytes([0, 255]) + (json.dumps(rec) + "\n").encode() * 2)
# ---- predictions: {"index" | "id", "completion"} lines for the fuzz target's fixed tasks
put("predictions", "by_index", "".join(json.dumps({"index": i, "completion": c}) + "\n"
                                       for i, c in enumerate(["The answer is 1.", "(B)", "#### 2.5"])))
put("predictions", "by_id", "".join(json.dumps({"id": k, "completion": c}) + "\n"
                                    for k, c in [("a", "1"), ("b", "x"), ("c", "\\boxed{2.5}")]))
# ---- serve requests: first byte 1 = /v1/chat/completions, 0 = /v1/completions
put("serve_request", "chat", b"\x01" + json.dumps({
    "model": "tiny:taia", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    "max_tokens": 8, "temperature": 0.7, "top_p": 0.9, "stop": ["\n"], "seed": 3, "stream": True,
    "stream_options": {"include_usage": True}}).encode())
put("serve_request", "completion", b"\x00" + json.dumps({
    "model": "tiny", "taia_mode": "taif", "prompt": "Once upon a time", "max_tokens": 16}).encode())
print("seeds written to", OUT)
