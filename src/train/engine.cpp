#include "train/engine.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "core/error.h"
#include "core/threading.h"
#include "kernels/attention.h"
#include "kernels/cross_entropy.h"
#include "kernels/glu.h"
#include "kernels/gemm.h"
#include "kernels/linear.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/softcap.h"

namespace taia {

int64_t TrainBatch::target_count() const {
  return std::count_if(targets.begin(), targets.end(), [](int32_t t) { return t >= 0; });
}

float* FullGrads::find(const std::string& name) {
  auto it = by_name.find(name);
  return it == by_name.end() ? nullptr : it->second.data();
}

void FullGrads::zero() {
  for (auto& [name, g] : by_name) std::fill(g.begin(), g.end(), 0.0f);
}

const char* phase_name(Phase p) {
  switch (p) {
    case Phase::BaseGemm: return "base GEMMs";
    case Phase::Lora: return "LoRA branches";
    case Phase::Attention: return "attention + RoPE";
    case Phase::Norm: return "RMSNorm";
    case Phase::Elementwise: return "SwiGLU, copies, embedding";
    case Phase::HeadLoss: return "LM head + loss";
    case Phase::Widen: return "widening weight tiles";
    case Phase::Count: break;
  }
  return "?";
}

namespace {

// Adds the wall time of its scope to *slot.seconds, less what *slot.nested (the widening clock)
// gained meanwhile; no clock is read when slot.seconds is null (not profiling).
class PhaseScope {
 public:
  explicit PhaseScope(PhaseSlot slot) : slot_(slot) {
    if (!slot_.seconds) return;
    t0_ = std::chrono::steady_clock::now();
    nested0_ = *slot_.nested;
  }
  ~PhaseScope() {
    if (!slot_.seconds) return;
    *slot_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count() -
                      (*slot_.nested - nested0_);
  }
  PhaseScope(const PhaseScope&) = delete;
  PhaseScope& operator=(const PhaseScope&) = delete;

 private:
  PhaseSlot slot_;
  std::chrono::steady_clock::time_point t0_{};
  double nested0_ = 0;
};

// SplitMix64's finalizer: a bijective mix of 64 bits.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Counter-based dropout: keep(n, f) is a pure function of (seed, step, layer, place, the row's
// token, f), so backward and recomputation see exactly the forward's mask without storing it.
// The token is its row's key (its sequence and position, row_keys[n]), not its place in the
// micro-batch: a token keeps its mask whichever micro-batch or rank it lands in, and two
// micro-batches of a step get different masks.
struct DropoutMask {
  uint64_t stream;           // mix64 of (seed, step, layer, place)
  double p;
  const uint64_t* row_keys;  // [N]
  int64_t in;
  DropoutMask(uint64_t seed, uint64_t step, int64_t layer, int place, double p_drop, const uint64_t* keys,
              int64_t features)
      : stream(mix64(seed ^ (step * 0x9e3779b97f4a7c15ull) ^ (uint64_t(layer) << 48) ^ (uint64_t(place) << 40))),
        p(p_drop), row_keys(keys), in(features) {}
  bool keep(int64_t n, int64_t f) const {
    const uint64_t z = mix64(stream ^ (row_keys[n] * uint64_t(in) + uint64_t(f)));
    return double(z >> 11) * (1.0 / 9007199254740992.0) >= p;
  }
};

// xd[N, in] = keep ? x / (1 - p) : 0 under `mask`.
void apply_dropout(float* xd, const float* x, int64_t N, const DropoutMask& mask) {
  const float keep_scale = float(1.0 / (1.0 - mask.p));
  const int64_t in = mask.in;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t f = 0; f < in; ++f) xd[n * in + f] = mask.keep(n, f) ? x[n * in + f] * keep_scale : 0.0f;
}

// Large buffer fills and copies, split over the threads (a single thread leaves memory
// bandwidth unused and the other thread spinning at the next barrier).
void parallel_zero(float* p, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) p[i] = 0.0f;
}

void parallel_copy(float* dst, const float* src, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
}

}  // namespace

TrainEngine::TrainEngine(const Model& model, LoraAdapter* lora, FullGrads* grads, const EngineOptions& options)
    : model_(model), recipe_(model_recipe(model.config)), lora_(lora), grads_(grads), options_(options) {
  compute_.precision = options.compute_bf16 ? Precision::BF16 : Precision::F32;
  compute_.bf16 = &bf16_;
  if (options.profile) compute_.widen_seconds = &phase_times_.seconds[size_t(Phase::Widen)];
  const ModelConfig& c = model.config;
  const int64_t dims = recipe_.rotary_dims;
  inv_freq_ = rope_inv_freq(dims, float(c.rope_theta), c.rope_scaling,
                            model.rope_freq_factors.empty() ? nullptr : &model.rope_freq_factors);
  if (c.rope_scaling.type == RopeScaling::Type::LongRope)
    inv_freq_long_ = rope_inv_freq(dims, float(c.rope_theta), c.rope_scaling, nullptr, true);
  TAIA_CHECK(!lora_ || lora_->layout == c.proj_layout(), "[TrainEngine] the adapter's module layout (fused or split "
             "projections) is not the model's");
  fold_allowed_ = !model.has_block_weights();
  fused_head_ = fused_head(recipe_, grads_ && grads_->find(c.tie_word_embeddings ? kEmbedTensor : kLmHeadTensor));
  if (recipe_.uses(RotaryTable::Local)) inv_freq_local_ = rope_inv_freq(dims, float(c.rope_local_theta), RopeScaling{});
  TAIA_CHECK(!options_.compute_bf16 || !grads_, "[TrainEngine] BF16 compute is for LoRA training; full fine-tuning "
             "computes in F32");
  if (grads_)
    for (const auto& [name, g] : grads_->by_name) {
      const TensorView* t = const_cast<Model&>(model).find(name);
      TAIA_CHECK(t != nullptr, "[TrainEngine] no model tensor '", name, "' for a gradient");
      TAIA_CHECK(t->dtype == DType::F32, "[TrainEngine] full fine-tuning needs F32 weights; '", name, "' is ",
                 dtype_name(t->dtype), " (load with --dtype f32)");
      TAIA_CHECK(int64_t(g.size()) == t->numel(), "[TrainEngine] gradient of '", name, "' has the wrong size");
    }
}

