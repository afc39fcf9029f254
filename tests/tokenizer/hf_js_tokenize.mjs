// Reference tokenization with HF's JavaScript tokenizers (@huggingface/tokenizers).
// usage: node hf_js_tokenize.mjs NODE_MODULES_DIR TOKENIZER_DIR LINES.jsonl [--bench]
// Reads {"text": ...} lines; writes {"ids": [...], "decoded": "..."} lines (no special tokens
// added). With --bench, prints {"seconds": S, "bytes": B} for encoding all lines instead.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const [modulesDir, tokDir, linesFile, mode] = process.argv.slice(2);
const require = createRequire(path.join(modulesDir, "noop.js"));
const { Tokenizer } = require("@huggingface/tokenizers");
const tokenizerJson = JSON.parse(readFileSync(path.join(tokDir, "tokenizer.json"), "utf8"));
const tokenizerConfig = JSON.parse(readFileSync(path.join(tokDir, "tokenizer_config.json"), "utf8"));
const tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
const texts = readFileSync(linesFile, "utf8").split("\n").filter((l) => l.length).map((l) => JSON.parse(l).text);

if (mode === "--bench") {
  let bytes = 0;
  for (const t of texts) bytes += Buffer.byteLength(t, "utf8");
  tokenizer.encode(texts[0], { add_special_tokens: false });  // warm-up
  const t0 = process.hrtime.bigint();
  for (const t of texts) tokenizer.encode(t, { add_special_tokens: false });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(JSON.stringify({ seconds, bytes }));
} else {
  const out = [];
  for (const t of texts) {
    const ids = tokenizer.encode(t, { add_special_tokens: false }).ids;
    // Raw decoding: no clean-up of spaces before punctuation (taia restores bytes exactly).
    out.push(JSON.stringify({ ids, decoded: tokenizer.decode(ids, { clean_up_tokenization_spaces: false }) }));
  }
  process.stdout.write(out.join("\n") + "\n");
}
