// Batched scoring on the decoder: log-likelihoods of continuations (the question's rows run
// once, every option attends to them), greedy generation of many prompts in one pass per step,
// and token log-probabilities of long text for perplexity. All use Decoder::forward_packed.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "model/decoder.h"

namespace taia {

// One example: a shared context and the continuations scored after it.
struct LoglikRequest {
  std::vector<int32_t> context;                     // >= 1 token
  std::vector<std::vector<int32_t>> continuations;  // each >= 1 token
};

struct LoglikResult {
  std::vector<double> logprob;  // [continuations] sum of log p(token | everything before)
  std::vector<bool> greedy;     // [continuations] every token was the argmax
};

// Called after each forward pass with the number of requests finished so far.
using ProgressFn = std::function<void(size_t)>;

// batch_size: examples per forward pass. Contexts too long for the model are cut on the left.
std::vector<LoglikResult> score_loglik(Decoder& decoder, const std::vector<LoglikRequest>& requests,
                                       int64_t batch_size, const ProgressFn& progress = {});

struct GenerationRequest {
  std::vector<int32_t> prompt;
};

struct GreedyOptions {
  int64_t max_new_tokens = 256;
  std::vector<int64_t> eos_ids;
  // Only ids below this are generated (0: the model's vocabulary): a model whose embedding
  // matrix is padded past its tokenizer (Qwen2.5: 151,936 rows, 151,665 tokens) can otherwise
  // pick a row no text belongs to.
  int64_t vocab_limit = 0;
  // Called after each new token with the request index and its output so far; true stops it.
  std::function<bool(size_t, const std::vector<int32_t>&)> stop;
  ProgressFn progress;  // after each batch of requests
};

// Greedy generation of every request, batch_size requests per pass; outputs exclude the prompt
// (an EOS that ended a reply is dropped).
std::vector<std::vector<int32_t>> generate_greedy(Decoder& decoder, const std::vector<GenerationRequest>& requests,
                                                  const GreedyOptions& options, int64_t batch_size);

// log p(ids[t] | ids[window start .. t-1]) for t = 1 .. n-1 (natural log): the inputs run in
// windows of `window` positions that do not overlap (the usual chunked perplexity), so every
// token but the first is predicted once, from at most `window` tokens of its own window.
std::vector<double> token_logprobs(Decoder& decoder, const std::vector<int32_t>& ids, int64_t window);
// llama.cpp's llama-perplexity windows: whole chunks of `window` tokens (a shorter rest is
// dropped), each chunk's first input replaced by BOS (bos >= 0), and only the second half of
// each chunk predicted (positions window / 2 .. window - 2 predict the next token), so every
// scored token has at least half a window of context.
std::vector<double> token_logprobs_llama_cpp(Decoder& decoder, const std::vector<int32_t>& ids, int64_t window,
                                             int32_t bos);

}  // namespace taia
