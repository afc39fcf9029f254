#include "train/engine.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>

#include "core/error.h"
#include "kernels/attention.h"
#include "kernels/cross_entropy.h"
#include "kernels/gemm.h"
#include "kernels/linear.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"

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

FullGrads make_full_grads(const Model& model, const std::array<bool, kNumProj>& targets) {
  bool all = true;
  for (bool t : targets) all = all && t;
  FullGrads g;
  for (const ExpectedTensor& e : expected_tensors(model.config)) {
    bool trainable = all;
    if (!all)
      for (int i = 0; i < kNumProj; ++i)
        if (targets[size_t(i)] && e.name.find(std::string(".") + proj_name(Proj(i)) + ".") != std::string::npos)
          trainable = true;
    if (trainable) g.by_name[e.name].assign(size_t(checked_numel(e.shape, e.name)), 0.0f);
  }
  return g;
}

const char* phase_name(Phase p) {
  switch (p) {
    case Phase::BaseGemm: return "base GEMMs";
    case Phase::Lora: return "LoRA branches";
    case Phase::Attention: return "attention + RoPE";
    case Phase::Norm: return "RMSNorm";
    case Phase::Elementwise: return "SwiGLU, copies, embedding";
    case Phase::HeadLoss: return "LM head + loss";
    case Phase::Count: break;
  }
  return "?";
}

namespace {

// Adds the wall time of its scope to *slot; no clock is read when slot is null (not profiling).
class PhaseScope {
 public:
  explicit PhaseScope(double* slot) : slot_(slot) {
    if (slot_) t0_ = std::chrono::steady_clock::now();
  }
  ~PhaseScope() {
    if (slot_) *slot_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }
  PhaseScope(const PhaseScope&) = delete;
  PhaseScope& operator=(const PhaseScope&) = delete;

