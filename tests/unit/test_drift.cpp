// `taia analyze`'s measurements: a zero update moves nothing; an FFN-only update leaves the first
// layer's attention output exactly as it was; weight update norms of a merged model.
#include "core/rng.h"
#include "eval/drift.h"
#include "model/init.h"
#include "model/merge.h"
#include "test_util.h"

namespace taia {
namespace {

ModelConfig config() { return test::small_config(40, 16, 24, 3, 4, 2, 4, 32); }

std::vector<std::vector<int32_t>> text() { return {{1, 5, 9, 2, 7, 3, 11}, {4, 4, 8, 30, 12}}; }

LoraAdapter adapter(const ModelConfig& c, const char* targets, double b_std) {
  LoraConfig lc;
  lc.rank = 3;
  lc.alpha = 6;
  lc.dropout = 0;
  lc.targets = parse_targets(targets);
  LoraAdapter a = LoraAdapter::create(c, lc, 2);
  Rng rng(9);
  for (auto& layer : a.layers)
    for (auto& m : layer)
      if (m) for (float& b : m->B) b = float(b_std * rng.normal());
  return a;
}

TEST(Drift, AZeroUpdateMovesNothing) {
  auto base = init_model(config(), 3, DType::F32, InitScheme::Full, 0.1f);
  const LoraAdapter zero = adapter(base->config, "all", 0.0);  // PEFT's init: B = 0
  for (const LayerDrift& l : measure_drift(*base, nullptr, &zero, parse_mode("vanilla"), text())) {
    EXPECT_EQ(l.attention.relative_change(), 0.0);
    EXPECT_EQ(l.ffn.relative_change(), 0.0);
    EXPECT_NEAR(l.attention.mean_cosine(), 1.0, 1e-9);
    EXPECT_EQ(l.ffn.tokens, 12);
  }
  auto same = init_model(config(), 3, DType::F32, InitScheme::Full, 0.1f);
  for (const LayerDrift& l : measure_drift(*base, same.get(), nullptr, ModuleMask{}, text()))
    EXPECT_EQ(l.attention.relative_change() + l.ffn.relative_change(), 0.0);
  for (const Json& m : weight_update_norms(*base, *same)) EXPECT_EQ(m["update_norm"].get<double>(), 0.0);
}

TEST(Drift, AnFfnUpdateLeavesTheFirstAttentionOutputAlone) {
  auto base = init_model(config(), 3, DType::F32, InitScheme::Full, 0.1f);
  const LoraAdapter ffn = adapter(base->config, "ffn", 0.5);
  const auto d = measure_drift(*base, nullptr, &ffn, parse_mode("vanilla"), text());
  EXPECT_EQ(d[0].attention.relative_change(), 0.0);  // layer 0's attention sees the unchanged embedding
  EXPECT_GT(d[0].ffn.relative_change(), 1e-3);
  EXPECT_GT(d[1].attention.relative_change(), 1e-4);  // layer 1's input moved with layer 0's FFN
  // The same update merged into a copy of the base: the same drift, and weight norms only on the FFN.
  auto merged = init_model(config(), 3, DType::F32, InitScheme::Full, 0.1f);
  merge_adapter(*merged, ffn, parse_mode("vanilla"));
  const auto dm = measure_drift(*base, merged.get(), nullptr, ModuleMask{}, text());
  EXPECT_NEAR(dm[0].ffn.relative_change(), d[0].ffn.relative_change(), 1e-4);
  for (const Json& m : weight_update_norms(*base, *merged)) {
    const std::string name = m["module"].get<std::string>();
    if (name.find("mlp") != std::string::npos) EXPECT_GT(m["relative_update_norm"].get<double>(), 0.0) << name;
    else EXPECT_EQ(m["update_norm"].get<double>(), 0.0) << name;
  }
  const Json j = drift_json(d);
  EXPECT_EQ(j["layers"].size(), 3u);
  EXPECT_EQ(j["tokens"].get<int64_t>(), 12);
}

// --neurons: an update of one row of the last layer's up_proj moves that FFN neuron alone (its
// hidden activation act(gate) * up), and nothing in the layers before; the report names it first.
TEST(Drift, OneUpRowMovesOneNamedNeuron) {
  auto base = init_model(config(), 3, DType::F32, InitScheme::Full, 0.1f);
  LoraAdapter up = adapter(base->config, "up", 0.0);
  const int64_t last = base->config.num_layers - 1, neuron = 17;
  LoraModule* m = up.find(last, Proj::Up);
  ASSERT_NE(m, nullptr);
  for (int64_t r = 0; r < m->rank; ++r) m->B[size_t(neuron * m->rank + r)] = 0.7f;  // row `neuron` of B
  const auto d = measure_neuron_drift(*base, nullptr, &up, parse_mode("vanilla"), text());
  ASSERT_EQ(d.size(), size_t(base->config.num_layers));
  for (int64_t l = 0; l < last; ++l)
    for (double x : d[size_t(l)].diff_sq) EXPECT_EQ(x, 0.0) << "layer " << l;
  for (size_t i = 0; i < d[size_t(last)].diff_sq.size(); ++i)
    if (int64_t(i) == neuron) EXPECT_GT(d[size_t(last)].diff_sq[i], 1e-6);
    else EXPECT_EQ(d[size_t(last)].diff_sq[i], 0.0) << "neuron " << i;
  EXPECT_EQ(d[size_t(last)].tokens, 12);
  const Json j = neurons_json(d, 3);
  const Json& top = j["layers"][size_t(last)];
  EXPECT_EQ(top["neurons"][0]["neuron"].get<int64_t>(), neuron);
  EXPECT_NEAR(top["top_share"].get<double>(), 1.0, 1e-12);
  EXPECT_EQ(top["neurons"].size(), 3u);
  EXPECT_EQ(j["layers"][0]["rms_change"].get<double>(), 0.0);
  // taia leaves the FFN alone: no neuron moves.
  for (const NeuronDrift& l : measure_neuron_drift(*base, nullptr, &up, parse_mode("taia"), text()))
    for (double x : l.diff_sq) EXPECT_EQ(x, 0.0);
}

}  // namespace
}  // namespace taia
