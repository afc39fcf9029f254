// Choosing the next token from logits: repetition penalty, temperature, top-k, top-p.
#pragma once
#include <cstdint>
#include <vector>

#include "core/rng.h"

namespace taia {

struct SamplingParams {
  float temperature = 0.0f;        // 0: greedy (argmax)
  int64_t top_k = 0;               // 0: no limit
  float top_p = 1.0f;              // 1: no nucleus cut
  float repetition_penalty = 1.0f; // HF semantics: logit > 0 ? logit / p : logit * p
  uint64_t seed = 0;

  void validate() const;  // throws for out-of-range values
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) { params_.validate(); }
  // logits[V] are modified in place. `history` holds the ids the penalty applies to.
  int32_t sample(float* logits, int64_t V, const std::vector<int32_t>& history);

 private:
  SamplingParams params_;
  Rng rng_;
  std::vector<std::pair<float, int32_t>> candidates_;
};

// Index of the largest value; ties go to the lowest index (as torch.argmax).
int32_t argmax(const float* x, int64_t n);

}  // namespace taia
