#include "tokenizer/chat_template.h"

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "core/error.h"

namespace taia {
namespace {

std::string trim(const std::string& s, const char* chars = " \t\n\r") {
  const size_t b = s.find_first_not_of(chars);
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(chars);
  return s.substr(b, e - b + 1);
}

std::string lstrip(const std::string& s, const char* chars) {
  const size_t b = s.find_first_not_of(chars);
  return b == std::string::npos ? "" : s.substr(b);
}

std::string rstrip(const std::string& s, const char* chars) {
  const size_t e = s.find_last_not_of(chars);
  return e == std::string::npos ? "" : s.substr(0, e + 1);
}

class Writer {
 public:
  RenderedChat out;
  void text(const std::string& s) { out.text += s; }
  void trained(const std::string& s) {
    const size_t b = out.text.size();
    out.text += s;
    if (!s.empty()) out.assistant_spans.emplace_back(b, out.text.size());
  }
};

void check_roles(const std::vector<ChatMessage>& messages) {
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& r = messages[i].role;
    TAIA_CHECK(r == "system" || r == "user" || r == "assistant", "[chat] message ", i,
               " role expected system, user or assistant, got '", r, "'");
  }
}

void render_chatml(Writer& w, const ChatTemplate& t, const std::vector<ChatMessage>& m, bool gen) {
  if (!t.default_system.empty() && (m.empty() || m[0].role != "system"))
    w.text("<|im_start|>system\n" + t.default_system + "<|im_end|>\n");
  for (const ChatMessage& msg : m) {
    if (msg.role == "assistant") {
      w.text("<|im_start|>assistant\n");
      w.trained(msg.content + "<|im_end|>\n");
    } else {
      w.text("<|im_start|>" + msg.role + "\n" + msg.content + "<|im_end|>\n");
    }
  }
  if (gen) w.text("<|im_start|>assistant\n");
}

// Qwen3's template without tools: ChatML, plus a <think> block on the assistant turns after the
// last user message (empty when the reply carries no reasoning).
void render_qwen3(Writer& w, const ChatTemplate& t, const std::vector<ChatMessage>& m, bool gen) {
  if (!m.empty() && m[0].role == "system") w.text("<|im_start|>system\n" + m[0].content + "<|im_end|>\n");
  size_t last_query = m.empty() ? 0 : m.size() - 1;
  for (size_t i = m.size(); i-- > 0;)
    if (m[i].role == "user") {
      last_query = i;
      break;
    }
  for (size_t i = 0; i < m.size(); ++i) {
    const ChatMessage& msg = m[i];
    if (msg.role == "user" || (msg.role == "system" && i != 0)) {
      w.text("<|im_start|>" + msg.role + "\n" + msg.content + "<|im_end|>\n");
    } else if (msg.role == "assistant") {
      std::string content = msg.content, reasoning;
      const size_t close = content.rfind("</think>");
      if (close != std::string::npos) {
        const std::string before = content.substr(0, content.find("</think>"));
        content = lstrip(content.substr(close + 8), "\n");
        const size_t open = before.rfind("<think>");
        reasoning = lstrip(rstrip(open == std::string::npos ? before : before.substr(open + 7), "\n"), "\n");
      }
      w.text("<|im_start|>assistant\n");
      const bool last = i + 1 == m.size();
      if (i > last_query && (last || !reasoning.empty()))
        w.trained("<think>\n" + trim(reasoning, "\n") + "\n</think>\n\n" + lstrip(content, "\n") + "<|im_end|>\n");
      else
        w.trained(content + "<|im_end|>\n");
    }
  }
  if (gen) {
    w.text("<|im_start|>assistant\n");
    if (t.enable_thinking == false) w.text("<think>\n\n</think>\n\n");
  }
}

// SmolLM3's default instructions by reasoning mode (the template's own text).
constexpr const char* kSmolThinkPersona =
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
    "be logical, accurate, and concise and detail necessary steps needed to reach the conclusion.";
constexpr const char* kSmolPersona = "You are a helpful AI assistant named SmolLM, trained by Hugging Face.";

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  return s;
}

