"""Chat templates: taia's built-in renderings equal HF's Jinja rendering (@huggingface/jinja)
of the Qwen3, LLaMA 3 and Gemma 3 tokenizer_config.json templates, of the Phi-3 template in the
phi-3 GGUF vocabulary, and of the published Phi-3.5-mini and Mistral-7B-Instruct v0.1 / v0.2
templates, Phi-4-mini's and SmolLM3-3B's (quoted below from their tokenizer_config.json; SmolLM3's
tool branches left out, which taia does not render) on two-turn conversations, and the
per-token masks cover exactly the assistant replies (plus their end-of-turn tokens) for every
built-in template.

usage: python3 test_chat_templates.py TAIA_BINARY FIXTURES WORK_DIR
Exit code 77 (skipped) when the npm packages cannot be had (see test_diff_hf_js.py).
"""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_diff_hf_js import npm_modules  # noqa: E402

U, A, S = "user", "assistant", "system"


def msg(role, content):
    return {"role": role, "content": content}


CASES = [
    {"messages": [msg(U, "Hi there"), msg(A, "Hello! How can I help?"), msg(U, "What is 2+2?"), msg(A, "4")],
     "add_generation_prompt": False},
    {"messages": [msg(S, "You are terse."), msg(U, "Capital of France?"), msg(A, "Paris."), msg(U, "And Italy?"),
                  msg(A, "Rome.")], "add_generation_prompt": False},
    {"messages": [msg(U, "Hi"), msg(A, "Hello."), msg(U, "Tell me a joke")], "add_generation_prompt": True},
    {"messages": [msg(S, "Be kind."), msg(U, "  spaces around  \n")], "add_generation_prompt": True},
    {"messages": [msg(U, "Solve x+1=3"), msg(A, "\nx = 2\n\nDone. "), msg(U, "Thanks! 🦙"), msg(A, "You're welcome ✅")],
     "add_generation_prompt": False},
    # Qwen3's enable_thinking (other templates ignore it, as HF's do).
    {"messages": [msg(U, "Why is the sky blue?")], "add_generation_prompt": True, "enable_thinking": False},
    {"messages": [msg(U, "Why is the sky blue?")], "add_generation_prompt": True, "enable_thinking": True},
]

# Published templates without a fixture file of their own (tokenizer_config.json "chat_template").
PHI35_TEMPLATE = ("{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}"
                  "{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}"
                  "{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}"
                  "{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}"
                  "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}")
MISTRAL_V02_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}")
PHI4_MINI_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' and 'tools' in message and message['tools'] "
    "is not none %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|tool|>' + message['tools'] + "
    "'<|/tool|>' + '<|end|>' }}{% else %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}")
SMOLLM3_PERSONA_THINK = (
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face. Your role as an assistant involves "
    "thoroughly exploring questions through a systematic thinking process before providing the final precise and "
    "accurate solutions. This requires engaging in a comprehensive cycle of analysis, summarizing, exploration, "
    "reassessment, reflection, backtracking, and iteration to develop well-considered thinking process. Please "
    "structure your response into two main sections: Thought and Solution using the specified format: <think> "
    "Thought section </think> Solution section. In the Thought section, detail your reasoning process in steps. "
    "Each step should include detailed considerations such as analysing questions, summarizing relevant findings, "
    "brainstorming new ideas, verifying the accuracy of the current steps, refining any errors, and revisiting "
    "previous steps. In the Solution section, based on various attempts, explorations, and reflections from the "
    "Thought section, systematically present the final solution that you deem correct. The Solution section should "
    "be logical, accurate, and concise and detail necessary steps needed to reach the conclusion.")
