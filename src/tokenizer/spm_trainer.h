// Training a SentencePiece model (libsentencepiece's own trainer) on sentences held in memory,
// for the tokenizers `taia demo` builds for its generated worlds.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace taia {

struct SpmTrainOptions {
  int64_t vocab_size = 1024;
  std::string model_type = "bpe";               // bpe | unigram | word | char
  std::vector<std::string> user_defined_symbols;  // kept whole, e.g. "<|im_start|>"
  bool byte_fallback = true;   // unseen characters become <0xNN> pieces, as LLaMA's tokenizer does
  bool split_digits = true;    // every digit its own piece (numbers read digit by digit)
  int threads = 1;             // one thread: the model is the same on every machine
};

// Trains on `sentences` and writes the .model file atomically to `path`. The normaliser is
// the identity with whitespace kept (as LLaMA's tokenizer.model), so decode(encode(s)) == s
// and chat templates keep their newlines. Throws naming `path` when libsentencepiece fails.
void train_sentencepiece(const std::vector<std::string>& sentences, const SpmTrainOptions& options,
                         const std::string& path);

}  // namespace taia