// Today as the template's strftime_now("%d %B %Y") writes it (local time, English month).
std::string smollm3_today() {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  static const char* months[] = {"January", "February", "March",     "April",   "May",      "June",
                                 "July",    "August",   "September", "October", "November", "December"};
  char day[8];
  std::snprintf(day, sizeof day, "%02d", local.tm_mday);
  return std::string(day) + " " + months[local.tm_mon] + " " + std::to_string(1900 + local.tm_year);
}

// SmolLM3's header: "/think" or "/no_think" in the system message set the reasoning mode (else
// enable_thinking, default /think); "/system_override" makes the message the whole system turn;
// otherwise metadata (knowledge cutoff, today, mode) and custom instructions (the message's, else
// the mode's default persona). As published, this header has no <|im_end|> without tools.
// Returns whether the mode is /think.
bool render_smollm3_header(Writer& w, const ChatTemplate& t, const std::vector<ChatMessage>& m) {
  bool think = t.enable_thinking.value_or(true);
  std::string system, custom;
  if (!m.empty() && m[0].role == "system") {
    system = m[0].content;
    if (system.find("/no_think") != std::string::npos) think = false;
    else if (system.find("/think") != std::string::npos) think = true;
    custom = rstrip(replace_all(replace_all(system, "/no_think", ""), "/think", ""), " \t\n\r");
  }
  w.text("<|im_start|>system\n");
  if (system.find("/system_override") != std::string::npos) {
    w.text(rstrip(replace_all(custom, "/system_override", ""), " \t\n\r") + "<|im_end|>\n");
    return think;
  }
  w.text("## Metadata\n\nKnowledge Cutoff Date: June 2025\nToday Date: " +
         (t.today.empty() ? smollm3_today() : t.today) + "\nReasoning Mode: " + (think ? "/think" : "/no_think") +
         "\n\n## Custom Instructions\n\n" + (!custom.empty() ? custom : think ? kSmolThinkPersona : kSmolPersona) +
         "\n\n");
  return think;
}

// SmolLM3's template without tools: its header, then ChatML user and assistant turns (system
// messages only in the header); in /no_think mode every assistant turn and the generation prompt
// start with an empty think block (trained with the reply).
void render_smollm3(Writer& w, const ChatTemplate& t, const std::vector<ChatMessage>& m, bool gen) {
  const bool think = render_smollm3_header(w, t, m);
  const std::string empty_think = think ? "" : "<think>\n\n</think>\n";
  for (const ChatMessage& msg : m) {
    if (msg.role == "user") {
      w.text("<|im_start|>user\n" + msg.content + "<|im_end|>\n");
    } else if (msg.role == "assistant") {
      w.text("<|im_start|>assistant\n");
      w.trained(empty_think + lstrip(msg.content, "\n") + "<|im_end|>\n");
    }
  }
  if (gen) w.text("<|im_start|>assistant\n" + empty_think);
}

void render_llama3(Writer& w, const ChatTemplate& t, const std::vector<ChatMessage>& m, bool gen,
                   const std::string& bos) {
  for (size_t i = 0; i < m.size(); ++i) {
    std::string header = "<|start_header_id|>" + m[i].role + "<|end_header_id|>\n\n";
    if (i == 0) header = bos + header;
    if (m[i].role == "assistant") {
      w.text(header);
      w.trained(trim(m[i].content) + "<|eot_id|>");
    } else {
      w.text(header + trim(m[i].content) + "<|eot_id|>");
    }
  }
  if (gen || t.always_generation_prompt) w.text("<|start_header_id|>assistant<|end_header_id|>\n\n");
}