SMOLLM3_TEMPLATE = (
    '{%- if enable_thinking is not defined -%}{%- set enable_thinking = true -%}{%- endif -%}'
    '{%- if enable_thinking -%}{%- set reasoning_mode = "/think" -%}{%- else -%}'
    '{%- set reasoning_mode = "/no_think" -%}{%- endif -%}'
    '{{- "<|im_start|>system\\n" -}}'
    '{%- if messages[0].role == "system" -%}{%- set system_message = messages[0].content -%}'
    '{%- if "/no_think" in system_message -%}{%- set reasoning_mode = "/no_think" -%}'
    '{%- elif "/think" in system_message -%}{%- set reasoning_mode = "/think" -%}{%- endif -%}'
    '{%- set custom_instructions = system_message.replace("/no_think", "").replace("/think", "").rstrip() -%}'
    '{%- endif -%}'
    '{%- if "/system_override" in system_message -%}'
    '{{- custom_instructions.replace("/system_override", "").rstrip() -}}{{- "<|im_end|>\\n" -}}'
    '{%- else -%}{{- "## Metadata\\n\\n" -}}{{- "Knowledge Cutoff Date: June 2025\\n" -}}'
    '{%- set today = strftime_now("%d %B %Y") -%}{{- "Today Date: " ~ today ~ "\\n" -}}'
    '{{- "Reasoning Mode: " + reasoning_mode + "\\n\\n" -}}{{- "## Custom Instructions\\n\\n" -}}'
    '{%- if custom_instructions -%}{{- custom_instructions + "\\n\\n" -}}'
    '{%- elif reasoning_mode == "/think" -%}{{- "' + SMOLLM3_PERSONA_THINK + '\\n\\n" -}}'
    '{%- else -%}{{- "You are a helpful AI assistant named SmolLM, trained by Hugging Face.\\n\\n" -}}'
    '{%- endif -%}{%- if xml_tools or python_tools -%}{{- "### Tools\\n\\n" -}}{{- "\\n\\n" -}}'
    '{{- "<|im_end|>\\n" -}}{%- endif -%}{%- endif -%}'
    '{%- for message in messages -%}'
    '{%- set content = message.content if message.content is string else "" -%}'
    '{%- if message.role == "user" -%}{{ "<|im_start|>" + message.role + "\\n"  + content + "<|im_end|>\\n" }}'
    '{%- elif message.role == "assistant" -%}{% generation %}{%- if reasoning_mode == "/think" -%}'
    '{{ "<|im_start|>assistant\\n" + content.lstrip("\\n") + "<|im_end|>\\n" }}{%- else -%}'
    '{{ "<|im_start|>assistant\\n" + "<think>\\n\\n</think>\\n" + content.lstrip("\\n") + "<|im_end|>\\n" }}'
    '{%- endif -%}{% endgeneration %}'
    '{%- elif message.role == "tool" -%}{{ "<|im_start|>" + "user\\n"  + content + "<|im_end|>\\n" }}'
    '{%- endif -%}{%- endfor -%}'
    '{%- if add_generation_prompt -%}{%- if reasoning_mode == "/think" -%}{{ "<|im_start|>assistant\\n" }}'
    '{%- else -%}{{ "<|im_start|>assistant\\n" + "<think>\\n\\n</think>\\n"  }}{%- endif -%}{%- endif -%}')
MISTRAL_V01_TEMPLATE = MISTRAL_V02_TEMPLATE.replace("message['content'] + eos_token}}",
                                                    "message['content'] + eos_token + ' ' }}")

# SmolLM3's system-message switches: the mode from "/no_think" in the message, and
# "/system_override" (the message alone as the system turn).
SMOLLM3_CASES = [
    {"messages": [msg(S, "Be brief. /no_think"), msg(U, "Hi"), msg(A, "\nHello.")], "add_generation_prompt": False},
    {"messages": [msg(S, "Plain system. /system_override"), msg(U, "Hi")], "add_generation_prompt": True},
]


def alternating(case):
    """Mistral's template raises on system messages and on roles that do not alternate."""
    return all((m["role"] == U) == (i % 2 == 0) for i, m in enumerate(case["messages"]))


# Text each template trains on, per assistant reply (what the mask must cover).
def trained_parts(template, messages, enable_thinking=None):
    parts = []
    for i, m in enumerate(messages):
        if m["role"] != A:
            continue
        c = m["content"]
        if template in ("chatml",):
            parts.append(c + "<|im_end|>\n")
        elif template == "qwen3":
            last_user = max(j for j, x in enumerate(messages) if x["role"] == U)
            think = "<think>\n\n</think>\n\n" if i > last_user and i == len(messages) - 1 else ""
            parts.append(think + (c.lstrip("\n") if think else c) + "<|im_end|>\n")
        elif template == "llama3":
            parts.append(c.strip() + "<|eot_id|>")
        elif template == "llama2":
            parts.append(c.strip() + " </s>")
        elif template == "gemma":
            parts.append(c.strip() + "<end_of_turn>\n")
        elif template == "mistral":
            parts.append(c + "</s>")
        elif template == "phi3":
            parts.append(c + "<|end|>\n")
        elif template == "phi4":
            parts.append(c + "<|end|>")
        elif template == "smollm3":
            parts.append(("<think>\n\n</think>\n" if enable_thinking is False else "") + c.lstrip("\n") + "<|im_end|>\n")
        elif template == "alpaca":
            parts.append(c + "</s>")
        elif template == "raw":
            parts.append(c)
    return parts


