// Helpers shared by the unit tests.
#pragma once
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "core/rng.h"
#include "model/config.h"

namespace taia::test {

inline std::string fixtures_dir() {
  if (const char* env = std::getenv("TAIA_FIXTURES"); env && *env) return env;
  return TAIA_FIXTURES;
}

// A fresh temporary folder per test.
inline std::string temp_dir() {
  std::string tmpl = ::testing::TempDir() + "taia-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  char* d = mkdtemp(buf.data());
  EXPECT_NE(d, nullptr);
  return d ? std::string(d) : std::string("/tmp");
}

// A small LLaMA-style config for tests (no biases, untied, eos 2).
inline ModelConfig small_config(int64_t vocab, int64_t hidden, int64_t intermediate, int64_t layers, int64_t heads,
                                int64_t kv_heads, int64_t head_dim, int64_t max_positions) {
  ModelConfig c;
  c.arch = Arch::Llama;
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = intermediate;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = head_dim;
  c.max_position_embeddings = max_positions;
  c.eos_token_ids = {2};
  return c;
}

inline std::vector<float> random_vector(size_t n, uint64_t seed, float scale = 1.0f) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = float(rng.normal()) * scale;
  return v;
}

// The largest |v|: the scale relative tolerances are taken against.
inline float max_abs(const std::vector<float>& v) {
  float m = 0;
  for (float x : v) m = std::max(m, std::abs(x));
  return m;
}

inline float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

}  // namespace taia::test
