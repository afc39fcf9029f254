#include <fstream>

#include "core/error.h"
#include "core/mmap_file.h"
#include "model/init.h"
#include "model/peft_adapter.h"
#include "test_util.h"
#include "train/engine.h"

namespace taia {
namespace {

ModelConfig tiny() {
  ModelConfig c;
  c.vocab_size = 40;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 4;
  c.max_position_embeddings = 32;
  return c;
}

TEST(Lora, PatternsTargetsAndLayersFollowPeft) {
  LoraConfig c;
  c.rank = 8;
  c.alpha = 16;
  c.targets = parse_targets("q,v,down");
  c.rank_pattern = {{"q_proj", 2}, {"layers.1.self_attn.v_proj", 4}};
  c.alpha_pattern = {{"down_proj", 1}};
  c.layers_to_transform = {1};
  EXPECT_FALSE(c.module_rank_alpha(0, Proj::Q).has_value());  // layer 0 not transformed
  EXPECT_FALSE(c.module_rank_alpha(1, Proj::K).has_value());  // k not targeted
  EXPECT_EQ(c.module_rank_alpha(1, Proj::Q)->first, 2);
  EXPECT_EQ(c.module_rank_alpha(1, Proj::V)->first, 4);
  EXPECT_EQ(c.module_rank_alpha(1, Proj::Down)->first, 8);
  EXPECT_DOUBLE_EQ(c.module_rank_alpha(1, Proj::Down)->second, 1.0);
  EXPECT_DOUBLE_EQ(c.scale(16, 32), 2.0);
  c.use_rslora = true;
  EXPECT_DOUBLE_EQ(c.scale(16, 32), 8.0);
  EXPECT_THROW(parse_targets("q,x"), Error);
  EXPECT_EQ(targets_to_string(parse_targets("attn")), "q_proj,k_proj,v_proj,o_proj");
}

TEST(Lora, PeftInitialisationIsKaimingUniformAndZero) {
  LoraConfig c;
  c.rank = 4;
  LoraAdapter a = LoraAdapter::create(tiny(), c, 7);
  const LoraModule* m = a.find(0, Proj::Gate);
  ASSERT_NE(m, nullptr);
  const float bound = 1.0f / std::sqrt(16.0f);
  float mx = 0;
  for (float v : m->A) mx = std::max(mx, std::abs(v));
  EXPECT_LE(mx, bound);
  EXPECT_GT(mx, 0.8f * bound);  // 64 uniform draws come close to the bound
  for (float v : m->B) EXPECT_EQ(v, 0.0f);
  EXPECT_EQ(a.parameter_count(), 2 * (4 * (16 + 16) + 2 * 4 * (16 + 8) + 4 * (16 + 16) + 2 * 4 * (16 + 24) + 4 * (24 + 16)));
}

TEST(Lora, SavedAdapterReloadsToTheSameTensorsAndLoss) {
  auto model = init_model(tiny(), 3, DType::F32, InitScheme::Full, 0.1f);
  LoraConfig c;
  c.rank = 3;
  c.alpha = 6;
  c.dropout = 0;
  c.rank_pattern = {{"up_proj", 5}};
  LoraAdapter a = LoraAdapter::create(model->config, c, 1);
  Rng rng(9);
  for (auto& layer : a.layers)
    for (auto& m : layer)
      if (m) for (float& b : m->B) b = float(0.3 * rng.normal());
  const std::string dir = test::temp_dir() + "/adapter";
  save_peft_adapter(a, dir, "tiny");
  LoraAdapter b = load_peft_adapter(dir, model->config);
  for (int64_t l = 0; l < 2; ++l)
    for (int i = 0; i < kNumProj; ++i) {
      const LoraModule *x = a.find(l, Proj(i)), *y = b.find(l, Proj(i));
      ASSERT_TRUE(x && y);
      EXPECT_EQ(x->A, y->A);
      EXPECT_EQ(x->B, y->B);
      EXPECT_EQ(x->scale, y->scale);
    }
  TrainBatch batch;
  batch.B = 1;
  batch.L = 6;
  batch.tokens = {1, 5, 9, 2, 7, 3};
  batch.targets = {5, 9, 2, 7, 3, -1};
  TrainEngine ea(*model, &a, nullptr, EngineOptions{}), eb(*model, &b, nullptr, EngineOptions{});
  TrainEngine base(*model, nullptr, nullptr, EngineOptions{});
  EXPECT_EQ(ea.forward_loss(batch), eb.forward_loss(batch));
  EXPECT_NE(ea.forward_loss(batch), base.forward_loss(batch));  // the adapter changes the model
}

TEST(Lora, RefusesWhatTaiaDoesNotImplement) {
  const std::string dir = test::temp_dir();
  auto expect_refused = [&](const std::string& config, const std::string& needle) {
    std::ofstream(dir + "/adapter_config.json") << config;
    try {
      load_peft_adapter(dir, tiny());
      ADD_FAILURE() << "accepted " << config;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_refused(R"({"peft_type": "LORA", "r": 4, "target_modules": ["q_proj"], "use_dora": true})", "DoRA");
  expect_refused(R"({"peft_type": "LORA", "r": 4, "target_modules": ["q_proj"], "modules_to_save": ["lm_head"]})",
                 "modules_to_save");
  expect_refused(R"({"peft_type": "LORA", "r": 4, "target_modules": ["embed_tokens"]})", "embedding LoRA");
  expect_refused(R"({"peft_type": "PREFIX_TUNING"})", "peft_type expected LORA");
  std::ofstream(dir + "/adapter_model.bin") << "pickle";
  expect_refused(R"({"peft_type": "LORA", "r": 4, "target_modules": ["q_proj"]})", "pickle");
}

}  // namespace
}  // namespace taia
