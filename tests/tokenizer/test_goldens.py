"""Every case of ../shared/fixtures/tokenizers/goldens/ (made by HF's own tokenizers, no BOS)
through `taia tokenize --no-special`, id for id.

usage: python3 test_goldens.py TAIA_BINARY FIXTURES
"""
import json
import os
import subprocess
import sys

PAIRS = [  # (golden file, tokenizer path relative to the fixtures' tokenizers/ folder)
    ("ggml-vocab-llama-spm.gguf", "llama2-spm/tokenizer.model"),
    ("ggml-vocab-llama-spm.gguf", "goldens/ggml-vocab-llama-spm.gguf"),
    ("ggml-vocab-llama-bpe.gguf", "llama3/tokenizer.json"),
    ("ggml-vocab-qwen2.gguf", "qwen3/tokenizer.json"),
    ("ggml-vocab-gpt-2.gguf", "goldens/ggml-vocab-gpt-2.gguf"),
    ("ggml-vocab-phi-3.gguf", "goldens/ggml-vocab-phi-3.gguf"),
]


def main():
    taia, fixtures = sys.argv[1:3]
    tok_root = os.path.join(fixtures, "tokenizers")
    failures = 0
    for golden, tokenizer in PAIRS:
        base = os.path.join(tok_root, "goldens", golden)
        cases = open(base + ".inp", encoding="utf-8").read().split("\n__ggml_vocab_test__\n")[:-1]
        expected = open(base + ".out", encoding="utf-8").read().split("\n")[:len(cases)]
        stdin = "".join(json.dumps({"text": t}) + "\n" for t in cases)
        r = subprocess.run([taia, "tokenize", "--tokenizer", os.path.join(tok_root, tokenizer), "--no-special"],
                           input=stdin, capture_output=True, text=True, timeout=120)
        got = [json.loads(l)["ids"] for l in r.stdout.splitlines()] if r.returncode == 0 else []
        bad = [i for i, (t, e) in enumerate(zip(cases, expected))
               if i >= len(got) or got[i] != [int(x) for x in e.split()]]
        ok = r.returncode == 0 and len(got) == len(cases) and not bad and len(cases) > 40
        failures += 0 if ok else 1
        print(f"{'ok  ' if ok else 'FAIL'} {golden} with {tokenizer}: {len(cases) - len(bad)}/{len(cases)} cases"
              + ("" if r.returncode == 0 else f" (exit {r.returncode}: {r.stderr.strip()[-200:]})"))
        for i in bad[:3]:
            print(f"   {cases[i]!r}: want {expected[i].split()[:16]}, got {got[i][:16] if i < len(got) else None}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