const Linear& TrainEngine::base(int64_t l, Proj p) const { return layer_proj(model_.weights.layers[size_t(l)], p); }

namespace {

// Rows of logits computed at a time: the LM head and the loss run in chunks of about 4M floats,
// and at least kHeadMinRows rows, so the logits never exist for the whole batch and the head's
// GEMMs still have rows enough to reuse each weight tile. With a 151,936-token vocabulary 4M floats
// are 27 rows: the 545 MB F32 head was then read from memory 38 times forward and 38 backward per
// 1024-token step (qwen2-0.5b LoRA, 2 threads: LM head + loss 4.1 s of a 9.8 s step); 128 rows
// take it to 2.3 s (78 MB of logits); 256 rows measured no better.
constexpr int64_t kHeadMinRows = 128;
int64_t logits_chunk_rows(int64_t N, int64_t V) {
  return std::max<int64_t>(1, std::min<int64_t>(N, std::max<int64_t>(kHeadMinRows, (int64_t(1) << 22) / V)));
}

}  // namespace

template <typename Fn>
void TrainEngine::plan_buffers(Buffers& b, const PlanShape& s, Fn&& size) {
  const ModelConfig& c = *s.config;
  const ModelRecipe& r = *s.recipe;
  const EngineOptions& o = *s.options;
  const int64_t N = s.B * s.L, D = c.hidden_size, V = c.vocab_size;
  const int64_t sets = o.recompute ? 1 : c.num_layers;
  b.acts.resize(size_t(sets));
  for (int64_t set = 0; set < sets; ++set) {
    plan_layer_acts(b.acts[size_t(set)], set, s, size);
    plan_adapter_acts(b.acts[size_t(set)], set, s, size);
  }
  b.saved_inputs.resize(o.recompute ? size_t(c.num_layers) : 0);
  for (std::vector<float>& v : b.saved_inputs) size(v, N * D);
  size(b.recomputed_out, o.recompute ? N * D : 0);
  size(b.x, N * D);
  size(b.lnf, N * D);
  size(b.rstdf, N);
  size(b.logits, s.fused_head ? 0 : logits_chunk_rows(N, V) * V);
  size(b.sublayer_normed, r.any_output_norms() ? N * D : 0);
  size(b.logits_capped, !s.fused_head && r.final_softcap > 0 ? logits_chunk_rows(N, V) * V : 0);
  plan_grad_scratch(b.grad, s, size);
}

template <typename Fn>
void TrainEngine::plan_layer_acts(LayerActs& a, int64_t, const PlanShape& s, Fn&& size) {
  const ModelConfig& c = *s.config;
  const bool qk_norm = s.recipe->any_qk_norm(), output_norms = s.recipe->any_output_norms();
  const int64_t N = s.B * s.L, D = c.hidden_size, Q = c.q_dim(), KV = c.kv_dim(), I = c.intermediate_size,
                H = c.num_heads;
  for (std::vector<float>* v : {&a.x_in, &a.ln1, &a.x_mid, &a.ln2}) size(*v, N * D);
  for (std::vector<float>* v : {&a.rstd1, &a.rstd2}) size(*v, N);
  for (std::vector<float>* v : {&a.q, &a.att}) size(*v, N * Q);
  for (std::vector<float>* v : {&a.k, &a.v}) size(*v, N * KV);
  for (std::vector<float>* v : {&a.gate, &a.up, &a.h}) size(*v, N * I);
  size(a.probs, s.B * H * s.L * s.L);
  size(a.q_raw, qk_norm ? N * Q : 0);
  size(a.k_raw, qk_norm ? N * KV : 0);
  size(a.rstd_q, qk_norm ? N * H : 0);
  size(a.rstd_k, qk_norm ? N * c.num_kv_heads : 0);
  for (std::vector<float>* v : {&a.attn_out, &a.ffn_out}) size(*v, output_norms ? N * D : 0);
  for (std::vector<float>* v : {&a.rstd_attn_out, &a.rstd_ffn_out}) size(*v, output_norms ? N : 0);
}

// LoRA: u per adapted projection (the largest rank over the layers this set serves), and the
// folded weight w_eff; MoLoRA: the widest routing among those layers.
template <typename Fn>
void TrainEngine::plan_adapter_acts(LayerActs& a, int64_t set, const PlanShape& s, Fn&& size) {
  const ModelConfig& c = *s.config;
  const EngineOptions& o = *s.options;
  const int64_t N = s.B * s.L;
  const int64_t last = o.recompute ? c.num_layers : set + 1;  // the layers this set serves: [set, last)
  for (int i = 0; i < kNumProj; ++i) {
    int64_t rank = 0, folded = 0;
    const auto [in, out] = proj_shape(c, Proj(i));
    for (int64_t l = set; s.lora && l < last; ++l)
      if (const LoraModule* m = s.lora->find(l, module_slot(Proj(i), s.lora->layout))) {
        rank = std::max(rank, m->rank);
        // Folded when the base multiplies in F32 and a pass runs without dropout: training
        // without dropout, or validation (forward_loss) with it.
        if (s.fold_allowed && !o.compute_bf16 && (s.lora->config.dropout == 0 || o.validation)) folded = out * in;
      }
    size(a.lora_u[size_t(i)], N * rank);
    size(a.w_eff[size_t(i)], folded);
    int64_t E = 0, k = 0, r = 0;
    for (int64_t l = set; s.lora && l < last; ++l)
      if (const MoloraModule* m = s.lora->molora.find(l, Proj(i))) {
        E = std::max(E, m->experts);
        k = std::max(k, m->top_k);
        r = std::max(r, m->rank);
      }
    LayerActs::ExpertActs& x = a.experts[size_t(i)];
    size(x.logits, N * E);
    size(x.expert, N * k);
    size(x.gate, N * k);
    size(x.u, N * k * r);
  }
}