void render_llama2(Writer& w, const std::vector<ChatMessage>& m, const std::string& bos, const std::string& eos) {
  size_t start = 0;
  std::string system;
  if (!m.empty() && m[0].role == "system") {
    system = m[0].content;
    start = 1;
  }
  for (size_t i = start; i < m.size(); ++i) {
    std::string content = m[i].content;
    if (i == start && start == 1) content = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content;
    if (m[i].role == "user") {
      w.text(bos + "[INST] " + trim(content) + " [/INST]");
    } else if (m[i].role == "assistant") {
      w.text(" ");
      w.trained(trim(content) + " " + eos);
    }
  }
}

// Mistral-7B-Instruct v0.1 / v0.2: BOS, "[INST] " + user + " [/INST]", the reply + EOS; roles
// must alternate user / assistant and system messages are refused, as the template raises.
void render_mistral(Writer& w, const ChatTemplate& t, const std::vector<ChatMessage>& m, const std::string& bos,
                    const std::string& eos) {
  w.text(bos);
  for (size_t i = 0; i < m.size(); ++i) {
    TAIA_CHECK(m[i].role != "system", "[chat] the Mistral template supports only user and assistant roles (message ",
               i, " is a system message)");
    TAIA_CHECK((m[i].role == "user") == (i % 2 == 0), "[chat] the Mistral template needs roles alternating "
               "user/assistant/user/... (message ", i, " is ", m[i].role, ")");
    if (m[i].role == "user") {
      w.text("[INST] " + m[i].content + " [/INST]");
    } else {
      w.trained(m[i].content + eos);
      if (t.space_after_eos) w.text(" ");
    }
  }
}

// Phi-3: <|user|>\n...<|end|>\n, <|assistant|>\n + the reply + <|end|>\n (trained), in the two
// forms of ChatTemplate::phi3_header_after_user.
void render_phi3(Writer& w, const ChatTemplate& t, const std::vector<ChatMessage>& m, bool gen,
                 const std::string& bos, const std::string& eos) {
  if (t.phi3_header_after_user) w.text(bos);
  for (const ChatMessage& msg : m) {
    if (msg.role == "assistant") {
      if (!t.phi3_header_after_user) w.text("<|assistant|>\n");
      w.trained(msg.content + "<|end|>\n");
    } else if (msg.role == "user") {
      w.text("<|user|>\n" + msg.content + "<|end|>\n" + (t.phi3_header_after_user ? "<|assistant|>\n" : ""));
    } else if (!t.phi3_header_after_user && !msg.content.empty()) {
      w.text("<|system|>\n" + msg.content + "<|end|>\n");
    }
  }
  if (!t.phi3_header_after_user) w.text(gen ? "<|assistant|>\n" : eos);
}

// Phi-4-mini: <|role|> + content + <|end|> for every message, without newlines (the assistant's
// content and <|end|> trained), then <|assistant|> (generation prompt) or EOS.
void render_phi4(Writer& w, const std::vector<ChatMessage>& m, bool gen, const std::string& eos) {
  for (const ChatMessage& msg : m) {
    if (msg.role == "assistant") {
      w.text("<|assistant|>");
      w.trained(msg.content + "<|end|>");
    } else {
      w.text("<|" + msg.role + "|>" + msg.content + "<|end|>");
    }
  }
  w.text(gen ? "<|assistant|>" : eos);
}

// Gemma 2 / 3: BOS, <start_of_turn>user|model, the content trimmed, <end_of_turn>; a system
// message becomes the first user turn's prefix (content + blank line), as the templates do.
void render_gemma(Writer& w, const std::vector<ChatMessage>& m, bool gen, const std::string& bos) {
  w.text(bos);
  size_t start = 0;
  std::string prefix;
  if (!m.empty() && m[0].role == "system") {
    prefix = m[0].content + "\n\n";
    start = 1;
  }
  for (size_t i = start; i < m.size(); ++i) {
    const bool model = m[i].role == "assistant";
    const std::string header = "<start_of_turn>" + std::string(model ? "model" : m[i].role) + "\n" +
                               (i == start ? prefix : "");
    if (model) {
      w.text(header);
      w.trained(trim(m[i].content) + "<end_of_turn>\n");
    } else {
      w.text(header + trim(m[i].content) + "<end_of_turn>\n");
    }
  }
  if (gen) w.text("<start_of_turn>model\n");
}

