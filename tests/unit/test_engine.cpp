// The training engine's buffer plan: what a step allocates is what the memory estimate counts.
#include <algorithm>
#include <cmath>

#include "model/config.h"
#include "model/decoder.h"
#include "model/init.h"
#include "model/kv_cache.h"
#include "test_util.h"
#include "train/data.h"
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
  int64_t experts = 0;  // MoLoRA on the FFN (top-2) when > 0
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
    MoloraConfig mc;
    mc.experts = pc.experts;
    mc.top_k = 2;
    lora = pc.experts > 0 ? LoraAdapter::create_with_experts(model->config, lc, mc, 1)
                          : LoraAdapter::create(model->config, lc, 1);
  }
  TrainEngine engine(*model, pc.full ? nullptr : &lora, pc.full ? &grads : nullptr, eo);
  for (const auto& [B, L] : {std::pair<int64_t, int64_t>{2, 9}, {3, 5}}) {
    const TrainBatch batch = batch_of(B, L, 40);
    engine.forward_backward(batch, 0.01f, 1);
    engine.forward_loss(batch);
    const int64_t estimate = TrainEngine::working_bytes(*model, B, L, eo, pc.full ? nullptr : &lora, pc.full) -
                             TrainEngine::kernel_scratch_bytes(*model, B, L, eo, pc.full ? nullptr : &lora);
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
                                           PlanCase{"molora", false, false, 0.0, false, false, 4},
                                           PlanCase{"molora_recompute", false, true, 0.0, false, false, 3},
                                           PlanCase{"full", true, false, 0.0, false},
                                           PlanCase{"full_recompute", true, true, 0.0, false}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace taia

#include "core/ggml_quants.h"
#include "core/rng.h"
#include "model/decoder.h"
#include "model/gguf_lora.h"
#include "model/loader.h"
#include "model/merge.h"
#include "io/gguf.h"
#include <cstring>

namespace taia {
namespace {

std::string quant_fixture(const char* name) { return std::string(TAIA_TESTS_DIR) + "/data/quant/" + name; }

// A GGUF quantized by llama-quantize, kept quantized in memory, gives the logits of the same file
// dequantized to F32 on load, for every block type and the trained fixture: taia keeps the
// activations in F32, so the only difference is the order of the sums (tolerance 1e-5 of the
// largest logit).
TEST(QuantizedBase, LogitsEqualTheDequantizedModels) {  // with --exact-activations
  const std::vector<int32_t> ids{1, 17, 200, 3, 45, 99, 128, 5, 250, 7};
  for (const char* file : {"tiny-q4_0.gguf", "tiny-q4_1.gguf", "tiny-q5_0.gguf", "tiny-q5_1.gguf", "tiny-q8_0.gguf",
                           "tiny-q2_k.gguf", "tiny-q3_k.gguf", "tiny-q4_k.gguf", "tiny-q5_k.gguf", "tiny-q6_k.gguf",
                           "tiny-q4_k_m.gguf", "trained-q8_0.gguf", "trained-q4_k_m.gguf"}) {
    SCOPED_TRACE(file);
    auto q = load_model(quant_fixture(file));
    LoadOptions dense;
    dense.linear_dtype = DType::F32;
    auto f = load_model(quant_fixture(file), dense);
    EXPECT_TRUE(q->has_block_weights());
    EXPECT_FALSE(f->has_block_weights());
    EXPECT_LT(q->arena.capacity(), f->arena.capacity() / 2);  // held at its quantized size
    const size_t V = size_t(q->config.vocab_size);
    std::vector<float> lq(ids.size() * V), lf(lq.size()), lq8(lq.size());
    for (auto [m, out] : {std::pair{q.get(), &lq}, std::pair{f.get(), &lf}, std::pair{q.get(), &lq8}}) {
      Decoder d(*m);
      d.set_exact_activations(out != &lq8);
      KVCache cache(m->config, int64_t(ids.size()));
      d.forward(cache, ids.data(), 4, out->data(), true);  // a prefill (widened tiles) ...
      for (size_t t = 4; t < ids.size(); ++t)               // ... then decode steps (matrix-vector kernel)
        d.forward(cache, &ids[t], 1, out->data() + t * V, true);
    }
    const float scale = test::max_abs(lf);
    EXPECT_LE(test::max_abs_diff(lq, lf), 1e-5f * std::max(1.0f, scale));
    EXPECT_GT(scale, 0.5f);
    // The default path of up to 8 rows (8-bit activations, kernels/quant_dot): near, not equal.
    EXPECT_LE(test::max_abs_diff(lq8, lq), 0.05f * scale);
    EXPECT_GT(test::max_abs_diff(lq8, lq), 1e-6f);
  }
}

// QLoRA: LoRA gradients over the quantized base equal those over the same weights dequantized
// (whose F32 path check_train_parity.py compares with PyTorch); the frozen quantized
// projections are never folded into an F32 copy.
TEST(QuantizedBase, LoraGradientsEqualTheDequantizedModels) {
  auto q = load_model(quant_fixture("tiny-q4_k_m.gguf"));
  LoadOptions dense;
  dense.linear_dtype = DType::F32;
  auto f = load_model(quant_fixture("tiny-q4_k_m.gguf"), dense);
  LoraConfig lc;
  lc.rank = 4;
  lc.alpha = 8;
  lc.dropout = 0;
  LoraAdapter aq = LoraAdapter::create(q->config, lc, 3), af = LoraAdapter::create(f->config, lc, 3);
  for (LoraAdapter* a : {&aq, &af}) {
    Rng rng(4);
    for (auto& layer : a->layers)
      for (auto& m : layer)
        if (m) for (float& b : m->B) b = float(0.2 * rng.normal());
  }
  TrainBatch batch;
  batch.B = 2;
  batch.L = 12;
  for (int i = 0; i < 24; ++i) {
    batch.tokens.push_back(int32_t((i * 37 + 5) % 256));
    batch.targets.push_back(i % 12 == 11 ? -1 : int32_t((i * 37 + 42) % 256));
  }
  TrainEngine eq(*q, &aq, nullptr, EngineOptions{}), ef(*f, &af, nullptr, EngineOptions{});
  const double loss_q = eq.forward_backward(batch, 1.0f / 22, 1), loss_f = ef.forward_backward(batch, 1.0f / 22, 1);
  EXPECT_NEAR(loss_q, loss_f, 1e-4 * loss_f);
  float worst = 0, scale = 0;
  for (int64_t l = 0; l < q->config.num_layers; ++l)
    for (int i = 0; i < kNumProj; ++i) {
      const LoraModule *mq = aq.find(l, Proj(i)), *mf = af.find(l, Proj(i));
      ASSERT_TRUE(mq && mf);
      for (auto [gq, gf] : {std::pair{&mq->dA, &mf->dA}, std::pair{&mq->dB, &mf->dB}})
        for (size_t k = 0; k < gq->size(); ++k) {
          worst = std::max(worst, std::abs((*gq)[k] - (*gf)[k]));
          scale = std::max(scale, std::abs((*gf)[k]));
        }
    }
  EXPECT_GT(scale, 1e-3f);
  EXPECT_LE(worst, 1e-4f * scale);
  // Planned without F32 copies of the quantized projections.
  EXPECT_LT(TrainEngine::working_bytes(*q, 2, 12, EngineOptions{}, &aq, false),
            TrainEngine::working_bytes(*f, 2, 12, EngineOptions{}, &af, false));
}

}  // namespace
}  // namespace taia

namespace taia {
namespace {

// A TAIA merge into a quantized base written as GGUF: every tensor the merge did not change is
// copied byte for byte (its quantized type kept), the changed attention tensors are re-quantized
// to their own type (or the --dtype asked for), and the file reloads to the merged model's logits
// within the requantization's error.
TEST(QuantizedBase, GgufExportCopiesUnchangedTensorsAndRequantizesTheMerged) {
  const std::string base = quant_fixture("tiny-q4_k_m.gguf");
  LoadOptions dense;
  dense.block_dtype = DType::F32;
  auto model = load_model(base, dense);
  LoraConfig lc;
  lc.rank = 4;
  LoraAdapter a = LoraAdapter::create(model->config, lc, 3);
  Rng rng(5);
  for (auto& layer : a.layers)
    for (auto& m : layer)
      if (m) for (float& b : m->B) b = float(0.05 * rng.normal());
  merge_adapter(*model, a, parse_mode("taia"));
  for (std::optional<DType> dtype : {std::optional<DType>(), std::optional<DType>(DType::Q8_0)}) {
    const std::string out = test::temp_dir() + "/taia.gguf";
    const GgufModelExport report = save_gguf_model(*model, base, out, dtype);
    GgufFile b(base), e(out);
    ASSERT_EQ(b.tensors().size(), e.tensors().size());
    for (const GgufTensor& t : b.tensors()) {
      const GgufTensor* x = e.find_tensor(t.name);
      ASSERT_NE(x, nullptr) << t.name;
      const bool attention = t.name.find(".attn_q.") != std::string::npos || t.name.find(".attn_k.") != std::string::npos ||
                             t.name.find(".attn_v.") != std::string::npos ||
                             t.name.find(".attn_output.") != std::string::npos;
      EXPECT_EQ(report.rewritten.count(t.name), attention ? 1u : 0u) << t.name;
      if (!attention) {
        EXPECT_EQ(x->type, t.type) << t.name;
        ASSERT_EQ(x->nbytes, t.nbytes) << t.name;
        EXPECT_EQ(std::memcmp(x->data, t.data, t.nbytes), 0) << t.name << " not copied byte for byte";
      } else {
        EXPECT_EQ(x->type, dtype ? ggml_type_of(*dtype) : t.type) << t.name;  // default: its own type
      }
    }
    EXPECT_EQ(report.copied, int64_t(b.tensors().size()) - 4);
    auto reloaded = load_model(out);
    const std::vector<int32_t> ids{1, 17, 200, 3, 45, 99};
    std::vector<float> lm(ids.size() * 256), lr(lm.size());
    for (auto [m, dst] : {std::pair{model.get(), &lm}, std::pair{reloaded.get(), &lr}}) {
      Decoder d(*m);
      KVCache cache(m->config, int64_t(ids.size()));
      d.forward(cache, ids.data(), int64_t(ids.size()), dst->data(), true);
    }
    const float scale = test::max_abs(lm);
    // The merged attention weights re-quantized: 8 bits keep the logits within 2 % of the largest,
    // its own Q4_K / Q6_K within 25 % on this random model (whose logits are small sums of many
    // weights, each off by up to half a 4-bit step).
    EXPECT_LE(test::max_abs_diff(lm, lr), (dtype ? 0.02f : 0.25f) * scale);
  }
}


// A step's loss is the mean over all its target tokens, however the step is split: two
// micro-batches of 3 and 300 target tokens give the gradient of the one batch holding both
// sequences, the 3-token sequence weighing 3 / 303 (a mean of the micro-batches' means would give
// it half).
TEST(StepLoss, MicroBatchesOf3And300TargetsWeighByTheirTokens) {
  auto model = init_model(test::small_config(40, 16, 24, 2, 4, 2, 4, 320), 3, DType::F32, InitScheme::Full, 0.1f);
  FullGrads grads = make_full_grads(*model, parse_targets("all"));
  TrainEngine engine(*model, nullptr, &grads, EngineOptions{});
  auto sequence = [](int64_t len, uint64_t seed) {
    Example e;
    Rng rng(seed);
    for (int64_t t = 0; t < len; ++t) e.ids.push_back(int32_t(3 + rng.next_u64() % 37));
    e.targets.assign(size_t(len), -1);
    for (int64_t t = 0; t + 1 < len; ++t) e.targets[size_t(t)] = e.ids[size_t(t + 1)];
    return e;
  };
  const std::vector<Example> examples{sequence(4, 1), sequence(301, 2)};
  const TrainBatch short_mb = make_batch(examples, {0}, 0), long_mb = make_batch(examples, {1}, 0);
  const TrainBatch both = make_batch(examples, {0, 1}, 0);  // padded to 301
  ASSERT_EQ(short_mb.target_count(), 3);
  ASSERT_EQ(long_mb.target_count(), 300);
  ASSERT_EQ(count_targets(examples, {0, 1}), 303);
  auto gradients = [&](const std::vector<TrainBatch>& micro, int64_t targets, double* loss) {
    grads.zero();
    *loss = accumulate_step_gradients(engine, micro, targets, 1) / double(targets);
    std::vector<float> flat;
    for (const auto& [name, g] : grads.by_name) flat.insert(flat.end(), g.begin(), g.end());
    return flat;
  };
  double loss_split = 0, loss_one = 0, loss_short = 0, loss_long = 0;
  const std::vector<float> split = gradients({short_mb, long_mb}, 303, &loss_split);
  const std::vector<float> one = gradients({both}, 303, &loss_one);
  const std::vector<float> g_short = gradients({short_mb}, 3, &loss_short);
  const std::vector<float> g_long = gradients({long_mb}, 300, &loss_long);
  EXPECT_NEAR(loss_split, loss_one, 1e-6 * loss_one);
  EXPECT_NEAR(loss_split, (3 * loss_short + 300 * loss_long) / 303, 1e-6 * loss_one);
  double largest = 0, diff_one = 0, diff_weighted = 0, diff_mean_of_means = 0;
  for (size_t i = 0; i < split.size(); ++i) {
    largest = std::max(largest, double(std::abs(one[i])));
    diff_one = std::max(diff_one, double(std::abs(split[i] - one[i])));
    diff_weighted = std::max(diff_weighted, std::abs(split[i] - (3.0 * g_short[i] + 300.0 * g_long[i]) / 303.0));
    diff_mean_of_means = std::max(diff_mean_of_means, std::abs(split[i] - (g_short[i] + g_long[i]) / 2.0));
  }
  EXPECT_LT(diff_one, 1e-5 * largest);
  EXPECT_LT(diff_weighted, 1e-5 * largest);
  EXPECT_GT(diff_mean_of_means, 1e-2 * largest);  // the weighting this replaced is far off
}

// The steps of an epoch depend on the global batch alone: every split of it into micro-batches
// holds the same sequences, in length order.
TEST(StepLoss, StepsAreGlobalBatchesWhateverTheMicroBatchSize) {
  std::vector<Example> examples;
  for (int64_t i = 0; i < 53; ++i) {
    Example e;
    e.ids.assign(size_t(2 + (i * 37) % 29), 1);
    e.targets.assign(e.ids.size(), 1);
    examples.push_back(e);
  }
  const auto steps = plan_step_batches(examples, 8, 42, 0);
  ASSERT_EQ(steps.size(), 7u);  // 6 of 8, then 5
  EXPECT_EQ(steps.back().size(), 5u);
  std::vector<size_t> seen;
  for (const auto& s : steps) {
    for (int64_t b : {1, 2, 4, 8}) {
      std::vector<size_t> joined;
      for (const auto& m : split_micro_batches(s, b)) {
        EXPECT_LE(int64_t(m.size()), b);
        joined.insert(joined.end(), m.begin(), m.end());
      }
      EXPECT_EQ(joined, s);
    }
    seen.insert(seen.end(), s.begin(), s.end());
  }
  std::sort(seen.begin(), seen.end());
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], i);
  // Another epoch, another order; the same seed and epoch, the same plan.
  EXPECT_NE(plan_step_batches(examples, 8, 42, 1), steps);
  EXPECT_EQ(plan_step_batches(examples, 8, 42, 0), steps);
}
}  // namespace
}  // namespace taia

