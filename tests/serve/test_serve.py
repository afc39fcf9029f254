"""taia serve on stories260K with an adapter trained in the test:

1. /health, /v1/models (base + ADAPTER:{vanilla,taia,taif}).
2. Greedy /v1/completions text in every mode equals `taia generate --mode` on the same prompt;
   streaming gives the same text in deltas, then finish_reason, usage and [DONE].
3. Concurrent requests in mixed modes (continuous batching, rows of one step in different modes)
   each equal their mode's sequential answer.
4. Stop strings cut the reply; `taia_mode` overrides the model name's mode.
5. The malformed-request catalogue: bad JSON, wrong types, unknown model or endpoint, huge body,
   negative max_tokens, invalid UTF-8, unsupported fields, a wrong or missing API key: OpenAI-shaped
   errors 400 / 401 / 404 / 413, the server still answering afterwards.
6. A client that disconnects mid-stream frees its slot (--parallel 1: the next request is served);
   a burst past --max-queue gets 429.

usage: /usr/bin/python3 test_serve.py TAIA_BINARY FIXTURES WORK_DIR
"""
import html
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import check, finish, npm_modules, setup  # noqa: E402

TAIA, FIXTURES, WORK, MODEL = setup()
HERE = os.path.dirname(os.path.abspath(__file__))


