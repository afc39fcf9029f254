#include "perf/measure.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "core/rng.h"
#include "model/decoder.h"
#include "model/kv_cache.h"
#include "train/engine.h"
#include "train/optimizer.h"
#include "train/trainable.h"

namespace taia {
namespace {

using clock_type = std::chrono::steady_clock;
double seconds_since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

// Deterministic ids spread over the vocabulary (the content does not change the work).
std::vector<int32_t> spread_ids(int64_t n, int64_t vocab) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[size_t(i)] = int32_t((i * 7919 + 13) % vocab);
  return ids;
}

// Weight elements of one layer's projections (the same whether Phi-3 fuses them or not).
double layer_linear_params(const ModelConfig& c) {
  double n = 0;
  for (int p = 0; p < kNumProj; ++p) {
    const auto [in, out] = proj_shape(c, Proj(p));
    n += double(in) * double(out);
  }
  return n;
}

void check_positive(int64_t v, const char* what) { TAIA_CHECK(v > 0, "[bench] expected ", what, " > 0, got ", v); }

}  // namespace

double median_of(std::vector<double> v) {
  TAIA_CHECK(!v.empty(), "[bench] median of no measurements");
  std::sort(v.begin(), v.end());
  const size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : (v[h - 1] + v[h]) / 2;
}

std::vector<double> measure_prefill(const Model& m, int64_t tokens, int rounds, const RoundDone& done,
                                    const DecoderSettings& settings) {
  check_positive(tokens, "prompt tokens");
  const ModelConfig& c = m.config;
  Decoder d(m);
  d.configure(settings);
  const std::vector<int32_t> prompt = spread_ids(tokens, c.vocab_size);
  std::vector<float> logits(size_t(c.vocab_size));  // [V]: the last position's
  KVCache cache(c, tokens, 0, d.kv_dtype());
  d.forward(cache, prompt.data(), tokens, logits.data(), false);  // warm-up: pages, JIT kernels
  std::vector<double> rates;
  for (int r = 0; r < rounds; ++r) {
    cache.clear();
    const auto t = clock_type::now();
    d.forward(cache, prompt.data(), tokens, logits.data(), false);
    rates.push_back(double(tokens) / seconds_since(t));
    if (done) done(r + 1, rounds);
  }
  return rates;
}

std::vector<double> measure_decode(const Model& m, int64_t depth, int64_t tokens, int rounds, const RoundDone& done,
                                   const DecoderSettings& settings, DecodeProfile* profile) {
  check_positive(tokens, "decode tokens");
  TAIA_CHECK(depth >= 0, "[bench] expected a depth >= 0, got ", depth);
  const ModelConfig& c = m.config;
  Decoder d(m);
  d.configure(settings);
  const std::vector<int32_t> prompt = spread_ids(std::max<int64_t>(depth, 1), c.vocab_size);
  std::vector<float> logits(size_t(c.vocab_size));  // [V]
  KVCache cache(c, depth + tokens, 0, d.kv_dtype());
  // The prompt goes in once, in generation's calls of kGenerateRowsPerCall rows; each round
  // rewinds to it (every layer keeps a row per position here, so nothing it reads is overwritten).
  for (int64_t done_rows = 0; done_rows < depth; done_rows += kGenerateRowsPerCall)
    d.forward(cache, prompt.data() + done_rows, std::min(kGenerateRowsPerCall, depth - done_rows), logits.data(),
              false);
  auto round = [&] {  // seconds of the `tokens` steps
    cache.set_length(depth);
    int32_t next = prompt[0];
    const auto t = clock_type::now();
    d.profile(profile);  // the one-token steps only
    for (int64_t s = 0; s < tokens; ++s) {
      d.forward(cache, &next, 1, logits.data(), false);
      next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    }
    d.profile(nullptr);
    return seconds_since(t);
  };
  round();  // warm-up
  if (profile) profile->clear();
  std::vector<double> rates;
  for (int r = 0; r < rounds; ++r) {
    rates.push_back(double(tokens) / round());
    if (done) done(r + 1, rounds);
  }
  return rates;
}

TrainBatch random_train_batch(int64_t vocab, int64_t batch, int64_t seq) {
  TrainBatch b;
  b.B = batch;
  b.L = seq;
  Rng rng(3);
  for (int64_t i = 0; i < batch * seq; ++i) b.tokens.push_back(int32_t(rng.next_u64() % uint64_t(vocab)));
  for (int64_t i = 0; i < batch * seq; ++i) b.targets.push_back(i % seq == seq - 1 ? -1 : b.tokens[size_t(i + 1)]);
  return b;
}