namespace taia {
namespace {

// One tiny config.json per family, each with its quirks on (read through config_from_hf_json, so
// the profiles and the recipe are what runs).
Json family_config(const std::string& family) {
  Json j = {{"vocab_size", 40}, {"hidden_size", 32}, {"intermediate_size", 48}, {"num_hidden_layers", 3},
            {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"max_position_embeddings", 64},
            {"rms_norm_eps", 1e-5}};
  const Json longrope = {{"type", "longrope"}, {"short_factor", {1.0, 1.5, 2.0}}, {"long_factor", {3.0, 5.0, 9.0}}};
  if (family == "llama") j.update({{"model_type", "llama"}, {"attention_bias", true}, {"mlp_bias", true}});
  if (family == "qwen2") j.update({{"model_type", "qwen2"}});
  if (family == "mistral") j.update({{"model_type", "mistral"}, {"sliding_window", 5}});
  if (family == "qwen3") j.update({{"model_type", "qwen3"}, {"head_dim", 12}});
  if (family == "gemma2")
    j.update({{"model_type", "gemma2"}, {"head_dim", 12}, {"query_pre_attn_scalar", 10},
              {"attn_logit_softcapping", 0.6}, {"final_logit_softcapping", 2.0}, {"sliding_window", 5}});
  if (family == "gemma3")
    j.update({{"model_type", "gemma3_text"}, {"head_dim", 12}, {"query_pre_attn_scalar", 10}, {"sliding_window", 5},
              {"layer_types", {"full_attention", "sliding_attention", "sliding_attention"}}});
  if (family == "phi3")
    j.update({{"model_type", "phi3"}, {"head_dim", 6}, {"sliding_window", 5}, {"original_max_position_embeddings", 8},
              {"rope_scaling", longrope}});
  if (family == "phi4_mini")
    j.update({{"model_type", "phi3"}, {"partial_rotary_factor", 0.75}, {"tie_word_embeddings", true},
              {"original_max_position_embeddings", 8}, {"rope_scaling", longrope}});
  if (family == "smollm3")
    j.update({{"model_type", "smollm3"}, {"no_rope_layers", {1, 0, 1}}, {"use_sliding_window", true},
              {"sliding_window", 5}});
  return j;
}

class InferenceAndTraining : public ::testing::TestWithParam<std::string> {};

// The decoder (inference) and the training engine follow one layer recipe: on the same weights,
// the loss of the decoder's logits equals the engine's loss, summed and at every position on its
// own (the engine never holds all logits, so each position's log-softmax of its target is what
// is compared). Not bit-exact: the two multiply in different orders (GEMV / packed spans against
// batched GEMMs), so within float reordering: a relative 2e-6 of the sum (measured: up to
// ~3e-7), 1e-5 at a position (losses of 3-6 nats; measured: up to 2.2e-6 over the 9 families).
TEST_P(InferenceAndTraining, GiveTheSameLossOnTheSameWeights) {
  const ModelConfig c = config_from_hf_json(family_config(GetParam()), GetParam());
  auto model = init_model(c, 11, DType::F32, InitScheme::Full, 0.2f);
  const int64_t L = 12, V = c.vocab_size;
  TrainBatch batch = batch_of(1, L, V);

  KVCache cache(c, L);
  Decoder decoder(*model);
  std::vector<float> logits(size_t(L * V));
  decoder.forward(cache, batch.tokens.data(), L, logits.data(), /*all_logits=*/true);
  std::vector<double> position_loss(size_t(L), 0.0);  // cross-entropy of each target, in double
  double loss = 0;
  for (int64_t t = 0; t < L; ++t) {
    if (batch.targets[size_t(t)] < 0) continue;
    const float* row = logits.data() + t * V;
    const double mx = *std::max_element(row, row + V);
    double sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(double(row[v]) - mx);
    position_loss[size_t(t)] = mx + std::log(sum) - double(row[batch.targets[size_t(t)]]);
    loss += position_loss[size_t(t)];
  }

  TrainEngine engine(*model, nullptr, nullptr, EngineOptions{});
  const double trained = engine.forward_loss(batch);
  EXPECT_GT(loss, 1.0);
  EXPECT_NEAR(trained, loss, 2e-6 * loss) << GetParam();
  for (int64_t t = 0; t < L; ++t) {
    if (batch.targets[size_t(t)] < 0) continue;
    TrainBatch one = batch;  // the same tokens, only position t scored
    for (int64_t u = 0; u < L; ++u)
      if (u != t) one.targets[size_t(u)] = -1;
    EXPECT_NEAR(engine.forward_loss(one), position_loss[size_t(t)], 1e-5) << GetParam() << " position " << t;
  }
}

INSTANTIATE_TEST_SUITE_P(Families, InferenceAndTraining,
                         ::testing::Values("llama", "qwen2", "mistral", "qwen3", "gemma2", "gemma3", "phi3",
                                           "phi4_mini", "smollm3"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace taia
