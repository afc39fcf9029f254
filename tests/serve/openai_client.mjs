// Drives `taia serve` with the official `openai` npm client: a chat completion, a streamed chat
// completion and a completion, greedy. Prints one JSON object with the texts and the finish
// reasons. usage: node openai_client.mjs BASE_URL MODEL PROMPT MAX_TOKENS  (NODE_PATH: node_modules)
import { createRequire } from "module";
const require = createRequire(process.env.NODE_PATH.split(":")[0] + "/");
const OpenAI = require("openai");

const [baseURL, model, prompt, maxTokens] = process.argv.slice(2);
const client = new OpenAI({ baseURL: baseURL + "/v1", apiKey: process.env.TAIA_KEY || "none" });
const max_tokens = Number(maxTokens);
const messages = [{ role: "user", content: prompt }];

const chat = await client.chat.completions.create({ model, messages, max_tokens, temperature: 0 });
let streamed = "";
let streamFinish = null;
const stream = await client.chat.completions.create({ model, messages, max_tokens, temperature: 0, stream: true });
for await (const chunk of stream) {
  const choice = chunk.choices[0];
  if (!choice) continue;
  streamed += choice.delta?.content ?? "";
  if (choice.finish_reason) streamFinish = choice.finish_reason;
}
const completion = await client.completions.create({ model, prompt, max_tokens, temperature: 0 });
console.log(JSON.stringify({
  chat: chat.choices[0].message.content,
  chat_finish: chat.choices[0].finish_reason,
  chat_usage: chat.usage,
  streamed,
  stream_finish: streamFinish,
  completion: completion.choices[0].text,
}));