std::vector<double> measure_train(Model& m, const TrainBenchOptions& o, int steps, const RoundDone& done,
                                  TrainProfile* profile) {
  check_positive(o.batch, "batch");
  check_positive(o.seq, "sequence length");
  check_positive(o.rank, "LoRA rank");
  const ModelConfig& c = m.config;
  TAIA_CHECK(o.seq <= c.max_position_embeddings, "[bench] expected a sequence length <= max_position_embeddings (",
             c.max_position_embeddings, "), got ", o.seq);
  LoraConfig lc;
  lc.rank = o.rank;
  lc.alpha = double(2 * o.rank);
  lc.dropout = 0;
  MoloraConfig mc;
  mc.experts = o.experts;
  mc.top_k = o.top_k;
  LoraAdapter lora = o.experts > 0 ? LoraAdapter::create_with_experts(c, lc, mc, 2) : LoraAdapter::create(c, lc, 2);
  AdamW adam(trainable_params(m, nullptr, &lora), AdamWConfig{});
  EngineOptions eo;
  eo.compute_bf16 = o.compute_bf16;
  eo.recompute = o.recompute;
  eo.profile = profile != nullptr;
  TrainEngine engine(m, &lora, nullptr, eo);
  const TrainBatch batch = random_train_batch(c.vocab_size, o.batch, o.seq);
  const float scale = 1.0f / float(batch.target_count());
  struct StepSeconds {
    double whole, optimizer;  // the step's wall time; zeroing the gradients and AdamW within it
  };
  auto step = [&](uint64_t s) {
    const auto t = clock_type::now();
    lora.zero_grad();
    const double zeroed = seconds_since(t);
    engine.forward_backward(batch, scale, s);
    const auto t_adam = clock_type::now();
    adam.step(1e-4);
    const double optimizer = zeroed + seconds_since(t_adam);
    return StepSeconds{seconds_since(t), optimizer};
  };
  step(0);  // warm-up: JIT kernels, first touch of the activations
  step(1);
  engine.reset_phase_times();
  std::vector<double> rates;
  for (int i = 0; i < steps; ++i) {
    const StepSeconds sec = step(uint64_t(2 + i));
    rates.push_back(double(o.batch * o.seq) / sec.whole);
    if (profile) {
      profile->optimizer_seconds += sec.optimizer;
      profile->step_seconds += sec.whole;
      profile->steps += 1;
    }
    if (done) done(i + 1, steps);
  }
  if (profile) profile->phases = engine.phase_times();
  return rates;
}

double prefill_flops(const ModelConfig& c, int64_t T) {
  const double t = double(T);
  const double proj = 2.0 * t * layer_linear_params(c);
  const double attn = 2.0 * 2.0 * (t * (t + 1) / 2) * double(c.q_dim());  // QK^T and AV, causal
  return double(c.num_layers) * (proj + attn) + 2.0 * double(c.hidden_size) * double(c.vocab_size);
}

double train_step_flops(const ModelConfig& c, const TrainBenchOptions& o) {
  const double tok = double(o.batch * o.seq);
  double lora = 0;
  for (int p = 0; p < kNumProj; ++p) {
    const auto [in, out] = proj_shape(c, Proj(p));
    const bool expert = o.experts > 0 && !proj_is_attention(Proj(p));  // MoLoRA's default targets: the FFN
    lora += expert ? double(o.top_k * o.rank) * double(in + out) + double(o.experts * in)
                   : double(o.rank) * double(in + out);
  }
  const double per_layer = 2 * tok * (layer_linear_params(c) + lora) +
                           2.0 * (2.0 * double(o.batch) * double(o.seq) * double(o.seq) * double(c.q_dim()));
  const double head = 2 * tok * double(c.hidden_size) * double(c.vocab_size);
  return 2.0 * (double(c.num_layers) * per_layer + head);
}

double decode_bytes_per_token(const Model& m, int64_t ctx, DType kv_dtype) {
  const ModelConfig& c = m.config;
  const bool tied = m.weights.lm_head.data == m.weights.embed.data;
  double bytes = 0;
  for (const TensorView* t : m.named_tensors()) bytes += double(dtype_bytes(t->dtype, t->numel()));
  if (!tied) {  // named_tensors() lists both: the head is read whole, the embedding one row at a time
    const TensorView& e = m.weights.embed;
    bytes += double(dtype_bytes(e.dtype, c.hidden_size)) - double(dtype_bytes(e.dtype, e.numel()));
  }
  return bytes + double(KVCache::bytes_per_position(c, kv_dtype)) * double(ctx);
}

}  // namespace taia
