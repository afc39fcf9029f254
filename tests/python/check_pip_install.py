"""`pip install --no-build-isolation .` into a fresh venv (--system-site-packages: numpy from Debian,
offline: --no-index), reusing the build folder's CMake build (TAIA_CMAKE_BUILD_DIR), then the
installed module from another folder: logits = taia forward's, bit for bit; stubs installed.
  check_pip_install.py TAIA FIXTURES WORK SOURCE_DIR BUILD_DIR"""
import os
import shutil
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, finish, setup  # noqa: E402

TAIA, FIXTURES, WORK, MODEL = setup()
SOURCE, BUILD = sys.argv[4:6]
if not os.path.exists(os.path.join(BUILD, "python", "taia", "__init__.py")):
    print(f"skip: the taia module was not built into {BUILD}/python")
    sys.exit(77)
venv = os.path.join(WORK, "venv")
r = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv], capture_output=True, text=True)
if r.returncode != 0:
    print(f"skip: python3 -m venv failed (python3-venv missing?): {r.stderr[-300:]}")
    sys.exit(77)
env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
r = subprocess.run([os.path.join(venv, "bin", "pip"), "install", "--no-build-isolation", "--no-index", SOURCE],
                   capture_output=True, text=True, timeout=600, env=dict(env, TAIA_CMAKE_BUILD_DIR=BUILD))
check(r.returncode == 0, "pip install --no-build-isolation --no-index . (offline)", r.stdout[-800:] + r.stderr[-800:])

IDS = "1,403,407,261,378,432,383"
cli_out = os.path.join(WORK, "cli.f32")
subprocess.run([TAIA, "forward", "-m", MODEL, "--prompt-ids", IDS, "-o", cli_out, "-t", "2"], check=True,
               capture_output=True)
script = f"""
import os, sys, numpy as np, taia
pkg = os.path.dirname(taia.__file__)
print(pkg)
print(all(os.path.exists(os.path.join(pkg, f)) for f in ("__init__.pyi", "py.typed")))
taia.load({MODEL!r}, threads=2).forward([{IDS}]).tofile(os.path.join({WORK!r}, "py.f32"))
"""
r = subprocess.run([os.path.join(venv, "bin", "python"), "-c", script], capture_output=True, text=True, cwd=WORK,
                   env=env, timeout=300)
lines = r.stdout.split()
check(r.returncode == 0 and os.path.realpath(lines[0]).startswith(os.path.realpath(venv)),
      "import taia from the venv's site-packages (no PYTHONPATH)", r.stdout + r.stderr[-600:])
check(r.returncode == 0 and lines[1] == "True", "type stubs (__init__.pyi, py.typed) installed", r.stdout)
same = r.returncode == 0 and np.array_equal(np.fromfile(os.path.join(WORK, "py.f32"), "<f4"),
                                            np.fromfile(cli_out, "<f4"))
check(same, "the installed module's logits = taia forward's, bit for bit")
shutil.rmtree(venv, ignore_errors=True)
finish()
