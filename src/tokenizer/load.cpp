#include <sys/stat.h>

#include "core/error.h"
#include "core/mmap_file.h"
#include "core/json_util.h"
#include "core/strings.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/sentencepiece_model.h"
#include "tokenizer/tokenizer.h"

namespace taia {
namespace {

std::string token_string(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

// tokenizer_config.json: bos/eos tokens, add_bos_token, and the chat template.
void apply_tokenizer_config(Tokenizer& t, const std::string& path) {
  if (!file_exists(path)) return;
  Json c = parse_json_file(path);
  TAIA_CHECK(c.is_object(), path, ": expected a JSON object");
  if (c.contains("bos_token"))
    if (auto id = t.piece_to_id(token_string(c["bos_token"]))) t.bos_id = id;
  if (c.contains("eos_token"))
    if (auto id = t.piece_to_id(token_string(c["eos_token"]))) t.eos_id = id;
  if (auto ct = c.find("chat_template"); ct != c.end()) {
    if (ct->is_string()) {
      t.chat_template = ct->get<std::string>();
    } else if (ct->is_array()) {  // [{"name": "default", "template": "..."}, ...]
      for (const Json& e : *ct)
        if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string())
          t.chat_template = e["template"].get<std::string>();
    }
  }
}

}  // namespace

void find_reply_end_tokens(Tokenizer& t) {
  for (const char* s : {"<|eot_id|>", "<|im_end|>", "<|end_of_text|>", "<|endoftext|>", "</s>", "<|end|>"})
    if (auto id = t.piece_to_id(s); id && (!t.eos_id || *id != *t.eos_id)) t.extra_eos_ids.push_back(*id);
}

std::unique_ptr<Tokenizer> load_tokenizer_file(const std::string& path) {
  std::string file = path, dir;
  if (is_directory(path)) {
    dir = path;
    if (file_exists(path + "/tokenizer.json"))
      file = path + "/tokenizer.json";
    else if (file_exists(path + "/tokenizer.model"))
      file = path + "/tokenizer.model";
    else
      fail(path, ": expected tokenizer.json or tokenizer.model in the folder");
  } else {
    TAIA_CHECK(file_exists(path), path, ": no such file or folder");
    dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
  }
  std::unique_ptr<Tokenizer> t;
  if (ends_with(file, ".json"))
    t = load_hf_tokenizer_json(file);
  else
    t = load_sentencepiece_model(file);
  apply_tokenizer_config(*t, dir + "/tokenizer_config.json");
  find_reply_end_tokens(*t);
  return t;
}

}  // namespace taia
