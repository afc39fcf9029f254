// Autoregressive generation with a KV cache: one batched prefill of the prompt, then one
// position at a time, stopping at an EOS id or after max_new_tokens.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "generate/sampling.h"
#include "model/decoder.h"
#include "tokenizer/tokenizer.h"

namespace taia {

struct GenerateOptions {
  int64_t max_new_tokens = 64;
  SamplingParams sampling;
  bool stop_at_eos = true;
  std::vector<int64_t> eos_ids;  // empty: the model's eos_token_ids
  // Only ids below this are sampled (0: the whole vocabulary): the tokenizer's size, where the
  // model's embedding rows are padded past it (Qwen2.5) and a padding row has no text.
  int64_t vocab_limit = 0;
  // Called with each new id as soon as it is chosen (streaming); return false to stop.
  std::function<bool(int32_t)> on_token;
};

struct GenerateResult {
  std::vector<int32_t> output_ids;  // generated ids only (an EOS that stopped the run included)
  bool stopped_at_eos = false;
  double prefill_seconds = 0, decode_seconds = 0;
  int64_t kv_cache_bytes = 0;  // keys and values held (windowed layers: rings of their windows)
};

// The ids that end a reply: the model's eos_token_ids, the tokenizer's EOS, and in a chat the
// tokenizer's end-of-turn ids (<|eot_id|>, <|im_end|>, ...). tok may be null (ids-only prompts).
std::vector<int64_t> stop_token_ids(const ModelConfig& config, const Tokenizer* tok, bool chat);

GenerateResult generate(Decoder& decoder, const std::vector<int32_t>& prompt_ids, const GenerateOptions& options);

}  // namespace taia