template <typename Fn>
void TrainEngine::plan_grad_scratch(GradScratch& g, const PlanShape& s, Fn&& size) {
  const ModelConfig& c = *s.config;
  const bool qk_norm = s.recipe->any_qk_norm(), output_norms = s.recipe->any_output_norms();
  const int64_t N = s.B * s.L, D = c.hidden_size, Q = c.q_dim(), KV = c.kv_dim(), I = c.intermediate_size;
  for (std::vector<float>* v : {&g.d_residual, &g.d_norm_out}) size(*v, N * D);
  for (std::vector<float>* v : {&g.d_h, &g.d_gate, &g.d_up}) size(*v, N * I);
  for (std::vector<float>* v : {&g.d_att, &g.d_q}) size(*v, N * Q);
  for (std::vector<float>* v : {&g.d_k, &g.d_v}) size(*v, N * KV);
  size(g.d_q_raw, qk_norm ? N * Q : 0);
  size(g.d_k_raw, qk_norm ? N * KV : 0);
  size(g.d_sublayer_out, output_norms ? N * D : 0);
  int64_t max_rank = 0, max_in = 0, max_rank_out = 0;
  for (int64_t l = 0; s.lora && l < c.num_layers; ++l)
    for (int i = 0; i < kNumProj; ++i)
      if (const LoraModule* m = s.lora->find(l, module_slot(Proj(i), s.lora->layout))) {
        max_rank = std::max(max_rank, m->rank);
        max_in = std::max(max_in, m->in);
        max_rank_out = std::max(max_rank_out, m->rank * proj_shape(c, Proj(i)).second);  // a projection's rows
      }
  const bool dropout = s.lora && s.lora->config.dropout > 0;
  size(g.lora_x_dropped, dropout ? N * max_in : 0);
  size(g.lora_d_x_dropped, dropout ? N * max_in : 0);
  size(g.lora_dBt, max_rank_out);
  size(g.lora_du, N * max_rank);
}

int64_t TrainEngine::kernel_scratch_bytes(const Model& model, int64_t B, int64_t L, const EngineOptions& o,
                                          const LoraAdapter* lora) {
  const ModelConfig& c = model.config;
  const ModelRecipe recipe = model_recipe(c);
  const int64_t N = B * L, widest = std::max({c.hidden_size, c.q_dim(), c.intermediate_size});
  int64_t bytes = int64_t(num_threads()) * L * L * 4;  // attention backward: dS per thread
  int64_t expert_floats = 0;
  for (int64_t l = 0; lora && l < int64_t(lora->molora.layers.size()); ++l)
    for (int i = 0; i < kNumProj; ++i)
      if (const MoloraModule* m = lora->molora.find(l, Proj(i)))
        expert_floats = std::max(expert_floats, molora_scratch_floats(N, m->experts, m->top_k, m->rank, m->in, m->out));
  bytes += expert_floats * 4;
  if (recipe.any_attention_softcap()) bytes += int64_t(num_threads()) * kCausalBlock * L * 4;  // a block's recomputed logits
  // The fused LM head's tiles (counted also under full fine-tuning, where the head may be frozen).
  if (fused_head(recipe, /*head_trains=*/false))
    bytes += linear_cross_entropy_scratch_bytes(N, c.vocab_size, c.hidden_size, model.weights.lm_head.dtype,
                                                o.compute_bf16 ? Precision::BF16 : Precision::F32);
  if (o.compute_bf16) {
    // Every frozen projection and the LM head multiply in BF16: F32 weights are copied once.
    if (model.linear_dtype == DType::F32) {
      for (int i = 0; i < kNumProj; ++i) {
        const auto [in, out] = proj_shape(c, Proj(i));
        bytes += c.num_layers * in * out * 2;
      }
      bytes += c.vocab_size * c.hidden_size * 2;
    }
    bytes += N * std::max(widest, c.vocab_size) * 2;  // rounded activations
  } else if (model.linear_dtype != DType::F32 || model.has_block_weights()) {
    bytes += std::min<int64_t>(256, std::max(widest, c.vocab_size)) * widest * 4;  // a widened block
  }
  return bytes;
}

int64_t TrainEngine::working_bytes(const Model& model, int64_t B, int64_t L, const EngineOptions& o,
                                   const LoraAdapter* lora, bool full) {
  Buffers none;  // only sized, never allocated
  int64_t floats = 0;
  const ModelRecipe recipe = model_recipe(model.config);
  plan_buffers(none, PlanShape{&model.config, &recipe, B, L, &o, full ? nullptr : lora, !model.has_block_weights(),
                                   fused_head(recipe, /*head_trains=*/full)},
               [&](auto&, int64_t n) { floats += n; });  // float and int32 buffers: 4 bytes each
  return floats * 4 + kernel_scratch_bytes(model, B, L, o, full ? nullptr : lora);
}

int64_t TrainEngine::allocated_bytes() {
  int64_t bytes = 0;
  plan_buffers(buf_, PlanShape{&model_.config, &recipe_, B_, L_, &options_, lora_, fold_allowed_, fused_head_},
               [&](auto& v, int64_t) { bytes += int64_t(v.capacity()) * 4; });
  return bytes;
}

