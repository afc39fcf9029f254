#include <map>

#include "core/error.h"
#include "generate/sampling.h"
#include "test_util.h"

namespace taia {
namespace {

TEST(Sampling, GreedyIsArgmaxWithLowestIndexOnTies) {
  std::vector<float> l{0.1f, 3.0f, 3.0f, -1.0f};
  Sampler s(SamplingParams{});
  EXPECT_EQ(s.sample(l.data(), 4, {}), 1);
}

TEST(Sampling, TopKOneIsGreedyAndSeedsRepeat) {
  auto logits = test::random_vector(100, 1);
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 1;
  Sampler s(p);
  std::vector<float> l = logits;
  EXPECT_EQ(s.sample(l.data(), 100, {}), argmax(logits.data(), 100));
  p.top_k = 0;
  p.seed = 42;
  Sampler a(p), b(p);
  for (int i = 0; i < 20; ++i) {
    std::vector<float> la = logits, lb = logits;
    EXPECT_EQ(a.sample(la.data(), 100, {}), b.sample(lb.data(), 100, {}));
  }
}

TEST(Sampling, FrequenciesFollowTheSoftmax) {
  std::vector<float> logits{std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  SamplingParams p;
  p.temperature = 1.0f;
  p.seed = 7;
  Sampler s(p);
  std::map<int, int> counts;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    std::vector<float> l = logits;
    counts[s.sample(l.data(), 3, {})]++;
  }
  EXPECT_NEAR(counts[0] / double(n), 0.5, 0.02);
  EXPECT_NEAR(counts[1] / double(n), 0.3, 0.02);
  EXPECT_NEAR(counts[2] / double(n), 0.2, 0.02);
}

TEST(Sampling, TopPKeepsTheSmallestNucleus) {
  std::vector<float> logits{std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_p = 0.7f;  // 0.5 < 0.7 <= 0.8: tokens 0 and 1 only
  p.seed = 3;
  Sampler s(p);
  std::map<int, int> counts;
  for (int i = 0; i < 5000; ++i) {
    std::vector<float> l = logits;
    counts[s.sample(l.data(), 3, {})]++;
  }
  EXPECT_EQ(counts[2], 0);
  EXPECT_NEAR(counts[0] / 5000.0, 0.5 / 0.8, 0.03);
}

TEST(Sampling, RepetitionPenaltyFollowsHf) {
  std::vector<float> l{2.0f, -1.0f, 1.9f};
  SamplingParams p;
  p.repetition_penalty = 2.0f;
  Sampler s(p);
  EXPECT_EQ(s.sample(l.data(), 3, {0, 1}), 2);  // 2.0 -> 1.0 (divided), so 1.9 wins
  EXPECT_FLOAT_EQ(l[0], 1.0f);
  EXPECT_FLOAT_EQ(l[1], -2.0f);  // negative logits are multiplied
}

TEST(Sampling, RejectsBadParameters) {
  SamplingParams p;
  p.top_p = 0;
  EXPECT_THROW(Sampler{p}, Error);
  p = SamplingParams{};
  p.temperature = -1;
  EXPECT_THROW(Sampler{p}, Error);
}

}  // namespace
}  // namespace taia
