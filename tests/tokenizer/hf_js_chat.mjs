// Renders conversations with the chat_template of a tokenizer_config.json through HF's
// @huggingface/jinja (what transformers.js' apply_chat_template uses).
// usage: node hf_js_chat.mjs NODE_MODULES_DIR TOKENIZER_CONFIG.json CASES.json
// CASES: [{"messages": [...], "add_generation_prompt": bool}, ...]; prints a JSON array of texts.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const [modulesDir, configFile, casesFile] = process.argv.slice(2);
const require = createRequire(path.join(modulesDir, "noop.js"));
const { Template } = require("@huggingface/jinja");
const config = JSON.parse(readFileSync(configFile, "utf8"));
const token = (t) => (t === null || t === undefined ? "" : typeof t === "string" ? t : t.content);
const template = new Template(config.chat_template);
const cases = JSON.parse(readFileSync(casesFile, "utf8"));
const out = cases.map((c) =>
  template.render({
    messages: c.messages,
    add_generation_prompt: c.add_generation_prompt,
    enable_thinking: c.enable_thinking,
    bos_token: token(config.bos_token),
    eos_token: token(config.eos_token),
  }),
);
console.log(JSON.stringify(out));
