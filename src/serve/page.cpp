#include "serve/page.h"

namespace taia::serve {

const std::string& compare_page_html() {
  static const std::string html = R"HTML(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>taia serve: base / vanilla / TAIA / TAIF</title>
<style>
body{font-family:sans-serif;margin:24px;color:#222;background:#fff}
textarea{width:100%;height:80px;font:inherit}
.row{display:flex;gap:12px;align-items:center;margin:8px 0;flex-wrap:wrap}
.cols{display:grid;grid-template-columns:repeat(4,1fr);gap:12px;margin-top:16px}
.col{border:1px solid #ccc;border-radius:6px;padding:8px;min-height:160px}
.col h2{font-size:15px;margin:0 0 6px}
.out{white-space:pre-wrap;font-family:monospace;font-size:13px}
.meta{color:#777;font-size:12px;margin-top:6px}
</style></head><body>
<h1>taia serve: one prompt, four modes</h1>
<p>base: the pretrained model; vanilla: every update of the adapter; TAIA: its attention updates
only; TAIF: its FFN updates only. Greedy decoding, streamed from this server's OpenAI API.</p>
<form id="form">
<textarea id="prompt">Once upon a time</textarea>
<div class="row">
<label>adapter <select id="adapter"></select></label>
<label>endpoint <select id="endpoint"><option value="chat">chat</option><option value="completions">completions</option></select></label>
<label>max tokens <input id="max_tokens" type="number" value="64" min="1" style="width:6em"></label>
<label>API key <input id="key" type="password" autocomplete="off" style="width:10em"></label>
<button id="go" type="submit">Run the four modes</button>
</div>
</form>
<div class="cols" id="cols"></div>
<script>
"use strict";
const MODES = ["base", "vanilla", "taia", "taif"];
const $ = (id) => document.getElementById(id);
function headers() {
  const h = {"Content-Type": "application/json"};
  if ($("key").value) h["Authorization"] = "Bearer " + $("key").value;
  return h;
}
function columns() {
  const cols = $("cols");
  cols.textContent = "";
  const outs = {};
  for (const m of MODES) {
    const col = document.createElement("div");
    col.className = "col";
    const h = document.createElement("h2");
    h.textContent = m === "base" ? "base" : m;
    const out = document.createElement("div");
    out.className = "out";
    out.id = "out-" + m;
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.id = "meta-" + m;
    col.append(h, out, meta);
    cols.append(col);
    outs[m] = {out, meta};
  }
  return outs;
}
async function loadModels() {
  const r = await fetch("/v1/models", {headers: headers()});
  if (!r.ok) return;
  const names = new Set();
  for (const m of (await r.json()).data) if (m.id.includes(":")) names.add(m.id.split(":")[0]);
  const sel = $("adapter");
  sel.textContent = "";
  for (const n of names) {
    const o = document.createElement("option");
    o.value = o.textContent = n;
    sel.append(o);
  }
}
async function stream(mode, box) {
  const adapter = $("adapter").value;
  const chat = $("endpoint").value === "chat";
  const streaming = new URLSearchParams(location.search).get("stream") !== "0";
  const body = {model: mode === "base" || !adapter ? "base" : adapter + ":" + mode,
                max_tokens: Number($("max_tokens").value) || 64, temperature: 0, stream: streaming};
  if (chat) body.messages = [{role: "user", content: $("prompt").value}];
  else body.prompt = $("prompt").value;
  box.meta.textContent = "running";
  const r = await fetch(chat ? "/v1/chat/completions" : "/v1/completions",
                        {method: "POST", headers: headers(), body: JSON.stringify(body)});
  if (!r.ok) {
    const e = await r.json().catch(() => ({error: {message: r.statusText}}));
    box.meta.textContent = "error " + r.status + ": " + e.error.message;
    return;
  }
  if (!streaming) {  // one JSON answer (headless browsers that do not wait for streams)
    const j = await r.json();
    box.out.textContent = chat ? j.choices[0].message.content : j.choices[0].text;
    box.meta.textContent = "finished: " + j.choices[0].finish_reason;
    return;
  }
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "", tokens = 0;
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, {stream: true});
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      if (!event.startsWith("data: ")) continue;
      const data = event.slice(6);
      if (data === "[DONE]") continue;
      const chunk = JSON.parse(data);
      const choice = chunk.choices[0];
      if (!choice) continue;
      const text = chat ? (choice.delta.content || "") : choice.text;
      if (text) { box.out.textContent += text; tokens++; }
      if (choice.finish_reason) box.meta.textContent = "finished: " + choice.finish_reason;
    }
  }
  box.out.dataset.done = "1";
}
async function runAll() {
  const outs = columns();
  await Promise.all(MODES.map((m) => stream(m, outs[m])));
  document.body.dataset.done = "1";
}
$("form").addEventListener("submit", (e) => { e.preventDefault(); runAll(); });
(async () => {
  const q = new URLSearchParams(location.search);
  for (const k of ["prompt", "max_tokens", "endpoint"]) if (q.has(k)) $(k).value = q.get(k);
  await loadModels();
  if (q.has("adapter")) $("adapter").value = q.get("adapter");
  columns();
  if (q.get("run") === "1") await runAll();
})();
</script>
</body></html>
)HTML";
  return html;
}

}  // namespace taia::serve
