"""taia from Python: fine-tune decoder LLMs and run them with TAIA (train all parameters, infer
with only the attention updates).

    import taia
    model = taia.load("Qwen2.5-0.5B-Instruct")
    run = taia.train(model.path, "data.jsonl", "out", max_steps=100)
    adapter = taia.load_adapter("out")
    for mode in ("base", "vanilla", "taia", "taif"):
        print(mode, model.generate("2 + 3 =", adapter=adapter, mode=mode, temperature=0))

Every long call releases the GIL. Errors raise taia.Error (a ValueError) with the library's
message. docs/PYTHON.md has the guide.
"""
from __future__ import annotations

import inspect
import json
import os
import queue
import shutil
import tempfile
import threading
import weakref
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Union

import numpy as np

from . import _taia
from ._taia import Error

__version__ = _taia.version()
__all__ = ["Error", "Model", "Tokenizer", "Adapter", "load", "load_adapter", "train", "evaluate", "merge",
           "export", "run_command", "__version__"]

Messages = Sequence[Dict[str, str]]
Prompt = Union[str, Sequence[int], Messages]
Modes = Union[str, Sequence[str]]


def _messages(messages: Messages) -> List[tuple]:
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise Error(f"messages[{i}]: expected a dict with string 'role' and 'content', got {m!r}")
        out.append((m["role"], m["content"]))
    return out


class Tokenizer:
    """The model's tokenizer (tokenizer.json, tokenizer.model or the GGUF vocabulary)."""

    def __init__(self, native: _taia.Model):
        self._native = native

    def encode(self, text: str, add_special_tokens: bool = True) -> List[int]:
        return self._native.encode(text, add_special_tokens)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self._native.decode(list(ids), skip_special_tokens)

    def apply_chat_template(self, messages: Messages, add_generation_prompt: bool = True,
                            tokenize: bool = False) -> Union[str, List[int]]:
        """As HF's tokenizer.apply_chat_template: the rendered text, or its ids with tokenize=True."""
        if tokenize:
            return self._native.encode_chat(_messages(messages), add_generation_prompt)
        return self._native.apply_chat_template(_messages(messages), add_generation_prompt)


class Adapter:
    """A LoRA adapter: a PEFT folder, a GGUF LoRA file, a MoLoRA folder, or PEFT tensors made in
    PyTorch (Adapter.from_tensors). It is read against a model the first time a model runs it."""

    def __init__(self, path: Optional[str] = None, tensors: Optional[Dict[str, Any]] = None,
                 config: Optional[Dict[str, Any]] = None):
        self.path = path
        self._tensors = tensors
        self._config = config
        self._bound: "weakref.WeakKeyDictionary[Model, _taia.Adapter]" = weakref.WeakKeyDictionary()

    @classmethod
    def from_tensors(cls, tensors: Dict[str, Any], config: Any) -> "Adapter":
        """A PEFT state_dict (get_peft_model_state_dict(model): keys like
        'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'; numpy arrays or CPU torch
        tensors) and its config (a dict as adapter_config.json holds, or PEFT's LoraConfig)."""
        if hasattr(config, "to_dict"):
            config = config.to_dict()
        if not isinstance(config, dict):
            raise Error(f"config: expected a dict or a PEFT LoraConfig, got {type(config).__name__}")
        arrays = {}
        for name, value in tensors.items():
            if hasattr(value, "detach"):  # a torch tensor
                value = value.detach().cpu().float().numpy()
            arrays[str(name)] = np.ascontiguousarray(value, dtype=np.float32)
        return cls(tensors=arrays, config=json.loads(json.dumps(config, default=_json_default)))

    def _for(self, model: "Model") -> _taia.Adapter:
        native = self._bound.get(model)
        if native is None:
            if self.path is not None:
                native = _taia.Adapter.load(model._native, self.path)
            else:
                native = _taia.Adapter.from_tensors(model._native, self._tensors, json.dumps(self._config))
            self._bound[model] = native
        return native

    def __repr__(self) -> str:
        return f"taia.Adapter({self.path!r})" if self.path else "taia.Adapter(<tensors>)"


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if hasattr(value, "value"):  # enums (PEFT's TaskType)
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON")


