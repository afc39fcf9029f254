"""Fixtures of the Python module's tests: the CLI to compare against, stories260K, a work folder,
random models of every architecture family, and one adapter trained by the CLI."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from arch_configs import ARCHS, COMMON  # noqa: E402
from testlib import write_jsonl  # noqa: E402

TAIA = os.environ.get("TAIA_BIN", "")
FIXTURES = os.environ.get("TAIA_FIXTURES", "")
STORIES = os.path.join(FIXTURES, "models", "stories260K", "stories260K.gguf")
TOKENIZER = os.path.join(FIXTURES, "models", "stories260K", "tok512.model")
# The training run of the CLI and of taia.train (the same options, seed included).
TRAIN_OPTIONS = dict(max_steps=6, batch_size=2, grad_accum=1, lr=0.01, seed=7, lora_rank=4, save_every=3,
                     max_length=64, threads=2)
RECORDS = [{"instruction": f"Tell a story about {w}.", "output": f"Once upon a time there was a {w}. The {w} was happy."}
           for w in ("cat", "dog", "bird", "fish", "girl", "boy", "tree", "ball")]


def cli(*args, check=True):
    r = subprocess.run([TAIA, *map(str, args)], capture_output=True, text=True, timeout=600)
    if check and r.returncode != 0:
        raise AssertionError(f"taia {' '.join(map(str, args))} exited {r.returncode}: {r.stderr[-1500:]}")
    return r


def cli_options(options):
    args = []
    for k, v in options.items():
        args += ["--" + k.replace("_", "-"), str(v)]
    return args


def read_safetensors(path):
    """{name: numpy array} of a safetensors file (F32 / F16 / BF16 as float32)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        raw = data[b:e]
        if t["dtype"] == "F32":
            a = np.frombuffer(raw, "<f4")
        elif t["dtype"] == "F16":
            a = np.frombuffer(raw, "<f2").astype(np.float32)
        elif t["dtype"] == "BF16":
            a = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(f"{path}: dtype {t['dtype']}")
        out[name] = a.reshape(t["shape"])
    return out


@pytest.fixture(scope="session")
def work():
    w = os.environ.get("TAIA_TEST_WORK") or "/tmp/taia-python-tests"
    shutil.rmtree(w, ignore_errors=True)
    os.makedirs(w)
    return w


@pytest.fixture(scope="session")
def stories():
    if not os.path.exists(STORIES):
        pytest.skip(f"{STORIES} not found")
    return STORIES


@pytest.fixture(scope="session")
def data_file(work):
    return write_jsonl(os.path.join(work, "data.jsonl"), RECORDS)


@pytest.fixture(scope="session")
def cli_adapter(work, stories, data_file):
    """An adapter trained by `taia train` (the reference for taia.train)."""
    out = os.path.join(work, "cli_train")
    cli("train", "-m", stories, "--data", data_file, "-o", out, *cli_options(TRAIN_OPTIONS))
    return out


@pytest.fixture(scope="session")
def arch_models(work):
    """{family: HF folder} of random models made by taia init-model, with stories260K's tokenizer."""
    if not os.path.exists(TOKENIZER):
        pytest.skip(f"{TOKENIZER} not found")
    models = {}
    for arch, overrides in ARCHS.items():
        d = os.path.join(work, "arch", arch)
        os.makedirs(d, exist_ok=True)
        cfg = os.path.join(d, "in_config.json")
        json.dump(dict(COMMON, **overrides), open(cfg, "w"))
        model = os.path.join(d, "model")
        cli("init-model", "--config", cfg, "--out", model, "--seed", "3", "--init", "full", "--std", "0.1")
        shutil.copy(TOKENIZER, os.path.join(model, "tokenizer.model"))
        models[arch] = model
    return models