void render_alpaca(Writer& w, const std::vector<ChatMessage>& m, bool gen, const std::string& eos) {
  std::string system = "Below is an instruction that describes a task. "
                       "Write a response that appropriately completes the request.";
  size_t start = 0;
  if (!m.empty() && m[0].role == "system") {
    system = m[0].content;
    start = 1;
  }
  w.text(system + "\n\n");
  for (size_t i = start; i < m.size(); ++i) {
    if (m[i].role == "user") {
      w.text("### Instruction:\n" + m[i].content + "\n\n### Response:\n");
    } else if (m[i].role == "assistant") {
      w.trained(m[i].content + eos);
      w.text("\n\n");
    }
  }
  (void)gen;  // the response header already ends every instruction
}

void render_raw(Writer& w, const std::vector<ChatMessage>& m) {
  for (size_t i = 0; i < m.size(); ++i) {
    if (m[i].role == "assistant")
      w.trained(m[i].content);
    else
      w.text(m[i].content);
    if (i + 1 < m.size()) w.text("\n");
  }
}

// The built-in templates by name (--chat-template), one table.
constexpr std::pair<const char*, ChatFormat> kFormats[] = {
    {"chatml", ChatFormat::ChatML}, {"qwen3", ChatFormat::Qwen3},   {"smollm3", ChatFormat::SmolLM3},
    {"llama3", ChatFormat::Llama3}, {"llama2", ChatFormat::Llama2}, {"mistral", ChatFormat::Mistral},
    {"gemma", ChatFormat::Gemma},   {"phi3", ChatFormat::Phi3},     {"phi4", ChatFormat::Phi4},
    {"alpaca", ChatFormat::Alpaca}, {"raw", ChatFormat::Raw},
};

}  // namespace

const std::vector<std::string>& chat_template_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& [name, format] : kFormats) v.push_back(name);
    return v;
  }();
  return names;
}

ChatTemplate chat_template_by_name(const std::string& name) {
  ChatTemplate t;
  t.name = name;
  for (const auto& [n, format] : kFormats)
    if (name == n) {
      t.format = format;
      return t;
    }
  std::string names;
  for (const std::string& n : chat_template_names()) names += (names.empty() ? "" : ", ") + n;
  fail("[chat] template expected one of ", names, ", got '", name, "'");
}

std::optional<ChatTemplate> recognize_chat_template(const std::string& j) {
  auto has = [&](const char* s) { return j.find(s) != std::string::npos; };
  if (j.empty()) return std::nullopt;
  if (has("<|im_start|>")) {
    if (has("Knowledge Cutoff Date")) return chat_template_by_name("smollm3");
    if (has("<think>") || has("reasoning_content")) return chat_template_by_name("qwen3");
    ChatTemplate t = chat_template_by_name("chatml");
    // Qwen2 / Qwen2.5 templates insert a system turn when the conversation has none.
    for (const char* prompt : {"You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
                               "You are a helpful assistant."}) {
      const std::string quoted = std::string("<|im_start|>system\\n") + prompt;
      if (j.find(quoted) != std::string::npos) {
        t.default_system = prompt;
        break;
      }
    }
    return t;
  }
  if (has("<|start_header_id|>")) {
    ChatTemplate t = chat_template_by_name("llama3");
    t.always_generation_prompt = !has("add_generation_prompt");
    return t;
  }
  // Mistral v0.1 / v0.2: "[INST] " + content + " [/INST]", the reply + EOS (v0.1: + ' ').
  if (has("[INST]") && !has("<<SYS>>") && has("' [/INST]'") && has("message['content'] + eos_token")) {
    ChatTemplate t = chat_template_by_name("mistral");
    t.space_after_eos = has("eos_token + ' '");
    return t;
  }
  if (has("[INST]")) return chat_template_by_name("llama2");
  if (has("<start_of_turn>")) return chat_template_by_name("gemma");
  if (has("'<|' + message['role'] + '|>'") && has("<|end|>")) return chat_template_by_name("phi4");
  if (has("<|assistant|>") && has("<|end|>")) {
    ChatTemplate t = chat_template_by_name("phi3");
    t.phi3_header_after_user = !has("add_generation_prompt");
    return t;
  }
  if (has("### Instruction")) return chat_template_by_name("alpaca");
  return std::nullopt;
}

