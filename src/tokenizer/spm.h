// SentencePiece's BPE algorithm over a scored vocabulary (what a GGUF `llama` vocabulary
// holds): start from characters, repeatedly merge the adjacent pair whose concatenation is the
// highest-scoring piece (leftmost on ties), then map pieces missing from the vocabulary to
// <0xXX> byte tokens.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace taia {

// SentencePiece piece types, as GGUF's tokenizer.ggml.token_type stores them.
enum class PieceType : int32_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

class SpmModel {
 public:
  SpmModel(const std::vector<std::string>& pieces, const std::vector<float>& scores,
           const std::vector<int32_t>& types, std::optional<int32_t> unk_id, const std::string& origin);

  // `text` is already normalized (spaces as U+2581, prefix added). Appends ids and the number of
  // characters of `text` each covers.
  void encode(std::string_view text, std::vector<int32_t>& ids, std::vector<uint32_t>& chars) const;

 private:
  std::unordered_map<std::string, int32_t> mergeable_;  // normal and user-defined pieces
  std::vector<float> scores_;
  std::vector<int32_t> byte_ids_;
  std::optional<int32_t> unk_id_;
};

}  // namespace taia
