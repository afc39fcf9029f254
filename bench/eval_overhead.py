#!/usr/bin/env python3
"""Where `taia eval`'s time goes on GSM8K with a Qwen2.5-0.5B-shaped model at batch 8: inside the
model (Decoder::forward_packed) versus outside it (prompts and tokenization, batching, decoding
text, answer extraction, writing samples), from results.json's "timing" (docs/EVAL.md).

The model is random (HF init, BF16 storage, the Qwen3 tokenizer of ../shared/fixtures: Qwen2.5's
vocabulary size), so its replies run to --max-new-tokens, as a long chain of thought would. The
outside costs are per question (and a few fixed ones), so the share measured on the first N
questions bounds the full test's (1,319) from above; `--limit 0` runs the whole file (hours on
2 cores).

usage: OMP_NUM_THREADS=2 bench/eval_overhead.py [--limit 32] [--max-new-tokens 256] [--threads 2]
"""
import argparse
import json
import os
import shutil
import subprocess
import tempfile

from benchlib import cpu_name  # noqa: E402 (bench/ is the script's own folder)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared"))

QWEN25_05B = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896,
              "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
              "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 32768,
              "rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": True, "hidden_act": "silu",
              "bos_token_id": 151643, "eos_token_id": 151645, "torch_dtype": "bfloat16"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--taia", default=os.path.join(ROOT, "build", "tools", "cli", "taia"))
    ap.add_argument("--tasks", default=os.path.join(SHARED, "datasets", "gsm8k", "test.jsonl"))
    ap.add_argument("--limit", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="taia-eval-overhead-")
    try:
        model = os.path.join(work, "model")
        cfg = os.path.join(work, "config.json")
        json.dump(QWEN25_05B, open(cfg, "w"))
        subprocess.run([a.taia, "init-model", "-c", cfg, "-o", model, "--dtype", "bf16"], check=True,
                       capture_output=True)
        for f in ["tokenizer.json", "tokenizer_config.json"]:
            shutil.copy(os.path.join(SHARED, "fixtures", "tokenizers", "qwen3", f), model)
        print(f"CPU: {cpu_name()}; {a.threads} threads; Qwen2.5-0.5B shape (random, BF16), GSM8K first "
              f"{a.limit or 'all'} questions, batch {a.batch_size}, up to {a.max_new_tokens} new tokens")
        print("| prompts | questions | total s | model s | prepare s | score outside model s | write s | outside model |")
        print("|---|---|---|---|---|---|---|---|")
        for name, extra in [("chat template", []), ("plain (--no-chat)", ["--no-chat"])]:
            out = os.path.join(work, "run")
            r = subprocess.run([a.taia, "eval", "-m", model, "--tasks", a.tasks, "--limit", str(a.limit),
                                "--batch-size", str(a.batch_size), "--max-new-tokens", str(a.max_new_tokens),
                                "--threads", str(a.threads), "--no-second-pass", "-o", out, "--format", "json",
                                *extra], capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(r.stderr[-2000:])
            t = json.loads(r.stdout)["timing"]
            n = next(iter(next(iter(json.loads(r.stdout)["tasks"].values())).values()))["n"]
            total = t["prepare_seconds"] + t["score_seconds"] + t["write_seconds"]
            print(f"| {name} | {n} | {total:.1f} | {t['model_seconds']:.1f} | {t['prepare_seconds']:.3f} | "
                  f"{t['score_seconds'] - t['model_seconds']:.3f} | {t['write_seconds']:.3f} | "
                  f"{100 * t['outside_model_share']:.2f} % |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
