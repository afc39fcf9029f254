#include "generate/sampling.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "core/error.h"

namespace taia {

void SamplingParams::validate() const {
  TAIA_CHECK(temperature >= 0 && std::isfinite(temperature), "[sampling] temperature expected >= 0, got ", temperature);
  TAIA_CHECK(top_k >= 0, "[sampling] top_k expected >= 0, got ", top_k);
  TAIA_CHECK(top_p > 0 && top_p <= 1, "[sampling] top_p expected in (0, 1], got ", top_p);
  TAIA_CHECK(repetition_penalty > 0 && std::isfinite(repetition_penalty),
             "[sampling] repetition_penalty expected > 0, got ", repetition_penalty);
}

int32_t argmax(const float* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return int32_t(best);
}

int32_t Sampler::sample(float* logits, int64_t V, const std::vector<int32_t>& history) {
  if (params_.repetition_penalty != 1.0f) {
    std::unordered_set<int32_t> seen(history.begin(), history.end());
    for (int32_t id : seen) {
      if (id < 0 || id >= V) continue;
      float& l = logits[id];
      l = l > 0 ? l / params_.repetition_penalty : l * params_.repetition_penalty;
    }
  }
  if (params_.temperature == 0.0f) return argmax(logits, V);

  candidates_.clear();
  candidates_.reserve(size_t(V));
  for (int64_t i = 0; i < V; ++i) candidates_.emplace_back(logits[i] / params_.temperature, int32_t(i));
  auto by_logit = [](const auto& a, const auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; };
  size_t keep = candidates_.size();
  if (params_.top_k > 0 && size_t(params_.top_k) < keep) {
    keep = size_t(params_.top_k);
    std::partial_sort(candidates_.begin(), candidates_.begin() + long(keep), candidates_.end(), by_logit);
    candidates_.resize(keep);
  } else {
    std::sort(candidates_.begin(), candidates_.end(), by_logit);
  }
  // Softmax over the kept candidates (sorted descending, so the first is the maximum).
  const float mx = candidates_[0].first;
  double sum = 0;
  for (auto& c : candidates_) {
    c.first = std::exp(c.first - mx);
    sum += c.first;
  }
  // Nucleus: the smallest prefix whose probability mass reaches top_p (at least one token).
  if (params_.top_p < 1.0f) {
    double mass = 0;
    size_t n = 0;
    while (n < candidates_.size()) {
      mass += candidates_[n].first / sum;
      ++n;
      if (mass >= params_.top_p) break;
    }
    candidates_.resize(n);
    sum = 0;
    for (const auto& c : candidates_) sum += c.first;
  }
  const double r = double(rng_.uniform()) * sum;
  double acc = 0;
  for (const auto& c : candidates_) {
    acc += c.first;
    if (r < acc) return c.second;
  }
  return candidates_.back().second;
}

}  // namespace taia