 private:
  double* slot_;
  std::chrono::steady_clock::time_point t0_{};
};

// Counter-based dropout: keep(seed, step, layer, proj, index) needs no stored mask, so
// backward and recomputation see exactly the forward's mask.
inline bool dropout_keep(uint64_t seed, uint64_t step, int64_t layer, int proj, int64_t index, double p) {
  uint64_t z = seed ^ (step * 0x9e3779b97f4a7c15ull) ^ (uint64_t(layer) << 48) ^ (uint64_t(proj) << 40) ^ uint64_t(index);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return double(z >> 11) * (1.0 / 9007199254740992.0) >= p;
}

// xd[i] = keep ? x[i] / (1 - p) : 0 for the mask of (seed, step, layer, proj).
void apply_dropout(float* xd, const float* x, int64_t n, uint64_t seed, uint64_t step, int64_t layer, int proj,
                   double p) {
  const float keep_scale = float(1.0 / (1.0 - p));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) xd[i] = dropout_keep(seed, step, layer, proj, i, p) ? x[i] * keep_scale : 0.0f;
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
    : model_(model), lora_(lora), grads_(grads), options_(options) {
  compute_.precision = options.compute_bf16 ? Precision::BF16 : Precision::F32;
  compute_.bf16 = &bf16_;
  const ModelConfig& c = model.config;
  inv_freq_ = rope_inv_freq(c.head_dim, float(c.rope_theta), c.rope_scaling,
                            model.rope_freq_factors.empty() ? nullptr : &model.rope_freq_factors);
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

int64_t TrainEngine::working_bytes(const ModelConfig& c, int64_t B, int64_t L, const EngineOptions& o,
                                   const LoraAdapter* lora, bool full) {
  const int64_t N = B * L, D = c.hidden_size, Q = c.q_dim(), KV = c.kv_dim(), I = c.intermediate_size,
                H = c.num_heads, V = c.vocab_size;
  // LayerActs (see resize): x_in, ln1, x_mid, ln2 [N, D]; q, att [N, Q]; k, v [N, KV];
  // gate, up, h [N, I]; probs [B, H, L, L]; rstd1, rstd2 [N].
  const int64_t per_layer = N * (4 * D + 2 * Q + 2 * KV + 3 * I + 2) + B * H * L * L;
  const int64_t sets = o.recompute ? 1 : c.num_layers;
  int64_t floats = sets * per_layer;
  if (o.recompute) floats += c.num_layers * N * D;  // saved layer inputs
  const int64_t widest = std::max({D, Q, I});
  floats += N * (3 * D + 2) + 5 * N * widest + N * (Q + 2 * KV + 2 * I);  // x, lnf, scratch, d-buffers
  floats += std::max<int64_t>(1, std::min<int64_t>(N, (int64_t(1) << 22) / V)) * V;  // logits chunk
  int64_t bytes = floats * 4;
  if (lora && !full) {
    // lora_u [N, r] and the folded weight w_eff live in LayerActs: one set per layer, or one
    // shared set (sized by the layer that needs most; layer 0 stands in) with recompute.
    for (int64_t l = 0; l < int64_t(lora->layers.size()); ++l)
      for (int i = 0; i < kNumProj; ++i)
        if (const LoraModule* m = lora->find(l, Proj(i))) {
          if (l < sets) {
            bytes += N * m->rank * 4;
            if (lora->config.dropout == 0 && !o.compute_bf16) bytes += m->out * m->in * 4;
          }
          if (o.compute_bf16) bytes += m->out * m->in * 2;  // BF16 copies of the frozen weights
        }
    if (o.compute_bf16) bytes += V * D * 2 + N * std::max(widest, V) * 2;
  }
  return bytes;
}

void TrainEngine::resize(const TrainBatch& batch) {
  const ModelConfig& c = model_.config;
  TAIA_CHECK(batch.B > 0 && batch.L > 0 && int64_t(batch.tokens.size()) == batch.B * batch.L &&
                 batch.targets.size() == batch.tokens.size(),
             "[TrainEngine] batch expected B*L tokens and targets");
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
  const size_t N = size_t(N_), D = size_t(c.hidden_size), Q = size_t(c.q_dim()), KV = size_t(c.kv_dim()),
               I = size_t(c.intermediate_size), H = size_t(c.num_heads);
  if (rope_.cos.size() < size_t(L_) * size_t(c.head_dim / 2)) rope_ = rope_table(inv_freq_, L_);
  positions_.resize(N);
  for (int64_t i = 0; i < N_; ++i) positions_[size_t(i)] = i % L_;
  const size_t sets = options_.recompute ? 1 : size_t(c.num_layers);
  acts_.resize(sets);
  for (LayerActs& a : acts_) {
    a.x_in.resize(N * D);
    a.ln1.resize(N * D);
    a.rstd1.resize(N);
    a.q.resize(N * Q);
    a.k.resize(N * KV);
    a.v.resize(N * KV);
    a.probs.resize(size_t(B_) * H * size_t(L_) * size_t(L_));
    a.att.resize(N * Q);
    a.x_mid.resize(N * D);
    a.ln2.resize(N * D);
    a.rstd2.resize(N);
    a.gate.resize(N * I);
    a.up.resize(N * I);
    a.h.resize(N * I);
  }
  if (options_.recompute) x_in_.assign(size_t(c.num_layers), std::vector<float>(N * D));
  x_.resize(N * D);
  lnf_.resize(N * D);
  rstdf_.resize(N);
  const size_t widest = std::max({D, Q, I});
  scratch_in_.resize(N * widest);
  scratch_in2_.resize(N * widest);
  dbuf_a_.resize(N * widest);
  dbuf_b_.resize(N * widest);
  dbuf_c_.resize(N * widest);
  dbuf_q_.resize(N * Q);
  dbuf_k_.resize(N * KV);
  dbuf_v_.resize(N * KV);
  dbuf_gate_.resize(N * I);
  dbuf_up_.resize(N * I);
}

// u[N, r] = x A^T, the input of the LoRA up-projection (kept for dB).
void TrainEngine::lora_down(std::vector<float>& u, const float* x, const LoraModule& m, int64_t N) {
  u.resize(size_t(N * m.rank));
  sgemm(false, true, N, m.rank, m.in, 1.0f, x, m.in, m.A.data(), m.in, 0.0f, u.data(), m.rank);
}

void TrainEngine::proj_forward(int64_t l, Proj p, float* y, const float* x, int64_t N, LayerActs& a, bool train,
                               uint64_t step, bool accumulate) {
  const Linear& lin = base(l, p);
  LoraModule* m = lora_ ? lora_->find(l, p) : nullptr;
  const double pdrop = m && train ? lora_->config.dropout : 0.0;
  std::vector<float>& u = a.lora_u[size_t(p)];
  if (m && pdrop == 0 && !options_.compute_bf16) {
    std::vector<float>& w = a.w_eff[size_t(p)];
    {
      PhaseScope t(phase_slot(Phase::Lora));
      w.resize(size_t(m->out * m->in));
      if (lin.weight.dtype == DType::F32)
        parallel_copy(w.data(), lin.weight.ptr<const float>(), int64_t(w.size()));
      else
        convert_to_f32(lin.weight.dtype, lin.weight.data, w.data(), w.size());
      sgemm(false, false, m->out, m->in, m->rank, m->scale, m->B.data(), m->rank, m->A.data(), m->in, 1.0f,
            w.data(), m->in);
    }
    {
      PhaseScope t(phase_slot(Phase::BaseGemm));
      linear_forward(y, x, TensorView("w_eff", DType::F32, {m->out, m->in}, w.data()), lin.bias_ptr(), N, accumulate,
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
    apply_dropout(scratch_in2_.data(), x, N * m->in, options_.dropout_seed, step, l, int(p), pdrop);
    xin = scratch_in2_.data();
  }
  lora_down(u, xin, *m, N);
  sgemm(false, true, N, m->out, m->rank, m->scale, u.data(), m->rank, m->B.data(), m->rank, 1.0f, y, m->out);
}

void TrainEngine::proj_backward(int64_t l, Proj p, float* dx, const float* dy, const float* x, int64_t N,
                                LayerActs& a, uint64_t step) {
  const Linear& lin = base(l, p);
  float* dW = grads_ ? grads_->find(proj_tensor_name(l, p, "weight")) : nullptr;
  float* db = grads_ && !lin.bias.empty() ? grads_->find(proj_tensor_name(l, p, "bias")) : nullptr;
  LoraModule* m = lora_ ? lora_->find(l, p) : nullptr;
  const double pdrop = m ? lora_->config.dropout : 0.0;
  const bool folded = m && pdrop == 0 && !options_.compute_bf16;
  // dx through W (+ scale B A when folded: the LoRA branch's dx comes with it).
  {
    PhaseScope t(phase_slot(Phase::BaseGemm));
    const TensorView w = folded ? TensorView("w_eff", DType::F32, {m->out, m->in}, a.w_eff[size_t(p)].data())
                                : lin.weight;
    linear_backward(dx, dW, db, dy, x, w, N, compute_);
  }
  if (!m) return;
  PhaseScope t(phase_slot(Phase::Lora));
  const std::vector<float>& u = a.lora_u[size_t(p)];
  // dB += s * dy^T u, formed as its transpose s * u^T dy [r, out] (the r-row product runs ~3x
  // faster in oneDNN than the r-column one); du = s * dy B [N, r]; dA += du^T xd.
  std::vector<float>& dbt = scratch_bt_;
  dbt.resize(size_t(m->rank * m->out));
  sgemm(true, false, m->rank, m->out, N, m->scale, u.data(), m->rank, dy, m->out, 0.0f, dbt.data(), m->out);
  for (int64_t o = 0; o < m->out; ++o)
    for (int64_t r = 0; r < m->rank; ++r) m->dB[size_t(o * m->rank + r)] += dbt[size_t(r * m->out + o)];
  std::vector<float>& du = scratch_du_;
  du.resize(size_t(N * m->rank));
  sgemm(false, false, N, m->rank, m->out, m->scale, dy, m->out, m->B.data(), m->rank, 0.0f, du.data(), m->rank);
  const float* xin = x;
  const float keep_scale = float(1.0 / (1.0 - pdrop));
  if (pdrop > 0) {
    apply_dropout(scratch_in2_.data(), x, N * m->in, options_.dropout_seed, step, l, int(p), pdrop);
    xin = scratch_in2_.data();
  }
  sgemm(true, false, m->rank, m->in, N, 1.0f, du.data(), m->rank, xin, m->in, 1.0f, m->dA.data(), m->in);
  if (folded || !dx) return;
  if (pdrop == 0) {
    sgemm(false, false, N, m->in, m->rank, 1.0f, du.data(), m->rank, m->A.data(), m->in, 1.0f, dx, m->in);
    return;
  }
  float* dxd = scratch_in2_.data();
  sgemm(false, false, N, m->in, m->rank, 1.0f, du.data(), m->rank, m->A.data(), m->in, 0.0f, dxd, m->in);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N * m->in; ++i)
    if (dropout_keep(options_.dropout_seed, step, l, int(p), i, pdrop)) dx[i] += dxd[i] * keep_scale;
}

void TrainEngine::layer_forward(int64_t l, LayerActs& a, const float* x_in, float* x_out, bool train, uint64_t step) {
  const ModelConfig& c = model_.config;
  const LayerWeights& w = model_.weights.layers[size_t(l)];
  const int64_t N = N_, D = c.hidden_size, I = c.intermediate_size;
  const float eps = float(c.rms_norm_eps);
  {
    PhaseScope t(phase_slot(Phase::Elementwise));
    parallel_copy(a.x_in.data(), x_in, N * D);
  }
  {
    PhaseScope t(phase_slot(Phase::Norm));
    rmsnorm_train_forward<float>(a.ln1.data(), a.rstd1.data(), a.x_in.data(), w.attn_norm.ptr<const float>(), N, D,
                                 eps);
  }
  proj_forward(l, Proj::Q, a.q.data(), a.ln1.data(), N, a, train, step, false);
  proj_forward(l, Proj::K, a.k.data(), a.ln1.data(), N, a, train, step, false);
  proj_forward(l, Proj::V, a.v.data(), a.ln1.data(), N, a, train, step, false);
  {
    PhaseScope t(phase_slot(Phase::Attention));
    rope_train_forward<float>(a.q.data(), positions_.data(), N, c.num_heads, c.head_dim, rope_);
    rope_train_forward<float>(a.k.data(), positions_.data(), N, c.num_kv_heads, c.head_dim, rope_);
    attention_train_forward<float>(a.att.data(), a.probs.data(), a.q.data(), a.k.data(), a.v.data(), B_, L_,
                                   AttentionShape{c.num_heads, c.num_kv_heads, c.head_dim});
  }
  {
    PhaseScope t(phase_slot(Phase::Elementwise));
    parallel_copy(a.x_mid.data(), a.x_in.data(), N * D);
  }
  proj_forward(l, Proj::O, a.x_mid.data(), a.att.data(), N, a, train, step, true);
  {
    PhaseScope t(phase_slot(Phase::Norm));
    rmsnorm_train_forward<float>(a.ln2.data(), a.rstd2.data(), a.x_mid.data(), w.ffn_norm.ptr<const float>(), N, D,
                                 eps);
  }
  proj_forward(l, Proj::Gate, a.gate.data(), a.ln2.data(), N, a, train, step, false);
  proj_forward(l, Proj::Up, a.up.data(), a.ln2.data(), N, a, train, step, false);
  {
    PhaseScope t(phase_slot(Phase::Elementwise));
    swiglu_train_forward<float>(a.h.data(), a.gate.data(), a.up.data(), N * I);
    if (x_out != a.x_mid.data()) parallel_copy(x_out, a.x_mid.data(), N * D);
  }
  proj_forward(l, Proj::Down, x_out, a.h.data(), N, a, train, step, true);
}

void TrainEngine::layer_backward(int64_t l, LayerActs& a, float* dx, uint64_t step) {
  // dx [N, D]: gradient at the layer output on entry, at the layer input on exit (left as it
  // is in the first layer when nothing below it trains; see need_dx).
  const ModelConfig& c = model_.config;
  const LayerWeights& w = model_.weights.layers[size_t(l)];
  const int64_t N = N_, D = c.hidden_size, I = c.intermediate_size;
  float* dh = dbuf_a_.data();
  {
    PhaseScope t(phase_slot(Phase::Elementwise));
    parallel_zero(dh, N * I);
  }
  proj_backward(l, Proj::Down, dh, dx, a.h.data(), N, a, step);
  float* dln2 = dbuf_b_.data();
  {
    PhaseScope t(phase_slot(Phase::Elementwise));
    parallel_zero(dbuf_gate_.data(), N * I);
    parallel_zero(dbuf_up_.data(), N * I);
    swiglu_backward<float>(dbuf_gate_.data(), dbuf_up_.data(), dh, a.gate.data(), a.up.data(), N * I);
    parallel_zero(dln2, N * D);
  }
  proj_backward(l, Proj::Gate, dln2, dbuf_gate_.data(), a.ln2.data(), N, a, step);
  proj_backward(l, Proj::Up, dln2, dbuf_up_.data(), a.ln2.data(), N, a, step);
  {
    // The residual passes dx straight through; the norm adds its share.
    PhaseScope t(phase_slot(Phase::Norm));
    rmsnorm_backward<float>(dx, grads_ ? grads_->find(norm_tensor_name(l, LayerNorm::Ffn)) : nullptr,
                            dln2, a.x_mid.data(), w.ffn_norm.ptr<const float>(), a.rstd2.data(), N, D);
  }
  float* datt = dbuf_c_.data();
  {
    PhaseScope t(phase_slot(Phase::Elementwise));
    parallel_zero(datt, N * c.q_dim());
  }
  proj_backward(l, Proj::O, datt, dx, a.att.data(), N, a, step);
  {
    PhaseScope t(phase_slot(Phase::Attention));
    parallel_zero(dbuf_q_.data(), int64_t(dbuf_q_.size()));
    parallel_zero(dbuf_k_.data(), int64_t(dbuf_k_.size()));
    parallel_zero(dbuf_v_.data(), int64_t(dbuf_v_.size()));
    attention_backward<float>(dbuf_q_.data(), dbuf_k_.data(), dbuf_v_.data(), datt, a.probs.data(), a.q.data(),
                              a.k.data(), a.v.data(), B_, L_, AttentionShape{c.num_heads, c.num_kv_heads, c.head_dim});
    rope_backward<float>(dbuf_q_.data(), positions_.data(), N, c.num_heads, c.head_dim, rope_);
    rope_backward<float>(dbuf_k_.data(), positions_.data(), N, c.num_kv_heads, c.head_dim, rope_);
  }
  // The first layer's input is the embedding: unless the embedding (or this norm) trains, no
  // gradient flows on from here, and the three input products of dx are skipped (as autograd
  // skips inputs that need no gradient).
  float* d_attn_norm = grads_ ? grads_->find(norm_tensor_name(l, LayerNorm::Attn)) : nullptr;
  const bool need_dx = l > 0 || d_attn_norm || (grads_ && grads_->find(kEmbedTensor));
  float* dln1 = need_dx ? dbuf_b_.data() : nullptr;
  if (need_dx) {
    PhaseScope t(phase_slot(Phase::Elementwise));
    parallel_zero(dln1, N * D);
  }
  proj_backward(l, Proj::Q, dln1, dbuf_q_.data(), a.ln1.data(), N, a, step);
  proj_backward(l, Proj::K, dln1, dbuf_k_.data(), a.ln1.data(), N, a, step);
  proj_backward(l, Proj::V, dln1, dbuf_v_.data(), a.ln1.data(), N, a, step);
  if (!need_dx) return;
  PhaseScope t(phase_slot(Phase::Norm));
  rmsnorm_backward<float>(dx, d_attn_norm, dln1, a.x_in.data(), w.attn_norm.ptr<const float>(), a.rstd1.data(), N,
                          D);
}

double TrainEngine::run(const TrainBatch& batch, bool backward, float grad_scale, uint64_t step) {
  resize(batch);
  const ModelConfig& c = model_.config;
  const ModelWeights& w = model_.weights;
  const int64_t N = N_, D = c.hidden_size, V = c.vocab_size;
  // Embedding.
  std::optional<PhaseScope> timer;
  timer.emplace(phase_slot(Phase::Elementwise));
  for (int64_t i = 0; i < N; ++i) {
    const char* row = static_cast<const char*>(w.embed.data) + size_t(batch.tokens[size_t(i)]) * size_t(D) *
                                                                   dtype_size(w.embed.dtype);
    convert_to_f32(w.embed.dtype, row, x_.data() + i * D, size_t(D));
  }
  timer.reset();
  for (int64_t l = 0; l < c.num_layers; ++l) {
    LayerActs& a = acts_[options_.recompute ? 0 : size_t(l)];
    if (options_.recompute) std::memcpy(x_in_[size_t(l)].data(), x_.data(), size_t(N * D) * 4);
    layer_forward(l, a, x_.data(), x_.data(), backward, step);
  }
  timer.emplace(phase_slot(Phase::Norm));
  rmsnorm_train_forward<float>(lnf_.data(), rstdf_.data(), x_.data(), w.final_norm.ptr<const float>(), N, D,
                               float(c.rms_norm_eps));
  timer.emplace(phase_slot(Phase::HeadLoss));
  // LM head + cross-entropy in row chunks so the logits never exist for the whole batch.
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(N, (int64_t(1) << 22) / V));
  logits_.resize(size_t(chunk * V));
  float* dlnf = dbuf_b_.data();
  if (backward) std::fill(dlnf, dlnf + N * D, 0.0f);
  float* d_head = nullptr;
  if (backward && grads_)
    d_head = grads_->find(c.tie_word_embeddings ? kEmbedTensor : kLmHeadTensor);
  double loss = 0;
  for (int64_t r0 = 0; r0 < N; r0 += chunk) {
    const int64_t rows = std::min(chunk, N - r0);
    linear_forward(logits_.data(), lnf_.data() + r0 * D, w.lm_head, nullptr, rows, false, compute_);
    loss += cross_entropy_forward_backward<float>(logits_.data(), batch.targets.data() + r0, rows, V, grad_scale);
    if (backward)
      linear_backward(dlnf + r0 * D, d_head, nullptr, logits_.data(), lnf_.data() + r0 * D, w.lm_head, rows, compute_);
  }
  timer.reset();
  if (!backward) return loss;
  float* dx = scratch_in_.data();  // [N, D] gradient of the residual stream
  timer.emplace(phase_slot(Phase::Norm));
  std::fill(dx, dx + N * D, 0.0f);
  rmsnorm_backward<float>(dx, grads_ ? grads_->find(kFinalNormTensor) : nullptr, dlnf, x_.data(),
                          w.final_norm.ptr<const float>(), rstdf_.data(), N, D);
  timer.reset();
  for (int64_t l = c.num_layers - 1; l >= 0; --l) {
    LayerActs& a = acts_[options_.recompute ? 0 : size_t(l)];
    if (options_.recompute) {
      std::vector<float> out(size_t(N * D));
      layer_forward(l, a, x_in_[size_t(l)].data(), out.data(), true, step);
    }
    layer_backward(l, a, dx, step);
  }
  if (float* d_embed = grads_ ? grads_->find(kEmbedTensor) : nullptr) {
    for (int64_t i = 0; i < N; ++i) {
      float* row = d_embed + size_t(batch.tokens[size_t(i)]) * size_t(D);
      const float* g = dx + i * D;
      for (int64_t d = 0; d < D; ++d) row[d] += g[d];
    }
  }
  return loss;
}

double TrainEngine::forward_backward(const TrainBatch& batch, float grad_scale, uint64_t step) {
  return run(batch, true, grad_scale, step);
}

double TrainEngine::forward_loss(const TrainBatch& batch) { return run(batch, false, 0.0f, 0); }

}  // namespace taia
