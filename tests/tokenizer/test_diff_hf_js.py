"""Differential test: taia's tokenizers against HF's JavaScript tokenizers
(@huggingface/tokenizers, installed from npm into a cache folder) on 5,000+ varied lines, for
LLaMA 3, Qwen3 and Mistral: zero id mismatches, the same decoded text as HF, and
decode(encode(x)) == x (for Qwen3, == NFC(x): its normalizer composes characters) wherever
HF's own round trip gives x back. (Mistral's legacy normalizer prepends U+2581 to the text
after every special token, so HF itself does not round-trip lines containing "<s>" and
the like; those lines must still decode exactly as HF decodes them.)

usage: python3 test_diff_hf_js.py TAIA_BINARY FIXTURES WORK_DIR [N_LINES]
Exit code 77 (skipped) when npm or the package cannot be had.
"""
import json
import os
import shutil
import subprocess
import sys
import unicodedata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import corpus  # noqa: E402
import testlib  # noqa: E402

SKIP = 77
JS_VERSION = "@huggingface/tokenizers@0.2.0"


def npm_modules():
    modules = testlib.npm_modules([JS_VERSION, "@huggingface/jinja@0.5"], os.path.join("@huggingface", "tokenizers"))
    if modules is None:
        sys.exit(SKIP)
    return modules


def main():
    taia, fixtures, work = sys.argv[1:4]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 5000
    modules = npm_modules()
    os.makedirs(work, exist_ok=True)
    texts = corpus.lines(n, seed=1)
    lines_file = os.path.join(work, "lines.jsonl")
    with open(lines_file, "w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
    here = os.path.dirname(os.path.abspath(__file__))
    failures = 0
    for name in ("llama3", "qwen3", "mistral", "gemma3"):
        tok_dir = os.path.join(fixtures, "tokenizers", name)
        js = subprocess.run(["node", os.path.join(here, "hf_js_tokenize.mjs"), modules, tok_dir, lines_file],
                            capture_output=True, text=True, timeout=600)
        if js.returncode != 0:
            print(f"FAIL {name}: the JS reference failed: {js.stderr[-500:]}")
            failures += 1
            continue
        ref = [json.loads(l) for l in js.stdout.splitlines()]
        ours = subprocess.run([taia, "tokenize", "--tokenizer", os.path.join(tok_dir, "tokenizer.json"), "--no-special"],
                              stdin=open(lines_file, encoding="utf-8"), capture_output=True, text=True, timeout=600)
        if ours.returncode != 0:
            print(f"FAIL {name}: taia tokenize failed: {ours.stderr[-500:]}")
            failures += 1
            continue
        got = [json.loads(l)["ids"] for l in ours.stdout.splitlines()]
        mismatches = [i for i, (g, r) in enumerate(zip(got, ref)) if g != r["ids"]]
        if len(got) != len(ref):
            mismatches.append(-1)
        # decode(encode(x)) through taia, for every line.
        dec_in = "".join(json.dumps({"ids": g}) + "\n" for g in got)
        dec = subprocess.run([taia, "tokenize", "--tokenizer", os.path.join(tok_dir, "tokenizer.json"), "--decode"],
                             input=dec_in, capture_output=True, text=True, timeout=600)
        decoded = [json.loads(l)["text"] for l in dec.stdout.splitlines()]
        roundtrip_bad = []
        hf_not_identity = 0
        for i, (t, d) in enumerate(zip(texts, decoded)):
            want = unicodedata.normalize("NFC", t) if name == "qwen3" else t
            if ref[i]["decoded"] != want:
                hf_not_identity += 1
                want = ref[i]["decoded"]
            if d != want or d != ref[i]["decoded"]:
                roundtrip_bad.append(i)
        ok = not mismatches and not roundtrip_bad and len(decoded) == len(texts)
        failures += 0 if ok else 1
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {len(texts)} lines, {sum(len(g) for g in got)} tokens, "
              f"{len(mismatches)} id mismatches, {len(roundtrip_bad)} decode mismatches "
              f"({hf_not_identity} lines where HF's own decode(encode(x)) != x)")
        for i in (mismatches[:3] if mismatches else []):
            if i >= 0:
                print(f"   line {i}: {texts[i]!r}\n     taia {got[i][:24]}\n     HF   {ref[i]['ids'][:24]}")
        for i in roundtrip_bad[:3]:
            print(f"   decode line {i}: {texts[i]!r} -> taia {decoded[i]!r} / HF {ref[i]['decoded']!r}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
