"""The Python module's speed: (1) two Python threads generating at once from one loaded model
(threads=1 each) against the same two generations in sequence — the GIL is released, so on two
free cores they overlap; (2) generate's decode tokens/s from Python beside `taia generate`'s on the
same model and thread count. Interleaved rounds; prints the CPU.
  PYTHONPATH=build/python python3 bench/python_threads.py TAIA MODEL [--rounds 3] [--tokens 128]"""
import argparse
import json
import subprocess
import threading
import time

import taia
from benchlib import cpu_name


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("taia")
    ap.add_argument("model")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=128)
    a = ap.parse_args()
    print(f"CPU: {cpu_name()}; model {a.model}; {a.tokens} tokens per generation")
    model = taia.load(a.model, threads=1)
    prompts = ["Once upon a time", "The dog"]
    opts = dict(temperature=0, max_tokens=a.tokens, ignore_eos=True)

    def run(p):
        return model.generate(p, details=True, **opts)

    run(prompts[0])  # pages the weights in
    print("round  sequential_s  concurrent_s  ratio  python_tok/s  cli_tok/s  python/cli")
    for r in range(a.rounds):
        t = time.perf_counter()
        for p in prompts:
            run(p)
        seq = time.perf_counter() - t
        threads = [threading.Thread(target=run, args=(p,)) for p in prompts]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        par = time.perf_counter() - t
        py = run(prompts[0])["decode_tokens_per_s"]
        cli = json.loads(subprocess.run([a.taia, "generate", "-m", a.model, "-p", prompts[0], "-n", str(a.tokens),
                                         "--temperature", "0", "--ignore-eos", "-t", "1", "--format", "json"],
                                        capture_output=True, text=True, check=True).stdout)["decode_tokens_per_s"]
        print(f"{r + 1:5d}  {seq:12.3f}  {par:12.3f}  {par / seq:5.2f}  {py:12.1f}  {cli:9.1f}  {py / cli:10.2f}")


if __name__ == "__main__":
    main()
