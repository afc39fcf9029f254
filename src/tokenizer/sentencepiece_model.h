// SentencePiece .model files (LLaMA 2, stories260K's tok512.model) through libsentencepiece.
#pragma once
#include <memory>
#include <string>

#include "tokenizer/tokenizer.h"

namespace taia {

std::unique_ptr<Tokenizer> load_sentencepiece_model(const std::string& path);

}  // namespace taia
