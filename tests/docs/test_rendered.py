"""The numbers README.md and docs/REPRODUCTION.md take from runs are those the committed results
give: scripts/render_results.py --check passes on the tree, and fails naming the file when a
rendered number is edited by hand or a block names a run that is not committed.

usage: python3 test_rendered.py REPO_ROOT WORK_DIR
"""
import json
import os
import re
import shutil
import subprocess
import sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, finish  # noqa: E402

ROOT, WORK = sys.argv[1], sys.argv[2]
SCRIPT = os.path.join(ROOT, "scripts", "render_results.py")
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)


def render(root, *flags):
    return subprocess.run([sys.executable, SCRIPT, *flags, root], capture_output=True, text=True)


r = render(ROOT, "--check")
check(r.returncode == 0, "README.md and docs/REPRODUCTION.md match their committed results", r.stdout[-3000:])
blocks = {f: len(re.findall(r"<!-- rendered: ", open(os.path.join(ROOT, f)).read()))
          for f in ("README.md", "docs/REPRODUCTION.md")}
check(all(n > 0 for n in blocks.values()), f"both files hold rendered blocks {blocks}", blocks)
runs = sorted(os.listdir(os.path.join(ROOT, "docs", "results")))
for run in runs:
    info = json.load(open(os.path.join(ROOT, "docs", "results", run, "run.json")))
    summary = json.load(open(os.path.join(ROOT, "docs", "results", run, "summary.json")))
    preset = summary["settings"]["preset"]
    named = (f"--preset {preset}" in info.get("command", "") or
             (preset == "default" and "--preset" not in info.get("command", "")))
    check(all(info.get(k) for k in ("command", "commit", "machine", "date", "wall_time")) and named,
          f"{run}: run.json names the command (its preset is the summary's), commit, machine, date and time", info)

# A copy of the tree's documents and results, edited.
copy = os.path.join(WORK, "tree")
os.makedirs(os.path.join(copy, "docs"))
shutil.copy(os.path.join(ROOT, "README.md"), copy)
shutil.copy(os.path.join(ROOT, "docs", "REPRODUCTION.md"), os.path.join(copy, "docs"))
shutil.copytree(os.path.join(ROOT, "docs", "results"), os.path.join(copy, "docs", "results"))
readme = open(os.path.join(copy, "README.md")).read()
start = readme.index("<!-- rendered: ")
m = re.compile(r"\d\.\d").search(readme, start)
edited = readme[:m.start()] + str((int(m.group(0)[0]) + 1) % 10) + readme[m.start() + 1:]
open(os.path.join(copy, "README.md"), "w").write(edited)
r = render(copy, "--check")
check(r.returncode == 1 and "FAIL README.md" in r.stdout and "ok   docs/REPRODUCTION.md" in r.stdout,
      "a number edited by hand in README.md fails the check, naming the file", r.stdout[-1500:])
r = render(copy, "--write")
check(r.returncode == 0 and open(os.path.join(copy, "README.md")).read() == readme,
      "--write restores it from the results", r.stdout[-500:])
open(os.path.join(copy, "README.md"), "w").write(readme.replace("<!-- rendered: readme_demo ",
                                                                 "<!-- rendered: readme_demo no-such-run-", 1))
r = render(copy, "--check")
check(r.returncode == 1 and "cannot read docs/results/no-such-run-" in r.stdout,
      "a block naming a run that is not committed fails, naming it", r.stdout[-500:])
m = re.search(r"<!-- rendered: readme_demo (\S+) -->", readme)
open(os.path.join(copy, "README.md"), "w").write(readme.replace(m.group(0), m.group(0).replace(
    m.group(1), m.group(1) + "+" + m.group(1)), 1))
r = render(copy, "--check")
check(r.returncode == 1 and "block readme_demo takes one run" in r.stdout,
      "only the overview sets runs side by side: another block given two runs fails, naming it", r.stdout[-500:])
finish()
