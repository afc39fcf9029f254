#include <fstream>
#include <iostream>

#include "core/error.h"
#include "core/mmap_file.h"
#include "generate/generate.h"
#include "gguf_builder.h"
#include "core/json_util.h"
#include "io/safetensors.h"
#include "model/decoder.h"
#include "model/gguf_lora.h"
#include "model/init.h"
#include "model/loader.h"
#include "test_util.h"

namespace taia {
namespace {

ModelConfig tiny_config(Arch arch, int64_t kv_heads, bool tied) {
  ModelConfig c;
  c.arch = arch;
  c.vocab_size = 53;
  c.hidden_size = 32;
  c.intermediate_size = 72;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = kv_heads;
  c.head_dim = 8;
  c.rms_norm_eps = 1e-5f;
  c.max_position_embeddings = 64;
  c.tie_word_embeddings = tied;
  c.qkv_bias = arch == Arch::Qwen2;
  c.eos_token_ids = {2};
  return c;
}

std::vector<float> all_logits(const Model& m, const std::vector<int32_t>& ids) {
  Decoder d(m);
  KVCache cache(m.config, int64_t(ids.size()));
  std::vector<float> out(ids.size() * size_t(m.config.vocab_size));
  d.forward(cache, ids.data(), int64_t(ids.size()), out.data(), true);
  return out;
}

const std::vector<int32_t> kIds{1, 5, 9, 17, 33, 2, 40, 52, 0, 11, 7, 3};

// A packed batch: one shared prefix with two continuations that attend to it (the multiple-choice
// layout), plus an unrelated sequence in slots far away, all in one pass. Every wanted row's
// logits must equal those of running each full sequence on its own.
void check_packed_batch_matches_separate_sequences(const ModelConfig& config) {
  auto m = init_model(config, 3, DType::F32, InitScheme::Full, 0.1f);
  const size_t V = size_t(m->config.vocab_size);
  const std::vector<int32_t> prefix{1, 5, 9, 17}, opt_a{33, 2}, opt_b{40, 52, 8}, other{7, 3, 11};
  auto concat = [](std::vector<int32_t> a, const std::vector<int32_t>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  const auto ref_a = all_logits(*m, concat(prefix, opt_a));
  const auto ref_b = all_logits(*m, concat(prefix, opt_b));
  const auto ref_o = all_logits(*m, other);

  PackedBatch b;
  std::vector<std::pair<int64_t, const float*>> want;  // row -> reference logits
  for (size_t i = 0; i < prefix.size(); ++i) {
    KeySpans sp;
    sp.end[0] = int64_t(i) + 1;
    b.add(prefix[i], int64_t(i), int64_t(i), sp);
  }
  int64_t slot = 4;
  for (const auto* opt : {&opt_a, &opt_b}) {
    const int64_t start = slot;
    for (size_t j = 0; j < opt->size(); ++j) {
      KeySpans sp;
      sp.end[0] = 4;
      sp.begin[1] = start;
      sp.end[1] = slot + 1;
      const int64_t row = b.add((*opt)[j], 4 + int64_t(j), slot++, sp);
      want.push_back({row, (opt == &opt_a ? ref_a : ref_b).data() + (4 + j) * V});
    }
  }
  for (size_t i = 0; i < other.size(); ++i) {  // its own region, slots 20..22, non-contiguous with the rest
    KeySpans sp;
    sp.begin[0] = 20;
    sp.end[0] = 21 + int64_t(i);
    const int64_t row = b.add(other[i], int64_t(i), 20 + int64_t(i), sp);
    want.push_back({row, ref_o.data() + i * V});
  }
  want.insert(want.begin(), {3, ref_a.data() + 3 * V});  // the prefix's last row
  for (const auto& [row, ref] : want) b.logit_rows.push_back(row);
  Decoder d(*m);
  KVCache cache(m->config, 32);
  std::vector<float> out(want.size() * V);
  d.forward_packed(cache, b, out.data());
  for (size_t i = 0; i < want.size(); ++i)
    for (size_t v = 0; v < V; ++v) ASSERT_NEAR(out[i * V + v], want[i].second[v], 2e-5f) << "row " << want[i].first;

  b.logit_rows = {5, 2};  // not increasing
  EXPECT_THROW(d.forward_packed(cache, b, out.data()), Error);
  b.logit_rows = {0};
  b.slots[1] = 40;  // outside the cache
  EXPECT_THROW(d.forward_packed(cache, b, out.data()), Error);
}

// A Mistral whose window (3) is shorter than the sequences: packed spans are trimmed by the
// keys' positions.
ModelConfig windowed_config() {
  ModelConfig c = tiny_config(Arch::Mistral, 2, false);
  c.sliding_window = 3;
  return c;
}

TEST(Model, PackedBatchMatchesSeparateSequences) {
  check_packed_batch_matches_separate_sequences(tiny_config(Arch::Qwen2, 1, true));
}

TEST(Model, PackedBatchMatchesSeparateSequencesUnderASlidingWindow) {
  check_packed_batch_matches_separate_sequences(windowed_config());
}

void check_incremental_decoding_matches_one_batch(const ModelConfig& config) {
  auto m = init_model(config, 1, DType::F32, InitScheme::Full, 0.1f);
  const auto batch = all_logits(*m, kIds);
  Decoder d(*m);
  KVCache cache(m->config, int64_t(kIds.size()));
  const size_t V = size_t(m->config.vocab_size);
  std::vector<float> step(V);
  // First 5 positions in one prefill, the rest one at a time.
  std::vector<float> prefill(5 * V);
  d.forward(cache, kIds.data(), 5, prefill.data(), true);
  for (size_t i = 0; i < 5 * V; ++i) ASSERT_NEAR(prefill[i], batch[i], 1e-5f);
  for (size_t t = 5; t < kIds.size(); ++t) {
    d.forward(cache, &kIds[t], 1, step.data(), false);
    for (size_t v = 0; v < V; ++v) ASSERT_NEAR(step[v], batch[t * V + v], 1e-5f) << "position " << t;
  }
  EXPECT_EQ(cache.length(), int64_t(kIds.size()));
}

TEST(Model, IncrementalDecodingMatchesOneBatch) {
  check_incremental_decoding_matches_one_batch(tiny_config(Arch::Llama, 2, false));
}

TEST(Model, IncrementalDecodingMatchesOneBatchUnderASlidingWindow) {
  check_incremental_decoding_matches_one_batch(windowed_config());
}

// A ring KV cache (windowed layers keep window - 1 + rows_per_call rows) gives the full cache's
// logits: one prompt in calls of rows_per_call rows, then one token at a time far past the ring.
void check_ring_cache_matches_full_cache(const ModelConfig& config, DType kv_dtype = DType::F32) {
  auto m = init_model(config, 2, DType::F32, InitScheme::Full, 0.1f);
  std::vector<int32_t> ids;
  for (int i = 0; i < 40; ++i) ids.push_back(int32_t((i * 7 + 3) % config.vocab_size));
  const size_t V = size_t(config.vocab_size), n = ids.size();
  std::vector<float> full(n * V), ring(n * V);
  {
    Decoder d(*m);
    KVCache cache(m->config, int64_t(n), 0, kv_dtype);
    d.forward(cache, ids.data(), int64_t(n), full.data(), true);
  }
  Decoder d(*m);
  KVCache cache(m->config, int64_t(n), 2, kv_dtype);
  ASSERT_TRUE(cache.has_rings());
  KVCache plain(m->config, int64_t(n), 0, kv_dtype);
  EXPECT_LT(cache.bytes(), plain.bytes());
  for (int64_t l = 0; l < config.num_layers; ++l)
    EXPECT_EQ(cache.layer_rows(l), config.layer_window(l) ? config.layer_window(l) + 1 : int64_t(n)) << "layer " << l;
  d.forward(cache, ids.data(), 15, ring.data(), true);  // 8 calls of <= 2 rows
  for (size_t t = 15; t < n; ++t) d.forward(cache, &ids[t], 1, ring.data() + t * V, true);
  EXPECT_LE(test::max_abs_diff(full, ring), kv_dtype == DType::F32 ? 1e-5f : 3e-5f);  // sums in another order
  // A call that would overwrite keys it still reads is refused, never silently wrong.
  PackedBatch b;  // 6 rows in one call: slot 0 (read by row 0) and slot 5 share a row of the ring
  for (int64_t t = 0; t < 6; ++t) {
    KeySpans sp;
    sp.end[0] = t + 1;
    b.add(ids[size_t(t)], t, t, sp);
  }
  KVCache small(m->config, int64_t(n), 2);
  std::vector<float> out(V);
  b.logit_rows = {5};
  EXPECT_THROW(d.forward_packed(small, b, out.data()), Error);
}

TEST(Model, RingKvCacheOfWindowedLayersMatchesTheFullCache) {
  check_ring_cache_matches_full_cache(windowed_config());
  for (DType kv : {DType::BF16, DType::F16}) check_ring_cache_matches_full_cache(windowed_config(), kv);
  ModelConfig wide = windowed_config();  // heads of 32: whole Q8_0 blocks
  wide.head_dim = 32;
  check_ring_cache_matches_full_cache(wide, DType::Q8_0);
}

// Caches of every type (--kv-dtype) against the F32 cache on the same prompt, prefill and decode:
// the logits move by the rounding of the stored keys and values only (F16's 11 bits least, BF16's
// 8 and Q8_0's 8 per block more), and a type the heads cannot hold is refused.
TEST(Model, KvCacheTypesStayNearTheF32Cache) {
  ModelConfig c = tiny_config(Arch::Llama, 2, false);
  c.head_dim = 32;
  auto m = init_model(c, 3, DType::F32, InitScheme::Full, 0.2f);
  std::vector<int32_t> ids;
  for (int i = 0; i < 30; ++i) ids.push_back(int32_t((i * 11 + 5) % c.vocab_size));
  const size_t V = size_t(c.vocab_size), n = ids.size();
  auto run = [&](DType kv) {
    Decoder d(*m);
    d.set_kv_dtype(kv);
    KVCache cache(c, int64_t(n), 0, d.kv_dtype());
    std::vector<float> out(n * V);
    d.forward(cache, ids.data(), 20, out.data(), true);
    for (size_t t = 20; t < n; ++t) d.forward(cache, &ids[t], 1, out.data() + t * V, true);
    return out;
  };
  const std::vector<float> exact = run(DType::F32);
  const float scale = test::max_abs(exact);
  float f16_diff = 0.0f;
  for (auto [kv, bound] : {std::pair{DType::F16, 2e-3f}, std::pair{DType::BF16, 3e-2f}, std::pair{DType::Q8_0, 3e-2f}}) {
    const std::vector<float> got = run(kv);
    const float diff = test::max_abs_diff(got, exact);
    if (kv == DType::F16) f16_diff = diff;
    else EXPECT_GT(diff, f16_diff) << dtype_name(kv);
    std::cout << "kv " << dtype_name(kv) << ": max |logit - F32 cache's| = " << diff << " (max |logit| " << scale
              << ")" << std::endl;
    EXPECT_GT(diff, 0.0f) << dtype_name(kv);
    EXPECT_LE(diff, bound * scale) << dtype_name(kv);
  }
  auto small = init_model(tiny_config(Arch::Llama, 2, false), 3, DType::F32, InitScheme::Full, 0.5f);
  Decoder d(*small);  // head_dim 8
  EXPECT_THROW(d.set_kv_dtype(DType::Q8_0), Error);
  EXPECT_THROW(d.set_kv_dtype(DType::Q4_0), Error);
}

// Gemma 2 (soft-caps, sandwich norms, windows on even layers) and Gemma 3 (QK-norm, a local
// RoPE base on windowed layers, every third layer global) through the same decoding paths.
ModelConfig gemma_config(Arch arch) {
  ModelConfig c = tiny_config(arch, 2, true);
  c.num_layers = 3;
  c.qkv_bias = false;
  apply_arch_layer(c);
  c.query_pre_attn_scalar = 6;
  c.sliding_window = 3;
  if (arch == Arch::Gemma2) {
    c.attn_softcap = 1.0;
    c.final_softcap = 2.0;
    c.sliding_window_pattern = 2;
  } else {
    c.qk_norm = true;
    c.rope_local_theta = 10000.0;
    c.rope_theta = 1000000.0;
    c.sliding_window_pattern = 3;
  }
  return c;
}

TEST(Model, GemmaPackedBatchesAndIncrementalDecodingMatchOneBatch) {
  for (Arch arch : {Arch::Gemma2, Arch::Gemma3}) {
    SCOPED_TRACE(arch_name(arch));
    check_packed_batch_matches_separate_sequences(gemma_config(arch));
    check_incremental_decoding_matches_one_batch(gemma_config(arch));
    check_ring_cache_matches_full_cache(gemma_config(arch));
  }
}

// The window changes exactly the positions that have keys beyond it.
TEST(Model, SlidingWindowChangesOnlyPositionsPastIt) {
  ModelConfig full = windowed_config();
  full.sliding_window = 0;
  auto windowed = init_model(windowed_config(), 4, DType::F32, InitScheme::Full, 0.1f);
  auto unwindowed = init_model(full, 4, DType::F32, InitScheme::Full, 0.1f);
  const auto a = all_logits(*windowed, kIds), b = all_logits(*unwindowed, kIds);
  const size_t V = size_t(full.vocab_size);
  for (size_t t = 0; t < kIds.size(); ++t) {
    float diff = 0;
    for (size_t v = 0; v < V; ++v) diff = std::max(diff, std::abs(a[t * V + v] - b[t * V + v]));
    if (t < 3) EXPECT_EQ(diff, 0.0f) << "position " << t;
    else EXPECT_GT(diff, 1e-4f) << "position " << t;
  }
}

TEST(Model, SavedFolderReloadsToTheSameLogits) {
  const std::string dir = test::temp_dir() + "/m";
  auto m = init_model(tiny_config(Arch::Qwen2, 1, true), 3, DType::BF16, InitScheme::Full, 0.1f);
  save_hf_folder(*m, dir + "32", DType::F32);  // lossless: norms and biases stay F32
  auto exact = load_model(dir + "32");
  EXPECT_EQ(exact->linear_dtype, DType::F32);
  EXPECT_LE(test::max_abs_diff(all_logits(*m, kIds), all_logits(*exact, kIds)), 1e-6f);
  save_hf_folder(*m, dir, DType::BF16);  // norms and biases rounded to BF16, as HF saves a BF16 model
  auto r = load_model(dir);
  EXPECT_EQ(r->linear_dtype, DType::BF16);
  EXPECT_EQ(r->config.arch, Arch::Qwen2);
  EXPECT_TRUE(r->config.tie_word_embeddings);
  EXPECT_LE(test::max_abs_diff(all_logits(*m, kIds), all_logits(*r, kIds)), 3e-2f);
  // Loading the BF16 folder as F32 changes storage, not values.
  LoadOptions f32;
  f32.linear_dtype = DType::F32;
  auto w = load_model(dir, f32);
  EXPECT_EQ(w->linear_dtype, DType::F32);
  EXPECT_LE(test::max_abs_diff(all_logits(*w, kIds), all_logits(*r, kIds)), 1e-5f);
}

// HF -> GGUF as llama.cpp's converter does it: Q/K rows permuted within each head so that the
// rotary pairs become adjacent, tensor dims reversed, names mapped.
void write_gguf_from(Model& m, const std::string& path, bool permute_qk) {
  const ModelConfig& c = m.config;
  test::GgufBuilder b;
  const std::string a = arch_profile(c.arch).gguf_arch;
  b.kv_str("general.architecture", a);
  b.kv_u32(a + ".embedding_length", uint32_t(c.hidden_size));
  b.kv_u32(a + ".feed_forward_length", uint32_t(c.intermediate_size));
  b.kv_u32(a + ".block_count", uint32_t(c.num_layers));
  b.kv_u32(a + ".attention.head_count", uint32_t(c.num_heads));
  b.kv_u32(a + ".attention.head_count_kv", uint32_t(c.num_kv_heads));
  b.kv_u32(a + ".attention.key_length", uint32_t(c.head_dim));
  if (c.arch == Arch::Phi3) {  // as llama.cpp's converter writes Phi-3 (Phi3MiniModel)
    b.kv_u32(a + ".attention.sliding_window", uint32_t(c.sliding_window));
    b.kv_u32(a + ".rope.dimension_count", uint32_t(c.head_dim));
    if (c.rope_scaling.type == RopeScaling::Type::LongRope) {
      b.kv_u32(a + ".rope.scaling.original_context_length", uint32_t(c.rope_scaling.original_max_position_embeddings));
      b.kv_f32(a + ".rope.scaling.attn_factor", c.rope_scaling.attention_factor);
      b.tensor_f32("rope_factors_long.weight", {uint64_t(c.head_dim / 2)}, c.rope_scaling.long_factor);
      b.tensor_f32("rope_factors_short.weight", {uint64_t(c.head_dim / 2)}, c.rope_scaling.short_factor);
    }
  }
  if (c.arch == Arch::Gemma2) {  // as llama.cpp's converter writes Gemma 2
    b.kv_f32(a + ".attn_logit_softcapping", float(c.attn_softcap));
    b.kv_f32(a + ".final_logit_softcapping", float(c.final_softcap));
    b.kv_u32(a + ".attention.sliding_window", uint32_t(c.sliding_window));
  }
  if (c.arch == Arch::Gemma3) {  // Gemma3Model: the window, the global layers' linear scaling
    b.kv_u32(a + ".attention.sliding_window", uint32_t(c.sliding_window));
    if (c.rope_scaling.type == RopeScaling::Type::Linear) {
      b.kv_str(a + ".rope.scaling.type", "linear");
      b.kv_f32(a + ".rope.scaling.factor", c.rope_scaling.factor);
    }
  }
  b.kv_f32(a + ".attention.layer_norm_rms_epsilon", c.rms_norm_eps);
  b.kv_f32(a + ".rope.freq_base", c.rope_theta);
  b.kv_u32(a + ".context_length", uint32_t(c.max_position_embeddings));
  b.kv_u32("tokenizer.ggml.eos_token_id", 2);
  for (TensorView* t : m.named_tensors()) {
    std::vector<float> v(size_t(t->numel()));
    convert_to_f32(t->dtype, t->data, v.data(), v.size());
    const std::string g = gguf_tensor_name(t->name, c.norm_layout());
    if (c.norm_plus_one && g.find("norm") != std::string::npos)
      for (float& x : v) x += 1.0f;  // llama.cpp stores Gemma's norms as 1 + weight
    const bool is_q = g.find("attn_q.") != std::string::npos, is_k = g.find("attn_k.") != std::string::npos;
    if (permute_qk && (is_q || is_k)) {
      const int64_t heads = is_q ? c.num_heads : c.num_kv_heads, hd = c.head_dim, half = hd / 2;
      const int64_t row = t->rank() == 2 ? t->shape[1] : 1;
      std::vector<float> p(v.size());
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t j = 0; j < 2; ++j)
          for (int64_t i = 0; i < half; ++i)
            for (int64_t k = 0; k < row; ++k)
              p[size_t((h * hd + 2 * i + j) * row + k)] = v[size_t((h * hd + j * half + i) * row + k)];
      v = p;
    }
    std::vector<uint64_t> ne(t->shape.rbegin(), t->shape.rend());
    b.tensor_f32(g, ne, v);
  }
  b.write(path);
}

TEST(Model, GgufFromHfFolderGivesTheSameLogits) {
  for (Arch arch : {Arch::Llama, Arch::Qwen2}) {
    auto m = init_model(tiny_config(arch, 2, arch == Arch::Qwen2), 5, DType::F32, InitScheme::Full, 0.1f);
    const std::string path = test::temp_dir() + "/m.gguf";
    write_gguf_from(*m, path, arch == Arch::Llama);
    auto g = load_model(path);
    EXPECT_EQ(g->source_format, "gguf");
    EXPECT_EQ(g->config.arch, arch);
    EXPECT_EQ(g->config.tie_word_embeddings, arch == Arch::Qwen2);
    EXPECT_EQ(g->config.qkv_bias, arch == Arch::Qwen2);
    EXPECT_LE(test::max_abs_diff(all_logits(*m, kIds), all_logits(*g, kIds)), 1e-5f) << arch_name(arch);
  }
}

// Tensors a GGUF stores as they are kept are used from the file's copy-on-write mapping (no
// copy); LLaMA's permuted Q/K rows are converted into the arena. A write (what merging an
// adapter does) changes the model, never the file.
TEST(Model, GgufTensorsStoredAsKeptAreUsedInPlaceCopyOnWrite) {
  auto m = init_model(tiny_config(Arch::Llama, 2, false), 5, DType::F32, InitScheme::Full, 0.1f);
  const std::string path = test::temp_dir() + "/inplace.gguf";
  write_gguf_from(*m, path, /*permute_qk=*/true);
  const std::string file_before = read_text_file(path);
  auto g = load_model(path);
  ASSERT_NE(g->mapping, nullptr);
  auto in_mapping = [&](const std::string& name) {
    const auto* p = static_cast<const uint8_t*>(g->find(name)->data);
    return p >= g->mapping->data() && p < g->mapping->data() + g->mapping->size();
  };
  EXPECT_TRUE(in_mapping(kEmbedTensor));
  EXPECT_TRUE(in_mapping(proj_tensor_name(0, Proj::V, "weight")));
  EXPECT_TRUE(in_mapping(proj_tensor_name(1, Proj::Down, "weight")));
  EXPECT_FALSE(in_mapping(proj_tensor_name(0, Proj::Q, "weight")));  // un-permuted into the arena
  EXPECT_FALSE(in_mapping(proj_tensor_name(0, Proj::K, "weight")));
  size_t qk_bytes = 0;  // F32 Q and K of every layer, each slice 64-byte aligned
  for (int64_t l = 0; l < g->config.num_layers; ++l)
    for (Proj p : {Proj::Q, Proj::K}) qk_bytes += Arena::aligned(g->find(proj_tensor_name(l, p, "weight"))->nbytes());
  EXPECT_EQ(g->arena.capacity(), qk_bytes);  // the arena holds Q and K only
  EXPECT_GT(g->mapped_bytes, 0u);
  const auto before = all_logits(*g, kIds);
  EXPECT_LE(test::max_abs_diff(all_logits(*m, kIds), before), 1e-5f);
  LoadOptions copy;  // --no-mmap: everything in the arena, the same values
  copy.copy_weights = true;
  auto copied = load_model(path, copy);
  EXPECT_EQ(copied->mapping, nullptr);
  EXPECT_EQ(copied->mapped_bytes, 0u);
  EXPECT_EQ(copied->weight_bytes(), copied->arena.capacity());
  EXPECT_GT(copied->arena.capacity(), g->arena.capacity() + g->mapped_bytes / 2);
  EXPECT_LE(test::max_abs_diff(before, all_logits(*copied, kIds)), 0.0f);
  float* up = g->find(proj_tensor_name(0, Proj::Up, "weight"))->ptr<float>();
  for (int64_t i = 0; i < 64; ++i) up[i] *= 3.0f;
  EXPECT_GT(test::max_abs_diff(before, all_logits(*g, kIds)), 1e-4f);
  EXPECT_EQ(read_text_file(path), file_before);  // the file is unchanged
  EXPECT_LE(test::max_abs_diff(before, all_logits(*load_model(path), kIds)), 0.0f);
}

// Qwen3 in GGUF (llama.cpp's `qwen3`): attn_q_norm / attn_k_norm, key_length for a head_dim that
// is not hidden / heads, no Q/K permutation (NEOX rope).
TEST(Model, Qwen3GgufGivesTheSameLogits) {
  ModelConfig c = tiny_config(Arch::Qwen3, 2, true);
  c.qkv_bias = false;
  c.qk_norm = true;
  c.head_dim = 12;
  auto m = init_model(c, 6, DType::F32, InitScheme::Full, 0.1f);
  const std::string path = test::temp_dir() + "/q3.gguf";
  write_gguf_from(*m, path, false);
  auto g = load_model(path);
  EXPECT_EQ(g->config.arch, Arch::Qwen3);
  EXPECT_TRUE(g->config.qk_norm);
  EXPECT_EQ(g->config.head_dim, 12);
  EXPECT_LE(test::max_abs_diff(all_logits(*m, kIds), all_logits(*g, kIds)), 1e-5f);
  // The QK-norm weights are applied: scaling layer 0's q_norm moves the logits.
  const auto before = all_logits(*g, kIds);
  float* qn = g->find(norm_tensor_name(0, LayerNorm::Q, NormLayout::PreNorm))->ptr<float>();
  for (int64_t i = 0; i < c.head_dim; ++i) qn[i] *= 1.5f;
  EXPECT_GT(test::max_abs_diff(before, all_logits(*g, kIds)), 1e-3f);
}

// Gemma 2 in GGUF as llama.cpp writes it: norms stored as 1 + weight, soft-caps and the window in
// metadata, the attention scale from head_dim (query_pre_attn_scalar is not in the file).
TEST(Model, Gemma2GgufGivesTheSameLogits) {
  ModelConfig c = gemma_config(Arch::Gemma2);
  c.query_pre_attn_scalar = double(c.head_dim);  // the scale llama.cpp assumes (not in the file)
  auto m = init_model(c, 8, DType::F32, InitScheme::Full, 0.1f);
  const std::string path = test::temp_dir() + "/g2.gguf";
  write_gguf_from(*m, path, false);
  auto g = load_model(path);
  EXPECT_EQ(g->config.arch, Arch::Gemma2);
  EXPECT_EQ(g->config.layer_window(0), 3);
  EXPECT_EQ(g->config.layer_window(1), 0);
  EXPECT_DOUBLE_EQ(g->config.final_softcap, c.final_softcap);
  EXPECT_LE(test::max_abs_diff(all_logits(*m, kIds), all_logits(*g, kIds)), 1e-5f);
  // Written back as GGUF, the norms carry the 1 again: the file reloads to the same logits.
  const std::string again = test::temp_dir() + "/g2b.gguf";
  save_gguf_model(*g, path, again);
  auto h = load_model(again);
  EXPECT_LE(test::max_abs_diff(all_logits(*g, kIds), all_logits(*h, kIds)), 1e-6f);
}

// Phi-3: q, k, v and gate, up in fused tensors; a window on every layer.
ModelConfig phi3_config() {
  ModelConfig c = tiny_config(Arch::Phi3, 2, false);
  c.qkv_bias = false;
  c.fused_proj = true;
  c.sliding_window = 3;
  return c;
}

TEST(Model, Phi3PackedBatchesAndIncrementalDecodingMatchOneBatch) {
  check_packed_batch_matches_separate_sequences(phi3_config());
  check_incremental_decoding_matches_one_batch(phi3_config());
  check_ring_cache_matches_full_cache(phi3_config());
}

// The fused tensors hold the projections: q, k, v are views of qkv_proj's rows, gate and up of
// gate_up_proj's halves, so writing through one is seen by the other.
TEST(Model, Phi3ProjectionsAreViewsOfTheFusedTensors) {
  auto m = init_model(phi3_config(), 3, DType::F32, InitScheme::Full, 0.1f);
  const ModelConfig& c = m->config;
  LayerWeights& L = m->weights.layers[1];
  ASSERT_EQ(L.qkv.weight.shape, (std::vector<int64_t>{c.q_dim() + 2 * c.kv_dim(), c.hidden_size}));
  ASSERT_EQ(L.gate_up.weight.shape, (std::vector<int64_t>{2 * c.intermediate_size, c.hidden_size}));
  EXPECT_EQ(L.k.weight.ptr<float>(), L.qkv.weight.ptr<float>() + c.q_dim() * c.hidden_size);
  EXPECT_EQ(L.v.weight.ptr<float>(), L.qkv.weight.ptr<float>() + (c.q_dim() + c.kv_dim()) * c.hidden_size);
  EXPECT_EQ(L.up.weight.ptr<float>(), L.gate_up.weight.ptr<float>() + c.intermediate_size * c.hidden_size);
  EXPECT_EQ(m->find("model.layers.1.self_attn.qkv_proj.weight"), &L.qkv.weight);
  EXPECT_EQ(m->find("model.layers.1.mlp.gate_up_proj.weight"), &L.gate_up.weight);
  int fused = 0;
  for (TensorView* t : m->named_tensors()) {
    EXPECT_EQ(t->name.find("q_proj"), std::string::npos) << t->name;  // only the fused names are stored
    fused += t->name.find("qkv_proj") != std::string::npos || t->name.find("gate_up_proj") != std::string::npos;
  }
  EXPECT_EQ(fused, 2 * c.num_layers);
}

// Phi-3 in GGUF (llama.cpp's `phi3`): attn_qkv, the fused gate/up as ffn_up, the window, and
// LongRoPE's factors as rope_factors_short / rope_factors_long with the attention factor.
TEST(Model, Phi3GgufWithLongRopeGivesTheSameLogits) {
  ModelConfig c = phi3_config();
  c.rope_scaling.type = RopeScaling::Type::LongRope;
  c.rope_scaling.short_factor = {1.0f, 1.5f, 2.0f, 3.0f};
  c.rope_scaling.long_factor = {2.0f, 5.0f, 11.0f, 23.0f};
  c.rope_scaling.original_max_position_embeddings = 4;  // kIds pass it: the long factors
  c.rope_scaling.attention_factor = longrope_attention_factor(16.0, 4);
  auto m = init_model(c, 9, DType::F32, InitScheme::Full, 0.1f);
  const std::string path = test::temp_dir() + "/phi3.gguf";
  write_gguf_from(*m, path, false);
  auto g = load_model(path);
  EXPECT_EQ(g->config.arch, Arch::Phi3);
  EXPECT_TRUE(g->config.fused_proj);
  EXPECT_EQ(g->config.sliding_window, 3);
  EXPECT_EQ(g->config.rope_scaling.type, RopeScaling::Type::LongRope);
  EXPECT_EQ(g->config.rope_scaling.long_factor, c.rope_scaling.long_factor);
  EXPECT_FLOAT_EQ(g->config.rope_scaling.attention_factor, c.rope_scaling.attention_factor);
  EXPECT_LE(test::max_abs_diff(all_logits(*m, kIds), all_logits(*g, kIds)), 1e-5f);
  // The factors are applied: the same weights without LongRoPE give other logits.
  ModelConfig plain = c;
  plain.rope_scaling = RopeScaling{};
  auto p = init_model(plain, 9, DType::F32, InitScheme::Full, 0.1f);
  EXPECT_GT(test::max_abs_diff(all_logits(*m, kIds), all_logits(*p, kIds)), 1e-3f);
  // Written back as GGUF (factors carried over), it reloads to the same logits.
  const std::string again = test::temp_dir() + "/phi3b.gguf";
  save_gguf_model(*g, path, again);
  auto h = load_model(again);
  EXPECT_LE(test::max_abs_diff(all_logits(*g, kIds), all_logits(*h, kIds)), 1e-6f);
}

// Gemma 3 in GGUF as llama.cpp writes it: Gemma 2's layout plus attn_q_norm / attn_k_norm (also
// stored as 1 + weight), linear RoPE scaling of the global layers in metadata, the local layers'
// base (10000) and the 5 : 1 pattern fixed as llama.cpp fixes them.
TEST(Model, Gemma3GgufGivesTheSameLogits) {
  ModelConfig c = gemma_config(Arch::Gemma3);
  c.num_layers = 7;  // layers 5 global, the others windowed
  c.sliding_window_pattern = 6;
  c.query_pre_attn_scalar = double(c.head_dim);
  c.rope_scaling.type = RopeScaling::Type::Linear;
  c.rope_scaling.factor = 8.0f;
  auto m = init_model(c, 8, DType::F32, InitScheme::Full, 0.1f);
  const std::string path = test::temp_dir() + "/g3.gguf";
  write_gguf_from(*m, path, false);
  auto g = load_model(path);
  EXPECT_EQ(g->config.arch, Arch::Gemma3);
  EXPECT_TRUE(g->config.qk_norm);
  EXPECT_EQ(g->config.layer_window(4), 3);
  EXPECT_EQ(g->config.layer_window(5), 0);
  EXPECT_TRUE(g->config.layer_uses_local_rope(0));
  EXPECT_EQ(g->config.rope_scaling.type, RopeScaling::Type::Linear);
  EXPECT_LE(test::max_abs_diff(all_logits(*m, kIds), all_logits(*g, kIds)), 1e-5f);
  const std::string again = test::temp_dir() + "/g3b.gguf";
  save_gguf_model(*g, path, again);
  auto h = load_model(again);
  EXPECT_LE(test::max_abs_diff(all_logits(*g, kIds), all_logits(*h, kIds)), 1e-6f);
}

// An F16 checkpoint is kept in F16 (half the memory of widening it; the kernels read F16), with
// the logits of the same weights widened to F32 on load.
TEST(Model, F16WeightsAreKeptAndGiveTheWidenedLogits) {
  const std::string dir = test::temp_dir() + "/f16";
  auto m = init_model(tiny_config(Arch::Llama, 2, false), 4, DType::F32, InitScheme::Full, 0.1f);
  save_hf_folder(*m, dir, DType::F16);
  auto kept = load_model(dir);
  LoadOptions f32;
  f32.linear_dtype = DType::F32;
  auto widened = load_model(dir, f32);
  EXPECT_EQ(kept->linear_dtype, DType::F16);
  EXPECT_EQ(kept->weights.layers[0].q.weight.dtype, DType::F16);
  EXPECT_LT(kept->arena.capacity(), widened->arena.capacity());
  EXPECT_LE(test::max_abs_diff(all_logits(*kept, kIds), all_logits(*widened, kIds)), 1e-5f);
}

TEST(Model, MissingOrMisshapenTensorsAreNamed) {
  const std::string dir = test::temp_dir() + "/m";
  auto m = init_model(tiny_config(Arch::Llama, 2, false), 1, DType::F32);
  save_hf_folder(*m, dir, DType::F32);
  // Rewrite the safetensors without one tensor, then with one of the wrong shape.
  std::vector<TensorView> views;
  for (TensorView* t : m->named_tensors())
    if (t->name != "model.layers.1.mlp.up_proj.weight") views.push_back(*t);
  write_safetensors(dir + "/model.safetensors", views);
  try {
    load_model(dir);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing tensor 'model.layers.1.mlp.up_proj.weight'"), std::string::npos)
        << e.what();
  }
  views.push_back(m->find("model.layers.1.mlp.up_proj.weight")->reshaped({36, 64}));
  write_safetensors(dir + "/model.safetensors", views);
  try {
    load_model(dir);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected shape [72, 32], got [36, 64]"), std::string::npos) << e.what();
  }
}

TEST(Model, Stories260KGreedyMatchesReferenceC) {
  const std::string dir = test::fixtures_dir() + "/models/stories260K";
  if (!file_exists(dir + "/stories260K.gguf")) GTEST_SKIP() << "shared fixtures not found at " << dir;
  Json golden = parse_json_text(read_text_file(dir + "/greedy-once-upon-a-time.jsonl"), "golden");
  auto prompt = golden["prompt_ids"].get<std::vector<int32_t>>();
  auto expected = golden["greedy_ids"].get<std::vector<int32_t>>();
  auto m = load_model(dir + "/stories260K.gguf");
  EXPECT_EQ(m->config.num_kv_heads, 4);
  EXPECT_EQ(m->config.vocab_size, 512);
  Decoder d(*m);
  GenerateOptions o;
  o.max_new_tokens = int64_t(expected.size());
  o.sampling.temperature = 0;
  GenerateResult r = generate(d, prompt, o);
  EXPECT_EQ(r.output_ids, expected);
}

TEST(Model, GenerateStopsAtEosAndStreams) {
  auto m = init_model(tiny_config(Arch::Llama, 2, false), 9, DType::F32, InitScheme::Full, 0.3f);
  Decoder d(*m);
  GenerateOptions o;
  o.max_new_tokens = 40;
  o.sampling.temperature = 0;
  std::vector<int32_t> streamed;
  o.on_token = [&](int32_t id) { streamed.push_back(id); return true; };
  GenerateResult greedy = generate(d, {1, 2, 3}, o);
  EXPECT_EQ(streamed, greedy.output_ids);
  // Make the first greedy token the EOS: generation must stop right after it.
  o.eos_ids = {greedy.output_ids[0]};
  GenerateResult r = generate(d, {1, 2, 3}, o);
  EXPECT_TRUE(r.stopped_at_eos);
  EXPECT_EQ(r.output_ids.size(), 1u);
}

}  // namespace
}  // namespace taia
