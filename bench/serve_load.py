#!/usr/bin/env python3
"""Load test of `taia serve` (not run by CI): 32 concurrent clients send 200 greedy completion
requests in mixed modes (base / ADAPTER:vanilla / :taia / :taif) to a server on stories260K
with LoRA adapters trained here (--adapters N, each with its own seed); every answer must equal
the one-at-a-time answer for its model and prompt. Prints errors, mismatches, aggregate
completion tokens/s against one-at-a-time, and p50 / p99 latency. With --single-too, each round
also sends the same load with every adapter request naming the first adapter (the same modes):
the many-adapter rate beside the one-adapter rate, in interleaved rounds.

usage: OMP_NUM_THREADS=2 bench/serve_load.py [--model PATH] [--requests 200] [--clients 32] [--parallel 8]
       [--max-tokens 48] [--adapters 1] [--single-too] [--rounds 1] [--taia BINARY]
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request

from benchlib import cpu_name  # noqa: E402 (bench/ is the script's own folder)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODEL = os.path.normpath(os.path.join(ROOT, "..", "shared", "fixtures", "models", "stories260K", "stories260K.gguf"))
PROMPTS = ["Once upon a time", "Lily and Tom went to the park.", "The little dog", "One day, a cat",
           "Sam had a red ball.", "The sun was hot and", "Mom said to Tim,", "In the big forest"]
MODES = ["vanilla", "taia", "taif"]


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as r:
        out = json.loads(r.read())
    return out, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--taia", default=os.path.join(ROOT, "build", "tools", "cli", "taia"))
    ap.add_argument("--model", default=MODEL, help="GGUF file or HF folder with its tokenizer (default stories260K)")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--adapters", type=int, default=1)
    ap.add_argument("--single-too", action="store_true")
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="taia-serve-load-")
    server = None
    try:
        data = os.path.join(work, "data.jsonl")
        with open(data, "w") as f:
            for i in range(32):
                n = ["Lily", "Tom", "Sam"][i % 3]
                f.write(json.dumps({"instruction": f"Who is {n}?", "output": f"{n} is a happy child who likes to play."}) + "\n")
        names = [f"a{k}" for k in range(a.adapters)]
        for k, name in enumerate(names):
            subprocess.run([a.taia, "train", "-m", a.model, "--data", data, "-o", os.path.join(work, name), "--max-steps",
                            "6", "--lr", "1e-2", "--batch-size", "4", "--grad-accum", "1", "--lora-rank", "4",
                            "--lora-alpha", "8", "--lora-dropout", "0", "--seed", str(k + 1)], check=True,
                           capture_output=True)
        server = subprocess.Popen([a.taia, "serve", "-m", a.model, "--port", "0", "--parallel", str(a.parallel),
                                   "--max-connections", str(a.clients + 4), "--threads", str(a.threads),
                                   "--access-log", "off",
                                   *[x for n in names for x in ("--adapter", f"{n}={os.path.join(work, n)}")]],
                                  stderr=subprocess.PIPE, text=True)
        url = "http://127.0.0.1:%s/v1/completions" % re.search(r":(\d+) ", server.stderr.readline()).group(1)
        models = ["base"] + [f"{n}:{m}" for n in names for m in MODES]
        mixed = [(models[i % len(models)], PROMPTS[(i // len(models)) % len(PROMPTS)]) for i in range(a.requests)]
        single = [(m if m == "base" else names[0] + ":" + m.split(":")[1], p) for m, p in mixed]

        def body(model, prompt):
            return {"model": model, "prompt": prompt, "max_tokens": a.max_tokens, "temperature": 0}

        # One at a time: the reference answers and the sequential rate.
        reference, seq_tokens, t0 = {}, 0, time.perf_counter()
        for key in sorted(set(mixed) | set(single)):
            out, _ = post(url, body(*key))
            reference[key] = out["choices"][0]["text"]
            seq_tokens += out["usage"]["completion_tokens"]
        seq_rate = seq_tokens / (time.perf_counter() - t0)

        def load(jobs):
            results, errors, latencies, lock = [], [], [], threading.Lock()
            next_job = iter(range(len(jobs)))

            def client():
                while True:
                    with lock:
                        i = next(next_job, None)
                    if i is None:
                        return
                    try:
                        out, secs = post(url, body(*jobs[i]))
                        with lock:
                            results.append((i, out["choices"][0]["text"], out["usage"]["completion_tokens"]))
                            latencies.append(secs)
                    except Exception as e:  # noqa: BLE001 - every failure is counted and printed
                        with lock:
                            errors.append((i, repr(e)))

            t0 = time.perf_counter()
            threads = [threading.Thread(target=client) for _ in range(a.clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            mismatches = [i for i, text, _ in results if text != reference[jobs[i]]]
            lat = sorted(latencies)
            p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")  # noqa: E731
            return dict(errors=errors, mismatches=len(mismatches), rate=sum(n for _, _, n in results) / wall,
                        p50=statistics.median(lat) if lat else float("nan"), p99=p(0.99))

        print(f"CPU: {cpu_name()}; {a.threads} threads; {os.path.basename(a.model.rstrip('/'))} + {a.adapters} LoRA "
              f"adapter(s) x {len(MODES)} modes + base; {a.requests} requests, {a.clients} clients, --parallel "
              f"{a.parallel}, {a.max_tokens} tokens each; one at a time {seq_rate:.0f} tokens/s")
        print("| round | load | requests | errors | answers != sequential | tokens/s concurrent | ratio to one at a "
              "time | p50 latency s | p99 latency s |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in range(a.rounds):
            for label, jobs in [(f"{a.adapters} adapters", mixed)] + ([("1 adapter", single)] if a.single_too else []):
                x = load(jobs)
                print(f"| {r + 1} | {label} | {len(jobs)} | {len(x['errors'])} | {x['mismatches']} | {x['rate']:.0f} | "
                      f"{x['rate'] / seq_rate:.2f}x | {x['p50']:.3f} | {x['p99']:.3f} |", flush=True)
                if x["errors"]:
                    print("errors:", x["errors"][:5])
    finally:
        if server:
            server.terminate()
            server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
