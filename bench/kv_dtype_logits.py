"""How far each KV cache type (--kv-dtype) and the 8-bit activations of quantized files move the
logits, against the exact path (F32 cache, --exact-activations) on the same model and text: per
setting, max and mean |logit difference| over every position, the share of positions whose
argmax changes, and the perplexity of the text (docs/BENCHMARKS.md).

usage: /usr/bin/python3 bench/kv_dtype_logits.py TAIA MODEL [TOKENS]
(the text: tests/parity/check_llamacpp.py's held-out demo-world text, cut to TOKENS tokens, 256 by
default; `taia forward` runs the whole prompt as one prefill whose attention reads the cache.)
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
import check_llamacpp  # noqa: E402  (heldout_text)


def logits(taia, model, ids, extra, work):
    out = os.path.join(work, "logits.f32")
    subprocess.run([taia, "forward", "-m", model, "--prompt-ids", ",".join(map(str, ids)), "-o", out, "-t", "2",
                    *extra], check=True, capture_output=True)
    return np.fromfile(out, dtype="<f4").astype(np.float64).reshape(len(ids), -1)


def perplexity(lg, ids):
    m = lg.max(axis=1, keepdims=True)
    lp = lg - m - np.log(np.exp(lg - m).sum(axis=1, keepdims=True))
    return float(np.exp(-np.mean([lp[t - 1, ids[t]] for t in range(1, len(ids))])))


def main():
    taia, model = sys.argv[1:3]
    tokens = int(sys.argv[3]) if len(sys.argv) > 3 else 256
    with tempfile.TemporaryDirectory() as work:
        text = os.path.join(work, "heldout.txt")
        check_llamacpp.heldout_text(text)
        r = subprocess.run([taia, "tokenize", "--tokenizer", model], input=json.dumps({"text": open(text).read()}),
                           capture_output=True, text=True, check=True)
        ids = json.loads(r.stdout)["ids"][:tokens]
        exact = logits(taia, model, ids, ("--kv-dtype", "f32", "--exact-activations"), work)
        print(f"{os.path.basename(model)}, {len(ids)} tokens; against --kv-dtype f32 --exact-activations "
              f"(perplexity {perplexity(exact, ids):.4f}, max |logit| {np.abs(exact).max():.2f})\n")
        print("| setting | max abs logit diff | mean abs logit diff | argmax changed | perplexity |")
        print("|---|---|---|---|---|")
        for label, extra in [("--kv-dtype f16 --exact-activations", ("--kv-dtype", "f16", "--exact-activations")),
                             ("--kv-dtype bf16 --exact-activations", ("--kv-dtype", "bf16", "--exact-activations")),
                             ("--kv-dtype q8_0 --exact-activations", ("--kv-dtype", "q8_0", "--exact-activations")),
                             ("--kv-dtype f32 (8-bit activations)", ("--kv-dtype", "f32")),
                             ("--kv-dtype f16 (8-bit activations: both defaults)", ("--kv-dtype", "f16"))]:
            try:
                lg = logits(taia, model, ids, extra, work)
            except subprocess.CalledProcessError as e:
                print(f"| {label} | refused: {e.stderr.strip().splitlines()[-1]} | | | |")
                continue
            d = np.abs(lg - exact)
            changed = float(np.mean(lg.argmax(axis=1) != exact.argmax(axis=1)))
            print(f"| {label} | {d.max():.2e} | {d.mean():.2e} | {100 * changed:.1f} % | {perplexity(lg, ids):.4f} |")


if __name__ == "__main__":
    main()