class Model:
    """A loaded model (taia.load). Thread-safe: several threads may run one model at once."""

    def __init__(self, native: _taia.Model, path: str, dtype: Optional[str]):
        self._native = native
        self.path = path
        self.dtype = dtype
        self.tokenizer = Tokenizer(native)
        self.config: Dict[str, Any] = json.loads(native.config_json())

    @property
    def vocab_size(self) -> int:
        return self._native.vocab_size

    def _adapter(self, adapter: Union[None, str, Adapter]) -> Optional[_taia.Adapter]:
        if adapter is None:
            return None
        if isinstance(adapter, str):
            adapter = load_adapter(adapter)
        if not isinstance(adapter, Adapter):
            raise Error(f"adapter: expected a taia.Adapter or a path, got {type(adapter).__name__}")
        return adapter._for(self)

    def load_adapter(self, path: str) -> None:
        """Makes this adapter the model's own: used when a call passes none."""
        self._native.load_adapter(os.fspath(path))

    def forward(self, ids: Sequence[int], adapter: Union[None, str, Adapter] = None, mode: Optional[str] = None,
                compute: str = "f32", kv_dtype: Optional[str] = None) -> np.ndarray:
        """Logits of every position, float32 [len(ids), vocab_size], in the library's own buffer (no
        copy). mode: base, vanilla, taia, taif or a module list ('q,k,v,o'); default taia with an
        adapter, else base."""
        return self._native.forward([int(i) for i in ids], self._adapter(adapter), mode or "", compute, kv_dtype or "")

    def tensor_names(self) -> List[str]:
        return self._native.tensor_names()

    def tensor(self, name: str) -> np.ndarray:
        """A weight by its HF name, read-only: a view of the model's memory for F32 weights; for
        BF16, F16 and quantized weights a widened / dequantized float32 copy."""
        return _taia.tensor(self, self._native, name)

    def _generate(self, prompt: Prompt, on_text: Optional[Callable[[str], bool]], adapter, mode, max_tokens,
                  temperature, top_k, top_p, repetition_penalty, seed, stop, chat, ignore_eos, compute,
                  kv_dtype) -> Dict[str, Any]:
        if isinstance(prompt, str):
            native_prompt: Any = prompt
        elif len(prompt) > 0 and isinstance(prompt[0], dict):
            native_prompt = _messages(prompt)  # type: ignore[arg-type]
        else:
            native_prompt = [int(i) for i in prompt]  # type: ignore[union-attr]
        if isinstance(stop, str):
            stop = [stop]
        return self._native.generate(native_prompt, self._adapter(adapter), mode or "", compute, kv_dtype or "",
                                     int(max_tokens), float(temperature), int(top_k), float(top_p),
                                     float(repetition_penalty), int(seed), bool(chat), bool(ignore_eos),
                                     list(stop or []), on_text)

    def generate(self, prompt: Prompt, adapter: Union[None, str, Adapter] = None, mode: Optional[str] = None,
                 max_tokens: int = 64, temperature: float = 0.8, top_k: int = 0, top_p: float = 1.0,
                 repetition_penalty: float = 1.0, seed: int = 0, stop: Union[None, str, Sequence[str]] = None,
                 chat: bool = False, ignore_eos: bool = False, compute: str = "f32", kv_dtype: Optional[str] = None,
                 details: bool = False) -> Union[str, Dict[str, Any]]:
        """Continues a text prompt (BOS added; chat=True renders it as a user turn), a list of ids, or
        a conversation [{'role': ..., 'content': ...}] (the chat template's generation prompt).
        temperature 0 is greedy. Returns the text, or with details=True a dict (text, prompt_ids,
        output_ids, stopped_at_eos, stopped_at_text, tokens/s)."""
        g = self._generate(prompt, None, adapter, mode, max_tokens, temperature, top_k, top_p, repetition_penalty,
                           seed, stop, chat, ignore_eos, compute, kv_dtype)
        return g if details else g["text"]

    def stream(self, prompt: Prompt, **options: Any) -> Iterator[str]:
        """generate's text as pieces, as they are decoded (the same options). Leaving the loop early
        stops the generation at its next token."""
        pieces: "queue.Queue[Any]" = queue.Queue()
        closed = threading.Event()
        done = object()

        def on_text(piece: str) -> bool:
            pieces.put(piece)
            return not closed.is_set()

        def run() -> None:
            try:
                self._generate(prompt, on_text, **_generate_options(options))
                pieces.put(done)
            except BaseException as e:  # handed to the iterating thread
                pieces.put(e)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        try:
            while True:
                item = pieces.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            closed.set()
            worker.join()

    def __repr__(self) -> str:
        return f"taia.Model({self.path!r})"


# stream's options: generate's, with generate's defaults (one signature declares them).
_GENERATE_DEFAULTS = {name: p.default for name, p in inspect.signature(Model.generate).parameters.items()
                      if name not in ("self", "prompt", "details")}


def _generate_options(options: Dict[str, Any]) -> Dict[str, Any]:
    unknown = sorted(set(options) - set(_GENERATE_DEFAULTS))
    if unknown:
        raise Error(f"stream: unknown option(s) {', '.join(unknown)}; expected {', '.join(_GENERATE_DEFAULTS)}")
    return {**_GENERATE_DEFAULTS, **options}


def load(path: Union[str, os.PathLike], dtype: Optional[str] = None, threads: Optional[int] = None,
         mmap: bool = True) -> Model:
    """An HF model folder (config.json + safetensors) or a GGUF file, with its tokenizer.
    dtype: weights in memory (None: as stored; f32, bf16, f16). threads: worker threads for this
    process (None: all cores)."""
    path = os.fspath(path)
    return Model(_taia.Model.load(path, dtype or "auto", int(threads or 0), bool(mmap)), path, dtype)


