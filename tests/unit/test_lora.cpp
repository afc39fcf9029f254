#include <fstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/mmap_file.h"
#include "model/adapter.h"
#include "model/decoder.h"
#include "model/gguf_lora.h"
#include "model/init.h"
#include "model/merge.h"
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
  // The spec written into trainer_state.json and shown as --targets' default reads back.
  EXPECT_EQ(targets_spec(parse_targets("all-linear")), "all");
  EXPECT_EQ(targets_spec(parse_targets("attention")), "attn");
  EXPECT_EQ(targets_spec(parse_targets("gate,up,down")), "ffn");
  EXPECT_EQ(targets_spec(parse_targets("v,q")), "q_proj,v_proj");
  for (const char* spec : {"all", "attn", "ffn", "q,v,down"})
    EXPECT_EQ(parse_targets(targets_spec(parse_targets(spec))), parse_targets(spec)) << spec;
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

// Phi-3's fused projections: one module per fused tensor (qkv_proj, gate_up_proj) under PEFT's
// names; run unmerged it equals the merged weights; a TAIA merge changes the fused attention
// tensor by s B A and leaves the fused FFN tensor bitwise; PEFT and GGUF-LoRA files round-trip.
ModelConfig phi3() {
  ModelConfig c = tiny();
  c.arch = Arch::Phi3;
  c.fused_proj = true;
  return c;
}

std::vector<float> logits_of(const Model& m, const LoraAdapter* a, const ModuleMask& mask) {
  const std::vector<int32_t> ids{1, 5, 9, 2, 7, 3, 11};
  Decoder d(m);
  d.set_adapter(a, mask);
  KVCache cache(m.config, int64_t(ids.size()));
  std::vector<float> out(ids.size() * size_t(m.config.vocab_size));
  d.forward(cache, ids.data(), int64_t(ids.size()), out.data(), true);
  return out;
}

// The adapter with every LoRA B drawn at random (created B is zero: the adapter would change nothing).
LoraAdapter with_random_b(LoraAdapter a, Rng& rng) {
  for (auto& layer : a.layers)
    for (auto& m : layer)
      if (m) for (float& b : m->B) b = float(0.3 * rng.normal());
  return a;
}

// Each sequence (the 7 ids of logits_of) packed with the others in one pass, its rows under its
// own adapter and mode, gives the logits of that adapter and mode run alone.
void expect_packed_rows_match_alone(const Model& model, const std::vector<RowAdapter>& sequences) {
  const std::vector<int32_t> ids{1, 5, 9, 2, 7, 3, 11};
  std::vector<std::vector<float>> alone;
  for (const RowAdapter& r : sequences) alone.push_back(logits_of(model, r.adapter, r.mask));
  for (size_t q = 0; q + 1 < sequences.size(); ++q)  // the last is the base: every other one differs
    ASSERT_GT(test::max_abs_diff(alone[q], alone.back()), 1e-3f) << "sequence " << q;
  // Sequence s in slots s*7 .. s*7+6, every row's logits.
  PackedBatch pb;
  std::vector<RowAdapter> rows;
  const int64_t n = int64_t(ids.size()), S = int64_t(sequences.size());
  for (int64_t q = 0; q < S; ++q)
    for (int64_t t = 0; t < n; ++t) {
      KeySpans span;
      span.begin[0] = q * n;
      span.end[0] = q * n + t + 1;
      pb.logit_rows.push_back(pb.add(ids[size_t(t)], t, q * n + t, span));
      rows.push_back(sequences[size_t(q)]);
    }
  Decoder d(model);
  d.set_row_adapters(&rows);
  KVCache cache(model.config, S * n);
  const size_t V = size_t(model.config.vocab_size);
  std::vector<float> out(size_t(S * n) * V);
  d.forward_packed(cache, pb, out.data());
  for (int64_t q = 0; q < S; ++q) {
    const std::vector<float> got(out.begin() + int64_t(size_t(q * n) * V), out.begin() + int64_t(size_t((q + 1) * n) * V));
    EXPECT_LE(test::max_abs_diff(got, alone[size_t(q)]), 1e-5f) << "sequence " << q;
  }
}

