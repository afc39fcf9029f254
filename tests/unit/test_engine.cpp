// The training engine's buffer plan: what a step allocates is what the memory estimate counts.
#include "model/init.h"
#include "test_util.h"
#include "train/engine.h"
#include "train/trainable.h"

namespace taia {
namespace {

TrainBatch batch_of(int64_t B, int64_t L, int64_t vocab) {
  TrainBatch b;
  b.B = B;
  b.L = L;
  for (int64_t i = 0; i < B * L; ++i) b.tokens.push_back(int32_t((7 * i + 3) % vocab));
  for (int64_t i = 0; i < B * L; ++i) b.targets.push_back(i % L == L - 1 ? -1 : b.tokens[size_t(i + 1)]);
  return b;
}

struct PlanCase {
  const char* name;
  bool full, recompute;
  double dropout;
  bool mixed_ranks;
  bool validation = false;
};

void PrintTo(const PlanCase& c, std::ostream* os) { *os << c.name; }

class EnginePlan : public ::testing::TestWithParam<PlanCase> {};

TEST_P(EnginePlan, AStepAllocatesWhatTheEstimateCounts) {
  const PlanCase& pc = GetParam();
  auto model = init_model(test::small_config(40, 16, 24, 3, 4, 2, 4, 32), 3, DType::F32, InitScheme::Full, 0.1f);
  EngineOptions eo;
  eo.recompute = pc.recompute;
  eo.validation = pc.validation;
  LoraAdapter lora;
  FullGrads grads;
  if (pc.full) {
    grads = make_full_grads(*model, parse_targets("all"));
  } else {
    LoraConfig lc;
    lc.rank = 3;
    lc.dropout = pc.dropout;
    if (pc.mixed_ranks) lc.rank_pattern = {{"layers.1.mlp.up_proj", 6}};
    lora = LoraAdapter::create(model->config, lc, 1);
  }
  TrainEngine engine(*model, pc.full ? nullptr : &lora, pc.full ? &grads : nullptr, eo);
  for (const auto& [B, L] : {std::pair<int64_t, int64_t>{2, 9}, {3, 5}}) {
    const TrainBatch batch = batch_of(B, L, 40);
    engine.forward_backward(batch, 0.01f, 1);
    engine.forward_loss(batch);
    const int64_t estimate = TrainEngine::working_bytes(*model, B, L, eo, pc.full ? nullptr : &lora, pc.full) -
                             TrainEngine::kernel_scratch_bytes(*model, B, L, eo);
    // A larger batch before a smaller one leaves the larger capacities: compare the first shape
    // exactly and the second as a bound.
    if (B == 2) EXPECT_EQ(engine.allocated_bytes(), estimate) << pc.name;
    else EXPECT_GE(engine.allocated_bytes(), estimate) << pc.name;
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, EnginePlan,
                         ::testing::Values(PlanCase{"lora", false, false, 0.0, false},
                                           PlanCase{"lora_dropout", false, false, 0.1, false},
                                           PlanCase{"lora_dropout_validation", false, false, 0.1, false, true},
                                           PlanCase{"lora_recompute_mixed_ranks", false, true, 0.0, true},
                                           PlanCase{"full", true, false, 0.0, false},
                                           PlanCase{"full_recompute", true, true, 0.0, false}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace taia