ChatTemplate chat_template_for(const Tokenizer& tok) {
  if (auto t = recognize_chat_template(tok.chat_template)) return *t;
  if (tok.piece_to_id("<|im_start|>")) return chat_template_by_name("chatml");
  if (tok.piece_to_id("<|start_header_id|>")) return chat_template_by_name("llama3");
  if (tok.piece_to_id("[INST]")) return chat_template_by_name("llama2");
  if (tok.piece_to_id("<start_of_turn>")) return chat_template_by_name("gemma");
  if (tok.piece_to_id("<|assistant|>") && tok.piece_to_id("<|end|>")) return chat_template_by_name("phi3");
  return chat_template_by_name("raw");
}

RenderedChat render_chat(const ChatTemplate& t, const std::vector<ChatMessage>& messages, bool gen,
                         const std::string& bos, const std::string& eos) {
  check_roles(messages);
  Writer w;
  switch (t.format) {
    case ChatFormat::ChatML: render_chatml(w, t, messages, gen); break;
    case ChatFormat::Qwen3: render_qwen3(w, t, messages, gen); break;
    case ChatFormat::SmolLM3: render_smollm3(w, t, messages, gen); break;
    case ChatFormat::Llama3: render_llama3(w, t, messages, gen, bos); break;
    case ChatFormat::Llama2: render_llama2(w, messages, bos, eos); break;
    case ChatFormat::Mistral: render_mistral(w, t, messages, bos, eos); break;
    case ChatFormat::Gemma: render_gemma(w, messages, gen, bos); break;
    case ChatFormat::Phi3: render_phi3(w, t, messages, gen, bos, eos); break;
    case ChatFormat::Phi4: render_phi4(w, messages, gen, eos); break;
    case ChatFormat::Alpaca: render_alpaca(w, messages, gen, eos); break;
    case ChatFormat::Raw: render_raw(w, messages); break;
  }
  return w.out;
}

ChatEncoding encode_chat(const Tokenizer& tok, const ChatTemplate& t, const std::vector<ChatMessage>& messages,
                         bool gen) {
  const std::string bos = tok.bos_id ? tok.id_to_piece(*tok.bos_id) : "";
  const std::string eos = tok.eos_id ? tok.id_to_piece(*tok.eos_id) : "";
  RenderedChat r = render_chat(t, messages, gen, bos, eos);
  Encoding e = tok.encode(r.text, /*add_special=*/false);
  ChatEncoding out;
  out.ids = std::move(e.ids);
  out.mask.resize(out.ids.size(), 0);
  // A token is trained when its bytes overlap an assistant span: SentencePiece attaches the
  // space before a reply to the reply's first word ("[/INST] Hi" -> "▁Hi"), which must count.
  const size_t n = out.ids.size();
  std::vector<size_t> ends(n, r.text.size());
  for (size_t i = n; i-- > 0;) {
    if (i + 1 < n) ends[i] = e.offsets[i + 1] > e.offsets[i] ? e.offsets[i + 1] : ends[i + 1];
  }
  size_t span = 0;
  for (size_t i = 0; i < n; ++i) {
    const size_t begin = e.offsets[i], end = std::max<size_t>(ends[i], begin + 1);
    while (span < r.assistant_spans.size() && r.assistant_spans[span].second <= begin) ++span;
    out.mask[i] = span < r.assistant_spans.size() && end > r.assistant_spans[span].first ? 1 : 0;
  }
  out.text = std::move(r.text);
  return out;
}

}  // namespace taia