def run_chat(taia, tokenizer, cases, template=None):
    args = [taia, "tokenize", "--chat", "--tokenizer", tokenizer] + (["--chat-template", template] if template else [])
    r = subprocess.run(args, input="".join(json.dumps(c) + "\n" for c in cases), capture_output=True, text=True,
                       timeout=120)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    return [json.loads(l) for l in r.stdout.splitlines()]


def decode_all(taia, tokenizer, id_lists):
    """Decodes every id list in one taia call (one tokenizer load: a call per list took 90 s)."""
    r = subprocess.run([taia, "tokenize", "--decode", "--tokenizer", tokenizer],
                       input="".join(json.dumps({"ids": ids}) + "\n" for ids in id_lists),
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    texts = [json.loads(l)["text"] for l in r.stdout.splitlines()]
    if len(texts) != len(id_lists):
        raise RuntimeError(f"taia tokenize --decode: expected {len(id_lists)} lines, got {len(texts)}")
    return texts


def masked_runs(ids, mask):
    runs, cur = [], []
    for i, m in zip(ids, mask):
        if m:
            cur.append(i)
        elif cur:
            runs.append(cur)
            cur = []
    if cur:
        runs.append(cur)
    return runs


def main():
    taia, fixtures, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    modules = npm_modules()
    here = os.path.dirname(os.path.abspath(__file__))
    cases_file = os.path.join(work, "cases.json")
    json.dump(CASES, open(cases_file, "w"))
    failures = 0
    tok_root = os.path.join(fixtures, "tokenizers")
    # 1. Rendering equals HF's Jinja rendering of the model's own template.
    for name, expected_template in (("qwen3", "qwen3"), ("llama3", "llama3"), ("gemma3", "gemma")):
        tok_dir = os.path.join(tok_root, name)
        js = subprocess.run(["node", os.path.join(here, "hf_js_chat.mjs"), modules,
                             os.path.join(tok_dir, "tokenizer_config.json"), cases_file],
                            capture_output=True, text=True, timeout=120)
        ref = json.loads(js.stdout) if js.returncode == 0 else None
        ours = run_chat(taia, tok_dir, CASES)
        for k, (o, c) in enumerate(zip(ours, CASES)):
            ok = ref is not None and o["text"] == ref[k] and o["template"] == expected_template
            failures += 0 if ok else 1
            print(f"{'ok  ' if ok else 'FAIL'} {name} case {k} rendered by '{o['template']}' == HF jinja")
            if not ok:
                print(f"   taia {o['text']!r}\n   HF   {ref[k] if ref else js.stderr[-300:]!r}")
    # 1b. Templates given as a tokenizer_config.json beside a fixture vocabulary: recognised by
    # their markers and rendered as HF renders them.
    phi3_gguf = os.path.join(tok_root, "goldens", "ggml-vocab-phi-3.gguf")
    r = subprocess.run([taia, "inspect", phi3_gguf, "--format", "json"], capture_output=True, text=True)
    phi3_template = json.loads(json.loads(r.stdout)["metadata"]["tokenizer.chat_template"], strict=False)
    mistral_json = os.path.join(tok_root, "mistral", "tokenizer.json")
    variants = [  # (label, vocabulary, template, bos, eos, expected template name, cases)
        ("phi-3 (GGUF)", phi3_gguf, phi3_template, "<s>", "<|endoftext|>", "phi3", CASES),
        ("phi-3.5", phi3_gguf, PHI35_TEMPLATE, "<s>", "<|endoftext|>", "phi3", CASES),
        ("phi-4-mini", phi3_gguf, PHI4_MINI_TEMPLATE, "<s>", "<|endoftext|>", "phi4", CASES),
        ("smollm3", os.path.join(tok_root, "qwen3", "tokenizer.json"), SMOLLM3_TEMPLATE, None, "<|im_end|>", "smollm3",
         CASES + SMOLLM3_CASES),
        ("mistral v0.2", mistral_json, MISTRAL_V02_TEMPLATE, "<s>", "</s>", "mistral",
         [c for c in CASES if alternating(c)]),
        ("mistral v0.1", mistral_json, MISTRAL_V01_TEMPLATE, "<s>", "</s>", "mistral",
         [c for c in CASES if alternating(c)]),
    ]
    for label, vocab, template, bos, eos, expected_template, cases in variants:
        d = os.path.join(work, label.replace(" ", "_").replace("(", "").replace(")", ""))
        os.makedirs(d, exist_ok=True)
        cfg = os.path.join(d, "tokenizer_config.json")
        json.dump({"chat_template": template, "bos_token": bos, "eos_token": eos}, open(cfg, "w"))
        tok = vocab
        if vocab.endswith(".json"):  # a folder: tokenizer.json + this tokenizer_config.json
            shutil.copy(vocab, os.path.join(d, "tokenizer.json"))
            tok = d
        sub_cases = os.path.join(d, "cases.json")
        json.dump(cases, open(sub_cases, "w"))
        js = subprocess.run(["node", os.path.join(here, "hf_js_chat.mjs"), modules, cfg, sub_cases],
                            capture_output=True, text=True, timeout=120)
        ref = json.loads(js.stdout) if js.returncode == 0 else None
        # A GGUF carries its own template; the Phi-3.5 and Phi-4-mini ones are taia's by name.
        ours = run_chat(taia, tok, cases, {"phi-3.5": "phi3", "phi-4-mini": "phi4"}.get(label))
        for k, o in enumerate(ours):
            ok = ref is not None and o["text"] == ref[k] and o["template"] == expected_template
            failures += 0 if ok else 1
            print(f"{'ok  ' if ok else 'FAIL'} {label} case {k} rendered by '{o['template']}' == HF jinja")
            if not ok:
                print(f"   taia {o['text']!r}\n   HF   {ref[k] if ref else js.stderr[-300:]!r}")
    # 2. Masks cover exactly the assistant replies, for every built-in template.
    for template, tok_name in (("chatml", "qwen3"), ("qwen3", "qwen3"), ("llama3", "llama3"), ("llama2", "mistral"),
                               ("mistral", "mistral"), ("gemma", "gemma3"), ("phi3", "goldens/ggml-vocab-phi-3.gguf"),
                               ("phi4", "goldens/ggml-vocab-phi-3.gguf"), ("smollm3", "qwen3"),
                               ("alpaca", "mistral"), ("raw", "llama3")):
        tok_dir = os.path.join(tok_root, tok_name)
        cases = [c for c in CASES if alternating(c)] if template == "mistral" else CASES
        rendered = run_chat(taia, tok_dir, cases, template)
        runs_per_case = [masked_runs(o["ids"], o["mask"]) for o in rendered]
        texts = iter(decode_all(taia, tok_dir, [r for runs in runs_per_case for r in runs]))
        for k, c in enumerate(cases):
            runs = [next(texts) for _ in runs_per_case[k]]
            if template in ("phi3", "phi4"):  # SentencePiece prefixes the "\n" after <|end|> with its own "▁" token
                runs = [r.replace("<|end|> \n", "<|end|>\n") for r in runs]
            want = trained_parts(template, c["messages"], c.get("enable_thinking"))
            if template == "raw":  # raw joins turns with newlines: replies are runs of their own tokens
                ok = "".join(runs).replace("\n", "") == "".join(want).replace("\n", "")
            else:
                # A token that straddles the header/reply boundary ("\n" + "\n..." -> "\n\n") is
                # trained with the reply: only such header whitespace may precede a reply.
                ok = len(runs) == len(want) and all(
                    r.endswith(w) and r[:len(r) - len(w)].strip() == "" for r, w in zip(runs, want))
            failures += 0 if ok else 1
            print(f"{'ok  ' if ok else 'FAIL'} mask {template} ({tok_name}) case {k}: {len(runs)} trained run(s)")
            if not ok:
                print(f"   runs {runs!r}\n   want {want!r}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