void TrainEngine::resize(const TrainBatch& batch) {
  const ModelConfig& c = model_.config;
  TAIA_CHECK(batch.B > 0 && batch.L > 0 && int64_t(batch.tokens.size()) == batch.B * batch.L &&
                 batch.targets.size() == batch.tokens.size(),
             "[TrainEngine] batch expected B*L tokens and targets");
  TAIA_CHECK(batch.lengths.empty() || int64_t(batch.lengths.size()) == batch.B, "[TrainEngine] batch lengths "
             "expected ", batch.B, " (one per sequence), got ", batch.lengths.size());
  TAIA_CHECK(batch.sequence_ids.empty() || int64_t(batch.sequence_ids.size()) == batch.B, "[TrainEngine] batch "
             "sequence ids expected ", batch.B, " (one per sequence), got ", batch.sequence_ids.size());
  TAIA_CHECK(batch.L < (int64_t(1) << 24), "[TrainEngine] sequence length ", batch.L, " expected < 2^24");
  TAIA_CHECK(batch.L <= c.max_position_embeddings, "[TrainEngine] sequence length ", batch.L,
             " exceeds max_position_embeddings ", c.max_position_embeddings);
  for (size_t i = 0; i < batch.tokens.size(); ++i) {
    TAIA_CHECK(batch.tokens[i] >= 0 && batch.tokens[i] < c.vocab_size, "[TrainEngine] token id ", batch.tokens[i],
               " at position ", i, " is outside the vocabulary (", c.vocab_size, ")");
    TAIA_CHECK(batch.targets[i] < c.vocab_size, "[TrainEngine] target id ", batch.targets[i], " at position ", i,
               " is outside the vocabulary (", c.vocab_size, ")");
  }
  B_ = batch.B;
  L_ = batch.L;
  N_ = B_ * L_;
  // LongRope: the long factors when the batch's sequences pass the original context, as HF decides per call.
  const bool long_factors = c.rope_scaling.uses_long_factors(L_);
  if (rope_.cos.size() < size_t(L_) * inv_freq_.size() || long_factors != rope_long_factors_) {
    rope_long_factors_ = long_factors;
    rope_ = rope_table(long_factors ? inv_freq_long_ : inv_freq_, L_, c.rope_scaling.mscale());
    if (!inv_freq_local_.empty()) rope_local_ = rope_table(inv_freq_local_, L_);
  }
  positions_.resize(size_t(N_));
  for (int64_t i = 0; i < N_; ++i) positions_[size_t(i)] = i % L_;
  // A row's dropout key: its sequence (its index in the data set, else its row in the batch) and
  // position, 2^24 positions apart.
  dropout_row_keys_.resize(size_t(N_));
  for (int64_t i = 0; i < N_; ++i) {
    const int64_t b = i / L_;
    const uint64_t sequence = batch.sequence_ids.empty() ? uint64_t(b) : uint64_t(batch.sequence_ids[size_t(b)]);
    dropout_row_keys_[size_t(i)] = (sequence << 24) + uint64_t(i % L_);
  }
  row_real_.assign(size_t(N_), 1);
  for (size_t b = 0; b < batch.lengths.size(); ++b)
    for (int64_t t = batch.lengths[b]; t < L_; ++t) row_real_[b * size_t(L_) + size_t(t)] = 0;
  plan_buffers(buf_, PlanShape{&c, &recipe_, B_, L_, &options_, lora_, fold_allowed_, fused_head_},
               [](auto& v, int64_t n) { v.resize(size_t(n)); });
}

// u[N, r] = x A^T, the input of the LoRA up-projection (kept for dB).
void TrainEngine::lora_down(float* u, const float* x, const LoraView& m, int64_t N) {
  sgemm(false, true, N, m.rank, m.in, 1.0f, x, m.in, m.A, m.in, 0.0f, u, m.rank);
}

std::optional<LoraView> TrainEngine::lora_view(int64_t l, Proj p) {
  if (!lora_) return std::nullopt;
  const ModelConfig& c = model_.config;
  return lora_->view(l, p, proj_row_offset(c, p), proj_shape(c, p).second);
}

int TrainEngine::dropout_place(Proj p) const { return int(module_slot(p, model_.config.proj_layout())); }

void TrainEngine::proj_forward(int64_t l, Proj p, float* y, const float* x, int64_t N, LayerActs& a, bool train,
                               uint64_t step, bool accumulate) {
  const Linear& lin = base(l, p);
  if (MoloraModule* mm = experts_of(l, p)) {  // MoLoRA: the experts train without dropout, as the official ones
    {
      PhaseScope t(phase_slot(Phase::BaseGemm));
      linear_forward(y, x, lin.weight, lin.bias_ptr(), N, accumulate, compute_);
    }
    PhaseScope t(phase_slot(Phase::Lora));
    molora_forward<float>(y, a.experts[size_t(p)].routing(), x, mm->weights(), N);
    return;
  }
  const auto m = lora_view(l, p);
  const double pdrop = m && train ? lora_->config.dropout : 0.0;
  float* u = a.lora_u[size_t(p)].data();
  // Folded (w_eff = W + s B A) whenever no dropout applies and the plan holds w_eff: training
  // without dropout, and validation when EngineOptions::validation says it runs.
  if (m && pdrop == 0 && !options_.compute_bf16 && !a.w_eff[size_t(p)].empty()) {
    float* w_eff = a.w_eff[size_t(p)].data();
    {
      PhaseScope t(phase_slot(Phase::Lora));
      if (lin.weight.dtype == DType::F32)
        parallel_copy(w_eff, lin.weight.ptr<const float>(), m->out * m->in);
      else
        convert_to_f32(lin.weight.dtype, lin.weight.data, w_eff, size_t(m->out * m->in));
      sgemm(false, false, m->out, m->in, m->rank, m->scale, m->B, m->rank, m->A, m->in, 1.0f, w_eff, m->in);
    }
    {
      PhaseScope t(phase_slot(Phase::BaseGemm));
      linear_forward(y, x, TensorView("w_eff", DType::F32, {m->out, m->in}, w_eff), lin.bias_ptr(), N, accumulate,
                     compute_);
    }
    PhaseScope t(phase_slot(Phase::Lora));
    lora_down(u, x, *m, N);
    return;
  }
  {
    PhaseScope t(phase_slot(Phase::BaseGemm));
    linear_forward(y, x, lin.weight, lin.bias_ptr(), N, accumulate, compute_);
  }
  if (!m) return;
  PhaseScope t(phase_slot(Phase::Lora));
  const float* xin = x;
  if (pdrop > 0) {
    float* x_dropped = buf_.grad.lora_x_dropped.data();
    const DropoutMask mask{options_.dropout_seed, step, l, dropout_place(p), pdrop, dropout_row_keys_.data(), m->in};
    apply_dropout(x_dropped, x, N, mask);
    xin = x_dropped;
  }
  lora_down(u, xin, *m, N);
  sgemm(false, true, N, m->out, m->rank, m->scale, u, m->rank, m->B, m->rank, 1.0f, y, m->out);
}

