// Byte-pair encoding model as HF tokenizers' `BPE`: a vocabulary, ranked merges applied
// lowest rank first (leftmost first among equal ranks), optional byte fallback to <0xXX>
// tokens, unknown token, and `ignore_merges` (a word that is itself a token is kept whole).
#pragma once
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace taia {

struct BpeOptions {
  bool byte_fallback = false;
  bool ignore_merges = false;
  std::optional<int32_t> unk_id;
  bool fuse_unk = false;
};

class BpeModel {
 public:
  // vocab: piece -> id; merges in rank order (first = rank 0). A merge naming a piece that is
  // not in the vocabulary throws, naming `origin` and the merge index.
  BpeModel(std::unordered_map<std::string, int32_t> vocab, const std::vector<std::pair<std::string, std::string>>& merges,
           const BpeOptions& options, const std::string& origin);

  // Encodes one pre-tokenized word (already in the model's alphabet). For each token it appends
  // its id and the number of characters (code points) of `word` it covers.
  void encode_word(std::string_view word, std::vector<int32_t>& ids, std::vector<uint32_t>& chars) const;

  std::optional<int32_t> find(std::string_view piece) const;
  const std::unordered_map<std::string, int32_t>& vocab() const { return vocab_; }

 private:
  // A symbol of the word being merged: a vocabulary id in a linked list over the word.
  struct Symbol { int32_t id; int32_t prev, next; uint32_t chars; bool alive; };
  std::vector<Symbol> initial_symbols(std::string_view word) const;
  void apply_merges(std::vector<Symbol>& sym) const;
  bool cached(std::string_view word, std::vector<int32_t>& ids, std::vector<uint32_t>& chars) const;
  struct Merge { int32_t rank; int32_t id; };
  std::unordered_map<std::string, int32_t> vocab_;
  std::unordered_map<uint64_t, Merge> merges_;  // (left id << 32 | right id) -> rank, merged id
  std::vector<int32_t> byte_ids_;                // <0xXX> ids for byte fallback (-1 if absent)
  BpeOptions options_;
  // Words seen before -> their tokens; natural text repeats words constantly.
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::pair<std::vector<int32_t>, std::vector<uint32_t>>> cache_;
};

}  // namespace taia