// Per-row adapters and modes (taia serve's one pass per step): four sequences packed in one pass
// — adapter A in TAIA mode, adapter B in vanilla mode, a MoLoRA adapter in TAIF mode, the base —
// give each the logits of its own adapter and mode run alone.
TEST(Lora, RowAdaptersGiveEachRowItsOwnAdapterAndMode) {
  const ModelConfig c = tiny();
  LoraConfig lc;
  lc.rank = 3;
  lc.alpha = 5;
  Rng rng(7);
  const LoraAdapter first = with_random_b(LoraAdapter::create(c, lc, 4), rng);
  const LoraAdapter second = with_random_b(LoraAdapter::create(c, lc, 5), rng);
  MoloraConfig mc;
  mc.experts = 2;
  mc.top_k = 2;
  LoraAdapter experts = LoraAdapter::create_with_experts(c, lc, mc, 6);
  for (auto& layer : experts.molora.layers)
    for (auto& m : layer)
      if (m) for (float& b : m->B) b = float(0.3 * rng.normal());
  auto model = init_model(c, 3, DType::F32, InitScheme::Full, 0.1f);
  const std::vector<RowAdapter> sequences{
      {&first, parse_mode("taia")}, {&second, parse_mode("vanilla")}, {&experts, parse_mode("taif")}, {nullptr, {}}};
  expect_packed_rows_match_alone(*model, sequences);
  Decoder d(*model);
  // An adapter of another model's shape is refused when the rows are set.
  ModelConfig deeper = c;
  deeper.num_layers += 1;
  const LoraAdapter other = LoraAdapter::create(deeper, lc, 4);
  const std::vector<RowAdapter> bad{{&other, parse_mode("taia")}};
  EXPECT_THROW(d.set_row_adapters(&bad), Error);
}

// Many adapters in one step (serve with 8 fine-tunes): 5 LoRA adapters, one run each, go through
// the path that shares one parallel region among the runs (Decoder::add_lora_runs_together), and
// still give each sequence its own adapter's logits.
TEST(Lora, ManyRowAdaptersShareOneParallelRegion) {
  const ModelConfig c = tiny();
  LoraConfig lc;
  lc.rank = 2;
  lc.alpha = 3;
  Rng rng(11);
  std::vector<LoraAdapter> adapters;
  for (uint64_t seed = 20; seed < 25; ++seed) adapters.push_back(with_random_b(LoraAdapter::create(c, lc, seed), rng));
  auto model = init_model(c, 3, DType::F32, InitScheme::Full, 0.1f);
  std::vector<RowAdapter> sequences;
  for (const LoraAdapter& a : adapters) sequences.push_back({&a, parse_mode(sequences.size() % 2 ? "taia" : "vanilla")});
  sequences.push_back({nullptr, {}});
  expect_packed_rows_match_alone(*model, sequences);
}

