"""Makes the quantized GGUF fixtures of this folder with llama.cpp's own tools (run once, by hand;
the outputs are committed, llama.cpp is not):

1. a tiny random LLaMA (hidden 256, FFN 256: every dimension a multiple of 256, as K-quants
   need) made by `taia init-model`, written as an F32 GGUF with llama.cpp's gguf-py;
2. `llama-quantize --pure` to each block type (every tensor of the file in that type, token_embd
   and output included), and once without --pure to Q4_K_M (llama.cpp's mix of Q4_K and Q6_K);
3. trained-q8_0.gguf and trained-q4_k_m.gguf: a small trained model (make_trained) for the
   checks that need peaked predictions (greedy continuations against llama-cli);
4. goldens.json: for every tensor of every file its type and a checksum of the F32 values
   gguf-py's `dequantize` gives (the reference the C++ test compares to, bit for bit), with the
   first values and max |x| for a reader.

usage: LLAMA_CPP_DIR=/path/to/llama.cpp /usr/bin/python3 make_fixtures.py TAIA_BINARY
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "parity"))
import check_llamacpp  # noqa: E402  (gguf-py loading and the converter's LLaMA layout)

TYPES = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]
CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 256, "hidden_size": 256,
          "intermediate_size": 256, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2,
          "rms_norm_eps": 1e-5, "max_position_embeddings": 64, "bos_token_id": 1, "eos_token_id": 2,
          "tie_word_embeddings": False}


def checksum(values: np.ndarray) -> str:
    """sum over i of bits(values[i]) * (2 i + 1) mod 2^64, in hex: any changed bit of any value
    changes it (the odd weights are invertible mod 2^64); the C++ test computes the same."""
    bits = values.astype("<f4").view("<u4").astype(np.uint64)
    weights = np.arange(bits.size, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    with np.errstate(over="ignore"):
        total = int(np.sum(bits * weights, dtype=np.uint64))
    return f"{total:016x}"


TRAINED = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 512, "hidden_size": 256,
           "intermediate_size": 768, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4,
           "rms_norm_eps": 1e-5, "max_position_embeddings": 256, "bos_token_id": 1, "eos_token_id": 2,
           "tie_word_embeddings": False}


def make_trained(taia, gguf, quantize, fixtures, work):
    """A small *trained* model whose every dimension K-quants accept (hidden 256, FFN 768): 400
    steps of full training from random weights on the demo world's pretraining corpus (`taia demo
    --quick` writes it), with stories260K's 512-piece tokenizer; written as F32 GGUF with
    stories260K.gguf's vocabulary, then quantized to Q8_0 and Q4_K_M by llama-quantize."""
    cache = os.path.join(work, "demo-cache")
    subprocess.run([taia, "demo", "--quick", "--cache", cache, "-o", os.path.join(work, "demo-out"), "-t", "2"],
                   check=True, capture_output=True)
    corpus = next(os.path.join(root, "corpus.txt") for root, _, files in os.walk(cache) if "corpus.txt" in files)
    json.dump(TRAINED, open(os.path.join(work, "trained.json"), "w"))
    init = os.path.join(work, "trained-init")
    subprocess.run([taia, "init-model", "--config", os.path.join(work, "trained.json"), "--out", init, "--seed", "3"],
                   check=True)
    stories = os.path.join(fixtures, "models", "stories260K")
    shutil.copy(os.path.join(stories, "tok512.model"), os.path.join(init, "tokenizer.model"))
    trained = os.path.join(work, "trained")
    subprocess.run([taia, "train", "-m", init, "--data", corpus, "-o", trained, "--method", "full", "--max-steps",
                    "400", "--batch-size", "16", "--grad-accum", "1", "--max-length", "128", "--lr", "3e-3", "-t", "2"],
                   check=True)
    f32 = os.path.join(work, "trained-f32.gguf")
    check_llamacpp.write_gguf(gguf, "llama", TRAINED, trained, os.path.join(stories, "stories260K.gguf"), f32)
    outputs = []
    for t in ("Q8_0", "Q4_K_M"):
        out = os.path.join(HERE, f"trained-{t.lower()}.gguf")
        subprocess.run([quantize, f32, out, t], check=True, capture_output=True)
        outputs.append(out)
    return outputs


def main():
    taia = sys.argv[1]
    llama_dir = os.environ["LLAMA_CPP_DIR"]
    gguf = check_llamacpp.load_gguf_py(llama_dir)
    work = os.path.join("/tmp", "taia-quant-fixtures")
    os.makedirs(work, exist_ok=True)
    cfg_path = os.path.join(work, "config.json")
    json.dump(CONFIG, open(cfg_path, "w"))
    hf = os.path.join(work, "hf")
    subprocess.run([taia, "init-model", "--config", cfg_path, "--out", hf, "--seed", "5", "--init", "full",
                    "--std", "0.05"], check=True)
    f32 = os.path.join(work, "tiny-f32.gguf")
    vocab = os.path.join(os.environ.get("TAIA_FIXTURES", os.path.join(HERE, "..", "..", "..", "..", "shared",
                                                                      "fixtures")),
                         "tokenizers", "goldens", "ggml-vocab-llama-spm.gguf")  # its first 256 pieces
    write_tiny_gguf(gguf, hf, vocab, f32)
    quantize = os.path.join(llama_dir, "build", "bin", "llama-quantize")
    outputs = []
    for t in TYPES:
        out = os.path.join(HERE, f"tiny-{t.lower()}.gguf")
        subprocess.run([quantize, "--pure", f32, out, t], check=True, capture_output=True)
        outputs.append(out)
    out = os.path.join(HERE, "tiny-q4_k_m.gguf")
    subprocess.run([quantize, f32, out, "Q4_K_M"], check=True, capture_output=True)
    outputs.append(out)
    fixtures = os.environ.get("TAIA_FIXTURES", os.path.join(HERE, "..", "..", "..", "..", "shared", "fixtures"))
    make_trained(taia, gguf, quantize, fixtures, work)
    goldens = {}
    for path in outputs:
        r = gguf.GGUFReader(path)
        entries = {}
        for t in r.tensors:
            values = gguf.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1)
            entries[t.name] = {"type": t.tensor_type.name, "checksum": checksum(values),
                               "first": [float(v) for v in values[:4]], "max_abs": float(np.abs(values).max())}
        goldens[os.path.basename(path)] = entries
        print(os.path.basename(path), os.path.getsize(path), "bytes,",
              sorted({e["type"] for e in entries.values()}))
    with open(os.path.join(HERE, "goldens.json"), "w") as f:
        json.dump(goldens, f, indent=1)


def write_tiny_gguf(gguf, hf, vocab, out):
    """The converter's LLaMA layout (check_llamacpp.write_gguf) with a 256-token vocabulary: the
    first 256 entries of LLaMA 2's (llama-quantize reads no text)."""
    cfg = dict(CONFIG)
    full = gguf.GGUFReader(vocab)
    # A vocabulary file cut to 256 tokens, so that the fixture stays small.
    small = os.path.join(os.path.dirname(out), "vocab256.gguf")
    w = gguf.GGUFWriter(small, "llama")
    f = full.fields
    w.add_tokenizer_model("llama")
    w.add_token_list([bytes(f["tokenizer.ggml.tokens"].parts[i]).decode() for i in f["tokenizer.ggml.tokens"].data[:256]])
    w.add_token_scores([f["tokenizer.ggml.scores"].parts[i][0].item() for i in f["tokenizer.ggml.scores"].data[:256]])
    w.add_token_types([f["tokenizer.ggml.token_type"].parts[i][0].item() for i in f["tokenizer.ggml.token_type"].data[:256]])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    check_llamacpp.write_gguf(gguf, "llama", cfg, hf, small, out)


if __name__ == "__main__":
    main()
