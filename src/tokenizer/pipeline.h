// The configurable tokenizer pipeline behind tokenizer.json and GGUF vocabularies.
#pragma once
#include <map>
#include <memory>
#include <unordered_map>
#include <unordered_set>

#include "tokenizer/bpe.h"
#include "tokenizer/regex.h"
#include "tokenizer/spm.h"
#include "tokenizer/tokenizer.h"

namespace taia {

struct NormalizerStep {
  enum class Kind { Nfc, Prepend, Replace };
  Kind kind;
  std::string a, b;  // Prepend: a = prefix; Replace: a -> b
};

struct PreTokenizerStep {
  enum class Kind { Split, ByteLevel, Metaspace };
  enum class Behavior { Isolated, Removed, MergedWithPrevious, MergedWithNext };
  enum class Prepend { Always, First, Never };
  Kind kind;
  std::shared_ptr<Regex> regex;  // Split; ByteLevel with use_regex
  Behavior behavior = Behavior::Isolated;
  bool invert = false;
  bool add_prefix_space = false;  // ByteLevel
  std::string replacement;        // Metaspace
  Prepend prepend = Prepend::Always;
  bool split = true;              // Metaspace
};

struct DecoderStep {
  enum class Kind { ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace };
  Kind kind;
  std::string a, b;  // Replace: a -> b; Strip: a = content; Metaspace: a = replacement
  int start = 0, stop = 0;  // Strip
  bool prepend = true;      // Metaspace: strip the leading space of the first token
};

class PipelineTokenizer : public Tokenizer {
 public:
  // Vocabulary as id -> piece (ids must be dense 0..n-1 with the added tokens included).
  std::vector<std::string> pieces;
  std::unordered_map<std::string, int32_t> piece_ids;
  std::vector<AddedToken> added;
  std::vector<NormalizerStep> normalizers;
  std::vector<PreTokenizerStep> pre_tokenizers;
  bool byte_level = false;  // the model sees byte-level characters (GPT-2 alphabet)
  std::unique_ptr<BpeModel> bpe;
  std::unique_ptr<SpmModel> spm;
  std::vector<DecoderStep> decoders;
  std::vector<int32_t> prefix_ids, suffix_ids;  // post-processor, added when add_special
  // Ids besides the special added tokens that decode to nothing under skip_special: a GGUF
  // vocabulary's UNKNOWN-typed pieces (<unk>, the converter's [PADn]), as llama.cpp's
  // token_to_piece hides them.
  std::unordered_set<int32_t> hidden_when_skipping_special;

  // Call after filling the fields: indexes the added tokens.
  void finalize();

  Encoding encode(std::string_view text, bool add_special = true) const override;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const override;
  std::string id_to_piece(int32_t id) const override;
  std::optional<int32_t> piece_to_id(std::string_view piece) const override;
  int64_t vocab_size() const override { return int64_t(pieces.size()); }
  bool is_special(int32_t id) const override;

 private:
  struct Piece;  // a span of text with the input offset of each byte
  // The pipeline's steps, one function per step kind (HF tokenizers' structure).
  void encode_text(std::string_view text, uint32_t base, std::vector<int32_t>& ids,
                   std::vector<uint32_t>& offsets) const;
  static void normalize(const NormalizerStep& n, Piece& whole);
  static void pre_tokenize(const PreTokenizerStep& step, Piece& p, std::vector<Piece>& next);
  static void metaspace(const PreTokenizerStep& step, Piece& p, std::vector<Piece>& next);
  static void split_by_regex(const PreTokenizerStep& step, const Piece& p, std::vector<Piece>& next);
  void encode_piece(const Piece& p, std::vector<int32_t>& ids, std::vector<uint32_t>& offsets) const;
  static void decode_step(const DecoderStep& d, std::vector<std::string>& tokens);
  std::map<char, std::vector<size_t>> added_by_first_byte_;  // indices into `added`, longest first
  std::unordered_map<int32_t, size_t> added_by_id_;
};

}  // namespace taia
