#include <fstream>

#include "core/error.h"
#include "core/mmap_file.h"
#include "model/init.h"
#include "io/safetensors.h"
#include "model/peft_adapter.h"
#include "test_util.h"
#include "train/engine.h"

namespace taia {
namespace {

ModelConfig tiny() { return test::small_config(40, 16, 24, 2, 4, 2, 4, 32); }

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

namespace taia {
namespace {

// A PEFT folder written by hand: rank_pattern, alpha_pattern, rsLoRA and a regex target_modules.
TEST(Lora, HandWrittenPeftFolderGetsPerModuleScales) {
  const std::string dir = test::temp_dir();
  std::ofstream(dir + "/adapter_config.json") << R"({
    "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4, "lora_alpha": 8, "use_rslora": true,
    "target_modules": ".*layers\\.1\\.self_attn\\.(q|v)_proj|.*mlp\\.down_proj",
    "rank_pattern": {"down_proj": 2}, "alpha_pattern": {"model.layers.1.self_attn.v_proj": 3},
    "lora_dropout": 0.0, "bias": "none", "fan_in_fan_out": false})";
  const ModelConfig c = tiny();
  std::vector<TensorView> views;
  std::vector<std::vector<float>> store;
  auto add = [&](const std::string& key, std::vector<int64_t> shape, float v) {
    store.emplace_back(size_t(shape[0] * shape[1]), v);
    views.emplace_back(key, DType::F32, shape, store.back().data());
  };
  store.reserve(16);
  add(peft_key(1, Proj::Q, "A", ProjLayout::Split), {4, 16}, 0.5f);
  add(peft_key(1, Proj::Q, "B", ProjLayout::Split), {16, 4}, 0.25f);
  add(peft_key(1, Proj::V, "A", ProjLayout::Split), {4, 16}, 0.5f);
  add(peft_key(1, Proj::V, "B", ProjLayout::Split), {8, 4}, 0.25f);
  for (int64_t l = 0; l < 2; ++l) {
    add(peft_key(l, Proj::Down, "A", ProjLayout::Split), {2, 24}, 1.0f);
    add(peft_key(l, Proj::Down, "B", ProjLayout::Split), {16, 2}, 1.0f);
  }
  write_safetensors(dir + "/adapter_model.safetensors", views);
  LoraAdapter a = load_peft_adapter(dir, c);
  EXPECT_EQ(a.find(0, Proj::Q), nullptr);  // the regex names layer 1 only
  EXPECT_EQ(a.find(1, Proj::K), nullptr);
  ASSERT_NE(a.find(1, Proj::Q), nullptr);
  EXPECT_FLOAT_EQ(a.find(1, Proj::Q)->scale, float(8.0 / std::sqrt(4.0)));  // rsLoRA: alpha / sqrt(r)
  EXPECT_FLOAT_EQ(a.find(1, Proj::V)->scale, float(3.0 / std::sqrt(4.0)));  // alpha_pattern
  ASSERT_NE(a.find(0, Proj::Down), nullptr);
  EXPECT_EQ(a.find(0, Proj::Down)->rank, 2);                                // rank_pattern
  EXPECT_FLOAT_EQ(a.find(0, Proj::Down)->scale, float(8.0 / std::sqrt(2.0)));
  EXPECT_EQ(a.find(1, Proj::Q)->B[0], 0.25f);
  // A tensor of the wrong shape is named.
  views[1] = TensorView(peft_key(1, Proj::Q, "B", ProjLayout::Split), DType::F32, {16, 3}, store[1].data());
  write_safetensors(dir + "/adapter_model.safetensors", views);
  try {
    load_peft_adapter(dir, c);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected shape [16, 4], got [16, 3]"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace taia