void TrainEngine::proj_backward(int64_t l, Proj p, float* dx, const float* dy, const float* x, int64_t N,
                                LayerActs& a, uint64_t step) {
  const Linear& lin = base(l, p);
  // Full gradients: p's rows of its tensor's gradient (a fused tensor's for Phi-3).
  const ModelConfig& c = model_.config;
  const int64_t row0 = proj_row_offset(c, p), in = proj_shape(c, p).first;
  float* dW = grads_ ? grads_->find(proj_tensor_name(l, p, "weight", c.proj_layout())) : nullptr;
  float* db = grads_ && !lin.bias.empty() ? grads_->find(proj_tensor_name(l, p, "bias", c.proj_layout())) : nullptr;
  if (dW) dW += row0 * in;
  if (db) db += row0;
  const auto m = lora_view(l, p);
  const bool folded = m && lora_->config.dropout == 0 && !options_.compute_bf16 && !a.w_eff[size_t(p)].empty();
  // dx through W (+ scale B A when folded: the LoRA branch's dx comes with it).
  {
    PhaseScope t(phase_slot(Phase::BaseGemm));
    const TensorView w = folded ? TensorView("w_eff", DType::F32, {m->out, m->in}, a.w_eff[size_t(p)].data())
                                : lin.weight;
    linear_backward(dx, dW, db, dy, x, w, N, compute_);
  }
  if (MoloraModule* mm = experts_of(l, p)) {
    PhaseScope t(phase_slot(Phase::Lora));
    const MoloraRouting<float> routing = a.experts[size_t(p)].routing();
    router_stats_.balance_loss += molora_backward<float>(dx, mm->grads(), dy, x, routing, mm->weights(), N,
                                                         balance_weight_, row_real_.data());
    router_stats_.passes += 1;
    router_stats_.slots_per_expert.resize(std::max(router_stats_.slots_per_expert.size(), size_t(mm->experts)), 0);
    molora_count_slots(router_stats_.slots_per_expert.data(), routing.expert, mm->experts, N * mm->top_k,
                       row_real_.data(), mm->top_k);
    return;
  }
  if (!m) return;
  PhaseScope t(phase_slot(Phase::Lora));
  lora_backward(l, p, *m, dx, dy, x, N, a, step, folded);
}

void TrainEngine::lora_backward(int64_t l, Proj p, const LoraView& m, float* dx, const float* dy, const float* x,
                                int64_t N, LayerActs& a, uint64_t step, bool folded) {
  const double pdrop = lora_->config.dropout;
  const float* u = a.lora_u[size_t(p)].data();
  GradScratch& g = buf_.grad;
  // dB += s * dy^T u, formed as its transpose s * u^T dy [r, out] (the r-row product runs ~3x
  // faster in oneDNN than the r-column one); du = s * dy B [N, r]; dA += du^T xd.
  float* dBt = g.lora_dBt.data();
  sgemm(true, false, m.rank, m.out, N, m.scale, u, m.rank, dy, m.out, 0.0f, dBt, m.out);
  for (int64_t o = 0; o < m.out; ++o)
    for (int64_t r = 0; r < m.rank; ++r) m.dB[size_t(o * m.rank + r)] += dBt[size_t(r * m.out + o)];
  float* du = g.lora_du.data();
  sgemm(false, false, N, m.rank, m.out, m.scale, dy, m.out, m.B, m.rank, 0.0f, du, m.rank);
  const float* xin = x;
  if (pdrop > 0) {
    const DropoutMask mask{options_.dropout_seed, step, l, dropout_place(p), pdrop, dropout_row_keys_.data(), m.in};
    apply_dropout(g.lora_x_dropped.data(), x, N, mask);
    xin = g.lora_x_dropped.data();
  }
  sgemm(true, false, m.rank, m.in, N, 1.0f, du, m.rank, xin, m.in, 1.0f, m.dA, m.in);
  if (folded || !dx) return;
  if (pdrop == 0) {
    sgemm(false, false, N, m.in, m.rank, 1.0f, du, m.rank, m.A, m.in, 1.0f, dx, m.in);
    return;
  }
  // dx += mask * (du A) / (1 - p): the gradient through the dropped input.
  float* d_x_dropped = g.lora_d_x_dropped.data();
  sgemm(false, false, N, m.in, m.rank, 1.0f, du, m.rank, m.A, m.in, 0.0f, d_x_dropped, m.in);
  const float keep_scale = float(1.0 / (1.0 - pdrop));
  const DropoutMask mask{options_.dropout_seed, step, l, dropout_place(p), pdrop, dropout_row_keys_.data(), m.in};
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t f = 0; f < m.in; ++f)
      if (mask.keep(n, f)) dx[n * m.in + f] += d_x_dropped[n * m.in + f] * keep_scale;
}

