// tokenizer.json (HF tokenizers) -> PipelineTokenizer.
#include <set>

#include "core/error.h"
#include "core/mmap_file.h"
#include "core/json_util.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/pipeline.h"

namespace taia {
namespace {

// GPT-2's pre-tokenizer pattern (ByteLevel with use_regex).
const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::string pattern_of(const Json& p, const std::string& where) {
  TAIA_CHECK(p.is_object(), where, ": pattern expected {\"String\": ...} or {\"Regex\": ...}");
  if (p.contains("Regex") && p["Regex"].is_string()) return p["Regex"].get<std::string>();
  if (p.contains("String") && p["String"].is_string()) {
    // A literal: escape it for PCRE2 (\Q..\E cannot hold \E, so escape byte by byte).
    std::string lit = p["String"].get<std::string>(), out;
    for (char c : lit) {
      if (std::string("\\^$.|?*+()[]{}-/#").find(c) != std::string::npos) out.push_back('\\');
      out.push_back(c);
    }
    return out;
  }
  fail(where, ": pattern expected {\"String\": ...} or {\"Regex\": ...}, got ", p.dump());
}

std::string literal_of(const Json& p, const std::string& where) {
  TAIA_CHECK(p.is_object() && p.contains("String") && p["String"].is_string(), where,
             ": only literal {\"String\": ...} patterns are supported here, got ", p.dump());
  return p["String"].get<std::string>();
}

void add_normalizer(PipelineTokenizer& t, const Json& n, const std::string& where) {
  if (n.is_null()) return;
  const std::string type = json_string_or(n, "type", "", where);
  if (type == "Sequence") {
    for (const Json& s : n.at("normalizers")) add_normalizer(t, s, where);
  } else if (type == "NFC") {
    t.normalizers.push_back({NormalizerStep::Kind::Nfc, "", ""});
  } else if (type == "Prepend") {
    t.normalizers.push_back({NormalizerStep::Kind::Prepend, json_string_or(n, "prepend", "", where), ""});
  } else if (type == "Replace") {
    t.normalizers.push_back(
        {NormalizerStep::Kind::Replace, literal_of(n.at("pattern"), where), json_string_or(n, "content", "", where)});
  } else {
    fail(where, ": normalizer type '", type, "' is not supported (supported: NFC, Prepend, Replace, Sequence)");
  }
}

PreTokenizerStep::Prepend prepend_scheme(const Json& p, const std::string& where) {
  const std::string s = json_string_or(p, "prepend_scheme", "", where);
  if (s == "first") return PreTokenizerStep::Prepend::First;
  if (s == "never") return PreTokenizerStep::Prepend::Never;
  if (s == "always" || s.empty()) {
    if (s.empty() && p.contains("add_prefix_space") && !json_bool_or(p, "add_prefix_space", true, where))
      return PreTokenizerStep::Prepend::Never;
    return PreTokenizerStep::Prepend::Always;
  }
  fail(where, ": prepend_scheme expected always, first or never, got '", s, "'");
}

void add_pre_tokenizer(PipelineTokenizer& t, const Json& p, const std::string& where) {
  if (p.is_null()) return;
  const std::string type = json_string_or(p, "type", "", where);
  PreTokenizerStep step{};
  if (type == "Sequence") {
    for (const Json& s : p.at("pretokenizers")) add_pre_tokenizer(t, s, where);
    return;
  } else if (type == "Split") {
    step.kind = PreTokenizerStep::Kind::Split;
    step.regex = std::make_shared<Regex>(pattern_of(p.at("pattern"), where), where);
    const std::string b = json_string_or(p, "behavior", "Isolated", where);
    using B = PreTokenizerStep::Behavior;
    if (b == "Isolated") step.behavior = B::Isolated;
    else if (b == "Removed") step.behavior = B::Removed;
    else if (b == "MergedWithPrevious") step.behavior = B::MergedWithPrevious;
    else if (b == "MergedWithNext") step.behavior = B::MergedWithNext;
    else fail(where, ": Split behavior '", b, "' is not supported");
    step.invert = json_bool_or(p, "invert", false, where);
  } else if (type == "ByteLevel") {
    step.kind = PreTokenizerStep::Kind::ByteLevel;
    step.add_prefix_space = json_bool_or(p, "add_prefix_space", true, where);
    if (json_bool_or(p, "use_regex", true, where)) step.regex = std::make_shared<Regex>(kGpt2Pattern, where);
    t.byte_level = true;
  } else if (type == "Metaspace") {
    step.kind = PreTokenizerStep::Kind::Metaspace;
    step.replacement = json_string_or(p, "replacement", "\xe2\x96\x81", where);
    step.prepend = prepend_scheme(p, where);
    step.split = json_bool_or(p, "split", true, where);
  } else {
    fail(where, ": pre_tokenizer type '", type, "' is not supported (supported: Split, ByteLevel, Metaspace, Sequence)");
  }
  t.pre_tokenizers.push_back(std::move(step));
}

void add_decoder(PipelineTokenizer& t, const Json& d, const std::string& where) {
  if (d.is_null()) return;
  const std::string type = json_string_or(d, "type", "", where);
  DecoderStep step{};
  if (type == "Sequence") {
    for (const Json& s : d.at("decoders")) add_decoder(t, s, where);
    return;
  } else if (type == "ByteLevel") {
    step.kind = DecoderStep::Kind::ByteLevel;
  } else if (type == "Replace") {
    step.kind = DecoderStep::Kind::Replace;
    step.a = literal_of(d.at("pattern"), where);
    step.b = json_string_or(d, "content", "", where);
  } else if (type == "ByteFallback") {
    step.kind = DecoderStep::Kind::ByteFallback;
  } else if (type == "Fuse") {
    step.kind = DecoderStep::Kind::Fuse;
  } else if (type == "Strip") {
    step.kind = DecoderStep::Kind::Strip;
    step.a = json_string_or(d, "content", " ", where);
    step.start = int(json_int_or(d, "start", 0, where));
    step.stop = int(json_int_or(d, "stop", 0, where));
  } else if (type == "Metaspace") {
    step.kind = DecoderStep::Kind::Metaspace;
    step.a = json_string_or(d, "replacement", "\xe2\x96\x81", where);
    step.prepend = prepend_scheme(d, where) != PreTokenizerStep::Prepend::Never;
  } else {
    fail(where, ": decoder type '", type, "' is not supported");
  }
  t.decoders.push_back(std::move(step));
}

void add_post_processor(PipelineTokenizer& t, const Json& p, const std::string& where) {
  if (p.is_null()) return;
  const std::string type = json_string_or(p, "type", "", where);
  if (type == "Sequence") {
    for (const Json& s : p.at("processors")) add_post_processor(t, s, where);
  } else if (type == "ByteLevel") {
    // Only adjusts offsets in HF; ids are unchanged.
  } else if (type == "TemplateProcessing") {
    const Json& specials = p.value("special_tokens", Json::object());
    bool seen_sequence = false;
    for (const Json& item : p.at("single")) {
      if (item.contains("Sequence")) {
        seen_sequence = true;
        continue;
      }
      TAIA_CHECK(item.contains("SpecialToken"), where, ": TemplateProcessing item expected SpecialToken or Sequence");
      const std::string name = item["SpecialToken"].value("id", "");
      TAIA_CHECK(specials.contains(name) && specials[name].contains("ids"), where, ": TemplateProcessing names '", name,
                 "' without an entry in special_tokens");
      for (const Json& id : specials[name]["ids"]) (seen_sequence ? t.suffix_ids : t.prefix_ids).push_back(id.get<int32_t>());
    }
  } else {
    fail(where, ": post_processor type '", type, "' is not supported (supported: TemplateProcessing, ByteLevel, Sequence)");
  }
}

// model.vocab: piece -> id, one piece per id. Raises max_id to the largest id.
std::unordered_map<std::string, int32_t> read_vocab(const Json& m, const std::string& path, int64_t& max_id) {
  TAIA_CHECK(m.contains("vocab") && m["vocab"].is_object(), path, ": model.vocab expected an object");
  std::unordered_map<std::string, int32_t> vocab;
  std::unordered_map<int32_t, std::string> piece_of;  // one piece per id: decoding needs it
  for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
    TAIA_CHECK(it.value().is_number_integer(), path, ": model.vocab['", it.key(), "'] expected an integer id");
    const int64_t id = it.value().get<int64_t>();
    TAIA_CHECK(id >= 0 && id < (int64_t(1) << 24), path, ": model.vocab['", it.key(), "'] id ", id, " is out of range");
    const auto [seen, fresh] = piece_of.emplace(int32_t(id), it.key());
    TAIA_CHECK(fresh, path, ": model.vocab maps both '", seen->second, "' and '", it.key(), "' to id ", id,
               " (expected one piece per id)");
    vocab[it.key()] = int32_t(id);
    max_id = std::max(max_id, id);
  }
  return vocab;
}

// model.merges: "a b" strings or ["a", "b"] pairs, in rank order.
std::vector<std::pair<std::string, std::string>> read_merges(const Json& m, const std::string& path) {
  std::vector<std::pair<std::string, std::string>> merges;
  if (!m.contains("merges")) return merges;
  TAIA_CHECK(m["merges"].is_array(), path, ": model.merges expected an array");
  merges.reserve(m["merges"].size());
  size_t k = 0;
  for (const Json& mg : m["merges"]) {
    if (mg.is_string()) {
      const std::string s = mg.get<std::string>();
      const size_t sp = s.find(' ', 1);
      TAIA_CHECK(sp != std::string::npos, path, ": merge ", k, " '", s, "' expected two pieces separated by a space");
      merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else {
      TAIA_CHECK(mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string(), path, ": merge ", k,
                 " expected \"a b\" or [\"a\", \"b\"]");
      merges.emplace_back(mg[0].get<std::string>(), mg[1].get<std::string>());
    }
    ++k;
  }
  return merges;
}

// added_tokens into t.added. Raises max_id to the largest id.
void read_added_tokens(const Json& j, const std::string& path, PipelineTokenizer& t, int64_t& max_id) {
  if (!j.contains("added_tokens")) return;
  TAIA_CHECK(j["added_tokens"].is_array(), path, ": added_tokens expected an array");
  for (const Json& a : j["added_tokens"]) {
    AddedToken at;
    at.id = int32_t(json_int(a, "id", path + ": added_tokens"));
    at.content = json_string_or(a, "content", "", path);
    TAIA_CHECK(!at.content.empty() && at.id >= 0 && at.id < (1 << 24), path, ": added token ", a.dump(),
               " expected non-empty content and an id in range");
    at.special = json_bool_or(a, "special", false, path);
    at.lstrip = json_bool_or(a, "lstrip", false, path);
    at.rstrip = json_bool_or(a, "rstrip", false, path);
    at.single_word = json_bool_or(a, "single_word", false, path);
    at.normalized = json_bool_or(a, "normalized", false, path);
    t.added.push_back(at);
    max_id = std::max<int64_t>(max_id, at.id);
  }
}

BpeOptions read_bpe_options(const Json& m, const std::unordered_map<std::string, int32_t>& vocab,
                            const std::string& path) {
  BpeOptions options;
  options.byte_fallback = json_bool_or(m, "byte_fallback", false, path);
  options.ignore_merges = json_bool_or(m, "ignore_merges", false, path);
  options.fuse_unk = json_bool_or(m, "fuse_unk", false, path);
  const std::string unk = json_string_or(m, "unk_token", "", path);
  if (!unk.empty()) {
    auto it = vocab.find(unk);
    TAIA_CHECK(it != vocab.end(), path, ": unk_token '", unk, "' is not in the vocabulary");
    options.unk_id = it->second;
  }
  return options;
}

// tokenizer.json's parts in HF's order: model (BPE vocabulary and merges), added tokens,
// normalizer, pre-tokenizer, decoder, post-processor.
std::unique_ptr<Tokenizer> load_unchecked(const std::string& path) {
  Json j = parse_json_file(path);
  TAIA_CHECK(j.is_object(), path, ": expected a JSON object");
  auto t = std::make_unique<PipelineTokenizer>();
  t->kind = "tokenizer.json";
  t->source = path;
  TAIA_CHECK(j.contains("model") && j["model"].is_object(), path, ": missing 'model' object");
  const Json& m = j["model"];
  const std::string model_type = json_string_or(m, "type", "BPE", path);
  TAIA_CHECK(model_type == "BPE", path, ": model type expected BPE, got '", model_type,
             "' (WordPiece, Unigram and WordLevel are not supported)");
  for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"})
    TAIA_CHECK(json_string_or(m, affix, "", path).empty(), path, ": BPE ", affix, " is not supported");
  int64_t max_id = -1;
  std::unordered_map<std::string, int32_t> vocab = read_vocab(m, path, max_id);
  const auto merges = read_merges(m, path);
  read_added_tokens(j, path, *t, max_id);
  t->pieces.assign(size_t(max_id + 1), "");
  for (const auto& [piece, id] : vocab) t->pieces[size_t(id)] = piece;
  for (const AddedToken& a : t->added) t->pieces[size_t(a.id)] = a.content;
  for (size_t i = 0; i < t->pieces.size(); ++i) t->piece_ids.emplace(t->pieces[i], int32_t(i));
  const BpeOptions options = read_bpe_options(m, vocab, path);
  add_normalizer(*t, j.value("normalizer", Json()), path + ": normalizer");
  add_pre_tokenizer(*t, j.value("pre_tokenizer", Json()), path + ": pre_tokenizer");
  add_decoder(*t, j.value("decoder", Json()), path + ": decoder");
  add_post_processor(*t, j.value("post_processor", Json()), path + ": post_processor");
  t->bpe = std::make_unique<BpeModel>(std::move(vocab), merges, options, path);
  t->finalize();
  return t;
}

}  // namespace

std::unique_ptr<Tokenizer> load_hf_tokenizer_json(const std::string& path) {
  try {
    return load_unchecked(path);
  } catch (const Json::exception& e) {
    // A field of the wrong JSON type deep inside a component; nlohmann's message says which.
    fail(path, ": unexpected structure: ", e.what());
  }
}

}  // namespace taia
