// Tokenizers: text <-> token ids, exact against HF's implementations.
//
// One pipeline serves HF tokenizer.json (byte-level BPE as in LLaMA 3 / Qwen, SentencePiece-
// style BPE as in Mistral / LLaMA 2 HF folders) and GGUF vocabularies (`gpt2` merges, `llama`
// scores): added tokens are split out first, then normalizers, pre-tokenizers, the model
// (BPE or SentencePiece-BPE), and the post-processor's special tokens. SentencePiece .model
// files go through libsentencepiece (sentencepiece_model.h).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace taia {

struct Encoding {
  std::vector<int32_t> ids;
  std::vector<uint32_t> offsets;  // byte offset in the input where each token starts
};

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;
  bool lstrip = false, rstrip = false, single_word = false, normalized = false;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // add_special: the BOS/EOS tokens the tokenizer's post-processor adds (none if false).
  // Special-token strings in `text` are always recognised as those tokens.
  virtual Encoding encode(std::string_view text, bool add_special = true) const = 0;
  // Bytes exactly as the pieces spell them (invalid UTF-8 is kept, not replaced).
  virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const = 0;
  virtual std::string id_to_piece(int32_t id) const = 0;
  virtual std::optional<int32_t> piece_to_id(std::string_view piece) const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual bool is_special(int32_t id) const = 0;

  std::string kind;  // "tokenizer.json", "sentencepiece", "gguf-llama", "gguf-gpt2"
  std::string source;
  std::optional<int32_t> bos_id, eos_id;
  std::vector<int32_t> extra_eos_ids;  // e.g. <|eot_id|>, <|im_end|>: also end a reply
  std::string chat_template;           // the source's Jinja template text, if it has one
};

// Streams decoded text for generation: never emits half a UTF-8 character, and reproduces
// exactly the text decode() gives for all ids pushed so far.
class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special = false)
      : tokenizer_(tokenizer), skip_special_(skip_special) {}
  // Returns the new complete text that `id` makes available (possibly empty).
  std::string push(int32_t id);
  // What is still held back (an incomplete UTF-8 tail) at the end of generation.
  std::string flush();

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_;
  std::vector<int32_t> ids_;
  size_t emitted_ = 0;
};

// Loads a tokenizer from a tokenizer.json, a SentencePiece .model, or a model folder holding
// either (tokenizer_config.json beside it supplies bos/eos and the chat template). GGUF files
// are handled by load_tokenizer in model/ (it reads the vocabulary the GGUF carries).
std::unique_ptr<Tokenizer> load_tokenizer_file(const std::string& path);

// Adds the ids of well-known end-of-reply tokens the vocabulary has (<|eot_id|>, <|im_end|>,
// </s>, ...) to extra_eos_ids, so chat generation stops where the template ends a turn.
void find_reply_end_tokens(Tokenizer& tokenizer);

}  // namespace taia
