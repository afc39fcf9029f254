// Chat templates: built-in renderers for the formats we target, chosen by recognising the
// Jinja `chat_template` a model ships (it is recognised, never executed), or by name.
// Rendering marks the byte spans of assistant replies; encoding turns them into a per-token
// mask (1 = the loss is computed on this token), following the official TAIA conventions:
// ChatML: the reply and its <|im_end|> + newline are trained, headers and other turns are not;
// LLaMA 2: everything up to and including "[/INST] " is masked; LLaMA 3: reply + <|eot_id|>.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace taia {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

enum class ChatFormat { ChatML, Qwen3, SmolLM3, Llama3, Llama2, Mistral, Gemma, Phi3, Phi4, Alpaca, Raw };

struct ChatTemplate {
  ChatFormat format = ChatFormat::Raw;
  std::string name;  // chat_template_names(): "chatml", "qwen3", ..., "raw"
  std::string default_system;         // ChatML: system prompt used when the conversation has none
  bool always_generation_prompt = false;  // LLaMA 3 templates that append the header unconditionally
  // Qwen3's enable_thinking: false appends the empty <think> block after the generation prompt
  // (the reply starts without reasoning), as HF renders enable_thinking=False; unset or true:
  // nothing (the model decides to think). SmolLM3: the reasoning mode (unset: /think).
  std::optional<bool> enable_thinking;
  // SmolLM3's "Today Date" ("04 December 2026"); empty: today's, as the template's strftime_now.
  std::string today;
  // Mistral-7B-Instruct-v0.1 writes a space after each reply's EOS (v0.2 does not).
  bool space_after_eos = false;
  // Phi-3's first template (Phi-3-mini, June 2024): BOS, the <|assistant|> header written after
  // every user turn, system messages dropped; the later one (Phi-3.5) has <|system|> turns, a
  // generation prompt, and EOS after a finished conversation.
  bool phi3_header_after_user = false;
};

// Names accepted by --chat-template.
const std::vector<std::string>& chat_template_names();
ChatTemplate chat_template_by_name(const std::string& name);  // throws for unknown names
// Recognises a Jinja template's format by its markers; nullopt if unknown.
std::optional<ChatTemplate> recognize_chat_template(const std::string& jinja);
// The template for a tokenizer: its own (recognised), else chatml if it has <|im_start|>,
// else llama3 / llama2 by their special tokens, else raw.
ChatTemplate chat_template_for(const Tokenizer& tokenizer);

struct RenderedChat {
  std::string text;
  std::vector<std::pair<size_t, size_t>> assistant_spans;  // [begin, end) bytes of trained text
};

// bos/eos: the token strings the template uses (e.g. "<s>", "</s>").
RenderedChat render_chat(const ChatTemplate& t, const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                         const std::string& bos_token, const std::string& eos_token);

struct ChatEncoding {
  std::vector<int32_t> ids;
  std::vector<uint8_t> mask;  // 1: token starts inside an assistant span
  std::string text;
};

// Renders and tokenizes (special tokens in the text are parsed; no extra BOS is added, as
// HF's apply_chat_template(tokenize=True) does).
ChatEncoding encode_chat(const Tokenizer& tokenizer, const ChatTemplate& t, const std::vector<ChatMessage>& messages,
                         bool add_generation_prompt);

}  // namespace taia
