// taia tokenize: JSON Lines in ({"text": ...} or, with --decode, {"ids": [...]}), one JSON
// line out per input with ids and tokens (or text).
#include <iostream>

#include "common.h"
#include "core/error.h"
#include "model/tokenizer_loader.h"
#include "tokenizer/chat_template.h"

namespace taia::cli {
namespace {

struct TokenizeArgs {
  std::string tokenizer, chat_template;
  bool no_special = false, decode = false, skip_special = false, chat = false;
};

std::vector<ChatMessage> parse_messages(const Json& in, const std::string& where) {
  TAIA_CHECK(in.is_object() && in.contains("messages") && in["messages"].is_array(), where,
             ": expected an object with a 'messages' array");
  std::vector<ChatMessage> messages;
  for (const Json& m : in["messages"]) {
    TAIA_CHECK(m.is_object() && m.contains("role") && m["role"].is_string() && m.contains("content") &&
                   m["content"].is_string(),
               where, ": each message expected {\"role\": string, \"content\": string}");
    messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  return messages;
}

void run_tokenize(const TokenizeArgs& a) {
  auto tok = load_tokenizer(a.tokenizer);
  const ChatTemplate chat_template =
      a.chat_template.empty() ? chat_template_for(*tok) : chat_template_by_name(a.chat_template);
  std::string line;
  int64_t line_no = 0;
  while (std::getline(std::cin, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = "stdin:" + std::to_string(line_no);
    Json in = parse_json_text(line, where);
    Json out;
    if (a.chat) {
      ChatTemplate t = chat_template;
      if (in.is_object() && in.contains("enable_thinking"))
        t.enable_thinking = json_bool_or(in, "enable_thinking", true, where);
      const ChatEncoding c = encode_chat(*tok, t, parse_messages(in, where),
                                         in.is_object() && in.value("add_generation_prompt", false));
      out["ids"] = c.ids;
      out["mask"] = c.mask;
      out["text"] = c.text;
      out["template"] = chat_template.name;
    } else if (a.decode) {
      TAIA_CHECK(in.is_object() && in.contains("ids") && in["ids"].is_array(), where,
                 ": expected an object with an 'ids' array");
      std::vector<int32_t> ids;
      for (const Json& v : in["ids"]) {
        TAIA_CHECK(v.is_number_integer(), where, ": 'ids' expected integers, got ", v.dump());
        ids.push_back(v.get<int32_t>());
      }
      out["ids"] = ids;
      out["text"] = tok->decode(ids, a.skip_special);
    } else {
      TAIA_CHECK(in.is_object() && in.contains("text") && in["text"].is_string(), where,
                 ": expected an object with a 'text' string");
      const Encoding e = tok->encode(in["text"].get<std::string>(), !a.no_special);
      out["ids"] = e.ids;
      std::vector<std::string> pieces;
      for (int32_t id : e.ids) pieces.push_back(tok->id_to_piece(id));
      out["tokens"] = pieces;
    }
    // Pieces and decoded text may hold invalid UTF-8 (byte tokens): keep it visible, not fatal.
    std::cout << out.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
  }
  std::cout.flush();
}

}  // namespace

void register_tokenize(CLI::App& app) {
  auto args = std::make_shared<TokenizeArgs>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Encode JSON Lines {\"text\": ...} from stdin (or decode {\"ids\": [...]})");
  cmd->add_option("--tokenizer", args->tokenizer, "tokenizer.json, SentencePiece .model, GGUF file or model folder")
      ->required();
  cmd->add_flag("--no-special", args->no_special, "Add no BOS/EOS tokens");
  cmd->add_flag("--decode", args->decode, "Decode {\"ids\": [...]} lines to text");
  cmd->add_flag("--skip-special", args->skip_special, "With --decode: leave special tokens out of the text");
  cmd->add_flag("--chat", args->chat,
                "Render {\"messages\": [{\"role\", \"content\"}...], \"add_generation_prompt\": bool, "
                "\"enable_thinking\": bool (Qwen3, optional)} with the chat template; output ids, mask (1 = assistant "
                "token) and text");
  add_chat_template_option(cmd, &args->chat_template);
  cmd->callback([args] { run_tokenize(*args); });
}

}  // namespace taia::cli