TEST(Lora, Phi3AdaptsTheFusedModules) {
  const ModelConfig c = phi3();
  LoraConfig lc;
  lc.rank = 3;
  lc.alpha = 5;
  lc.rank_pattern = {{"gate_up_proj", 2}};
  LoraAdapter a = LoraAdapter::create(c, lc, 4);
  Rng rng(5);
  for (auto& layer : a.layers)
    for (auto& m : layer)
      if (m) for (float& b : m->B) b = float(0.3 * rng.normal());
  ASSERT_TRUE(a.find(0, Proj::Q) && a.find(0, Proj::Gate) && a.find(0, Proj::O) && a.find(0, Proj::Down));
  EXPECT_FALSE(a.find(0, Proj::K) || a.find(0, Proj::V) || a.find(0, Proj::Up));
  EXPECT_EQ(a.find(0, Proj::Q)->out, c.q_dim() + 2 * c.kv_dim());
  EXPECT_EQ(a.find(0, Proj::Gate)->out, 2 * c.intermediate_size);
  EXPECT_EQ(a.find(1, Proj::Gate)->rank, 2);
  EXPECT_EQ(a.module_name(1, Proj::V), "model.layers.1.self_attn.qkv_proj");
  // A module list that splits a group is refused by name.
  lc.targets = parse_targets("q,k,o");
  try {
    LoraAdapter::create(c, lc, 4);
    ADD_FAILURE() << "a split group was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("q_proj without v_proj"), std::string::npos) << e.what();
  }
  EXPECT_EQ(parse_targets("qkv,gate_up"), parse_targets("q,k,v,gate,up"));

  auto model = init_model(c, 3, DType::F32, InitScheme::Full, 0.1f);
  auto base = init_model(c, 3, DType::F32, InitScheme::Full, 0.1f);
  const ModuleMask all = parse_mode("vanilla"), taia_mask = parse_mode("taia");
  const auto unmerged = logits_of(*model, &a, all);
  merge_adapter(*model, a, all);
  EXPECT_LE(test::max_abs_diff(unmerged, logits_of(*model, nullptr, all)), 1e-5f);
  EXPECT_GT(test::max_abs_diff(unmerged, logits_of(*base, nullptr, all)), 1e-3f);

  auto t = init_model(c, 3, DType::F32, InitScheme::Full, 0.1f);
  merge_adapter(*t, a, taia_mask);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const LayerWeights &W = t->weights.layers[size_t(l)], &B0 = base->weights.layers[size_t(l)];
    const float* gu = W.gate_up.weight.ptr<const float>();
    EXPECT_TRUE(std::equal(gu, gu + W.gate_up.weight.numel(), B0.gate_up.weight.ptr<const float>()));
    const LoraModule& m = *a.find(l, Proj::Q);
    const float* w = W.qkv.weight.ptr<const float>();
    const float* w0 = B0.qkv.weight.ptr<const float>();
    float worst = 0;
    for (int64_t o = 0; o < m.out; ++o)
      for (int64_t k = 0; k < m.in; ++k) {
        double d = 0;
        for (int64_t r = 0; r < m.rank; ++r) d += double(m.B[size_t(o * m.rank + r)]) * m.A[size_t(r * m.in + k)];
        worst = std::max(worst, std::abs(w[o * m.in + k] - float(double(w0[o * m.in + k]) + m.scale * d)));
      }
    EXPECT_EQ(worst, 0.0f) << "layer " << l;  // W + s B A in double, rounded once
  }

  const std::string dir = test::temp_dir() + "/phi3_adapter";
  save_peft_adapter(a, dir, "phi3");
  SafetensorsFile st(dir + "/adapter_model.safetensors");
  EXPECT_NE(st.find("base_model.model.model.layers.0.self_attn.qkv_proj.lora_A.weight"), nullptr);
  EXPECT_NE(st.find("base_model.model.model.layers.1.mlp.gate_up_proj.lora_B.weight"), nullptr);
  EXPECT_EQ(st.tensors().size(), size_t(2 * 4 * c.num_layers));
  LoraAdapter b = load_peft_adapter(dir, c);
  EXPECT_EQ(test::max_abs_diff(logits_of(*base, &a, taia_mask), logits_of(*base, &b, taia_mask)), 0.0f);
  const std::string gl = test::temp_dir() + "/phi3.lora.gguf";
  save_gguf_lora(a, all, c, gl);
  LoraAdapter g = load_gguf_lora(gl, c);
  EXPECT_EQ(g.layout, ProjLayout::Fused);
  EXPECT_LE(test::max_abs_diff(logits_of(*base, &a, all), logits_of(*base, &g, all)), 1e-5f);
  // A split adapter on a fused model is refused.
  LoraAdapter split = LoraAdapter::create(tiny(), LoraConfig{}, 1);
  EXPECT_THROW(logits_of(*base, &split, all), Error);
}

// MoLoRA (experts on the FFN, LoRA on attention): the decoder's logits give the training engine's
// loss; the folder round-trips bitwise; modes pick LoRA and experts apart; merging experts is refused.
LoraAdapter molora_adapter(const ModelConfig& c, int64_t top_k) {
  LoraConfig lc;
  lc.rank = 3;
  lc.alpha = 6;
  lc.dropout = 0;
  MoloraConfig mc;
  mc.experts = 4;
  mc.top_k = top_k;
  LoraAdapter a = LoraAdapter::create_with_experts(c, lc, mc, 4);
  Rng rng(6);
  for (auto& layer : a.layers)
    for (auto& m : layer)
      if (m) for (float& b : m->B) b = float(0.3 * rng.normal());
  for (auto& layer : a.molora.layers)
    for (auto& m : layer)
      if (m) for (float& b : m->B) b = float(0.3 * rng.normal());
  return a;
}

