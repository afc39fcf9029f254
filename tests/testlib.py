"""Shared by the end-to-end test scripts: arguments, the stories260K fixture, a fresh work
folder, and check() / finish() that count failures and set the exit code."""
import os
import shutil
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


def check(cond, label, detail=""):
    print(f"{'ok  ' if cond else 'FAIL'} {label}{'' if cond else ': ' + str(detail)[:600]}")
    if not cond:
        failures.append(label)


def finish(all_passed="all checks passed"):
    print(f"{len(failures)} failure(s)" if failures else all_passed)
    sys.exit(1 if failures else 0)
