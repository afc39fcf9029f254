// The tokenizer of whatever the user points at: a GGUF file (the vocabulary it carries),
// a tokenizer.json, a SentencePiece .model, or a model folder holding one of these.
#pragma once
#include <memory>
#include <string>

#include "io/gguf.h"
#include "tokenizer/tokenizer.h"

namespace taia {

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);
// From the tokenizer.ggml.* metadata of an opened GGUF (models `llama` and `gpt2`).
std::unique_ptr<Tokenizer> tokenizer_from_gguf(const GgufFile& gguf);

}  // namespace taia