def run(*args):
    r = subprocess.run([TAIA, *args], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        print(r.stderr[-2000:])
    return r


rng = random.Random(1)
data = os.path.join(WORK, "data.jsonl")
with open(data, "w") as f:
    for _ in range(32):
        n = rng.choice(["Lily", "Tom", "Sam"])
        f.write(json.dumps({"instruction": f"Who is {n}?", "output": f"{n} is a happy child who likes to play."}) + "\n")
adapter = os.path.join(WORK, "adapter")
r = run("train", "-m", MODEL, "--data", data, "-o", adapter, "--max-steps", "6", "--lr", "1e-2", "--batch-size", "4",
        "--grad-accum", "1", "--lora-rank", "4", "--lora-alpha", "8", "--lora-dropout", "0", "--threads", "2")
check(r.returncode == 0, "trained the adapter", r.stderr[-500:])


class Server:
    def __init__(self, *extra):
        self.p = subprocess.Popen([TAIA, "serve", "-m", MODEL, "--adapter", f"tiny={adapter}", "--port", "0",
                                   "--threads", "2", *extra], stderr=subprocess.PIPE, text=True)
        line = self.p.stderr.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if not m:
            self.p.kill()
            raise SystemExit("taia serve did not start: " + line + self.p.stderr.read()[-2000:])
        self.url = f"http://127.0.0.1:{m.group(1)}"

    def stop(self):
        self.p.terminate()
        self.p.wait(timeout=10)


def request(url, body=None, key=None, raw=None, method=None):
    """(status, parsed JSON or text)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None else "GET"))
    req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", "Bearer " + key)
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            text = resp.read().decode()
            status = resp.status
    except urllib.error.HTTPError as e:
        text, status = e.read().decode(), e.code
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


PROMPTS = ["Once upon a time", "Lily and Tom went to the park.", "The little dog"]
MODES = {"base": "base", "tiny:vanilla": "vanilla", "tiny:taia": "taia", "tiny:taif": "taif"}


def generate(prompt, mode, n=24):
    args = ["generate", "-m", MODEL, "-p", prompt, "-n", str(n), "--temperature", "0", "--threads", "2"]
    if mode != "base":
        args += ["--adapter", adapter, "--mode", mode]
    r = run(*args)
    return r.stdout.rstrip("\n") if r.returncode == 0 else None


s = Server()
try:
    # ---- 1. health and models
    st, body = request(s.url + "/health")
    check(st == 200 and body == {"status": "ok"}, "/health", body)
    st, body = request(s.url + "/v1/models")
    check(st == 200 and [m["id"] for m in body["data"]] == ["base", "tiny:vanilla", "tiny:taia", "tiny:taif"],
          "/v1/models lists the base and each adapter mode", body)

    # ---- 2. greedy completions equal taia generate in every mode; streaming gives the same text
    expected = {}
    for model, mode in MODES.items():
        for p in PROMPTS:
            st, body = request(s.url + "/v1/completions", {"model": model, "prompt": p, "max_tokens": 24,
                                                           "temperature": 0})
            want = generate(p, mode)
            got = body["choices"][0]["text"] if st == 200 else None
            expected[(model, p)] = got
            check(st == 200 and want is not None and got == want, f"{model}: greedy text == taia generate --mode",
                  (st, got, want))
    moved = [m for m in MODES if m != "base" and any(expected[(m, p)] != expected[("base", p)] for p in PROMPTS)]
    check(len(moved) == 3, "every adapter mode answers some prompt differently from the base", moved)
    st, body = request(s.url + "/v1/completions", {"model": "tiny:taia", "prompt": PROMPTS[0], "max_tokens": 24,
                                                   "temperature": 0})
    check(st == 200 and body["usage"]["completion_tokens"] == 24 and body["choices"][0]["finish_reason"] == "length"
          and body["object"] == "text_completion", "usage and finish_reason", body)

    req = urllib.request.Request(s.url + "/v1/chat/completions", method="POST", data=json.dumps(
        {"model": "tiny:taia", "messages": [{"role": "user", "content": "Once upon a time"}], "max_tokens": 12,
         "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}).encode())
    events = []
    with urllib.request.urlopen(req, timeout=120) as resp:
        for line in resp.read().decode().split("\n\n"):
            if line.startswith("data: "):
                events.append(line[6:])
    chunks = [json.loads(e) for e in events if e != "[DONE]"]
    streamed = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    st, body = request(s.url + "/v1/chat/completions", {"model": "tiny:taia", "max_tokens": 12, "temperature": 0,
                                                        "messages": [{"role": "user", "content": "Once upon a time"}]})
    check(events and events[-1] == "[DONE]" and chunks[0]["choices"][0]["delta"].get("role") == "assistant"
          and streamed == body["choices"][0]["message"]["content"] and chunks[-1]["usage"]["completion_tokens"] == 12
          and chunks[-2]["choices"][0]["finish_reason"] == "length",
          "streaming chat: role, deltas equal to the non-streaming reply, finish_reason, usage, [DONE]",
          (streamed, body, events[-3:]))

    # ---- 3. concurrent requests in mixed modes equal their sequential answers
    results, errors = {}, []

    def client(i):
        model = list(MODES)[i % 4]
        p = PROMPTS[i % 3]
        st, body = request(s.url + "/v1/completions", {"model": model, "prompt": p, "max_tokens": 24, "temperature": 0})
        if st != 200:
            errors.append((i, st, body))
        else:
            results[i] = (model, p, body["choices"][0]["text"])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wrong = [(i, m, p) for i, (m, p, text) in results.items() if text != expected[(m, p)]]
    check(not errors and len(results) == 16 and not wrong,
          "16 concurrent requests in mixed modes: each equals its mode's sequential answer", (errors[:2], wrong[:3]))

    # ---- 4. stop strings, taia_mode
    full_text = expected[("tiny:vanilla", PROMPTS[0])]
    stop = full_text[8:12]
    st, body = request(s.url + "/v1/completions", {"model": "tiny", "prompt": PROMPTS[0], "max_tokens": 24,
                                                   "temperature": 0, "stop": [stop]})
    check(st == 200 and body["choices"][0]["text"] == full_text[:full_text.find(stop)]
          and body["choices"][0]["finish_reason"] == "stop", "a stop string cuts the reply before it", (stop, body))
    st, body = request(s.url + "/v1/completions", {"model": "tiny", "taia_mode": "taif", "prompt": PROMPTS[0],
                                                   "max_tokens": 24, "temperature": 0})
    check(st == 200 and body["choices"][0]["text"] == expected[("tiny:taif", PROMPTS[0])],
          "taia_mode overrides the model name's mode", body)

    # ---- the official openai npm client: chat, streaming chat and completions, every adapter mode
    modules = npm_modules(["openai@4"], os.path.join("openai", "package.json"))
    if modules is None:
        print("skip: the openai npm client check did not run (npm unreachable)")
    else:
        for model in ["tiny:vanilla", "tiny:taia", "tiny:taif"]:
            r = subprocess.run(["node", os.path.join(HERE, "openai_client.mjs"), s.url, model, PROMPTS[0], "24"],
                               capture_output=True, text=True, timeout=120, env={**os.environ, "NODE_PATH": modules})
            out = json.loads(r.stdout) if r.returncode == 0 else {}
            st, body = request(s.url + "/v1/chat/completions", {"model": model, "max_tokens": 24, "temperature": 0,
                                                                "messages": [{"role": "user", "content": PROMPTS[0]}]})
            check(r.returncode == 0 and out.get("completion") == expected[(model, PROMPTS[0])]
                  and out.get("chat") == body["choices"][0]["message"]["content"] == out.get("streamed")
                  and out.get("stream_finish") == out.get("chat_finish") == "length"
                  and out["chat_usage"]["completion_tokens"] == 24,
                  f"openai npm client, {model}: chat, streamed chat and completion give taia's greedy text",
                  (r.stderr[-800:], out))

    # ---- the page at /: four answers for one prompt, streamed, in headless Chromium
    st, page = request(s.url + "/")
    check(st == 200 and "<script" in page and " src=" not in page and "<link" not in page and "@import" not in page
          and "url(" not in page, "GET / serves the page, self-contained (no external scripts, styles or fonts)",
          str(page)[:200])
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("skip: chromium not installed (scripts/setup.sh installs it); the page check did not run")
    else:
        # stream=0: headless Chromium's virtual time does not wait for a streamed body (the stream
        # itself is checked above through the API and the openai client).
        url = s.url + "/?" + urllib.parse.urlencode({"prompt": PROMPTS[0], "adapter": "tiny", "endpoint": "completions",
                                                     "max_tokens": 24, "run": 1, "stream": 0})
        common = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                  "--enable-logging=stderr", "--v=0", "--window-size=1400,900", "--virtual-time-budget=20000"]
        cr = subprocess.run(common + ["--dump-dom", url], capture_output=True, text=True, timeout=120)
        answers = {m: html.unescape(re.sub(r"<[^>]+>", "", re.search(r'id="out-%s"[^>]*>(.*?)</div>' % m, cr.stdout,
                                                                        re.S).group(1)))
                   if re.search(r'id="out-%s"' % m, cr.stdout) else None for m in ["base", "vanilla", "taia", "taif"]}
        want = {m.split(":")[-1]: expected[(m, PROMPTS[0])] for m in MODES}
        check(answers == want, "the page shows the four modes' answers, each equal to its mode's greedy reply",
              (answers, want))
        console = [l for l in cr.stderr.splitlines() if "CONSOLE" in l or "Uncaught" in l]
        check(not console, "no console errors on the page", console)
        shot = os.path.join(WORK, "page.png")
        cr = subprocess.run(common + [f"--screenshot={shot}", url], capture_output=True, text=True, timeout=120)
        check(cr.returncode == 0 and os.path.exists(shot) and os.path.getsize(shot) > 20000,
              "chromium screenshot of the page (not blank)", (cr.stderr[-500:], os.path.exists(shot) and os.path.getsize(shot)))

    # ---- 5. malformed requests
    bad = [
        ("bad JSON", "/v1/completions", b"{bad", 400, None),
        ("wrong type", "/v1/completions", {"model": "base", "prompt": 3}, 400, "prompt"),
        ("unknown model", "/v1/completions", {"model": "nope", "prompt": "x"}, 404, "model"),
        ("negative max_tokens", "/v1/completions", {"model": "base", "prompt": "x", "max_tokens": -1}, 400, "max_tokens"),
        ("temperature out of range", "/v1/chat/completions",
         {"model": "base", "messages": [{"role": "user", "content": "x"}], "temperature": 5}, 400, "temperature"),
        ("unsupported field", "/v1/chat/completions",
         {"model": "base", "messages": [{"role": "user", "content": "x"}], "tools": []}, 400, "tools"),
        ("bad role", "/v1/chat/completions", {"model": "base", "messages": [{"role": "robot", "content": "x"}]}, 400,
         "messages[0].role"),
        ("empty messages", "/v1/chat/completions", {"model": "base", "messages": []}, 400, "messages"),
        ("invalid UTF-8", "/v1/completions", b'{"model": "base", "prompt": "\xff\xfe"}', 400, None),
        ("huge body", "/v1/completions", b'{"model": "base", "prompt": "' + b"a" * (2 << 20) + b'"}', 413, None),
        ("mode of the base", "/v1/completions", {"model": "base:taia", "prompt": "x"}, 400, "model"),
        ("unknown endpoint", "/v1/embeddings", {"model": "base", "input": "x"}, 404, None),
    ]
    for label, path, body, status, param in bad:
        raw = body if isinstance(body, bytes) else None
        st, resp = request(s.url + path, None if raw else body, raw=raw)
        err = resp.get("error", {}) if isinstance(resp, dict) else {}
        check(st == status and isinstance(err.get("message"), str) and "type" in err and err.get("param") == param,
              f"{label}: {status} with an OpenAI-shaped error", (st, resp))
    st, body = request(s.url + "/health")
    check(st == 200, "the server still answers after the catalogue", body)
finally:
    s.stop()

# ---- API key, and a client leaving mid-stream (--parallel 1)
s = Server("--api-key", "sekret", "--parallel", "1", "--max-queue", "1")
try:
    st, body = request(s.url + "/v1/models")
    check(st == 401 and body["error"]["type"] == "invalid_request_error", "no API key: 401", body)
    st, body = request(s.url + "/v1/models", key="wrong")
    check(st == 401, "a wrong API key: 401", body)
    st, body = request(s.url + "/v1/models", key="sekret")
    check(st == 200, "the right API key: 200", body)
    sock = socket.create_connection(("127.0.0.1", int(s.url.rsplit(":", 1)[1])))
    payload = json.dumps({"model": "tiny", "prompt": "Once upon a time", "max_tokens": 400, "stream": True})
    sock.sendall(("POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sekret\r\n"
                  "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload)).encode())
    sock.recv(512)
    sock.close()
    t0 = time.time()
    st, body = request(s.url + "/v1/completions", {"model": "tiny", "prompt": "Once", "max_tokens": 4,
                                                   "temperature": 0}, key="sekret")
    check(st == 200 and time.time() - t0 < 30, "after a client left mid-stream, its slot serves the next request",
          (st, body, time.time() - t0))
    # A burst beyond one running and one waiting request (--parallel 1 --max-queue 1): 429s, the rest served.
    statuses = []

    def burst():
        st, body = request(s.url + "/v1/completions", {"model": "tiny", "prompt": "Once", "max_tokens": 400,
                                                       "temperature": 0}, key="sekret")
        statuses.append((st, body["error"]["type"] if st != 200 else None))

    threads = [threading.Thread(target=burst) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(any(x == (429, "rate_limit_exceeded") for x in statuses) and (200, None) in statuses
          and all(x in [(200, None), (429, "rate_limit_exceeded")] for x in statuses),
          "a burst past --max-queue gets 429 (rate_limit_exceeded), the others are served", statuses)
finally:
    s.stop()

finish()