// One layer's forward on N rows, the steps of its recipe in order; every activation the
// backward needs is saved in `a`.
void TrainEngine::layer_forward(int64_t l, LayerActs& a, const float* x_in, float* x_out, bool train, uint64_t step) {
  const LayerRecipe& r = recipe_.layers[size_t(l)];
  const LayerWeights& w = model_.weights.layers[size_t(l)];
  const AttentionShape& shape = r.attention;
  const int64_t N = N_, D = model_.config.hidden_size, I = model_.config.intermediate_size;
  {
    PhaseScope t(phase_slot(Phase::Elementwise));
    parallel_copy(a.x_in.data(), x_in, N * D);
  }
  norm_forward(r.norm, a.ln1.data(), a.rstd1.data(), a.x_in.data(), w.attn_norm, N, D);
  proj_forward(l, Proj::Q, (r.qk_norm ? a.q_raw : a.q).data(), a.ln1.data(), N, a, train, step, false);
  proj_forward(l, Proj::K, (r.qk_norm ? a.k_raw : a.k).data(), a.ln1.data(), N, a, train, step, false);
  proj_forward(l, Proj::V, a.v.data(), a.ln1.data(), N, a, train, step, false);
  if (r.qk_norm) {  // per head: [N, H, hd] as N*H rows of hd
    norm_forward(r.norm, a.q.data(), a.rstd_q.data(), a.q_raw.data(), w.q_norm, N * shape.n_heads, shape.head_dim);
    norm_forward(r.norm, a.k.data(), a.rstd_k.data(), a.k_raw.data(), w.k_norm, N * shape.n_kv_heads, shape.head_dim);
  }
  {
    PhaseScope t(phase_slot(Phase::Attention));
    if (const RopeTable* rope = layer_rope(r)) {
      rope_train_forward<float>(a.q.data(), positions_.data(), N, shape.n_heads, shape.head_dim, *rope);
      rope_train_forward<float>(a.k.data(), positions_.data(), N, shape.n_kv_heads, shape.head_dim, *rope);
    }
    attention_train_forward<float>(a.att.data(), a.probs.data(), a.q.data(), a.k.data(), a.v.data(), B_, L_, shape);
  }
  sublayer_forward(l, r, Proj::O, a, a.att.data(), a.x_in.data(), a.x_mid.data(), a.attn_out, a.rstd_attn_out,
                   w.attn_out_norm, train, step);
  norm_forward(r.norm, a.ln2.data(), a.rstd2.data(), a.x_mid.data(), w.ffn_norm, N, D);
  proj_forward(l, Proj::Gate, a.gate.data(), a.ln2.data(), N, a, train, step, false);
  proj_forward(l, Proj::Up, a.up.data(), a.ln2.data(), N, a, train, step, false);
  {
    PhaseScope t(phase_slot(Phase::Elementwise));
    glu_train_forward<float>(r.activation, a.h.data(), a.gate.data(), a.up.data(), N * I);
  }
  sublayer_forward(l, r, Proj::Down, a, a.h.data(), a.x_mid.data(), x_out, a.ffn_out, a.rstd_ffn_out, w.ffn_out_norm,
                   train, step);
}

// y [rows, dim] = the recipe's RMSNorm of x with `weight`, rstd [rows] saved.
void TrainEngine::norm_forward(const NormStep& n, float* y, float* rstd, const float* x, const TensorView& weight,
                               int64_t rows, int64_t dim) {
  PhaseScope t(phase_slot(Phase::Norm));
  rmsnorm_train_forward<float>(y, rstd, x, weight.ptr<const float>(), rows, dim, n.eps, n.weight_offset);
}

// dx [rows, dim] += the norm's input gradient for dy, and its weight's (norm_grad) when it trains.
void TrainEngine::norm_backward(const NormStep& n, float* dx, float* d_weight, const float* dy, const float* x,
                                const TensorView& weight, const float* rstd, int64_t rows, int64_t dim) {
  PhaseScope t(phase_slot(Phase::Norm));
  rmsnorm_backward<float>(dx, d_weight, dy, x, weight.ptr<const float>(), rstd, rows, dim, n.weight_offset);
}

// The layer's rotation table, or null where the layer does not rotate (a NoPE layer).
const RopeTable* TrainEngine::layer_rope(const LayerRecipe& r) const {
  switch (r.rotary.table) {
    case RotaryTable::None: return nullptr;
    case RotaryTable::Local: return &rope_local_;
    case RotaryTable::Global: break;
  }
  return &rope_;
}

// x_out = x_res + the sub-layer's last projection (o or down) of `in`: accumulated straight into
// x_out, or with output norms (Gemma's sandwich) projected into `pre` [N, D], normalised by
// out_norm (rstd saved) and added.
void TrainEngine::sublayer_forward(int64_t l, const LayerRecipe& r, Proj p, LayerActs& a, const float* in,
                                   const float* x_res, float* x_out, std::vector<float>& pre, std::vector<float>& rstd,
                                   const TensorView& out_norm, bool train, uint64_t step) {
  const int64_t N = N_, D = model_.config.hidden_size;
  if (!r.output_norms) {
    if (x_out != x_res) {
      PhaseScope t(phase_slot(Phase::Elementwise));
      parallel_copy(x_out, x_res, N * D);
    }
    proj_forward(l, p, x_out, in, N, a, train, step, true);
    return;
  }
  proj_forward(l, p, pre.data(), in, N, a, train, step, false);
  float* normed = buf_.sublayer_normed.data();
  norm_forward(r.norm, normed, rstd.data(), pre.data(), out_norm, N, D);
  PhaseScope t(phase_slot(Phase::Elementwise));
#pragma omp parallel for schedule(static) if (N * D > 65536)
  for (int64_t i = 0; i < N * D; ++i) x_out[i] = x_res[i] + normed[i];
}

// The gradient buffer of a layer norm's weight (full fine-tuning), or null when it is frozen.
float* TrainEngine::norm_grad(int64_t l, LayerNorm n) {
  return grads_ ? grads_->find(norm_tensor_name(l, n, model_.config.norm_layout())) : nullptr;
}

// The gradient at a sub-layer's last projection output: d_residual itself, or with output norms
// d_residual back through the norm (into d_sublayer_out; its weight's gradient too).
const float* TrainEngine::sublayer_backward_norm(int64_t l, const LayerRecipe& r, LayerNorm n, const float* d_residual,
                                                 const std::vector<float>& pre, const std::vector<float>& rstd,
                                                 const TensorView& out_norm) {
  if (!r.output_norms) return d_residual;
  const int64_t N = N_, D = model_.config.hidden_size;
  float* d_pre = buf_.grad.d_sublayer_out.data();
  {
    PhaseScope t(phase_slot(Phase::Norm));
    parallel_zero(d_pre, N * D);
  }
  norm_backward(r.norm, d_pre, norm_grad(l, n), d_residual, pre.data(), out_norm, rstd.data(), N, D);
  return d_pre;
}

// d_residual [N, D]: the gradient at the layer output on entry, at the layer input on exit (left
// as it is in the first layer when nothing below it trains; see attention_block_backward). The
// recipe's steps in reverse.
void TrainEngine::layer_backward(int64_t l, LayerActs& a, float* d_residual, uint64_t step) {
  const LayerRecipe& r = recipe_.layers[size_t(l)];
  ffn_backward(l, r, a, d_residual, step);
  attention_block_backward(l, r, a, d_residual, step);
}

