// HF tokenizers' tokenizer.json (model BPE; normalizers NFC/Prepend/Replace; pre-tokenizers
// Split/ByteLevel/Metaspace; decoders ByteLevel/Replace/ByteFallback/Fuse/Strip/Metaspace;
// post-processor TemplateProcessing/ByteLevel). Anything else is refused with its name.
#pragma once
#include <memory>
#include <string>

#include "tokenizer/tokenizer.h"

namespace taia {

std::unique_ptr<Tokenizer> load_hf_tokenizer_json(const std::string& path);

}  // namespace taia
