// The update-size controls (model/update_controls.h): random-half[-N] and scaled, on a LoRA
// adapter and on a fully fine-tuned model. Each kept update is checked against the one computed
// here by hand from the dense dW = s B A (or W1 - W0), in double.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "model/init.h"
#include "model/merge.h"
#include "model/peft_adapter.h"
#include "model/update_controls.h"
#include "test_util.h"

namespace taia {
namespace {

// GQA (k, v narrower than q, o) and an FFN wider than the hidden size: modules of three sizes.
ModelConfig gqa_config() { return test::small_config(40, 16, 24, 3, 4, 2, 4, 32); }

LoraAdapter random_adapter(const ModelConfig& c, uint64_t seed) {
  LoraConfig lc;
  lc.rank = 3;
  lc.alpha = 6;
  LoraAdapter a = LoraAdapter::create(c, lc, seed);
  Rng rng(seed + 100);
  for (auto& layer : a.layers)
    for (auto& m : layer)
      if (m) for (float& b : m->B) b = float(0.3 * rng.normal());
  return a;
}

// The dense update of a module: s B A, [out, in], in double.
std::vector<double> dense_update(const LoraModule& m) {
  std::vector<double> d(size_t(m.out * m.in), 0.0);
  for (int64_t o = 0; o < m.out; ++o)
    for (int64_t k = 0; k < m.in; ++k) {
      double s = 0;
      for (int64_t r = 0; r < m.rank; ++r) s += double(m.B[size_t(o * m.rank + r)]) * double(m.A[size_t(r * m.in + k)]);
      d[size_t(o * m.in + k)] = double(m.scale) * s;
    }
  return d;
}

double sum_squares(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x * x;
  return s;
}

// The weight of module (l, p) after merging, minus the base's: the update a mode really applies.
std::vector<double> merged_delta(const Model& base, const LoraAdapter& a, const ModuleMask& mask, int64_t l, Proj p) {
  auto merged = init_model(base.config, 3, DType::F32, InitScheme::Full, 0.1f);
  merge_adapter(*merged, a, mask);
  const std::string name = proj_tensor_name(l, p, "weight");
  const TensorView* w1 = merged->find(name);
  const TensorView* w0 = const_cast<Model&>(base).find(name);
  std::vector<double> d(size_t(w1->numel()));
  for (size_t i = 0; i < d.size(); ++i)
    d[i] = double(static_cast<const float*>(w1->data)[i]) - double(static_cast<const float*>(w0->data)[i]);
  return d;
}

TEST(UpdateControls, ModeNamesParse) {
  EXPECT_EQ(parse_mode_spec("random-half").control, UpdateControl::RandomHalf);
  EXPECT_EQ(parse_mode_spec("random-half").draw, 1u);
  EXPECT_EQ(parse_mode_spec("random-half-7").draw, 7u);
  EXPECT_EQ(parse_mode_spec("scaled").control, UpdateControl::Scaled);
  EXPECT_EQ(parse_mode_spec("taia").control, UpdateControl::None);
  EXPECT_EQ(parse_mode_spec("q,k").mask, parse_targets("q,k"));
  for (const char* bad : {"random-half-0", "random-half-", "random-half-x", "random-halfs", "scaledx"})
    EXPECT_THROW(parse_mode_spec(bad), Error) << bad;
  // The plain-mode parser refuses a control by name (it has no update to compute it from).
  try {
    parse_mode("scaled");
    FAIL() << "parse_mode took a control";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("update-size control"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(is_named_mode("random-half-3"));
  EXPECT_FALSE(is_named_mode("q,k"));
  EXPECT_THROW(adapter_for_mode(nullptr, parse_mode_spec("scaled"), "[test]"), Error);  // no adapter
}

TEST(UpdateControls, LoraNormIsTheDenseProductsNorm) {
  const LoraAdapter a = random_adapter(gqa_config(), 5);
  const UpdateSizes sizes = lora_update_sizes(a);
  for (int64_t l = 0; l < 3; ++l)
    for (int i = 0; i < kNumProj; ++i) {
      const LoraModule& m = *a.find(l, Proj(i));
      EXPECT_EQ(sizes[size_t(l)][size_t(i)]->params, m.rank * (m.in + m.out));
      const double want = sum_squares(dense_update(m));
      EXPECT_NEAR(sizes[size_t(l)][size_t(i)]->norm2, want, 1e-9 * want);
    }
}

// scaled: each module of layer l is f_l s B A with f_l = ||attention dW_l|| / ||dW_l||, so the
// layer's kept update has the norm of its attention update (checked on the merged weights).
TEST(UpdateControls, ScaledKeepsEachLayersAttentionNorm) {
  const ModelConfig c = gqa_config();
  const LoraAdapter a = random_adapter(c, 6);
  auto base = init_model(c, 3, DType::F32, InitScheme::Full, 0.1f);
  const ModeAdapter run = adapter_for_mode(&a, parse_mode_spec("scaled"), "[test]");
  ASSERT_TRUE(run.derived);
  EXPECT_EQ(run.mask, parse_targets("all"));
  for (int64_t l = 0; l < c.num_layers; ++l) {
    double attention = 0, all = 0;
    for (int i = 0; i < kNumProj; ++i) {
      const double n2 = sum_squares(dense_update(*a.find(l, Proj(i))));
      all += n2;
      if (proj_is_attention(Proj(i))) attention += n2;
    }
    const double f = std::sqrt(attention / all);
    ASSERT_GT(f, 0.2);
    ASSERT_LT(f, 0.99);
    double kept = 0;
    for (int i = 0; i < kNumProj; ++i) {
      const std::vector<double> want = dense_update(*a.find(l, Proj(i)));
      const std::vector<double> got = merged_delta(*base, *run.adapter, run.mask, l, Proj(i));
      ASSERT_EQ(got.size(), want.size());
      for (size_t k = 0; k < got.size(); ++k) EXPECT_NEAR(got[k], f * want[k], 1e-5) << l << " " << i << " " << k;
      kept += sum_squares(got);
    }
    EXPECT_NEAR(std::sqrt(kept), std::sqrt(attention), 1e-4 * std::sqrt(attention)) << "layer " << l;
  }
}

// random-half-N: whole modules, kept or dropped; as many parameters as the attention set (at
// most, within one module); a draw is the same every time, and draws differ.
TEST(UpdateControls, RandomHalfKeepsWholeModulesWithTheAttentionSetsParameters) {
  const ModelConfig c = gqa_config();
  const LoraAdapter a = random_adapter(c, 7);
  auto base = init_model(c, 3, DType::F32, InitScheme::Full, 0.1f);
  const UpdateSizes sizes = lora_update_sizes(a);
  int64_t attention = 0, largest = 0;
  for (const auto& layer : sizes)
    for (int i = 0; i < kNumProj; ++i) {
      largest = std::max(largest, layer[size_t(i)]->params);
      if (proj_is_attention(Proj(i))) attention += layer[size_t(i)]->params;
    }
  std::vector<ModuleWeights> draws;
  for (uint64_t n = 1; n <= 3; ++n) {
    const ModeSpec mode = parse_mode_spec("random-half-" + std::to_string(n));
    const ModuleWeights w = mode_weights(mode, sizes);
    EXPECT_EQ(w, mode_weights(mode, sizes)) << "draw " << n << " is not reproducible";
    int64_t kept = 0;
    for (size_t l = 0; l < w.size(); ++l)
      for (int i = 0; i < kNumProj; ++i) {
        EXPECT_TRUE(w[l][size_t(i)] == 0.0 || w[l][size_t(i)] == 1.0);
        if (w[l][size_t(i)] == 1.0) kept += sizes[l][size_t(i)]->params;
      }
    EXPECT_LE(kept, attention);
    EXPECT_GT(kept, attention - largest);
    const Json d = describe_mode_weights(sizes, w, ProjLayout::Split);
    EXPECT_EQ(d["parameters"].get<int64_t>(), kept);
    EXPECT_EQ(d["attention_parameters"].get<int64_t>(), attention);
    draws.push_back(w);
  }
  EXPECT_NE(draws[0], draws[1]);
  EXPECT_NE(draws[1], draws[2]);
  // The derived adapter applies exactly the kept modules' s B A and nothing on the others.
  const ModeAdapter run = adapter_for_mode(&a, parse_mode_spec("random-half-2"), "[test]");
  for (int64_t l = 0; l < c.num_layers; ++l)
    for (int i = 0; i < kNumProj; ++i) {
      const std::vector<double> want = dense_update(*a.find(l, Proj(i)));
      const std::vector<double> got = merged_delta(*base, *run.adapter, run.mask, l, Proj(i));
      const bool kept = draws[1][size_t(l)][size_t(i)] == 1.0;
      EXPECT_EQ(run.adapter->find(l, Proj(i)) != nullptr, kept);
      for (size_t k = 0; k < got.size(); ++k) EXPECT_NEAR(got[k], kept ? want[k] : 0.0, 1e-5);
    }
  // Saved as a PEFT folder it names exactly its modules, and reads back with the same ones.
  const std::string dir = test::temp_dir() + "/random-half-2";
  save_peft_adapter(*run.adapter, dir, "");
  const LoraAdapter back = load_peft_adapter(dir, c);
  for (int64_t l = 0; l < c.num_layers; ++l)
    for (int i = 0; i < kNumProj; ++i) {
      const LoraModule* m = back.find(l, Proj(i));
      ASSERT_EQ(m != nullptr, run.adapter->find(l, Proj(i)) != nullptr) << l << " " << i;
      if (m) EXPECT_EQ(m->B, run.adapter->find(l, Proj(i))->B);
    }
}

// Full fine-tuning: scaled writes W0 + f_l (W1 - W0) with f_l from the dense differences;
// random-half leaves a kept tensor's fine-tuned bits and copies a dropped one's base bits.
TEST(UpdateControls, FullFineTuningIsWeightedTensorByTensor) {
  const ModelConfig c = gqa_config();
  auto base = init_model(c, 3, DType::F32, InitScheme::Full, 0.1f);
  auto tuned = init_model(c, 4, DType::F32, InitScheme::Full, 0.1f);
  auto diff = [&](const Model& m1, int64_t l, Proj p) {
    const std::string name = proj_tensor_name(l, p, "weight");
    const TensorView* w1 = const_cast<Model&>(m1).find(name);
    const TensorView* w0 = base->find(name);
    std::vector<double> d(size_t(w1->numel()));
    for (size_t i = 0; i < d.size(); ++i)
      d[i] = double(static_cast<const float*>(w1->data)[i]) - double(static_cast<const float*>(w0->data)[i]);
    return d;
  };
  const UpdateSizes sizes = full_update_sizes(*tuned, *base);
  auto scaled_model = init_model(c, 4, DType::F32, InitScheme::Full, 0.1f);
  merge_full_weighted(*scaled_model, *base, mode_weights(parse_mode_spec("scaled"), sizes));
  auto half = init_model(c, 4, DType::F32, InitScheme::Full, 0.1f);
  const ModuleWeights w_half = mode_weights(parse_mode_spec("random-half"), sizes);
  merge_full_weighted(*half, *base, w_half);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    double attention = 0, all = 0;
    for (int i = 0; i < kNumProj; ++i) {
      const double n2 = sum_squares(diff(*tuned, l, Proj(i)));
      EXPECT_NEAR(sizes[size_t(l)][size_t(i)]->norm2, n2, 1e-9 * n2);
      all += n2;
      if (proj_is_attention(Proj(i))) attention += n2;
    }
    const double f = std::sqrt(attention / all);
    for (int i = 0; i < kNumProj; ++i) {
      const std::vector<double> want = diff(*tuned, l, Proj(i));
      const std::vector<double> got = diff(*scaled_model, l, Proj(i));
      for (size_t k = 0; k < got.size(); ++k) EXPECT_NEAR(got[k], f * want[k], 1e-6);
      const std::vector<double> got_half = diff(*half, l, Proj(i));
      const bool kept = w_half[size_t(l)][size_t(i)] == 1.0;
      for (size_t k = 0; k < got_half.size(); ++k) EXPECT_EQ(got_half[k], kept ? want[k] : 0.0);
    }
  }
}

TEST(UpdateControls, MoloraExpertsAreRefusedByName) {
  const ModelConfig c = gqa_config();
  LoraConfig lc;
  lc.rank = 2;
  lc.targets = parse_targets("attn");
  MoloraConfig mc;
  mc.experts = 2;
  const LoraAdapter a = LoraAdapter::create_with_experts(c, lc, mc, 3);
  try {
    adapter_for_mode(&a, parse_mode_spec("scaled"), "[test]");
    FAIL() << "experts taken";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("MoLoRA"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace taia