void TrainEngine::ffn_backward(int64_t l, const LayerRecipe& r, LayerActs& a, float* d_residual, uint64_t step) {
  const LayerWeights& w = model_.weights.layers[size_t(l)];
  const int64_t N = N_, D = model_.config.hidden_size, I = model_.config.intermediate_size;
  GradScratch& g = buf_.grad;
  {
    PhaseScope t(phase_slot(Phase::Elementwise));
    parallel_zero(g.d_h.data(), N * I);
  }
  proj_backward(l, Proj::Down, g.d_h.data(),
                sublayer_backward_norm(l, r, LayerNorm::FfnOut, d_residual, a.ffn_out, a.rstd_ffn_out, w.ffn_out_norm),
                a.h.data(), N, a, step);
  float* d_ln2 = g.d_norm_out.data();
  {
    PhaseScope t(phase_slot(Phase::Elementwise));
    parallel_zero(g.d_gate.data(), N * I);
    parallel_zero(g.d_up.data(), N * I);
    glu_backward<float>(r.activation, g.d_gate.data(), g.d_up.data(), g.d_h.data(), a.gate.data(), a.up.data(), N * I);
    parallel_zero(d_ln2, N * D);
  }
  proj_backward(l, Proj::Gate, d_ln2, g.d_gate.data(), a.ln2.data(), N, a, step);
  proj_backward(l, Proj::Up, d_ln2, g.d_up.data(), a.ln2.data(), N, a, step);
  // The residual passes d_residual straight through; the norm adds its share.
  norm_backward(r.norm, d_residual, norm_grad(l, LayerNorm::Ffn), d_ln2, a.x_mid.data(), w.ffn_norm, a.rstd2.data(), N,
                D);
}

void TrainEngine::attention_block_backward(int64_t l, const LayerRecipe& r, LayerActs& a, float* d_residual,
                                           uint64_t step) {
  const LayerWeights& w = model_.weights.layers[size_t(l)];
  const AttentionShape& shape = r.attention;
  const int64_t N = N_, D = model_.config.hidden_size;
  GradScratch& g = buf_.grad;
  {
    PhaseScope t(phase_slot(Phase::Elementwise));
    parallel_zero(g.d_att.data(), N * shape.n_heads * shape.head_dim);
  }
  proj_backward(l, Proj::O, g.d_att.data(),
                sublayer_backward_norm(l, r, LayerNorm::AttnOut, d_residual, a.attn_out, a.rstd_attn_out,
                                       w.attn_out_norm),
                a.att.data(), N, a, step);
  {
    PhaseScope t(phase_slot(Phase::Attention));
    parallel_zero(g.d_q.data(), int64_t(g.d_q.size()));
    parallel_zero(g.d_k.data(), int64_t(g.d_k.size()));
    parallel_zero(g.d_v.data(), int64_t(g.d_v.size()));
    attention_backward<float>(g.d_q.data(), g.d_k.data(), g.d_v.data(), g.d_att.data(), a.probs.data(), a.q.data(),
                              a.k.data(), a.v.data(), B_, L_, shape);
    if (const RopeTable* rope = layer_rope(r)) {
      rope_backward<float>(g.d_q.data(), positions_.data(), N, shape.n_heads, shape.head_dim, *rope);
      rope_backward<float>(g.d_k.data(), positions_.data(), N, shape.n_kv_heads, shape.head_dim, *rope);
    }
  }
  const float* d_q_proj = g.d_q.data();  // the gradient at the q / k projections' outputs
  const float* d_k_proj = g.d_k.data();
  if (r.qk_norm) {
    {
      PhaseScope t(phase_slot(Phase::Norm));
      parallel_zero(g.d_q_raw.data(), int64_t(g.d_q_raw.size()));
      parallel_zero(g.d_k_raw.data(), int64_t(g.d_k_raw.size()));
    }
    norm_backward(r.norm, g.d_q_raw.data(), norm_grad(l, LayerNorm::Q), g.d_q.data(), a.q_raw.data(), w.q_norm,
                  a.rstd_q.data(), N * shape.n_heads, shape.head_dim);
    norm_backward(r.norm, g.d_k_raw.data(), norm_grad(l, LayerNorm::K), g.d_k.data(), a.k_raw.data(), w.k_norm,
                  a.rstd_k.data(), N * shape.n_kv_heads, shape.head_dim);
    d_q_proj = g.d_q_raw.data();
    d_k_proj = g.d_k_raw.data();
  }
  // The first layer's input is the embedding: unless the embedding (or this norm) trains, no
  // gradient flows on from here, and the three input products of dx are skipped (as autograd
  // skips inputs that need no gradient).
  float* d_attn_norm = norm_grad(l, LayerNorm::Attn);
  const bool need_dx = l > 0 || d_attn_norm || (grads_ && grads_->find(kEmbedTensor));
  float* d_ln1 = need_dx ? g.d_norm_out.data() : nullptr;
  if (need_dx) {
    PhaseScope t(phase_slot(Phase::Elementwise));
    parallel_zero(d_ln1, N * D);
  }
  proj_backward(l, Proj::Q, d_ln1, d_q_proj, a.ln1.data(), N, a, step);
  proj_backward(l, Proj::K, d_ln1, d_k_proj, a.ln1.data(), N, a, step);
  proj_backward(l, Proj::V, d_ln1, g.d_v.data(), a.ln1.data(), N, a, step);
  if (!need_dx) return;
  norm_backward(r.norm, d_residual, d_attn_norm, d_ln1, a.x_in.data(), w.attn_norm, a.rstd1.data(), N, D);
}

void TrainEngine::embed(const TrainBatch& batch) {
  const ModelWeights& w = model_.weights;
  const int64_t D = model_.config.hidden_size;
  PhaseScope t(phase_slot(Phase::Elementwise));
  for (int64_t i = 0; i < N_; ++i) {
    const char* row = static_cast<const char*>(w.embed.data) + size_t(batch.tokens[size_t(i)]) *
                                                                   dtype_bytes(w.embed.dtype, D);
    convert_to_f32(w.embed.dtype, row, buf_.x.data() + i * D, size_t(D));
  }
  if (recipe_.embedding_scale != 1.0f)  // Gemma: times sqrt(hidden) in F32, as HF does
    for (int64_t i = 0; i < N_ * D; ++i) buf_.x[size_t(i)] *= recipe_.embedding_scale;
}

