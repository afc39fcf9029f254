#include "generate/generate.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"

namespace taia {

std::vector<int64_t> stop_token_ids(const ModelConfig& config, const Tokenizer* tok, bool chat) {
  std::vector<int64_t> ids = config.eos_token_ids;
  if (tok && tok->eos_id) ids.push_back(*tok->eos_id);
  if (tok && chat) ids.insert(ids.end(), tok->extra_eos_ids.begin(), tok->extra_eos_ids.end());
  return ids;
}

GenerateResult generate(Decoder& decoder, const std::vector<int32_t>& prompt_ids, const GenerateOptions& options) {
  const ModelConfig& c = decoder.model().config;
  TAIA_CHECK(!prompt_ids.empty(), "[generate] expected a non-empty prompt");
  TAIA_CHECK(options.max_new_tokens >= 0, "[generate] max_new_tokens expected >= 0, got ", options.max_new_tokens);
  const int64_t total = int64_t(prompt_ids.size()) + options.max_new_tokens;
  TAIA_CHECK(total <= c.max_position_embeddings, "[generate] prompt (", prompt_ids.size(), ") + new tokens (",
             options.max_new_tokens, ") expected at most max_position_embeddings = ", c.max_position_embeddings);
  const std::vector<int64_t>& eos = options.eos_ids.empty() ? c.eos_token_ids : options.eos_ids;

  GenerateResult result;
  if (options.max_new_tokens == 0) return result;
  KVCache cache(c, total, kGenerateRowsPerCall, decoder.kv_dtype());  // windowed layers keep rings of their windows
  result.kv_cache_bytes = cache.bytes();
  Sampler sampler(options.sampling);
  std::vector<float> logits(size_t(c.vocab_size));
  std::vector<int32_t> history = prompt_ids;
  const int64_t sampled_vocab = options.vocab_limit > 0 ? std::min(c.vocab_size, options.vocab_limit) : c.vocab_size;

  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  decoder.forward(cache, prompt_ids.data(), int64_t(prompt_ids.size()), logits.data(), false);
  auto t1 = clock::now();
  result.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    const int32_t next = sampler.sample(logits.data(), sampled_vocab, history);
    result.output_ids.push_back(next);
    history.push_back(next);
    const bool keep_going = !options.on_token || options.on_token(next);
    if (options.stop_at_eos && std::find(eos.begin(), eos.end(), next) != eos.end()) {
      result.stopped_at_eos = true;
      break;
    }
    if (!keep_going || step + 1 == options.max_new_tokens) break;
    decoder.forward(cache, &next, 1, logits.data(), false);
  }
  result.decode_seconds = std::chrono::duration<double>(clock::now() - t1).count();
  return result;
}

}  // namespace taia