TEST(Molora, DecoderMatchesTheTrainingEngineAndTheFolderRoundTrips) {
  const ModelConfig c = tiny();
  auto model = init_model(c, 3, DType::F32, InitScheme::Full, 0.1f);
  for (int64_t k : {1, 2}) {
    LoraAdapter a = molora_adapter(c, k);
    ASSERT_TRUE(a.find(0, Proj::Q) && !a.find(0, Proj::Gate) && a.molora.find(0, Proj::Gate));
    EXPECT_TRUE(a.has_experts(parse_mode("taif")));
    EXPECT_FALSE(a.has_experts(parse_mode("taia")));
    // The engine's loss on one sequence from the decoder's logits (vanilla = LoRA + experts).
    const std::vector<int32_t> ids{1, 5, 9, 2, 7, 3, 11};
    const auto logits = logits_of(*model, &a, parse_mode("vanilla"));
    double want = 0;
    for (size_t t = 0; t + 1 < ids.size(); ++t) {
      const float* row = logits.data() + t * size_t(c.vocab_size);
      double mx = row[0], sum = 0;
      for (int64_t v = 0; v < c.vocab_size; ++v) mx = std::max(mx, double(row[v]));
      for (int64_t v = 0; v < c.vocab_size; ++v) sum += std::exp(double(row[v]) - mx);
      want += mx + std::log(sum) - double(row[ids[t + 1]]);
    }
    TrainBatch b;
    b.B = 1;
    b.L = int64_t(ids.size());
    b.tokens = ids;
    for (size_t t = 0; t < ids.size(); ++t) b.targets.push_back(t + 1 < ids.size() ? ids[t + 1] : -1);
    TrainEngine engine(*model, &a, nullptr, EngineOptions{});
    EXPECT_NEAR(engine.forward_loss(b), want, 1e-4 * want) << "top-" << k;
    // Each mode differs from the others; taia equals the attention LoRA alone.
    const auto base = logits_of(*model, nullptr, ModuleMask{});
    const auto taia_l = logits_of(*model, &a, parse_mode("taia")), taif_l = logits_of(*model, &a, parse_mode("taif"));
    EXPECT_GT(test::max_abs_diff(taia_l, base), 1e-3f);
    EXPECT_GT(test::max_abs_diff(taif_l, base), 1e-3f);
    EXPECT_GT(test::max_abs_diff(taif_l, logits), 1e-3f);
    LoraAdapter attention_only = a;
    attention_only.molora = MoloraExperts{};
    EXPECT_EQ(test::max_abs_diff(taia_l, logits_of(*model, &attention_only, parse_mode("vanilla"))), 0.0f);
    // Saved and reloaded: the same logits, bit for bit.
    const std::string dir = test::temp_dir() + "/molora_adapter";
    save_peft_adapter(a, dir, "tiny");
    EXPECT_TRUE(file_exists(dir + "/" + kMoloraConfigFile));
    LoraAdapter back = load_peft_adapter(dir, c);
    EXPECT_EQ(back.molora.config.top_k, k);
    EXPECT_EQ(test::max_abs_diff(logits, logits_of(*model, &back, parse_mode("vanilla"))), 0.0f);
    // A plain LoRA saved over it removes the experts' files.
    save_peft_adapter(attention_only, dir, "tiny");
    EXPECT_FALSE(file_exists(dir + "/" + kMoloraConfigFile));
    EXPECT_TRUE(load_peft_adapter(dir, c).molora.empty());
    // keep_modules(taia) drops the experts.
    LoraAdapter kept = a;
    keep_modules(kept, parse_mode("taia"));
    EXPECT_TRUE(kept.molora.empty());
    // Experts cannot be merged; the TAIA part can.
    try {
      merge_adapter(*model, a, parse_mode("vanilla"));
      ADD_FAILURE() << "experts were merged";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("cannot be merged"), std::string::npos) << e.what();
    }
    EXPECT_THROW(save_gguf_lora(a, parse_mode("taif"), c, test::temp_dir() + "/x.gguf"), Error);
  }
}

TEST(Molora, ConfigFileIsValidated) {
  const ModelConfig c = tiny();
  LoraAdapter a = molora_adapter(c, 2);
  const std::string dir = test::temp_dir() + "/molora_bad";
  save_peft_adapter(a, dir, "tiny");
  const std::string cfg = dir + "/" + kMoloraConfigFile;
  const std::string good = read_text_file(cfg);
  auto expect_refused = [&](const std::string& text, const std::string& needle) {
    write_file_atomic(cfg, text);
    try {
      load_peft_adapter(dir, c);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  auto replaced = [&](const std::string& from, const std::string& to) {
    std::string t = good;
    t.replace(t.find(from), from.size(), to);
    return t;
  };
  expect_refused(replaced("\"top_k\": 2", "\"top_k\": 2, \"jitter\": 0.1"), "unknown field 'jitter'");
  expect_refused(replaced("\"top_k\": 2", "\"top_k\": 5"), "top-k expected 1..4");
  expect_refused(replaced("\"num_experts\": 4", "\"num_experts\": 5"), "missing tensor");
  expect_refused(replaced("\"r\": 3", "\"r\": 2"), "expected shape");
  expect_refused(replaced("\"MOLORA\"", "\"LORA\""), "peft_type expected MOLORA");
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
