#include "model/tokenizer_loader.h"

#include <cstring>

#include "core/error.h"
#include "core/mmap_file.h"
#include "core/threading.h"
#include "tokenizer/pipeline.h"
#include "io/gguf_keys.h"

namespace taia {
namespace {

// Pre-tokenizer patterns by tokenizer.ggml.pre, as llama.cpp names them.
const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

const GgufValue& array_of(const GgufFile& g, const std::string& key, GgufType elem) {
  const GgufValue* v = g.find(key);
  TAIA_CHECK(v != nullptr, g.path(), ": missing metadata key '", key, "'");
  TAIA_CHECK(v->type == GgufType::ARRAY && (v->arr.empty() || v->elem_type == elem), g.path(), ": metadata '", key,
             "' expected an array of ", gguf_type_name(elem));
  return *v;
}

bool get_bool_or(const GgufFile& g, const std::string& key, bool fallback) {
  const GgufValue* v = g.find(key);
  return v && v->type == GgufType::BOOL ? v->u != 0 : fallback;
}

std::optional<int32_t> id_or_none(const GgufFile& g, const std::string& key, size_t n_vocab) {
  const GgufValue* v = g.find(key);
  if (!v || !v->is_integer()) return std::nullopt;
  const int64_t id = v->as_int();
  if (id < 0 || size_t(id) >= n_vocab) return std::nullopt;  // e.g. 0xFFFFFFFF for "none"
  return int32_t(id);
}

// tokenizer.ggml.tokens and token_type; control and user-defined tokens become added tokens
// (matched whole in the text, before the model runs), unknown-typed pieces decode to nothing
// under skip_special (llama.cpp's token_to_piece). Returns the types.
std::vector<int32_t> read_pieces(const GgufFile& g, PipelineTokenizer& t) {
  const GgufValue& tokens = array_of(g, gguf_key(GgufKey::TokenizerTokens), GgufType::STRING);
  t.pieces.reserve(tokens.arr.size());
  for (const GgufValue& v : tokens.arr) t.pieces.push_back(v.s);
  const size_t n = t.pieces.size();
  TAIA_CHECK(n > 0, g.path(), ": tokenizer.ggml.tokens is empty");
  std::vector<int32_t> types(n, int32_t(PieceType::Normal));
  if (g.find(gguf_key(GgufKey::TokenizerTokenType))) {
    const GgufValue& tt = array_of(g, gguf_key(GgufKey::TokenizerTokenType), GgufType::INT32);
    TAIA_CHECK(tt.arr.size() == n, g.path(), ": tokenizer.ggml.token_type has ", tt.arr.size(), " entries, expected ", n);
    for (size_t i = 0; i < n; ++i) types[i] = int32_t(tt.arr[i].as_int());
  }
  t.piece_ids.reserve(n);  // one table size: no rehashing of 150K+ pieces
  for (size_t i = 0; i < n; ++i) t.piece_ids.emplace(t.pieces[i], int32_t(i));
  for (size_t i = 0; i < n; ++i) {
    const auto type = PieceType(types[i]);
    if (type == PieceType::Unknown) t.hidden_when_skipping_special.insert(int32_t(i));
    if ((type == PieceType::Control || type == PieceType::UserDefined) && !t.pieces[i].empty()) {
      AddedToken a;
      a.id = int32_t(i);
      a.content = t.pieces[i];
      a.special = type == PieceType::Control;
      t.added.push_back(a);
    }
  }
  return types;
}

// tokenizer.ggml.model "llama": SentencePiece over scores, U+2581 for spaces (llama.cpp's SPM vocab).
void set_up_llama(const GgufFile& g, PipelineTokenizer& t, const std::vector<int32_t>& types,
                  std::optional<int32_t> unk) {
  const size_t n = t.pieces.size();
  t.kind = "gguf-llama";
  std::vector<float> scores(n, 0.0f);
  if (g.find(gguf_key(GgufKey::TokenizerScores))) {
    const GgufValue& sc = array_of(g, gguf_key(GgufKey::TokenizerScores), GgufType::FLOAT32);
    TAIA_CHECK(sc.arr.size() == n, g.path(), ": tokenizer.ggml.scores has ", sc.arr.size(), " entries, expected ", n);
    for (size_t i = 0; i < n; ++i) scores[i] = float(sc.arr[i].f);
  }
  t.spm = std::make_unique<SpmModel>(t.pieces, scores, types, unk, g.path());
  const std::string space = "\xe2\x96\x81";  // U+2581
  if (get_bool_or(g, gguf_key(GgufKey::TokenizerAddSpacePrefix), true))
    t.normalizers.push_back({NormalizerStep::Kind::Prepend, space, ""});
  t.normalizers.push_back({NormalizerStep::Kind::Replace, " ", space});
  t.decoders.push_back({DecoderStep::Kind::Replace, space, " "});
  t.decoders.push_back({DecoderStep::Kind::ByteFallback, "", ""});
  t.decoders.push_back({DecoderStep::Kind::Fuse, "", ""});
  DecoderStep strip{DecoderStep::Kind::Strip, " ", ""};
  strip.start = 1;
  t.decoders.push_back(strip);
  if (get_bool_or(g, gguf_key(GgufKey::TokenizerAddBos), true) && t.bos_id) t.prefix_ids.push_back(*t.bos_id);
}

// tokenizer.ggml.pre's split pattern (llama.cpp's pre-tokenizer names).
const char* gpt2_split_pattern(const GgufFile& g) {
  const GgufValue* pre = g.find(gguf_key(GgufKey::TokenizerPre));
  const std::string pre_name = pre && pre->type == GgufType::STRING ? pre->s : "default";
  if (pre_name == "llama-bpe" || pre_name == "llama3" || pre_name == "llama-v3") return kLlama3Pattern;
  if (pre_name == "qwen2") return kQwen2Pattern;
  TAIA_CHECK(pre_name == "gpt-2" || pre_name == "default", g.path(), ": tokenizer.ggml.pre '", pre_name,
             "' is not supported (supported: gpt-2, default, llama-bpe, qwen2)");
  return kGpt2Pattern;
}

// tokenizer.ggml.model "gpt2": byte-level BPE with the merges, split by the pre-tokenizer's pattern.
void set_up_gpt2(const GgufFile& g, PipelineTokenizer& t) {
  t.kind = "gguf-gpt2";
  std::vector<std::pair<std::string, std::string>> merges;
  const GgufValue& merge_list = array_of(g, gguf_key(GgufKey::TokenizerMerges), GgufType::STRING);
  merges.reserve(merge_list.arr.size());
  for (const GgufValue& m : merge_list.arr) {
    const size_t sp = m.s.find(' ', 1);
    TAIA_CHECK(sp != std::string::npos, g.path(), ": merge '", m.s, "' expected two pieces separated by a space");
    merges.emplace_back(m.s.substr(0, sp), m.s.substr(sp + 1));
  }
  std::unordered_map<std::string, int32_t> vocab(t.piece_ids.begin(), t.piece_ids.end());
  t.bpe = std::make_unique<BpeModel>(std::move(vocab), merges, BpeOptions{}, g.path());
  PreTokenizerStep split{};
  split.kind = PreTokenizerStep::Kind::Split;
  split.regex = std::make_shared<Regex>(gpt2_split_pattern(g), g.path());
  t.pre_tokenizers.push_back(split);
  t.byte_level = true;
  t.decoders.push_back({DecoderStep::Kind::ByteLevel, "", ""});
  if (get_bool_or(g, gguf_key(GgufKey::TokenizerAddBos), false) && t.bos_id) t.prefix_ids.push_back(*t.bos_id);
}

}  // namespace

std::unique_ptr<Tokenizer> tokenizer_from_gguf(const GgufFile& g) {
  const std::string model = g.get_string(gguf_key(GgufKey::TokenizerModel));
  auto t = std::make_unique<PipelineTokenizer>();
  t->source = g.path();
  const std::vector<int32_t> types = read_pieces(g, *t);
  const size_t n = t->pieces.size();
  t->bos_id = id_or_none(g, gguf_key(GgufKey::TokenizerBosId), n);
  t->eos_id = id_or_none(g, gguf_key(GgufKey::TokenizerEosId), n);
  const std::optional<int32_t> unk = id_or_none(g, gguf_key(GgufKey::TokenizerUnknownId), n);
  if (model == "llama")
    set_up_llama(g, *t, types, unk);
  else if (model == "gpt2")
    set_up_gpt2(g, *t);
  else
    fail(g.path(), ": tokenizer.ggml.model expected 'llama' or 'gpt2', got '", model, "'");
  if (const GgufValue* ct = g.find(gguf_key(GgufKey::TokenizerChatTemplate)); ct && ct->type == GgufType::STRING)
    t->chat_template = ct->s;
  t->finalize();
  find_reply_end_tokens(*t);
  return t;
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  if (!is_directory(path) && file_exists(path)) {
    bool gguf = false;
    {
      MappedFile f(path);
      gguf = f.size() >= 4 && std::memcmp(f.data(), "GGUF", 4) == 0;
    }
    if (gguf) {
      auto t = tokenizer_from_gguf(GgufFile(path));
      return_free_heap();  // the parsed metadata is gone
      return t;
    }
  }
  return load_tokenizer_file(path);
}

}  // namespace taia
