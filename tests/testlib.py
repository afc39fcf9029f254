"""Shared by the end-to-end test scripts: arguments, the stories260K fixture, a fresh work
folder, and check() / finish() that count failures and set the exit code."""
import json
import os
import shutil
import subprocess
import sys

failures = []


def setup():
    """TAIA_BINARY FIXTURES WORK_DIR from the command line; exits 77 (skipped, with the reason) when
    the stories260K fixture is missing; empties WORK_DIR. Returns (taia, fixtures, work, model)."""
    taia, fixtures, work = sys.argv[1:4]
    model = os.path.join(fixtures, "models", "stories260K", "stories260K.gguf")
    if not os.path.exists(model):
        print(f"skip: {model} not found")
        sys.exit(77)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    return taia, fixtures, work, model


def write_jsonl(path, records):
    """Writes records (dicts) as JSON lines: the training and task files the tests make."""
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return path


def check(cond, label, detail=""):
    print(f"{'ok  ' if cond else 'FAIL'} {label}{'' if cond else ': ' + str(detail)[:600]}")
    if not cond:
        failures.append(label)


def finish(all_passed="all checks passed"):
    print(f"{len(failures)} failure(s)" if failures else all_passed)
    sys.exit(1 if failures else 0)


def npm_modules(packages, probe):
    """node_modules of the npm cache folder (TAIA_NPM_CACHE, default ~/.cache/taia/npm) holding
    `packages` (npm specs), installed on first use; `probe` is a path under node_modules that
    exists once they are. Returns the node_modules path, or None (with the reason printed) when
    node / npm or the packages cannot be had."""
    cache = os.environ.get("TAIA_NPM_CACHE", os.path.expanduser("~/.cache/taia/npm"))
    modules = os.path.join(cache, "node_modules")
    if os.path.exists(os.path.join(modules, probe)):
        return modules
    if not shutil.which("npm") or not shutil.which("node"):
        print("skip: node/npm not installed")
        return None
    os.makedirs(cache, exist_ok=True)
    if not os.path.exists(os.path.join(cache, "package.json")):
        json.dump({"name": "taia-test-deps", "private": True}, open(os.path.join(cache, "package.json"), "w"))
    r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", *packages], cwd=cache, capture_output=True,
                       text=True, timeout=300)
    if r.returncode != 0 or not os.path.exists(os.path.join(modules, probe)):
        print(f"skip: npm could not install {' '.join(packages)}: {r.stderr.strip()[-300:]}")
        return None
    return modules