def load_adapter(path: Union[str, os.PathLike]) -> Adapter:
    """A PEFT adapter folder, a llama.cpp GGUF LoRA file or a MoLoRA folder (read when a model
    first runs it)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise Error(f"{path}: no such adapter folder or file")
    return Adapter(path=path)


def _option_pairs(options: Dict[str, Any]) -> List[tuple]:
    """Keyword arguments as the CLI's options (the library turns lora_rank into --lora-rank):
    True is a flag, a list a comma-separated value; None and False are left out."""
    pairs = []
    for key, value in options.items():
        if value is None or value is False:
            continue
        if value is True:
            pairs.append((key, ""))
        elif isinstance(value, (list, tuple)):
            pairs.append((key, ",".join(str(v) for v in value)))
        else:
            pairs.append((key, os.fspath(value) if isinstance(value, os.PathLike) else str(value)))
    return pairs


def run_command(command: str, *args: str, on_step: Optional[Callable[[Dict[str, Any]], Any]] = None,
                **options: Any) -> Any:
    """Runs `taia COMMAND ARGS... --OPTIONS` in this process and returns what its --format json
    prints (parsed). The commands' options and checks are the CLI's (`taia COMMAND --help`)."""
    callback = None
    if on_step is not None:
        def callback(metrics: str) -> bool:
            return on_step(json.loads(metrics)) is not False
    return json.loads(_taia.run_command(command, list(args), _option_pairs(options), callback))


def _model_path(model: Union[str, os.PathLike, Model]) -> str:
    return model.path if isinstance(model, Model) else os.fspath(model)


def train(base: Union[str, os.PathLike, Model], data: Union[str, os.PathLike], out: Union[str, os.PathLike],
          on_step: Optional[Callable[[Dict[str, Any]], Any]] = None, **options: Any) -> Dict[str, Any]:
    """taia train with the CLI's options as keyword arguments (lora_rank=8, lr=1e-4, max_steps=100,
    targets='attn', method='full', ...). on_step(metrics) is called after each optimizer step with
    its metrics.jsonl line; returning False stops there. Ctrl-C (KeyboardInterrupt) stops at the
    end of the running step with a checkpoint written (resume=out continues it), then is raised.
    Returns the run: steps, final_loss, tokens_per_s, output (the adapter folder), metrics path."""
    return run_command("train", "--model", _model_path(base), "--data", os.fspath(data), "--out", os.fspath(out),
                       on_step=on_step, **options)


def evaluate(model: Union[str, os.PathLike, Model], tasks: Union[str, Sequence[str]],
             adapter: Union[None, str, os.PathLike, Adapter] = None, modes: Optional[Modes] = None,
             out: Union[None, str, os.PathLike] = None, **options: Any) -> Dict[str, Any]:
    """taia eval: the results.json content as a dict. model: a path or a loaded Model (its path and
    dtype are used: the command loads it again). modes: a list or 'base,taia'; a module list is
    one mode ('q,k,v'). out: the run folder (results.json, samples/); None: a temporary one."""
    if isinstance(adapter, Adapter):
        if adapter.path is None:
            raise Error("evaluate: an adapter made from tensors has no folder for taia eval; save it with PEFT "
                        "or pass a path")
        adapter = adapter.path
    if isinstance(modes, (list, tuple)):
        modes = (";" if any("," in m for m in modes) else ",").join(modes)
    if isinstance(model, Model) and model.dtype and "dtype" not in options:
        options["dtype"] = model.dtype
    tasks_arg = tasks if isinstance(tasks, str) else ",".join(os.fspath(t) for t in tasks)
    folder = os.fspath(out) if out is not None else tempfile.mkdtemp(prefix="taia-eval-")
    try:
        return run_command("eval", "--model", _model_path(model), "--tasks", tasks_arg, "--out", folder,
                           adapter=adapter, modes=modes, **options)
    finally:
        if out is None:
            shutil.rmtree(folder, ignore_errors=True)


def merge(base: Union[str, os.PathLike, Model], out: Union[str, os.PathLike],
          adapter: Union[None, str, os.PathLike] = None, **options: Any) -> Dict[str, Any]:
    """taia merge: base + adapter (mode='taia' keeps the attention updates; the CLI's options) or
    base + finetuned=FOLDER, written as an HF folder at out. Returns the command's summary."""
    return run_command("merge", "--base", _model_path(base), "--out", os.fspath(out), adapter=adapter, **options)


def export(model: Union[str, os.PathLike, Model], adapter: Union[str, os.PathLike], out: Union[str, os.PathLike],
           format: str = "hf", **options: Any) -> Dict[str, Any]:
    """taia export: hf (a merged HF folder), peft (the selected modules) or gguf-lora, with the
    CLI's options (mode='taia', dtype=...). Returns the command's summary."""
    return run_command("export", "--model", _model_path(model), "--adapter", os.fspath(adapter), "--out",
                       os.fspath(out), format=format, **options)