// Final norm, LM head and cross-entropy: fused over vocabulary chunks for a frozen head, else in
// row chunks; with backward, the gradient at the final norm's output is left in d_norm_out (and the
// head's weight gradient, when it trains).
double TrainEngine::head_and_loss(const TrainBatch& batch, bool backward, float grad_scale) {
  const ModelConfig& c = model_.config;
  const ModelWeights& w = model_.weights;
  const int64_t N = N_, D = c.hidden_size, V = c.vocab_size;
  norm_forward(recipe_.norm, buf_.lnf.data(), buf_.rstdf.data(), buf_.x.data(), w.final_norm, N, D);
  PhaseScope t(phase_slot(Phase::HeadLoss));
  float* d_lnf = buf_.grad.d_norm_out.data();
  if (backward) parallel_zero(d_lnf, N * D);
  if (fused_head_)
    return linear_cross_entropy(backward ? d_lnf : nullptr, buf_.lnf.data(), w.lm_head, batch.targets.data(), N,
                                grad_scale, compute_, head_scratch_);
  const int64_t chunk = logits_chunk_rows(N, V);
  float* logits = buf_.logits.data();
  float* d_head = nullptr;
  if (backward && grads_) d_head = grads_->find(c.tie_word_embeddings ? kEmbedTensor : kLmHeadTensor);
  double loss = 0;
  for (int64_t r0 = 0; r0 < N; r0 += chunk) {
    const int64_t rows = std::min(chunk, N - r0);
    const float* lnf = buf_.lnf.data() + r0 * D;
    linear_forward(logits, lnf, w.lm_head, nullptr, rows, false, compute_);
    const float cap = recipe_.final_softcap;
    if (cap > 0) {  // Gemma 2: the loss sees cap * tanh(logit / cap); keep them for the backward
      softcap_forward<float>(logits, rows * V, cap);
      if (backward) parallel_copy(buf_.logits_capped.data(), logits, rows * V);
    }
    loss += cross_entropy_forward_backward<float>(logits, batch.targets.data() + r0, rows, V, grad_scale);
    if (backward && cap > 0) softcap_backward_inplace<float>(logits, buf_.logits_capped.data(), rows * V, cap);
    if (backward) linear_backward(d_lnf + r0 * D, d_head, nullptr, logits, lnf, w.lm_head, rows, compute_);
  }
  return loss;
}

void TrainEngine::embedding_backward(const TrainBatch& batch) {
  float* d_embed = grads_ ? grads_->find(kEmbedTensor) : nullptr;
  if (!d_embed) return;
  const int64_t D = model_.config.hidden_size;
  const float* d_residual = buf_.grad.d_residual.data();
  const float scale = recipe_.embedding_scale;
  for (int64_t i = 0; i < N_; ++i) {
    float* row = d_embed + size_t(batch.tokens[size_t(i)]) * size_t(D);
    const float* g = d_residual + i * D;
    if (scale == 1.0f) {
      for (int64_t d = 0; d < D; ++d) row[d] += g[d];
    } else {
      for (int64_t d = 0; d < D; ++d) row[d] += g[d] * scale;
    }
  }
}

double TrainEngine::run(const TrainBatch& batch, bool backward, float grad_scale, uint64_t step) {
  resize(batch);
  balance_weight_ = lora_ ? lora_->molora.config.balance_coef * double(grad_scale) * double(batch.target_count()) : 0;
  const ModelConfig& c = model_.config;
  const int64_t N = N_, D = c.hidden_size;
  const bool recompute = options_.recompute;
  embed(batch);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    LayerActs& a = buf_.acts[recompute ? 0 : size_t(l)];
    if (recompute) std::memcpy(buf_.saved_inputs[size_t(l)].data(), buf_.x.data(), size_t(N * D) * 4);
    layer_forward(l, a, buf_.x.data(), buf_.x.data(), backward, step);
  }
  const double loss = head_and_loss(batch, backward, grad_scale);
  if (!backward) return loss;
  float* d_residual = buf_.grad.d_residual.data();
  parallel_zero(d_residual, N * D);
  norm_backward(recipe_.norm, d_residual, grads_ ? grads_->find(kFinalNormTensor) : nullptr,
                buf_.grad.d_norm_out.data(), buf_.x.data(), model_.weights.final_norm, buf_.rstdf.data(), N, D);
  for (int64_t l = c.num_layers - 1; l >= 0; --l) {
    LayerActs& a = buf_.acts[recompute ? 0 : size_t(l)];
    if (recompute) layer_forward(l, a, buf_.saved_inputs[size_t(l)].data(), buf_.recomputed_out.data(), true, step);
    layer_backward(l, a, d_residual, step);
    if (layer_hook_) layer_hook_(l);
  }
  embedding_backward(batch);
  return loss;
}

double TrainEngine::forward_backward(const TrainBatch& batch, float grad_scale, uint64_t step) {
  return run(batch, true, grad_scale, step);
}

double TrainEngine::forward_loss(const TrainBatch& batch) { return run(batch, false, 0.0f, 0); }

double accumulate_step_gradients(TrainEngine& engine, const std::vector<TrainBatch>& micro, int64_t step_targets,
                                 uint64_t step, const std::function<void(int64_t layer)>& last_pass_hook) {
  TAIA_CHECK(step_targets > 0, "[train] a step expected target tokens, got ", step_targets);
  const float scale = float(1.0 / double(step_targets));
  double loss = 0;
  for (size_t k = 0; k < micro.size(); ++k) {
    if (last_pass_hook && k + 1 == micro.size()) engine.set_layer_backward_hook(last_pass_hook);
    loss += engine.forward_backward(micro[k], scale, step);
    engine.set_layer_backward_hook(nullptr);
  }
  return loss;
}

}  // namespace taia
