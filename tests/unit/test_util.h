// Helpers shared by the unit tests.
#pragma once
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "core/rng.h"

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

inline std::vector<float> random_vector(size_t n, uint64_t seed, float scale = 1.0f) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = float(rng.normal()) * scale;
  return v;
}

inline float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

}  // namespace taia::test
